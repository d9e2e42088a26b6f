"""Who manages a cloud node's pool: resolved from the state's class when the loop compiles, not per event.

The cloud family (:mod:`ipam_core.modes.cloud_hooks`) shares its timers, readiness and
pool bookkeeping; two steps are the pool manager's own: its pass over a node's pool
(:func:`manager_pass`) and until when its next periodic pass provably changes nothing
(:func:`manager_quiet_until`). Each manager has its own State class, registered here with
those two functions by the module that holds them:

* Cilium's operator (``eni``, ``azure``, ``crd`` with the watermark writer):
  ``CiliumOperatorState`` in :mod:`ipam_core.modes.cloud_hooks`;
* ipamd (``aws-vpc-cni``): ``IpamdState`` in :mod:`ipam_core.modes.aws_vpc_cni`;
* CNS and AKS's static blocks (``azure`` on AKS's pod subnet): ``CnsState`` and
  ``AksStaticState`` in :mod:`ipam_core.modes.azure`;
* crd's writer of a fixed pool (``poolPerNode``): ``CrdStaticState`` in :mod:`ipam_core.modes.crd`.

One class per manager rather than per mode: ``eni``, ``azure`` and ``crd``'s watermark writer
run the same operator pass, differing in settings only, so a ``compare`` of them compiles
the loop once. Like the loop's hooks (:mod:`ipam_core.engine.hooks`), the two steps are
``@overload`` stubs resolved from the state's class, so a run compiles its own manager's
functions alone and the on-disk cache entries name the class. Each compiles to a call of the
manager's function, as the branches on ``CloudConfig.kind`` they replace did; a manager's thin
adapter (ipamd's pass, which asks for no event-driven pass) is ``kjit(inline=True)``, so it adds no
call of its own.
"""

from __future__ import annotations

from numba.core import errors
from numba.extending import overload

from ipam_core.engine.hooks import _INLINED_BY_LLVM

_COMPILED_ONLY = "a pool manager's step is called from the compiled loop only"
_MANAGERS: dict[type, dict] = {}  # State class -> {"pass": ..., "quiet_until": ...}
_CLASS_OF_KIND: dict[int, type] = {}


def add_manager(state_class: type, kind: int, operator_pass, quiet_until) -> None:
    """Make ``operator_pass`` and ``quiet_until`` the pool manager's steps for states of ``state_class``.

    Parameters
    ----------
    state_class : type
        The manager's State namedtuple class (:data:`~ipam_core.engine.state.STATE_FIELDS`).
    kind : int
        The ``CLOUD_*`` code (``CloudConfig.kind``) of the runs this manager runs.
    operator_pass : numba dispatcher
        ``(st, node, now) -> float``: one pass over the node's pool; when the next
        event-driven pass should run (-1: none asked).
    quiet_until : numba dispatcher
        ``(st, node, now) -> float``: after a periodic pass at ``now`` on a ready node with
        nothing pending, a time before which the next pass changes nothing (``inf``: never),
        or ``LOUD`` (0.0).

    Raises
    ------
    ValueError
        The class or the kind is registered already.
    """
    if state_class in _MANAGERS or kind in _CLASS_OF_KIND:
        raise ValueError(f"{state_class.__name__} or cloud kind {kind} has a pool manager already")
    _MANAGERS[state_class] = {"pass": operator_pass, "quiet_until": quiet_until}
    _CLASS_OF_KIND[kind] = state_class


def class_of_kind(kind: int) -> type:
    """The State class of the manager registered for a ``CLOUD_*`` code.

    Parameters
    ----------
    kind : int

    Returns
    -------
    type

    Raises
    ------
    KeyError
        No manager was registered for it.
    """
    return _CLASS_OF_KIND[kind]


def _step(st, name):
    steps = _MANAGERS.get(getattr(st, "instance_class", None))
    if steps is None:
        raise errors.TypingError(f"{name}: no cloud pool manager registered for {st}")
    return steps[name]


def manager_pass(st, node, now):  # noqa: D103 (see add_manager)
    raise NotImplementedError(_COMPILED_ONLY)


@overload(manager_pass, jit_options=_INLINED_BY_LLVM)
def _manager_pass(st, node, now):
    rule = _step(st, "pass")
    return lambda st, node, now: rule(st, node, now)


def manager_quiet_until(st, node, now):  # noqa: D103 (see add_manager)
    raise NotImplementedError(_COMPILED_ONLY)


@overload(manager_quiet_until, jit_options=_INLINED_BY_LLVM)
def _manager_quiet_until(st, node, now):
    rule = _step(st, "quiet_until")
    return lambda st, node, now: rule(st, node, now)
