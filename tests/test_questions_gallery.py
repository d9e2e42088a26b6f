"""The question gallery (docs/questions.md) is well formed, checked without running the engine.

Running every command is the slow check: ``python scenarios/questions/refresh.py --check``.
"""

import importlib.util
import re
import sys
from pathlib import Path

import pytest
import yaml

from ipam_core.scenario import load_scenario
from ipam_core.sweep.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "questions.md"
QUESTIONS = ROOT / "scenarios" / "questions"
ISSUE_LINK = re.compile(r"\]\(https://github\.com/[\w.-]+/[\w.-]+/(issues|pull)/\d+\)")


def _refresh_module():
    spec = importlib.util.spec_from_file_location("questions_refresh", QUESTIONS / "refresh.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


refresh = _refresh_module()
TEXT = DOC.read_text()
LINES = TEXT.splitlines()


def _sections() -> dict[str, str]:
    """Each ``## `` heading with the text under it."""
    parts = re.split(r"^## ", TEXT, flags=re.M)[1:]
    return {part.splitlines()[0]: part for part in parts}


@pytest.mark.parametrize("path", sorted(QUESTIONS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_question_scenario_is_used_and_loads(path):
    assert f"scenarios/questions/{path.name}" in TEXT, f"{path.name} is in no section of docs/questions.md"
    if "axes" in yaml.safe_load(path.read_text()):
        assert load_spec(path).axes  # the base scenario is loaded and validated too
    else:
        assert load_scenario(str(path)).modes


def test_every_command_block_has_an_output_block():
    pairs = refresh.command_pairs(LINES)  # raises SystemExit on a command block without output
    answered = {pair.section for pair in pairs}
    assert [heading for heading in _sections() if heading not in answered] == [], "sections without a command"
    for pair in pairs:
        assert any(line.strip() for line in pair.output.lines), f"empty output under {pair.section}"
        assert pair.output.start > pair.command.end


def test_every_block_that_starts_with_a_command_is_run_by_refresh():
    for _, block in refresh.fenced_blocks(LINES):
        first = block.lines[0] if block.lines else ""
        if first.startswith(("python -c", "cd ", "kubectl ")) or re.match(r"ipam-bench \w+ [\w./-]+(\s|$)", first):
            assert refresh.is_command_block(block), f"block at line {block.start + 1} is not run by refresh.py"


def test_every_section_links_an_upstream_issue_and_is_in_the_index():
    anchors = set(re.findall(r'<a id="([^"]+)"></a>\s*\n\s*\n## ', TEXT))
    index = re.findall(r"^- \[.*\]\(#([^)]+)\)", TEXT, flags=re.M)
    for heading in _sections():
        assert ISSUE_LINK.search(heading) or "issue #12" in heading, f"no upstream issue linked: {heading}"
    assert len(anchors) == len(_sections()), "every section has an anchor"
    assert sorted(index) == sorted(anchors), "the index links every section once"


def test_refresh_keeps_the_wall_clock_row_and_only_the_rows_shown():
    printed = ["┃ metric ┃ a ┃", "│ pods failed   │ 1 │", "│ wall-clock seconds for the mode │ 0.5 │"]
    fresh = ["┃ metric ┃ a ┃", "│ pods failed   │ 2 │", "│ new row       │ 3 │",
             "│ wall-clock seconds for the mode │ 0.1 │"]
    assert refresh.merge(printed, fresh, rows_shown=False) == [fresh[0], fresh[1], fresh[2], printed[2]]
    assert refresh.merge(printed, fresh, rows_shown=True) == [fresh[0], fresh[1], printed[2]]
    assert refresh._comparable(printed) == printed[:2]


def test_refresh_rewrites_out_paths_whole_and_back(tmp_path):
    runner = refresh.Runner(tmp_path)
    short, longer = runner._temp_for("out/q-1409"), runner._temp_for("out/q-1409-off")
    command = "ipam-bench compare x.yaml --out out/q-1409-off; read('out/q-1409/trace.arrow')"
    rewritten = runner._rewrite(command)
    assert f"--out {longer};" in rewritten and f"'{short}/trace.arrow'" in rewritten
    assert runner._unrewrite(f"wrote {longer}/trace.arrow") == "wrote out/q-1409-off/trace.arrow"


def test_multiline_python_command_is_one_command():
    lines = ['python -c "', "import polars as pl", "print(pl.DataFrame({'a': [1]}))", '"', "ipam-bench compare a.yaml"]
    assert refresh.split_commands(lines) == ["\n".join(lines[:4]), lines[4]]
