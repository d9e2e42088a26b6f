"""Plots of a run: files, determinism, panels per mode and family, scales, failures and families visible."""

from __future__ import annotations

import numpy as np
import pytest
from _synthetic_trace import MODES, build_trace, run, trace_columns

from ipam_core.plot import FIGURE_FILES, SHARE_RATIO, build_figures, plot_run
from ipam_core.trace import TraceError, read_trace, trace_table, write_tables

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


def test_panels_per_mode_and_family_name_the_node_cidr_size(run_dir):
    figures = build_figures(read_trace(run_dir))
    addresses = [ax.get_title() for ax in figures["addresses.png"].get_axes()]
    # synthetic node CIDRs: 256 addresses for IPv4, 65,536 for IPv6
    assert addresses == [f"{m} IPv{f}: /{24 if f == 4 else 112} node CIDRs" for m in MODES for f in (4, 6)]
    fragmentation = [ax.get_title() for ax in figures["fragmentation.png"].get_axes()]
    assert [t.splitlines()[0] for t in fragmentation] == addresses
    carvable_end = trace_columns()["carvable_node_cidrs"].reshape(len(MODES) * 2, -1)[:, -1]
    assert [t.splitlines()[1] for t in fragmentation] == [f"{n:,} still carvable at the end" for n in carvable_end]
    pods = [ax.get_title() for ax in figures["pods.png"].get_axes()]
    assert pods == [f"{m}: {what}" for m in MODES for what in ("running", "waiting and failed")]


def test_panel_titles_name_what_each_mode_holds_its_addresses_in(tmp_path):
    """Calico's blocks and the cloud modes' interface addresses are not called node CIDRs."""
    write_tables(tmp_path, build_trace(modes=("calico", "eni", "crd", "cluster-pool"), families=(4,)))
    titles = [ax.get_title() for ax in build_figures(read_trace(tmp_path))["addresses.png"].get_axes()]
    assert titles == ["calico IPv4: /24 affine blocks", "eni IPv4: ENI addresses and prefixes",
                      "crd IPv4: CiliumNode pool addresses", "cluster-pool IPv4: /24 node CIDRs"]


def _scaled_trace(factor):
    """IPv4 trace whose second mode's address counts are ``factor`` times larger."""
    columns = trace_columns(families=(4,))
    second = columns["mode"] == 1
    for name in ("addrs_used", "addrs_idle", "addrs_reserved"):
        columns[name] = np.where(second, columns[name] * factor, columns[name])
    return trace_table(columns, run())


def test_panels_share_a_y_scale_only_when_magnitudes_are_alike():
    alike = build_figures(_scaled_trace(1))["addresses.png"]
    assert len({ax.get_ylim() for ax in alike.get_axes()}) == 1
    top = alike.get_axes()[0].get_ylim()[1]
    assert top >= trace_columns(families=(4,))["addrs_idle"].max()  # the shared scale fits the larger mode
    assert "y scales differ" not in alike._suptitle.get_text()  # noqa: SLF001

    apart = build_figures(_scaled_trace(int(SHARE_RATIO * 20)))["addresses.png"]
    small, large = (ax.get_ylim()[1] for ax in apart.get_axes())
    assert large > SHARE_RATIO * small
    assert "y scales differ between panels" in apart._suptitle.get_text()  # noqa: SLF001


def test_failures_are_visible_beside_the_clipped_start_up_spike():
    columns = trace_columns(families=(4,))
    fig = build_figures(build_trace(families=(4,)))["pods.png"]
    waiting = fig.get_axes()[1]  # the first mode's second panel
    rows = columns["mode"] == 0
    failed = columns["pods_failed"][rows]
    top = waiting.get_ylim()[1]
    assert failed.max() <= top < columns["pods_pending"][rows][0]  # failures on scale, t=0 spike off it
    drawn = [line.get_ydata() for line in waiting.get_lines()]
    assert any(np.array_equal(y, failed) for y in drawn)
    assert any(np.array_equal(y, columns["pods_failed_free_elsewhere"][rows]) for y in drawn)
    note = " ".join(t.get_text() for t in waiting.texts)
    assert f"start-up: {columns['pods_pending'][rows][0]:,} waiting (off scale)" in note
    assert f"failed: {failed[-1]:,}, {columns['pods_failed_free_elsewhere'][rows][-1]:,} while free elsewhere" in note


def test_ipv4_and_ipv6_differ_in_line_style_and_marker():
    figures = build_figures(build_trace())
    for name, fig in figures.items():
        for ax in fig.get_axes():
            styles = {(line.get_linestyle(), line.get_marker()) for line in ax.get_lines()}
            if name == "pods.png":  # both families share a pods panel
                assert len(styles) == 2, (name, styles)
        labels = [t.get_text() for t in fig.legends[0].get_texts()]
        assert "IPv4 (solid, o)" in labels and "IPv6 (dashed, x)" in labels
    pods = figures["pods.png"].get_axes()[0].get_lines()
    v4, v6 = pods[0], pods[1]
    assert v4.get_linestyle() != v6.get_linestyle() and v4.get_marker() != v6.get_marker()
    assert v4.get_markevery() != v6.get_markevery()  # markers of equal lines do not sit on each other

    only_v4 = build_figures(build_trace(families=(4,)))["pods.png"]
    assert not any("IPv6" in t.get_text() for t in only_v4.legends[0].get_texts())


def test_every_axis_names_its_unit(run_dir):
    figures = build_figures(read_trace(run_dir))
    expected = {"addresses.png": {"addresses"}, "pods.png": {"pods"}, "fragmentation.png": {"addresses"}}
    for name, fig in figures.items():
        assert {ax.get_ylabel() for ax in fig.get_axes()} == expected[name]
        assert all(ax.get_xlabel() == "simulated time [min]" for ax in fig.get_axes())


def test_empty_trace_is_rejected(tmp_path):
    empty = build_trace().slice(0, 0)
    write_tables(tmp_path, empty)
    with pytest.raises(TraceError, match="no rows"):
        plot_run(tmp_path)
    assert not any(p.suffix == ".png" for p in tmp_path.iterdir())


def test_large_counts_read_without_an_offset_text():
    fig = build_figures(build_trace())["fragmentation.png"]  # synthetic IPv6 pools hold ~1M addresses
    fig.canvas.draw()
    ipv6 = fig.get_axes()[1]
    assert ipv6.get_ylim()[1] > 1e6
    assert all(not ax.yaxis.get_offset_text().get_text() for ax in fig.get_axes())
    labels = [t.get_text() for t in ipv6.get_yticklabels() if t.get_text()]
    assert any(label.endswith("M") for label in labels), labels
