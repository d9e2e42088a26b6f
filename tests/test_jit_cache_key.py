"""The kernel cache's key (``ipam_core.kernels._jit``) changes whenever compiled code can.

Numba's own cache only notices edits to the file that defines a function, so a
kernel in ``engine/core.py`` calling ``bm_set`` from ``kernels/slots.py`` would
keep running the old ``bm_set`` after an edit to ``slots.py``. The project keys
its cache folder on every compiled source and every ipam_core module those
import; these tests check that set independently (with :mod:`ast`, not the
key's own regular expression) and that editing a callee changes the key.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

from ipam_core.kernels import _jit

PACKAGE = _jit._PACKAGE_DIR


def _module_file(package: Path, dotted: str) -> Path | None:
    rel = Path(*dotted.split(".")[1:])
    for candidate in (package / rel.with_suffix(".py"), package / rel / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _dotted(package: Path, path: Path) -> str:
    parts = list(path.relative_to(package).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(["ipam_core", *parts])


def _imported_files(package: Path, path: Path) -> set[Path]:
    """ipam_core modules ``path`` imports: ``import m``, ``from m import f`` and ``from pkg import submodule``."""
    found: set[Path] = set()
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names if alias.name.split(".")[0] == "ipam_core"]
            found.update(f for f in (_module_file(package, n) for n in names) if f)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = _dotted(package, path).split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.split(".")[0] != "ipam_core":
                continue
            subs = [_module_file(package, f"{module}.{alias.name}") for alias in node.names]
            found.update(f for f in subs if f)
            if not all(subs):  # some names are attributes of the module itself
                own = _module_file(package, module)
                if own:
                    found.add(own)
    return found


def _uses_numba(path: Path) -> bool:
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] in ("numba", "llvmlite") for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in ("numba", "llvmlite"):
            return True
        if isinstance(node, ast.Name) and node.id == "kjit":
            return True
    return False


def _needed(package: Path) -> set[Path]:
    """Every file with compiled code, and every ipam_core module those import, transitively."""
    todo = [p for p in package.rglob("*.py") if "__pycache__" not in p.parts and _uses_numba(p)]
    seen: set[Path] = set()
    while todo:
        path = todo.pop()
        if path not in seen:
            seen.add(path)
            todo += _imported_files(package, path) - seen
    return seen


def _rel(paths) -> list[str]:
    return sorted(str(p.relative_to(PACKAGE)) for p in paths)


def test_key_covers_every_module_compiled_code_calls():
    needed = _needed(PACKAGE)
    hashed = set(_jit._compiled_sources())
    # the bitmap kernels call each other across their topic modules
    assert {"kernels/slots.py", "kernels/scan.py", "kernels/bits.py", "kernels/layout.py"} <= set(_rel(needed))
    assert _rel(needed - hashed) == []


@pytest.fixture
def package_copy(tmp_path, monkeypatch):
    """A copy of ipam_core that ``_jit`` hashes instead of the real one."""
    copy = tmp_path / "ipam_core"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(_jit, "_PACKAGE_DIR", copy)
    return copy


@pytest.mark.parametrize(
    "callee, caller",
    [
        ("kernels/slots.py", "kernels/scan.py"),  # bm_take_scan calls bm_set
        ("kernels/bits.py", "kernels/slots.py"),  # popcount64, prefetch_word
        ("kernels/rng.py", "engine/rng.py"),  # uniform_below
        ("kernels/scan.py", "engine/core.py"),  # bm_take_scan inlined into the engine
        ("engine/tables.py", "engine/core.py"),  # constants only: no compiled code of its own
    ],
)
def test_editing_a_callee_changes_the_key(package_copy, callee, caller):
    callee_name = _dotted(package_copy, package_copy / callee)
    assert package_copy / callee in _imported_files(package_copy, package_copy / caller), (
        f"{caller} no longer imports {callee_name}: pick another pair"
    )
    before = _jit._source_stamp()
    with (package_copy / callee).open("a") as f:
        f.write("\nEDITED = 1\n")
    assert _jit._source_stamp() != before


def test_editing_code_outside_the_kernels_keeps_the_key(package_copy):
    # the CLI holds no compiled code and no kernel imports it: its edits must not recompile anything
    assert package_copy / "cli.py" not in set(_jit._compiled_sources())
    before = _jit._source_stamp()
    with (package_copy / "cli.py").open("a") as f:
        f.write("\nEDITED = 1\n")
    assert _jit._source_stamp() == before
