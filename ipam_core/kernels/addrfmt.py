"""Compiled kernels that write many IP addresses as text, Arrow-style.

Each kernel takes a base address, an array of integer offsets and a shift,
and writes the text of ``base + (offset << shift)`` for every offset,
back to back, into one ``uint8`` buffer; ``out_offsets[k]`` and
``out_offsets[k + 1]`` bracket the ``k``-th string. That is exactly the
data and offsets buffers of an Arrow ``string`` (``int32`` offsets) or
``large_string`` (``int64`` offsets) array, so :func:`ipam_core.addr.format_addresses`
wraps them without touching a Python ``str`` per address.

* ``shift = 0`` formats addresses (``10.0.0.7``);
* ``shift = bits - node_mask`` with a ``suffix`` of ``b"/24"`` formats node
  CIDRs (block ``i`` starts at ``base | (i << shift)``; blocks are aligned, so
  ``|`` and ``+`` agree).

IPv6 text is the RFC 5952 canonical form, exactly as Python's ``ipaddress``
prints it: lowercase hex, no leading zeros in a group, and the longest run
of two or more all-zero groups replaced by ``::`` (the leftmost run on a
tie). IPv4-mapped addresses get no dotted tail (the same output as
``ipaddress`` on Python before 3.13).

The caller sizes ``buf`` for the worst case (``IPV4_MAX_CHARS`` or
``IPV6_MAX_CHARS`` plus the suffix, times the count) and checks that the
offsets are in range: kernels never raise.
"""

from __future__ import annotations

import numpy as np

from ipam_core.kernels._jit import ONE, ZERO, FULL, kjit

#: Longest dotted quad, ``255.255.255.255``.
IPV4_MAX_CHARS = 15
#: Longest canonical IPv6 text, eight groups of four hex digits and seven colons.
IPV6_MAX_CHARS = 39

_BYTE = np.uint64(0xFF)
_GROUP = np.uint64(0xFFFF)
_COLON = 58
_DOT = 46


@kjit(inline=True)
def _put_decimal(buf, pos, v):
    # v in [0, 255]: no leading zeros.
    if v >= 100:
        buf[pos] = 48 + v // 100
        pos += 1
        buf[pos] = 48 + (v // 10) % 10
        pos += 1
    elif v >= 10:
        buf[pos] = 48 + v // 10
        pos += 1
    buf[pos] = 48 + v % 10
    return pos + 1


def _decimal_table():
    # Row v: the decimal text of v (no leading zeros) followed by ".", zero-padded to 4 bytes.
    table = np.zeros((256, 4), dtype=np.uint8)
    lengths = np.zeros(256, dtype=np.int64)
    for v in range(256):
        text = str(v).encode() + b"."
        table[v, : len(text)] = np.frombuffer(text, dtype=np.uint8)
        lengths[v] = len(text) - 1
    return table, lengths


#: ``_DECIMAL[v]``: text of the octet ``v`` and a dot; ``_DECIMAL_LEN[v]``: its digit count.
_DECIMAL, _DECIMAL_LEN = _decimal_table()


@kjit(inline=True)
def _put_octet_dot(buf, pos, v):
    # Digits of v and a dot as four unconditional byte stores (the bytes past the
    # text are overwritten next), so no branch on the digit count. Needs pos + 4 <= len(buf).
    buf[pos] = _DECIMAL[v, 0]
    buf[pos + 1] = _DECIMAL[v, 1]
    buf[pos + 2] = _DECIMAL[v, 2]
    buf[pos + 3] = _DECIMAL[v, 3]
    return pos + _DECIMAL_LEN[v] + 1


@kjit(inline=True)
def _put_hex(buf, pos, g):
    # g in [0, 0xffff]: lowercase, no leading zeros.
    ndig = 1
    if g >= 0x1000:
        ndig = 4
    elif g >= 0x100:
        ndig = 3
    elif g >= 0x10:
        ndig = 2
    for d in range(ndig - 1, -1, -1):
        nib = (g >> (4 * d)) & 0xF
        buf[pos] = 48 + nib if nib < 10 else 87 + nib
        pos += 1
    return pos


@kjit(inline=True)
def _put_suffix(buf, pos, suffix):
    for s in range(suffix.shape[0]):
        buf[pos] = suffix[s]
        pos += 1
    return pos


@kjit(inline=True)
def _group(hi, lo, i):
    # 16-bit group i (0 = leftmost) of the 128-bit value hi:lo, as int64.
    if i < 4:
        return np.int64((hi >> np.uint64(48 - 16 * i)) & _GROUP)
    return np.int64((lo >> np.uint64(48 - 16 * (i - 4))) & _GROUP)


@kjit
def fmt_ipv4(base, offsets, shift, suffix, buf, out_offsets):
    """Write ``base + (offset << shift)`` as dotted quads, then ``suffix``.

    Parameters
    ----------
    base : numpy.uint64
        The 32-bit base address.
    offsets : numpy.ndarray of int64
        Non-negative offsets; the caller guarantees every result fits in
        32 bits.
    shift : numpy.uint64
        Left shift applied to each offset (0 for addresses, ``32 - mask``
        for CIDR blocks); at most 32.
    suffix : numpy.ndarray of uint8
        Bytes appended to every string (empty, or ``b"/24"``).
    buf : numpy.ndarray of uint8
        Output text, at least ``len(offsets) * (15 + len(suffix))`` bytes.
    out_offsets : numpy.ndarray of int32 or int64
        Output string bounds, length ``len(offsets) + 1``.

    Returns
    -------
    int
        Bytes written (``out_offsets[-1]``).
    """
    pos = 0
    out_offsets[0] = 0
    # Room for the widest text plus the junk bytes the table stores may leave behind.
    room = IPV4_MAX_CHARS + 1 + suffix.shape[0]
    for k in range(offsets.shape[0]):
        v = base + (np.uint64(offsets[k]) << shift)
        if pos + room <= buf.shape[0]:
            pos = _put_octet_dot(buf, pos, np.int64((v >> np.uint64(24)) & _BYTE))
            pos = _put_octet_dot(buf, pos, np.int64((v >> np.uint64(16)) & _BYTE))
            pos = _put_octet_dot(buf, pos, np.int64((v >> np.uint64(8)) & _BYTE))
            pos = _put_octet_dot(buf, pos, np.int64(v & _BYTE)) - 1  # no dot after the last octet
        else:  # the last strings of an exactly sized buffer: byte by byte
            for o in range(3, -1, -1):
                pos = _put_decimal(buf, pos, np.int64((v >> np.uint64(8 * o)) & _BYTE))
                if o > 0:
                    buf[pos] = _DOT
                    pos += 1
        pos = _put_suffix(buf, pos, suffix)
        out_offsets[k + 1] = pos
    return pos


@kjit
def fmt_ipv6(base_hi, base_lo, offsets, shift, suffix, buf, out_offsets):
    """Write ``base + (offset << shift)`` in canonical IPv6 text, then ``suffix``.

    Parameters
    ----------
    base_hi, base_lo : numpy.uint64
        The upper and lower 64 bits of the 128-bit base address.
    offsets : numpy.ndarray of int64
        Non-negative offsets; the caller guarantees every result fits in
        128 bits.
    shift : int
        Left shift applied to each offset, 0 to 128 (128 contributes
        nothing: only index 0 exists then).
    suffix : numpy.ndarray of uint8
        Bytes appended to every string.
    buf : numpy.ndarray of uint8
        Output text, at least ``len(offsets) * (39 + len(suffix))`` bytes.
    out_offsets : numpy.ndarray of int32 or int64
        Output string bounds, length ``len(offsets) + 1``.

    Returns
    -------
    int
        Bytes written (``out_offsets[-1]``).

    Notes
    -----
    The zero-run choice follows ``ipaddress._compress_hextets``: the first
    longest run of at least two zero groups becomes ``::``.
    """
    pos = 0
    out_offsets[0] = 0
    for k in range(offsets.shape[0]):
        off = np.uint64(offsets[k])
        add_hi = ZERO
        add_lo = ZERO
        # Shifts of 64 or more are undefined on a uint64: split by hand.
        if shift == 0:
            add_lo = off
        elif shift < 64:
            add_lo = off << np.uint64(shift)
            add_hi = off >> np.uint64(64 - shift)
        elif shift < 128:
            add_hi = off << np.uint64(shift - 64)
        # 128-bit add without ever overflowing a uint64 (no wrap warnings
        # when the kernel runs as plain Python).
        if add_lo > FULL - base_lo:
            lo = add_lo - (FULL - base_lo) - ONE
            hi = base_hi + add_hi + ONE
        else:
            lo = base_lo + add_lo
            hi = base_hi + add_hi

        best_start = -1
        best_len = 1
        run_start = -1
        for i in range(8):
            if _group(hi, lo, i) == 0:
                if run_start < 0:
                    run_start = i
                run_len = i + 1 - run_start
                if run_len > best_len:
                    best_len = run_len
                    best_start = run_start
            else:
                run_start = -1

        need_colon = False
        i = 0
        while i < 8:
            if i == best_start:
                buf[pos] = _COLON
                buf[pos + 1] = _COLON
                pos += 2
                i += best_len
                need_colon = False
                continue
            if need_colon:
                buf[pos] = _COLON
                pos += 1
            pos = _put_hex(buf, pos, _group(hi, lo, i))
            need_colon = True
            i += 1
        pos = _put_suffix(buf, pos, suffix)
        out_offsets[k + 1] = pos
    return pos
