"""`ipam-bench migrate`: the timeline and Arrow files, --plan and its CSV, one-line errors with exit 2."""

from __future__ import annotations

import csv
from pathlib import Path

import polars as pl
import pytest
import yaml
from typer.testing import CliRunner

from ipam_core.cli import app
from ipam_core.migration.report import NODES_FILE, PODS_FILE, STEPS_FILE, SUMMARY_KEY

runner = CliRunner()
SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
SEED_LAB = str(SCENARIOS / "seed-lab.yaml")


def test_migrate_prints_the_timeline_and_writes_three_arrow_files(tmp_path):
    out = tmp_path / "m"
    result = runner.invoke(app, ["migrate", SEED_LAB, "--out", str(out)])
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "seed-lab (kubernetes -> cluster-pool)" in text
    assert "allocator not configured for the requested CIDR 10.244.0.0/24" in text
    assert "k8s-w1: operator allocated 172.20.0.0/24" in text and "k8s-ctr: operator allocated 172.20.1.0/24" in text
    assert "address conflicts       none" in text
    for name in (STEPS_FILE, NODES_FILE, PODS_FILE):
        assert (out / name).stat().st_size > 0 and f"wrote {out / name}" in text
    steps = pl.read_ipc(out / STEPS_FILE)
    assert steps["step"].to_list() == list(range(steps.height))
    nodes = pl.read_ipc(out / NODES_FILE)
    final = nodes.filter(pl.col("step") == steps.height - 1).sort("node")
    assert final["ciliumnode_pod_cidrs"].to_list() == [["172.20.1.0/24"], ["172.20.0.0/24"]]


def test_brief_timeline_is_shorter_and_keeps_node_tables(tmp_path):
    full = runner.invoke(app, ["migrate", SEED_LAB, "--out", str(tmp_path / "a")]).stdout
    brief = runner.invoke(app, ["migrate", SEED_LAB, "--brief", "--out", str(tmp_path / "b")]).stdout
    assert len(brief.splitlines()) < len(full.splitlines())
    assert "172.20.1.0/24" in brief and "operator allocated" not in brief


def test_plan_prints_the_comparison_and_writes_the_csv(tmp_path):
    out = tmp_path / "p"
    result = runner.invoke(app, ["migrate", SEED_LAB, "--plan", "--batch", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    for name in ("all-at-once", "node-by-node", "new-cluster", "as-written", "disrupted pod-s", "addresses needed"):
        assert name in result.stdout
    rows = list(csv.DictReader((out / "migration_plan.csv").open()))
    assert [r["strategy"] for r in rows] == ["all-at-once", "node-by-node", "new-cluster", "as-written"]


def test_plan_on_a_generated_cluster(tmp_path):
    result = runner.invoke(app, ["migrate", SEED_LAB, "--plan", "--nodes", "12", "--pods-per-node", "10",
                                 "--batch", "3", "--out", str(tmp_path / "g")])
    assert result.exit_code == 0, result.output
    assert "12 node(s), 122 pod(s), node-by-node batch 3" in result.stdout


def bad(tmp_path, patch):
    doc = yaml.safe_load(Path(SEED_LAB).read_text())
    patch(doc)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    return str(path)


def replace_run(index, old, new):
    def patch(doc):
        doc["steps"][index]["run"] = doc["steps"][index]["run"].replace(old, new)
    return patch


BAD = [
    ("unknown node", replace_run(13, "k8s-w1", "k8s-w2"), "no node 'k8s-w2' in the cluster"),
    ("unknown pod", replace_run(24, "curl-pod", "curl-pot"), "no pod default/curl-pot"),
    ("unknown deployment", replace_run(23, "deploy/webpod", "deploy/webapp"), "no Deployment default/webapp"),
    ("overlapping pool", replace_run(7, '{"172.20.0.0/16"}', '{"172.20.0.0/16","172.20.128.0/17"}'),
     "172.20.128.0/17 overlaps 172.20.0.0/16"),
    ("unknown helm value", replace_run(7, "ipv4NativeRoutingCIDR", "ipv4NativeRoutingCDIR"),
     "unknown Helm value 'ipv4NativeRoutingCDIR'"),
    ("unsupported command", replace_run(8, "rollout restart", "rollout undo"), "only 'rollout restart'"),
]


@pytest.mark.parametrize("label, patch, needle", BAD, ids=[b[0] for b in BAD])
def test_bad_steps_exit_2_with_one_line_and_write_nothing(tmp_path, label, patch, needle):
    out = tmp_path / "out"
    result = runner.invoke(app, ["migrate", bad(tmp_path, patch), "--out", str(out)])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ipam-bench: error: ") and needle in lines[0]
    assert "bad.yaml:" in lines[0] and "steps[" in lines[0]
    assert not out.exists()


def test_mask_change_on_a_running_cluster_pool_is_refused(tmp_path):
    def patch(doc):
        doc["steps"].append({"at": "50m", "run": "helm upgrade cilium cilium/cilium --reuse-values "
                                                 "--set ipam.operator.clusterPoolIPv4MaskSize=26"})
    result = runner.invoke(app, ["migrate", bad(tmp_path, patch), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "clusterPoolIPv4MaskSize: 24 -> 26" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_plan_options_without_plan_are_refused(tmp_path):
    result = runner.invoke(app, ["migrate", SEED_LAB, "--nodes", "5", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "go with --plan" in result.stderr


def test_summary_travels_in_the_arrow_metadata(tmp_path):
    out = tmp_path / "m"
    runner.invoke(app, ["migrate", SEED_LAB, "--out", str(out)])
    import json

    import pyarrow.ipc as ipc

    schema = ipc.open_file(out / STEPS_FILE).schema
    summary = json.loads(schema.metadata[SUMMARY_KEY.encode()])
    assert summary["conflicts"] == 0 and summary["conflict_list"] == []
    assert summary["end_mode"] == "cluster-pool"


def _readme_block_after(text: str, command: str) -> str:
    """The first ``` block after the line that runs ``command`` in README's Migration section."""
    section = text.split("## Migration", 1)[1].split("\n## ", 1)[0]
    lines = section.split(command, 1)[1].splitlines()
    fences = [i for i, line in enumerate(lines) if line == "```"]
    # fences[0] closes the command's block; the output is between the next two
    return "\n".join(lines[fences[1] + 1:fences[2]]) + "\n"


def _without_wrote(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.startswith("wrote ")) + "\n"


@pytest.mark.parametrize("args", [[], ["--plan"]], ids=["replay", "plan"])
def test_readme_shows_the_real_output(tmp_path, args):
    readme = (SCENARIOS.parent / "README.md").read_text()
    command = "ipam-bench migrate scenarios/seed-lab.yaml" + (" --plan" if args else "     #")
    shown = _readme_block_after(readme, command)
    result = runner.invoke(app, ["migrate", SEED_LAB, *args, "--out", str(tmp_path / "o")])
    assert result.exit_code == 0
    assert _without_wrote(shown) == _without_wrote(result.stdout)


@pytest.mark.parametrize("name", ["cluster-pool-to-multi-pool", "kubernetes-to-multi-pool", "cluster-pool-append"])
def test_every_shipped_path_replays_and_plans_from_the_cli(tmp_path, name):
    path = str(SCENARIOS / f"{name}.yaml")
    replay = runner.invoke(app, ["migrate", path, "--out", str(tmp_path / "r")])
    assert replay.exit_code == 0, replay.output
    assert "address conflicts       none" in replay.stdout
    assert pl.read_ipc(tmp_path / "r" / STEPS_FILE).height > 0
    plan = runner.invoke(app, ["migrate", path, "--plan", "--out", str(tmp_path / "p")])
    assert plan.exit_code == 0, plan.output
    assert (tmp_path / "p" / "migration_plan.csv").stat().st_size > 0



def test_replay_reports_progress_through_the_simulated_time():
    from ipam_core.migration import run_migration
    from ipam_core.scenario import load_scenario

    seen = []
    result = run_migration(load_scenario(SEED_LAB), progress=seen.append)
    assert len(seen) >= len(result.steps)  # at least once per step
    assert seen == sorted(seen) and 0.0 <= seen[0] and seen[-1] <= 1.0


def test_plan_reports_progress_per_strategy():
    from ipam_core.migration.plan import STRATEGIES, plan_migration
    from ipam_core.scenario import load_scenario

    seen: dict[str, list[float]] = {}
    plan = plan_migration(load_scenario(SEED_LAB), progress=lambda name, f: seen.setdefault(name, []).append(f))
    assert list(seen) == [r.strategy for r in plan.rows] == list(STRATEGIES)
    assert all(values == sorted(values) and values[-1] <= 1.0 for values in seen.values())


def test_migrate_publishes_its_files_with_a_manifest(tmp_path):
    from ipam_core.rundir import MANIFEST_FILE, verify_run

    out = tmp_path / "m"
    result = runner.invoke(app, ["migrate", SEED_LAB, "--out", str(out)])
    assert result.exit_code == 0 and f"wrote {out / MANIFEST_FILE}" in result.stdout
    assert sorted(verify_run(out)["files"]) == sorted([NODES_FILE, PODS_FILE, STEPS_FILE, "run.json"])
    result = runner.invoke(app, ["migrate", SEED_LAB, "--plan", "--out", str(out)])  # the folder is now the plan
    assert result.exit_code == 0
    assert sorted(verify_run(out)["files"]) == ["migration_plan.csv"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]
@pytest.mark.parametrize("kwargs, match", [
    ({"nodes": 0}, r"--nodes 0: expected an integer from 1 to 5,000"),
    ({"nodes": 10_000_000}, r"--nodes 10000000: expected an integer from 1 to 5,000 \(Kubernetes' 5,000-node"),
    ({"pods_per_node": 111}, r"--pods-per-node 111: expected an integer from 1 to 110 \(.*maxPods"),
    ({"batch": 0}, r"--batch 0: expected an integer from 1 to 5,000"),
    ({"seed": -1}, r"--seed -1: expected an integer from 0 to"),
])
def test_plan_bounds_are_checked_before_planning(kwargs, match):
    from ipam_core.errors import ConfigError
    from ipam_core.migration.plan import plan_migration
    from ipam_core.scenario import load_scenario

    with pytest.raises(ConfigError, match=match):
        plan_migration(load_scenario(SEED_LAB), **kwargs)


def test_kubeadm_join_with_unsafe_skip_ca_verification_adds_the_node(tmp_path):
    doc = yaml.safe_load(Path(SEED_LAB).read_text())
    joins = [i for i, s in enumerate(doc["steps"]) if s.get("node") == {"add": "k8s-w1"}]
    assert joins, "seed-lab adds k8s-w1 with a node: step"
    doc["steps"][joins[0]] = {"at": doc["steps"][joins[0]]["at"],
                              "run": "kubeadm join 192.168.10.100:6443 --token 123456.1234567890123456 "
                                     "--discovery-token-unsafe-skip-ca-verification --node-name k8s-w1"}
    path = tmp_path / "joined.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    result = runner.invoke(app, ["migrate", str(path), "--out", str(tmp_path / "m")])
    assert result.exit_code == 0, result.output
    assert "k8s-w1: operator allocated 172.20.0.0/24" in result.stdout
