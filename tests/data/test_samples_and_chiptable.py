import numpy as np
import pandas as pd
import pytest

from humanscape.data import samples
from humanscape.data.chiptable import read_chip, read_chip_table, write_chip_table
from humanscape.errors import EmptyInputError, HumanscapeError


def test_shipped_samples_load_ready_to_use():
    ms = samples.eurosat_ms()
    assert len(ms) == 200 and ms["pop_1km"].notna().all() and set(ms["label"]) == set(range(10))
    x = samples.read_eurosat_ms(ms.head(3), bands=["B04", "B08"])
    assert x.shape == (3, 2, 64, 64) and 0 < x.mean() < 1
    rgb = samples.eurosat_rgb()
    assert len(rgb) == 1000 and rgb.groupby("class").size().eq(100).all()
    county = samples.commuting_od("36093")
    assert sorted(f.name for f in county.glob("*.npy")) == [
        "adj.npy", "demos.npy", "dis.npy", "od.npy", "pois.npy"
    ]  # fmt: skip
    pop = samples.berlin_population()
    assert pop.data.shape == (5, 8, 16) and pop.grid.res == (1000.0, 1000.0)
    with pytest.raises(HumanscapeError, match="unknown county"):
        samples.commuting_od("99999")


def test_chip_table_roundtrip_and_errors(tmp_path):
    table = pd.DataFrame({"image": ["a.tif"], "pop": [3.0]})
    write_chip_table(table, tmp_path / "t.parquet")
    with pytest.raises(EmptyInputError, match="do not exist, first: .*a.tif"):
        read_chip_table(tmp_path / "t.parquet")
    back = read_chip_table(tmp_path / "t.parquet", check_files=False)
    assert back["image"][0] == str((tmp_path / "a.tif").resolve())
    with pytest.raises(HumanscapeError, match="no column 'population'"):
        read_chip_table(tmp_path / "t.parquet", required=["population"], check_files=False)


def test_read_chip_scales_integer_eurosat_chips_by_hand():
    import rasterio

    path = samples.eurosat_ms()["image"][0]
    chip = read_chip(path)
    with rasterio.open(path) as src:
        dn = src.read()
    assert chip.units == "reflectance" and chip.bands[:4] == ["B01", "B02", "B03", "B04"]
    assert chip.bands[-1] == "B8A"  # EuroSAT order: B01..B12, then B8A
    np.testing.assert_allclose(chip.data, dn.astype(np.float32) * np.float32(1e-4), rtol=1e-6)
