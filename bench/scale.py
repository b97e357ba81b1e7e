"""Country-scale speed: chip inference against TorchGeo, flat memory, the settlement map on Dask.

Part ``chips`` (the peer comparison; TorchGeo 0.8.1 from the ``bench`` extra, see the Makefile):
one synthetic 8,192 x 8,192 x 4-band uint16 GeoTIFF (tiled 256 x 256, DEFLATE), chips of 256 px
at stride 256 (1,024 chips), batches of 32, a random ResNet-18 of timm (seed 0, 4 input bands,
pooled 512-d output), input ``DN / 10000`` in every pipeline:

- humanscape: :class:`~humanscape.scale.chips.ChipMap` on the tiled engine, in this process
  (``--workers 0``, ONNX Runtime on both cores, and once with ``--backend torch``) and on a
  LocalCluster of 2 workers (1 thread each);
- TorchGeo: ``RasterDataset`` + ``GridGeoSampler`` + ``DataLoader`` (``stack_samples``) with 0 and
  2 loader workers, the CNN in the main process on both cores, as TorchGeo's tutorials run it
  (``no_grad``, NCHW); and once more with humanscape's model preparation (conv-bn folding,
  channels-last), to show what part of the gap is the model and what part the data path;
- a plain rasterio loop: one windowed read per chip, the same batches, ``no_grad``.

Every pipeline's embeddings are compared on the same chip grid (max absolute difference). The read
path alone (no CNN) is timed for each (best of two passes).

Part ``onnx``: the CNN alone on 512 random chips, PyTorch as is, PyTorch as humanscape prepares it,
and ONNX Runtime (``torch.onnx`` export; 1 and 2 threads), to decide whether ONNX Runtime earns a
place (it does, so it is the default backend: see docs/benchmarks.md).

Part ``memory``: peak resident memory of ``predict-chips --workers 0 --tile 8`` (a 4-band scene,
a ResNet-18 on 64 px chips, tiles of 512 px) on scenes of 1x, 4x and 16x the area (2,048^2,
4,096^2, 8,192^2 px), each in a fresh process, with humanscape's GDAL block cache (256 MB) and
with ``GDAL_CACHEMAX=64``: the cache is the one allowance that fills as more of a scene is read.

Part ``settlements``: the settlement map on the real Berlin scene, its 13 bands written once as a
10 m GeoTIFF composite and mosaicked 4 x 4 (18.9 Mpx of real pixels): today's path (feature stack
written, then the paper's 800-tree forest, ``n_jobs=-1``) against the fused path (features with
texture computed tile by tile, never written, and the default gradient boosting) on 1 and 2 Dask
workers; the output bytes of 1 and 2 workers are compared. Accuracy of the two models is
``bench/settlements.py --part models``.

    .venv/bin/python bench/scale.py --part chips        # about 10 minutes on 2 cores, idle machine
    .venv/bin/python bench/scale.py --part onnx
    .venv/bin/python bench/scale.py --part memory
    .venv/bin/python bench/scale.py --part settlements  # about 6 minutes
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import humanscape.models._torch_shim  # noqa: F401  (before timm / torchvision)

import numpy as np
import rasterio
from rasterio.windows import Window

SIZE, CHIP, BATCH = 8192, 256, 32  # --size changes SIZE for a quick try


def synthetic_scene(path: Path, size: int = SIZE, seed: int = 0) -> Path:
    """A 4-band uint16 GeoTIFF of smooth random fields plus noise, tiled 256 px, DEFLATE."""
    if path.exists():
        return path
    from humanscape.geo.raster import GridSpec

    grid = GridSpec.from_bounds(
        "EPSG:32633", (300000, 5800000 - 10 * size, 300000 + 10 * size, 5800000), 10
    )
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(500, 4000, (4, size // 64 + 2, size // 64 + 2))
    profile = dict(
        driver="GTiff", width=size, height=size, count=4, dtype="uint16", crs=grid.crs,
        transform=grid.transform, tiled=True, blockxsize=256, blockysize=256, compress="deflate",
    )  # fmt: skip
    tmp = path.with_suffix(".tmp.tif")
    with rasterio.open(tmp, "w", **profile) as dst:
        for r0 in range(0, size, 1024):
            rows = np.arange(r0, r0 + 1024) / 64
            cols = np.arange(size) / 64
            block = np.empty((4, 1024, size), np.float32)
            for b in range(4):  # bilinear upsampling of the coarse field
                r, c = rows.astype(int), cols.astype(int)
                fr, fc = (rows - r)[:, None], (cols - c)[None, :]
                f = coarse[b]
                block[b] = (
                    f[r][:, c] * (1 - fr) * (1 - fc) + f[r + 1][:, c] * fr * (1 - fc)
                    + f[r][:, c + 1] * (1 - fr) * fc + f[r + 1][:, c + 1] * fr * fc
                )  # fmt: skip
            block += rng.normal(0, 150, block.shape).astype(np.float32)
            dst.write(np.clip(block, 0, 10000).astype(np.uint16), window=Window(0, r0, size, 1024))
    tmp.replace(path)
    return path


def resnet18(seed: int = 0):
    import timm
    import torch

    torch.manual_seed(seed)
    return timm.create_model("resnet18", pretrained=False, in_chans=4, num_classes=0).eval()


class TimmChips:
    """The random ResNet-18 as a humanscape chip predictor (input DN / 10000)."""

    bands = ["B02", "B03", "B04", "B08"]
    units = "embedding"

    def __init__(
        self, net, batch_size: int = BATCH, features: bool = True, backend: str = "auto"
    ) -> None:
        from humanscape.scale.chips import CpuNet

        self.net = CpuNet(net, backend)  # what predict-chips runs an encoder with
        self.batch_size = batch_size
        self.features = features
        self.backend = backend
        self.outputs = tuple(f"e{i:03d}" for i in range(512)) if features else ("zero",)

    def __call__(self, chips: np.ndarray) -> np.ndarray:
        if not self.features:  # the read path alone
            return np.zeros((len(chips), 1), np.float32)
        out = np.empty((len(chips), 512), np.float32)
        for s in range(0, len(chips), self.batch_size):
            x = chips[s : s + self.batch_size] / np.float32(10000)
            out[s : s + len(x)] = self.net(x)
        return out

    def token(self) -> str:
        return f"resnet18 seed0 features={self.features} {self.net.token()}"

    def __reduce__(self):
        # rebuilt on a Dask worker through a function that imports the torchvision shim first
        state = self.net.net.state_dict()
        return (_timm_chips, (state, self.batch_size, self.features, self.backend))


def _timm_chips(state: dict, batch_size: int, features: bool, backend: str) -> TimmChips:
    net = resnet18()
    net.load_state_dict(state)
    return TimmChips(net, batch_size, features, backend)


def humanscape_chips(
    scene_path: Path, work: Path, workers: int, features: bool, backend: str = "auto"
) -> tuple[float, np.ndarray]:
    from humanscape.geo.raster import open_scene
    from humanscape.scale import run_map
    from humanscape.scale.chips import ChipMap

    scene = open_scene(scene_path, band_names=TimmChips.bands, units="reflectance")
    job = ChipMap(
        scene, TimmChips(resnet18(), features=features, backend=backend), chip=CHIP, stride=CHIP
    )
    out = work / f"hs_{workers}_{int(features)}.tif"
    out.unlink(missing_ok=True)
    t = time.perf_counter()
    run_map(job, out, tile=job.default_tile(), workers=workers, progress=False, resume=False)
    seconds = time.perf_counter() - t
    with rasterio.open(out) as src:
        return seconds, src.read()


def torchgeo_chips(
    scene_path: Path, workers: int, features: bool, fast_model: bool = False
) -> tuple[float, np.ndarray]:
    """TorchGeo as its tutorials run inference (``no_grad``, NCHW), or with humanscape's model
    preparation (``fast_model``: conv-bn folding, channels-last, ``inference_mode``)."""
    import torch
    from torch.utils.data import DataLoader
    from torchgeo.datasets import RasterDataset, stack_samples
    from torchgeo.samplers import GridGeoSampler

    class Scene(RasterDataset):
        filename_glob = scene_path.name
        is_image = True

    dataset = Scene(paths=str(scene_path.parent))
    sampler = GridGeoSampler(dataset, size=CHIP, stride=CHIP)
    where = list(sampler)
    loader = DataLoader(
        dataset, sampler=sampler, batch_size=BATCH, num_workers=workers, collate_fn=stack_samples
    )
    net = resnet18()
    if fast_model:
        from humanscape.scale.chips import prepare_for_inference

        net = prepare_for_inference(net)
    res = dataset.res[0]
    left, top = dataset.bounds[0].start, dataset.bounds[1].stop
    out = np.full((512 if features else 1, SIZE // CHIP, SIZE // CHIP), np.nan, np.float32)
    k = 0
    t = time.perf_counter()
    context = torch.inference_mode() if fast_model else torch.no_grad()
    with context:
        for batch in loader:
            x = batch["image"] / 10000
            if fast_model:
                x = x.contiguous(memory_format=torch.channels_last)
            y = net(x).numpy() if features else None
            for i in range(len(x)):
                xs, ys = where[k][0], where[k][1]
                row = round((top - ys.stop) / res / CHIP)
                col = round((xs.start - left) / res / CHIP)
                out[:, row, col] = y[i] if features else 0.0
                k += 1
    return time.perf_counter() - t, out


def rasterio_chips(scene_path: Path, features: bool) -> tuple[float, np.ndarray]:
    import torch

    net = resnet18()
    out = np.full((512 if features else 1, SIZE // CHIP, SIZE // CHIP), np.nan, np.float32)
    cells = [(r, c) for r in range(SIZE // CHIP) for c in range(SIZE // CHIP)]
    t = time.perf_counter()
    with rasterio.open(scene_path) as src, torch.no_grad():
        for s in range(0, len(cells), BATCH):
            batch = cells[s : s + BATCH]
            x = np.stack(
                [src.read(window=Window(c * CHIP, r * CHIP, CHIP, CHIP)) for r, c in batch]
            ).astype(np.float32)
            if features:
                y = net(torch.from_numpy(x / np.float32(10000))).numpy()
            for i, (r, c) in enumerate(batch):
                out[:, r, c] = y[i] if features else 0.0
    return time.perf_counter() - t, out


def chips(work: Path) -> dict:
    import torch

    torch.set_num_threads(2)
    scene = synthetic_scene(work / f"scene_{SIZE}.tif", size=SIZE)
    n = (SIZE // CHIP) ** 2
    runs = {
        "humanscape, in process (ONNX Runtime, the default)": lambda f: humanscape_chips(
            scene, work, 0, f
        ),
        "humanscape, in process, --backend torch": lambda f: humanscape_chips(
            scene, work, 0, f, "torch"
        ),
        "humanscape, 2 Dask workers": lambda f: humanscape_chips(scene, work, 2, f),
        "TorchGeo, DataLoader 0 workers": lambda f: torchgeo_chips(scene, 0, f),
        "TorchGeo, DataLoader 2 workers": lambda f: torchgeo_chips(scene, 2, f),
        "TorchGeo, 2 workers, humanscape's model preparation": lambda f: torchgeo_chips(
            scene, 2, f, fast_model=True
        ),
        "plain rasterio window loop": lambda f: rasterio_chips(scene, f),
    }
    rows, outputs = [], {}
    for name, run in runs.items():
        # the read path: best of two passes, so that no pipeline pays the process's first GDAL
        # reads and page faults (the first pipeline would otherwise pay them for all)
        read_s = min(run(False)[0] for _ in range(2))
        total_s, emb = run(True)
        outputs[name] = emb
        rows.append(
            {
                "pipeline": name,
                "chips_per_s": n / total_s,
                "seconds": total_s,
                "read_only_seconds": read_s,
            }
        )
        print(rows[-1], flush=True)
    reference = outputs["TorchGeo, DataLoader 0 workers"]
    for row in rows:
        diff = np.abs(outputs[row["pipeline"]] - reference)
        row["max_abs_diff_vs_torchgeo"] = float(np.nanmax(diff))
        row["all_chips"] = bool(np.isfinite(outputs[row["pipeline"]]).all())
    return {"chips": n, "rows": rows}


def _peak_of_one(size: int, work: Path, cache_mb: int | None = None) -> float:
    """Peak RSS (MiB) of one predict-chips run on a ``size``^2 scene, in a fresh process, tiles of
    8 x 8 chips of 64 px (16 tiles on the smallest scene); ``cache_mb``: GDAL_CACHEMAX (None:
    humanscape's default, 256 MB)."""
    scene = synthetic_scene(work / f"scene_{size}.tif", size=size)
    code = f"""
import resource, sys
sys.argv = ["humanscape", "predict-chips", "{scene}", "--encoder", "{work / "encoder"}",
            "--chip", "64", "--band-names", "B02,B03,B04,B08", "--pixel-units", "reflectance",
            "--workers", "0", "--tile", "8", "--out", "{work / f"mem_{size}.tif"}"]
from humanscape.cli import cli
try:
    cli()
except SystemExit:
    pass
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""
    env = dict(os.environ)
    env.pop("GDAL_CACHEMAX", None)
    if cache_mb is not None:
        env["GDAL_CACHEMAX"] = str(cache_mb)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    return float(done.stdout.strip().splitlines()[-1])


def memory(work: Path) -> dict:
    import torch

    from humanscape.models.encoder import Encoder

    torch.manual_seed(0)
    Encoder("resnet18", ["B02", "B03", "B04", "B08"], [0.1] * 4, [0.05] * 4).save(work / "encoder")
    rows = []
    spread = {}
    for cache_mb in (None, 64):
        peaks = []
        for size in (2048, 4096, 8192):
            t = time.perf_counter()
            peaks.append(_peak_of_one(size, work, cache_mb))
            rows.append(
                {
                    "gdal_cachemax_mb": cache_mb or 256,
                    "area": f"{(size // 2048) ** 2}x",
                    "size_px": size,
                    "source_mib": size * size * 4 * 2 / 2**20,
                    "peak_rss_mib": peaks[-1],
                    "seconds": time.perf_counter() - t,
                }
            )
            print(rows[-1], flush=True)
        spread[cache_mb or 256] = (max(peaks) - min(peaks)) / min(peaks)
    return {"rows": rows, "spread_by_cache_mb": spread}


def berlin_mosaic(work: Path, repeat: int = 4) -> Path:
    """The Berlin scene's 13 bands at 10 m, written once and mosaicked ``repeat`` x ``repeat``."""
    from affine import Affine

    from humanscape.data import samples
    from humanscape.geo.raster import GridSpec, RasterWriter

    path = work / f"berlin_x{repeat}.tif"
    if path.exists():
        return path
    scene = samples.berlin_scene()
    data = scene.read()
    h, w = data.shape[1:]
    t = scene.grid.transform
    grid = GridSpec(scene.crs, Affine(t.a, 0, t.c, 0, t.e, t.f), w * repeat, h * repeat)
    with RasterWriter(
        path, grid, count=len(data), units="reflectance", band_names=scene.band_names,
        tags={"sensor": scene.sensor.name},
    ) as dst:  # fmt: skip
        for i in range(repeat):
            for j in range(repeat):
                dst.write(data, Window(j * w, i * h, w, h))
    return path


def _today_predict(model, stack: Path) -> None:
    """Prediction as humanscape did it before the engine: 512 px windows of the written stack,
    the forest on both cores (``n_jobs=-1``), in one process."""
    with rasterio.open(stack) as src:
        for r in range(0, src.height, 512):
            for c in range(0, src.width, 512):
                window = Window(c, r, min(512, src.width - c), min(512, src.height - r))
                data = src.read(window=window)
                matrix = data.reshape(len(data), -1).T
                valid = np.isfinite(matrix).any(axis=1)
                if valid.any():
                    model.predict_proba(matrix[valid])


def settlements(work: Path) -> dict:
    from humanscape.data import samples
    from humanscape.geo.raster import open_scene
    from humanscape.scale import Execution, tile_folder
    from humanscape.tasks.settlements.features import FeatureStack, stack_features
    from humanscape.tasks.settlements.model import SettlementClassifier
    from humanscape.tasks.settlements.predict import predict_probability
    from humanscape.tasks.settlements.sampling import LabelSpec, sample_pixels

    mosaic = berlin_mosaic(work, repeat=4)
    with rasterio.open(mosaic) as src:
        megapixels = src.width * src.height / 1e6
    # the models are trained once, on the real scene's labelled sample
    train_stack = stack_features(
        [samples.berlin_scene()], ["t"], work / "train_stack.tif", texture=True, progress=False
    )
    spec = LabelSpec(samples.berlin_landuse(), "fclass", ["residential"], "osm")
    sample = sample_pixels(str(train_stack), spec, negatives_per_group=30_000, seed=0)
    rf = SettlementClassifier("rf", n_estimators=800, n_jobs=-1).fit(sample, sample["label"])
    hgb = SettlementClassifier("hgb").fit(sample, sample["label"])
    rows = []
    scene = open_scene(mosaic)
    # today: the feature stack written, then the forest over it (in this process, 2 cores)
    t = time.perf_counter()
    shutil.rmtree(tile_folder(work / "stack.tif"), ignore_errors=True)
    stack_path = stack_features([scene], ["t"], work / "stack.tif", texture=True, progress=False)
    t_features = time.perf_counter() - t
    t = time.perf_counter()
    _today_predict(rf, stack_path)
    t_predict = time.perf_counter() - t
    rows.append(
        {
            "path": "today: features written + rf 800 trees",
            "mpx_per_s": megapixels / (t_features + t_predict),
            "features_s": t_features,
            "predict_s": t_predict,
        }
    )
    print(rows[-1], flush=True)
    outputs, values = {}, {}
    for workers, tile in ((1, 512), (2, 512), (1, 256), (2, 256)):
        stack = FeatureStack([scene], ["t"], texture=True)
        out = work / f"fused_{workers}_{tile}.tif"
        out.unlink(missing_ok=True)
        shutil.rmtree(tile_folder(out), ignore_errors=True)  # never resume in a benchmark
        t = time.perf_counter()
        predict_probability(
            hgb, stack, out, execution=Execution(workers=workers, tile=tile, progress=False)
        )
        seconds = time.perf_counter() - t
        with rasterio.open(out) as src:
            values[workers, tile] = src.read()
        outputs[workers, tile] = out.read_bytes()
        rows.append(
            {
                "path": f"fused features + hgb, {workers} Dask worker(s), {tile} px tiles",
                "mpx_per_s": megapixels / seconds,
                "seconds": seconds,
            }
        )
        print(rows[-1], flush=True)
    return {
        "megapixels": megapixels,
        "rows": rows,
        "speedup_vs_today_2_workers_512": rows[2]["mpx_per_s"] / rows[0]["mpx_per_s"],
        "speedup_2_vs_1_worker_512": rows[2]["mpx_per_s"] / rows[1]["mpx_per_s"],
        "speedup_vs_today_2_workers_256": rows[4]["mpx_per_s"] / rows[0]["mpx_per_s"],
        "speedup_2_vs_1_worker_256": rows[4]["mpx_per_s"] / rows[3]["mpx_per_s"],
        "same_bytes_1_and_2_workers": outputs[1, 512] == outputs[2, 512],
        # the values agree whatever the tile size; the file bytes need not: GDAL lays the
        # 256 px blocks out in the order they are flushed, which follows the tiles' order
        "same_values_512_and_256_px_tiles": bool(
            np.array_equal(values[1, 512], values[1, 256], equal_nan=True)
        ),
        "same_bytes_512_and_256_px_tiles": outputs[1, 512] == outputs[1, 256],
    }


def onnx(work: Path, n: int = 512) -> dict:
    """The CNN alone on ``n`` random chips: PyTorch as is (NCHW, ``no_grad``), PyTorch prepared
    (conv-bn folded, channels-last, ``inference_mode``) and ONNX Runtime (1 and 2 threads)."""
    import onnxruntime
    import torch

    from humanscape.scale.chips import onnx_session, prepare_for_inference

    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.uniform(0, 0.5, (n, 4, CHIP, CHIP)).astype(np.float32))
    net = resnet18()
    fast = prepare_for_inference(net)

    def timed(run) -> tuple[float, np.ndarray]:
        run(x[:BATCH])  # warm-up
        t = time.perf_counter()
        y = np.concatenate([run(x[s : s + BATCH]) for s in range(0, n, BATCH)])
        return n / (time.perf_counter() - t), y

    def eager(b):
        with torch.no_grad():
            return net(b).numpy()

    def prepared(b):
        with torch.inference_mode():
            return fast(b.contiguous(memory_format=torch.channels_last)).numpy()

    runs = {"PyTorch, NCHW, no_grad": eager, "PyTorch, prepared (humanscape)": prepared}
    for threads in (2, 1):  # the session humanscape's CpuNet builds, at 2 and 1 threads
        session = onnx_session(net, x[:1].numpy(), threads)
        runs[f"ONNX Runtime {onnxruntime.__version__}, {threads} thread(s)"] = lambda b, s=session: (
            s(b.numpy())
        )
    rows, reference = [], None
    for name, run in runs.items():
        rate, y = timed(run)
        reference = y if reference is None else reference
        rows.append(
            {"model": name, "chips_per_s": rate, "max_abs_diff": float(np.abs(y - reference).max())}
        )
        print(rows[-1], flush=True)
    return {"chips": n, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, default=Path("bench/out/scale"))
    parser.add_argument("--part", choices=["chips", "onnx", "memory", "settlements"], required=True)
    parser.add_argument("--size", type=int, default=SIZE, help="chips: scene side in px")
    args = parser.parse_args()
    globals()["SIZE"] = args.size
    args.work.mkdir(parents=True, exist_ok=True)
    parts = {"chips": chips, "onnx": onnx, "memory": memory, "settlements": settlements}
    result = parts[args.part](args.work)
    (args.work.parent / f"scale_{args.part}.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    print(
        "peak RSS of this process (MiB):", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )


if __name__ == "__main__":
    main()
