"""Kill `ipam-bench sweep` with SIGKILL while it writes each of its files, then rerun it (issue #13).

A sweep folder fills point by point and is resumed, not published as a whole like a run folder
(tests/test_kill.py). What a kill may leave is therefore: every file whole (each is written
atomically), hidden temporary files at most, and a folder the same command resumes, producing the
table an uninterrupted sweep produces. Each trial starts from an empty folder or from a complete
previous sweep of the same spec with fewer axis values, and the sweep stops itself (the test hook
IPAM_BENCH_TEST_STOP_AT) just before or just after one of its files is renamed into place, drawn
with a seeded generator; the test then kills the whole process group.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from ipam_core.sweep import WALL_COLUMNS, read_sweep
from ipam_core.sweep.results import POINTS_DIR
from stop_points import wait_for_stop
from sweep_specs import write_spec

ROOT = Path(__file__).resolve().parent.parent
MASK = "ipam.operator.clusterPoolIPv4MaskSize"


def env(stop_at: str | None = None) -> dict[str, str]:
    extra = {"PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}  # NUMBA_CACHE_DIR is inherited: the kernels are warm
    if stop_at:
        extra["IPAM_BENCH_TEST_STOP_AT"] = stop_at
    return {**os.environ, **extra}


def argv(spec: str, out: Path) -> list[str]:
    return [sys.executable, "-m", "ipam_core", "sweep", spec, "--out", str(out), "--workers", "1"]


def complete(spec: str, out: Path) -> subprocess.CompletedProcess:
    done = subprocess.run(argv(spec, out), env=env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done


def kill_at_point(args: list[str], point: str) -> None:
    """Start the sweep in its own process group, let it stop itself at ``point``, SIGKILL the group."""
    proc = subprocess.Popen(args, env=env(point), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        code = wait_for_stop(proc, 300)
    except TimeoutError:
        os.killpg(proc.pid, signal.SIGKILL)
        raise AssertionError(f"{args} did not reach {point!r}") from None
    if code is not None:
        raise AssertionError(f"{args} finished (exit code {code}) without reaching {point!r}")
    os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its worker processes
    proc.wait()


def table_data(folder: Path) -> pa.Table:
    table, _ = read_sweep(folder)
    return table.drop_columns(list(WALL_COLUMNS))


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory):
    """The new spec (3 mask values), a complete sweep of the old one (2 values), an uninterrupted new sweep."""
    base = tmp_path_factory.mktemp("kill-sweep")
    old_spec = write_spec(base, {MASK: [24, 27]}, name="old.yaml", modes=["cluster-pool"], replicates=2)
    new_spec = write_spec(base, {MASK: [24, 25, 27]}, name="new.yaml", modes=["cluster-pool"], replicates=2)
    complete(old_spec, base / "previous")
    complete(new_spec, base / "reference")
    files = sorted(p.name for p in (base / "reference").iterdir() if p.is_file())
    return new_spec, base / "previous", base / "reference", files


def trials(files: list[str]) -> list[tuple[str, str]]:
    """(stop point, starting folder): every file of the sweep before or after its rename (drawn), a points/
    flush both ways, each from an empty folder or a previous sweep (alternating after a seeded shuffle)."""
    rng = np.random.default_rng(20261206)
    points = [name + (".tmp" if rng.random() < 0.5 else "") for name in files]
    points += ["*.arrow.tmp", "*.arrow"]  # a points/ flush: its name is a hash of the task keys
    order = rng.permutation(len(points))
    return [(points[j], "previous" if i % 2 else "empty") for i, j in enumerate(order)]


def test_sigkill_while_writing_any_file_leaves_a_folder_the_rerun_completes(sweeps, tmp_path):
    spec, previous, reference, files = sweeps
    assert {"spec.yaml", "sweep.parquet", "aggregate.csv", "sweep.json"} <= set(files)
    assert any(name.endswith(".png") for name in files)
    plan = trials(files)
    assert len(plan) >= 8
    expected = table_data(reference)
    for i, (point, start) in enumerate(plan):
        where = f"trial {i}: killed at {point} in a {start} folder"
        out = tmp_path / f"t{i:02d}" / "out"
        out.parent.mkdir()
        if start == "previous":
            shutil.copytree(previous, out)
        kill_at_point(argv(spec, out), point)

        listed = [p for p in out.rglob("*") if p.is_file()] if out.exists() else []
        temps = [p for p in listed if p.name.endswith(".tmp")]
        assert all(p.name.startswith(".") for p in temps), where  # no temporary file visible as a result
        if point.endswith(".tmp"):
            assert temps, where  # the kill did interrupt a write
        for path in (out / POINTS_DIR).glob("[!.]*.arrow") if out.exists() else []:
            with pa.ipc.open_file(path) as reader:  # whole: an Arrow file's footer is written last
                assert reader.read_all().num_rows > 0, where
        if (out / "sweep.parquet").exists():
            read_sweep(out)  # a whole table, the previous one or the new one

        done = complete(spec, out)
        assert table_data(out).equals(expected), where
        assert not [p for p in out.rglob("*.tmp")], where  # the rerun cleaned what the killed writer left
        assert sorted(p.name for p in out.iterdir() if p.is_file()) == files, where
        assert sorted(p.name for p in out.parent.iterdir()) == ["out"], where  # no lock file left
        assert "already done" in done.stdout, where
