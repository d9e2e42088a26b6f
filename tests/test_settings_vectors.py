"""Integer settings are held as integers (issue #9): ``icfg`` (int64) beside ``cfg`` (float64).

Codes, counts and flags live in the State's ``icfg`` under the ``I_*`` indices of
:mod:`ipam_core.engine.tables`; seconds and rates stay in ``cfg`` under ``C_*``. The compiled
rules read each vector as it is, so no integer setting is cast back from a float.
"""

from __future__ import annotations

import ast
import dataclasses
import typing
from pathlib import Path

import numpy as np
import pytest
from engine_helpers import scenario

import ipam_core
from ipam_core.engine import tables as T
from ipam_core.engine.cloud_config import CloudConfig
from ipam_core.engine.cloud_net import cloud_net
from ipam_core.engine.state import build_state
from ipam_core.modes import get_mode
from ipam_core.modes.cloud_api import API_BUCKETS, CLIENT_BUCKET, MICRO
from ipam_core.modes.cloud_pool import cloud_settings
from ipam_core.pipeline import build_workload
from ipam_core.pipeline.run import Simulation, workload_facts
from ipam_core.scenario import load_scenario, scenario_for_mode

SOURCES = sorted(Path(ipam_core.__file__).parent.rglob("*.py"))
INTS = {name: getattr(T, name) for name in dir(T) if name.startswith("I_") and name != "I_NCOL"}
REALS = {name: getattr(T, name) for name in dir(T) if name.startswith("C_") and name != "C_NCOL"}
CALICO = Path(__file__).parents[1] / "scenarios" / "calico.yaml"
CASTS = {"int", "int64"}  # int(...), np.int64(...)


def _index_names(index):
    """The names an index expression mentions (``C_X``, ``T.I_FAMILY + family`` ...)."""
    return ({n.id for n in ast.walk(index) if isinstance(n, ast.Name)}
            | {n.attr for n in ast.walk(index) if isinstance(n, ast.Attribute)})


def _setting(node, vectors=("cfg", "icfg")):
    """The engine setting names (``C_*`` / ``I_*``) ``node`` reads when it is ``x.cfg[...]`` / ``x.icfg[...]``.

    An empty set for anything else (the calico family's ``tables.cfg[CFG_*]`` included).
    """
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) and node.value.attr in vectors:
        return {n for n in _index_names(node.slice) if n.startswith(("C_", "I_"))}
    return set()


def _problems(source: str, where: str) -> list[str]:
    """Where ``source`` reads a setting through the wrong vector, casts one, or compares a flag with a float."""
    problems = []
    for node in ast.walk(ast.parse(source)):
        at = f"{where}:{getattr(node, 'lineno', 0)}"
        if any(n in INTS for n in _setting(node, ("cfg",))):
            problems.append(f"{at}: an I_* setting read through cfg")
        if any(n in REALS for n in _setting(node, ("icfg",))):
            problems.append(f"{at}: a C_* setting read through icfg")
        if any(n not in INTS and n not in REALS for n in _setting(node)):
            problems.append(f"{at}: a setting engine/tables.py does not define")
        if isinstance(node, ast.Call) and node.args and _setting(node.args[0]):
            func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if func in CASTS:  # int(st.core.cfg[C_X]) / np.int64(...): an integer setting stored as a float
                problems.append(f"{at}: {func}() around a setting")
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(_setting(s, ("icfg",)) for s in sides) and any(
                    isinstance(s, ast.Constant) and isinstance(s.value, float) for s in sides):
                problems.append(f"{at}: an integer setting compared with a float")
    return sorted(problems, key=lambda p: int(p.split(":")[1]))


def test_each_vector_has_its_own_dense_indices():
    # I_FAMILY is followed by its IPv6 entry; every other setting takes one entry
    taken = sorted([*INTS.values(), T.I_FAMILY + 1])
    assert taken == list(range(T.I_NCOL))
    assert sorted(REALS.values()) == list(range(T.C_NCOL))


def test_no_integer_setting_is_read_through_cfg_and_none_is_cast():
    problems = []
    for path in SOURCES:
        problems += _problems(path.read_text(), str(path.relative_to(path.parents[1])))
    assert problems == []


def test_the_scan_reports_each_pattern():
    # what the engine did before icfg (guards against a scan that never matches)
    before = ("pool = np.int64(st.core.cfg[C_TIMEOUT])\n"
              "if st.core.cfg[I_FAMILY + family] == 0.0: pass\n"
              "cloud = int(st.core.cfg[T.C_RETRY]) == 1\n"
              "if st.core.icfg[I_HEALTH] != 0.0: pass\n"
              "x = st.core.icfg[C_RETRY]\n"
              "policy = np.int64(st.core.cfg[C_POLICY])\n")  # main before icfg: C_POLICY is gone
    assert [p.split(": ", 1)[1] for p in _problems(before, "x")] == [
        "int64() around a setting", "an I_* setting read through cfg", "int() around a setting",
        "an integer setting compared with a float", "a C_* setting read through icfg",
        "int64() around a setting", "a setting engine/tables.py does not define"]
    # the calico family's own vectors (CFG_*) are not the engine's settings
    assert _problems("limit = int(tables.cfg[CFG_MAX_BLOCKS])\n", "x") == []


@pytest.mark.parametrize("source, mode", [("default", "kubernetes"), ("default", "cluster-pool"),
                                          ("default", "multi-pool"), (str(CALICO), "calico")])
def test_a_built_state_holds_its_integer_settings_as_int64(source, mode):
    sc = scenario_for_mode(load_scenario(source), mode)
    w = build_workload(sc)
    sim = Simulation(sc, w, mode)
    st, layout, config = sim.state, sim.layout, sim.config
    assert st.core.icfg.dtype == np.int64 and st.core.icfg.shape == (T.I_NCOL,)
    assert st.core.cfg.dtype == np.float64 and st.core.cfg.shape == (T.C_NCOL,)
    assert st.core.icfg[T.I_POLICY] == layout.policy
    assert [st.core.icfg[T.I_FAMILY + f] for f in (0, 1)] == [int(f in layout.families) for f in (0, 1)]
    assert st.core.icfg[T.I_MAX_PODS] == config.max_pods and st.core.icfg[T.I_SCHEDULER] == config.scheduler
    assert st.core.icfg[T.I_HEALTH] == int(config.health_ip) and st.core.icfg[T.I_DEFAULT_POOL] == layout.default_pool
    assert st.core.cfg[T.C_RETRY] == config.pod_retry_s and st.core.cfg[T.C_TIMEOUT] == config.pod_timeout_s
    assert st.core.cfg[T.C_OPERATOR_DELAY] == config.operator_delay_s


def test_a_state_copied_from_the_template_takes_its_own_seed():
    sc = load_scenario("default")
    w = build_workload(sc)
    sim = Simulation(sc, w, "cluster-pool")
    b = workload_facts(w, sim.config.pod_retry_s)
    seed = 2**62 + 3  # beyond float64's integers: the old float vector held 2**62 + 4
    again = build_state(sim.layout, dataclasses.replace(sim.config, seed=seed), len(w.node_names), w.n_pods,
                        b.node_adds, b.max_live, b.stale_timers)
    assert again.core.icfg[T.I_SEED] == seed and sim.state.core.icfg[T.I_SEED] == sc.seed


def _distinct_cloud_config() -> CloudConfig:
    """A CloudConfig whose integer and real fields all differ (flags are 0 / 1 whatever they are)."""
    values = {}
    for k, field in enumerate(dataclasses.fields(CloudConfig)):
        kind = typing.get_type_hints(CloudConfig)[field.name]
        values[field.name] = True if kind is bool else (100 + k if kind is int else 0.25 + k)
    return CloudConfig(**values)


def test_cloud_settings_split_by_the_fields_types():
    cloud = _distinct_cloud_config()
    hints = typing.get_type_hints(CloudConfig)
    ints, reals = cloud_settings(cloud)
    assert set(ints) <= set(INTS.values()) and set(reals) <= set(REALS.values())
    assert all(type(v) is int for v in ints.values()) and all(type(v) is float for v in reals.values())
    floats = {getattr(cloud, f) for f, kind in hints.items() if kind is float}
    assert set(reals.values()) == floats
    # every integer field but max_pods (the nodes' N_MAX_PODS, per group) is a setting
    counted = {getattr(cloud, f) for f, kind in hints.items() if kind is int and f != "max_pods"}
    assert counted <= set(ints.values())
    flags = [f for f, kind in hints.items() if kind is bool]
    assert len(ints) == len(counted) + len(flags)


@pytest.mark.parametrize("mode", ["eni", "azure"])
def test_a_cloud_state_holds_the_modes_settings(tmp_path, mode):
    sc = scenario(tmp_path, {"cluster": {"nodes": 2, "instanceType": "m5.large"},
                             "cloud": {"subnets": ["10.1.0.0/20"], "apiThrottle": {"enabled": True}}})
    sc = scenario_for_mode(sc, mode)
    st = Simulation(sc, build_workload(sc), mode).state
    ints, reals = cloud_settings(cloud_net(get_mode(mode), sc).merged())
    assert st.core.icfg.dtype == np.int64
    assert {k: st.core.icfg[k] for k in ints} == ints
    assert {k: st.core.cfg[k] for k in reals} == reals
    # the buckets start full, sized from the integer settings
    assert ints[T.I_CL_THROTTLE] == 1
    assert st.core.cnt[T.K_CL_TOKENS + CLIENT_BUCKET] == ints[T.I_CL_CLIENT_BURST] * MICRO
    assert all(st.core.cnt[T.K_CL_TOKENS + b] == ints[T.I_CL_BUCKET] * MICRO for b in range(1, API_BUCKETS))
