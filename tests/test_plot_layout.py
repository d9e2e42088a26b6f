"""Figure layout: every figure kind for 1, 3 and 8 modes (single- and dual-stack) fits its canvas.

Each text (titles, axis labels, in-view tick labels, offset texts, notes) and
each legend must lie inside the figure, no two of them may overlap, the grid
has at most ``MAX_COLUMNS`` columns and the figure stays a readable size.
"""

from __future__ import annotations

import itertools

import pytest
from _synthetic_trace import ALL_MODES, build_trace

from ipam_core.modes import REGISTRY
from ipam_core.plot import FIGURE_FILES, MAX_COLUMNS, build_figures

MAX_INCHES = (16.0, 12.5)  # width, height
SLACK_PX = 1.0  # anti-aliasing: boxes that merely touch do not count


def _in_view(locations, labels, limits):
    low, high = sorted(limits)
    span = high - low
    return [lab for loc, lab in zip(locations, labels) if low - 1e-9 * span <= loc <= high + 1e-9 * span]


def _boxes(fig):
    """(name, bbox) of every visible, non-empty text and legend that the figure draws."""
    renderer = fig.canvas.get_renderer()
    texts = [("suptitle", fig._suptitle)]  # noqa: SLF001  (matplotlib keeps it there; no public getter for the artist)
    for index, ax in enumerate(fig.axes):
        own = [ax.title, ax._left_title, ax._right_title, ax.xaxis.label, ax.yaxis.label]  # noqa: SLF001
        own += [ax.xaxis.get_offset_text(), ax.yaxis.get_offset_text(), *ax.texts]
        own += _in_view(ax.get_xticks(), ax.get_xticklabels(), ax.get_xlim())
        own += _in_view(ax.get_yticks(), ax.get_yticklabels(), ax.get_ylim())
        texts += [(f"axes {index} {text.get_text()!r}", text) for text in own]
    boxes = [
        (name, text.get_window_extent(renderer))
        for name, text in texts
        if text is not None and text.get_visible() and text.get_text().strip()
    ]
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
    boxes += [(f"legend {i}", legend.get_window_extent(renderer)) for i, legend in enumerate(legends)]
    return boxes


def _overlap(a, b):
    return (
        min(a.x1, b.x1) - max(a.x0, b.x0) > SLACK_PX and min(a.y1, b.y1) - max(a.y0, b.y0) > SLACK_PX
    )


def _layout_problems(fig):
    fig.canvas.draw()  # lays out (constrained layout) and fills in tick labels
    canvas = fig.bbox
    boxes = _boxes(fig)
    problems = [
        f"{name} outside the canvas: {box.bounds} not in {canvas.bounds}"
        for name, box in boxes
        if box.x0 < canvas.x0 - SLACK_PX
        or box.y0 < canvas.y0 - SLACK_PX
        or box.x1 > canvas.x1 + SLACK_PX
        or box.y1 > canvas.y1 + SLACK_PX
    ]
    pairs = itertools.combinations(boxes, 2)
    problems += [f"{a} overlaps {b}" for (a, box_a), (b, box_b) in pairs if _overlap(box_a, box_b)]
    return problems


def test_synthetic_modes_are_the_registered_modes():
    assert sorted(ALL_MODES) == sorted(REGISTRY)


@pytest.mark.parametrize("families", [(4,), (4, 6)], ids=["IPv4", "dual-stack"])
@pytest.mark.parametrize("n_modes", [1, 3, 8])
def test_every_figure_fits_its_canvas_without_overlaps(n_modes, families):
    figures = build_figures(build_trace(modes=ALL_MODES[:n_modes], families=families))
    assert list(figures) == list(FIGURE_FILES)
    for name, fig in figures.items():
        problems = _layout_problems(fig)
        assert not problems, f"{name}, {n_modes} mode(s), families {families}: " + "; ".join(problems[:5])
        width, height = fig.get_size_inches()
        assert width <= MAX_INCHES[0] and height <= MAX_INCHES[1], (name, width, height)
        columns = {round(ax.get_position().x0, 3) for ax in fig.axes}
        assert len(columns) == min(MAX_COLUMNS, n_modes * (1 if name == "pods.png" else len(families))), name


def test_the_check_catches_a_legend_wider_than_its_figure():
    """The check itself can fail (the old single-mode figures clipped their legend this way)."""
    fig = build_figures(build_trace(modes=ALL_MODES[:1], families=(4,)))["pods.png"]
    fig.legends[0].remove()
    handles = fig.axes[1].get_lines()
    fig.legend(handles=handles, labels=["a much longer label than fits " * 2] * len(handles), ncols=len(handles),
               loc="outside lower center")
    assert any("outside the canvas" in p for p in _layout_problems(fig))
