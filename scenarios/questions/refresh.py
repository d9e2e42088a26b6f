"""Rerun the commands of docs/questions.md and put their real output under them.

Usage, from the repository root::

    python scenarios/questions/refresh.py            # rewrite the output blocks in place
    python scenarios/questions/refresh.py --check    # exit 1 naming the sections whose output differs

A *command block* is a fenced block whose commands all start with ``ipam-bench ``, ``python -c``,
``sed `` or ``cd `` (``kubectl`` / ``helm`` lines are the user's own dump and are skipped: the
scenario folder holds what they wrote). Its *output block* is the next fenced block. Every command
runs from the repository root (after any ``cd`` of the block), ``ipam-bench`` as
``python -m ipam_core``; the output block shows the last command's standard output (earlier ones
write files the last one reads).

Each ``--out DIR`` is rewritten to a fresh folder under one temporary directory, and every later
mention of DIR (a polars read of ``DIR/trace.arrow``, a ``sed ... > FILE``) is rewritten the same
way, so nothing is written into the checkout; in the output the temporary paths read as the doc's.
The doc's text is never changed, only its output blocks.

What varies from run to run is kept as printed and not compared: the wall-clock row of a compare
table and the time line of a sweep.
An output block preceded by ``<!-- output: rows shown -->`` shows only some rows of a table:
only rows whose first cell is in the block as printed are kept.
Tables are printed 200 columns wide without colours (``COLUMNS=200``, ``POLARS_TABLE_WIDTH=200``, ``NO_COLOR=1``).
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "questions.md"
RUNNABLE = ("ipam-bench ", "python -c", "sed ", "cd ")
SKIPPED = ("kubectl ", "helm ")
ROWS_SHOWN = "<!-- output: rows shown -->"
#: Table rows whose figures vary between runs: kept as printed.
VARYING_ROWS = ("wall-clock seconds",)
#: Whole lines that vary between runs: the time a sweep took.
VARYING_LINE = re.compile(r"^\d+ run\(s\), \d+ already done, [\d.]+ s$")
ENV = {**os.environ, "COLUMNS": "200", "POLARS_TABLE_WIDTH": "200", "NO_COLOR": "1", "TERM": "dumb", "PYTHONPATH": str(ROOT)}


@dataclass
class Block:
    """One fenced block: its line span in the doc (the fences included) and its text."""

    start: int
    end: int
    lines: list[str]
    after_marker: bool = False


@dataclass
class Pair:
    """A command block, its output block and the heading of its section."""

    section: str
    command: Block
    output: Block
    commands: list[str] = field(default_factory=list)


def fenced_blocks(lines: list[str]) -> list[tuple[str, Block]]:
    """Every fenced block of ``lines`` with the ``## `` heading it falls under.

    Parameters
    ----------
    lines : list of str
        The doc's lines.

    Returns
    -------
    list of (str, Block)
        Heading text and block, in the doc's order.
    """
    found, section, i = [], "", 0
    while i < len(lines):
        if lines[i].startswith("## "):
            section = lines[i][3:].strip()
        if lines[i].startswith("```"):
            j = i + 1
            while not lines[j].startswith("```"):
                j += 1
            marker = i > 0 and any(lines[k].strip() == ROWS_SHOWN for k in range(max(0, i - 2), i))
            found.append((section, Block(i, j, lines[i + 1:j], marker)))
            i = j
        i += 1
    return found


def split_commands(block_lines: list[str]) -> list[str]:
    """The shell commands of a block, a quoted ``python -c "..."`` spanning lines kept whole.

    Parameters
    ----------
    block_lines : list of str
        The lines between the fences.

    Returns
    -------
    list of str
        One string per command (a backslash-continued or open-quoted command joined).
    """
    commands, current = [], ""
    for line in block_lines:
        current = f"{current}\n{line}" if current else line
        try:
            shlex.split(current.rstrip("\\"))
        except ValueError:  # an open quote: the command goes on
            continue
        if current.endswith("\\"):
            current = current[:-1]
            continue
        if current.strip():
            commands.append(current.strip())
        current = ""
    return commands


def is_command_block(block: Block) -> bool:
    """True if every command of ``block`` is one this script runs or skips, and one is run."""
    commands = split_commands(block.lines)
    return (bool(commands) and all(c.startswith(RUNNABLE + SKIPPED) for c in commands)
            and any(c.startswith(("ipam-bench ", "python -c")) for c in commands))


def command_pairs(lines: list[str]) -> list[Pair]:
    """Each command block with the fenced block after it.

    Parameters
    ----------
    lines : list of str
        The doc's lines.

    Returns
    -------
    list of Pair

    Raises
    ------
    SystemExit
        If a command block has no output block after it (the next block is a command block or there is none).
    """
    blocks = fenced_blocks(lines)
    pairs = []
    for (section, block), following in zip(blocks, blocks[1:] + [("", None)]):
        if is_command_block(block):
            out = following[1]
            if out is None or is_command_block(out):
                raise SystemExit(f"docs/questions.md line {block.start + 1}: command block without an output block")
            pairs.append(Pair(section, block, out, split_commands(block.lines)))
    return pairs


class Runner:
    """Runs the doc's commands with their output folders under one temporary directory."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.paths: dict[str, str] = {}  # the doc's path -> the temporary one

    def _temp_for(self, doc_path: str) -> str:
        if doc_path not in self.paths:
            # same base name as the doc's: import names the scenario after its --out folder
            parent = self.tmp / f"p{len(self.paths)}"
            parent.mkdir()
            self.paths[doc_path] = str(parent / Path(doc_path).name)
        return self.paths[doc_path]

    def _rewrite(self, text: str) -> str:
        for doc_path in sorted(self.paths, key=len, reverse=True):
            text = re.sub(rf"(?<![\w/.-]){re.escape(doc_path)}(?![\w.-])", self.paths[doc_path], text)
        return text

    def _unrewrite(self, text: str) -> str:
        for doc_path, temp in sorted(self.paths.items(), key=lambda kv: len(kv[1]), reverse=True):
            text = text.replace(temp, doc_path)
        return text

    def run(self, commands: list[str]) -> str:
        """Run one block's commands; the last one's standard output, in the doc's paths.

        Parameters
        ----------
        commands : list of str
            From :func:`split_commands`.

        Returns
        -------
        str
            The last command's standard output, lines right-stripped, temporary paths shown as the doc's.

        Raises
        ------
        SystemExit
            If a command exits non-zero (its standard error is shown).
        """
        cwd, out = ROOT, ""
        for command in commands:
            if command.startswith(SKIPPED):
                continue
            if command.startswith("cd "):
                cwd = cwd / command[3:].strip()
                continue
            targets = re.findall(r"--out\s+(\S+)", command)
            if command.startswith("sed "):
                targets += re.findall(r">\s*(\S+)", command)
            for target in targets:
                self._temp_for(target)
            command = self._rewrite(command)
            if command.startswith("ipam-bench "):
                command = f"{shlex.quote(sys.executable)} -m ipam_core {command[len('ipam-bench '):]}"
            elif command.startswith("python -c"):
                command = f"{shlex.quote(sys.executable)}{command[len('python'):]}"
            done = subprocess.run(command, shell=True, cwd=cwd, env=ENV, capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(f"{command}\nexit {done.returncode}:\n{done.stderr}")
            out = done.stdout
        return self._unrewrite("\n".join(line.rstrip() for line in out.rstrip("\n").splitlines()))


def _first_cell(line: str) -> str | None:
    """The first cell of a table body row (rich or polars), or None for borders and headers."""
    if line.startswith("│"):
        return line.split("│")[1].strip()
    return None


def merge(printed: list[str], fresh: list[str], rows_shown: bool) -> list[str]:
    """The fresh output, with varying rows as printed and, if asked, only the printed rows.

    Parameters
    ----------
    printed : list of str
        The output block as the doc has it.
    fresh : list of str
        What the command printed now.
    rows_shown : bool
        Keep only table rows whose first cell is in ``printed`` (the block shows a subset).

    Returns
    -------
    list of str
        The lines to write; a varying row is kept as printed when its width has not changed.
    """
    kept_rows = {_first_cell(line) for line in printed} - {None}
    by_cell = {_first_cell(line): line for line in printed if _first_cell(line)}
    printed_timing = [line for line in printed if VARYING_LINE.match(line)]
    merged = []
    for line in fresh:
        cell = _first_cell(line)
        if rows_shown and cell is not None and cell not in kept_rows:
            continue
        if cell and cell.startswith(VARYING_ROWS) and cell in by_cell and len(by_cell[cell]) == len(line):
            line = by_cell[cell]
        if VARYING_LINE.match(line) and printed_timing:
            line = printed_timing[0]
        merged.append(line)
    return merged


def _comparable(lines: list[str]) -> list[str]:
    return [line for line in lines
            if not (_first_cell(line) or "").startswith(VARYING_ROWS) and not VARYING_LINE.match(line)]


def main(argv: list[str] | None = None) -> int:
    """Refresh docs/questions.md, or with ``--check`` only name the sections that differ."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if an output differs")
    args = parser.parse_args(argv)
    lines = DOC.read_text().splitlines()
    stale = []
    with tempfile.TemporaryDirectory(prefix="questions-") as tmp:
        runner = Runner(Path(tmp))
        replacements = []
        for pair in command_pairs(lines):
            print(f"running: {pair.section[:70]} ({len(pair.commands)} command(s))", file=sys.stderr)
            fresh = runner.run(pair.commands).splitlines()
            merged = merge(pair.output.lines, fresh, pair.output.after_marker)
            if _comparable(merged) != _comparable(pair.output.lines):
                stale.append(f"{pair.section} (line {pair.output.start + 1})")
                if args.check:
                    sys.stdout.writelines(difflib.unified_diff(
                        [f"{x}\n" for x in pair.output.lines], [f"{x}\n" for x in merged], "printed", "rerun", n=0))
            replacements.append((pair.output, merged))
    if args.check:
        for name in stale:
            print(f"differs: {name}")
        return 1 if stale else 0
    for block, merged in reversed(replacements):
        lines[block.start + 1:block.end] = merged
    DOC.write_text("\n".join(lines) + "\n")
    print(f"refreshed {len(replacements)} output blocks, {len(stale)} changed", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
