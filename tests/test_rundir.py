"""Run folders published as a whole: staging, manifest, swap, lock, recovery after a crash at every step."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ipam_core import rundir
from stop_points import wait_for_stop
from ipam_core.rundir import (MANIFEST_FILE, ManifestError, OutputDirError, OutputLock, RunPublisher, check_output_dir,
                              read_manifest, recover, staged_folder, verify_run)

ROOT = Path(__file__).resolve().parent.parent


def publish(folder: Path, files: dict[str, bytes]) -> dict:
    with RunPublisher(folder) as pub:
        for name, data in files.items():
            (pub.staging / name).write_bytes(data)
        return pub.publish()


def siblings(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.parent.iterdir() if p.name != folder.name)


def test_publish_writes_every_file_and_a_manifest_naming_them(tmp_path):
    out = tmp_path / "deep" / "run"
    manifest = publish(out, {"trace.arrow": b"t1", "summary.csv": b"a,b\n"})
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST_FILE, "summary.csv", "trace.arrow"]
    assert verify_run(out) == manifest == read_manifest(out)
    assert manifest["files"]["summary.csv"]["bytes"] == 4
    assert siblings(out) == []  # no staging folder, aside folder or lock file left


def test_a_new_run_replaces_the_whole_folder(tmp_path):
    out = tmp_path / "run"
    first = publish(out, {"trace.arrow": b"old", "nodes.arrow": b"old nodes", "pods.png": b"png"})
    second = publish(out, {"trace.arrow": b"new"})
    assert first["run_id"] != second["run_id"]
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST_FILE, "trace.arrow"]  # no old nodes.arrow beside it
    assert (out / "trace.arrow").read_bytes() == b"new"
    assert siblings(out) == []


def test_same_files_give_the_same_run_id(tmp_path):
    assert publish(tmp_path / "a", {"trace.arrow": b"x"})["run_id"] == publish(tmp_path / "b", {"trace.arrow": b"x"})[
        "run_id"]


def test_an_error_before_publishing_leaves_the_previous_run_and_nothing_else(tmp_path):
    out = tmp_path / "run"
    publish(out, {"trace.arrow": b"old"})
    with pytest.raises(RuntimeError), RunPublisher(out) as pub:
        (pub.staging / "trace.arrow").write_bytes(b"half")
        raise RuntimeError("simulation failed")
    assert (out / "trace.arrow").read_bytes() == b"old" and verify_run(out)
    assert siblings(out) == []


def test_parents_created_for_a_run_that_failed_are_removed(tmp_path):
    with pytest.raises(KeyboardInterrupt), RunPublisher(tmp_path / "a" / "b" / "run") as pub:
        (pub.staging / "trace.arrow").write_bytes(b"x")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_without_the_atomic_exchange_the_rename_aside_path_publishes_too(tmp_path, monkeypatch):
    monkeypatch.setattr(rundir, "_EXCHANGE", None)
    out = tmp_path / "run"
    publish(out, {"trace.arrow": b"old"})
    publish(out, {"trace.arrow": b"new"})
    assert (out / "trace.arrow").read_bytes() == b"new" and siblings(out) == []


def test_a_second_writer_fails_at_once_naming_the_folder(tmp_path):
    out = tmp_path / "run"
    with RunPublisher(out):
        with pytest.raises(OutputDirError) as caught, RunPublisher(out):
            pass
    message = str(caught.value)
    assert "\n" not in message and repr(str(out)) in message and f"pid {os.getpid()}" in message
    with RunPublisher(out):  # released: the next writer gets it
        pass
    assert siblings(out) == []


def test_a_killed_lock_holder_does_not_block_the_next_writer(tmp_path):
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from ipam_core.rundir import OutputLock\n"
         f"with OutputLock(Path({str(out)!r})):\n    print('locked', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)}, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(OutputDirError, match=f"pid {holder.pid}"), OutputLock(out):
            pass
    finally:
        holder.kill()
        holder.wait()
    with OutputLock(out):  # the kernel released the dead holder's lock; its stale lock file is reused
        pass
    assert siblings(out) == []


@pytest.mark.parametrize("text, needle", [
    ("", "expected a folder path"),
    (".", "current folder"),
    ("..", "current folder"),
])
def test_output_paths_that_cannot_be_a_run_folder(tmp_path, monkeypatch, text, needle):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(OutputDirError, match=needle):
        check_output_dir(text, label="--out")


def test_a_file_a_path_under_a_file_and_a_folder_of_other_files_are_refused(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputDirError, match="is a file; expected a folder"):
        check_output_dir(tmp_path / "f")
    with pytest.raises(OutputDirError, match="is a file; expected a path under a folder"):
        check_output_dir(tmp_path / "f" / "run")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    (mine / "trace.arrow").write_text("x")
    with pytest.raises(OutputDirError, match="'notes.txt', which no ipam-bench run wrote"):
        with RunPublisher(mine):
            pass
    assert (mine / "notes.txt").read_text() == "keep me" and siblings(mine) == ["f"]


def test_a_folder_of_an_earlier_version_without_manifest_is_replaced(tmp_path):
    old = tmp_path / "run"
    old.mkdir()
    for name in ("trace.arrow", "nodes.arrow", "summary.csv", "pods.png", ".trace.arrow.0123456789ab.tmp"):
        (old / name).write_text("old")
    publish(old, {"trace.arrow": b"new"})
    assert sorted(p.name for p in old.iterdir()) == [MANIFEST_FILE, "trace.arrow"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_an_unwritable_parent_is_refused(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(OutputDirError, match="permission denied"):
            check_output_dir(locked / "run")
    finally:
        locked.chmod(0o700)


def test_a_parent_that_cannot_be_created_is_one_line(tmp_path):
    with pytest.raises(OutputDirError) as caught, RunPublisher("/proc/ipam-bench-test/run"):
        pass
    assert "/proc/ipam-bench-test" in str(caught.value) and "\n" not in str(caught.value)


def test_recovery_removes_stale_staging_and_restores_a_lone_aside_folder(tmp_path):
    out = tmp_path / "run"
    publish(out, {"trace.arrow": b"old"})
    aside = tmp_path / ".run.old-0000abcd"
    out.rename(aside)  # a crash between the two renames of the fallback path
    staging = tmp_path / ".run.staging-0000beef"
    staging.mkdir()
    (staging / "trace.arrow").write_bytes(b"new, never published")
    with RunPublisher(out):
        pass
    assert (out / "trace.arrow").read_bytes() == b"old" and verify_run(out)
    assert siblings(out) == []


def test_recovery_keeps_the_folder_and_drops_old_aside_folders(tmp_path):
    out = tmp_path / "run"
    publish(out, {"trace.arrow": b"current"})
    (tmp_path / ".run.old-0000abcd").mkdir()
    (out / ".trace.arrow.0123456789ab.tmp").write_bytes(b"stray")
    other = tmp_path / ".run.staging-x.staging-0000abcd"  # another folder's ("run.staging-x") staging
    other.mkdir()
    recover(out)
    assert verify_run(out) and siblings(out) == [other.name]


def test_reader_check_refuses_a_file_of_another_run(tmp_path):
    a = tmp_path / "a"
    publish(a, {"trace.arrow": b"run a", "nodes.arrow": b"nodes a"})
    (a / "nodes.arrow").write_bytes(b"nodes b")  # what a per-file writer killed half-way used to leave
    rundir.check_member(a / "trace.arrow")
    with pytest.raises(ManifestError, match="mixes files of two runs"):
        rundir.check_member(a / "nodes.arrow")
    with pytest.raises(ManifestError, match="nodes.arrow"):
        verify_run(a)
    (a / "extra.png").write_bytes(b"x")
    with pytest.raises(ManifestError, match="extra.png"):
        verify_run(a)


def test_nested_writers_join_the_open_publisher(tmp_path):
    out = tmp_path / "run"
    with RunPublisher(out) as pub:
        with staged_folder(pub.staging) as folder:
            assert folder == pub.staging
            (folder / "trace.arrow").write_bytes(b"t")
        assert not out.exists()  # the owner publishes
        (pub.staging / "summary.csv").write_bytes(b"s")
        manifest = pub.publish()
    assert sorted(manifest["files"]) == ["summary.csv", "trace.arrow"]
    with staged_folder(out) as folder:  # on its own, a staged folder publishes itself
        (folder / "trace.arrow").write_bytes(b"u")
    assert sorted(verify_run(out)["files"]) == ["trace.arrow"]


_WRITER = """
import sys
from pathlib import Path
from ipam_core import rundir
from ipam_core.atomic import atomic_write_bytes
if sys.argv[2] == "rename":
    rundir._EXCHANGE = None
with rundir.RunPublisher(Path(sys.argv[1])) as pub:
    for name in ("trace.arrow", "nodes.arrow", "summary.csv"):
        atomic_write_bytes(pub.staging / name, b"new " + name.encode())
    pub.publish()
"""
POINTS = ["trace.arrow.tmp", "nodes.arrow", "summary.csv.tmp", "publish:staged", "manifest.json.tmp",
          "manifest.json", "publish:swapped", "publish:aside", "publish:published"]


def _stop_and_kill(args, point, cwd) -> bool:
    """Run the writer until it stops itself at ``point``, then SIGKILL it; False if it never got there."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "IPAM_BENCH_TEST_STOP_AT": point}
    proc = subprocess.Popen(args, env=env, cwd=cwd)
    try:
        code = wait_for_stop(proc, 60)
    except TimeoutError:
        proc.kill()
        raise AssertionError(f"writer neither stopped at {point!r} nor ended") from None
    if code is None:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return True
    return False


@pytest.mark.parametrize("swap", ["exchange", "rename"])
@pytest.mark.parametrize("point", POINTS)
def test_a_writer_killed_at_any_step_leaves_one_whole_run(tmp_path, swap, point):
    out = tmp_path / "run"
    old = publish(out, {"trace.arrow": b"old trace", "nodes.arrow": b"old nodes"})
    reached = _stop_and_kill([sys.executable, "-c", _WRITER, str(out), swap], point, tmp_path)
    expected_points = set(POINTS) - {"publish:aside" if swap == "exchange" else "publish:swapped"}
    assert reached == (point in expected_points)
    if out.exists():
        manifest = verify_run(out)
        names = sorted(manifest["files"])
        assert manifest == old or names == ["nodes.arrow", "summary.csv", "trace.arrow"]
    else:  # only between the two renames of the fallback path: the next writer restores it
        assert (swap, point) == ("rename", "publish:aside")
    with RunPublisher(out):  # the next writer recovers
        pass
    assert verify_run(out) and siblings(out) == []
    published = not reached or point in ("publish:swapped", "publish:published")
    assert (read_manifest(out) != old) == published


def test_copying_a_folder_keeps_it_verifiable(tmp_path):
    out = tmp_path / "run"
    publish(out, {"trace.arrow": b"t"})
    shutil.copytree(out, tmp_path / "copy")
    assert verify_run(tmp_path / "copy") == read_manifest(out)
