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
