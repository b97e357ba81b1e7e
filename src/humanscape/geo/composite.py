"""Temporal composites of valid (cloud-free) observations.

Tingzon et al. (2020), Sec. 4.1: "we calculated the median of all cloudless pixels available within
the two years and resampled each band to the highest geometric resolution of 10 m", producing one
biennial composite per period (2015-2016, 2017-2018, 2019-2020). This module generalises that to
any periods, the median or the minimum, and any cloud mask:

- ``raster``: one mask raster per date (non-zero = cloud), e.g. eo-learn's ``CLM``;
- ``probability``: one cloud-probability raster per date, cloudy where ``p >= threshold``
  (``s2cloudless`` / eo-learn ``CLP``; values in 0..1 or 0..255 are both understood);
- ``fmask``: the Fmask band of the scene (0 clear land, 1 water, 2 shadow, 3 snow, 4 cloud, 255 fill);
- ``qa_pixel``: Landsat Collection 2 ``QA_PIXEL`` bits (0 fill, 1 dilated cloud, 2 cirrus, 3 cloud,
  4 cloud shadow, 5 snow);
- ``scl``: Sentinel-2 L2A scene classification (0 nodata, 1 saturated, 3 shadow, 8/9 cloud,
  10 cirrus are masked);
- ``qa60``: Sentinel-2 L1C ``QA60`` bits 10 (opaque cloud) and 11 (cirrus).

Every composite carries a last band ``valid_count``: the number of clear observations behind each
pixel, so that users see where the composite rests on few dates.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Literal

import numpy as np
from rasterio.windows import Window
from tqdm.auto import tqdm

from humanscape.errors import CRSMismatchError, EmptyInputError, HumanscapeError
from humanscape.geo.raster import (
    AlignedRaster,
    BandSource,
    GridSpec,
    RasterWriter,
    Scene,
    open_grid,
)
from humanscape.geo.sensors import get_sensor

log = logging.getLogger(__name__)

Method = Literal["median", "min"]
MaskKind = Literal["none", "raster", "probability", "fmask", "qa_pixel", "scl", "qa60"]

#: Memory budget for one window of the (dates, bands, rows, cols) float32 stack. The median needs
#: about five times this in temporaries (masking copy, sort, gathers), so peak memory stays near
#: 250 MB above the interpreter whatever the scene size or number of dates.
STACK_BUDGET_BYTES = 48 * 2**20


# --- periods -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """A closed date range ``[start, end]`` with a name used in band names (``2015-2016``)."""

    start: date
    end: date
    name: str

    def __contains__(self, day: object) -> bool:
        return isinstance(day, date) and self.start <= day <= self.end

    @classmethod
    def parse(cls, text: str) -> Period:
        """Parse ``2015-2016`` (whole years), ``2017`` or ``2015-06-01:2016-05-31``."""
        text = text.strip()
        if m := re.fullmatch(r"(\d{4})(?:-(\d{4}))?", text):
            first, last = int(m.group(1)), int(m.group(2) or m.group(1))
            if last < first:
                raise HumanscapeError(
                    f"period '{text}' ends before it starts", fix="write e.g. 2015-2016"
                )
            return cls(date(first, 1, 1), date(last, 12, 31), text)
        if m := re.fullmatch(r"(\d{4}-\d{2}-\d{2}):(\d{4}-\d{2}-\d{2})", text):
            start, end = date.fromisoformat(m.group(1)), date.fromisoformat(m.group(2))
            if end < start:
                raise HumanscapeError(f"period '{text}' ends before it starts")
            return cls(start, end, text.replace(":", "_"))
        raise HumanscapeError(
            f"cannot read period '{text}'", fix="write YYYY-YYYY, YYYY or YYYY-MM-DD:YYYY-MM-DD"
        )


def parse_periods(text: str | Sequence[str]) -> list[Period]:
    """Comma-separated (or listed) periods, e.g. ``"2015-2016,2017-2018,2019-2020"``."""
    items = text.split(",") if isinstance(text, str) else list(text)
    return [Period.parse(t) for t in items if t.strip()]


# --- cloud masks -------------------------------------------------------------------------------


def fmask_clear(values: np.ndarray, *, keep_snow: bool = False) -> np.ndarray:
    """Clear pixels of an Fmask band (Zhu & Woodcock 2012): 0 clear land, 1 clear water (3 snow)."""
    clear = (values == 0) | (values == 1)
    if keep_snow:
        clear |= values == 3
    return clear


def qa_pixel_clear(values: np.ndarray) -> np.ndarray:
    """Clear pixels of a Landsat Collection 2 ``QA_PIXEL`` band: bits 0-5 all unset."""
    return (values.astype(np.uint16) & 0b111111) == 0


def scl_clear(values: np.ndarray) -> np.ndarray:
    """Clear pixels of a Sentinel-2 L2A SCL band (masks 0, 1, 3, 8, 9, 10)."""
    return ~np.isin(values, (0, 1, 3, 8, 9, 10))


def qa60_clear(values: np.ndarray) -> np.ndarray:
    """Clear pixels of a Sentinel-2 L1C ``QA60`` band: bits 10 (opaque) and 11 (cirrus) unset."""
    return (values.astype(np.uint16) & ((1 << 10) | (1 << 11))) == 0


def probability_clear(values: np.ndarray, threshold: float) -> np.ndarray:
    """Clear where cloud probability is below ``threshold`` (0..1; 0..100 and 0..255 inputs rescaled)."""
    p = values.astype(np.float32)
    vmax = np.nanmax(p) if p.size else 0.0
    if vmax > 100:
        p /= 255.0
    elif vmax > 1:
        p /= 100.0
    return np.isfinite(p) & (p < threshold)


_QA_DECODERS = {
    "fmask": ("FMASK", fmask_clear),
    "qa_pixel": ("QA_PIXEL", qa_pixel_clear),
    "scl": ("SCL", scl_clear),
    "qa60": ("QA60", qa60_clear),
}


@dataclass
class CloudMask:
    """How to tell clear from cloudy pixels on each date.

    Attributes
    ----------
    kind
        See the module docstring.
    paths
        One raster per scene, for ``raster`` and ``probability``.
    threshold
        Cloud-probability threshold for ``probability`` (default 0.4, as s2cloudless).
    """

    kind: MaskKind = "none"
    paths: list[Path] = field(default_factory=list)
    threshold: float = 0.4

    @classmethod
    def parse(cls, spec: str | None, paths: Sequence[str | Path] = ()) -> CloudMask:
        """From a CLI spec: ``fmask``, ``qa_pixel``, ``scl``, ``qa60``, ``raster``, ``probability:0.4``."""
        if not spec or spec == "none":
            return cls("none")
        kind, _, arg = spec.partition(":")
        if kind not in ("raster", "probability", *_QA_DECODERS):
            raise HumanscapeError(
                f"unknown cloud mask '{spec}'",
                fix="use fmask, qa_pixel, scl, qa60, raster (with mask files) or probability:0.4",
            )
        mask = cls(kind, [Path(p) for p in paths], float(arg) if arg else 0.4)  # type: ignore[arg-type]
        if kind in ("raster", "probability") and not paths:
            raise HumanscapeError(
                f"cloud mask '{kind}' needs one mask file per scene",
                fix="pass --mask-file per scene",
            )
        return mask

    def clear(
        self, scene: Scene, index: int, window: Window, reader: AlignedRaster | None
    ) -> np.ndarray:
        """Boolean clear-sky mask of scene ``index`` for ``window``."""
        if self.kind == "none":
            return np.ones((int(window.height), int(window.width)), dtype=bool)
        if self.kind in _QA_DECODERS:
            band, decode = _QA_DECODERS[self.kind]
            return decode(scene.read_raw(band, window))
        assert reader is not None
        values = reader.read(window)
        if self.kind == "raster":
            clear = values == 0
            if reader.nodata is not None:
                clear &= values != reader.nodata
            return clear
        return probability_clear(values, self.threshold)


# --- compositing -------------------------------------------------------------------------------


def composite_array(
    stack: np.ndarray, clear: np.ndarray | None = None, method: Method = "median"
) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel median (or minimum) over time of clear, finite observations.

    Parameters
    ----------
    stack
        ``(dates, bands, rows, cols)`` float array; NaN marks missing data.
    clear
        ``(dates, rows, cols)`` boolean clear-sky mask; ``None`` = all clear.
    method
        ``median`` (Tingzon et al. 2020, Sec. 4.1) or ``min``.

    Returns
    -------
    composite, valid_count
        ``(bands, rows, cols)`` float32 (NaN where no valid observation) and ``(rows, cols)`` counts.
    """
    if stack.ndim != 4:
        raise HumanscapeError(f"stack must be (dates, bands, rows, cols), got shape {stack.shape}")
    data = stack.astype(np.float32, copy=True)
    valid = np.all(np.isfinite(data), axis=1)
    if clear is not None:
        valid &= clear.astype(bool)
    data[np.broadcast_to(~valid[:, None], data.shape)] = np.nan
    count = valid.sum(axis=0).astype(np.int32)
    if method == "median":
        out = nanmedian_time(data, count)
    elif method == "min":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels stay NaN
            out = np.nanmin(data, axis=0)
    else:
        raise HumanscapeError(f"unknown composite method '{method}'", fix="use median or min")
    return out.astype(np.float32), count


def nanmedian_time(data: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Exact median over axis 0 ignoring NaN, by one sort (NaN sorts last).

    Equals ``np.nanmedian(data, axis=0)`` but is several times faster on the short time axis of a
    composite. ``data`` is ``(dates, bands, rows, cols)`` with NaN wherever a date is invalid for a
    pixel (all bands), ``count`` the number of valid dates per pixel; pixels with none are NaN.
    """
    ordered = np.sort(data, axis=0)
    n = np.broadcast_to(count[None], data.shape[1:])
    lower = np.clip((n - 1) // 2, 0, None)[None]
    upper = np.clip(n // 2, 0, data.shape[0] - 1)[None]
    lo = np.take_along_axis(ordered, lower, axis=0)[0]
    hi = np.take_along_axis(ordered, upper, axis=0)[0]
    out = (lo + hi) * np.float32(0.5)
    out[n == 0] = np.nan
    return out


def check_same_crs(scenes: Sequence[Scene]) -> None:
    """Refuse scenes in different CRSs (naming both), the composite would silently misalign."""
    first = scenes[0]
    for other in scenes[1:]:
        if other.crs != first.crs:
            raise CRSMismatchError(
                f"scene is in {other.crs.to_string()} but {first.name} is in {first.crs.to_string()}",
                path=other.name,
                fix="reproject the scenes to one CRS (gdalwarp -t_srs) before compositing",
            )


def composite(
    scenes: Sequence[Scene],
    out: str | Path,
    *,
    method: Method = "median",
    cloud_mask: CloudMask | None = None,
    bands: Sequence[str] | None = None,
    grid: GridSpec | None = None,
    cog: bool = False,
    progress: bool = True,
    tags: dict[str, str] | None = None,
) -> Path:
    """Composite scenes window by window into a GeoTIFF (bands + ``valid_count``), atomically.

    All scenes must share a CRS (else :class:`CRSMismatchError`); they are aligned to ``grid``
    (default: the first scene's grid). Memory is bounded by :data:`STACK_BUDGET_BYTES` whatever the
    scene size. Pixels with no clear observation are NaN and reported in the log.
    """
    if not scenes:
        raise EmptyInputError("no scene to composite", fix="pass at least one scene")
    check_same_crs(scenes)
    mask = cloud_mask or CloudMask("none")
    grid = grid or scenes[0].grid
    names = (
        scenes[0].resolve(bands)
        if bands
        else [n for n in scenes[0].band_names if scenes[0].sensor.band(n).kind != "qa"]
    )
    aligned = [s if s.grid.matches(grid) else s.aligned_to(grid) for s in scenes]
    for scene in aligned:
        scene.resolve(names)  # every scene must have every band
    if mask.kind in ("raster", "probability") and len(mask.paths) != len(scenes):
        raise HumanscapeError(
            f"{len(mask.paths)} mask files for {len(scenes)} scenes",
            fix="give one mask file per scene, in order",
        )
    readers = (
        [AlignedRaster(p, grid) for p in mask.paths]
        if mask.kind in ("raster", "probability")
        else []
    )
    block = int(np.sqrt(STACK_BUDGET_BYTES / (4 * len(scenes) * (len(names) + 1))))
    block = (
        block // 256 * 256 if block >= 256 else max(16, block // 16 * 16)
    )  # align to GeoTIFF tiles
    windows = list(grid.windows(block))
    empty = 0
    meta = {
        "method": method,
        "cloud_mask": mask.kind,
        "sensor": scenes[0].sensor.name,
        "n_scenes": str(len(scenes)),
        "dates": ",".join(s.date.isoformat() for s in scenes if s.date),
        **(tags or {}),
    }
    try:
        with RasterWriter(
            out,
            grid,
            count=len(names) + 1,
            dtype="float32",
            nodata=float("nan"),
            band_names=[*names, "valid_count"],
            cog=cog,
            tags=meta,
        ) as writer:
            for window in tqdm(
                windows, desc=f"composite {Path(out).name}", disable=not progress, unit="win"
            ):
                h, w = int(window.height), int(window.width)
                stack = np.empty((len(aligned), len(names), h, w), dtype=np.float32)
                clear = np.empty((len(aligned), h, w), dtype=bool)
                for t, scene in enumerate(aligned):
                    stack[t] = scene.read(names, window)
                    clear[t] = mask.clear(scene, t, window, readers[t] if readers else None)
                comp, count = composite_array(stack, clear, method)
                empty += int((count == 0).sum())
                writer.write(np.concatenate([comp, count[None].astype(np.float32)]), window)
    finally:
        for reader in readers:
            reader.close()
    if empty:
        log.warning(
            "%s: %d of %d pixels have no clear observation (NaN in the composite)",
            out,
            empty,
            grid.width * grid.height,
        )
    return Path(out)


def scenes_in_period(scenes: Sequence[Scene], period: Period) -> list[int]:
    """Indices of the scenes acquired within ``period`` (scenes without a date are an error)."""
    undated = [s.name for s in scenes if s.date is None]
    if undated:
        raise HumanscapeError(
            "scene has no acquisition date, so it cannot be assigned to a period",
            path=undated[0],
            fix="use product/scene-ID file names or pass dates explicitly",
        )
    return [i for i, s in enumerate(scenes) if s.date in period]


def open_composite(path: str | Path, *, sensor: str | None = None) -> Scene:
    """Open a composite written by :func:`composite` as a :class:`Scene` of its spectral bands.

    Band names come from the band descriptions; layers that are not bands of the sensor (such as
    ``valid_count``) are left out. The sensor is the one recorded in the file (tag ``sensor``) unless
    given.
    """
    import rasterio

    path = Path(path)
    with rasterio.open(path) as src:
        descriptions = list(src.descriptions)
        tags = src.tags()
    sensor_obj = get_sensor(sensor or tags.get("sensor") or "sentinel2_l1c")
    sources = [
        BandSource(path, i + 1, sensor_obj.band(d))
        for i, d in enumerate(descriptions)
        if d and sensor_obj.find(d) is not None
    ]
    if not sources:
        raise HumanscapeError(
            f"no layer of the composite is named like a {sensor_obj.name} band",
            path=path,
            fix="write band descriptions (humanscape composite does) or pass --sensor",
        )
    return Scene(sources, sensor_obj, open_grid(path), str(path))
