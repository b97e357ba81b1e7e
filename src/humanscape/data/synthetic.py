"""A seeded synthetic world with known ground truth, for unit tests and scale tests.

It is never evidence that a method works on real places (that is what the shipped real data and
``bench/`` are for); it exists so that tests can check a method recovers a truth it was built
from, and so that scale tests can make scenes larger than memory. Everything is a pure function of
the seed and global pixel coordinates, so a tile generated alone equals the same tile cut from
the whole world (generation tile by tile, any size).

What it produces, and the paper each part imitates:

- land cover (the 10 EuroSAT classes) from smooth value noise, cities and blocky fields, turned into
  multispectral reflectance for any sensor from the **real EuroSAT MS class mean spectra**
  (:data:`humanscape.data.spectra.CLASS_SPECTRA_DN`, measured on the 469 EuroSAT MS chips of the development data) plus
  per-class texture and sensor noise;
- population per pixel driven by built-up density, with a *high-rise factor* that raises people
  per built pixel in city cores while the spectrum saturates (Huang et al. 2021 report that CNNs
  under-estimate the densest cells: this reproduces the cause);
- Voronoi districts whose output follows an agglomeration power law ``Y = A P^beta`` (beta 1.15,
  urban scaling; the agglomeration effect of Park et al. 2022);
- informal settlements on the urban fringe, old ones and new ones appearing between periods
  (Tingzon et al. 2020);
- a municipal census table with a known migrant-outflow function that includes interactions
  (Runfola et al. 2022);
- origin-destination flows from a gravity law with log-normal noise (Imagery2Flow / Deep Gravity).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window
from scipy.spatial import cKDTree
from shapely.geometry import Point, box

from humanscape.data.noise import fbm, fbm_at, hash_uniform, pixel_gauss, value_noise
from humanscape.data.samples import EUROSAT_CLASSES
from humanscape.data.spectra import CLASS_SPECTRA_DN, CLASS_TEXTURE_DN
from humanscape.errors import HumanscapeError
from humanscape.geo.grid import GridSpec
from humanscape.geo.sensors import SENTINEL2_L1C, Sensor, get_sensor
from humanscape.geo.write import RasterWriter

#: Land-cover classes (EuroSAT order) plus informal settlement (10).
CLASSES = [*EUROSAT_CLASSES, "InformalSettlement"]

_S2_WAVELENGTHS = np.array(
    [b.wavelength_nm for b in SENTINEL2_L1C.bands if b.kind == "reflectance"]
)


# --- the world -----------------------------------------------------------------------------------


@dataclass
class WorldTile:
    """Everything the world holds for one window (arrays are ``(rows, cols)`` unless noted)."""

    window: Window
    reflectance: np.ndarray  # (bands, rows, cols) float32
    landcover: np.ndarray  # uint8, index into CLASSES
    built: np.ndarray  # float32 0..1, built-up density
    population: np.ndarray  # float32 persons per pixel
    district: np.ndarray  # int32 district id
    settlement: np.ndarray  # bool, informal settlement present in this period


@dataclass
class SyntheticWorld:
    """A seeded world of ``height`` x ``width`` pixels of ``pixel_size`` metres (see module doc).

    Parameters
    ----------
    height, width
        Size in pixels (any size: generate with :meth:`tile` window by window).
    seed
        Every output is a deterministic function of the seed.
    sensor
        Registry key of the sensor whose bands :meth:`tile` returns (reflectance).
    n_districts
        Voronoi districts (also the municipalities of :meth:`census` and regions of :meth:`flows`).
    highrise
        High-rise factor: people per built pixel grow by ``(1 + highrise * core^2)`` where
        ``core`` is how far built density exceeds 0.6, while the spectrum saturates.
    periods
        Names of the periods; settlements appear in periods after the first.
    gdp_beta
        Exponent of the agglomeration power law ``GDP = A * P^beta``.
    """

    height: int = 512
    width: int = 512
    seed: int = 0
    sensor: str = "sentinel2_l1c"
    pixel_size: float = 10.0
    crs: str = "EPSG:32633"
    origin: tuple[float, float] = (400000.0, 5800000.0)
    n_districts: int = 12
    highrise: float = 3.0
    periods: tuple[str, ...] = ("2015-2016", "2017-2018", "2019-2020")
    settlements_per_km2: float = 1.5
    gdp_beta: float = 1.15
    _cache: dict[str, object] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.height < 8 or self.width < 8:
            raise HumanscapeError(
                f"world must be at least 8 x 8 pixels, got {self.height} x {self.width}"
            )
        self._sensor: Sensor = get_sensor(self.sensor)

    # -- geometry
    @property
    def grid(self) -> GridSpec:
        x0, y0 = self.origin
        return GridSpec(
            CRS.from_user_input(self.crs),
            Affine(self.pixel_size, 0, x0, 0, -self.pixel_size, y0),
            self.width,
            self.height,
        )

    @property
    def band_names(self) -> list[str]:
        return self._sensor.reflectance_bands

    @cached_property
    def _cities(self) -> np.ndarray:
        """(n, 4): row, col, sigma (px), weight of each city."""
        rng = np.random.default_rng([self.seed, 1])
        area_km2 = self.height * self.width * (self.pixel_size / 1000) ** 2
        n = max(2, int(round(area_km2 / 8)))
        rows = rng.uniform(0, self.height, n)
        cols = rng.uniform(0, self.width, n)
        sigma = rng.uniform(250, 900, n) / self.pixel_size
        weight = rng.uniform(0.7, 1.6, n)
        return np.column_stack([rows, cols, sigma, weight])

    @cached_property
    def _district_seeds(self) -> np.ndarray:
        rng = np.random.default_rng([self.seed, 2])
        return np.column_stack(
            [
                rng.uniform(0, self.height, self.n_districts),
                rng.uniform(0, self.width, self.n_districts),
            ]
        )

    @cached_property
    def _settlements(self) -> np.ndarray:
        """(n, 4): row, col, radius (px), period of appearance (0 = before the first period ends)."""
        rng = np.random.default_rng([self.seed, 3])
        area_km2 = self.height * self.width * (self.pixel_size / 1000) ** 2
        n_candidates = max(8, int(area_km2 * self.settlements_per_km2 * 6))
        rows = rng.uniform(0, self.height, n_candidates)
        cols = rng.uniform(0, self.width, n_candidates)
        built = self._built_at(rows, cols)
        water = self._water_at(rows, cols)
        fringe = (built > 0.12) & (built < 0.45) & ~water
        rows, cols = rows[fringe], cols[fringe]
        n_keep = max(1, int(round(area_km2 * self.settlements_per_km2)))
        rows, cols = rows[:n_keep], cols[:n_keep]
        radius = rng.uniform(30, 90, rows.size) / self.pixel_size
        appear = rng.integers(0, len(self.periods), rows.size)  # 0 = already there (old)
        return np.column_stack([rows, cols, radius, appear])

    # -- pointwise fields (used for placing settlements without generating tiles)
    def _built_at(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        c = self._cities
        out = np.empty(rows.size)
        for k in range(0, rows.size, 2048):
            r, q = rows[k : k + 2048, None], cols[k : k + 2048, None]
            d2 = (r - c[:, 0]) ** 2 + (q - c[:, 1]) ** 2
            out[k : k + 2048] = (c[:, 3] * np.exp(-d2 / (2 * c[:, 2] ** 2))).sum(1)
        return np.clip(out, 0, 1)

    def _water_at(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        return fbm_at(rows, cols, 3000 / self.pixel_size, self.seed, 11) < 0.3

    # -- tiles
    def tile(self, window: Window | None = None, *, period: int | None = None) -> WorldTile:
        """Generate one window of the world for ``period`` (default the last period)."""
        window = window or Window(0, 0, self.width, self.height)
        period = len(self.periods) - 1 if period is None else period
        if not 0 <= period < len(self.periods):
            raise HumanscapeError(f"period {period} out of range 0..{len(self.periods) - 1}")
        r0, c0 = int(window.row_off), int(window.col_off)
        rows = np.arange(r0, r0 + int(window.height), dtype=np.float64)
        cols = np.arange(c0, c0 + int(window.width), dtype=np.float64)
        ps, s = self.pixel_size, self.seed

        # built-up density: cities modulated by noise
        c = self._cities
        built = np.zeros((rows.size, cols.size), np.float32)
        near = (
            (c[:, 0] + 5 * c[:, 2] >= rows[0])
            & (c[:, 0] - 5 * c[:, 2] <= rows[-1])
            & (c[:, 1] + 5 * c[:, 2] >= cols[0])
            & (c[:, 1] - 5 * c[:, 2] <= cols[-1])
        )
        for row, col, sigma, weight in c[near]:
            built += (
                weight
                * np.exp(
                    -((rows[:, None] - row) ** 2 + (cols[None, :] - col) ** 2) / (2 * sigma**2)
                )
            ).astype(np.float32)
        built *= 0.55 + 0.9 * fbm(rows, cols, 400 / ps, s, 21)
        built = np.clip(built, 0, 1)

        water = fbm(rows, cols, 3000 / ps, s, 11, octaves=4) < 0.3
        river = (np.abs(fbm(rows, cols, 2000 / ps, s, 12, octaves=3) - 0.5) < 0.012) & ~water
        forest = fbm(rows, cols, 1200 / ps, s, 13) > 0.58
        road = (np.abs(fbm(rows, cols, 1500 / ps, s, 14, octaves=2) - 0.5) < 0.006) & (built > 0.15)
        industrial = fbm(rows, cols, 600 / ps, s, 15, octaves=2) > 0.62

        # agricultural fields: piecewise constant per ~300 m field
        field_px = max(1, round(300 / ps))
        fr, fc = np.floor(rows / field_px), np.floor(cols / field_px)
        farm = np.array([0, 2, 5, 6], np.uint8)[
            (hash_uniform(s, 16, fr[:, None], fc[None, :]) * 4).astype(int)
        ]

        lc = farm.copy()
        lc[forest] = 1
        urban = built > 0.35
        lc[urban] = 7
        lc[urban & industrial] = 4
        lc[road] = 3
        lc[river] = 8
        lc[water] = 9
        built = np.where(water | river, 0, built).astype(np.float32)

        settlement = self._settlement_mask(rows, cols, period) & ~water & ~river
        lc[settlement] = 10

        reflectance = self._reflectance(lc, built, rows, cols, period)

        core = np.clip((built - 0.6) / 0.4, 0, 1)
        people_per_built_px = 1.0 * (self.pixel_size / 10) ** 2  # 10,000 per km2 fully built
        population = people_per_built_px * built * (1 + self.highrise * core**2)
        population = np.where(np.isin(lc, (7, 10)), population, population * 0.15)
        population[settlement] = 3.0 * (self.pixel_size / 10) ** 2  # crowded informal housing
        population[water | river] = 0

        tree = cKDTree(self._district_seeds)
        rr, cc = np.meshgrid(rows + 0.5, cols + 0.5, indexing="ij")
        district = (
            tree.query(np.column_stack([rr.ravel(), cc.ravel()]))[1]
            .reshape(rr.shape)
            .astype(np.int32)
        )
        return WorldTile(
            window, reflectance, lc, built, population.astype(np.float32), district, settlement
        )

    def _settlement_mask(self, rows: np.ndarray, cols: np.ndarray, period: int) -> np.ndarray:
        mask = np.zeros((rows.size, cols.size), bool)
        r_first, c_first = rows[0], cols[0]
        st = self._settlements
        near = (
            (st[:, 3] <= period)
            & (st[:, 0] + 1.25 * st[:, 2] >= rows[0])
            & (st[:, 0] - 1.25 * st[:, 2] <= rows[-1])
            & (st[:, 1] + 1.25 * st[:, 2] >= cols[0])
            & (st[:, 1] - 1.25 * st[:, 2] <= cols[-1])
        )
        for row, col, radius, _ in st[near]:
            r0 = max(0, int(np.floor(row - 1.25 * radius - r_first)))
            r1 = min(rows.size, int(np.ceil(row + 1.25 * radius - r_first)) + 1)
            c0 = max(0, int(np.floor(col - 1.25 * radius - c_first)))
            c1 = min(cols.size, int(np.ceil(col + 1.25 * radius - c_first)) + 1)
            if r0 >= r1 or c0 >= c1:
                continue
            rr, cc = rows[r0:r1], cols[c0:c1]
            d = np.sqrt((rr[:, None] - row) ** 2 + (cc[None, :] - col) ** 2)
            wobble = 0.75 + 0.5 * value_noise(rr, cc, max(radius / 2, 1), self.seed, 31)
            mask[r0:r1, c0:c1] |= d < radius * wobble
        return mask

    def _class_spectra(self) -> np.ndarray:
        """(n_classes, n_bands) reflectance of each class on this world's sensor."""
        key = "spectra"
        if key not in self._cache:
            spectra = np.array([CLASS_SPECTRA_DN[c] for c in CLASSES[:10]], np.float64) / 10000.0
            informal = 0.55 * spectra[4] + 0.45 * spectra[0] * np.linspace(
                1.15, 1.3, spectra.shape[1]
            )
            spectra = np.vstack([spectra, informal])
            wavelengths = [self._sensor.band(b).wavelength_nm for b in self.band_names]
            order = np.argsort(_S2_WAVELENGTHS)
            self._cache[key] = np.stack(
                [
                    [np.interp(w, _S2_WAVELENGTHS[order], row[order]) for w in wavelengths]
                    for row in spectra
                ]
            ).astype(np.float32)
        return self._cache[key]  # type: ignore[return-value]

    def _reflectance(
        self, lc: np.ndarray, built: np.ndarray, rows: np.ndarray, cols: np.ndarray, period: int
    ) -> np.ndarray:
        spectra = self._class_spectra()
        texture_amp = (
            np.array([CLASS_TEXTURE_DN.get(c, 450) for c in CLASSES], np.float32) / 10000.0
        )
        base = spectra[lc]  # (rows, cols, bands)
        # residential pixels mix roofs with gardens: brighter and less green with density, saturating
        garden = spectra[2]
        mix = np.clip(built, 0.35, 0.75)[..., None]
        base = np.where((lc == 7)[..., None], mix * spectra[7] + (1 - mix) * garden, base)
        texture = (fbm(rows, cols, 6, self.seed, 40 + period, octaves=2) - 0.5) * 3.0
        sensor_noise = pixel_gauss(rows, cols, self.seed, 50 + period) * 0.004
        season = 1.0 + 0.03 * (
            hash_uniform(self.seed, 60, np.array([period]), np.array([0]))[0] - 0.5
        )
        out = base * season + (texture * texture_amp[lc])[..., None] * (
            base / base.mean(-1, keepdims=True)
        )
        out = out + sensor_noise[..., None]
        return np.clip(np.moveaxis(out, -1, 0), 0.0001, 1.2).astype(np.float32)

    # -- whole-world products (iterate tiles: memory stays flat)
    def windows(self, block: int = 1024) -> list[Window]:
        return list(self.grid.windows(block))

    def write_scene(
        self,
        path: str | Path,
        *,
        period: int | None = None,
        block: int = 1024,
        dn: bool = True,
        bands: Sequence[str] | None = None,
    ) -> Path:
        """Stream the world's reflectance for ``period`` to a GeoTIFF tile by tile (uint16 DN by default).

        ``bands`` (names or roles) restricts the written bands, e.g. for large scale-test scenes.
        """
        sensor = self._sensor
        names = [sensor.band(b).name for b in bands] if bands else self.band_names
        index = [self.band_names.index(n) for n in names]
        table = [sensor.band(n) for n in names]
        scale = np.array([b.scale for b in table], np.float32)[:, None, None]
        offset = np.array([b.offset for b in table], np.float32)[:, None, None]
        with RasterWriter(
            path,
            self.grid,
            count=len(names),
            units="dn" if dn else "reflectance",
            scales=[b.scale for b in table] if dn else None,
            offsets=[b.offset for b in table] if dn else None,
            dtype="uint16" if dn else "float32",
            nodata=0 if dn else None,
            band_names=names,
            tags={
                "synthetic_seed": str(self.seed),
                "period": str(period),
                "sensor": sensor.name,
            },
        ) as writer:
            for window in self.windows(block):
                refl = self.tile(window, period=period).reflectance[index]
                if dn:  # inverse of reflectance = DN * scale + offset (geo.radiometry)
                    refl = np.clip(np.round((refl - offset) / scale), 1, 65535)
                writer.write(refl, window)
        return Path(path)

    def population_grid(self, cell_px: int = 10, *, period: int | None = None) -> np.ndarray:
        """True population per cell of ``cell_px`` x ``cell_px`` pixels (partial edge cells included)."""
        n_rows, n_cols = math.ceil(self.height / cell_px), math.ceil(self.width / cell_px)
        out = np.zeros((n_rows, n_cols), np.float64)
        block = max(cell_px, (1024 // cell_px) * cell_px)
        for window in self.windows(block):
            pop = self.tile(window, period=period).population
            r0, c0 = int(window.row_off) // cell_px, int(window.col_off) // cell_px
            h, w = pop.shape
            padded = np.zeros((math.ceil(h / cell_px) * cell_px, math.ceil(w / cell_px) * cell_px))
            padded[:h, :w] = pop
            cells = padded.reshape(padded.shape[0] // cell_px, cell_px, -1, cell_px).sum((1, 3))
            out[r0 : r0 + cells.shape[0], c0 : c0 + cells.shape[1]] = cells
        return out

    def districts(self, *, period: int | None = None) -> gpd.GeoDataFrame:
        """Voronoi districts with population, built-up share and GDP from the power law (the truth).

        ``gdp = A * population ** gdp_beta * exp(eps)``, eps ~ N(0, 0.1); also ``gdp_per_capita``.
        """
        key = f"districts{period}"
        if key in self._cache:
            return self._cache[key]  # type: ignore[return-value]
        n = self.n_districts
        pop, built, pixels, x, y = (np.zeros(n) for _ in range(5))
        for window in self.windows(1024):
            t = self.tile(window, period=period)
            d = t.district.ravel()
            pop += np.bincount(d, t.population.ravel(), n)
            built += np.bincount(d, t.built.ravel(), n)
            pixels += np.bincount(d, minlength=n)
            rr, cc = np.meshgrid(
                np.arange(t.district.shape[0]) + window.row_off,
                np.arange(t.district.shape[1]) + window.col_off,
                indexing="ij",
            )
            x += np.bincount(d, cc.ravel(), n)
            y += np.bincount(d, rr.ravel(), n)
        rng = np.random.default_rng([self.seed, 4])
        gdp = 5e4 * np.maximum(pop, 1) ** self.gdp_beta * np.exp(rng.normal(0, 0.1, n))
        cx, cy = self.grid.transform @ (x / np.maximum(pixels, 1), y / np.maximum(pixels, 1))
        geoms = self._voronoi_polygons()
        gdf = gpd.GeoDataFrame(
            {
                "district": np.arange(n),
                "population": pop,
                "built_share": built / np.maximum(pixels, 1),
                "area_km2": pixels * (self.pixel_size / 1000) ** 2,
                "gdp": gdp,
                "gdp_per_capita": gdp / np.maximum(pop, 1),
                "x": cx,
                "y": cy,
            },
            geometry=geoms,
            crs=self.grid.crs,
        )
        self._cache[key] = gdf
        return gdf

    def _voronoi_polygons(self) -> list:
        from shapely.geometry import MultiPoint
        from shapely.ops import voronoi_diagram

        seeds = [self.grid.transform @ (c, r) for r, c in self._district_seeds]
        frame = box(*self.grid.bounds)
        cells = voronoi_diagram(MultiPoint(seeds), envelope=frame.buffer(1e5))
        out = []
        for sx, sy in seeds:
            point = Point(sx, sy)
            poly = next(g for g in cells.geoms if g.contains(point) or g.touches(point))
            out.append(poly.intersection(frame))
        return out

    def settlements(self) -> gpd.GeoDataFrame:
        """Informal settlement footprints (circles of their nominal radius) with appearance period."""
        rows = []
        for row, col, radius, appear in self._settlements:
            x, y = self.grid.transform @ (col, row)
            rows.append(
                {
                    "geometry": Point(x, y).buffer(radius * self.pixel_size),
                    "appear_period": int(appear),
                    "period_name": self.periods[int(appear)],
                    "new": bool(appear > 0),
                }
            )
        return gpd.GeoDataFrame(pd.DataFrame(rows), geometry="geometry", crs=self.grid.crs)

    def census(self, *, hidden: Sequence[str] = ()) -> tuple[pd.DataFrame, dict[str, object]]:
        """Municipal census table (one row per district) and the known outflow function.

        ``hidden`` columns drive the outflow but are left out of the table: with
        ``hidden=("urban_share",)`` the built-up share, which the imagery shows, is signal only
        an imagery model can recover (the synthetic test of Runfola et al.'s imagery branch).

        The truth is ``outflow = population * sigmoid(eta)`` with interactions::

            eta = -3.0 + 0.9*unemployment_z - 0.6*income_z + 0.7*unemployment_z*youth_share_z
                  + 0.5*border_z*(1 - urban_z) - 0.4*urban_z

        (``_z`` = standardised column). Returned columns include the true ``outflow`` and ``rate``.
        """
        d = self.districts()
        rng = np.random.default_rng([self.seed, 5])
        n = len(d)
        frame = pd.DataFrame(
            {
                "municipality": [f"M{i:03d}" for i in range(n)],
                "population": d["population"].to_numpy(),
                "urban_share": d["built_share"].to_numpy(),
                "income": d["gdp_per_capita"].to_numpy() * rng.lognormal(0, 0.15, n),
                "unemployment": np.clip(
                    rng.normal(0.12, 0.05, n) - 0.05 * d["built_share"].to_numpy(), 0.01, 0.5
                ),
                "youth_share": np.clip(rng.normal(0.25, 0.05, n), 0.05, 0.6),
                "border_distance_km": d["x"].to_numpy() / 1000 - self.origin[0] / 1000,
                "household_size": np.clip(rng.normal(3.5, 0.6, n), 1.5, 7),
                "noise_var": rng.normal(0, 1, n),  # unrelated to outflow, for importance checks
            }
        )
        z = {
            c: (frame[c] - frame[c].mean()) / (frame[c].std(ddof=0) + 1e-12)
            for c in frame.columns[1:]
        }
        eta = (
            -3.0
            + 0.9 * z["unemployment"]
            - 0.6 * z["income"]
            + 0.7 * z["unemployment"] * z["youth_share"]
            + 0.5 * (-z["border_distance_km"]) * (1 - z["urban_share"])
            - 0.4 * z["urban_share"]
        )
        rate = 1 / (1 + np.exp(-eta))
        frame["rate"] = rate
        frame["outflow"] = np.round(frame["population"] * rate)
        truth = {
            "link": "logistic",
            "intercept": -3.0,
            "terms": {
                "unemployment": 0.9,
                "income": -0.6,
                "unemployment:youth_share": 0.7,
                "border_proximity:(1-urban_share)": 0.5,
                "urban_share": -0.4,
            },
            "relevant": [
                "unemployment",
                "income",
                "youth_share",
                "border_distance_km",
                "urban_share",
            ],
            "irrelevant": ["household_size", "noise_var"],
            "hidden": list(hidden),
        }
        unknown = [c for c in hidden if c not in frame.columns or c == "municipality"]
        if unknown:
            raise HumanscapeError(f"cannot hide unknown census column(s) {', '.join(unknown)}")
        return frame.drop(columns=list(hidden)), truth

    def flows(
        self, *, gamma: float = 2.0, sigma: float = 0.3
    ) -> tuple[pd.DataFrame, dict[str, float]]:
        """OD flows between districts from a gravity law with log-normal noise.

        ``T_ij = G * P_i * P_j / d_ij^gamma * exp(eps_ij)``, eps ~ N(0, sigma); the intra-district
        distance is half the radius of a disc of the district's area. Returns ``origin``,
        ``destination``, ``flow`` (Poisson counts of the expected value) and the truth parameters.
        """
        d = self.districts()
        rng = np.random.default_rng([self.seed, 6])
        xy = d[["x", "y"]].to_numpy()
        dist = np.sqrt(((xy[:, None] - xy[None]) ** 2).sum(-1)) / 1000
        np.fill_diagonal(dist, 0.5 * np.sqrt(d["area_km2"].to_numpy() / np.pi))
        pop = d["population"].to_numpy()
        expected = pop[:, None] * pop[None, :] / np.maximum(dist, 0.1) ** gamma
        expected *= 0.2 * pop.sum() / expected.sum()  # a fifth of residents commute
        expected *= np.exp(rng.normal(0, sigma, expected.shape))
        flow = rng.poisson(expected)
        o, dd = np.meshgrid(np.arange(len(d)), np.arange(len(d)), indexing="ij")
        table = pd.DataFrame(
            {
                "origin": o.ravel(),
                "destination": dd.ravel(),
                "flow": flow.ravel(),
                "expected": expected.ravel(),
                "distance_km": dist.ravel(),
            }
        )
        return table, {"gamma": gamma, "sigma": sigma}
