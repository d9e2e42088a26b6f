"""report.html renders in a real headless browser: the modes' table and the figures are there and visible."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
from typer.testing import CliRunner

from ipam_core.cli import app
from sweep_specs import write_spec

runner = CliRunner()
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Measure, once the page has loaded, every figure's rendered size and the modes table's rows.
PROBE = """<script>window.addEventListener('load',()=>{
const imgs=[...document.images].map(i=>i.naturalWidth+'x'+i.naturalHeight+'/'+Math.round(i.getBoundingClientRect().width));
const rows=[...document.querySelectorAll('#modes tbody tr')].length;
document.body.setAttribute('data-probe', JSON.stringify({imgs, rows}));});</script></body>"""

needs_browser = pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"),
                                   reason="chromium not installed (CI installs it and runs this test)")


def _browser(args: list[str], tmp_path) -> subprocess.CompletedProcess:
    assert CHROMIUM, "chromium is required in CI (.ci/run installs it)"
    base = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
            "--disable-dev-shm-usage",
            f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000"]
    return subprocess.run(base + args, capture_output=True, text=True, timeout=120)


def _rendered(report, tmp_path) -> tuple[str, dict]:
    import json

    probed = tmp_path / "probed.html"
    probed.write_text(report.read_text().replace("</body>", PROBE))
    done = _browser(["--dump-dom", probed.as_uri()], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    m = re.search(r"data-probe=\"([^\"]*)\"", done.stdout)
    assert m, done.stdout[:2000]
    return done.stdout, json.loads(m.group(1).replace("&quot;", '"'))


def _screenshot_is_not_blank(report, tmp_path):
    import numpy as np
    from matplotlib.image import imread

    shot = tmp_path / "shot.png"
    done = _browser([f"--screenshot={shot}", "--window-size=1280,2400", report.as_uri()], tmp_path)
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    pixels = imread(shot)
    assert pixels.shape[0] >= 2000 and float(np.std(pixels)) > 0.05


def _tiny_scenario(tmp_path):
    import yaml

    from sweep_specs import TINY

    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(TINY, sort_keys=False))
    return str(path)


def test_run_report_is_self_contained(tmp_path):
    out = tmp_path / "run"
    assert runner.invoke(app, ["compare", _tiny_scenario(tmp_path), "--out", str(out), "--no-plot"]).exit_code == 0
    result = runner.invoke(app, ["report", str(out)])
    assert result.exit_code == 0, result.output
    text = (out / "report.html").read_text()
    assert "http://" not in text and "https://" not in text  # no CDN, no server: one file
    assert text.count("data:image/png;base64,") >= 3
    for mode in ("kubernetes", "cluster-pool", "multi-pool"):
        assert f"<td>{mode}</td>" in text


def test_report_of_a_folder_without_results_is_one_line(tmp_path):
    result = runner.invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 2 and "holds neither sweep.parquet nor trace.arrow" in result.stderr
    assert not (tmp_path / "report.html").exists()


@needs_browser
def test_run_report_renders_in_headless_chromium(tmp_path):
    out = tmp_path / "run"
    assert runner.invoke(app, ["compare", _tiny_scenario(tmp_path), "--out", str(out)]).exit_code == 0
    assert runner.invoke(app, ["report", str(out)]).exit_code == 0
    dom, probe = _rendered(out / "report.html", tmp_path)
    assert probe["rows"] == 3  # one row per mode
    for mode in ("kubernetes", "cluster-pool", "multi-pool"):
        assert f"<td>{mode}</td>" in dom
    assert len(probe["imgs"]) >= 3
    for size in probe["imgs"]:
        natural, shown = size.split("/")
        width, height = (int(v) for v in natural.split("x"))
        assert width > 100 and height > 100 and int(shown) > 100, probe
    _screenshot_is_not_blank(out / "report.html", tmp_path)


@needs_browser
def test_sweep_report_renders_with_table_and_figures(tmp_path):
    out = tmp_path / "sweep"
    spec = write_spec(tmp_path, {"ipam.operator.clusterPoolIPv4MaskSize": [24, 27], "cluster.nodes": [2, 3]},
                      modes=["cluster-pool", "multi-pool"], replicates=2)
    assert runner.invoke(app, ["sweep", spec, "--out", str(out), "--no-plot"]).exit_code == 0
    assert runner.invoke(app, ["report", str(out)]).exit_code == 0
    dom, probe = _rendered(out / "report.html", tmp_path)
    assert probe["rows"] == 4 * 2  # points x modes
    assert "cluster-pool" in dom and "multi-pool" in dom and "sweep-heatmap.png" in dom
    assert len(probe["imgs"]) == 3 and all(int(s.split("/")[1]) > 100 for s in probe["imgs"])
    _screenshot_is_not_blank(out / "report.html", tmp_path)
