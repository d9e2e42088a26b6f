"""Turn a pytest-benchmark JSON file into a Markdown table of ns per op and speed-ups.

Usage::

    python bench/summarize.py RESULTS.json [--out results/FILE.md]

One row per benchmark: group, benchmark name, impl, ops per round, ns per op
(``stats.median / extra_info.ops * 1e9``) and, for ``kernel`` rows, the speed-up
over the ``python-baseline`` row of the same group whose parameters are the same
apart from ``impl``. Then the smallest and largest speed-up per group, the
machine, the commit and the command line the benchmarks recorded
(``extra_info.command``). Without ``--out`` the Markdown goes to stdout; with
it, the file is replaced atomically.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ipam_core.atomic import atomic_write_text

KERNEL = "kernel"
BASELINE = "python-baseline"


def _params_key(bench: dict) -> str:
    """Parameters of a benchmark without ``impl``, as a comparable string."""
    params = dict(bench.get("params") or {})
    params.pop("impl", None)
    return json.dumps(params, sort_keys=True)


def ns_per_op(bench: dict) -> float | None:
    """Median time of one round divided by the ops the round did, in ns."""
    ops = (bench.get("extra_info") or {}).get("ops")
    median = (bench.get("stats") or {}).get("median")
    if not ops or median is None:
        return None
    return median / ops * 1e9


def rows(data: dict) -> list[dict]:
    """Table rows, grouped by group and parameters in the order the run met them."""
    benches = data.get("benchmarks", [])
    group_order: dict[str, int] = {}
    param_order: dict[tuple[str, str], int] = {}
    for b in benches:
        group_order.setdefault(b.get("group") or "", len(group_order))
        param_order.setdefault((b.get("group") or "", _params_key(b)), len(param_order))

    baseline_ns = {
        (b.get("group") or "", _params_key(b)): ns_per_op(b)
        for b in benches
        if (b.get("extra_info") or {}).get("impl") == BASELINE
    }
    out = []
    for b in benches:
        group, key = b.get("group") or "", _params_key(b)
        impl = (b.get("extra_info") or {}).get("impl", "")
        ns = ns_per_op(b)
        base = baseline_ns.get((group, key))
        speedup = base / ns if impl == KERNEL and base and ns else None
        out.append(
            {
                "group": group,
                "name": b.get("name", ""),
                "impl": impl,
                "ops": (b.get("extra_info") or {}).get("ops"),
                "ns": ns,
                "speedup": speedup,
                "_order": (group_order[group], param_order[(group, key)], impl != KERNEL, impl),
            }
        )
    out.sort(key=lambda r: r["_order"])
    return out


def _fmt_ns(ns: float | None) -> str:
    if ns is None:
        return "n/a"
    return f"{ns:,.0f}" if ns >= 100 else f"{ns:.2f}"


def _command(data: dict) -> str:
    if data.get("command"):
        return str(data["command"])
    for b in data.get("benchmarks", []):
        cmd = (b.get("extra_info") or {}).get("command")
        if cmd:
            return str(cmd)
    return "not recorded"


def _machine(data: dict) -> list[str]:
    m = data.get("machine_info") or {}
    cpu = m.get("cpu") or {}
    lines = [
        f"- CPU: {cpu.get('brand_raw', m.get('processor') or '?')}, {cpu.get('count', '?')} logical cores"
        f" at {cpu.get('hz_actual_friendly', '?')} ({m.get('machine', '?')})",
        f"- System: {m.get('system', '?')} {m.get('release', '')} on node `{m.get('node', '?')}`",
        f"- Python: {m.get('python_implementation', '')} {m.get('python_version', '?')}",
    ]
    commit = data.get("commit_info") or {}
    if commit.get("id"):
        dirty = " (dirty)" if commit.get("dirty") else ""
        lines.append(f"- Commit: `{commit['id'][:12]}`{dirty} on {commit.get('branch', '?')}")
    lines.append(f"- Run: {data.get('datetime', '?')}, pytest-benchmark {data.get('version', '?')}")
    return lines


def render(data: dict, source: str) -> str:
    """The Markdown report for one pytest-benchmark JSON document."""
    table = rows(data)
    lines = [
        f"# Benchmark summary: `{source}`",
        "",
        "ns/op = median round time / ops per round. Speed-up = python-baseline ns/op / kernel ns/op",
        "for the same group and parameters.",
        "",
        "| group | benchmark | impl | ops/round | ns/op | speed-up |",
        "|---|---|---|---:|---:|---:|",
    ]
    for r in table:
        speed = f"{r['speedup']:,.0f}x" if r["speedup"] is not None else ""
        ops = f"{r['ops']:,}" if isinstance(r["ops"], int) else str(r["ops"] or "")
        lines.append(f"| {r['group']} | `{r['name']}` | {r['impl']} | {ops} | {_fmt_ns(r['ns'])} | {speed} |")

    per_group: dict[str, list[float]] = {}
    for r in table:
        if r["speedup"] is not None:
            per_group.setdefault(r["group"], []).append(r["speedup"])
    if per_group:
        lines += ["", "## Speed-up per group", "", "| group | min | max |", "|---|---:|---:|"]
        for group, values in per_group.items():
            lines.append(f"| {group} | {min(values):,.0f}x | {max(values):,.0f}x |")

    lines += ["", "## Machine", "", *_machine(data), "", "## Command", "", "```", _command(data), "```", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="pytest-benchmark JSON file (--benchmark-json)")
    parser.add_argument("--out", type=Path, help="Markdown file to write (default: stdout)")
    args = parser.parse_args(argv)
    try:
        data = json.loads(args.results.read_text())
    except (OSError, ValueError) as exc:
        print(f"error: cannot read {args.results}: {exc}", file=sys.stderr)
        return 2
    text = render(data, args.results.name)
    if args.out is None:
        sys.stdout.write(text)
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
