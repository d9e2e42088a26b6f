"""The arena kernels bound to their arrays, as Python callables of ~27 ns a call.

Numba's entry point of a compiled function builds and unpacks an argument
tuple and checks its environment on every call: ~60 ns for ``(arena, slot)``,
more than the kernel's work and, twice per release + allocate pair, most of
what the allocators' per-call methods cost. :func:`bind` instead makes a
builtin function (CPython's ``METH_FASTCALL`` convention, so no tuple) from
one C function compiled with :func:`~ipam_core.kernels._jit.kcfunc`. The
builtin's ``self`` is a tuple that holds the arrays (keeping them alive) and
their addresses; a call passes only the slot, or nothing for
:func:`~ipam_core.kernels.arena.arena_take_ahead`::

    bound = (kernel code, arena address, arena length, starts address, starts length, arena, starts)

With the JIT disabled the same calls go to the plain kernels
(``functools.partial``), which give the same results.
"""

from __future__ import annotations

import ctypes
import functools

import numba
import numpy as np
from numba import carray, types

from ipam_core.kernels._jit import kcfunc
from ipam_core.kernels.arena import ARENA_HEADER, arena_clear_one, arena_set_one, arena_take_ahead, arena_take_one

__all__ = ["bind"]

# CPython's C API, called from the compiled function. PyObject pointers travel as
# intp, which the C ABI passes and returns exactly as pointers.
_OBJECT = types.intp
_long_as_int64 = types.ExternalFunction("PyLong_AsLongLong", types.int64(_OBJECT))
_long_as_address = types.ExternalFunction("PyLong_AsVoidPtr", types.voidptr(_OBJECT))
_long_from_int64 = types.ExternalFunction("PyLong_FromLongLong", _OBJECT(types.int64))
_tuple_item = types.ExternalFunction("PyTuple_GetItem", _OBJECT(_OBJECT, types.intp))
_error_set = types.ExternalFunction("PyErr_Occurred", _OBJECT())
_bad_argument = types.ExternalFunction("PyErr_BadArgument", types.intc())
_NULL = 0  # the C function's "an exception is set"

# Which kernel a bound function calls (the tuple's first item).
_TAKE_ONE, _SET_ONE, _CLEAR_ONE, _TAKE_AHEAD = 0, 1, 2, 3
_CODES = {arena_take_one: _TAKE_ONE, arena_set_one: _SET_ONE, arena_clear_one: _CLEAR_ONE, arena_take_ahead: _TAKE_AHEAD}

# PyObject *(*)(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
_FASTCALL_SIGNATURE = _OBJECT(_OBJECT, types.CPointer(_OBJECT), types.intp)
_METH_FASTCALL = 0x0080


def _call(bound, args, nargs):
    code = _long_as_int64(_tuple_item(bound, 0))
    arena = carray(_long_as_address(_tuple_item(bound, 1)), _long_as_int64(_tuple_item(bound, 2)), np.uint64)
    if code == _TAKE_AHEAD:
        if nargs != 0:
            _bad_argument()
            return _NULL
        starts = carray(_long_as_address(_tuple_item(bound, 3)), _long_as_int64(_tuple_item(bound, 4)), np.int64)
        return _long_from_int64(arena_take_ahead(arena, starts))
    if nargs != 1:
        _bad_argument()
        return _NULL
    slot = _long_as_int64(args[0])
    if slot == -1 and _error_set() != _NULL:  # not an int, or too large
        return _NULL
    if code == _TAKE_ONE:
        return _long_from_int64(arena_take_one(arena, slot))
    if code == _SET_ONE:
        return _long_from_int64(arena_set_one(arena, slot))
    return _long_from_int64(arena_clear_one(arena, slot))


class _MethodDef(ctypes.Structure):
    # CPython's PyMethodDef
    _fields_ = [
        ("ml_name", ctypes.c_char_p),
        ("ml_meth", ctypes.c_void_p),
        ("ml_flags", ctypes.c_int),
        ("ml_doc", ctypes.c_char_p),
    ]


_new_builtin = ctypes.pythonapi.PyCMethod_New
_new_builtin.restype = ctypes.py_object
_new_builtin.argtypes = [ctypes.POINTER(_MethodDef), ctypes.py_object, ctypes.py_object, ctypes.c_void_p]


@functools.cache
def _method_def() -> _MethodDef:
    # Compiled (or loaded from the cache) on first use; lives as long as the process, as
    # every builtin made from it points at it.
    compiled = kcfunc(_FASTCALL_SIGNATURE, _call)
    return _MethodDef(b"arena_call", compiled.address, _METH_FASTCALL, None)


def bind(kernel, arena: np.ndarray, starts: np.ndarray | None = None):
    """``kernel`` with its arrays bound: ``f(slot)``, or ``f()`` for ``arena_take_ahead``.

    Parameters
    ----------
    kernel : numba dispatcher
        :func:`~ipam_core.kernels.arena.arena_take_one`,
        :func:`~ipam_core.kernels.arena.arena_set_one`,
        :func:`~ipam_core.kernels.arena.arena_clear_one` or
        :func:`~ipam_core.kernels.arena.arena_take_ahead`.
    arena : numpy.ndarray of uint64
        A C-contiguous arena (:func:`~ipam_core.kernels.arena.arena_layout`).
    starts : numpy.ndarray of int64, optional
        For ``arena_take_ahead`` (only): its C-contiguous starts.

    Returns
    -------
    callable
        Returns what ``kernel(arena, slot)`` (``kernel(arena, starts)``)
        returns, as a Python int. It keeps the arrays alive. The slot is not
        checked (as the kernels do not check it): it must be in range.

    Raises
    ------
    ValueError
        An array of another type, shape or layout, or ``starts`` given to
        another kernel or missing for ``arena_take_ahead``.
    """
    if (starts is None) == (kernel is arena_take_ahead):
        raise ValueError("bind() takes starts for arena_take_ahead and for no other kernel")
    if numba.config.DISABLE_JIT:
        return functools.partial(kernel, arena) if starts is None else functools.partial(kernel, arena, starts)
    _check(arena, np.uint64, ARENA_HEADER)
    if starts is None:
        bound = (_CODES[kernel], arena.ctypes.data, arena.shape[0], 0, 0, arena)
    else:
        _check(starts, np.int64, 1)
        bound = (_CODES[kernel], arena.ctypes.data, arena.shape[0], starts.ctypes.data, starts.shape[0], arena, starts)
    return _new_builtin(ctypes.byref(_method_def()), bound, None, None)


def _check(array: np.ndarray, dtype, min_length: int) -> None:
    # The compiled function reads the array through its address (a copy would not do), from its header on.
    if not (
        isinstance(array, np.ndarray)
        and array.dtype == dtype
        and array.ndim == 1
        and array.flags.c_contiguous
        and array.shape[0] >= min_length
    ):
        raise ValueError(f"bind() needs a C-contiguous 1-d {np.dtype(dtype)} array of {min_length}+ items, got {array!r:.80}")
