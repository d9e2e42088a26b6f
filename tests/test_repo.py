"""The repository's promises: README's two quick-start commands are what CI runs."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _quick_start_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_quick_start_is_two_commands():
    commands = _quick_start_commands()
    assert len(commands) == 2
    assert commands[0].rstrip().endswith("ipam-bench compare")
    assert "pytest" in commands[1]


def test_ci_runs_readme_test_command_verbatim():
    ci = (ROOT / ".ci" / "run").read_text()
    assert _quick_start_commands()[1] in ci.splitlines()


def test_modes_import_on_their_own():
    import subprocess
    import sys

    # mode modules import engine.layout; the engine must not import the modes back at import time
    done = subprocess.run([sys.executable, "-c", "import ipam_core.modes"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def _section(text: str, heading: str) -> str:
    return text.split(heading, 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]


def test_scenario_doc_names_every_registered_mode():
    from ipam_core.modes import REGISTRY

    doc = (ROOT / "docs" / "scenario.md").read_text()
    table = _section(doc, "### Top level")
    rows = {line.split("|")[1].strip() for line in table.splitlines() if line.startswith("| `")}
    assert {f"`{mode}`" for mode in REGISTRY} <= rows
    assert "KNOWN_MODES" not in doc


def _default_text(value) -> str:
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float):
        return f"`{value:g}`"
    return f"`{value}`"


def test_scenario_doc_lists_every_workload_key_with_its_default():
    from dataclasses import MISSING, fields

    from ipam_core.workloads.spec import SPEC_TYPES

    section = _section((ROOT / "docs" / "scenario.md").read_text(), "### `workload`")
    shared, *blocks = section.split("\n**`")
    by_generator = {block.split("`", 1)[0]: block for block in blocks}
    assert set(by_generator) == set(SPEC_TYPES)
    for generator, cls in SPEC_TYPES.items():
        rows = {}
        for line in (by_generator[generator] + shared).splitlines():
            cells = [c.strip() for c in line.split("|")]
            if len(cells) > 4 and cells[1].startswith("`"):
                rows.setdefault(cells[1].strip("`"), cells[3])
        for f in fields(cls):
            key = f.metadata["key"]
            assert key in rows, f"workload.{key} ({generator}) is not documented"
            if f.default is MISSING:
                assert "required" in rows[key], (generator, key)
            elif f.default is not None and f.default != ():
                assert rows[key] == _default_text(f.default), (generator, key, rows[key])
