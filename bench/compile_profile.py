"""Where a cold start's compile time goes: per compiled function, type inference vs lowering/LLVM.

Runs, in one process with an empty kernel cache, the default ``ipam-bench compare`` (no plots) and then
``ipam-bench run scenarios/cloud-modes.yaml --mode eni``, and listens to Numba's compile events
(``numba.core.event``). Seconds are the process's CPU time (compiling is single-threaded), so other jobs on the machine do
not inflate them. Each compile of a function for one signature is charged its own time only: the
time spent compiling its callees (which Numba does while typing the caller) is charged to them. Per
function it prints the signatures compiled (specialisations), seconds in type inference
(``nopython_type_inference``), in lowering plus LLVM (``native_lowering``, which emits the LLVM IR,
optimises it and makes machine code), and in everything else (the other passes, cache writes).

Usage (from the repository root)::

    NUMBA_CACHE_DIR=$(mktemp -d) PYTHONPATH=$PWD python bench/compile_profile.py [--top 40] [--csv FILE]

The figures are recorded in results/first-run.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import defaultdict

from numba.core import event

_TYPING = "nopython_type_inference"
_LOWERING = "native_lowering"


class _CompileProfile(event.Listener):
    """Exclusive compile seconds per (function, pass), and the signatures each function compiled."""

    def __init__(self):
        self.stack = []  # open compiles: [name, start, child seconds, open pass name, pass start, pass child s]
        self.seconds = defaultdict(lambda: defaultdict(float))  # name -> part -> exclusive seconds
        self.signatures = defaultdict(list)
        self.phase = "?"

    def on_start(self, ev):
        now = time.process_time()
        if ev.kind == "numba:compile":
            disp = ev.data["dispatcher"]
            name = f"{disp.py_func.__module__}.{disp.py_func.__qualname__}"
            self.signatures[name].append((self.phase, str(ev.data["args"])))
            self.stack.append([name, now, 0.0, None, 0.0, 0.0])
        elif ev.kind == "numba:run_pass" and self.stack:
            frame = self.stack[-1]
            if frame[3] is None:
                frame[3], frame[4], frame[5] = ev.data["name"].split(" [")[0], now, 0.0

    def on_end(self, ev):
        now = time.process_time()
        if ev.kind == "numba:compile" and self.stack:
            name, start, child, _, _, _ = self.stack.pop()
            total = now - start
            own = total - child
            parts = self.seconds[name]
            parts["total"] += own
            parts["other"] += own - parts.pop("_passes_this", 0.0)
            if self.stack:
                parent = self.stack[-1]
                parent[2] += total
                if parent[3] is not None:
                    parent[5] += total
        elif ev.kind == "numba:run_pass" and self.stack:
            frame = self.stack[-1]
            if frame[3] == ev.data["name"].split(" [")[0]:
                own = now - frame[4] - frame[5]
                key = "typing" if frame[3] == _TYPING else "lowering" if frame[3] == _LOWERING else None
                parts = self.seconds[frame[0]]
                if key is not None:
                    parts[key] += own
                    parts["_passes_this"] += own
                frame[3] = None


def _run(argv: list[str]) -> None:
    from ipam_core.cli import app

    try:
        app(argv, standalone_mode=False)
    except SystemExit as exc:  # typer exits 0 after a command in some versions
        if exc.code not in (0, None):
            raise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=40, help="functions to list (by exclusive seconds)")
    parser.add_argument("--csv", help="also write every function's row to this CSV file")
    parser.add_argument("--sigs", help="also write every compiled signature, per function, to this file")
    args = parser.parse_args()
    if not os.environ.get("NUMBA_CACHE_DIR"):
        sys.exit("set NUMBA_CACHE_DIR to an empty folder: the profile needs a cold cache")
    profile = _CompileProfile()
    out = tempfile.mkdtemp(prefix="compile-profile-")
    phases = [
        ("compare", ["compare", "--no-plot", "--out", f"{out}/compare"]),
        ("eni", ["run", "scenarios/cloud-modes.yaml", "--mode", "eni", "--out", f"{out}/eni"]),
    ]
    wall = {}
    with event.install_listener("numba:compile", profile), event.install_listener("numba:run_pass", profile):
        for phase, argv in phases:
            profile.phase = phase
            t0 = time.process_time()
            _run(argv)
            wall[phase] = time.process_time() - t0
    rows = []
    for name, parts in profile.seconds.items():
        sigs = profile.signatures[name]
        by_phase = {p: sum(1 for q, _ in sigs if q == p) for p, _ in phases}
        rows.append((parts["total"], parts["typing"], parts["lowering"], parts["other"], by_phase, name))
    rows.sort(reverse=True)
    total = sum(r[0] for r in rows)
    print(f"\nwall: " + ", ".join(f"{p} {s:.1f} s" for p, s in wall.items()))
    print(f"compiled: {len(rows)} functions, {sum(len(v) for v in profile.signatures.values())} signatures, "
          f"{total:.1f} s (typing {sum(r[1] for r in rows):.1f} s, lowering+LLVM {sum(r[2] for r in rows):.1f} s)")
    print(f"\n| function | sigs compare | sigs eni | total s | typing s | lowering+LLVM s | other s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for tot, typ, low, oth, by_phase, name in rows[: args.top]:
        short = name.replace("ipam_core.", "")
        print(f"| `{short}` | {by_phase['compare']} | {by_phase['eni']} | {tot:.2f} | {typ:.2f} | {low:.2f} | {oth:.2f} |")
    if args.csv:
        with open(args.csv, "w") as fh:
            fh.write("function,sigs_compare,sigs_eni,total_s,typing_s,lowering_s,other_s\n")
            for tot, typ, low, oth, by_phase, name in rows:
                fh.write(f"{name},{by_phase['compare']},{by_phase['eni']},{tot:.3f},{typ:.3f},{low:.3f},{oth:.3f}\n")


    if args.sigs:
        with open(args.sigs, "w") as fh:
            for name, sigs in sorted(profile.signatures.items()):
                for phase, sig in sigs:
                    fh.write(f"{name}\t{phase}\t{sig}\n")


if __name__ == "__main__":
    main()
