"""Spectral indices computed from band roles, so that each works on every sensor.

The ten indices of Tingzon et al. (2020), Table 2, with the formula of the paper each one comes
from. Inputs are reflectances (0..1, see :mod:`humanscape.geo.sensors`); BAEI's constant 0.3 and
SAVI's L = 0.5 assume that scale. Where a denominator is zero the index is NaN (never inf), and a
NaN input gives a NaN output.

Band roles: ``green``, ``red``, ``nir`` (S2 B08, OLI B5, TM B4), ``swir1`` (S2 B11, OLI B6, TM B5)
and ``swir2`` (S2 B12, OLI B7, TM B7).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rasterio.windows import Window

from humanscape.errors import HumanscapeError, MissingBandError
from humanscape.geo.grid import DEFAULT_BLOCK
from humanscape.geo.scene import Scene
from humanscape.geo.write import RasterSpec, file_token, write_map

Bands = Mapping[str, np.ndarray]


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num = np.asarray(num, dtype=np.float32)
    den = np.asarray(den, dtype=np.float32)
    out = np.full(np.broadcast(num, den).shape, np.nan, dtype=np.float32)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _nd(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Normalised difference (a - b) / (a + b)."""
    return _safe_div(a - b, a + b)


def ndvi(b: Bands) -> np.ndarray:
    """NDVI = (NIR - Red) / (NIR + Red). Rouse et al. (1974), Monitoring vegetation systems in the
    Great Plains with ERTS."""
    return _nd(b["nir"], b["red"])


def savi(b: Bands, L: float = 0.5) -> np.ndarray:
    """SAVI = (1 + L)(NIR - Red) / (NIR + Red + L), L = 0.5. Huete (1988), A soil-adjusted
    vegetation index, Remote Sensing of Environment 25, Eq. 1."""
    return _safe_div((1 + L) * (b["nir"] - b["red"]), b["nir"] + b["red"] + L)


def mndwi(b: Bands) -> np.ndarray:
    """MNDWI = (Green - SWIR1) / (Green + SWIR1). Xu (2006), Modification of normalised difference
    water index (NDWI) to enhance open water features, Int. J. Remote Sensing 27, Eq. 3."""
    return _nd(b["green"], b["swir1"])


def ndbi(b: Bands) -> np.ndarray:
    """NDBI = (SWIR1 - NIR) / (SWIR1 + NIR). Zha, Gao & Ni (2003), Use of normalized difference
    built-up index in automatically mapping urban areas from TM imagery, Eq. 1."""
    return _nd(b["swir1"], b["nir"])


def ui(b: Bands) -> np.ndarray:
    """UI = (SWIR2 - NIR) / (SWIR2 + NIR). Kawamura, Jayamana & Tsujiko (1996), Relation between
    social and environmental conditions in Colombo Sri Lanka and the urban index (TM7, TM4)."""
    return _nd(b["swir2"], b["nir"])


def nbi(b: Bands) -> np.ndarray:
    """NBI = Red * SWIR1 / NIR. Jieli et al. (2010), Extract residential areas automatically by
    new built-up index."""
    return _safe_div(b["red"] * b["swir1"], b["nir"])


def brba(b: Bands) -> np.ndarray:
    """BRBA = Red / SWIR1. Waqar et al. (2012), Development of new indices for extraction of
    built-up area & bare soil from Landsat data (band ratio for built-up area)."""
    return _safe_div(b["red"], b["swir1"])


def nbai(b: Bands) -> np.ndarray:
    """NBAI = (SWIR2 - SWIR1 / Green) / (SWIR2 + SWIR1 / Green). Waqar et al. (2012), new built-up
    area index ((TM7 - TM5/TM2) / (TM7 + TM5/TM2))."""
    ratio = _safe_div(b["swir1"], b["green"])
    return _safe_div(b["swir2"] - ratio, b["swir2"] + ratio)


def mbi(b: Bands) -> np.ndarray:
    """MBI = (SWIR2 * Red - NIR^2) / (Red + NIR + SWIR2). Modified built-up index as cited by
    Tingzon et al. (2020, ref. [20], urban sprawl in Southern Jiangsu) and implemented in the
    authors' code (``geoai-immap``)."""
    return _safe_div(b["swir2"] * b["red"] - b["nir"] ** 2, b["red"] + b["nir"] + b["swir2"])


def baei(b: Bands) -> np.ndarray:
    """BAEI = (Red + 0.3) / (Green + SWIR1). Bouzekri, Lasbet & Lachehab (2015), A new spectral
    index for extraction of built-up area using Landsat-8 data, Eq. 4 (reflectance units)."""
    return _safe_div(b["red"] + 0.3, b["green"] + b["swir1"])


@dataclass(frozen=True)
class SpectralIndex:
    """An index: its name, the roles it needs and the function computing it."""

    name: str
    roles: tuple[str, ...]
    func: Callable[[Bands], np.ndarray]
    description: str


#: Tingzon et al. (2020), Table 2, in the paper's order.
INDICES: dict[str, SpectralIndex] = {
    i.name: i
    for i in (
        SpectralIndex("NDVI", ("nir", "red"), ndvi, "normalized difference vegetation index"),
        SpectralIndex("SAVI", ("nir", "red"), savi, "soil adjusted vegetation index (L=0.5)"),
        SpectralIndex(
            "MNDWI", ("green", "swir1"), mndwi, "modified normalized difference water index"
        ),
        SpectralIndex("NDBI", ("swir1", "nir"), ndbi, "normalized difference built-up index"),
        SpectralIndex("UI", ("swir2", "nir"), ui, "urban index"),
        SpectralIndex("NBI", ("red", "swir1", "nir"), nbi, "new built-up index"),
        SpectralIndex("BRBA", ("red", "swir1"), brba, "band ratio for built-up area"),
        SpectralIndex("NBAI", ("swir2", "swir1", "green"), nbai, "new built-up area index"),
        SpectralIndex("MBI", ("swir2", "red", "nir"), mbi, "modified built-up index"),
        SpectralIndex("BAEI", ("red", "green", "swir1"), baei, "built-up area extraction index"),
    )
}


def index_names(names: Sequence[str] | None = None) -> list[str]:
    """Canonical (upper-case) names, all ten when ``names`` is None; error for unknown names."""
    if names is None:
        return list(INDICES)
    out = []
    for name in names:
        key = name.upper()
        if key not in INDICES:
            raise HumanscapeError(f"unknown index '{name}'", fix=f"use one of {', '.join(INDICES)}")
        out.append(key)
    return out


def required_roles(names: Sequence[str] | None = None) -> list[str]:
    """Band roles the given indices need, in a stable order."""
    roles: list[str] = []
    for name in index_names(names):
        for role in INDICES[name].roles:
            if role not in roles:
                roles.append(role)
    return roles


def compute_indices(bands: Bands, names: Sequence[str] | None = None) -> np.ndarray:
    """Stack of indices ``(len(names), ...)`` float32 from a role -> reflectance mapping."""
    chosen = index_names(names)
    missing = [r for r in required_roles(chosen) if r not in bands]
    if missing:
        raise MissingBandError(
            f"indices {', '.join(chosen)} need band roles {', '.join(missing)}",
            fix="add the bands with these roles or choose indices the scene supports",
        )
    return np.stack([INDICES[n].func(bands) for n in chosen]).astype(np.float32)


class IndicesMap:
    """The indices of a scene as a :class:`~humanscape.geo.write.WindowedMap` (per pixel, no halo).

    Bands are looked up by role on the scene's sensor; a missing band raises a
    :class:`MissingBandError` naming the scene before anything is computed.
    """

    def __init__(self, scene: Scene, names: Sequence[str] | None = None) -> None:
        self.scene = scene
        self.names = index_names(names)
        self.roles = required_roles(self.names)
        missing = [r for r in self.roles if not scene.has(r)]
        if missing:
            raise MissingBandError(
                f"indices {', '.join(self.names)} need band roles {', '.join(missing)} "
                f"(scene has {', '.join(scene.band_names)})",
                path=scene.name,
                fix="add the missing band files or choose other indices with --indices",
            )
        self.band_names = scene.resolve(self.roles)
        self.spec = RasterSpec(
            scene.grid, tuple(self.names), "index", tags=(("source", scene.name),)
        )

    def compute(self, window: Window) -> np.ndarray:
        data = self.scene.read(self.band_names, window)
        return compute_indices(dict(zip(self.roles, data, strict=True)), self.names)

    def sources(self) -> list[str]:
        return sorted({str(s.path) for s in self.scene.sources})

    def token(self) -> str:
        return f"indices {','.join(self.names)} of {file_token(self.sources())}"


def scene_indices(
    scene: Scene,
    out: str | Path,
    names: Sequence[str] | None = None,
    *,
    block: int = DEFAULT_BLOCK,
    cog: bool = True,
    progress: bool = True,
) -> Path:
    """Write the indices of a scene to a GeoTIFF, window by window (flat memory), atomically; a
    COG with overviews unless ``cog=False``."""
    job = IndicesMap(scene, names)
    return write_map(job, out, block=block, cog=cog, progress=progress, desc="indices")
