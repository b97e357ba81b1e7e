"""Cities for flow models: regions, their features, distances, adjacency and observed OD flows.

A :class:`City` is everything a flow model sees of one place: ``N`` regions (ids, polygons),
a ``(N, F)`` feature table (census, POI counts and/or image embeddings), the ``(N, N)`` distance
matrix, the adjacency of the regions and, to fit or evaluate, the ``(N, N)`` observed flows
(row = origin / home region, column = destination / work region).

Two readers:

- :func:`read_commuting_od`: a county folder of the CommutingODGen benchmark (Rong et al. 2023):
  ``od.npy``, ``demos.npy`` (ACS, column 0 = total population), ``pois.npy`` (OpenStreetMap POI
  counts), ``dis.npy`` (centroid distances, metres), ``adj.npy`` and ``regions.shp`` (tract
  polygons, ``GEOID``); rows of every array in the row order of ``regions.shp``.
- :func:`read_regions` + :func:`read_flow_table`: a generic regions file (``id``, geometry,
  numeric feature columns) and a flows table ``origin,destination,flow``.

Distances are between region centroids in an equal-distance local projection (UTM of the
regions); the distance of a region to itself is the *intra-zonal distance* ``0.5 * sqrt(A / pi)``
(half the radius of a disc of the region's area), so that the gravity law stays finite on the
diagonal (intra-region flows are real: people working where they live).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from humanscape.data.chiptable import read_table
from humanscape.errors import HumanscapeError
from humanscape.geo.vector import read_vector

#: The files of a CommutingODGen county folder.
COMMUTING_OD_FILES = ("od.npy", "demos.npy", "pois.npy", "dis.npy", "adj.npy", "regions.shp")
#: Column of ``demos.npy`` holding the total population (ACS).
POPULATION_COLUMN = 0


@dataclass
class City:
    """One place: regions, features, distances, adjacency, (observed) flows.

    Attributes
    ----------
    name
        The city / county name (the folder name for CommutingODGen folders).
    regions
        GeoDataFrame with ``id`` (str) and geometry, ``N`` rows; every array follows its row order.
    features
        ``(N, F)`` numeric features (raw; models log-scale and standardise them), NaN = missing.
    distance_km
        ``(N, N)`` centroid distances in km, intra-zonal distance on the diagonal.
    adjacency
        ``(N, N)`` bool, regions sharing a border (no self loops).
    flows
        ``(N, N)`` observed flows or None (row = origin, column = destination).
    population
        ``(N,)`` residents of each region (the gravity / radiation mass), or None when unknown.
    """

    name: str
    regions: gpd.GeoDataFrame
    features: pd.DataFrame
    distance_km: np.ndarray
    adjacency: np.ndarray
    flows: np.ndarray | None = None
    population: np.ndarray | None = None
    source: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.regions)

    @property
    def ids(self) -> np.ndarray:
        return self.regions["id"].to_numpy()

    @property
    def area_km2(self) -> np.ndarray:
        return _areas_km2(self.regions)

    def mass(self) -> np.ndarray:
        """Residents per region (the gravity mass); all ones when the population is unknown."""
        if self.population is not None:
            return np.asarray(self.population, np.float64)
        return np.ones(self.n)

    def with_features(self, extra: pd.DataFrame, *, source: str) -> City:
        """This city with ``extra`` columns (rows aligned by ``id``) appended to the features.

        Every region must have a row in ``extra`` (an ``id`` column); otherwise the regions
        without one are refused by name.
        """
        if "id" not in extra.columns:
            raise HumanscapeError(
                "table has no 'id' column", path=source, fix="name the region id column 'id'"
            )
        extra = extra.assign(id=extra["id"].astype(str)).drop_duplicates("id").set_index("id")
        missing = [i for i in self.ids if i not in extra.index]
        if missing:
            raise HumanscapeError(
                f"{len(missing)} of {self.n} regions of {self.name} have no row "
                f"(first: {', '.join(missing[:3])})",
                path=source,
                fix="compute the table for every region (humanscape flows embed) or drop those regions",
            )
        numeric = extra.loc[list(self.ids)].select_dtypes("number").reset_index(drop=True)
        return replace(self, features=pd.concat([self.features, numeric], axis=1))


# --- readers ----------------------------------------------------------------------------------


def read_commuting_od(folder: str | Path) -> City:
    """Read a CommutingODGen county folder (see the module docstring) into a :class:`City`.

    A missing file, arrays whose sizes do not match the regions, a non-square OD matrix or
    negative flows are refused with the file named.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise HumanscapeError(
            "not a folder", path=folder, fix="point at a CommutingODGen county folder"
        )
    missing = [f for f in COMMUTING_OD_FILES if not (folder / f).exists()]
    if missing:
        raise HumanscapeError(
            f"CommutingODGen folder lacks {', '.join(missing)}",
            path=folder,
            fix=f"a county folder holds {', '.join(COMMUTING_OD_FILES)}",
        )
    regions = read_vector(folder / "regions.shp")
    key = "GEOID" if "GEOID" in regions.columns else None
    if key is None:
        raise HumanscapeError(
            "regions have no GEOID column",
            path=folder / "regions.shp",
            fix="use the tract shapefile",
        )
    regions = gpd.GeoDataFrame(
        {"id": regions[key].astype(str).to_numpy()},
        geometry=regions.geometry.values,
        crs=regions.crs,
    )
    _check_regions(regions, folder / "regions.shp")
    n = len(regions)
    arrays = {}
    for name in ("od", "demos", "pois", "dis", "adj"):
        path = folder / f"{name}.npy"
        try:
            arr = np.load(path, allow_pickle=False)
        except Exception as exc:  # numpy raises ValueError / OSError / EOFError on bad files
            raise HumanscapeError(
                f"not a readable .npy array ({type(exc).__name__})",
                path=path,
                fix="re-export the array with numpy.save",
            ) from None
        square = name in ("od", "dis", "adj")
        if arr.ndim != 2 or arr.shape[0] != n or (square and arr.shape[1] != n):
            want = f"({n}, {n})" if square else f"({n}, columns)"
            raise HumanscapeError(
                f"array of shape {arr.shape}, expected {want} for the {n} regions of regions.shp",
                path=path,
                fix="rows (and columns) must follow the row order of regions.shp",
            )
        if not np.isfinite(arr).all():
            raise HumanscapeError(
                "array holds NaN or infinite values",
                path=path,
                fix="fill missing values before writing the array",
            )
        arrays[name] = arr.astype(np.float64)
    if (arrays["od"] < 0).any():
        raise HumanscapeError(
            "negative flows", path=folder / "od.npy", fix="flows are counts of commuters (>= 0)"
        )
    demos, pois = arrays["demos"], arrays["pois"]
    features = pd.DataFrame(
        np.concatenate([demos, pois], axis=1),
        columns=[f"demo_{j:03d}" for j in range(demos.shape[1])]
        + [f"poi_{j:03d}" for j in range(pois.shape[1])],
    )
    distance = arrays["dis"] / 1000.0
    np.fill_diagonal(distance, _intrazonal_km(regions))
    adjacency = arrays["adj"] > 0
    np.fill_diagonal(adjacency, False)
    return City(
        name=folder.name,
        regions=regions,
        features=features,
        distance_km=distance,
        adjacency=adjacency | adjacency.T,
        flows=arrays["od"],
        population=demos[:, POPULATION_COLUMN].clip(0),
        source=str(folder),
    )


def read_regions(
    path: str | Path,
    *,
    id_column: str = "id",
    population_column: str | None = "population",
    name: str | None = None,
) -> City:
    """Read a regions file (ids, polygons, numeric feature columns) into a :class:`City` without flows.

    Non-numeric columns other than ``id_column`` are ignored (with a note); regions without
    geometry or with duplicate ids are refused. ``population_column`` (when present) is the
    gravity mass.
    """
    path = Path(path)
    gdf = read_vector(path)
    if id_column not in gdf.columns:
        raise HumanscapeError(
            f"regions have no '{id_column}' column",
            path=path,
            fix=f"give the region id column with --id-column (columns: "
            f"{', '.join(c for c in map(str, gdf.columns) if c != gdf.geometry.name)})",
        )
    regions = gpd.GeoDataFrame(
        {"id": gdf[id_column].astype(str).to_numpy()}, geometry=gdf.geometry.values, crs=gdf.crs
    )
    _check_regions(regions, path)
    table = pd.DataFrame(gdf.drop(columns=[id_column, gdf.geometry.name]))
    numeric = table.select_dtypes("number").astype(np.float64)
    notes = []
    dropped = [c for c in table.columns if c not in numeric.columns]
    if dropped:
        notes.append(f"non-numeric columns ignored: {', '.join(map(str, dropped))}")
    population = None
    if population_column and population_column in numeric.columns:
        population = numeric[population_column].fillna(0).clip(lower=0).to_numpy()
    return City(
        name=name or path.stem,
        regions=regions,
        features=numeric.reset_index(drop=True),
        distance_km=distance_matrix_km(regions),
        adjacency=adjacency_matrix(regions),
        population=population,
        source=str(path),
        notes=notes,
    )


def read_flow_table(path: str | Path, city: City) -> City:
    """``city`` with the flows of an ``origin,destination,flow`` table (absent pairs are 0).

    Origins or destinations that are not regions of ``city``, negative or missing flows and
    repeated pairs are refused with the file named.
    """
    path = Path(path)
    table = read_table(path, what="flows table")
    missing = [c for c in ("origin", "destination", "flow") if c not in table.columns]
    if missing:
        raise HumanscapeError(
            f"flows table has no column {', '.join(missing)}",
            path=path,
            fix=f"columns must be origin, destination, flow (found {', '.join(map(str, table.columns))})",
        )
    index = {rid: k for k, rid in enumerate(city.ids)}
    origin = table["origin"].astype(str)
    destination = table["destination"].astype(str)
    unknown = sorted(set(origin[~origin.isin(index)]) | set(destination[~destination.isin(index)]))
    if unknown:
        raise HumanscapeError(
            f"{len(unknown)} origin/destination id(s) are not regions (first: {', '.join(unknown[:3])})",
            path=path,
            fix="use the 'id' values of the regions file",
        )
    flow = pd.to_numeric(table["flow"], errors="coerce").to_numpy(np.float64)
    if not np.isfinite(flow).all():
        raise HumanscapeError(
            "flow column has missing or non-numeric values", path=path, fix="write 0 for no flow"
        )
    if (flow < 0).any():
        raise HumanscapeError(
            f"{int((flow < 0).sum())} negative flow(s)",
            path=path,
            fix="flows are counts of commuters (>= 0)",
        )
    pairs = pd.DataFrame({"o": origin.map(index), "d": destination.map(index)})
    if pairs.duplicated().any():
        o, d = pairs[pairs.duplicated()].iloc[0]
        raise HumanscapeError(
            f"pair {city.ids[o]} -> {city.ids[d]} appears more than once",
            path=path,
            fix="aggregate the flows to one row per origin-destination pair",
        )
    matrix = np.zeros((city.n, city.n))
    matrix[pairs["o"].to_numpy(), pairs["d"].to_numpy()] = flow
    return replace(city, flows=matrix)


def read_embeddings(path: str | Path) -> pd.DataFrame:
    """An embeddings table (``id`` + numeric columns, e.g. from ``humanscape flows embed``)."""
    table = read_table(path, what="embeddings table")
    if "id" not in table.columns:
        raise HumanscapeError(
            "embeddings table has no 'id' column",
            path=path,
            fix="write the table with 'humanscape flows embed'",
        )
    return table


# --- geometry ---------------------------------------------------------------------------------


def _check_regions(regions: gpd.GeoDataFrame, path: Path) -> None:
    if regions.empty:
        raise HumanscapeError("no regions", path=path, fix="give at least two regions")
    empty = regions.geometry.isna() | regions.geometry.is_empty
    if empty.any():
        first = ", ".join(regions.loc[empty, "id"].astype(str).head(3))
        raise HumanscapeError(
            f"{int(empty.sum())} region(s) without geometry (first: {first})",
            path=path,
            fix="give every region a polygon or drop it",
        )
    duplicated = regions["id"].duplicated()
    if duplicated.any():
        raise HumanscapeError(
            f"region id {regions.loc[duplicated, 'id'].iloc[0]} appears more than once",
            path=path,
            fix="give every region its own id",
        )
    if len(regions) < 2:
        raise HumanscapeError("a single region has no flows between regions", path=path)


def _local(regions: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """``regions`` in a metric CRS: their own when projected, else the UTM zone of their centre."""
    if regions.crs is None:
        raise HumanscapeError("regions have no CRS", fix="write the CRS into the regions file")
    if regions.crs.is_projected:
        return regions
    return regions.to_crs(regions.estimate_utm_crs())


def _areas_km2(regions: gpd.GeoDataFrame) -> np.ndarray:
    return _local(regions).geometry.area.to_numpy() / 1e6


def _intrazonal_km(regions: gpd.GeoDataFrame) -> np.ndarray:
    """Intra-zonal distance: half the radius of a disc of the region's area, ``0.5 sqrt(A / pi)``."""
    return 0.5 * np.sqrt(_areas_km2(regions) / np.pi)


def distance_matrix_km(regions: gpd.GeoDataFrame) -> np.ndarray:
    """Centroid distances in km (local metric CRS); intra-zonal distance on the diagonal."""
    centroids = _local(regions).geometry.centroid
    xy = np.column_stack([centroids.x, centroids.y])
    distance = np.sqrt(((xy[:, None] - xy[None]) ** 2).sum(-1)) / 1000.0
    np.fill_diagonal(distance, _intrazonal_km(regions))
    return distance


def adjacency_matrix(regions: gpd.GeoDataFrame) -> np.ndarray:
    """``(N, N)`` bool: regions whose polygons touch or overlap (queen contiguity), no self loops."""
    geoms = regions.geometry.reset_index(drop=True)
    left, right = geoms.sindex.query(geoms, predicate="intersects")
    adjacency = np.zeros((len(geoms), len(geoms)), bool)
    adjacency[left, right] = True
    np.fill_diagonal(adjacency, False)
    return adjacency


def load_cities(
    commuting_od: list[str | Path] | None = None,
    *,
    regions: str | Path | None = None,
    flows: str | Path | None = None,
    embeddings: str | Path | None = None,
    id_column: str = "id",
    need_flows: bool = True,
) -> list[City]:
    """The cities of a command line: CommutingODGen folders, or one regions file (+ flows table).

    ``embeddings`` (an ``id`` table) adds image features to every city; it must cover each region.
    """
    if commuting_od:
        cities = [read_commuting_od(folder) for folder in commuting_od]
    elif regions is not None:
        city = read_regions(regions, id_column=id_column)
        if flows is not None:
            city = read_flow_table(flows, city)
        cities = [city]
    else:
        raise HumanscapeError(
            "no input", fix="give --commuting-od DIR [DIR ...] or --regions R.gpkg (--flows F.csv)"
        )
    if need_flows:
        for city in cities:
            if city.flows is None:
                raise HumanscapeError(
                    "no observed flows to fit or evaluate on",
                    path=city.source,
                    fix="give --flows F.csv with origin,destination,flow",
                )
    if embeddings is not None:
        table = read_embeddings(embeddings)
        cities = [city.with_features(table, source=str(embeddings)) for city in cities]
    return cities
