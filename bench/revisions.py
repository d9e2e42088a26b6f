"""Time benchmarks of two revisions side by side, in one run, rounds interleaved (a shared machine's load
then weighs on both alike), and print the medians and their ratio.

    python bench/revisions.py OLD_REV NEW_REV -k "1m_events_kernel or scale_limits_kernel" --rounds 3

Each revision is checked out with ``git worktree add --detach`` under a temporary folder and runs its own
``bench/test_bench_engine.py`` (or ``--file``) with its own warm kernel cache (a first, untimed pass
compiles). Timer: process CPU time. The JSON of every round is kept under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _checkout(rev: str, where: Path) -> Path:
    path = where / rev.replace("/", "_")
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(path), rev], check=True)
    return path


def _run(tree: Path, cache: Path, bench: str, select: str, json_out: Path | None) -> None:
    cmd = [sys.executable, "-m", "pytest", bench, "-q", "-p", "no:cacheprovider", "-k", select,
           "--benchmark-timer=time.process_time"]
    cmd += [f"--benchmark-json={json_out}"] if json_out else ["--benchmark-disable"]
    env = {**os.environ, "PYTHONPATH": str(tree), "NUMBA_CACHE_DIR": str(cache)}
    subprocess.run(cmd, cwd=tree, env=env, check=True, stdout=subprocess.DEVNULL)


def _medians(files: list[Path]) -> dict[str, float]:
    per_test: dict[str, list[float]] = {}
    for f in files:
        for b in json.loads(f.read_text())["benchmarks"]:
            per_test.setdefault(b["name"], []).append(b["stats"]["median"])
    return {name: statistics.median(v) for name, v in per_test.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("-k", dest="select", required=True, help="pytest -k expression")
    ap.add_argument("--file", default="bench/test_bench_engine.py")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path(tempfile.mkdtemp(prefix="revisions-")))
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="revisions-trees-"))
    trees = {label: _checkout(rev, work) for label, rev in (("old", a.old), ("new", a.new))}
    caches = {label: work / f"cache-{label}" for label in trees}
    files: dict[str, list[Path]] = {"old": [], "new": []}
    try:
        for label, tree in trees.items():  # compile, untimed
            _run(tree, caches[label], a.file, a.select, None)
        for r in range(a.rounds):
            for label, tree in trees.items():
                out = a.out / f"{label}-{r}.json"
                _run(tree, caches[label], a.file, a.select, out)
                files[label].append(out)
    finally:
        for tree in trees.values():
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)
    old, new = _medians(files["old"]), _medians(files["new"])
    print(f"| benchmark | {a.old} (median of {a.rounds} runs' medians, s) | {a.new} | new / old |")
    print("|---|---:|---:|---:|")
    for name in sorted(old.keys() & new.keys()):
        print(f"| `{name}` | {old[name]:.4f} | {new[name]:.4f} | {new[name] / old[name]:.3f} |")
    print(f"\nJSON: {a.out}")


if __name__ == "__main__":
    main()
