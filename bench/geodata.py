"""Benchmark of the geodata layer: windowed indices + 3-date median composite vs a naive full-load version.

For each scene size (default 2,500 and 10,000 px square) the script writes three dated synthetic
5-band scenes (green, red, nir, swir1, swir2 as uint16 DN; ``humanscape.data.synthetic``) and then,
each in its own subprocess so that peak memory (max RSS) is measured per run:

- ``stream indices``   : ``scene_indices`` (10 indices, window by window) -> GeoTIFF
- ``stream composite`` : ``composite`` (median of 3 dates + valid_count, window by window) -> GeoTIFF
- ``naive indices``    : rasterio ``read()`` of the whole scene, numpy, one write
- ``naive composite``  : whole stacks in memory, ``np.nanmedian``, one write

It also times the synthetic world generator on a 512 x 512 world. Results are printed as a
markdown table and saved to ``bench/out/geodata.json``.

Usage::

    python bench/geodata.py                    # sizes 2500 and 10000 (about 20 minutes on 2 cores)
    python bench/geodata.py --sizes 2000 4000  # quicker
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

BANDS = ["B03", "B04", "B08", "B11", "B12"]
ROLES = ["green", "red", "nir", "swir1", "swir2"]


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(kind: str, scenes: list[str], out: str) -> dict[str, float]:
    """Run one measured job in this (fresh) process."""
    import rasterio

    from humanscape.geo.composite import composite
    from humanscape.geo.indices import compute_indices, scene_indices
    from humanscape.geo.raster import creation_options, open_scene

    start = time.perf_counter()
    if kind == "stream_indices":
        with open_scene(scenes[0]) as scene:
            scene_indices(scene, out, progress=False)
            pixels = scene.width * scene.height
    elif kind == "stream_composite":
        opened = [open_scene(s) for s in scenes]
        composite(opened, out, progress=False)
        pixels = opened[0].width * opened[0].height * len(opened)
    elif kind == "naive_indices":
        with rasterio.open(scenes[0]) as src:
            data = src.read().astype(np.float32) * np.float32(1e-4)
            profile = src.profile
        data[data == 0] = np.nan
        result = compute_indices(dict(zip(ROLES, data, strict=True)))
        profile.update(
            count=result.shape[0], dtype="float32", nodata=float("nan"), **creation_options()
        )
        with rasterio.open(out, "w", **profile) as dst:
            dst.write(result)
        pixels = data.shape[1] * data.shape[2]
    elif kind == "naive_composite":
        stack = []
        for s in scenes:
            with rasterio.open(s) as src:
                arr = src.read().astype(np.float32) * np.float32(1e-4)
                profile = src.profile
            arr[arr == 0] = np.nan
            stack.append(arr)
        stack = np.stack(stack)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            result = np.nanmedian(stack, axis=0)
        count = np.isfinite(stack).all(axis=1).sum(axis=0).astype(np.float32)
        result = np.concatenate([result, count[None]])
        profile.update(
            count=result.shape[0], dtype="float32", nodata=float("nan"), **creation_options()
        )
        with rasterio.open(out, "w", **profile) as dst:
            dst.write(result)
        pixels = stack.shape[2] * stack.shape[3] * stack.shape[0]
    else:
        raise SystemExit(f"unknown job {kind}")
    seconds = time.perf_counter() - start
    return {
        "seconds": round(seconds, 2),
        "megapixels": pixels / 1e6,
        "mpix_per_s": round(pixels / 1e6 / seconds, 2),
        "peak_mb": round(_peak_mb(), 1),
    }


def run_job(kind: str, scenes: list[Path], out: Path) -> dict[str, object]:
    cmd = [sys.executable, __file__, "--worker", kind, "--out", str(out), *map(str, scenes)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    out.unlink(missing_ok=True)
    if proc.returncode != 0:
        reason = (
            "killed (out of memory)"
            if proc.returncode in (-9, 137)
            else proc.stderr.strip().splitlines()[-1:]
        )
        return {"failed": str(reason)}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def make_scenes(size: int, work: Path) -> list[Path]:
    from humanscape.data.synthetic import SyntheticWorld

    world = SyntheticWorld(size, size, seed=0)
    paths = []
    for period in range(3):
        path = work / f"synthetic_{size}_date{period}_2020010{period + 1}.tif"
        if not path.exists():
            t = time.perf_counter()
            world.write_scene(path, period=period, bands=BANDS)
            print(f"  wrote {path.name} in {time.perf_counter() - t:.0f} s", flush=True)
        paths.append(path)
    return paths


def synthetic_speed() -> float:
    from humanscape.data.synthetic import SyntheticWorld

    times = []
    for seed in range(3):
        t = time.perf_counter()
        SyntheticWorld(512, 512, seed=seed).tile()
        times.append(time.perf_counter() - t)
    return round(float(np.mean(times)), 3)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[2500, 10000])
    parser.add_argument("--work", type=Path, default=Path("bench/out/geodata"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("scenes", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.scenes, args.out)))
        return

    args.work.mkdir(parents=True, exist_ok=True)
    results: dict[str, object] = {"synthetic_512_seconds": synthetic_speed(), "sizes": {}}
    print(f"synthetic world 512 x 512: {results['synthetic_512_seconds']} s", flush=True)
    for size in args.sizes:
        print(f"size {size} x {size}:", flush=True)
        scenes = make_scenes(size, args.work)
        rows = {}
        for kind in ("stream_indices", "naive_indices", "stream_composite", "naive_composite"):
            rows[kind] = run_job(kind, scenes, args.work / f"{kind}.tif")
            print(f"  {kind:<17} {rows[kind]}", flush=True)
        results["sizes"][str(size)] = rows  # type: ignore[index]
    (args.work.parent / "geodata.json").write_text(json.dumps(results, indent=2))

    print(
        "\n| size (px) | job | streaming Mpx/s | naive Mpx/s | speed ratio | streaming peak MB | naive peak MB |"
    )
    print("|---|---|---|---|---|---|---|")
    for size, rows in results["sizes"].items():  # type: ignore[union-attr]
        for job in ("indices", "composite"):
            s, n = rows[f"stream_{job}"], rows[f"naive_{job}"]
            ratio = (
                f"{s['mpix_per_s'] / n['mpix_per_s']:.2f}"
                if "failed" not in n and "failed" not in s
                else "-"
            )
            print(
                f"| {size} | {job} | {s.get('mpix_per_s', s.get('failed'))} | {n.get('mpix_per_s', n.get('failed'))} "
                f"| {ratio} | {s.get('peak_mb', '-')} | {n.get('peak_mb', '-')} |"
            )


if __name__ == "__main__":
    main()
