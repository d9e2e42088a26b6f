"""The reductions behind :func:`ipam_core.pipeline.summarize`: one compiled pass per mode.

Reducing a mode's trace with numpy took a dozen calls per family (max,
fancy indexing, a boolean mask, two means, the start-up search), which for a
small sweep point cost a tenth of the point (issue #10). The kernel here
computes the same figures in one call, bit for bit: float addition is not
associative, so each sum adds its terms in the order numpy did. The mean
idle and reserved shares were reductions along the rows of a column-major
array (a boolean mask on the second axis lays the copy out that way), which
numpy adds term by term from 0.0; the mean warm pool was a reduction of a
1-D run, which numpy adds pairwise (:func:`pairwise_sum`). The sweep's
extra idle-address figures (:func:`idle_figures`) were ``np.mean`` of int64
columns, which numpy casts and adds buffer by buffer (:func:`cast_mean_sum`).
"""

from __future__ import annotations

import numpy as np

from ipam_core.engine.sampling import TR_CARVED, TR_FAILED_FREE, TR_IDLE, TR_PENDING, TR_RESERVED, TR_RUNNING
from ipam_core.kernels._jit import kjit

#: numpy's ``PW_BLOCKSIZE``: runs up to this long are summed with 8 accumulators, longer ones split in two.
PAIRWISE_BLOCK = 128
_MAX_DEPTH = 64  # frames of pairwise_sum's walk: each halves the run, so 64 cover any array
#: numpy's default buffer size (``np.getbufsize()``), in elements: a reduction that casts
#: (``np.mean`` of int64) adds one buffer's pairwise sum after the other.
NUMPY_BUFFER = 8192

# columns of summary_figures' float output
SF_IDLE_SUM = 0  # sum of addrs_idle / addrs_carved over the samples with carved addresses, term by term
SF_RESERVED_SUM = 1  # the same for addrs_reserved
SF_CARVED_SAMPLES = 2  # how many samples had carved addresses
SF_WARM_SUM = 3  # sum of warm_addrs_per_node, pairwise
SF_NCOL = 4


@kjit(allocates=True)
def pairwise_sum(a, first, n, stride):
    """``a[first] + a[first + stride] + ...`` (``n`` terms) added in the order of numpy's ``add.reduce``.

    numpy's reduction starts from 0.0 and adds the pairwise sum of the terms
    (``loops_utils.h``, ``pairwise_sum``): fewer than 8 terms one by one, up
    to :data:`PAIRWISE_BLOCK` terms in 8 interleaved partial sums, longer runs
    as the sum of two halves (the first a multiple of 8 long). Float addition
    is not associative, so only this order gives numpy's result to the last bit.

    Notes
    -----
    The halving runs on an explicit stack rather than by recursion: Numba
    crashed loading a cached self-recursive kernel.
    """
    return 0.0 + _pairwise_run(a, first, n, stride)


@kjit(allocates=True)
def _pairwise_run(a, first, n, stride):
    """numpy's ``pairwise_sum`` of ``n`` terms (without the reduction's starting 0.0)."""
    if n <= PAIRWISE_BLOCK:
        return _pairwise_block(a, first, n, stride)
    # post-order walk of the halving tree; each frame: first term, terms, children pushed so far
    frame_first = np.empty(_MAX_DEPTH, dtype=np.int64)
    frame_n = np.empty(_MAX_DEPTH, dtype=np.int64)
    frame_step = np.zeros(_MAX_DEPTH, dtype=np.int64)
    sums = np.empty(_MAX_DEPTH + 1, dtype=np.float64)
    top = 0
    n_sums = 0
    frame_first[0] = first
    frame_n[0] = n
    while top >= 0:
        start = frame_first[top]
        count = frame_n[top]
        if count <= PAIRWISE_BLOCK:
            sums[n_sums] = _pairwise_block(a, start, count, stride)
            n_sums += 1
            top -= 1
            continue
        half = count // 2
        half -= half % 8
        step = frame_step[top]
        frame_step[top] = step + 1
        if step == 2:  # both halves summed: first half + second half
            n_sums -= 1
            sums[n_sums - 1] = sums[n_sums - 1] + sums[n_sums]
            top -= 1
            continue
        top += 1
        frame_step[top] = 0
        if step == 0:
            frame_first[top] = start
            frame_n[top] = half
        else:
            frame_first[top] = start + half * stride
            frame_n[top] = count - half
    return sums[0]


@kjit
def _pairwise_block(a, first, n, stride):
    if n < 8:
        total = 0.0
        for i in range(n):
            total += a[first + i * stride]
        return total
    r0 = a[first]
    r1 = a[first + stride]
    r2 = a[first + 2 * stride]
    r3 = a[first + 3 * stride]
    r4 = a[first + 4 * stride]
    r5 = a[first + 5 * stride]
    r6 = a[first + 6 * stride]
    r7 = a[first + 7 * stride]
    i = 8
    while i < n - n % 8:
        at = first + i * stride
        r0 += a[at]
        r1 += a[at + stride]
        r2 += a[at + 2 * stride]
        r3 += a[at + 3 * stride]
        r4 += a[at + 4 * stride]
        r5 += a[at + 5 * stride]
        r6 += a[at + 6 * stride]
        r7 += a[at + 7 * stride]
        i += 8
    total = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        total += a[first + i * stride]
        i += 1
    return total


@kjit(allocates=True)
def summary_figures(counters, warm, nf):
    """Last value, peak and means of one mode's trace, per family.

    Parameters
    ----------
    counters : numpy.ndarray of int64, shape (len(TRACE_COUNTERS), samples * nf)
        The mode's counter block (:attr:`ipam_core.pipeline.run.ModeResult.counters`):
        column ``i * nf + f`` is sample ``i`` of the ``f``-th family.
    warm : numpy.ndarray of float64, shape (samples * nf,)
        ``warm_addrs_per_node``, in the same column order.
    nf : int
        Families in the trace.

    Returns
    -------
    ints : numpy.ndarray of int64, shape (nf, 2 * len(TRACE_COUNTERS) + 1)
        Per family: every counter's last value, then every counter's peak,
        then the peak of ``pods_pending`` after start-up (from the first
        sample where as many pods run as wait, as
        :func:`ipam_core.trace.metrics.startup_end`; the whole run when that
        never happens).
    floats : numpy.ndarray of float64, shape (nf, SF_NCOL)
        Per family: the ``SF_*`` sums and count.
    """
    n_counters = counters.shape[0]
    n = counters.shape[1] // nf
    ints = np.zeros((nf, 2 * n_counters + 1), dtype=np.int64)
    floats = np.zeros((nf, SF_NCOL), dtype=np.float64)
    if n == 0:
        return ints, floats
    for f in range(nf):
        for k in range(n_counters):
            ints[f, k] = counters[k, f + (n - 1) * nf]
            peak = counters[k, f]
            for i in range(1, n):
                value = counters[k, f + i * nf]
                if value > peak:
                    peak = value
            ints[f, n_counters + k] = peak
        after = 0
        for i in range(n):
            if counters[TR_RUNNING, f + i * nf] >= counters[TR_PENDING, f + i * nf]:
                after = i
                break
        peak = counters[TR_PENDING, f + after * nf]
        for i in range(after + 1, n):
            value = counters[TR_PENDING, f + i * nf]
            if value > peak:
                peak = value
        ints[f, 2 * n_counters] = peak
        # term by term from 0.0: numpy's order for these means (see the module docstring)
        m = 0
        idle = 0.0
        reserved = 0.0
        for i in range(n):
            carved = counters[TR_CARVED, f + i * nf]
            if carved > 0:
                idle += np.float64(counters[TR_IDLE, f + i * nf]) / np.float64(carved)
                reserved += np.float64(counters[TR_RESERVED, f + i * nf]) / np.float64(carved)
                m += 1
        floats[f, SF_IDLE_SUM] = idle
        floats[f, SF_RESERVED_SUM] = reserved
        floats[f, SF_CARVED_SAMPLES] = m
        floats[f, SF_WARM_SUM] = pairwise_sum(warm, f, n, nf)
    return ints, floats


@kjit(allocates=True)
def cast_mean_sum(values, n):
    """The sum ``np.mean`` of ``n`` int64 values takes: numpy casts them to float64 in buffers of
    :data:`NUMPY_BUFFER` and adds each buffer's pairwise sum to a total that starts at 0.0.

    ``values`` holds the values already cast (float64, contiguous).
    """
    total = 0.0
    for start in range(0, n, NUMPY_BUFFER):
        total += _pairwise_run(values, start, min(NUMPY_BUFFER, n - start), 1)
    return total


@kjit(allocates=True)
def idle_figures(counters, nf):
    """The sweep's idle-address figures of one mode, per family, in one pass.

    Parameters
    ----------
    counters : numpy.ndarray of int64, shape (len(TRACE_COUNTERS), samples * nf)
        The mode's counter block, as for :func:`summary_figures`.
    nf : int
        Families in the trace.

    Returns
    -------
    sums : numpy.ndarray of float64, shape (nf, 2)
        Per family: the sum ``np.mean`` takes of ``addrs_idle``, and of
        ``addrs_idle`` at the samples where ``pods_failed_free_elsewhere``
        grew since the previous sample (from 0 before the first).
    counts : numpy.ndarray of int64, shape (nf, 3)
        Per family: samples, those stranding samples, and the peak of ``addrs_idle``.
    """
    n = counters.shape[1] // nf
    sums = np.zeros((nf, 2), dtype=np.float64)
    counts = np.zeros((nf, 3), dtype=np.int64)
    idle = np.empty(n, dtype=np.float64)
    stranded = np.empty(n, dtype=np.float64)
    for f in range(nf):
        n_stranded = 0
        previous = 0
        peak = counters[TR_IDLE, f] if n else 0
        for i in range(n):
            value = counters[TR_IDLE, f + i * nf]
            idle[i] = np.float64(value)
            if value > peak:
                peak = value
            failed = counters[TR_FAILED_FREE, f + i * nf]
            if failed - previous > 0:
                stranded[n_stranded] = np.float64(value)
                n_stranded += 1
            previous = failed
        sums[f, 0] = cast_mean_sum(idle, n)
        sums[f, 1] = cast_mean_sum(stranded, n_stranded)
        counts[f, 0] = n
        counts[f, 1] = n_stranded
        counts[f, 2] = peak
    return sums, counts
