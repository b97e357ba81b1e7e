"""``humanscape report``: one self-contained HTML page per run (issue 24), checked by hand and in
headless Chromium (no console error, no outside request, the map draws, the page is not blank)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from affine import Affine
from click.testing import CliRunner
from PIL import Image
from rasterio.crs import CRS

from humanscape.cli import cli
from humanscape.geo.raster import GridSpec, write_raster
from humanscape.report.html import write_report

ROOT = Path(__file__).resolve().parents[1]


def make_run(folder: Path) -> Path:
    """A run folder: a map in lon/lat (bounds known), a model folder with its candidates, a
    figure and a table."""
    grid = GridSpec(CRS.from_epsg(4326), Affine(0.01, 0, 13.0, 0, -0.01, 52.6), 40, 20)
    values = np.linspace(0, 1, 800, dtype=np.float32).reshape(20, 40)
    values[0, 0] = np.nan
    write_raster(folder / "probability.tif", values, grid, units="probability", band_names=["p"])
    model = folder / "score_model"
    model.mkdir(parents=True)
    config = {
        "kind": "humanscape.economy.score",
        "params": {"bands": ["B02", "B03", "B04", "B08"], "method": "auto"},
        "state": {
            "method": "mosaiks",
            "units": "reflectance",
            "validation_split": "20 % of the groups held out",
            "validation": {"accuracy": 0.9178, "log": {"r2": 0.18, "bias": 2.0}, "n_train": 293},
            "conformal": {"alpha": 0.1, "quantile": 5.5, "n_calibration": 38},
        },
        "info": {"method_chosen_by": "auto: 3-class accuracy"},
    }
    (model / "config.json").write_text(json.dumps(config))
    pd.DataFrame(
        {
            "candidate": ["mosaiks", "cnn", "forest"],
            "mean": [0.9178, 0.8630, 0.8493],
            "chosen": [True, False, False],
        }
    ).to_csv(model / "candidates.csv", index=False)
    Image.new("RGB", (30, 20), (200, 40, 40)).save(folder / "figure.png")
    pd.DataFrame({"metric": ["r2"], "value": [0.61]}).to_csv(folder / "metrics.csv", index=False)
    (folder / "chips").mkdir()
    pd.DataFrame({"image": ["a.tif"]}).to_csv(folder / "chips" / "chips.csv", index=False)
    return folder


def test_the_page_holds_cards_candidates_maps_figures_and_tables_inline(tmp_path):
    run = make_run(tmp_path / "run")
    lines = write_report(run, tmp_path / "report.html")
    assert lines[0] == "report: 1 model card(s), 1 map(s), 1 figure(s), 1 table(s)"
    page = (tmp_path / "report.html").read_text()
    assert "mosaiks" in page and "auto: 3-class accuracy" in page
    assert "accuracy 0.9178, log r2 0.18, n_train 293</td>" in page  # no "bias": not a metric
    assert "90 % split-conformal interval, 38 calibration samples, half-width quantile 5.5" in page
    assert "B02, B03, B04, B08" in page
    chosen = re.findall(r"<tr class=chosen>(.*?)</tr>", page)
    assert len(chosen) == 1 and "<td>mosaiks</td>" in chosen[0]
    # the map: lon/lat bounds of the raster, [[south, west], [north, east]]
    spec = json.loads(re.search(r"const layers = (\[.*?\]);", page).group(1))
    assert np.ravel(spec[0]["bounds"]).tolist() == pytest.approx([52.4, 13.0, 52.6, 13.4])
    assert spec[0]["image"].startswith("data:image/png;base64,")
    assert "probability" in page  # the colour bar's units
    # everything inline: no script, style or image fetched from anywhere
    assert not re.search(r"<script[^>]+src=", page) and not re.search(r"<link[^>]+href=", page)
    assert not re.search(r"src=['\"](?!data:)", page)
    assert "chips.csv" not in page  # inputs of the run are not results


def test_a_folder_with_no_run_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(
        cli, ["report", str(tmp_path / "empty"), "--out", str(tmp_path / "r.html")]
    )
    assert result.exit_code == 2
    assert "holds no run" in result.output and not (tmp_path / "r.html").exists()


@pytest.fixture(scope="module")
def chromium() -> str:
    subprocess.run(["sh", str(ROOT / "scripts" / "ensure_chromium.sh")], check=True, timeout=900)
    path = shutil.which("chromium") or "/usr/bin/chromium"
    assert Path(path).exists(), "Debian's chromium package did not install"
    return path


def test_the_report_opens_in_headless_chromium_offline(tmp_path, chromium):
    from playwright.sync_api import sync_playwright

    run = make_run(tmp_path / "run")
    result = CliRunner().invoke(cli, ["report", str(run), "--out", str(tmp_path / "report.html")])
    assert result.exit_code == 0, result.output
    errors, outside = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        page = browser.new_page(viewport={"width": 1200, "height": 1600})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on(
            "request",
            lambda r: outside.append(r.url) if not r.url.startswith(("file:", "data:")) else None,
        )
        page.goto((tmp_path / "report.html").as_uri())
        page.wait_for_selector("#map0[data-drawn='1']", timeout=20_000)
        tiles = page.locator("#map0 img.leaflet-image-layer").count()
        shot = tmp_path / "shot.png"
        page.locator("#map0").screenshot(path=str(shot))
        browser.close()
    assert errors == [] and outside == []
    assert tiles == 1
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert pixels.std() > 5  # the overlay's colours, not a blank box
