"""Benchmark of ``--cloud-mask s2cloudless`` on the real data of ../shared/data.

What can and cannot be measured here:

- **Agreement with the Slovenia cloud masks: not measurable.** The eo-learn Slovenia patch ships NDVI
  and Sentinel Hub's own s2cloudless output (CLP probability, CLM mask, computed at 160 m) but none of
  the ten reflectances the classifier reads, so humanscape's s2cloudless cannot run on it.
- ``eurosat``: false alarms on cloud-free land. The 469 EuroSAT MS chips (13-band L1C, 10 land-cover
  classes) were picked cloud-free by their authors (Helber et al. 2019), so every pixel flagged
  cloud is a false alarm. s2cloudless (the default 60 m working grid) against the brightness test a
  reviewer tries first (cloud where blue TOA reflectance B02 > 0.2).
- ``berlin``: the 13-band L1C scene of 2017-02-16 (1536 x 768 px): the flagged fraction, the 60 m
  working grid against the classifier on the 10 m grid (agreement, time), and a figure
  (``docs/figures/cloudmask_berlin.png``: the scene in true colour with the mask outlined).
- ``slovenia``: composite quality with and without the s2cloudless mask, using the Sentinel Hub
  s2cloudless layers of the patch (CLM, and CLP at the 0.4 threshold through the ``probability``
  path): monthly median NDVI composites, April-September 2016 and 2017, of the forest pixels (LULC 2)
  through :func:`humanscape.geo.composite.composite_array`. Summer forest NDVI is above 0.7; a
  monthly composite below 0.5 is taken as cloud-contaminated.

Usage::

    python bench/cloudmask.py --data ../shared/data            # about a minute on 2 cores
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from rasterio.windows import Window


def eurosat(data: Path) -> dict[str, object]:
    from humanscape.geo.composite import CloudMask
    from humanscape.geo.inputs import open_scene

    mask = CloudMask.parse("s2cloudless")
    per_class: dict[str, list[tuple[float, float]]] = {}
    for path in sorted((data / "eurosat_ms").glob("*/*.tif")):
        scene = open_scene(path)
        window = Window(0, 0, scene.width, scene.height)
        cloudy = ~mask.clear(scene, 0, window, None)
        blue = scene.read(["B02"])[0]
        per_class.setdefault(path.parent.name, []).append(
            (float(cloudy.mean()), float((blue > 0.2).mean()))
        )
    rows = {}
    for name, values in per_class.items():
        arr = np.asarray(values)
        rows[name] = {
            "chips": len(arr),
            "s2cloudless_flagged": float(arr[:, 0].mean()),
            "brightness_flagged": float(arr[:, 1].mean()),
            "s2cloudless_chips_over_10pct": int((arr[:, 0] > 0.1).sum()),
            "brightness_chips_over_10pct": int((arr[:, 1] > 0.1).sum()),
        }
    allv = np.asarray([v for values in per_class.values() for v in values])
    rows["all"] = {
        "chips": len(allv),
        "s2cloudless_flagged": float(allv[:, 0].mean()),
        "brightness_flagged": float(allv[:, 1].mean()),
        "s2cloudless_chips_over_10pct": int((allv[:, 0] > 0.1).sum()),
        "brightness_chips_over_10pct": int((allv[:, 1] > 0.1).sum()),
    }
    return rows


def berlin(data: Path, figure: Path | None) -> dict[str, object]:
    from humanscape.geo.inputs import open_scene
    from humanscape.geo.s2cloudless import S2Cloudless

    scene = open_scene(data / "s2_berlin_scene" / "IMG_DATA")
    window = Window(0, 0, scene.width, scene.height)
    out: dict[str, object] = {"pixels": scene.width * scene.height}
    masks = {}
    for label, working in (("60m", 60.0), ("10m", 10.0)):
        detector = S2Cloudless.for_resolution(float(scene.grid.res[0]), working_res_m=working)
        start = time.perf_counter()
        masks[label] = ~detector.clear(scene, window)
        out[f"seconds_{label}"] = time.perf_counter() - start
        out[f"flagged_{label}"] = float(masks[label].mean())
    out["agreement_60m_10m"] = float((masks["60m"] == masks["10m"]).mean())
    blue = scene.read(["B02"])[0]
    out["flagged_brightness"] = float((blue > 0.2).mean())
    out["agreement_60m_brightness"] = float((masks["60m"] == (blue > 0.2)).mean())
    if figure is not None:
        _figure(scene, masks["60m"], figure)
    return out


def _figure(scene, cloudy: np.ndarray, path: Path) -> None:  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    from humanscape.report.quicklook import _scale_bar

    rgb = scene.read(["B04", "B03", "B02"])
    lo, hi = np.nanpercentile(rgb, [2, 98])
    rgb = np.clip((np.moveaxis(rgb, 0, -1) - lo) / (hi - lo), 0, 1)
    left, bottom, right, top = scene.grid.bounds
    fig, ax = plt.subplots(figsize=(10, 5.6))
    ax.imshow(rgb, extent=(left, right, bottom, top))
    ax.contour(
        np.linspace(left, right, cloudy.shape[1]),
        np.linspace(top, bottom, cloudy.shape[0]),
        cloudy.astype(float),
        levels=[0.5],
        colors="magenta",
        linewidths=0.8,
    )
    _scale_bar(ax, right - left)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(
        f"Sentinel-2 L1C T33UUU 2017-02-16 (true colour): s2cloudless cloud mask "
        f"({100 * cloudy.mean():.1f} % of pixels)"
    )
    ax.legend(
        handles=[Patch(facecolor="none", edgecolor="magenta", label="s2cloudless cloud (0.4)")],
        loc="upper right",
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def slovenia(data: Path) -> dict[str, object]:
    from humanscape.geo.composite import composite_array, probability_clear

    root = data / "eolearn_slovenia" / "TestEOPatch"
    ndvi = np.load(root / "data" / "NDVI.npy")[..., 0]
    clp = np.load(root / "data" / "CLP.npy")[..., 0]
    clm = np.load(root / "mask" / "CLM.npy")[..., 0].astype(bool)
    is_data = np.load(root / "mask" / "IS_DATA.npy")[..., 0].astype(bool)
    lulc = np.load(root / "mask_timeless" / "LULC.npy")[..., 0]
    from datetime import datetime

    dates = [datetime.fromisoformat(s) for s in json.loads((root / "timestamps.json").read_text())]
    maximum = 255.0 if clp.max() > 100 else 100.0 if clp.max() > 1 else 1.0
    clears = {
        "none": is_data,
        "CLM": is_data & ~clm,
        "CLP >= 0.4": is_data & probability_clear(clp, 0.4, maximum),
    }
    forest = lulc == 2
    results: dict[str, object] = {"forest_pixels": int(forest.sum()), "clp_maximum": maximum}
    for label, clear in clears.items():
        values, months, empty = [], 0, 0
        for year in (2016, 2017):
            for month in range(4, 10):
                idx = [i for i, d in enumerate(dates) if (d.year, d.month) == (year, month)]
                if not idx:
                    continue
                comp, count = composite_array(ndvi[idx][:, None], clear[idx])
                months += 1
                empty += int((count[forest] == 0).sum())
                v = comp[0][forest]
                values.append(v[np.isfinite(v)])
        allv = np.concatenate(values)
        results[label] = {
            "months": months,
            "forest_pixel_months": int(allv.size),
            "no_clear_observation": empty,
            "contaminated_below_0.5": float((allv < 0.5).mean()),
            "median_ndvi": float(np.median(allv)),
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--parts", default="eurosat,berlin,slovenia")
    parser.add_argument("--figure", type=Path, default=Path("docs/figures/cloudmask_berlin.png"))
    parser.add_argument("--out", type=Path, default=Path("bench/out/cloudmask.json"))
    args = parser.parse_args()
    results: dict[str, object] = {}
    parts = args.parts.split(",")
    if "eurosat" in parts:
        results["eurosat"] = eurosat(args.data)
        print("EuroSAT MS (cloud-free chips): mean share of pixels flagged cloud")
        print(
            "| class | chips | s2cloudless | brightness B02 > 0.2 | chips > 10 % (s2c / bright) |"
        )
        print("|---|---|---|---|---|")
        for name, r in results["eurosat"].items():  # type: ignore[union-attr]
            print(
                f"| {name} | {r['chips']} | {100 * r['s2cloudless_flagged']:.1f} % | "
                f"{100 * r['brightness_flagged']:.1f} % | {r['s2cloudless_chips_over_10pct']} / "
                f"{r['brightness_chips_over_10pct']} |"
            )
    if "berlin" in parts:
        results["berlin"] = berlin(args.data, args.figure)
        print("Berlin L1C 2017-02-16:", json.dumps(results["berlin"], indent=1))
    if "slovenia" in parts:
        results["slovenia"] = slovenia(args.data)
        print("Slovenia forest, monthly composites Apr-Sep 2016-2017:")
        print(json.dumps(results["slovenia"], indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
