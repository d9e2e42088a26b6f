"""Which engine runs a command: the compiled kernels, or their Python source while compiling would cost more.

The event loop compiles once per State class on first use and is cached after that: about
35 s of CPU per class on the project's 2-core machine (results/first-run.md: the first default
``compare``, two classes, 68 s; a cloud mode's first run about 60 s). The same functions run as
plain Python under ``NUMBA_DISABLE_JIT`` at about 35-70 µs per workload event, so the built-in
scenario's three modes take about one second that way. So, as a tiered JIT does, a command whose
kernels are not in the cache yet starts on the interpreted engine, and switches to the compiled one
as soon as the run's progress projects it past :data:`INTERPRETED_BUDGET_S`, a little less than one
State class takes to compile. Once the kernels are cached (by a compiled run, the tests or
``ipam-bench`` with ``IPAM_BENCH_ENGINE=compiled``), every run is compiled.

Both engines execute the same functions, the loop's hooks picked by the state's class either way
(:func:`ipam_core.engine.hooks.resolved_by_state_class`), and their traces are byte-identical
(``tests/test_engine_choice.py`` compares every shipped scenario that runs in seconds).
``run.json`` records which engine ran (``engine``).

Only a process's own command line switches engines (:func:`ipam_core.cli.main` replaces the
process, as the JIT switch is read when the kernels' modules are imported); the Python API
always runs the engine its process imported.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence

from numba.core import config

from ipam_core.engine.sampling import sample_run
from ipam_core.errors import ConfigError
from ipam_core.pipeline.run import state_class_of
from ipam_core.scenario import scenario_for_mode

#: Environment variable a user sets to pick the engine: ``auto`` (the default), ``compiled``, ``interpreted``.
ENGINE_ENV = "IPAM_BENCH_ENGINE"
ENGINES = ("auto", "compiled", "interpreted")
#: Set (to 1) in a process ``auto`` started on the interpreted engine: it may switch to the compiled one.
AUTO_INTERPRETED_ENV = "IPAM_BENCH_AUTO_INTERPRETED"
#: Seconds an automatically chosen interpreted run may be projected to take before it compiles instead
#: (``IPAM_BENCH_INTERPRETED_BUDGET_S`` sets another).
INTERPRETED_BUDGET_S = 30.0
BUDGET_ENV = "IPAM_BENCH_INTERPRETED_BUDGET_S"
#: Seconds of an interpreted run before its progress is trusted for a projection (the first chunks are noisy).
PROJECT_AFTER_S = 1.0
#: CPU seconds the interpreted engine takes per workload event and mode, for the estimate made before a
#: run starts (38-100 µs measured over the shipped scenarios' modes: results/first-run.md). A run with
#: few events but many periodic passes can take longer: the progress projection catches it.
EVENT_COST_S = 50e-6


class OverBudget(Exception):
    """An interpreted run chosen by ``auto`` is projected past :data:`INTERPRETED_BUDGET_S`."""


def requested_engine() -> str:
    """The engine ``IPAM_BENCH_ENGINE`` asks for.

    Returns
    -------
    str
        One of :data:`ENGINES`; ``auto`` when the variable is unset or empty.

    Raises
    ------
    ConfigError
        The variable holds anything else, or asks for ``compiled`` with the JIT off.
    """
    value = os.environ.get(ENGINE_ENV, "").strip()
    if not value:
        return "auto"
    if value not in ENGINES:
        raise ConfigError(f"{ENGINE_ENV}={value!r} is not an engine; expected one of: {', '.join(ENGINES)}")
    if value == "compiled" and interpreted():
        raise ConfigError(f"{ENGINE_ENV}=compiled with NUMBA_DISABLE_JIT={os.environ.get('NUMBA_DISABLE_JIT')!r}: "
                          "expected one of the two (the JIT off runs the interpreted engine)")
    return value


def interpreted_budget_s() -> float:
    """Seconds an automatic interpreted run may take: ``IPAM_BENCH_INTERPRETED_BUDGET_S`` or the default.

    Raises
    ------
    ConfigError
        The variable is not a number of seconds >= 0.
    """
    text = os.environ.get(BUDGET_ENV, "").strip()
    if not text:
        return INTERPRETED_BUDGET_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise ConfigError(f"{BUDGET_ENV}={text!r} is not a number of seconds; expected a finite number >= 0")
    return value


def interpreted() -> bool:
    """Whether this process runs the kernels as Python (``NUMBA_DISABLE_JIT``)."""
    return bool(config.DISABLE_JIT)


def chosen_by_auto() -> bool:
    """Whether ``auto`` started this process on the interpreted engine (so it may switch)."""
    return interpreted() and os.environ.get(AUTO_INTERPRETED_ENV) == "1"


def kernels_cached(scenario, modes: Sequence[str]) -> bool:
    """Whether Numba's on-disk cache holds the compiled loop for every State class ``modes`` run on.

    Parameters
    ----------
    scenario : ipam_core.scenario.Scenario
        Validated.
    modes : sequence of str

    Returns
    -------
    bool
        True also when the cache cannot be read (another Numba version's layout): then the
        compiled engine runs, as it would without this choice.
    """
    try:
        index = sample_run._cache._cache_file._load_index()  # Numba's own staleness check of the index
        cached = {getattr(key[0][0], "instance_class", None) for key in index}
    except Exception:  # noqa: BLE001 - not the cache layout this was written for: say compiled
        return True
    return all(state_class_of(scenario_for_mode(scenario, mode), mode) in cached for mode in modes)


def switch_to(scenario, modes: Sequence[str]) -> str | None:
    """The engine a command line should switch this process to before it runs ``modes``, if any.

    Parameters
    ----------
    scenario : ipam_core.scenario.Scenario
    modes : sequence of str

    Returns
    -------
    str or None
        ``"interpreted"`` when ``IPAM_BENCH_ENGINE`` asks for it, or is ``auto`` and the
        kernels are not cached; None to run here (already interpreted, compiled asked for, or cached).
    """
    wanted = requested_engine()
    if interpreted() or wanted == "compiled":
        return None
    if wanted == "interpreted" or not kernels_cached(scenario, modes):
        return "interpreted"
    return None


def check_workload(n_events: int, modes: Sequence[str], budget_s: float | None = None) -> None:
    """Stop, before it starts, an interpreted run whose workload alone projects it past the budget.

    Parameters
    ----------
    n_events : int
        Events of the workload every mode runs.
    modes : sequence of str
    budget_s : float, optional
        Default :func:`interpreted_budget_s`.

    Raises
    ------
    OverBudget
        ``n_events * len(modes) * EVENT_COST_S`` exceeds the budget.
    """
    budget_s = interpreted_budget_s() if budget_s is None else budget_s
    estimate = n_events * len(modes) * EVENT_COST_S
    if estimate > budget_s:
        raise OverBudget(f"{n_events:,} events x {len(modes)} modes: about {estimate:.0f} s interpreted, "
                         f"more than {budget_s:g} s")


def within_budget(progress: Callable[[str, float], None] | None, modes: Sequence[str],
                  budget_s: float | None = None, clock: Callable[[], float] = time.monotonic):
    """Wrap a ``progress(mode, fraction)`` callback to stop a run projected past ``budget_s``.

    Parameters
    ----------
    progress : callable or None
        What :func:`ipam_core.pipeline.simulate` calls after each chunk of samples.
    modes : sequence of str
        The modes in the order they run: the run's fraction done is
        ``(index of mode + fraction) / len(modes)``.
    budget_s : float, optional
        Default :func:`interpreted_budget_s`.
    clock : callable

    Returns
    -------
    callable
        The wrapped callback. It raises :class:`OverBudget` once the run has taken more than
        ``budget_s``, or more than :data:`PROJECT_AFTER_S` at a pace that projects it past ``budget_s``.
    """
    budget_s = interpreted_budget_s() if budget_s is None else budget_s
    start = clock()
    order = {mode: i for i, mode in enumerate(modes)}

    def update(mode: str, fraction: float) -> None:
        elapsed = clock() - start
        done = (order.get(mode, 0) + fraction) / max(len(modes), 1)
        if elapsed > budget_s or (elapsed >= PROJECT_AFTER_S and done > 0 and elapsed / done > budget_s):
            raise OverBudget(f"projected {elapsed / max(done, 1e-9):.0f} s interpreted, more than {budget_s:g} s")
        if progress is not None:
            progress(mode, fraction)

    return update
