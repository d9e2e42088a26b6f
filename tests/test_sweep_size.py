"""ipam-bench size: bisection over ordered values finds what a full sweep finds, running fewer values."""

from __future__ import annotations

import csv

import pytest
import yaml
from typer.testing import CliRunner

from ipam_core.cli import app
from ipam_core.errors import ConfigError
from ipam_core.sweep import load_spec, read_sweep, run_sweep
from ipam_core.sweep.size import load_size_spec, parse_target, run_size
from sweep_specs import TINY

MASK = "ipam.operator.clusterPoolIPv4MaskSize"
VALUES = [29, 28, 27, 26, 25, 24]


def _size_spec(tmp_path, target="pods_failed == 0 in 90% of replicates", values=VALUES, replicates=3):
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(TINY, sort_keys=False))
    doc = {"name": "sz", "base": "base.yaml", "replicates": replicates, "seed": 1,
           "size": {"target": target, "search": {"cluster-pool": {"axis": MASK, "values": values}}}}
    path = tmp_path / "size.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_targets_parse_and_refuse_what_is_not_a_metric():
    t = parse_target("pods_failed == 0 in 95% of replicates")
    assert (t.metric, t.op, t.threshold, t.share) == ("pods_failed", "==", 0.0, 0.95)
    t = parse_target("idle_pct ≤ 20")
    assert (t.metric, t.op, t.threshold, t.share) == ("idle_pct", "<=", 20.0, None)
    with pytest.raises(ConfigError, match="'pods_fail' is not a sweep metric"):
        parse_target("pods_fail == 0")
    with pytest.raises(ConfigError, match="expected 'METRIC OP NUMBER'"):
        parse_target("no failures please")


def test_bisection_finds_the_first_value_a_full_sweep_finds_and_runs_fewer(tmp_path):
    spec, searches, target_text = load_size_spec(_size_spec(tmp_path))
    target = parse_target(target_text)
    result = run_size(spec, searches, target, tmp_path / "size", workers=2)
    # brute force: the full sweep of every value, same replicates and seeds
    doc = {"name": "sz", "base": "base.yaml", "replicates": 3, "seed": 1, "modes": ["cluster-pool"],
           "axes": {MASK: VALUES}}
    (tmp_path / "full.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    full = load_spec(tmp_path / "full.yaml")
    table, _ = read_sweep(run_sweep(full, tmp_path / "full", workers=2).table_path)
    meets = {}
    for mask in VALUES:
        fails = [r["pods_failed"] for r in table.to_pylist() if r[MASK] == mask]
        meets[mask] = sum(f == 0 for f in fails) >= 0.9 * len(fails)
    expected = next(v for v in VALUES if meets[v])
    assert result.answers[0].value == expected
    assert expected not in (VALUES[0], VALUES[-1])  # the test means something: the answer is inside the list
    tried = [t.value for t in result.trials]
    assert len(tried) < len(VALUES) and expected in tried
    before = VALUES[VALUES.index(expected) - 1]
    assert before in tried and not next(t for t in result.trials if t.value == before).meets


def test_no_value_meets_gives_no_answer(tmp_path):
    spec, searches, _ = load_size_spec(_size_spec(tmp_path, values=[29, 28]))
    result = run_size(spec, searches, parse_target("pods_failed == 0"), tmp_path / "size", workers=1)
    assert result.answers[0].value is None and [t.value for t in result.trials] == [28]


def test_cli_size_prints_answer_and_evidence_and_writes_csv(tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["size", str(_size_spec(tmp_path)), "--out", str(out), "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert "cluster-pool: ipam.operator.clusterPoolIPv4MaskSize = 26" in result.stdout
    rows = list(csv.DictReader((out / "size.csv").open()))
    assert [r["value"] for r in rows if r["answer"] == "True"] == ["26"]
    assert (out / "sweep.parquet").is_file()
    idle = CliRunner().invoke(app, ["size", str(_size_spec(tmp_path)), "--out", str(tmp_path / "o2"),
                                    "--target", "idle_pct >= 500"])
    assert idle.exit_code == 0 and "no value of" in idle.stdout


def test_cli_size_bad_target_is_one_line_exit_2(tmp_path):
    result = CliRunner().invoke(app, ["size", str(_size_spec(tmp_path)), "--out", str(tmp_path / "o"),
                                      "--target", "pods_fail == 0"])
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "'pods_fail' is not a sweep metric" in result.stderr and not (tmp_path / "o").exists()
