"""A rules family is a State class plus its hooks: the compiled loop runs one it has never seen.

``tests/toy_family.py`` registers a family from the tests; it runs in a process of its own with its
own kernel cache (see its docstring).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest
from numba import typeof
from numba.core.errors import TypingError

from ipam_core import modes  # noqa: F401 (registers the families, POLICY_ONE_PER_FAMILY's among them)
from ipam_core.engine import hooks
from ipam_core.engine.state import family_state
from ipam_core.engine.tables import POLICY_ONE_PER_FAMILY
from ipam_core.kernels._jit import kjit

HERE = Path(__file__).resolve().parent


def test_a_family_registered_from_the_tests_runs_through_the_compiled_loop(tmp_path):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path), "PYTHONPATH": os.pathsep.join([str(HERE.parent), str(HERE)])}
    done = subprocess.run([sys.executable, str(HERE / "toy_family.py")], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "toy family ran" in done.stdout


def test_register_refuses_an_incomplete_family():
    Other = family_state("Other", __name__)
    with pytest.raises(ValueError, match=r"missing hooks \['address_room'"):
        hooks.register(Other, 91, take_pod_addresses=hooks.OPTIONAL["pod_changed"])
    with pytest.raises(ValueError, match="registered already"):
        hooks.register(Other, POLICY_ONE_PER_FAMILY, **{h: hooks.OPTIONAL["pod_changed"] for h in hooks.HOOKS})


# A registry of steps of its own, resolved the way the hooks are (as the cloud pool managers' are).
Small = namedtuple("Small", "x")
Other = namedtuple("Other", "x")
Unregistered = namedtuple("Unregistered", "x")
STEPS: dict = {}


@hooks.resolved_by_state_class(STEPS, "test step")
def step(st, k):
    raise NotImplementedError("compiled only")


@kjit
def _plus(st, k):
    return st.x + k


@kjit(allocates=True)
def _plus_range_sum(st, k):
    return st.x + np.arange(k).sum()  # creates an array: called rather than inlined


STEPS.update({Small: {"step": _plus}, Other: {"step": _plus_range_sum}})


@kjit
def _call_step(st, k):
    return step(st, k)


def test_a_registry_of_its_own_resolves_its_stub_from_the_states_class():
    assert _call_step(Small(10), 3) == 13 and _call_step(Other(10), 4) == 16
    # compiled as the rule's Python body (inlined by LLVM); a rule that creates arrays is called
    assert hooks.rule_body(STEPS, typeof(Small(10)), "step") is _plus.py_func
    assert hooks.rule_body(STEPS, typeof(Other(10)), "step") is not _plus_range_sum.py_func
    with pytest.raises(TypingError, match="test step step: nothing registered for Unregistered"):
        _call_step(Unregistered(10), 3)
    with pytest.raises(NotImplementedError):
        step(Small(10), 3)


#: The loop, the sampler and the code every family shares: none may test which family runs.
SHARED_ENGINE = ("core", "sampling", "lifecycle", "hooks", "initial", "summary")


@pytest.mark.parametrize("name", SHARED_ENGINE)
def test_the_shared_engine_tests_no_family_code(name):
    import ast

    tree = ast.parse((HERE.parent / "ipam_core" / "engine" / f"{name}.py").read_text())
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    used |= {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
    assert not {u for u in used if u.startswith("POLICY_") or u in ("C_POLICY", "I_POLICY")}, (
        f"engine/{name}.py tests a family's POLICY_* code; ask the family through a hook (engine/hooks.py)")


def test_the_family_traits_default_to_the_plain_rules():
    assert {"one_cidr_per_family", "carves_on_demand", "free_is_warm_pool", "held_addresses"} <= set(hooks.OPTIONAL)
