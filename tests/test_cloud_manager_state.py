"""A cloud run compiles its own pool manager's pass only: one State class per manager (issue #9).

The cloud family's hooks are shared; the pass over a node's pool and its quiet predicate are the
manager's (modes/cloud_manager.py), resolved from the state's class when the loop compiles. Which
functions compile is seen on the dispatchers' signatures, or for a step compiled as its body inlined
by LLVM on its stub's overload, in a process with an empty kernel cache (a warm cache loads the loop
whole and never asks its callees).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from engine_helpers import scenario

from ipam_core.engine import tables as T
from ipam_core.engine.cloud_config import CLOUD_CILIUM, CLOUD_VPC_CNI
from ipam_core.modes import aws_vpc_cni, azure, cloud_hooks, crd
from ipam_core.modes.cloud_pool import cloud_agent_changed
from ipam_core.pipeline import build_workload
from ipam_core.pipeline.run import Simulation
from ipam_core.scenario import scenario_for_mode

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# (mode, scenario patch) -> the class its state must have
CASES = [
    ("eni", {}, cloud_hooks.CiliumOperatorState),
    ("azure", {}, cloud_hooks.CiliumOperatorState),  # Cilium's Azure IPAM: the same operator pass
    ("crd", {}, cloud_hooks.CiliumOperatorState),  # the watermark writer follows Cilium's operator
    ("aws-vpc-cni", {}, aws_vpc_cni.IpamdState),
    ("azure", {"cloud": {"aks": {"podIPAllocationMode": "DynamicIndividual"}}}, azure.CnsState),
    ("azure", {"cloud": {"aks": {"podIPAllocationMode": "StaticBlock"}}}, azure.AksStaticState),
    ("crd", {"cloud": {"crd": {"writer": "static", "poolPerNode": 8}}}, crd.CrdStaticState),
]


@pytest.mark.parametrize(("mode", "patch", "expected"), CASES, ids=lambda c: c if isinstance(c, str) else None)
def test_each_pool_manager_runs_in_a_state_class_of_its_own(tmp_path, mode, patch, expected):
    sc = scenario(tmp_path, {"cluster": {"instanceType": "m5.large"}, "cloud": {"subnets": ["10.1.0.0/20"]}, **patch})
    state = Simulation(scenario_for_mode(sc, mode), build_workload(sc), mode).state
    assert type(state) is expected
    assert type(state) is not cloud_hooks.CloudState  # the class build_state makes is handed on by prepare


def test_the_managers_classes_are_distinct():
    classes = {expected for _, _, expected in CASES}
    assert len(classes) == 5 and all(c._fields == cloud_hooks.CloudState._fields for c in classes)


def test_a_kind_or_class_gets_one_manager_and_a_policy_one_starting_class():
    from collections import namedtuple

    from ipam_core.engine import hooks
    from ipam_core.engine.cloud_config import CLOUD_VPC_CNI
    from ipam_core.engine.layout import POLICY_CLOUD

    Other = namedtuple("Other", cloud_hooks.CloudState._fields)
    step = cloud_hooks.written_once_quiet_until
    with pytest.raises(ValueError, match="has a pool manager already"):
        cloud_hooks.register_manager(Other, CLOUD_VPC_CNI, step, step)
    with pytest.raises(ValueError, match="registered already"):
        hooks.register_family(Other, POLICY_CLOUD, cloud_hooks.prepare)
    assert hooks.state_class(POLICY_CLOUD) is cloud_hooks.CloudState


# (mode, scenario patch) -> whether its manager reads the agent's CiliumNode status
STATUS_READERS = [
    ("eni", {}, True),  # Cilium's operator
    ("aws-vpc-cni", {}, False),  # ipamd sees its own node
    ("azure", {"cloud": {"aks": {"podIPAllocationMode": "DynamicIndividual"}}}, False),  # CNS too
    ("crd", {"cloud": {"crd": {"writer": "static", "poolPerNode": 8}}}, False),
]


@pytest.mark.parametrize(("mode", "patch", "reads"), STATUS_READERS, ids=lambda c: c if isinstance(c, str) else None)
def test_whether_the_agent_writes_its_status_follows_the_managers_class_not_the_kind(tmp_path, mode, patch, reads):
    # a trait of the manager resolved when the loop compiles: with the run's kind in the tables
    # swapped for another manager's, the state's class still decides
    sc = scenario(tmp_path, {"cluster": {"instanceType": "m5.large"}, "cloud": {"subnets": ["10.1.0.0/20"]}, **patch})
    state = Simulation(scenario_for_mode(sc, mode), build_workload(sc), mode).state
    assert (state.core.icfg[T.I_CL_KIND] == CLOUD_CILIUM) == reads  # as built, the kind agrees
    state.core.icfg[T.I_CL_KIND] = CLOUD_VPC_CNI if reads else CLOUD_CILIUM
    state.cl_node[0, T.CN_SYNC_ARMED] = 0
    write_at = cloud_agent_changed(state, 0, 5.0)
    assert (write_at >= 5.0) == reads and (write_at == -1.0) == (not reads)
    assert state.cl_node[0, T.CN_SYNC_ARMED] == int(reads)


PROBE = r"""
import sys
from numba.core.registry import cpu_target
from ipam_core.modes import aws_vpc_cni, azure, cloud_hooks, cloud_manager, cloud_pool
from ipam_core.pipeline import simulate
from ipam_core.scenario import load_scenario

PASSES = {"cilium": cloud_pool._cilium_pass, "cilium_quiet": cloud_pool._cilium_quiet_until,
          "ipamd": aws_vpc_cni.ipamd_pass, "ipamd_quiet": aws_vpc_cni.ipamd_quiet_until,
          "cns": azure.cns_pass, "cns_quiet": azure.cns_quiet_until, "static": cloud_pool._static_pass}


def inlined():
    # a registered step that creates no array compiles as its Python body, inlined by LLVM
    # (hooks.rule_body): its own dispatcher never compiles, the stub's overload does
    found = set()
    for stub in (cloud_manager.manager_pass, cloud_manager.manager_quiet_until):
        for template in cpu_target.typing_context.resolve_value_type(stub).templates:
            found |= {disp.py_func for disp, _ in template._impl_cache.values() if disp is not None}
    return found


sc = load_scenario(sys.argv[1])
for mode in sys.argv[2:]:
    simulate(sc, [mode])
    bodies = inlined()
    print(mode, " ".join(f"{name}={len(f.signatures) + (f.py_func in bodies)}" for name, f in PASSES.items()))
"""


@pytest.mark.slow
def test_a_cloud_run_compiles_its_own_managers_pass_alone(tmp_path):
    # azure (Cilium's Azure IPAM) first, then aws-vpc-cni, in one process with an empty kernel cache
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", PROBE, str(ROOT / "scenarios" / "cloud-modes.yaml"),
                           "azure", "aws-vpc-cni"], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    counts = {line.split()[0]: dict(kv.split("=") for kv in line.split()[1:]) for line in done.stdout.splitlines()}
    after_azure, after_vpc = counts["azure"], counts["aws-vpc-cni"]
    assert after_azure["cilium"] != "0" and after_azure["cilium_quiet"] != "0"
    assert {k: after_azure[k] for k in ("ipamd", "ipamd_quiet", "cns", "cns_quiet", "static")} == dict.fromkeys(
        ("ipamd", "ipamd_quiet", "cns", "cns_quiet", "static"), "0")
    assert after_vpc["ipamd"] != "0" and after_vpc["ipamd_quiet"] != "0"
    assert (after_vpc["cns"], after_vpc["cns_quiet"], after_vpc["static"]) == ("0", "0", "0")
    assert after_vpc["cilium"] == after_azure["cilium"]  # ipamd's class did not compile Cilium's pass again
