"""Word-level intrinsics: bit counts and CPU prefetch hints.

:func:`ctz64` and :func:`popcount64` are plain Python, so every kernel also runs
under ``NUMBA_DISABLE_JIT=1``; under the JIT their overloads lower them to LLVM's
``cttz`` and ``ctpop``. :func:`prefetch_word` and :func:`prefetch_row` are no-ops
in Python and LLVM ``prefetch`` hints under the JIT.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic, overload


def ctz64(x):
    """Count trailing zero bits of a 64-bit word (64 for zero).

    Plain Python so kernels also run under ``NUMBA_DISABLE_JIT=1``; under the
    JIT the overload below lowers it to LLVM's ``cttz``.

    Parameters
    ----------
    x : int or numpy.uint64
        The word.

    Returns
    -------
    int
        Index of the lowest set bit, or 64 when ``x`` is zero.
    """
    x = int(x)
    return 64 if x == 0 else (x & -x).bit_length() - 1


def popcount64(x):
    """Count the set bits of a 64-bit word.

    Parameters
    ----------
    x : int or numpy.uint64
        The word.

    Returns
    -------
    int
        Number of bits set.
    """
    return int(x).bit_count()


def _llvm_unary(name, extra_false_arg):
    @intrinsic
    def _intr(typingctx, x):
        if not isinstance(x, types.Integer):
            return None

        def codegen(context, builder, signature, args):
            (value,) = args
            i64 = ir.IntType(64)
            arg_types = [i64, ir.IntType(1)] if extra_false_arg else [i64]
            fn = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(i64, arg_types), name
            )
            call_args = [value, cgutils.false_bit] if extra_false_arg else [value]
            return builder.call(fn, call_args)

        return types.int64(types.uint64), codegen

    return _intr


_cttz = _llvm_unary("llvm.cttz.i64", True)
_ctpop = _llvm_unary("llvm.ctpop.i64", False)


@overload(ctz64, jit_options={"cache": True})
def _ctz64_jit(x):
    def impl(x):
        return _cttz(np.uint64(x))

    return impl


@overload(popcount64, jit_options={"cache": True})
def _popcount64_jit(x):
    def impl(x):
        return _ctpop(np.uint64(x))

    return impl


def prefetch_word(words, j):
    """Hint the CPU to load ``words[j]`` (a no-op outside the JIT).

    Parameters
    ----------
    words : numpy.ndarray
        Any 1-D array.
    j : int
        Index to prefetch (any value: a prefetch never faults).
    """


def prefetch_row(table, i):
    """Hint the CPU to load row ``i`` of a 2-D C-contiguous table (first and last element).

    A no-op outside the JIT. A row of up to 64 bytes past a cache-line
    boundary is covered whole; wider rows only at both ends.

    Parameters
    ----------
    table : numpy.ndarray
        A 2-D C-contiguous array.
    i : int
        Row to prefetch (any value: a prefetch never faults).
    """


@intrinsic
def _llvm_prefetch(typingctx, arr, idx):
    # idx: one int per dimension of arr (a tuple for 2-D)
    if not isinstance(arr, types.Array):
        return None

    def codegen(context, builder, signature, args):
        aryty, idxty = signature.args
        ary = context.make_array(aryty)(context, builder, args[0])
        if isinstance(idxty, types.BaseTuple):
            parts = [(builder.extract_value(args[1], k), ty) for k, ty in enumerate(idxty)]
        else:
            parts = [(args[1], idxty)]
        indices = [context.cast(builder, value, ty, types.intp) for value, ty in parts]
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, indices, wraparound=False)
        i32 = ir.IntType(32)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [ptr.type, i32, i32, i32]), "llvm.prefetch.p0"
        )
        # write intent, high locality, data cache
        builder.call(fn, [ptr, ir.Constant(i32, 1), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return types.void(arr, idx), codegen


@overload(prefetch_word, jit_options={"cache": True})
def _prefetch_word_jit(words, j):
    def impl(words, j):
        _llvm_prefetch(words, j)

    return impl


@overload(prefetch_row, jit_options={"cache": True})
def _prefetch_row_jit(table, i):
    def impl(table, i):
        _llvm_prefetch(table, (i, 0))
        _llvm_prefetch(table, (i, table.shape[1] - 1))

    return impl
