"""``humanscape demo``: the chain on the shipped real data, end to end, in a few minutes on 2 cores.

Each task adds its step here. Outputs go under one folder; the function returns them by label.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from rich.console import Console

from humanscape._atomic import atomic_output
from humanscape.data import samples
from humanscape.geo.composite import CloudMask, Period, composite, scenes_in_period
from humanscape.geo.grid import chip_scene, regular_grid
from humanscape.geo.indices import scene_indices
from humanscape.report.quicklook import rgb_quicklook

log = logging.getLogger(__name__)
console = Console(stderr=True, soft_wrap=True)


def run_demo(out: str | Path) -> dict[str, Path]:
    """Run every demo step into ``out``; returns ``{label: path}``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    outputs: dict[str, Path] = {}
    start = time.perf_counter()

    console.rule("geodata: Sentinel-2 L1C scene west of Berlin, 2017-02-16 (real)")
    with samples.berlin_scene() as scene:
        d = scene.describe()
        console.print(
            f"{len(scene.band_names)} bands aligned to {d['resolution_m']} m, "
            f"{scene.width} x {scene.height} px, {d['crs']}"
        )
        outputs["RGB quicklook (PNG)"] = rgb_quicklook(scene, out / "berlin_rgb.png")
        outputs["spectral indices (GeoTIFF, 10 bands)"] = scene_indices(
            scene, out / "berlin_indices.tif"
        )
        table = chip_scene(
            scene, regular_grid(scene.grid, 1000), out / "berlin_chips", progress=False
        )
        outputs[f"chip table ({len(table)} chips of 1 km)"] = out / "berlin_chips" / "chips.csv"

    console.rule("geodata: Landsat 5/7 series over Colorado, Fmask cloud mask (real)")
    series = samples.landsat_timeseries()
    period = Period.parse("2010-2011")
    in_period = [series[i] for i in scenes_in_period(series, period)]
    outputs[f"median composite {period.name} ({len(in_period)} dates)"] = composite(
        in_period,
        out / f"landsat_median_{period.name}.tif",
        cloud_mask=CloudMask("fmask"),
        progress=False,
        tags={"period": period.name},
    )

    summary = {
        "outputs": {k: str(v) for k, v in outputs.items()},
        "seconds": round(time.perf_counter() - start, 1),
    }
    with atomic_output(out / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2))
    outputs["summary (JSON)"] = out / "summary.json"
    return outputs
