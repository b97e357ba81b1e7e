"""The per-pixel feature stack of Tingzon et al. (2020): 12 bands and 10 indices per biennial composite, 66 features.

For each period (default the biennial 2015-2016, 2017-2018, 2019-2020) a median composite of the
cloud-free observations, and per composite the 12 Sentinel-2 bands B01-B12 without the cirrus band
B10 and with B8A, resampled to 10 m, plus the 10 spectral indices of Table 2: 22 features per period,
66 for three periods. Feature ``k`` is named ``<period>_<band or index>``, e.g. ``2019-2020_NDBI``.

Beyond the paper: optional texture (local variance, GLCM contrast and homogeneity of a few bands of
the latest period, :mod:`humanscape.geo.texture`), which the paper recommends against its main false
positives. With fewer dates or a single period the temporal part degenerates; the output says so
(tag ``temporal``) and a warning is logged. Other sensors use their own reflectance bands (Landsat:
B1-B7 without thermal); indices whose bands are missing are left out with a warning.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

from humanscape.errors import EmptyInputError, HumanscapeError
from humanscape.geo.composite import CloudMask, CompositeMap, Period, report_empty, scenes_in_period
from humanscape.geo.grid import DEFAULT_BLOCK, GridSpec, overview_grid
from humanscape.geo.indices import INDICES, compute_indices
from humanscape.geo.inputs import open_scene
from humanscape.geo.scene import Scene, read_padded
from humanscape.geo.texture import TEXTURE_FEATURES, halo, texture_stack
from humanscape.geo.write import RasterSpec, file_token
from humanscape.scale import Execution

log = logging.getLogger(__name__)

#: Bands left out of the feature stack: cirrus carries no surface information (Tingzon et al. 4.3).
EXCLUDED_ROLES = ("cirrus",)
DEFAULT_TEXTURE_BANDS = ("red", "nir", "swir1")


def feature_bands(scene: Scene) -> list[str]:
    """The scene's reflectance bands that enter the stack (no cirrus, no thermal, no QA)."""
    return [
        n
        for n in scene.band_names
        if scene.sensor.band(n).kind == "reflectance"
        and scene.sensor.band(n).role not in EXCLUDED_ROLES
    ]


def available_indices(scene: Scene) -> list[str]:
    """Indices of Table 2 whose band roles the scene has."""
    return [name for name, idx in INDICES.items() if all(scene.has(r) for r in idx.roles)]


def feature_names(
    periods: Sequence[str],
    bands: Sequence[str],
    indices: Sequence[str],
    texture_bands: Sequence[str] = (),
) -> list[str]:
    """``<period>_<band>``, ``<period>_<index>`` per period, then ``<last period>_<band>_<texture>``."""
    names = [f"{p}_{x}" for p in periods for x in (*bands, *indices)]
    names += [f"{periods[-1]}_{b}_{t}" for b in texture_bands for t in TEXTURE_FEATURES]
    return names


def feature_units(
    periods: Sequence[str],
    bands: Sequence[str],
    indices: Sequence[str],
    texture_bands: Sequence[str] = (),
) -> list[str]:
    """Units of each feature, in :func:`feature_names` order: reflectance, index, texture."""
    per_period = ["reflectance"] * len(bands) + ["index"] * len(indices)
    return per_period * len(periods) + ["texture"] * (len(texture_bands) * len(TEXTURE_FEATURES))


class FeatureStack:
    """The feature stack of one composite (or scene) per period, as a windowed map.

    ``compute(window)`` reads the window (plus a halo of :func:`~humanscape.geo.texture.halo`
    pixels for texture) and returns every feature of :func:`feature_names`; the texture's
    quantisation bounds (2-98 % of each band over an overview of the latest period) are fixed when
    the stack is built, so a tile's features never depend on how the scene is cut.
    """

    def __init__(
        self,
        composites: Sequence[Scene],
        periods: Sequence[str],
        *,
        texture: bool = False,
        texture_bands: Sequence[str] = DEFAULT_TEXTURE_BANDS,
        texture_window: int = 7,
    ) -> None:
        if len(composites) != len(periods):
            raise HumanscapeError(f"{len(composites)} composites for {len(periods)} periods")
        if not composites:
            raise EmptyInputError("no period to build features from")
        self.periods = list(periods)
        grid = composites[0].grid
        first = composites[0]
        self.bands = feature_bands(first)
        self.indices = available_indices(first)
        missing = [n for n in INDICES if n not in self.indices]
        if missing:
            log.warning(
                "%s: bands for indices %s are missing; those indices are left out",
                first.name,
                ", ".join(missing),
            )
        self.scenes = [c if c.grid.matches(grid) else c.aligned_to(grid) for c in composites]
        for c in self.scenes:
            c.resolve(self.bands)
        self.texture = texture
        self.texture_window = texture_window
        self.tex_names = [first.sensor.band(b).name for b in texture_bands] if texture else []
        if texture:
            first.resolve(self.tex_names)
            self.bounds = _quantisation_bounds(self.scenes[-1], self.tex_names)
        self.names = feature_names(self.periods, self.bands, self.indices, self.tex_names)
        roles = sorted({r for n in self.indices for r in INDICES[n].roles})
        self.role_index = {r: self.bands.index(first.sensor.band(r).name) for r in roles}
        if len(self.periods) == 1:
            log.warning(
                "only one period (%s): the temporal part of the features degenerates",
                self.periods[0],
            )
        temporal = (
            "multi-period"
            if len(self.periods) > 1
            else "single period: no temporal change features (degenerate)"
        )
        tags = {
            "periods": ",".join(self.periods),
            "sensor": first.sensor.name,
            "temporal": temporal,
            "n_features": str(len(self.names)),
            "texture": f"window {texture_window}" if texture else "none",
        }
        units = feature_units(self.periods, self.bands, self.indices, self.tex_names)
        self.spec = RasterSpec(grid, tuple(self.names), tuple(units), tags=tuple(tags.items()))

    @property
    def halo(self) -> int:
        """Pixels of context read around each window (texture only)."""
        return halo(self.texture_window) if self.texture else 0

    def compute(self, window: Window) -> np.ndarray:
        parts = []
        for scene in self.scenes:
            data = scene.read(self.bands, window)
            parts.append(data)
            if self.indices:
                parts.append(
                    compute_indices({r: data[i] for r, i in self.role_index.items()}, self.indices)
                )
        if self.texture:
            parts.append(
                _texture_block(
                    self.scenes[-1],
                    window,
                    self.tex_names,
                    self.bounds,
                    self.texture_window,
                    self.halo,
                )
            )
        return np.concatenate(parts)

    def sources(self) -> list[str]:
        return sorted({str(s.path) for scene in self.scenes for s in scene.sources})

    def token(self) -> str:
        return (
            f"features {','.join(self.names)} texture {self.texture_window if self.texture else 0} "
            f"{file_token(self.sources())}"
        )


def stack_features(
    composites: Sequence[Scene],
    periods: Sequence[str],
    out: str | Path,
    *,
    texture: bool = False,
    texture_bands: Sequence[str] = DEFAULT_TEXTURE_BANDS,
    texture_window: int = 7,
    block: int = DEFAULT_BLOCK,
    progress: bool = True,
    execution: Execution | None = None,
) -> Path:
    """Write the feature stack of one composite (or scene) per period, tile by tile, on the tiled
    engine (``execution``: Dask workers, scheduler, tile; default this process)."""
    job = FeatureStack(
        composites,
        periods,
        texture=texture,
        texture_bands=texture_bands,
        texture_window=texture_window,
    )
    run = execution or Execution(progress=progress)
    return run.run(job, out, desc="features", tile=block, cog=False)  # an input, not a map


def _quantisation_bounds(scene: Scene, bands: Sequence[str]) -> dict[str, tuple[float, float]]:
    coarse = overview_grid(scene.grid, 1024)
    view = scene if coarse is scene.grid else scene.aligned_to(coarse)
    data = view.read(list(bands))
    out = {}
    for name, band in zip(bands, data, strict=True):
        finite = band[np.isfinite(band)]
        lo, hi = np.percentile(finite, [2, 98]) if finite.size else (0.0, 1.0)
        out[name] = (float(lo), float(hi if hi > lo else lo + 1e-3))
    return out


def _texture_block(
    scene: Scene,
    window: Window,
    bands: Sequence[str],
    bounds: dict[str, tuple[float, float]],
    size: int,
    pad: int,
) -> np.ndarray:
    big = Window(
        window.col_off - pad, window.row_off - pad, window.width + 2 * pad, window.height + 2 * pad
    )
    data = read_padded(scene, big, list(bands))
    out = [
        texture_stack(band, lo=bounds[name][0], hi=bounds[name][1], window=size)
        for name, band in zip(bands, data, strict=True)
    ]
    inner = (slice(None), slice(pad, pad + int(window.height)), slice(pad, pad + int(window.width)))
    return np.concatenate([t[inner] for t in out])


def settlement_features(
    inputs: Sequence[Scene],
    out: str | Path,
    *,
    periods: Sequence[Period] | None = None,
    cloud_mask: CloudMask | None = None,
    texture: bool = False,
    texture_window: int = 7,
    progress: bool = True,
    execution: Execution | None = None,
) -> Path:
    """Composite dated scenes per period, then write the feature stack (see module docstring).

    Composites and features run on the tiled engine (``execution``; default this process).

    Without ``periods`` each scene is its own period, named by its date (or its position). A period
    with no scene is an error; pixels with no clear observation in a period are NaN and counted in
    a warning. A period holding one scene and no cloud mask is used as is (no composite needed).
    """
    if not inputs:
        raise EmptyInputError("no scene given", fix="pass one or more scenes or composites")
    mask = cloud_mask or CloudMask("none")
    if periods is None:
        names = [s.date.isoformat() if s.date else f"t{i}" for i, s in enumerate(inputs)]
        groups = [[i] for i in range(len(inputs))]
    else:
        names = [p.name for p in periods]
        groups = [scenes_in_period(inputs, p) for p in periods]
        empty = [n for n, g in zip(names, groups, strict=True) if not g]
        if empty:
            dates = ", ".join(sorted(s.date.isoformat() for s in inputs if s.date))
            raise EmptyInputError(
                f"no scene in period(s) {', '.join(empty)} (scene dates: {dates})",
                fix="choose periods that contain scenes, or add scenes",
            )
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise HumanscapeError(
            f"two inputs fall on the same period name {', '.join(repeated)} (same date?)",
            path=inputs[0].name,
            fix="give --periods to composite dates together, or drop the duplicate scene",
        )
    grid: GridSpec = inputs[0].grid
    run = execution or Execution(progress=progress)
    with tempfile.TemporaryDirectory(prefix=".hs_composites_", dir=Path(out).parent or ".") as tmp:
        per_period = []
        for name, group in zip(names, groups, strict=True):
            scenes = [inputs[i] for i in group]
            if len(scenes) == 1 and mask.kind == "none":
                per_period.append(
                    scenes[0] if scenes[0].grid.matches(grid) else scenes[0].aligned_to(grid)
                )
                continue
            path = Path(tmp) / f"composite_{name}.tif"
            sub_mask = replace(mask, paths=[mask.paths[i] for i in group] if mask.paths else [])
            job = CompositeMap(scenes, cloud_mask=sub_mask, grid=grid, tags={"period": name})
            run.run(job, path, desc=f"composite {name}", tile=job.block, cog=False)
            empty, size = report_empty(path), grid.width * grid.height
            if empty:
                log.warning(
                    "period %s: %d of %d pixels (%.1f%%) have no clear observation; their features are NaN",
                    name,
                    empty,
                    size,
                    100 * empty / size,
                )
            if empty == size:
                raise EmptyInputError(
                    f"period {name} has no clear observation at all (all clouds or nodata)",
                    fix="widen the period or relax the cloud mask",
                )
            per_period.append(open_scene(path))
        return stack_features(
            per_period,
            names,
            out,
            texture=texture,
            texture_window=texture_window,
            execution=run,
        )


def read_feature_names(path: str | Path) -> list[str]:
    """Feature names (band descriptions) of a feature stack."""
    with rasterio.open(path) as src:
        names = list(src.descriptions)
    if not all(names):
        raise HumanscapeError(
            "feature raster has unnamed bands",
            path=path,
            fix="build it with 'humanscape settlements features'",
        )
    return names


def feature_recipe(path: str | Path) -> dict[str, object]:
    """How a feature stack was built: ``periods`` (names, in order) and ``texture_window`` (or
    ``None``), from its tags; recorded in a model folder so that ``settlements predict`` can
    compute the same features from composites."""
    with rasterio.open(path) as src:
        tags = src.tags()
    texture = tags.get("texture", "none")
    return {
        "periods": [p for p in tags.get("periods", "").split(",") if p],
        "texture_window": int(texture.split()[-1]) if texture.startswith("window") else None,
    }


def is_feature_stack(path: str | Path) -> bool:
    """Whether ``path`` is a feature stack written by humanscape (not a composite or a scene)."""
    try:
        with rasterio.open(path) as src:
            return "n_features" in src.tags()
    except rasterio.errors.RasterioError:
        return False
