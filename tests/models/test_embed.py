"""Encoder persistence, embeddings of arrays / chip tables / regions, and the mismatches refused."""

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from rasterio.windows import Window

from humanscape.cli import cli
from humanscape.data import samples
from humanscape.data.chips import chip_scene
from humanscape.errors import HumanscapeError
from humanscape.geo.grid import regular_grid
from humanscape.models.embed import (
    embed_array,
    embed_chip_table,
    embed_regions,
    read_chip_for,
    region_tiles,
)
from humanscape.models.encoder import Encoder
from humanscape.models.registry import load_encoder

S2 = ["B02", "B03", "B04", "B08"]


@pytest.fixture(scope="module")
def ms_encoder():
    torch.manual_seed(0)
    return Encoder("resnet18_half", S2, [0.1] * 4, [0.05] * 4).eval()


def test_save_load_roundtrip_reproduces_embeddings(tmp_path, ms_encoder):
    x = np.random.default_rng(0).random((3, 4, 32, 32)).astype(np.float32) * 0.3
    folder = ms_encoder.save(tmp_path / "enc")
    loaded = load_encoder(folder)
    assert loaded.bands == S2 and loaded.config()["mean"] == pytest.approx([0.1] * 4)
    np.testing.assert_allclose(
        embed_array(loaded, x), embed_array(ms_encoder, x), rtol=1e-5, atol=1e-6
    )
    (folder / "model.safetensors").write_bytes((folder / "model.safetensors").read_bytes()[:100])
    with pytest.raises(Exception, match="model.safetensors|header|deserialize"):
        load_encoder(folder)


def test_embedding_recipe_input_scale_and_multiscale_pooling_roundtrip(tmp_path):
    torch.manual_seed(0)
    enc = Encoder(
        "resnet18_half", S2, [0.1] * 4, [0.05] * 4, input_scale=2, pooling="multiscale"
    ).eval()
    assert enc.num_features == 64 + 128 + 256  # last three stages of resnet18_half
    x = np.random.default_rng(0).random((3, 4, 32, 32)).astype(np.float32) * 0.3
    emb = embed_array(enc, x)
    assert emb.shape == (3, 448)
    # the recipe is part of the encoder: 2x input is what the backbone sees
    xt = enc.normalize(torch.as_tensor(x))
    up = torch.nn.functional.interpolate(xt, scale_factor=2, mode="bilinear", align_corners=False)
    with torch.no_grad():
        np.testing.assert_allclose(emb, enc.backbone.multiscale(up).numpy(), rtol=1e-5, atol=1e-6)
    plain = enc.plain()
    assert plain.backbone is enc.backbone and plain.num_features == 256
    with torch.no_grad():
        np.testing.assert_allclose(
            embed_array(plain, x), enc.backbone(xt).numpy(), rtol=1e-5, atol=1e-6
        )
    loaded = load_encoder(enc.save(tmp_path / "enc"))
    assert (loaded.input_scale, loaded.pooling) == (2.0, "multiscale")
    np.testing.assert_allclose(embed_array(loaded, x), emb, rtol=1e-5, atol=1e-6)
    rot = Encoder(
        "resnet18_half", S2, [0.1] * 4, [0.05] * 4, pooling="multiscale", orientations=8
    ).eval()
    rot.load_state_dict(enc.state_dict())
    turned = np.rot90(x, 1, axes=(2, 3)).copy()
    np.testing.assert_allclose(embed_array(rot, turned), embed_array(rot, x), rtol=1e-4, atol=1e-5)
    assert not np.allclose(embed_array(enc, turned), emb, atol=1e-3)  # without averaging: differs
    assert load_encoder(rot.save(tmp_path / "rot")).orientations == 8
    with pytest.raises(HumanscapeError, match="orientations must be 1, 4 or 8"):
        Encoder("resnet18_half", S2, [0.1] * 4, [0.05] * 4, orientations=2)
    with pytest.raises(HumanscapeError, match="unknown pooling 'max'"):
        Encoder("resnet18_half", S2, [0.1] * 4, [0.05] * 4, pooling="max")


def test_weights_that_do_not_fit_the_config_are_refused(tmp_path, ms_encoder):
    folder = ms_encoder.save(tmp_path / "enc")
    other = Encoder("resnet18_half", ["B02", "B03", "B04"], [0.1] * 3, [0.05] * 3)
    other.save(tmp_path / "three")
    (folder / "model.safetensors").write_bytes(
        (tmp_path / "three" / "model.safetensors").read_bytes()
    )
    with pytest.raises(HumanscapeError, match="weights do not fit a resnet18_half with 4 bands"):
        Encoder.load(folder)


def test_band_count_mismatch_is_refused(ms_encoder):
    with pytest.raises(HumanscapeError, match="images have 13 bands, encoder takes 4"):
        embed_array(ms_encoder, np.zeros((1, 13, 32, 32), np.float32))


def test_unknown_encoder_name_lists_the_shipped_ones():
    with pytest.raises(HumanscapeError, match="unknown encoder 'nope'"):
        load_encoder("nope")


def test_chip_bands_are_matched_by_name_and_missing_ones_refused(tmp_path, ms_encoder):
    from humanscape.geo.grid import CellGrid, GridSpec

    def corner(s):  # four 320 m cells in the scene's top-left corner
        return CellGrid(GridSpec(s.grid.crs, s.grid.transform, 64, 64), 32)

    scene = samples.berlin_scene(bands=["B08", "B04", "B03", "B02", "B11"])
    table = chip_scene(scene, corner(scene), tmp_path / "chips", progress=False)
    chip = read_chip_for(ms_encoder, tmp_path / "chips" / table["image"][0])
    direct = scene.read(S2, window=Window(0, 0, 32, 32))
    np.testing.assert_allclose(chip, direct)  # reordered to the encoder's band order
    narrow = samples.berlin_scene(bands=["B04", "B03"])
    t2 = chip_scene(narrow, corner(narrow), tmp_path / "narrow", progress=False)
    with pytest.raises(HumanscapeError, match="lack the encoder's bands B02, B08"):
        read_chip_for(ms_encoder, tmp_path / "narrow" / t2["image"][0])


def test_embed_chip_table_of_real_eurosat_ms_chips(tmp_path, ms_encoder):
    ms = samples.eurosat_ms().head(5)
    ms[["image", "class"]].to_csv(tmp_path / "t.csv", index=False)
    frame = embed_chip_table(tmp_path / "t.csv", ms_encoder, batch_size=2, progress=False)
    assert frame.shape == (5, 1 + ms_encoder.num_features) and frame["id"].iloc[0].endswith(".tif")
    chips = np.stack([read_chip_for(ms_encoder, p) for p in ms["image"]])
    assert chips.max() < 1.5  # DN scaled to reflectance
    np.testing.assert_allclose(
        frame.filter(like="e").to_numpy(), embed_array(ms_encoder, chips), rtol=1e-4, atol=1e-5
    )


def test_images_of_different_sizes_in_one_batch_are_refused(tmp_path):
    enc = Encoder("resnet18_half", ["red", "green", "blue"], [100] * 3, [50] * 3, units="rgb8")
    Image.new("RGB", (32, 32)).save(tmp_path / "a.jpg")
    Image.new("RGB", (40, 40)).save(tmp_path / "b.jpg")
    pd.DataFrame({"image": ["a.jpg", "b.jpg"]}).to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(HumanscapeError, match=r"b.jpg: chips of different sizes in one batch"):
        embed_chip_table(tmp_path / "t.csv", enc, progress=False)
    assert len(embed_chip_table(tmp_path / "t.csv", enc, batch_size=1, progress=False)) == 2


def test_jpeg_chips_need_an_rgb8_encoder(tmp_path, ms_encoder):
    Image.new("RGB", (32, 32)).save(tmp_path / "a.jpg")
    with pytest.raises(
        HumanscapeError,
        match=r"a.jpg: chip holds 8-bit RGB display values, but the encoder takes 4 bands of reflectance",
    ):
        read_chip_for(ms_encoder, tmp_path / "a.jpg")


def test_reflectance_chips_are_refused_by_an_rgb8_encoder(tmp_path):
    # 13-band reflectance chips used to be matched by role (red -> B04) and fed as 0..255 values,
    # giving every class nearly the same vector
    rgb = Encoder("resnet18_half", ["red", "green", "blue"], [100] * 3, [50] * 3, units="rgb8")
    ms_chip = samples.eurosat_ms()["image"][0]
    with pytest.raises(
        HumanscapeError, match=r"chip holds reflectance, but the encoder takes 3 bands of 8-bit"
    ):
        read_chip_for(rgb, ms_chip)


def test_region_embeddings_are_mean_and_std_over_tiles(ms_encoder):
    import geopandas as gpd
    from shapely.geometry import box

    scene = samples.berlin_scene(bands=S2)
    left, bottom, right, top = scene.grid.bounds
    regions = gpd.GeoDataFrame(
        {"id": ["a", "b"]},
        geometry=[
            box(left, top - 640, left + 640, top),
            box(left + 1000, top - 1300, left + 1600, top - 700),
        ],
        crs=scene.crs,
    ).to_crs(4326)
    tiles = region_tiles(scene, regions, S2, size=32)
    assert len(tiles["a"]) == 4 and len(tiles["b"]) >= 4
    frame = embed_regions(ms_encoder, tiles)
    emb = embed_array(ms_encoder, tiles["a"])
    row = frame.set_index("id").loc["a"]
    assert row["n_tiles"] == 4
    np.testing.assert_allclose(
        row.filter(like="mean_e").to_numpy(float), emb.mean(0), rtol=1e-4, atol=1e-6
    )
    np.testing.assert_allclose(
        row.filter(like="std_e").to_numpy(float), emb.std(0), rtol=1e-3, atol=1e-5
    )


def test_cli_embed_writes_parquet_and_refuses_missing_images(tmp_path, ms_encoder):
    folder = ms_encoder.save(tmp_path / "enc")
    scene = samples.berlin_scene(bands=S2)
    chip_scene(scene, regular_grid(scene.grid, 2560), tmp_path / "chips", progress=False)
    runner = CliRunner()
    out = tmp_path / "emb.parquet"
    result = runner.invoke(
        cli,
        [
            "embed",
            str(tmp_path / "chips" / "chips.csv"),
            "--encoder",
            str(folder),
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    frame = pd.read_parquet(out)
    assert list(frame.columns[:2]) == ["id", "e000"] and len(frame) == 18
    pd.DataFrame({"image": ["missing.tif"]}).to_csv(tmp_path / "bad.csv", index=False)
    result = runner.invoke(
        cli,
        [
            "embed",
            str(tmp_path / "bad.csv"),
            "--encoder",
            str(folder),
            "--out",
            str(tmp_path / "x.parquet"),
        ],
    )
    assert result.exit_code == 2 and "bad.csv: 1 chip image(s) do not exist" in result.output
    assert not (tmp_path / "x.parquet").exists()


def test_batch_size_follows_the_memory_budget_by_hand():
    from humanscape.models.embed import BATCH_BUDGET, batch_for
    from humanscape.models.registry import load_encoder

    encoder = load_encoder("simclr_resnet18half_eurosat_ms")
    assert (encoder.orientations, encoder.input_scale, encoder.backbone.num_features) == (4, 2, 256)
    # 300 px chip (nbr 3 of 1 km cells): 4 views x 600 x 600 px x 256 bytes = 368.6 MB a chip
    assert batch_for(encoder, (300, 300)) == BATCH_BUDGET // (4 * 600 * 600 * 256) == 2
    # 64 px chips: 4 x 128 x 128 x 256 = 16.8 MB -> 64 a batch within 1 GiB
    assert batch_for(encoder, (64, 64)) == 2**30 // (4 * 128 * 128 * 256) == 64
    assert batch_for(encoder, (300, 300), budget=1) == 1  # never below one chip


def test_readme_chain_embeds_300_px_chips_under_2_gb(tmp_path):
    # the README's chip -> embed chain once took 22 GB (batch 128 of 300 px chips) and was killed
    import subprocess
    import sys

    from humanscape.data.chips import chip_scene
    from humanscape.data.samples import sample_path
    from humanscape.geo.grid import CellGrid, GridSpec
    from humanscape.geo.raster import open_scene

    scene = open_scene(sample_path("berlin", "IMG_DATA"))
    corner = GridSpec(scene.grid.crs, scene.grid.transform, 300, 200)  # 6 cells of 1 km
    chip_scene(scene, CellGrid(corner, 100), tmp_path / "chips", neighbors=3, progress=False)
    code = (
        # the child prints its own peak, VmHWM of /proc/self/status (kB). Not ru_maxrss: Linux
        # carries it over from the forking parent (this pytest process, 3 GB late in the suite)
        "import atexit, re\n"
        "hwm = lambda: re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)\n"
        "atexit.register(lambda: print('peak', hwm()))\n"
        "from humanscape.cli import main\nmain()"
    )
    cmd = [sys.executable, "-c", code, "embed", str(tmp_path / "chips" / "chips.csv")]
    cmd += ["--encoder", "simclr_resnet18half_eurosat_ms", "--out", str(tmp_path / "e.parquet")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "wrote 6 embeddings" in done.stdout
    peak_kb = int(done.stdout.split("peak")[-1])
    assert peak_kb < 2 * 1024**2, f"peak RSS {peak_kb / 1024:.0f} MB"
