"""STAC input (issue 24): items, item collections and static catalogs read as scenes, the
Sentinel-2 offset decided once, tiles of a date mosaicked, range reads over HTTP."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import threading
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio

from humanscape.errors import HumanscapeError, MissingBandError
from humanscape.geo.inputs import SceneReader, open_scene, stac_scenes
from humanscape.geo.radiometry import to_reflectance
from humanscape.geo.stac import read_items, s2_offset
from tests.stac_helpers import make_item, save_collection, write_band


def bare_item(**properties) -> pystac.Item:
    when = properties.pop("when", dt.datetime(2023, 6, 1, tzinfo=dt.UTC))
    item_id = properties.pop("item_id", "S2A_T33UUU_20230601_0_L2A")
    return pystac.Item(item_id, None, None, when, {"platform": "sentinel-2a"} | properties)


# --- the offset, decided once ------------------------------------------------------------------


def test_the_l2a_offset_follows_the_baseline_and_the_earth_search_flag():
    old, new = dt.datetime(2021, 6, 1, tzinfo=dt.UTC), dt.datetime(2023, 6, 1, tzinfo=dt.UTC)
    cases = [
        ({"s2:processing_baseline": "03.01"}, 0.0),
        ({"s2:processing_baseline": "04.00"}, -1000.0),
        ({"s2:processing_baseline": "05.10", "earthsearch:boa_offset_applied": True}, 0.0),
        ({"s2:processing_baseline": "05.10", "earthsearch:boa_offset_applied": False}, -1000.0),
        ({"s2:processing_baseline": "03.00", "earthsearch:boa_offset_applied": False}, 0.0),
        ({"when": old}, 0.0),  # no baseline: the date says before 04.00
        ({"when": new}, -1000.0),
        ({"item_id": "S2B_MSIL2A_20230101T101329_N0509_R022_T33UUU_20230101T120000"}, -1000.0),
        ({"item_id": "S2B_MSIL2A_20230101T101329_N0301_R022_T33UUU_20230101T120000"}, 0.0),
    ]
    for props, offset in cases:
        decision = s2_offset(bare_item(**props))
        assert decision.offset_dn == offset, (props, decision)
    assert s2_offset(bare_item(item_id="X_N0509_Y")).baseline == "05.09"
    assert "boa_offset_applied true" in s2_offset(bare_item(**cases[2][0])).reason


@pytest.mark.parametrize(
    ("props", "stored", "expected"),
    [
        ({"s2:processing_baseline": "04.00"}, 1500, 0.05),  # (1500 - 1000) * 1e-4
        ({"s2:processing_baseline": "04.00", "earthsearch:boa_offset_applied": True}, 500, 0.05),
        ({"s2:processing_baseline": "03.01"}, 500, 0.05),
    ],
)
def test_an_item_reads_as_reflectance_with_the_offset_applied_once(
    tmp_path, props, stored, expected
):
    dn = np.full((8, 8), stored)
    item = make_item(
        tmp_path / "a", "S2A_1", dt.date(2023, 5, 1), {"red": dn, "nir": dn}, properties=props
    )
    path = tmp_path / "item.json"
    path.write_text(json.dumps(item.to_dict(transform_hrefs=False)))
    scene = open_scene(str(path))
    assert scene.sensor.name == "sentinel2_l2a" and scene.date == dt.date(2023, 5, 1)
    assert scene.band_names == ["B04", "B08"]
    data = scene.read()
    # the raster:bands offset (-0.1) is not added on top: 0.05, never -0.05
    assert np.allclose(data, expected, atol=1e-7)
    source = scene.sources[0]
    assert source.radiometry.scale == pytest.approx(1e-4)
    # the item's raster:bands offset (-0.1) agrees with the decision only for 04.00 unflagged
    agrees = props == {"s2:processing_baseline": "04.00"}
    assert ("raster:bands offset -0.1 not used" in source.radiometry.source) is not agrees


def test_assets_match_bands_by_name_key_and_wavelength(tmp_path):
    dn = np.full((4, 4), 1100)
    item = make_item(
        tmp_path / "a", "S2A_2", dt.date(2023, 5, 1),
        {"blue": dn, "red": dn, "rededge1": dn, "nir": dn, "B11": dn, "scl": np.full((2, 2), 4)},
    )  # fmt: skip
    path = tmp_path / "item.json"
    path.write_text(json.dumps(item.to_dict(transform_hrefs=False)))
    scene = open_scene(str(path))
    # rededge1 by its wavelength (0.704 um -> B05), B11 by its key, scl by its key
    assert scene.band_names == ["B02", "B04", "B05", "B08", "B11", "SCL"]
    assert scene.grid.res == (10.0, 10.0)
    assert scene.read(["SCL"], reflectance=True).ravel().tolist() == [4.0] * 16  # never scaled
    only = open_scene(str(path), bands=["nir", "red"])
    assert only.band_names == ["B08", "B04"]
    with pytest.raises(MissingBandError, match=r"no asset for band B12 \(it has B02, B04, B05"):
        open_scene(str(path), bands=["B12"])


def test_collections_keep_repeated_items_once_and_catalogs_are_walked(tmp_path):
    dn = np.full((4, 4), 1200)
    items = [
        make_item(tmp_path / "data", f"S2A_{k}", dt.date(2023, 5, 1 + k), {"red": dn})
        for k in range(3)
    ]
    collection = save_collection([*items, items[1]], tmp_path / "search.json")  # page overlap
    assert [i.id for i in read_items(collection)] == ["S2A_0", "S2A_1", "S2A_2"]
    catalog = pystac.Catalog("c", "test catalog")
    for item in items:
        catalog.add_item(item.clone())
    catalog.normalize_hrefs(str(tmp_path / "catalog"))
    catalog.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    scenes = stac_scenes(tmp_path / "catalog" / "catalog.json")
    assert [s.date for s in scenes] == [dt.date(2023, 5, 1 + k) for k in range(3)]
    assert np.allclose(scenes[2].read(), 0.02)
    with pytest.raises(HumanscapeError, match="holds 3 dates"):
        open_scene(str(collection))


def test_tiles_of_a_date_are_mosaicked_and_other_crs_refused(tmp_path):
    rng = np.random.default_rng(0)
    tiles = {(r, c): rng.integers(1001, 5000, (16, 16)) for r in range(2) for c in range(2)}
    items = [
        make_item(tmp_path / "d", f"S2A_{r}{c}", dt.date(2023, 5, 1), {"red": dn},
                  left=500_000.0 + 160 * c, top=5_800_000.0 - 160 * r)
        for (r, c), dn in tiles.items()
    ]  # fmt: skip
    scene = open_scene(str(save_collection(items, tmp_path / "tiles.json")))
    whole = np.block([[tiles[0, 0], tiles[0, 1]], [tiles[1, 0], tiles[1, 1]]])
    assert scene.grid.shape == (32, 32)
    assert np.array_equal(scene.read()[0], to_reflectance(whole, 1e-4, -0.1))  # DN * s + o
    assert np.allclose(scene.read()[0], (whole - 1000) * 1e-4, atol=1e-7)
    other = items[0].clone()
    other.id = "S2A_other"
    with rasterio.open(other.assets["red"].href) as src:
        profile, data = src.profile | {"crs": "EPSG:32632"}, src.read()
    moved = tmp_path / "moved.tif"
    with rasterio.open(moved, "w", **profile) as dst:
        dst.write(data)
    other.assets["red"].href = str(moved)
    with pytest.raises(HumanscapeError, match="different CRSs .*EPSG:32633.*EPSG:32632.*refused"):
        open_scene(str(save_collection([items[0], other], tmp_path / "mixed.json")))


# --- over HTTP: range reads through /vsicurl/, bit-identical composite ------------------------


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """A static file server that answers HTTP range requests (what GDAL's /vsicurl/ sends) and
    records every request."""

    log: list[tuple[str, str, str | None]] = []

    def log_message(self, *args) -> None:  # quiet
        pass

    def send_head(self):
        RangeHandler.log.append((self.command, self.path, self.headers.get("Range")))
        spec = self.headers.get("Range")
        path = Path(self.translate_path(self.path))
        if spec is None or not path.is_file():
            return super().send_head()
        data = path.read_bytes()
        start_text, _, end_text = spec.removeprefix("bytes=").partition("-")
        start = int(start_text)
        end = min(int(end_text) if end_text else len(data) - 1, len(data) - 1)
        body = data[start : end + 1]
        self.send_response(206)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        import io

        return io.BytesIO(body)


@pytest.fixture
def served(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    handler = lambda *a, **k: RangeHandler(*a, directory=str(root), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    RangeHandler.log = []
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_16_item_collection_over_http_composites_bit_for_bit_as_on_disk(
    tmp_path, served, monkeypatch
):
    from humanscape.geo.composite import CloudMask
    from humanscape.tasks.geodata.workflow import write_composite

    monkeypatch.setenv("GDAL_DISABLE_READDIR_ON_OPEN", "EMPTY_DIR")
    root, url = served
    rng = np.random.default_rng(1)
    local, remote = [], []
    for day in range(4):
        for r in range(2):
            for c in range(2):
                dn = {
                    k: rng.integers(1001, 4000, (32, 32)) for k in ("blue", "green", "red", "nir")
                }
                dn["scl"] = np.where(rng.random((16, 16)) < 0.2, 9, 4)  # 20 % cloud (class 9)
                kw = dict(left=500_000.0 + 320 * c, top=5_800_000.0 - 320 * r)
                item_id = f"S2A_{day}{r}{c}"
                when = dt.date(2023, 5, 1 + 5 * day)
                local.append(make_item(root / "d", item_id, when, dn, **kw))
                remote.append(make_item(root / "d", item_id, when, dn, href_root=url, **kw))
    on_disk = save_collection(local, tmp_path / "local.json")
    over_http = save_collection(remote, root / "search.json")
    reader = SceneReader()
    write_composite([str(on_disk)], tmp_path / "disk.tif", reader, cloud_mask=CloudMask("scl"))
    RangeHandler.log = []
    write_composite(
        [f"{url}/search.json"], tmp_path / "http.tif", reader, cloud_mask=CloudMask("scl")
    )
    with rasterio.open(tmp_path / "disk.tif") as a, rasterio.open(tmp_path / "http.tif") as b:
        assert a.count == b.count and a.shape == (64, 64)
        assert np.array_equal(a.read(), b.read(), equal_nan=True)
    gets = [r for m, p, r in RangeHandler.log if m == "GET" and p.endswith(".tif")]
    # GDAL fetched every band file by byte ranges (after a HEAD for its size), never whole
    assert len(gets) >= 16 * 5 and all(r is not None and r.startswith("bytes=") for r in gets)
    assert over_http.exists()


def test_an_unreachable_href_is_one_error_naming_it(tmp_path, served):
    _, url = served
    item = make_item(tmp_path / "a", "S2A_9", dt.date(2023, 5, 1), {"red": np.full((4, 4), 1100)})
    item.assets["red"].href = f"{url}/missing/S2A_9_red.tif"
    path = tmp_path / "item.json"
    path.write_text(json.dumps(item.to_dict(transform_hrefs=False)))
    with pytest.raises(HumanscapeError, match="missing/S2A_9_red.tif"):
        SceneReader().open(str(path))


# --- the offset from file tags (local GeoTIFFs that carry their product's metadata) ------------


@pytest.mark.parametrize(
    ("tags", "sensor", "expected"),
    [
        ({"PROCESSING_BASELINE": "03.01"}, "sentinel2_l2a", 0.15),  # the table's -0.1 not used
        ({"PROCESSING_BASELINE": "04.00"}, "sentinel2_l2a_pre0400", 0.05),
        (
            {"BOA_ADD_OFFSET": "-1000", "BOA_QUANTIFICATION_VALUE": "10000"},
            "sentinel2_l2a_pre0400",
            0.05,
        ),
        ({"RADIO_ADD_OFFSET": "0"}, "sentinel2_l1c_n0400", 0.15),
        ({}, "sentinel2_l2a", 0.05),  # no tag: the sensor table (baseline 04.00+)
    ],
)
def test_file_tags_decide_the_offset_once(tmp_path, tags, sensor, expected):
    path = write_band(
        tmp_path / "T33UUU_20230601_B04.tif", np.full((4, 4), 1500), 500_000, 5_800_000
    )
    with rasterio.open(path, "r+") as ds:
        ds.update_tags(**tags)
    scene = open_scene(path, sensor=sensor)
    assert np.allclose(scene.read(), expected, atol=1e-7)  # 1500 * 1e-4 + offset * 1e-4
    source = scene.sources[0].radiometry.source
    assert source.startswith("file tag") if tags else source.startswith("sensor table")


def test_a_landsat_item_uses_its_raster_scale_and_offset(tmp_path):
    from tests.stac_helpers import save_item

    item = make_item(tmp_path / "l", "LC08_1", dt.date(2021, 7, 1), {"red": np.full((4, 4), 10000)})
    item.properties = {"platform": "landsat-8"}
    item.collection_id = "landsat-c2-l2"
    item.assets["red"].extra_fields["raster:bands"] = [{"scale": 2.75e-5, "offset": -0.2}]
    item.assets["red"].extra_fields["eo:bands"] = [{"name": "OLI_B4", "common_name": "red"}]
    scene = open_scene(str(save_item(item, tmp_path / "item.json")))
    assert scene.sensor.name == "landsat8_oli" and scene.band_names == ["B4"]
    # 10000 * 2.75e-5 - 0.2 = 0.075
    assert np.allclose(scene.read(), 0.075, atol=1e-6)
    assert scene.sources[0].radiometry.source == "STAC raster:bands scale/offset"


def test_a_landsat_asset_without_scale_metadata_takes_the_units_the_user_gives(tmp_path):
    from tests.stac_helpers import save_item

    item = make_item(tmp_path / "l", "LC08_1", dt.date(2021, 7, 1), {"red": np.full((4, 4), 10000)})
    item.properties = {"platform": "landsat-8"}
    item.collection_id = "landsat-c2-l2"
    item.assets["red"].extra_fields = {"eo:bands": [{"name": "OLI_B4", "common_name": "red"}]}
    path = str(save_item(item, tmp_path / "item.json"))
    with pytest.raises(HumanscapeError, match=r"--pixel-units dn to use the landsat8_oli table"):
        open_scene(path)
    # digital numbers by the sensor table: 10000 * 2.75e-5 - 0.2 = 0.075
    assert np.allclose(open_scene(path, units="dn").read(), 0.075, atol=1e-6)
    assert np.allclose(open_scene(path, units="reflectance").read(), 10000.0)


def test_a_flag_that_says_removed_is_doubted_when_blue_never_drops_below_1000(tmp_path):
    from tests.stac_helpers import save_item

    props = {"s2:processing_baseline": "05.10", "earthsearch:boa_offset_applied": True}
    for name, blue, doubted in (("dark", 400, False), ("bright", 1300, True)):
        dn = {"blue": np.full((8, 8), blue), "red": np.full((8, 8), 1500)}
        item = make_item(tmp_path / name, f"S2A_{name}", dt.date(2023, 5, 1), dn, properties=props)
        scene = open_scene(str(save_item(item, tmp_path / f"{name}.json")))
        source = scene.sources[0].radiometry.source
        assert ("doubted: the darkest 1 % of B02 is 1300 DN" in source) is doubted, source
        # the decision stays (offset 0): a bright scene can look the same
        assert np.allclose(scene.read(["B02"]), blue * 1e-4, atol=1e-7)
