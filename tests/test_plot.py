"""Plots of a run: files exist, are deterministic, share y-scales and show both families."""

from __future__ import annotations

import numpy as np
import pytest
from _synthetic_trace import MODES, build_trace, trace_columns

from ipam_core.plot import FIGURE_FILES, build_figures, plot_run
from ipam_core.trace import TraceError, read_trace, write_tables

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def run_dir(tmp_path):
    write_tables(tmp_path, build_trace())
    return tmp_path


def test_plot_run_writes_three_pngs_without_software_tag(run_dir):
    paths = plot_run(run_dir)
    assert [p.name for p in paths] == list(FIGURE_FILES)
    for path in paths:
        assert path.parent == run_dir
        data = path.read_bytes()
        assert data.startswith(PNG_SIGNATURE)
        assert len(data) > 5_000  # a drawn figure, not an empty canvas
        assert b"Software" not in data and b"Matplotlib" not in data
    assert not [p for p in run_dir.iterdir() if p.name.endswith(".tmp")]


def test_replotting_gives_byte_identical_pngs(run_dir, tmp_path_factory):
    first = [p.read_bytes() for p in plot_run(run_dir)]
    second = [p.read_bytes() for p in plot_run(run_dir)]
    assert first == second
    other = tmp_path_factory.mktemp("other")
    write_tables(other, build_trace(seed=8))
    assert [p.read_bytes() for p in plot_run(other)] != first


def test_panels_per_mode_share_y_scale_covering_all_modes(run_dir):
    table = read_trace(run_dir)
    figures = build_figures(table)
    columns = trace_columns()
    expected_rows = {"addresses.png": 1, "pods.png": 1, "fragmentation.png": 2}
    for name, fig in figures.items():
        axes = fig.get_axes()
        assert len(axes) == expected_rows[name] * len(MODES)
        assert [ax.get_title() for ax in axes[: len(MODES)]] == [f"mode: {m}" for m in MODES]
        for row in range(expected_rows[name]):
            panels = axes[row * len(MODES) : (row + 1) * len(MODES)]
            limits = {ax.get_ylim() for ax in panels}
            assert len(limits) == 1, name
    # The shared scale must fit the larger mode (cluster-pool carves more here), not just the first panel.
    pods_top = figures["pods.png"].get_axes()[0].get_ylim()[1]
    assert pods_top >= columns["pods_running"].max()
    addr_top = figures["addresses.png"].get_axes()[0].get_ylim()[1]
    assert addr_top >= columns["addrs_idle"].max()


def test_families_drawn_as_distinct_line_styles_only_when_both_exist(tmp_path):
    both = build_figures(build_trace())["addresses.png"]
    styles = {line.get_linestyle() for line in both.get_axes()[0].get_lines()}
    assert styles == {"-", "--"}
    legend_labels = [t.get_text() for t in both.legends[0].get_texts()]
    assert "IPv4" in legend_labels and "IPv6" in legend_labels
    # IPv6 node CIDRs dwarf IPv4 ones: the shared axis switches to symlog to keep IPv4 visible.
    assert both.get_axes()[0].get_yscale() == "symlog"

    only_v4 = build_figures(build_trace(families=(4,)))["addresses.png"]
    assert {line.get_linestyle() for line in only_v4.get_axes()[0].get_lines()} == {"-"}
    assert "IPv6" not in [t.get_text() for t in only_v4.legends[0].get_texts()]
    assert only_v4.get_axes()[0].get_yscale() == "linear"
    assert only_v4.get_axes()[0].get_title().endswith("(IPv4)")


def test_axis_labels_carry_units(run_dir):
    figures = build_figures(read_trace(run_dir))
    addresses = figures["addresses.png"].get_axes()[0]
    assert "[addresses]" in addresses.get_ylabel()
    assert addresses.get_xlabel().startswith("simulated time [")
    fragmentation = figures["fragmentation.png"].get_axes()
    assert "[CIDRs]" in fragmentation[len(MODES)].get_ylabel()
    assert "[pods]" in figures["pods.png"].get_axes()[0].get_ylabel()


def test_lines_follow_the_trace_values(run_dir):
    columns = trace_columns()
    fig = build_figures(read_trace(run_dir))["pods.png"]
    second_mode = fig.get_axes()[1]
    rows = (columns["mode"] == 1) & (columns["family"] == 6)
    expected = columns["pods_failed"][rows]
    drawn = [line.get_ydata() for line in second_mode.get_lines() if line.get_linestyle() == "--"]
    assert any(np.array_equal(y, expected) for y in drawn)


def test_empty_trace_is_rejected(tmp_path):
    empty = build_trace().slice(0, 0)
    write_tables(tmp_path, empty)
    with pytest.raises(TraceError, match="no rows"):
        plot_run(tmp_path)
    assert not any(p.suffix == ".png" for p in tmp_path.iterdir())
