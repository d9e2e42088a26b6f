"""Imports inside ipam_core point one way: no cycles, no upward imports, no imports hidden in functions.

The graph is built from the source (``ast``), as Python runs it: importing
``ipam_core.engine.layout`` from outside the engine package first runs
``ipam_core/engine/__init__.py``, so such an import also depends on that package's
``__init__`` (grimp and import-linter leave that edge out, and they cannot tell a
function-local import from a top-level one, which is why this test reads the AST itself).
Imports under ``if TYPE_CHECKING:`` never run and are not edges.

The layer order, top to bottom, is :data:`LAYERS`; docs/layout.md shows the same picture.
"""

from __future__ import annotations

import ast
import graphlib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

PACKAGE = "ipam_core"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE

#: Layers, top to bottom: a module may import its own layer (without a cycle) or any layer below.
#: A name matches a module and its submodules; ``=name`` the module alone (``=ipam_core``: the package's
#: ``__init__``); ``name.`` its submodules only. The modes sit above the engine: each mode module holds its
#: rules and registers them with the loop, which never names a mode.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("cli", ("ipam_core.cli", "ipam_core.__main__")),
    ("front ends", ("ipam_core.report", "ipam_core.plot", "ipam_core.sweep_plot", "ipam_core.sweep",
                    "ipam_core.migration", "ipam_core.importer",
                    "ipam_core.address_arms")),
    ("pipeline", ("ipam_core.pipeline",)),
    ("scenario", ("ipam_core.scenario",)),
    ("modes", ("ipam_core.modes",)),
    ("engine", ("ipam_core.engine",)),
    ("upstream rules", ("ipam_core.cloud",)),
    ("workloads and traces", ("ipam_core.workloads", "ipam_core.trace")),
    ("structures", ("=ipam_core", "ipam_core.addr", "ipam_core.cidrset", "ipam_core.podiprange", "ipam_core.bitmap",
                    "ipam_core.splitmix", "ipam_core.rundir", "ipam_core.atomic")),
    ("kernels", ("ipam_core.kernels",)),
    ("errors", ("ipam_core.errors",)),
)

#: Third-party packages slow to import, or optional (an extra), and needed by few commands: a module
#: whose imports reach one may be imported inside the function that needs it.
SLOW_OPTIONAL = frozenset({"matplotlib", "dask", "distributed", "scipy", "pydantic", "kubernetes"})


@dataclass
class Module:
    """What one module imports: ipam_core modules at top level and inside functions, and other packages."""

    name: str
    top: set[str] = field(default_factory=set)
    local: list[tuple[int, str]] = field(default_factory=list)  # (line, module) inside a function
    external: set[str] = field(default_factory=set)  # first component of top-level third-party imports


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imported(node: ast.Import | ast.ImportFrom, module: str, is_package: bool, known: set[str]) -> list[str]:
    """The modules an import statement loads (for ``from x import y``: ``x.y`` when that is a module, else ``x``)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:  # relative: from the module's package
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        source = ".".join(base + ([node.module] if node.module else []))
    else:
        source = node.module or ""
    return [f"{source}.{a.name}" if f"{source}.{a.name}" in known else source for a in node.names]


def _resolve(name: str, known: set[str]) -> str | None:
    """The longest prefix of ``name`` that is a module of the package (``None`` outside it)."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in known:
            return candidate
        parts.pop()
    return None


def read_imports(name: str, source: str, is_package: bool, known: set[str]) -> Module:
    """The imports of one module's source (``known``: every module name of the package)."""
    mod = Module(name)

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for sub in child.orelse:
                    visit(sub, in_function)
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                for target in _imported(child, name, is_package, known):
                    inside = _resolve(target, known)
                    if inside is None:
                        if not in_function:
                            mod.external.add(target.split(".")[0])
                    elif in_function:
                        mod.local.append((child.lineno, inside))
                    else:
                        mod.top.add(inside)
                continue
            visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(ast.parse(source), False)
    return mod


@cache
def modules() -> dict[str, Module]:
    """Every module of the package with its imports."""
    paths = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}
    known = set(paths)
    return {name: read_imports(name, path.read_text(), path.name == "__init__.py", known)
            for name, path in paths.items()}


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def runtime_targets(importer: str, target: str) -> set[str]:
    """What importing ``target`` from ``importer`` runs: the target, and each package ``__init__`` above it
    that is not already running because it holds ``importer``."""
    running = set(_ancestors(importer)) | {importer}
    return {target, *(p for p in _ancestors(target) if p not in running)} - {importer}


def import_graph(mods: dict[str, Module], include_local: bool = True) -> dict[str, set[str]]:
    """Module -> the package modules importing it runs."""
    out: dict[str, set[str]] = {}
    for name, mod in mods.items():
        targets = set(mod.top) | ({t for _, t in mod.local} if include_local else set())
        out[name] = set().union(*(runtime_targets(name, t) for t in targets)) if targets else set()
    return out


@cache
def graph(include_local: bool = True) -> dict[str, set[str]]:
    """The package's import graph (function-local imports included unless ``include_local`` is false)."""
    return import_graph(modules(), include_local)


def find_cycle(edges: dict[str, set[str]]) -> list[str]:
    """One import cycle of ``edges`` (first module repeated at the end), or ``[]``."""
    try:
        tuple(graphlib.TopologicalSorter(edges).static_order())
    except graphlib.CycleError as exc:
        return list(exc.args[1])
    return []


def upward_imports(edges: dict[str, set[str]]) -> list[str]:
    """Every edge from a lower layer to a higher one, as text."""
    return sorted(
        f"{name} ({LAYERS[layer_of(name)][0]}) imports {target} ({LAYERS[layer_of(target)][0]})"
        for name, targets in edges.items() for target in targets if layer_of(target) < layer_of(name)
    )


def layer_of(name: str) -> int:
    """Index in :data:`LAYERS` of the most specific entry matching ``name`` (0 = top)."""
    best, best_len = None, -1
    for index, (_, entries) in enumerate(LAYERS):
        for entry in entries:
            if entry.startswith("="):
                hit = name == entry[1:]
            elif entry.endswith("."):
                hit = name.startswith(entry)
            else:
                hit = name == entry or name.startswith(entry + ".")
            if hit and len(entry) > best_len:
                best, best_len = index, len(entry)
    assert best is not None, f"{name} is in no layer of tests/test_layers.py LAYERS; add it"
    return best


def _reaches_slow(target: str, importer: str = "ipam_core.cli") -> bool:
    """Whether ``importer`` importing ``target`` loads a package of :data:`SLOW_OPTIONAL` (top-level imports,
    transitively, parent packages included)."""
    top = graph(False)
    seen, stack = set(), list(runtime_targets(importer, target))
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        if modules()[current].external & SLOW_OPTIONAL:
            return True
        stack.extend(top[current])
    return False


# ---------------------------------------------------------------------------- the rules
def test_the_package_has_no_import_cycle():
    cycle = find_cycle(graph())
    assert not cycle, f"import cycle: {' -> '.join(cycle)}"


def test_no_module_imports_a_higher_layer():
    upward = upward_imports(graph())
    assert not upward, "imports against the layer order:\n" + "\n".join(upward)


def test_no_function_local_import_of_the_package_but_for_slow_optional_dependencies():
    hidden = sorted(
        f"{name}:{line} imports {target} inside a function"
        for name, mod in modules().items() for line, target in mod.local if not _reaches_slow(target, name)
    )
    assert not hidden, ("function-local imports of ipam_core modules (import at the top; only modules that "
                        f"load {', '.join(sorted(SLOW_OPTIONAL))} may wait):\n" + "\n".join(hidden))


def test_every_module_has_a_layer():
    for name in modules():
        layer_of(name)
    assert LAYERS[layer_of("ipam_core.pipeline")][0] == "pipeline"
    assert LAYERS[layer_of("ipam_core.pipeline.run")][0] == "pipeline"
    assert LAYERS[layer_of("ipam_core.modes.multi_pool")][0] == "modes"
    assert LAYERS[layer_of("ipam_core.engine")][0] == LAYERS[layer_of("ipam_core.engine.core")][0] == "engine"


# ---------------------------------------------------------------------------- the checker itself
PROBE = """\
from __future__ import annotations
from typing import TYPE_CHECKING
from ipam_core.engine.layout import Layout
from . import spec
if TYPE_CHECKING:
    from ipam_core.cli import app
def f():
    from ipam_core.scenario import loader
    import matplotlib
"""


def test_the_checker_reads_top_level_local_and_type_checking_imports():
    mod = read_imports("ipam_core.modes.probe", PROBE, False, set(modules()))
    assert mod.top == {"ipam_core.engine.layout", "ipam_core.modes.spec"}
    assert [t for _, t in mod.local] == ["ipam_core.scenario.loader"]  # the cli import never runs
    assert "matplotlib" not in mod.external  # only top-level packages count for "slow to import"
    assert _reaches_slow("ipam_core.plot") and not _reaches_slow("ipam_core.scenario")


def test_the_checker_sees_the_cycle_through_a_parent_package_and_the_upward_import():
    # what this layout prevents: a mode importing engine.layout runs engine/__init__; were anything the engine
    # package runs to import the modes (as engine/__init__ did when it was the pipeline), they would import each other
    assert runtime_targets("ipam_core.modes.eni", "ipam_core.engine.layout") == {
        "ipam_core.engine.layout", "ipam_core.engine"}
    assert runtime_targets("ipam_core.engine.sampling", "ipam_core.engine.tables") == {"ipam_core.engine.tables"}
    mods = {name: Module(name) for name in ("ipam_core.engine", "ipam_core.engine.sampling", "ipam_core.engine.layout",
                                            "ipam_core.modes", "ipam_core.modes.eni")}
    mods["ipam_core.engine"].top = {"ipam_core.engine.sampling"}
    mods["ipam_core.engine.sampling"].top = {"ipam_core.modes"}
    mods["ipam_core.modes"].top = {"ipam_core.modes.eni"}
    mods["ipam_core.modes.eni"].top = {"ipam_core.engine.layout"}
    edges = import_graph(mods)
    assert set(find_cycle(edges)) == {"ipam_core.engine", "ipam_core.engine.sampling", "ipam_core.modes",
                                      "ipam_core.modes.eni"}
    assert upward_imports(edges) == ["ipam_core.engine.sampling (engine) imports ipam_core.modes (modes)"]
    mods["ipam_core.engine.sampling"].top = set()
    mods["ipam_core.engine.sampling"].local = [(1, "ipam_core.modes")]  # hiding it in a function does not help
    assert find_cycle(import_graph(mods))


# ---------------------------------------------------------------------------- docs/layout.md shows the same
DOC = ROOT.parent / "docs" / "layout.md"


def _table_rows(text: str, first_header: str) -> list[list[str]]:
    """The cells of the Markdown table whose header row starts with ``first_header`` (header and rule left out)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def test_docs_layout_lists_the_layers_in_order():
    rows = _table_rows(DOC.read_text(), "layer (top to bottom)")
    assert [r[0] for r in rows] == [name for name, _ in LAYERS]


def test_docs_layout_lists_every_registered_mode_as_the_registry_has_it():
    from ipam_core.modes import REGISTRY, get_mode

    rows = {r[0].strip("`"): r for r in _table_rows(DOC.read_text(), "mode")}
    assert list(rows) == list(REGISTRY)
    for name, spec in REGISTRY.items():
        row = rows[name]
        module = get_mode(name).__name__.removeprefix(f"{PACKAGE}.").replace(".", "/") + ".py"
        assert row[1] == f"`{module}`" and row[2] == spec.rules and row[3] == f"`{spec.settings}`"
        assert row[5] == (f"`{spec.helm_mode}`" if spec.helm_mode else "-")
        assert row[6] == ("yes" if spec.migration else "no") and row[8] == spec.summary


# ---------------------------------------------------------------------------- one list of modes
def test_no_list_of_modes_outside_the_registry():
    """A tuple, list or set literal naming two or more modes outside ipam_core/modes/ is a second mode list."""
    from ipam_core.modes import REGISTRY

    names = set(REGISTRY)
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        if path.parent.name == "modes":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
                listed = [e.value for e in node.elts if isinstance(e, ast.Constant) and e.value in names]
                if len(listed) >= 2:
                    found.append(f"{path.relative_to(ROOT.parent)}:{node.lineno} {listed}")
    assert not found, "mode lists that should derive from ipam_core.modes.REGISTRY:\n" + "\n".join(found)
