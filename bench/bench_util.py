"""Helpers shared by the benchmark files."""

from __future__ import annotations


def record_speed(benchmark, ops: int) -> None:
    """Store ns per operation (min and median round) in ``benchmark.extra_info``.

    Parameters
    ----------
    benchmark : pytest_benchmark.fixture.BenchmarkFixture
        The fixture, after the timed call.
    ops : int
        Operations per round.
    """
    stats = getattr(getattr(benchmark, "stats", None), "stats", None)
    if stats is not None:  # absent under --benchmark-disable
        benchmark.extra_info["ns_per_op_min"] = stats.min / ops * 1e9
        benchmark.extra_info["ns_per_op_median"] = stats.median / ops * 1e9
