"""Temporal composites of valid (cloud-free) observations.

Tingzon et al. (2020), biennial composites: "we calculated the median of all cloudless pixels available within
the two years and resampled each band to the highest geometric resolution of 10 m", producing one
biennial composite per period (2015-2016, 2017-2018, 2019-2020). This module generalises that to
any periods, the median or the minimum, and any cloud mask:

- ``raster``: one mask raster per date (non-zero = cloud), e.g. eo-learn's ``CLM``;
- ``probability``: one cloud-probability raster per date, cloudy where ``p >= threshold``
  (``s2cloudless`` / eo-learn ``CLP`` / Sentinel-2 L2A ``MSK_CLDPRB``). The value that means
  "certainly cloud" is decided once per input file, never per window: given (``probability_max``:
  1, 100 or 255), else from the data type (float: 1, integer: 100, i.e. percent). A value above
  it is refused with a message naming the file;
- ``fmask``: the Fmask band of the scene (0 clear land, 1 water, 2 shadow, 3 snow, 4 cloud, 255 fill);
- ``qa_pixel``: Landsat Collection 2 ``QA_PIXEL`` bits (0 fill, 1 dilated cloud, 2 cirrus, 3 cloud,
  4 cloud shadow, 5 snow);
- ``scl``: Sentinel-2 L2A scene classification (0 nodata, 1 saturated, 3 shadow, 8/9 cloud,
  10 cirrus are masked);
- ``qa60``: Sentinel-2 L1C ``QA60`` bits 10 (opaque cloud) and 11 (cirrus);
- ``s2cloudless``: Sentinel Hub's s2cloudless classifier run on the scene's own ten L1C bands
  (:mod:`humanscape.geo.s2cloudless`), cloudy where the disk-averaged probability exceeds the
  threshold (``s2cloudless:0.4``), dilated.

Every composite carries a last band ``valid_count``: the number of clear observations behind each
pixel, so that users see where the composite rests on few dates. Composites are written in
reflectance (``units=reflectance``), so reading one back applies no scale again. Scenes of
different processing levels (top-of-atmosphere and surface reflectance) are never mixed.
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

from humanscape.errors import CRSMismatchError, EmptyInputError, HumanscapeError, MissingBandError
from humanscape.geo.align import AlignedRaster
from humanscape.geo.grid import GridSpec
from humanscape.geo.s2cloudless import S2Cloudless, check_scene
from humanscape.geo.scene import Scene
from humanscape.geo.write import RasterSpec, file_token, write_map

log = logging.getLogger(__name__)

Method = Literal["median", "min"]
MaskKind = Literal[
    "none", "raster", "probability", "fmask", "qa_pixel", "scl", "qa60", "s2cloudless"
]

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
            try:
                start, end = date.fromisoformat(m.group(1)), date.fromisoformat(m.group(2))
            except ValueError as exc:
                raise HumanscapeError(
                    f"period '{text}' holds an impossible date ({exc})",
                    fix="use real calendar dates, e.g. 2015-06-01:2016-05-31",
                ) from None
            if end < start:
                raise HumanscapeError(
                    f"period '{text}' ends before it starts", fix="put the start date first"
                )
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


def probability_clear(values: np.ndarray, threshold: float, maximum: float = 1.0) -> np.ndarray:
    """Clear where cloud probability ``values / maximum`` is below ``threshold`` (in 0..1).

    ``maximum`` is the stored value meaning probability 1 (1, 100 or 255), fixed per input file by
    :class:`CloudMask`, never guessed from the values of a window. NaN is not clear.
    """
    p = values.astype(np.float32) / np.float32(maximum)
    return np.isfinite(p) & (p < threshold)


#: Stored values meaning "probability 1" that cloud-probability products use.
PROBABILITY_MAXIMA = (1.0, 100.0, 255.0)


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
        Cloud-probability threshold for ``probability`` and ``s2cloudless`` (default 0.4, as
        s2cloudless).
    """

    kind: MaskKind = "none"
    paths: list[Path] = field(default_factory=list)
    threshold: float = 0.4
    probability_max: float | None = None

    @classmethod
    def parse(
        cls,
        spec: str | None,
        paths: Sequence[str | Path] = (),
        *,
        probability_max: float | None = None,
    ) -> CloudMask:
        """From a CLI spec: ``fmask``, ``qa_pixel``, ``scl``, ``qa60``, ``raster``,
        ``probability:0.4``, ``s2cloudless`` / ``s2cloudless:0.4``."""
        if not spec or spec == "none":
            return cls("none")
        kind, _, arg = spec.partition(":")
        if kind not in ("raster", "probability", "s2cloudless", *_QA_DECODERS):
            raise HumanscapeError(
                f"unknown cloud mask '{spec}'",
                fix="use fmask, qa_pixel, scl, qa60, s2cloudless, raster (with mask files) or "
                "probability:0.4",
            )
        threshold = 0.4
        if arg and kind not in ("probability", "s2cloudless"):
            raise HumanscapeError(
                f"cloud mask '{kind}' takes no ':{arg}'", fix=f"write --cloud-mask {kind}"
            )
        if arg:
            try:
                threshold = float(arg)
            except ValueError:
                raise HumanscapeError(
                    f"cloud-probability threshold '{arg}' is not a number",
                    fix=f"write e.g. --cloud-mask {kind}:0.4",
                ) from None
            if not 0 < threshold <= 1:
                raise HumanscapeError(
                    f"cloud-probability threshold {threshold:g} is outside (0, 1]",
                    fix=f"give the probability above which a pixel is cloud, e.g. {kind}:0.4",
                )
        if probability_max is not None and probability_max not in PROBABILITY_MAXIMA:
            raise HumanscapeError(
                f"cloud-probability maximum {probability_max:g} is not one of 1, 100, 255",
                fix="--cloud-probability-max 1 (0..1), 100 (percent) or 255 (8-bit)",
            )
        if kind in ("raster", "probability") and not paths:
            raise HumanscapeError(
                f"cloud mask '{kind}' needs one mask file per scene",
                fix="pass one --mask-files file per scene",
            )
        return cls(kind, [Path(p) for p in paths], threshold, probability_max)  # type: ignore[arg-type]

    def s2cloudless(self, scene: Scene) -> S2Cloudless:
        """The s2cloudless settings for ``scene``'s grid (see :mod:`humanscape.geo.s2cloudless`)."""
        return S2Cloudless.for_resolution(float(scene.grid.res[0]), self.threshold)

    def check(self, scenes: Sequence[Scene]) -> None:
        """Refuse scenes this mask cannot be computed for (before any window is read)."""
        if self.kind == "s2cloudless":
            for scene in scenes:
                check_scene(scene)
        elif self.kind in _QA_DECODERS:
            band = _QA_DECODERS[self.kind][0]
            for scene in scenes:
                if not scene.has(band):
                    raise MissingBandError(
                        f"--cloud-mask {self.kind} reads band {band}; the scene has "
                        f"{', '.join(scene.band_names)}",
                        path=scene.name,
                        fix="add the QA band file to the scene, or choose another --cloud-mask",
                    )

    def maximum_for(self, reader: AlignedRaster) -> float:
        """The stored value meaning probability 1 for one input: the option, else by data type."""
        if self.probability_max is not None:
            return self.probability_max
        return 1.0 if np.dtype(reader.dtype).kind == "f" else 100.0

    def clear(
        self, scene: Scene, index: int, window: Window, reader: AlignedRaster | None
    ) -> np.ndarray:
        """Boolean clear-sky mask of scene ``index`` for ``window``."""
        if self.kind == "none":
            return np.ones((int(window.height), int(window.width)), dtype=bool)
        if self.kind in _QA_DECODERS:
            band, decode = _QA_DECODERS[self.kind]
            return decode(scene.read_raw(band, window))
        if self.kind == "s2cloudless":
            return self.s2cloudless(scene).clear(scene, window)
        assert reader is not None
        values = reader.read(window)
        valid = np.ones(values.shape, bool)
        if reader.nodata is not None:
            valid &= ~((values == reader.nodata) | (np.isnan(reader.nodata) & np.isnan(values)))
        if self.kind == "raster":
            return (values == 0) & valid
        maximum = self.maximum_for(reader)
        top = float(np.nanmax(np.where(valid, values, np.nan))) if valid.any() else 0.0
        if top > maximum:
            raise HumanscapeError(
                f"cloud probability {top:g} above the maximum {maximum:g} this file is read with",
                path=reader.path,
                fix="say which scale the file uses: --cloud-probability-max 100 (percent) or 255",
            )
        return probability_clear(values, self.threshold, maximum) & valid


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
        ``median`` (Tingzon et al. 2020) or ``min``.

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


def check_compatible(scenes: Sequence[Scene], bands: Sequence[str]) -> None:
    """Refuse mixing processing levels, and bands whose names mean other things across scenes.

    Top-of-atmosphere (Sentinel-2 L1C, Landsat Level-1) and surface reflectance (L2A, Level-2)
    differ by the atmosphere, often by 0.02-0.1 in the visible bands: a median across both is
    neither. Scales and offsets of one level (baselines, collections) are harmonised on reading.
    """
    first = scenes[0]
    for other in scenes[1:]:
        if other.sensor.level != first.sensor.level:
            raise HumanscapeError(
                f"scene is {other.sensor.level} reflectance ({other.sensor.name}) but {first.name} is "
                f"{first.sensor.level} reflectance ({first.sensor.name}); a composite never mixes "
                "processing levels",
                path=other.name,
                fix="composite Level-1C/Level-1 and Level-2A/Level-2 products separately",
            )
        for name in bands:
            a, b = first.sensor.band(name), other.sensor.find(name)
            if b is None or a.role != b.role:
                raise HumanscapeError(
                    f"band {name} is {a.role} in {first.name} ({first.sensor.name}) but "
                    f"{b.role if b else 'missing'} in this scene ({other.sensor.name})",
                    path=other.name,
                    fix="composite scenes of one sensor family (Sentinel-2, Landsat TM/ETM+, OLI)",
                )


class CompositeMap:
    """A per-pixel composite of scenes as a :class:`~humanscape.geo.write.WindowedMap`.

    Output bands: the composited bands, then ``valid_count`` (clear observations per pixel). All
    scenes must share a CRS (else :class:`CRSMismatchError`); they are aligned to ``grid``
    (default: the first scene's grid). Mask rasters are opened on the target grid once per process.
    """

    def __init__(
        self,
        scenes: Sequence[Scene],
        *,
        method: Method = "median",
        cloud_mask: CloudMask | None = None,
        bands: Sequence[str] | None = None,
        grid: GridSpec | None = None,
        tags: dict[str, str] | None = None,
    ) -> None:
        if not scenes:
            raise EmptyInputError("no scene to composite", fix="pass at least one scene")
        check_same_crs(scenes)
        self.mask = cloud_mask or CloudMask("none")
        self.method = method
        grid = grid or scenes[0].grid
        names = (
            scenes[0].resolve(bands)
            if bands
            else [n for n in scenes[0].band_names if scenes[0].sensor.band(n).kind != "qa"]
        )
        qa = [n for n in names if scenes[0].sensor.band(n).kind == "qa"]
        if qa:
            raise HumanscapeError(
                f"band(s) {', '.join(qa)} are quality / class bands; a median of classes means nothing",
                path=scenes[0].name,
                fix="composite reflectance bands and use the QA band as --cloud-mask",
            )
        check_compatible(scenes, names)
        self.scenes = [s if s.grid.matches(grid) else s.aligned_to(grid) for s in scenes]
        for scene in self.scenes:
            scene.resolve(names)  # every scene must have every band
        self.mask.check(self.scenes)
        if self.mask.kind in ("raster", "probability") and len(self.mask.paths) != len(scenes):
            raise HumanscapeError(
                f"{len(self.mask.paths)} mask files for {len(scenes)} scenes",
                fix="give one mask file per scene, in order",
            )
        self.readers = (
            [AlignedRaster(p, grid) for p in self.mask.paths]
            if self.mask.kind in ("raster", "probability")
            else []
        )
        self.names = names
        meta = {
            "method": method,
            "cloud_mask": self.mask.kind,
            "sensor": scenes[0].sensor.name,
            "sensors": ",".join(dict.fromkeys(s.sensor.name for s in scenes)),
            "level": scenes[0].sensor.level,
            "n_scenes": str(len(scenes)),
            "dates": ",".join(s.date.isoformat() for s in scenes if s.date),
            **(tags or {}),
        }
        self.spec = RasterSpec(
            grid,
            (*names, "valid_count"),
            ("reflectance",) * len(names) + ("count",),
            tags=tuple(meta.items()),
        )

    @property
    def block(self) -> int:
        """Window side that keeps the time stack within :data:`STACK_BUDGET_BYTES`."""
        block = int(np.sqrt(STACK_BUDGET_BYTES / (4 * len(self.scenes) * (len(self.names) + 1))))
        return block // 256 * 256 if block >= 256 else max(16, block // 16 * 16)

    def compute(self, window: Window) -> np.ndarray:
        h, w = int(window.height), int(window.width)
        stack = np.empty((len(self.scenes), len(self.names), h, w), dtype=np.float32)
        clear = np.empty((len(self.scenes), h, w), dtype=bool)
        for t, scene in enumerate(self.scenes):
            stack[t] = scene.read(self.names, window)
            reader = self.readers[t] if self.readers else None
            clear[t] = self.mask.clear(scene, t, window, reader)
        comp, count = composite_array(stack, clear, self.method)
        return np.concatenate([comp, count[None].astype(np.float32)])

    def sources(self) -> list[str]:
        files = {str(s.path) for scene in self.scenes for s in scene.sources}
        return sorted(files | {str(p) for p in self.mask.paths})

    def token(self) -> str:
        mask = self.mask.kind
        if mask in ("probability", "s2cloudless"):
            mask += f":{self.mask.threshold:g}"
        return f"composite {self.method} {mask} {file_token(self.sources())}"

    def close(self) -> None:
        for reader in self.readers:
            reader.close()


def report_empty(path: str | Path) -> int:
    """Log and return the number of pixels of a written composite with no clear observation."""
    import rasterio

    empty = 0
    with rasterio.open(path) as src:
        for _, window in src.block_windows(src.count):
            empty += int((src.read(src.count, window=window) == 0).sum())
        total = src.width * src.height
    if empty:
        log.warning(
            "%s: %d of %d pixels have no clear observation (NaN in the composite)",
            path,
            empty,
            total,
        )
    return empty


def composite(
    scenes: Sequence[Scene],
    out: str | Path,
    *,
    method: Method = "median",
    cloud_mask: CloudMask | None = None,
    bands: Sequence[str] | None = None,
    grid: GridSpec | None = None,
    cog: bool = True,
    progress: bool = True,
    tags: dict[str, str] | None = None,
) -> Path:
    """Composite scenes window by window into a GeoTIFF (bands + ``valid_count``; a COG with
    overviews unless ``cog=False``), atomically.

    See :class:`CompositeMap`. Memory is bounded by :data:`STACK_BUDGET_BYTES` whatever the scene
    size. Pixels with no clear observation are NaN and reported in the log.
    """
    job = CompositeMap(
        scenes, method=method, cloud_mask=cloud_mask, bands=bands, grid=grid, tags=tags
    )
    try:
        write_map(job, out, block=job.block, cog=cog, progress=progress, desc="composite")
    finally:
        job.close()
    report_empty(out)
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
