"""Two engine mends: the cloud network is resolved once per run, and the start from a state names no mode.

* ``run.py`` sizes a cloud run's scheduler keys from the mode's ``max_pods`` (the largest node group's)
  and leaves the network to the cloud family's ``prepare``: ``cloud_net`` runs once per Simulation.
* ``engine/initial.py`` asks the state's family, through the ``agent_can_start`` and ``pod_changed``
  hooks, when a restored node's agent starts and what follows; it tests no ``POLICY_*`` itself.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from ipam_core.engine import hooks  # noqa: F401
from ipam_core.modes import cloud_hooks, multi_pool, node_cidr
from ipam_core.pipeline import build_workload
from ipam_core.pipeline import run as run_module
from ipam_core.pipeline.run import Simulation
from ipam_core.modes import eni
from ipam_core.engine import cloud_net as cloud_net_module
from ipam_core.scenario import load_scenario

ROOT = Path(__file__).resolve().parent.parent
MIXED = ROOT / "scenarios" / "questions" / "mixed-instances-warm.yaml"


def test_a_cloud_simulation_resolves_its_network_once(monkeypatch):
    scenario = load_scenario(MIXED)
    calls = []

    def counting(*args, **kwargs):
        calls.append(args[0].MODE.name)
        return cloud_net_module.cloud_net(*args, **kwargs)

    for module in (run_module, cloud_hooks):
        if hasattr(module, "cloud_net"):
            monkeypatch.setattr(module, "cloud_net", counting)
    sim = Simulation(scenario, build_workload(scenario), "eni")
    assert calls == ["eni"]
    # the tables and scheduler keys are sized for the largest instance type of the node groups
    net = cloud_net_module.cloud_net(eni, scenario)
    assert sim.config.max_pods == net.merged().max_pods == eni.max_pods(scenario)
    assert len({c.max_pods for c in net.configs}) > 1


def _imports_and_names(path: Path) -> tuple[set[str], set[str]]:
    tree = ast.parse(path.read_text())
    modules = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    names |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) for alias in node.names}
    return modules, names


def test_the_start_from_a_state_names_no_mode():
    modules, names = _imports_and_names(ROOT / "ipam_core" / "engine" / "initial.py")
    assert not {m for m in modules if m.startswith("ipam_core.modes")}
    assert not {n for n in names if n.startswith("POLICY_")}


@pytest.mark.parametrize("family, rule", [
    (multi_pool.MultiPoolState, multi_pool._pools_ready),  # waitForAllPools
    (node_cidr.NodeCidrState, node_cidr._holds_every_family),
])
def test_each_pool_family_says_when_a_restored_agent_starts(family, rule):
    assert hooks._RULES[family]["agent_can_start"] is rule
    assert "agent_can_start" in hooks.OPTIONAL  # other families' agents start by their own rules
