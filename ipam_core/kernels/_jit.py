"""The one place where ipam_core's Numba options and unsigned constants live.

Every compiled kernel in the package is decorated with :func:`kjit`. It is
``numba.njit(cache=True, nogil=True)`` with one twist: the on-disk cache of
ipam_core's kernels lives in a folder named after a hash of the package's
compiled sources. Numba's cache only notices edits to the file that defines a
function, not to the files of the kernels it calls, so keying the folder on
every file with compiled code and every module those import makes a stale
cache impossible after any edit that can change a kernel. The user's
``NUMBA_CACHE_DIR`` (or ``~/.cache/ipam-bench``) is the parent folder, and
the global Numba setting is restored after each decoration, so other
cached code in the same process is unaffected.

Bit arithmetic on ``uint64`` words must use the typed constants below: under
the JIT, ``word | (1 << b)`` with a Python int silently becomes ``int64``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from pathlib import Path

import numba
import numpy as np
from numba.core import types

ZERO = np.uint64(0)
ONE = np.uint64(1)
SIX = np.uint64(6)
SIXTY_THREE = np.uint64(63)
SIXTY_FOUR = np.uint64(64)
FULL = np.uint64(0xFFFFFFFFFFFFFFFF)

_PACKAGE_DIR = Path(__file__).resolve().parent.parent


_IMPORT = re.compile(r"^\s*(?:from\s+(ipam_core(?:\.\w+)*)\s+import\s+(\([^)]*\)|[\w, ]+)|import\s+(ipam_core(?:\.\w+)*))", re.M)


def _module_file(name: str) -> Path | None:
    rel = Path(*name.split(".")[1:])
    for candidate in (_PACKAGE_DIR / rel.with_suffix(".py"), _PACKAGE_DIR / rel / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _compiled_sources() -> list[Path]:
    """Files that hold compiled code, and every ipam_core module they import (transitively).

    Only these can change what a cached kernel does; an edit to the CLI, the
    plots or the scenario loader leaves the cache valid.
    """
    todo = [p for p in _PACKAGE_DIR.rglob("*.py") if re.search(r"\bkjit\b|\bnumba\b", p.read_text())]
    seen: set[Path] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for base, names, plain in _IMPORT.findall(path.read_text()):
            module = base or plain
            found = []
            if base:  # "from pkg import submodule" names modules; the package itself only for other names
                words = [n.split(" as ")[0].split("#")[0].strip() for n in names.strip("()").split(",")]
                subs = [_module_file(f"{module}.{w}") for w in words if w]
                found += subs
                if not subs or not all(subs):
                    found.append(_module_file(module))
            else:
                found.append(_module_file(module))
            todo += [f for f in found if f is not None and f not in seen]
    return sorted(seen)


def _source_stamp() -> str:
    """Hash the compiled sources (names and contents) and Numba's version."""
    digest = hashlib.sha256(numba.__version__.encode())
    for path in _compiled_sources():
        digest.update(str(path.relative_to(_PACKAGE_DIR)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _cache_root() -> str:
    base = os.environ.get("NUMBA_CACHE_DIR") or os.path.join(
        os.path.expanduser("~"), ".cache", "ipam-bench"
    )
    return os.path.join(base, "ipam_core-" + _source_stamp())


CACHE_DIR = _cache_root()


def kjit(fn=None, *, inline=False, allocates=False, inline_llvm=False):
    """Compile ``fn`` with ipam_core's options: ``njit(cache=True, nogil=True)``.

    Kernels that never create arrays are compiled without Numba's reference
    counting (``_nrt=False``): otherwise every array handed to an inlined
    helper costs an atomic incref/decref pair per call, which serialises the
    random loads of a batch (measured: 37 ns instead of 4 ns per slot).

    Parameters
    ----------
    fn : callable
        A Python function written in the Numba subset.
    inline : bool
        Inline the function into its callers at the Numba IR level (tiny
        per-slot helpers).
    allocates : bool
        The function creates arrays, so it needs reference counting.
    inline_llvm : bool
        Compile the function once, on its own, and have LLVM inline it into
        every caller (``forceinline``). For the hot functions of the loop's
        shared machinery (scheduler, address take and give, bind): they take
        a few core tables, and LLVM leaves a call that passes few arrays a
        call, which made the loop up to 36 % slower (results/first-run.md).
        The cold ones stay calls: inlined at every site they slowed it too.

    Returns
    -------
    numba.core.registry.CPUDispatcher
        The lazily compiled dispatcher, cached under :data:`CACHE_DIR`.
    """
    if fn is None:
        return lambda f: kjit(f, inline=inline, allocates=allocates, inline_llvm=inline_llvm)
    with _in_cache_dir():
        dispatcher = numba.njit(
            cache=True,
            nogil=True,
            inline="always" if inline else "never",
            _nrt=allocates,
            forceinline=inline_llvm,
        )(fn)
    _compile_without_literals(dispatcher)
    return dispatcher


def kcfunc(signature, fn):
    """Compile ``fn`` now as a C function of ``signature``, cached like :func:`kjit`'s kernels.

    Parameters
    ----------
    signature : numba signature
        The C signature.
    fn : callable
        A Python function written in the Numba subset; it may call kernels.

    Returns
    -------
    numba.core.ccallback.CFunc
        Its ``address`` is the C function's. Not available when the JIT is
        disabled (``NUMBA_DISABLE_JIT``): callers check first.
    """
    with _in_cache_dir():
        return numba.cfunc(signature, cache=True)(fn)


@contextlib.contextmanager
def _in_cache_dir():
    # Numba reads its cache folder when a function is decorated: ipam_core's, for that moment only.
    previous = numba.config.CACHE_DIR
    numba.config.CACHE_DIR = CACHE_DIR
    try:
        yield
    finally:
        numba.config.CACHE_DIR = previous


def _compile_without_literals(dispatcher) -> None:
    """Make calls from compiled code compile ``dispatcher`` for plain types, never for literal values.

    Numba compiles a jitted callee once per argument type it is called with,
    and a constant argument (``f(st, 0)``, ``f(st, True)``) or a variable whose
    value type inference has only partly resolved counts as its own type
    (``Literal[int](0)``): before this, ``_ring_reverse`` compiled five times per
    rules family and the cloud ``_assign`` seven times, one cold compile each
    (results/first-run.md). No ipam_core kernel branches on a literal, so the
    callee compiles for the plain type (``int64``, ``bool``) and every call
    site shares it. Narrow integers are widened the same way: a value read from
    an ``int32`` table (the pod and node rows) passed on to a callee would
    otherwise compile it a second time for ``int32``; the call site casts.
    """
    resolve = getattr(dispatcher, "get_call_template", None)
    if resolve is None:  # NUMBA_DISABLE_JIT: the plain function, nothing compiles
        return

    def get_call_template(args, kws):
        return resolve(tuple(_plain(a) for a in args), {k: _plain(v) for k, v in kws.items()})

    dispatcher.get_call_template = get_call_template


def _plain(numba_type):
    """``numba_type`` without its literal value, and an integer narrower than 64 bits as ``int64``."""
    numba_type = types.unliteral(numba_type)
    if isinstance(numba_type, types.Integer) and numba_type.bitwidth < 64:
        return types.int64
    return numba_type
