"""Outputs for field teams (Tingzon et al. 2020, the two-step verification: remote then on the ground): probability map, ranked grid, candidates.

- a 10 m probability GeoTIFF computed tile by tile (memory flat in the scene size), optionally with a
  second band ``new_score``: the settlement probability minus what the model gives when every period
  is replaced by the earliest one (the pixel "as it was"). Old settlements score about 0, settlements
  that appeared on vegetation or bare land score high (new vs old);
- the ranked 500 m grid validators work through: per cell the mean of its top 10 % pixel
  probabilities, sorted descending, with ``rank`` and cumulative area (the paper's remote validation
  procedure);
- candidate polygons above a threshold, or the top-k by score, with area and score.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
from rasterio.windows import Window
from shapely.geometry import box

from humanscape.errors import HumanscapeError
from humanscape.geo.grid import DEFAULT_BLOCK
from humanscape.geo.inputs import open_grid
from humanscape.geo.vector import polygonize, write_vector
from humanscape.geo.write import RasterSpec, file_token
from humanscape.scale import Execution
from humanscape.tasks.settlements.features import FeatureStack, read_feature_names
from humanscape.tasks.settlements.model import SettlementClassifier

log = logging.getLogger(__name__)


def _early_static(matrix: np.ndarray, names: list[str], periods: list[str]) -> np.ndarray:
    """Features with every period's values replaced by the earliest period's (texture kept)."""
    out = matrix.copy()
    first = periods[0]
    index = {n: i for i, n in enumerate(names)}
    for i, name in enumerate(names):
        for period in periods[1:]:
            rest = name[len(period) + 1 :]
            if name.startswith(f"{period}_") and f"{first}_{rest}" in index:
                out[:, i] = matrix[:, index[f"{first}_{rest}"]]
    return out


#: Pixels predicted at a time (16,384 x 75 features in float64: 10 MB, in the L3 cache).
PREDICT_CHUNK = 16_384


class SettlementMap:
    """p(settlement) per pixel (and with ``change`` the ``new_score`` band) as a windowed map.

    ``features`` is a feature stack written by ``settlements features`` (read window by window),
    or a :class:`~humanscape.tasks.settlements.features.FeatureStack` over the composites, whose
    features (texture with its halo included) are computed tile by tile and never written: the
    fused path of country-scale maps. Random forests predict with one thread per tile (the engine
    runs tiles in parallel, and a forest's multi-threaded sum over trees is not bit-reproducible).
    """

    def __init__(
        self,
        model: SettlementClassifier,
        features: str | Path | FeatureStack,
        *,
        change: bool = False,
    ) -> None:
        self.model = _single_threaded(model)
        self.change = change
        if isinstance(features, FeatureStack):
            self.stack: FeatureStack | None = features
            self.path: Path | None = None
            names, periods, grid = features.names, features.periods, features.spec.grid
            label = "the composites"
        else:
            self.stack, self.path = None, Path(features)
            names = read_feature_names(features)
            with rasterio.open(features) as src:
                periods = src.tags().get("periods", "").split(",")
            grid = open_grid(features)
            label = str(features)
        wanted = model.feature_names_
        missing = [n for n in wanted if n not in names]
        if missing:
            raise HumanscapeError(
                f"{label} lack {len(missing)} feature(s) the model needs, first: {missing[0]}",
                path=self.path or (features.scenes[0].name if self.stack else None),
                fix="build the features with the same periods and options as for training",
            )
        self.take = [names.index(n) for n in wanted]
        self.periods = periods
        if change and len(periods) < 2:
            log.warning(
                "%s: one period only, so new_score is 0 everywhere (no temporal change to see)",
                label,
            )
        band_names = ("probability", "new_score") if change else ("probability",)
        self.spec = RasterSpec(
            grid, band_names, "probability", tags=(("model", model.method), ("features", label))
        )
        self._src: rasterio.io.DatasetReader | None = None

    def __getstate__(self) -> dict[str, object]:
        return {**self.__dict__, "_src": None}

    def features(self, window: Window) -> np.ndarray:
        """The model's features over ``window``, ``(n_features, rows, cols)``."""
        if self.stack is not None:
            data = self.stack.compute(window)
            return data if self.take == list(range(len(data))) else data[self.take]
        if self._src is None:
            self._src = rasterio.open(self.path)
        return self._src.read([i + 1 for i in self.take], window=window)

    def compute(self, window: Window) -> np.ndarray:
        data = self.features(window)
        n, h, w = data.shape
        flat = data.reshape(n, -1)
        valid = np.flatnonzero(np.isfinite(flat).any(axis=0))
        result = np.full((self.spec.count, h * w), np.nan, np.float32)
        # pixels in chunks whose float64 matrix stays in cache across all trees (a 512 x 512
        # tile of 75 features is 157 MB; memory traffic, not arithmetic, limits parallel workers)
        buffer = np.empty((PREDICT_CHUNK, n), np.float64)
        for start in range(0, valid.size, PREDICT_CHUNK):
            rows = valid[start : start + PREDICT_CHUNK]
            matrix = buffer[: rows.size]
            if rows[-1] - rows[0] + 1 == rows.size:  # contiguous pixels: a slice, no gather
                matrix[:] = flat[:, rows[0] : rows[-1] + 1].T
            else:
                matrix[:] = flat[:, rows].T
            p = self.model.predict_proba(matrix)[:, 1]
            result[0, rows] = p
            if self.change:
                early = _early_static(matrix, self.model.feature_names_, self.periods)
                result[1, rows] = p - self.model.predict_proba(early)[:, 1]
        return result.reshape(self.spec.count, h, w)

    def sources(self) -> list[str]:
        return self.stack.sources() if self.stack is not None else [str(self.path)]

    def token(self) -> str:
        import joblib

        inputs = self.stack.token() if self.stack is not None else file_token([self.path])
        fitted = joblib.hash(self.model.estimator_)  # the fitted trees, not just the settings
        return f"settlements {fitted} {self.model.feature_names_} {self.change} {inputs}"


def _single_threaded(model: SettlementClassifier) -> SettlementClassifier:
    """A copy of ``model`` whose forest predicts with one thread (bit-reproducible sums)."""
    import copy

    model = copy.copy(model)
    estimator = getattr(model, "estimator_", None)
    if estimator is not None and "n_jobs" in estimator.steps[-1][1].get_params():
        model.estimator_ = copy.deepcopy(estimator)
        model.estimator_.steps[-1][1].set_params(n_jobs=1)
    return model


def predict_probability(
    model: SettlementClassifier,
    features: str | Path | FeatureStack,
    out: str | Path,
    *,
    change: bool = False,
    block: int = DEFAULT_BLOCK,
    progress: bool = True,
    execution: Execution | None = None,
) -> Path:
    """Write p(settlement) (and with ``change`` the ``new_score`` band) for every pixel, tile by
    tile on the tiled engine (``execution``: Dask workers, scheduler, tile; default this process)."""
    job = SettlementMap(model, features, change=change)
    return (execution or Execution(progress=progress)).run(job, out, desc="predict", tile=block)


def ranked_grid(
    probability: str | Path, out: str | Path | None = None, *, cell: float = 500.0, top: float = 0.1
) -> gpd.GeoDataFrame:
    """500 m cells ranked by the mean of their top ``top`` pixel probabilities (descending).

    Columns: ``rank`` (1 = visit first), ``score``, ``max_probability``, ``n_pixels``,
    ``area_km2``, ``cumulative_area_km2``, geometry. Written to ``out`` (GeoPackage) when given.
    """
    grid = open_grid(probability)
    cell_px = max(1, int(round(cell / grid.res[0])))
    n_rows, n_cols = math.ceil(grid.height / cell_px), math.ceil(grid.width / cell_px)
    records = []
    step = cell_px * max(1, 2048 // cell_px)
    with rasterio.open(probability) as src:
        for r0 in range(0, grid.height, step):
            for c0 in range(0, grid.width, step):
                window = Window(c0, r0, min(step, grid.width - c0), min(step, grid.height - r0))
                data = src.read(1, window=window)
                for rr in range(0, data.shape[0], cell_px):
                    for cc in range(0, data.shape[1], cell_px):
                        v = data[rr : rr + cell_px, cc : cc + cell_px]
                        v = v[np.isfinite(v)]
                        if v.size == 0:
                            continue
                        srt = np.sort(v)[::-1]
                        score = float(srt[: max(1, math.ceil(top * srt.size))].mean())
                        row, col = (r0 + rr) // cell_px, (c0 + cc) // cell_px
                        left, top_y = grid.transform @ (col * cell_px, row * cell_px)
                        right, bottom = grid.transform @ (
                            min((col + 1) * cell_px, grid.width),
                            min((row + 1) * cell_px, grid.height),
                        )
                        records.append(
                            {
                                "cell_id": row * n_cols + col,
                                "score": score,
                                "max_probability": float(srt[0]),
                                "n_pixels": int(v.size),
                                "geometry": box(left, bottom, right, top_y),
                            }
                        )
    if not records:
        raise HumanscapeError("probability raster holds no data", path=probability)
    gdf = gpd.GeoDataFrame(pd.DataFrame(records), geometry="geometry", crs=grid.crs)
    gdf = gdf.sort_values(["score", "cell_id"], ascending=[False, True]).reset_index(drop=True)
    gdf.insert(0, "rank", np.arange(1, len(gdf) + 1))
    gdf["area_km2"] = gdf.geometry.area / 1e6
    gdf["cumulative_area_km2"] = gdf["area_km2"].cumsum()
    if out is not None:
        write_vector(gdf, out)
    log.info("ranked %d cells of %d", len(gdf), n_rows * n_cols)
    return gdf


def candidate_polygons(
    probability: str | Path,
    out: str | Path | None = None,
    *,
    threshold: float = 0.5,
    top_k: int | None = None,
    min_area: float = 0.0,
) -> gpd.GeoDataFrame:
    """Polygons of pixels with probability >= ``threshold`` (8-connected), with area and score;
    with ``top_k`` only the k best by mean score. Written to ``out`` (GeoPackage) when given."""
    grid = open_grid(probability)
    with rasterio.open(probability) as src:
        scores = src.read(1)
    polys = polygonize(scores, grid, threshold=threshold, min_area=min_area)
    if top_k is not None:
        polys = polys.head(top_k)
    polys.insert(0, "rank", np.arange(1, len(polys) + 1))
    if out is not None:
        write_vector(polys, out)
    return polys
