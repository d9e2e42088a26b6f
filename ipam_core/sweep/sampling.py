"""Where a sweep looks: the full grid, random points, or a Latin hypercube.

Random and Latin-hypercube points draw a unit value per axis (seeded), then map it
onto the axis: a listed axis picks ``values[floor(u * len)]``, a ``{min, max}``
range takes ``min + u * (max - min)`` (rounded when both ends are integers).
The Latin hypercube is scipy's (:class:`scipy.stats.qmc.LatinHypercube`): each
axis's range is cut into ``samples`` equal strata and every stratum is used once.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from ipam_core.sweep.spec import Axis, SweepSpec

__all__ = ["sample_points", "unit_to_value"]


def unit_to_value(axis: Axis, u: float):
    """Map ``u`` in [0, 1) onto the axis.

    Parameters
    ----------
    axis : Axis
    u : float

    Returns
    -------
    object
        A listed value, or a number in ``[low, high]``.
    """
    if axis.values is not None:
        return axis.values[min(int(math.floor(u * len(axis.values))), len(axis.values) - 1)]
    value = axis.low + u * (axis.high - axis.low)
    if axis.integer:
        return int(min(round(value), axis.high))
    return round(float(value), 6)  # six decimals: a column a reader can scan, keys stable across platforms


def _units(spec: SweepSpec) -> np.ndarray:
    rng = np.random.default_rng(spec.seed)
    if spec.sampling == "random":
        return rng.random((spec.samples, len(spec.axes)))
    from scipy.stats import qmc

    return qmc.LatinHypercube(d=len(spec.axes), rng=rng).random(spec.samples)


def sample_points(spec: SweepSpec) -> list[dict]:
    """The sweep's points as parameter mappings (axis name -> value), in point order.

    Parameters
    ----------
    spec : SweepSpec

    Returns
    -------
    list of dict
        Grid: the Cartesian product, the last axis varying fastest. Random and
        Latin hypercube: ``spec.samples`` points, seeded by ``spec.seed``.
    """
    names = [a.name for a in spec.axes]
    if spec.sampling == "grid":
        return [dict(zip(names, combo)) for combo in itertools.product(*(a.values for a in spec.axes))]
    units = _units(spec)
    return [{a.name: unit_to_value(a, float(u)) for a, u in zip(spec.axes, row)} for row in units]
