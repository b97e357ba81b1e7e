"""Fake products laid out as the providers ship them, for the geodata tests.

Band files hold digital numbers chosen by the test, so that every expected reflectance can be
computed by hand: Sentinel-2 L1C granules, Level-2A ``.SAFE`` products (``IMG_DATA/R10m`` ...,
``MTD_MSIL2A.xml`` with its offsets), Landsat Collection 2 Level-2 folders.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS

from humanscape.geo.raster import GridSpec

ORIGIN = (500000.0, 5800000.0)
S2_10M = ("B02", "B03", "B04", "B08")


def grid(res: float, size: int, crs: int = 32633, origin=ORIGIN) -> GridSpec:
    return GridSpec(CRS.from_epsg(crs), Affine(res, 0, origin[0], 0, -res, origin[1]), size, size)


def s2_l1c_granule(folder: Path, day: str, dn: dict[str, np.ndarray], size_m: int = 320) -> Path:
    """``T33UUU_<day>T100000_<band>.tif`` per band; 10 m bands at 10 m, the others at 20 m."""
    folder.mkdir(parents=True, exist_ok=True)
    for band, values in dn.items():
        res = 10 if band in S2_10M else 20
        arr = _as_array(values, size_m // res)
        write_band(folder / f"T33UUU_{day}T100000_{band}.tif", arr, grid(res, size_m // res))
    return folder


def s2_l2a_safe(
    root: Path,
    day: str,
    dn: dict[str, np.ndarray],
    *,
    offset: int = -1000,
    baseline: str = "05.09",
    product_name: bool = True,
    size_m: int = 320,
) -> Path:
    """A Level-2A product: ``<name>.SAFE/GRANULE/<g>/IMG_DATA/R10m|R20m/..._B04_10m.tif`` + MTD.

    10 m bands are written at 10 m and (averaged) at 20 m too, as ESA does, so the reader must pick
    the finest. ``SCL`` is written at 20 m.
    """
    name = (
        f"S2B_MSIL2A_{day}T101329_N{baseline.replace('.', '')}_R022_T33UUU_{day}T112503.SAFE"
        if product_name
        else "my_download"
    )
    safe = root / name
    img = safe / "GRANULE" / f"L2A_T33UUU_A000001_{day}T101329" / "IMG_DATA"
    for band, values in dn.items():
        resolutions = (10, 20) if band in S2_10M else (20,)
        for res in resolutions:
            n = size_m // res
            arr = _as_array(values, size_m // 10 if band in S2_10M else n)
            if band in S2_10M and res == 20:
                arr = arr.reshape(n, 2, n, 2).mean((1, 3)).round().astype(arr.dtype)
            folder = img / f"R{res}m"
            folder.mkdir(parents=True, exist_ok=True)
            write_band(folder / f"T33UUU_{day}T101329_{band}_{res}m.tif", arr, grid(res, n))
    offsets = "\n".join(
        f'<BOA_ADD_OFFSET band_id="{i}">{offset}</BOA_ADD_OFFSET>' for i in range(13)
    )
    (safe / "MTD_MSIL2A.xml").write_text(
        f"""<?xml version="1.0" encoding="UTF-8"?>
<n1:Level-2A_User_Product xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-2A.xsd">
<n1:General_Info><Product_Info><PROCESSING_BASELINE>{baseline}</PROCESSING_BASELINE></Product_Info>
<Product_Image_Characteristics>
<QUANTIFICATION_VALUES_LIST><BOA_QUANTIFICATION_VALUE unit="none">10000</BOA_QUANTIFICATION_VALUE>
</QUANTIFICATION_VALUES_LIST>
<BOA_ADD_OFFSET_VALUES_LIST>{offsets}</BOA_ADD_OFFSET_VALUES_LIST>
</Product_Image_Characteristics></n1:General_Info></n1:Level-2A_User_Product>
"""
    )
    return safe


def landsat_c2_l2(folder: Path, day: str, dn: dict[str, np.ndarray], size: int = 12) -> Path:
    """``LC08_L2SP_044034_<day>_20230101_02_T1_SR_B4.TIF`` ... (30 m); QA_PIXEL without SR_."""
    folder.mkdir(parents=True, exist_ok=True)
    pid = f"LC08_L2SP_044034_{day}_20230101_02_T1"
    for band, values in dn.items():
        prefix = "" if band == "QA_PIXEL" else "SR_"
        write_band(folder / f"{pid}_{prefix}{band}.TIF", _as_array(values, size), grid(30, size))
    return folder


def write_band(path: Path, array: np.ndarray, where: GridSpec) -> Path:
    """One band as a provider ships it: plain GeoTIFF, no units, no scale, no nodata tag."""
    with rasterio.open(
        path, "w", driver="GTiff", width=where.width, height=where.height, count=1,
        dtype=array.dtype, crs=where.crs, transform=where.transform,
    ) as dst:  # fmt: skip
        dst.write(array, 1)
    return path


def _as_array(values, n: int) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim == 0:
        return np.full((n, n), arr, dtype=np.uint16)
    assert arr.shape == (n, n), (arr.shape, n)
    return arr
