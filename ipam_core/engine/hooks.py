"""Where the compiled loop hands over to a mode's rules: hooks resolved by the state's class.

The event loop (:mod:`ipam_core.engine.core`: scheduler, pod lifecycle, timers)
and the sampler (:mod:`ipam_core.engine.sampling`) know no mode. Where an
agent or an operator acts, they call one of the hooks below with the state.
Each rules family has its own State namedtuple class (``core``, the
:class:`~ipam_core.engine.state.CoreTables` every mode shares, then the family's own
tables: :func:`~ipam_core.engine.state.family_state`) and registers its rules for that
class with :func:`register`. Numba resolves each hook with ``@overload`` from
the class of the state it compiles for (:func:`resolved_by_state_class`, which
other registries keyed by State class use too: the cloud pool managers' steps,
:mod:`ipam_core.modes.cloud_manager`), so a run compiles only its own
family's rules, and the loop's on-disk cache entries name the class, which is
the same in every process (measured in docs/dev/engine-rooms.md; hooks passed
as arguments miss the cache in every new process).

A rules module registers every hook in :data:`HOOKS`; those in
:data:`OPTIONAL` default to doing nothing. A family whose runs differ by settings
the layout does not carry may have a class per set of rules (the cloud family: one
per pool manager); it registers the class :func:`~ipam_core.engine.state.build_state`
builds with :func:`register_family`, and its ``prepare`` step hands the state on. ``tests/test_engine_hooks.py``
runs a test-only family through the compiled loop this way.
"""

from __future__ import annotations

import functools

from numba.core import config, errors, types
from numba.extending import overload

from ipam_core.engine.tables import L_FAMILY, L_SET, N_NSLOTS, S_ADDRS
from ipam_core.kernels._jit import kjit

_COMPILED_ONLY = "a hook is called from the compiled loop only"

#: Hook name -> what the loop expects of it.
HOOKS = {
    "take_pod_addresses": "(st, pod, node, now) -> -1, or the family that got no address (IPv6 is tried first)",
    "give_pod_addresses": "(st, pod): the pod's addresses back to its node",
    "pod_changed": "(st, node, now): a pod on the node started, failed, waits or left",
    "node_added": "(st, node, now): the node appeared; arm the timers its agent and operator need",
    "node_deleted": "(st, node): before the shared tables drop the node (its node CIDRs are freed after)",
    "agent_restarted": "(st, node, now): the node's agent restarted (workload.lifecycle.agentRestarts)",
    "node_timer": "(st, kind, node, gen, now): a T_CARVE / T_AGENT_SYNC / T_REFRESH timer of a present node",
    "quiet_refresh": "(st, node, gen, now): a periodic pass that changes nothing: set only its timers",
    "refresh_period": "(st) -> seconds between a node's periodic passes (0: none)",
    "carve_follows_refresh": "(st) -> whether each periodic pass sets a T_CARVE timer (skipped together)",
    "address_room": "(st, node) -> bound pods below which cluster.addressFilter lets a pod onto the node",
    "sample_nodes": "(st, families, sample, node_tab, cidr_tab, fill) -> rows written to the node tables",
    "largest_free_block": "(st, family) -> addresses in the largest aligned free block, or -1: the node-CIDR sets'",
    "trace_counters": "(st, family, trace, r): the family's own trace rows (sampling.TR_CALICO ...) in column r",
    "agent_can_start": "(st, node) -> whether a node restored at t=0 (engine/initial.py) holds what its agent waits for",
    "one_cidr_per_family": "(st) -> whether the agent draws from its first node CIDR of a family only (host scope)",
    "carves_on_demand": "(st) -> whether the operator carves node CIDRs as the agents' demand grows (multi-pool)",
    "free_is_warm_pool": "(st) -> whether a node's free addresses are a warm pool the trace reports per node",
    "held_addresses": "(st, node, family) -> addresses of the family the node holds: no other node can use them",
}


@kjit
def _nothing_node(st, node):
    pass


@kjit
def _nothing_node_now(st, node, now):
    pass


@kjit
def _nothing_timer(st, node, gen, now):
    pass


@kjit
def _no_period(st):
    return 0.0


@kjit
def _waits(st, node):
    return False  # a family that restores no node CIDRs: its agent starts by its own rules


@kjit
def _shared_free_block(st, family):
    return -1  # the sampler measures the shared node-CIDR sets


@kjit
def _no_counters(st, family, trace, r):
    pass  # the trace rows of families that have none stay 0


@kjit
def _node_cidr_addresses(st, node, family):
    core = st.core
    # a node holds its node CIDRs whole until they are freed
    total = 0
    for k in range(core.nodes[node, N_NSLOTS]):
        slot = core.cidr.node_slots[node, k]
        if core.cidr.slots[slot, L_FAMILY] == family:
            total += core.cidr.sets[core.cidr.slots[slot, L_SET], S_ADDRS]
    return total


@kjit
def always(st):
    """A family trait that holds (``one_cidr_per_family=always``)."""
    return True


@kjit
def never(st):
    """A family trait that does not hold: what the traits a family leaves out default to."""
    return False


#: Hooks a family may leave out, and what they do then.
OPTIONAL = {
    "pod_changed": _nothing_node_now,
    "node_deleted": _nothing_node,
    "agent_restarted": _nothing_node_now,
    "quiet_refresh": _nothing_timer,
    "refresh_period": _no_period,
    "carve_follows_refresh": never,
    "largest_free_block": _shared_free_block,
    "trace_counters": _no_counters,
    "agent_can_start": _waits,
    "one_cidr_per_family": never,
    "carves_on_demand": never,
    "free_is_warm_pool": never,
    "held_addresses": _node_cidr_addresses,
}

_RULES: dict[type, dict] = {}
_PREPARE: dict[type, object] = {}
#: The options a rule resolved by the state's class compiles with (:func:`rule_body`): inlined by LLVM.
INLINED_BY_LLVM = {"_nrt": False, "nogil": True, "forceinline": True}
_CLASS_OF_POLICY: dict[int, type] = {}


def register(state_class: type, policy: int | None, prepare=None, **rules) -> None:
    """Make ``rules`` the hooks the loop calls for states of ``state_class``.

    Parameters
    ----------
    state_class : type
        The family's State namedtuple class.
    policy : int or None
        The ``POLICY_*`` code a mode's :class:`~ipam_core.engine.layout.Layout` names
        this family by; :func:`ipam_core.engine.state.build_state` builds a state
        of ``state_class`` for it. None: one of the classes of a family whose
        ``prepare`` step picks the class of the run (:func:`register_family`).
    prepare : callable, optional
        ``prepare(state, module, scenario, workload) -> state``, in Python, after
        :func:`~ipam_core.engine.state.build_state`: fills the fields the class adds
        after ``core`` (built as ``None``) and the
        family's settings; ``module`` is the mode's module in :mod:`ipam_core.modes`.
    **rules
        Compiled functions, one per hook name in :data:`HOOKS` (those in
        :data:`OPTIONAL` may be left out).

    Raises
    ------
    ValueError
        An unknown or missing hook, or a class or policy registered twice.
    """
    unknown = sorted(set(rules) - set(HOOKS))
    missing = sorted(set(HOOKS) - set(rules) - set(OPTIONAL))
    if unknown or missing:
        raise ValueError(f"{state_class.__name__}: unknown hooks {unknown}, missing hooks {missing}")
    _claim(state_class, policy)
    _RULES[state_class] = {**OPTIONAL, **rules}
    _PREPARE[state_class] = prepare
    if policy is not None:
        _CLASS_OF_POLICY[policy] = state_class


def register_family(state_class: type, policy: int, prepare) -> None:
    """Make ``state_class`` what a ``policy`` run starts from, and ``prepare`` hand it to the class of its rules.

    For a family with one set of rules per class, chosen by settings the layout does not
    carry (the cloud family: one class per pool manager, picked by ``CloudConfig.kind``,
    :mod:`ipam_core.modes.cloud_manager`). ``state_class`` has no rules:
    :func:`~ipam_core.engine.state.build_state` builds it and ``prepare`` returns the state
    as one of the family's classes registered with ``policy=None``, so the loop compiles
    that class's rules alone.

    Parameters
    ----------
    state_class : type
        A State namedtuple class (:func:`~ipam_core.engine.state.family_state`).
    policy : int
        The ``POLICY_*`` code the family's layouts name.
    prepare : callable
        ``prepare(state, module, scenario, workload) -> state`` (see :func:`register`).

    Raises
    ------
    ValueError
        The class or the policy is registered already.
    """
    _claim(state_class, policy)
    _PREPARE[state_class] = prepare
    _CLASS_OF_POLICY[policy] = state_class


def _claim(state_class: type, policy: int | None) -> None:
    if state_class in _PREPARE or (policy is not None and policy in _CLASS_OF_POLICY):
        raise ValueError(f"{state_class.__name__} or policy {policy} is registered already")


def state_class(policy: int) -> type:
    """The State class registered for a ``POLICY_*`` code.

    Parameters
    ----------
    policy : int

    Returns
    -------
    type

    Raises
    ------
    KeyError
        No rules family registered it.
    """
    return _CLASS_OF_POLICY[policy]


def prepare(state, module, scenario, workload):
    """Run the ``prepare`` step registered for the state's class (the state itself when none).

    Parameters
    ----------
    state : State
        From :func:`~ipam_core.engine.state.build_state`.
    module : module
        The mode's module in :mod:`ipam_core.modes`.
    scenario : ipam_core.scenario.Scenario
    workload : ipam_core.workloads.Workload

    Returns
    -------
    State
    """
    step = _PREPARE[type(state)]
    return state if step is None else step(state, module, scenario, workload)


def registered_rule(registry: dict, st, name: str, what: str = "hook"):
    """The compiled function ``registry`` holds under ``name`` for the class of the state ``st`` is typed as.

    Parameters
    ----------
    registry : dict
        State class -> {name -> compiled function}: :func:`register`'s rules, or another
        set of steps resolved the same way (the cloud pool managers', :mod:`ipam_core.modes.cloud_manager`).
    st : numba type
        The type of the state a call passes.
    name : str
    what : str
        What the registry holds, for the error (``hook``, ``cloud pool manager``).

    Returns
    -------
    numba dispatcher

    Raises
    ------
    numba.core.errors.TypingError
        ``st`` is not a namedtuple, or nothing is registered for its class.
    """
    if not isinstance(st, (types.NamedTuple, types.NamedUniTuple)):
        raise errors.TypingError(f"{what} {name}: the state must be a State namedtuple, not {st}")
    return _rule_of_class(registry, st.instance_class, name, what, errors.TypingError)


def _rule_of_class(registry: dict, cls: type, name: str, what: str, error: type[Exception]):
    """``registry[cls][name]``, or ``error`` naming the class when nothing is registered for it."""
    rules = registry.get(cls)
    if rules is None:
        raise error(f"{what} {name}: nothing registered for {cls.__name__}")
    return rules[name]


def rule_body(registry: dict, st, name: str, what: str = "hook"):
    """What a call resolved by the state's class compiles to: the registered rule itself, inlined by LLVM.

    Compiled as the stub's own function with LLVM's ``alwaysinline`` (``forceinline``) and
    without reference counting (as :func:`~ipam_core.kernels._jit.kjit` does for kernels that
    create no array): a call that is not inlined passes the state's ~40 arrays as ~300
    arguments, which doubled the time per event. A rule that creates arrays is called.
    Not inlined at the Numba IR level: inlining an overload there miscompiled the loop when
    its variables had the caller's names (numba/numba#7365, #7225: pod retry timers set at time 0).

    Parameters
    ----------
    registry, st, name, what
        See :func:`registered_rule`.

    Returns
    -------
    callable
        The implementation Numba compiles for the stub.
    """
    rule = registered_rule(registry, st, name, what)
    if not rule.targetoptions.get("_nrt", True):
        return rule.py_func
    return lambda st, *args: rule(st, *args)


def resolved_by_state_class(registry: dict, what: str = "hook"):
    """Make a stub a function the compiled code calls, resolved from the state's class when it compiles.

    The stub's name is the key in each class's entry of ``registry``; its parameters, the
    state first, are those of every function registered under that name (Numba's overload
    types a call by the stub's own parameter names). A run compiles only the functions of its
    state's class, and the on-disk cache entries name the class, which is the same in every process.

    Parameters
    ----------
    registry : dict
        State class -> {stub name -> compiled function}, filled before the first call compiles.
    what : str
        What the registry holds, for errors.

    Returns
    -------
    callable
        A decorator returning the stub, which raises when called from Python; with the JIT off
        (``NUMBA_DISABLE_JIT``), a function that calls the rule registered for the state's class.
    """
    def decorate(stub):
        if config.DISABLE_JIT:  # the loop runs as Python (NUMBA_DISABLE_JIT): the same lookup, per call
            return _called_from_python(registry, stub, what)

        @functools.wraps(stub)  # the stub's signature: Numba checks the implementation's against it
        def typing(st, *args):
            return rule_body(registry, st, stub.__name__, what)

        overload(stub, jit_options=INLINED_BY_LLVM)(typing)
        return stub

    return decorate


def _called_from_python(registry: dict, stub, what: str):
    """The stub as the interpreted loop calls it: the function registered for the state's class.

    With ``NUMBA_DISABLE_JIT`` the loop's functions are plain Python (the kernel tests, and
    the interpreted engine of a small run on a cold cache: :mod:`ipam_core.pipeline.engine_choice`),
    and so are the registered rules; the class picks the rule by the lookup :func:`registered_rule`
    makes when the loop compiles.
    """
    name = stub.__name__

    @functools.wraps(stub)
    def call(st, *args):
        return _rule_of_class(registry, type(st), name, what, TypeError)(st, *args)

    return call


_by_state_class = resolved_by_state_class(_RULES)


# One stub per hook, with the rules' parameters (see HOOKS).
@_by_state_class
def take_pod_addresses(st, pod, node, now):  # noqa: D103 (see HOOKS)
    raise NotImplementedError(_COMPILED_ONLY)


@_by_state_class
def give_pod_addresses(st, pod):  # noqa: D103
    raise NotImplementedError(_COMPILED_ONLY)


@_by_state_class
def pod_changed(st, node, now):  # noqa: D103
    raise NotImplementedError(_COMPILED_ONLY)


@_by_state_class
def node_added(st, node, now):  # noqa: D103
    raise NotImplementedError(_COMPILED_ONLY)


@_by_state_class
def node_deleted(st, node):  # noqa: D103
    raise NotImplementedError(_COMPILED_ONLY)


@_by_state_class
def agent_restarted(st, node, now):  # noqa: D103
    raise NotImplementedError(_COMPILED_ONLY)


@_by_state_class
def node_timer(st, kind, node, gen, now):  # noqa: D103
    raise NotImplementedError(_COMPILED_ONLY)


@_by_state_class
def quiet_refresh(st, node, gen, now):  # noqa: D103
    raise NotImplementedError(_COMPILED_ONLY)


@_by_state_class
def refresh_period(st):  # noqa: D103
    raise NotImplementedError(_COMPILED_ONLY)


@_by_state_class
def carve_follows_refresh(st):  # noqa: D103
    raise NotImplementedError(_COMPILED_ONLY)


@_by_state_class
def address_room(st, node):  # noqa: D103
    raise NotImplementedError(_COMPILED_ONLY)


@_by_state_class
def sample_nodes(st, families, sample, node_tab, cidr_tab, fill):  # noqa: D103
    raise NotImplementedError(_COMPILED_ONLY)


@_by_state_class
def largest_free_block(st, family):  # noqa: D103
    raise NotImplementedError(_COMPILED_ONLY)


@_by_state_class
def trace_counters(st, family, trace, r):  # noqa: D103
    raise NotImplementedError(_COMPILED_ONLY)


@_by_state_class
def agent_can_start(st, node):  # noqa: D103
    raise NotImplementedError(_COMPILED_ONLY)


@_by_state_class
def one_cidr_per_family(st):  # noqa: D103
    raise NotImplementedError(_COMPILED_ONLY)


@_by_state_class
def carves_on_demand(st):  # noqa: D103
    raise NotImplementedError(_COMPILED_ONLY)


@_by_state_class
def free_is_warm_pool(st):  # noqa: D103
    raise NotImplementedError(_COMPILED_ONLY)


@_by_state_class
def held_addresses(st, node, family):  # noqa: D103
    raise NotImplementedError(_COMPILED_ONLY)
