"""One self-contained HTML page for a run folder (issue 24): ``humanscape report RUN_DIR``.

The page gathers what a run left behind so that a person opens one file instead of many:

* model cards: every ``config.json`` a humanscape model folder holds (what was fitted, on which
  data, bands, units and sensor, the method chosen and the metrics of its validation), with the
  candidates' table of the selection (``candidates.csv``: each candidate's held-out score against
  the baseline, the chosen one marked);
* maps: every georeferenced GeoTIFF, first band, read at reduced resolution (memory independent
  of the raster's size) and shown as an overlay a person can pan and zoom (Leaflet 1.9.4, BSD-2,
  inlined from ``report/vendor``), with a colour bar, its units and a scale bar; a basemap
  (OpenStreetMap tiles) only when the viewer ticks the box, so the page makes no request to any
  host until asked;
* the figures (PNG, inlined) and the tables (CSV, the first rows).

Everything is inlined (scripts, styles, images as ``data:`` URLs): the file opens offline and can
be mailed.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from humanscape._atomic import atomic_output
from humanscape.errors import EmptyInputError, HumanscapeError

log = logging.getLogger(__name__)

VENDOR = Path(__file__).resolve().parent / "vendor"
#: Largest side of a map overlay in pixels.
MAP_SIZE = 768
#: At most this many maps, figures and tables (the first by path).
MAX_MAPS, MAX_FIGURES, MAX_TABLES = 16, 40, 30
#: Rows of a table shown.
TABLE_ROWS = 25
#: Folders of a run whose files are inputs or intermediates, not results to show.
SKIP_DIRS = {"chips", "tiles", "checkpoints", "report_assets"}
SKIP_TABLES = {"chips.csv"}


@dataclass
class MapLayer:
    """A raster shown on the page: overlay image, lat/lon bounds, colour bar, labels."""

    name: str
    image: str
    bounds: list[list[float]]
    colourbar: str
    units: str
    description: str
    width_m: float


def _data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _files(run: Path, pattern: str) -> list[Path]:
    out = []
    for path in sorted(run.rglob(pattern)):
        rel = path.relative_to(run)
        if any(part in SKIP_DIRS or part.endswith(".checkpoints") for part in rel.parts[:-1]):
            continue
        out.append(path)
    return out


def map_layer(path: Path, max_size: int = MAP_SIZE) -> MapLayer | None:
    """The first band of a georeferenced raster as an overlay (None for rasters without a CRS or
    with no finite value). Read through an overview-sized window: memory does not grow with the
    raster."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.warp import transform_bounds

    with rasterio.open(path) as ds:
        if ds.crs is None:
            return None
        step = max(1, int(np.ceil(max(ds.width, ds.height) / max_size)))
        shape = (max(1, ds.height // step), max(1, ds.width // step))
        data = ds.read(1, out_shape=shape, masked=True, resampling=Resampling.average).astype(
            np.float64
        )
        values = data.filled(np.nan)
        units = (ds.units[0] if ds.units and ds.units[0] else ds.tags().get("units", "")) or ""
        description = ds.descriptions[0] or ""
        west, south, east, north = transform_bounds(ds.crs, "EPSG:4326", *ds.bounds)
        width_m = (ds.bounds[2] - ds.bounds[0]) if ds.crs.is_projected else float("nan")
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return None
    lo, hi = np.percentile(finite, (2, 98))
    if hi <= lo:
        lo, hi = float(finite.min()), float(finite.max()) + 1e-9
    cmap = plt.get_cmap("viridis")
    rgba = cmap(np.clip((values - lo) / (hi - lo), 0, 1))
    rgba[..., 3] = np.isfinite(values) * 0.85
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray((rgba * 255).astype(np.uint8), mode="RGBA").save(buffer, format="PNG")
    fig, ax = plt.subplots(figsize=(4.2, 0.75), dpi=100)
    fig.subplots_adjust(left=0.05, right=0.95, bottom=0.55, top=0.95)
    bar = matplotlib.colorbar.ColorbarBase(
        ax, cmap=cmap, norm=matplotlib.colors.Normalize(lo, hi), orientation="horizontal"
    )
    bar.set_label(f"{description or path.stem} ({units or 'no units recorded'})", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    legend = io.BytesIO()
    fig.savefig(legend, format="png")
    plt.close(fig)
    return MapLayer(
        name=str(path),
        image=_data_url(buffer.getvalue()),
        bounds=[[south, west], [north, east]],
        colourbar=_data_url(legend.getvalue()),
        units=units or "no units recorded",
        description=description,
        width_m=width_m,
    )


def _table_html(path: Path, *, highlight: str | None = None) -> str:
    import pandas as pd

    try:
        table = pd.read_csv(path)
    except (ValueError, OSError) as exc:
        return f"<p class='note'>{html.escape(path.name)}: not a readable table ({exc})</p>"
    shown = table.head(TABLE_ROWS)
    rows = []
    for _, row in shown.iterrows():
        chosen = highlight is not None and bool(row.get(highlight, False))
        cells = "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row.to_numpy())
        rows.append(f"<tr{' class=chosen' if chosen else ''}>{cells}</tr>")
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in table.columns)
    more = (
        f"<p class='note'>first {TABLE_ROWS} of {len(table)} rows</p>"
        if len(table) > TABLE_ROWS
        else ""
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>{more}"


def _cell(value: object) -> str:
    if isinstance(value, float | np.floating):
        return "n/a" if not np.isfinite(value) else f"{value:.4g}"
    return str(value)


#: Keys of a model folder's ``info`` that name its training data, in order of preference.
TRAINING_KEYS = ("training_table", "chip_table", "tile_table", "census", "labels", "training_data")
#: Metric names shown on a card (nested ones as ``<group> <name>``).
CARD_METRICS = {
    "accuracy", "spearman", "r2", "pearson_r2", "mae", "rmse", "cpc", "coverage",
    "average_precision", "ap", "n_train", "n_validation",
}  # fmt: skip


def _metrics(values: object, prefix: str = "") -> list[tuple[str, float]]:
    """The card's metrics of a validation dict, one level of nesting flattened."""
    if not isinstance(values, dict):
        return []
    out: list[tuple[str, float]] = []
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and not prefix:
            out += _metrics(value, f"{key} ")
        elif isinstance(value, int | float) and str(key).lower() in CARD_METRICS:
            out.append((name, value))
    return out


def _interval(state: dict) -> str:
    """The prediction interval a model carries (split-conformal), in words."""
    conformal = state.get("conformal")
    if isinstance(conformal, dict) and "alpha" in conformal:
        return (
            f"{100 * (1 - float(conformal['alpha'])):g} % split-conformal interval, "
            f"{conformal.get('n_calibration', '?')} calibration samples, half-width quantile "
            f"{_cell(conformal.get('quantile'))}"
        )
    if "conformal_quantile" in state:
        q = state["conformal_quantile"]
        n = state.get("n_calibration", "?")
        return (
            f"split-conformal interval, {n} calibration samples, half-width {_cell(q)}"
            if q is not None
            else f"no finite interval ({n} calibration samples are too few)"
        )
    return ""


def _model_card(config_path: Path, run: Path) -> str:
    try:
        config = json.loads(config_path.read_text())
    except (ValueError, OSError):
        return ""
    if not isinstance(config, dict) or "kind" not in config:
        return ""
    state = config.get("state", {}) if isinstance(config.get("state"), dict) else {}
    params = config.get("params", {}) if isinstance(config.get("params"), dict) else {}
    info = config.get("info", {}) if isinstance(config.get("info"), dict) else {}
    facts = {
        "model": config.get("kind", ""),
        "folder": str(config_path.parent.relative_to(run)),
        "method": state.get("method", params.get("method", "")),
        "chosen by": info.get("method_chosen_by", ""),
        "bands": ", ".join(map(str, params.get("bands") or state.get("bands") or [])),
        "units": state.get("units", ""),
        "sensor": state.get("sensor", params.get("sensor", "")),
        "training data": next(
            (info[k] for k in TRAINING_KEYS if isinstance(info.get(k), str) and info[k]), ""
        ),
        "validation": state.get("validation_split", ""),
    }
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
        for k, v in facts.items()
        if v not in ("", None)
    )
    metrics = _metrics(state.get("validation"))
    if metrics:
        text = ", ".join(f"{k} {_cell(v)}" for k, v in metrics)
        rows += f"<tr><th>validation metrics</th><td>{html.escape(text)}</td></tr>"
    interval = _interval(state)
    if interval:
        rows += f"<tr><th>prediction interval</th><td>{html.escape(interval)}</td></tr>"
    card = f"<h3>{html.escape(facts['folder'] or '.')}</h3><table class='card'>{rows}</table>"
    candidates = config_path.parent / "candidates.csv"
    if candidates.exists():
        card += (
            "<h4>Candidates (held-out score; the chosen one highlighted; the baseline wins ties)"
            f"</h4>{_table_html(candidates, highlight='chosen')}"
        )
    return f"<section class='model'>{card}</section>"


def write_report(run: str | Path, out: str | Path) -> list[str]:
    """Write the report of the run folder ``run`` to ``out`` (one HTML file); returns the lines
    the CLI prints."""
    run, out = Path(run), Path(out)
    if not run.is_dir():
        raise HumanscapeError("not a folder", path=run, fix="give the folder a command wrote")
    configs = _files(run, "config.json")
    rasters = [p for p in _files(run, "*.tif") if p.resolve() != out.resolve()]
    figures = _files(run, "*.png")
    tables = [
        p
        for p in _files(run, "*.csv")
        if p.name not in SKIP_TABLES and p.name != "candidates.csv" and p.stat().st_size < 2**20
    ]
    if not (configs or rasters or figures or tables):
        raise EmptyInputError(
            "the folder holds no run (no model folder, map, figure or table)",
            path=run,
            fix="give the --out folder of a humanscape command (e.g. demo-output)",
        )
    cards = [c for c in (_model_card(p, run) for p in configs) if c]
    layers = []
    for path in rasters[:MAX_MAPS]:
        try:
            layer = map_layer(path)
        except Exception as exc:  # a raster the page cannot show is named, not fatal
            log.warning("%s: not shown (%s)", path, exc)
            continue
        if layer is not None:
            layer.name = str(path.relative_to(run))
            layers.append(layer)
    page = _page(run, cards, layers, figures[:MAX_FIGURES], tables[:MAX_TABLES])
    with atomic_output(out) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return [
        f"report: {len(cards)} model card(s), {len(layers)} map(s), "
        f"{len(figures[:MAX_FIGURES])} figure(s), {len(tables[:MAX_TABLES])} table(s)",
        f"wrote {out}",
    ]


def _page(
    run: Path, cards: list[str], layers: list[MapLayer], figures: list[Path], tables: list[Path]
) -> str:
    css = (VENDOR / "leaflet.css").read_text()
    js = (VENDOR / "leaflet.js").read_text()
    maps = []
    for k, layer in enumerate(layers):
        maps.append(
            f"<section class='map-block'><h3>{html.escape(layer.name)}</h3>"
            f"<div class='map' id='map{k}'></div>"
            f"<img class='legend' alt='colour bar of {html.escape(layer.name)}' "
            f"src='{layer.colourbar}'></section>"
        )
    spec = [
        {"id": f"map{k}", "image": layer.image, "bounds": layer.bounds}
        for k, layer in enumerate(layers)
    ]
    figs = "".join(
        f"<figure><img alt='{html.escape(p.name)}' src='{_data_url(p.read_bytes())}'>"
        f"<figcaption>{html.escape(str(p.relative_to(run)))}</figcaption></figure>"
        for p in figures
    )
    tabs = "".join(
        f"<h3>{html.escape(str(p.relative_to(run)))}</h3>{_table_html(p)}" for p in tables
    )
    created = datetime.now().strftime("%Y-%m-%d %H:%M")
    script = """
const layers = __LAYERS__;
const maps = [];
let basemaps = [];
for (const spec of layers) {
  const map = L.map(spec.id, {zoomSnap: 0.25});
  const overlay = L.imageOverlay(spec.image, spec.bounds, {interactive: false}).addTo(map);
  overlay.on('load', () => document.getElementById(spec.id).dataset.drawn = '1');
  map.fitBounds(spec.bounds);
  L.control.scale({imperial: false}).addTo(map);
  maps.push(map);
}
document.getElementById('basemap').addEventListener('change', (event) => {
  for (const b of basemaps) b.remove();
  basemaps = [];
  if (!event.target.checked) return;
  for (const map of maps) {
    basemaps.push(L.tileLayer('https://tile.openstreetmap.org/{z}/{x}/{y}.png', {
      maxZoom: 19, attribution: '&copy; OpenStreetMap contributors'}).addTo(map).bringToBack());
  }
});
""".replace("__LAYERS__", json.dumps(spec))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>humanscape report: {html.escape(run.name)}</title>
<style>{css}</style>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5rem auto; max-width: 70rem; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5rem 0; font-size: 0.85rem; }}
th, td {{ border: 1px solid #ccc; padding: 0.2rem 0.5rem; text-align: left; }}
tr.chosen {{ background: #e3f2d9; font-weight: bold; }}
.map {{ height: 420px; border: 1px solid #999; background: #f4f4f4; }}
.legend {{ display: block; margin-top: 0.3rem; }}
figure {{ display: inline-block; margin: 0.5rem; max-width: 32rem; vertical-align: top; }}
figure img {{ max-width: 100%; }}
.note {{ color: #666; font-size: 0.8rem; }}
</style></head><body>
<h1>humanscape report: {html.escape(run.name)}</h1>
<p class="note">{html.escape(str(run.resolve()))}, written {created}. Everything is inside this
file; it opens offline. <label><input type="checkbox" id="basemap"> basemap (OpenStreetMap, needs
the network)</label></p>
<h2>Models</h2>{"".join(cards) or "<p class='note'>no model folder in this run</p>"}
<h2>Maps</h2>{"".join(maps) or "<p class='note'>no georeferenced raster in this run</p>"}
<h2>Figures</h2>{figs or "<p class='note'>no figure in this run</p>"}
<h2>Tables</h2>{tabs or "<p class='note'>no table in this run</p>"}
<script>{js}</script>
<script>{script}</script>
</body></html>
"""
