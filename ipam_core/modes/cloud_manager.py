"""Who manages a cloud node's pool: resolved from the state's class when the loop compiles, not per event.

The cloud family (:mod:`ipam_core.modes.cloud_hooks`) shares its timers, readiness and
pool bookkeeping; three things are the pool manager's own: its pass over a node's pool
(:func:`manager_pass`), until when its next periodic pass provably changes nothing
(:func:`manager_quiet_until`), and whether it reads the agent's CiliumNode status
(:func:`manager_reads_agent_status`, a trait: the other managers' runs compile no status
write). Each manager has its own State class, registered here with its functions by the
module that holds them:

* Cilium's operator (``eni``, ``azure``, ``crd`` with the watermark writer):
  ``CiliumOperatorState`` in :mod:`ipam_core.modes.cloud_hooks`;
* ipamd (``aws-vpc-cni``): ``IpamdState`` in :mod:`ipam_core.modes.aws_vpc_cni`;
* CNS and AKS's static blocks (``azure`` on AKS's pod subnet): ``CnsState`` and
  ``AksStaticState`` in :mod:`ipam_core.modes.azure`;
* crd's writer of a fixed pool (``poolPerNode``): ``CrdStaticState`` in :mod:`ipam_core.modes.crd`.

One class per manager rather than per mode: ``eni``, ``azure`` and ``crd``'s watermark writer
run the same operator pass, differing in settings only, so a ``compare`` of them compiles
the loop once. The steps are stubs resolved from the state's class by the lookup the loop's
hooks use (:func:`ipam_core.engine.hooks.resolved_by_state_class`), so a run compiles its own
manager's functions alone and the on-disk cache entries name the class. Each compiles as the
registered function's body, inlined by LLVM into its one caller like a hook's rule; a manager's
thin adapter (ipamd's pass, which asks for no event-driven pass) so adds no call of its own.
"""

from __future__ import annotations

from ipam_core.engine.hooks import never, resolved_by_state_class

_COMPILED_ONLY = "a pool manager's step is called from the compiled loop only"
_MANAGERS: dict[type, dict] = {}  # State class -> {"manager_pass": ..., "manager_quiet_until": ..., ...}
_CLASS_OF_KIND: dict[int, type] = {}


def add_manager(state_class: type, kind: int, operator_pass, quiet_until, reads_agent_status=None) -> None:
    """Make ``operator_pass``, ``quiet_until`` and a trait the pool manager's steps for states of ``state_class``.

    Parameters
    ----------
    state_class : type
        The manager's State namedtuple class (``core`` and :data:`~ipam_core.modes.cloud_pool.CLOUD_TABLES`).
    kind : int
        The ``CLOUD_*`` code (``CloudConfig.kind``) of the runs this manager runs.
    operator_pass : numba dispatcher
        ``(st, node, now) -> float``: one pass over the node's pool; when the next
        event-driven pass should run (-1: none asked).
    quiet_until : numba dispatcher
        ``(st, node, now) -> float``: after a periodic pass at ``now`` on a ready node with
        nothing pending, a time before which the next pass changes nothing (``inf``: never),
        or ``LOUD`` (0.0).
    reads_agent_status : numba dispatcher, optional
        ``(st) -> bool``: whether the manager reads the agent's CiliumNode status, so the agent
        writes it (:func:`ipam_core.engine.hooks.always`: Cilium's operator). By default
        :func:`~ipam_core.engine.hooks.never`: ipamd and CNS see their own node, and a pool
        written once is not written again.

    Raises
    ------
    ValueError
        The class or the kind is registered already.
    """
    if state_class in _MANAGERS or kind in _CLASS_OF_KIND:
        raise ValueError(f"{state_class.__name__} or cloud kind {kind} has a pool manager already")
    _MANAGERS[state_class] = {"manager_pass": operator_pass, "manager_quiet_until": quiet_until,
                              "manager_reads_agent_status": reads_agent_status or never}
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


_by_state_class = resolved_by_state_class(_MANAGERS, "cloud pool manager's step")


@_by_state_class
def manager_pass(st, node, now):  # noqa: D103 (see add_manager)
    raise NotImplementedError(_COMPILED_ONLY)


@_by_state_class
def manager_quiet_until(st, node, now):  # noqa: D103 (see add_manager)
    raise NotImplementedError(_COMPILED_ONLY)


@_by_state_class
def manager_reads_agent_status(st):  # noqa: D103 (see add_manager)
    raise NotImplementedError(_COMPILED_ONLY)
