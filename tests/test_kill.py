"""Kill `compare`, `run` and `migrate` with SIGKILL while they write over a previous run, then look at the folder.

Every command writes into a folder that holds a complete previous run (another seed). Each trial
kills the command at a point drawn with a seeded generator: either at an exact point of the
write phase (the test hook IPAM_BENCH_TEST_STOP_AT makes the writer stop itself there: before or
after each file of the run is renamed into place, and at each step of the publishing), or at a
random time after its staging folder appears. Afterwards the folder must hold exactly the
previous run or exactly the new one (manifest verified, file set complete), nothing half-written,
and the next writer must recover cleanly.

`ipam-bench sweep` does not exist on this branch; it publishes through the same
ipam_core.rundir.RunPublisher, so the same checks apply to it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from engine_helpers import BASE, merge
from stop_points import wait_for_stop
from ipam_core.rundir import MANIFEST_FILE, RunPublisher, read_manifest, verify_run
from ipam_core.trace import run_params

ROOT = Path(__file__).resolve().parent.parent
SEED_LAB = str(ROOT / "scenarios" / "seed-lab.yaml")
SMALL = merge(BASE, {"duration": "2m", "cluster": {"nodes": 3}, "workload": {"podsPerNode": 5}})
OLD_SEED, NEW_SEED = 11, 12
PUBLISH_POINTS = ("publish:staged", "publish:swapped", "publish:published")


def commands(scenario: str) -> dict[str, list[str]]:
    return {
        "compare": ["compare", scenario],  # with figures
        "run": ["run", scenario, "--mode", "multi-pool"],
        "migrate": ["migrate", SEED_LAB],
        "migrate-plan": ["migrate", SEED_LAB, "--plan"],
    }


def cli(args: list[str], out: Path, seed: int) -> list[str]:
    return [sys.executable, "-m", "ipam_core", *args, "--seed", str(seed), "--out", str(out)]


def env(stop_at: str | None = None) -> dict[str, str]:
    extra = {"PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}  # NUMBA_CACHE_DIR is inherited: the kernels are warm
    if stop_at:
        extra["IPAM_BENCH_TEST_STOP_AT"] = stop_at
    return {**os.environ, **extra}


def complete(args: list[str], out: Path, seed: int) -> dict:
    done = subprocess.run(cli(args, out, seed), env=env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return verify_run(out)


def seed_of(folder: Path) -> int | None:
    """The seed recorded in the run's Arrow metadata (the plan CSV carries none)."""
    for name in ("trace.arrow", "migration_steps.arrow"):
        if (folder / name).exists():
            return run_params(folder / name)["seed"]
    return None


def staging_of(out: Path) -> list[Path]:
    return [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.staging-")]


def kill_at_point(argv: list[str], point: str) -> bool:
    """Start the command, let it stop itself at ``point``, SIGKILL it. False if it finished first."""
    proc = subprocess.Popen(argv, env=env(point), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        code = wait_for_stop(proc, 300)
    except TimeoutError:
        proc.kill()
        raise AssertionError(f"{argv} did not reach {point!r}") from None
    if code is None:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return True
    assert code == 0
    return False


def kill_after(argv: list[str], out: Path, delay: float) -> bool:
    """SIGKILL the command ``delay`` seconds after its staging folder appears. False if it finished first."""
    proc = subprocess.Popen(argv, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not staging_of(out) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    time.sleep(delay)
    if proc.poll() is not None:
        assert proc.returncode == 0
        return False
    proc.kill()
    proc.wait()
    return True


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Per command: a complete previous run to restore before each trial, and the files a new run writes."""
    base = tmp_path_factory.mktemp("kill")
    scenario = base / "small.yaml"
    scenario.write_text(yaml.safe_dump(SMALL, sort_keys=False))
    found = {}
    for kind, args in commands(str(scenario)).items():
        old = complete(args, base / f"old-{kind}", OLD_SEED)
        new = complete(args, base / f"new-{kind}", NEW_SEED)
        found[kind] = (args, base / f"old-{kind}", old, sorted(new["files"]), new["run_id"] == old["run_id"])
    return found


def trials(runs) -> list[tuple[str, str, float | None]]:
    """At least 30 kills: every file of every command at least once (before or after its rename, drawn),
    each publishing step of every command, and random-time kills."""
    rng = np.random.default_rng(20261206)
    chosen = []
    for kind, (_, _, _, names, _) in runs.items():
        for name in [*names, MANIFEST_FILE]:
            chosen.append((kind, name + (".tmp" if rng.random() < 0.5 else ""), None))
        chosen += [(kind, point, None) for point in PUBLISH_POINTS]
        chosen += [(kind, "time", float(rng.uniform(0.0, 1.5))) for _ in range(2)]
    return [chosen[i] for i in rng.permutation(len(chosen))]


def test_sigkill_anywhere_leaves_the_previous_run_or_the_new_one(runs, tmp_path):
    plan = trials(runs)
    assert len(plan) >= 30
    outcomes = {"previous": 0, "new": 0}
    for i, (kind, point, delay) in enumerate(plan):
        args, old_dir, old, new_names, same_content = runs[kind]
        out = tmp_path / f"t{i:02d}" / "out"
        out.parent.mkdir()
        shutil.copytree(old_dir, out)
        argv = cli(args, out, NEW_SEED)
        killed = kill_after(argv, out, delay) if point == "time" else kill_at_point(argv, point)
        assert killed or point == "time", f"{kind} never reached {point}"

        where = f"trial {i}: {kind} killed at {point} {delay or ''}"
        manifest = verify_run(out)  # every listed file present and unchanged, nothing else in the folder
        assert not [p for p in out.iterdir() if p.name.endswith(".tmp")], where
        if manifest == old:
            outcomes["previous"] += 1
            assert seed_of(out) in (OLD_SEED, None), where
        else:
            outcomes["new"] += 1
            assert sorted(manifest["files"]) == new_names, where
            assert seed_of(out) in (NEW_SEED, None), where
        if killed and point != "time" and not same_content:  # the new run is visible exactly from the swap on
            assert (manifest != old) == (point in ("publish:swapped", "publish:published")), where

        with RunPublisher(out):  # the next writer: cleans the staging folder the killed one left
            pass
        assert sorted(p.name for p in out.parent.iterdir()) == ["out"], where
        assert read_manifest(out) == manifest, where
    assert outcomes["previous"] and outcomes["new"]


@pytest.mark.parametrize("kind", ["compare", "migrate"])
def test_the_next_normal_run_after_a_kill_publishes_cleanly(runs, tmp_path, kind):
    args, old_dir, old, new_names, _ = runs[kind]
    out = tmp_path / "out"
    shutil.copytree(old_dir, out)
    assert kill_at_point(cli(args, out, NEW_SEED), new_names[-1])  # the staging folder holds files now
    assert staging_of(out) and verify_run(out) == old
    manifest = complete(args, out, NEW_SEED)
    assert sorted(manifest["files"]) == new_names and manifest != old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
