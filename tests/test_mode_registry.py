"""The mode registry is the only list of modes: everything that names modes derives from it.

The last test adds a mode the way a contributor would, in a copy of the package: one new module in
``ipam_core/modes/`` and one entry in the registry, and nothing else; scenario validation, the CLI's
mode flags and the migration lists then know it. (Running it through the compiled engine is the hooks
step of issue #9; here the engine gets its layout.)
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ipam_core import modes
from ipam_core.errors import ConfigError
from ipam_core.migration.helm import MIGRATION_MODES
from ipam_core.scenario import ALL_MODES, CLOUD_MODES, DEFAULT_MODES, load_scenario
from ipam_core.scenario import defaults as d
from ipam_core.scenario._where import Where

ROOT = Path(__file__).resolve().parents[1]


def test_every_list_of_modes_is_the_registrys():
    specs = modes.REGISTRY
    assert ALL_MODES == tuple(specs) == tuple(m.MODE.name for m in modes.MODULES)
    assert DEFAULT_MODES == tuple(n for n, s in specs.items() if not s.cloud and not s.named_only)
    assert CLOUD_MODES == tuple(n for n, s in specs.items() if s.cloud)
    assert MIGRATION_MODES == tuple(s.helm_mode for s in specs.values() if s.migration)
    for name in specs:
        assert modes.get_mode(name).MODE is specs[name] and modes.mode_spec(name) is specs[name]


def test_mode_sections_are_the_scenario_keys():
    owned = {s.path: s.keys for spec in modes.REGISTRY.values() for s in spec.sections}
    assert {f"cilium.{k}" for k in d.CILIUM_KEYS} & set(owned) == {p for p in owned if p.startswith("cilium.")}
    assert {f"cloud.{k}" for k in d.CLOUD_KEYS} & set(owned) == {p for p in owned if p.startswith("cloud.")}
    assert owned["cloud.awsVpcCni"][0] == "WARM_ENI_TARGET"


def test_each_mode_checks_the_scenario_through_its_spec():
    base = "name: t\nworkload: {generator: steady-churn}\n"
    with pytest.raises(ConfigError, match=r"cloud\.crd\.writer.*needed by mode crd"):
        load_scenario(base + "cilium: {ipam: {mode: crd}}\ncloud: {crd: {writer: static}}\n")
    default = load_scenario("default")
    for name in default.modes:  # the modes the built-in scenario runs accept its settings
        modes.mode_spec(name).check(default.ipam, Where(()))


def _top_level_imports(module_name: str) -> set[str]:
    """The ``ipam_core.modes`` modules a mode module's source imports at top level."""
    path = ROOT / (module_name.replace(".", "/") + ("/__init__.py" if module_name == "ipam_core.modes" else ".py"))
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.module == "ipam_core.modes":
            found |= {f"ipam_core.modes.{a.name}" for a in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ipam_core.modes."):
            found.add(node.module)
    return found


def test_each_mode_module_imports_its_rules_and_the_registry_the_modes_alone():
    # one way to register: a mode module imports the module of its rules family (which registers them
    # with the loop's hooks), or is that module; the registry imports the mode modules and no family
    families = {f"ipam_core.modes.{p.stem}" for p in (ROOT / "ipam_core" / "modes").glob("*.py")
                if re.search(r"^\s*hooks\.register(_family)?\(", p.read_text(), re.M)}
    assert {"ipam_core.modes.node_cidr", "ipam_core.modes.cloud_hooks", "ipam_core.modes.calico_hooks"} <= families
    for module in modes.MODULES:
        name = module.__name__
        assert name in families or _top_level_imports(name) & families, f"{name} imports no rules family"
    registry = _top_level_imports("ipam_core.modes")
    assert not registry & families - {m.__name__ for m in modes.MODULES}, "the registry imports a rules family"


TOY = '''\
"""A test-only mode: the cluster-pool list carved as kube-controller-manager carves (no IPv4 revert)."""

from __future__ import annotations

from ipam_core.modes._common import families, host_scope_layout
from ipam_core.modes.spec import RULES_NODE_CIDR, ModeSpec

NAME = "toy-pool"
UPSTREAM = ("tests/test_mode_registry.py",)


def layout(scenario):
    ipam = scenario.ipam
    by_family = {0: (tuple(ipam.cluster_pool_v4), ipam.cluster_pool_v4_mask),
                 1: (tuple(ipam.cluster_pool_v6), ipam.cluster_pool_v6_mask)}
    return host_scope_layout(NAME, "toy", by_family, families(ipam), revert_partial=False)


def check(ipam, root):
    if len(ipam.cluster_pool_v4) > 1:
        (root / "cilium" / "ipam" / "operator" / "clusterPoolIPv4PodCIDRList").fail(
            f"has {len(ipam.cluster_pool_v4)} CIDRs; expected one (needed by mode {NAME})")


MODE = ModeSpec(name=NAME, rules=RULES_NODE_CIDR, summary="test only", settings="cilium.ipam.operator",
                helm_mode=None, migration=False, cloud=True, check=check, upstream=UPSTREAM)
'''

PROBE = '''\
import pytest
from ipam_core import cli
from ipam_core.errors import ConfigError
from ipam_core.migration.helm import MIGRATION_MODES
from ipam_core.modes import get_mode
from ipam_core.scenario import ALL_MODES, CLOUD_MODES, DEFAULT_MODES, load_scenario, scenario_for_mode

assert ALL_MODES[-1] == "toy-pool" and "toy-pool" in CLOUD_MODES
assert "toy-pool" not in DEFAULT_MODES and "toy-pool" not in MIGRATION_MODES
base = "name: t\\nworkload: {generator: steady-churn}\\n"
sc = load_scenario(base + "cilium: {ipam: {mode: toy-pool}}\\n")
assert sc.ipam.mode == "toy-pool"
assert cli._modes("kubernetes, toy-pool", sc) == ["kubernetes", "toy-pool"]
assert cli._mode_flag("toy-pool") == "toy-pool"
layout = get_mode("toy-pool").layout(scenario_for_mode(sc, "toy-pool"))
assert layout.mode == "toy-pool" and [str(s.network) for s in layout.sets] == ["10.0.0.0/8"]
two = "cilium: {ipam: {mode: toy-pool, operator: {clusterPoolIPv4PodCIDRList: [10.0.0.0/16, 10.1.0.0/16]}}}\\n"
with pytest.raises(ConfigError, match="expected one \\\\(needed by mode toy-pool\\\\)"):
    load_scenario(base + two)
print("toy-pool registered")
'''


def test_a_new_mode_is_one_module_and_one_registry_entry(tmp_path):
    package = tmp_path / "ipam_core"
    shutil.copytree(ROOT / "ipam_core", package, ignore=shutil.ignore_patterns("__pycache__"))
    (package / "modes" / "toy.py").write_text(TOY)
    registry = package / "modes" / "__init__.py"
    text = registry.read_text()
    entry = "MODULES: tuple[ModuleType, ...] = (kubernetes, cluster_pool, multi_pool, eni, aws_vpc_cni, azure, crd, gke, calico)"
    assert entry in text
    importer = "from ipam_core.modes import aws_vpc_cni, azure, calico, cluster_pool, crd, eni, gke, kubernetes, multi_pool"
    text = text.replace(entry, entry[:-1] + ", toy)").replace(importer, importer + ", toy")
    registry.write_text(text)
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, cwd=tmp_path,
                          env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin", "NUMBA_CACHE_DIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "toy-pool registered" in done.stdout
