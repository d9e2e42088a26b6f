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


_BLOCK_ANALYSIS_LIBRARIES = """
import sys
class _NotInstalled:  # command 1 installs neither polars nor pandas
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("polars", "pandas"):
            raise ModuleNotFoundError(name)
sys.meta_path.insert(0, _NotInstalled())
"""


def test_readme_loading_snippet_needs_only_what_command_1_installs(tmp_path):
    import subprocess
    import sys

    sys.path.insert(0, str(ROOT / "tests"))
    from _synthetic_trace import build_trace

    from ipam_core.trace import write_tables

    section = (ROOT / "README.md").read_text().split("## Traces", 1)[1].split("\n## ", 1)[0]
    snippet = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    write_tables(tmp_path / "out" / "compare-default", build_trace())
    done = subprocess.run(
        [sys.executable, "-c", _BLOCK_ANALYSIS_LIBRARIES + snippet], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "pods_failed_max" in done.stdout


# --- README's measured figures name the results/ file that records them and its command ----------------------

_FIGURE = re.compile(r"(?<![/\w.])\d[\d,.]*\s?(?:s|ms|ns|µs|MiB|GiB|×)(?!\w)")
_RESULTS_REF = re.compile(r"results/[\w.-]+\w")
_BENCH_FILE = re.compile(r"test_bench_\w+\.py")


def _results_index() -> dict[str, list[str]]:
    """results/README.md: each bench file named in a row's command -> the results files of that row."""
    index: dict[str, list[str]] = {}
    for line in (ROOT / "results" / "README.md").read_text().splitlines():
        cells = line.split("|")
        if len(cells) < 4 or "python" not in cells[3]:
            continue
        names = re.findall(r"`([\w.-]+)`", cells[1])
        stem = names[0].rsplit(".", 1)[0] if names else ""
        files = [f"results/{n if '.' in n and not n.startswith('.') else stem + n}" for n in names]
        for bench in _BENCH_FILE.findall(cells[3]):
            index.setdefault(bench, []).extend(files)
    return index


def _figure_units(section: str) -> list[tuple[str, str]]:
    """(kind, text) of each paragraph and table row holding a measured figure (code blocks left out)."""
    prose = re.sub(r"```.*?```", "", section, flags=re.S)
    units = []
    for paragraph in re.split(r"\n\s*\n", prose):
        lines = paragraph.strip().splitlines()
        if lines and lines[0].startswith("|"):
            units += [("row", line) for line in lines]
        elif paragraph.strip():
            units.append(("paragraph", paragraph))
    return [(kind, text) for kind, text in units if _FIGURE.search(text)]


def _command_recorded(path: str) -> bool:
    text = (ROOT / path).read_text(errors="replace")
    if re.search(r"(python3? |ipam-bench )", text):
        return True
    index = (ROOT / "results" / "README.md").read_text()
    return any(Path(path).name in line and "python" in line for line in index.splitlines())


def test_readme_figures_link_the_results_file_that_holds_them():
    readme = (ROOT / "README.md").read_text()
    index = _results_index()
    checked = 0
    for heading in ("## Quick start", "## Benchmarks"):
        section = readme.split(heading, 1)[1].split("\n## ", 1)[0]
        bench = None
        for kind, text in _figure_units(section):
            refs = [r for r in _RESULTS_REF.findall(text) if "<" not in r]
            if kind == "row" and not refs:
                bench = (_BENCH_FILE.findall(text) or [bench])[0]  # a row without a file continues the one above
                refs = index.get(bench, [])
            assert refs, f"README figure without a link to its results/ file: {text.strip()[:100]!r}"
            for ref in refs:
                assert (ROOT / ref).is_file(), f"README cites {ref}, which does not exist"
                assert _command_recorded(ref), f"{ref} names no command (in itself or in results/README.md)"
            checked += 1
    assert checked >= 8  # the quick-start times, the benchmark rows, the memory figure


def _rich_rows(text: str) -> dict[str, list[str]]:
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("│").split("│")]
        if len(cells) > 1 and cells[0]:
            rows[cells[0]] = cells[1:]
    return rows


def test_readme_compare_output_matches_its_recorded_run():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    linked_block = r"[^\n]*results/compare-default\.md[^\n]*\n(?:[^\n]+\n)*?\n```\n(.*?)```"
    block = re.search(linked_block, section, re.S).group(1)
    recorded = (ROOT / "results" / "compare-default.md").read_text()
    assert "ipam-bench compare" in recorded
    rows = _rich_rows(recorded)
    lines = block.strip().splitlines()
    for line in lines[1:]:
        metric, *values = re.split(r"\s{2,}", line.strip())
        recorded_values = rows.get(metric)
        assert recorded_values == values, f"README {metric!r}: {values}, results/compare-default.md: {recorded_values}"


def test_readme_images_are_recorded_results_with_their_command():
    readme = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\((results/[^)]+\.png)\)", readme)
    assert links, "README shows no figure of the default compare"
    for link in links:
        assert (ROOT / link).is_file(), f"README links {link}, which does not exist"
        record = ROOT / "results" / f"{Path(link).parent.name}.md"
        assert record.is_file(), f"{link} has no {record.name} beside its folder"
        assert f"--out {Path(link).parent.as_posix()}" in record.read_text(), f"{record.name} lacks the command"
