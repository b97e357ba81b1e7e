"""Small Sentinel-2 L2A STAC items over local GeoTIFFs, for the STAC tests (issue 24)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pystac
import rasterio
from rasterio.transform import from_origin

CRS = "EPSG:32633"
#: Earth Search asset keys and their eo:bands entries (name, common name, centre wavelength um).
EARTH_SEARCH = {
    "blue": ("blue", "blue", 0.49),
    "green": ("green", "green", 0.56),
    "red": ("red", "red", 0.665),
    "rededge1": ("rededge1", "rededge", 0.704),
    "nir": ("nir", "nir", 0.842),
}


def write_band(path: Path, dn: np.ndarray, left: float, top: float, res: float = 10.0) -> Path:
    with rasterio.open(
        path, "w", driver="GTiff", width=dn.shape[1], height=dn.shape[0], count=1,
        dtype="uint16", crs=CRS, transform=from_origin(left, top, res, res), nodata=0,
        tiled=True, blockxsize=16, blockysize=16,
    ) as dst:  # fmt: skip
        dst.write(dn.astype(np.uint16), 1)
    return path


def make_item(
    folder: Path,
    item_id: str,
    day: dt.date,
    dn: dict[str, np.ndarray],
    *,
    left: float = 500_000.0,
    top: float = 5_800_000.0,
    properties: dict | None = None,
    href_root: str | None = None,
) -> pystac.Item:
    """An L2A item with one GeoTIFF per asset of ``dn`` (Earth Search keys, or any key)."""
    folder.mkdir(parents=True, exist_ok=True)
    props = {"platform": "sentinel-2a", "s2:processing_baseline": "04.00"} | (properties or {})
    item = pystac.Item(
        item_id,
        geometry=None,
        bbox=None,
        datetime=dt.datetime(day.year, day.month, day.day, 10, 30, tzinfo=dt.UTC),
        properties=props,
        collection="sentinel-2-l2a",
    )
    for key, values in dn.items():
        res = 20.0 if key == "scl" else 10.0
        path = write_band(folder / f"{item_id}_{key}.tif", values, left, top, res)
        href = str(path) if href_root is None else f"{href_root}/{path.relative_to(folder.parent)}"
        fields: dict = {"raster:bands": [{"scale": 0.0001, "offset": -0.1, "nodata": 0}]}
        if key in EARTH_SEARCH:
            name, common, um = EARTH_SEARCH[key]
            fields["eo:bands"] = [{"name": name, "common_name": common, "center_wavelength": um}]
        if key == "scl":
            fields = {"raster:bands": [{"nodata": 0}]}
        item.add_asset(
            key,
            pystac.Asset(
                href, media_type=pystac.MediaType.COG, roles=["data"], extra_fields=fields
            ),
        )
    return item


def save_collection(items: list[pystac.Item], path: Path) -> Path:
    path.write_text(json.dumps(pystac.ItemCollection(items).to_dict(transform_hrefs=False)))
    return path


def save_item(item: pystac.Item, path: Path) -> Path:
    path.write_text(json.dumps(item.to_dict(transform_hrefs=False)))
    return path
