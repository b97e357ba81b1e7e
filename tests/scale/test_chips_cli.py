"""predict-chips: one pixel per chip, georeferenced, the encoder's embedding of that chip."""

from __future__ import annotations

import numpy as np
import rasterio
import torch
from affine import Affine
from click.testing import CliRunner
from rasterio.windows import Window

from humanscape.cli import cli
from humanscape.geo.raster import open_scene
from humanscape.models.embed import embed_array
from humanscape.models.encoder import Encoder
from humanscape.scale.chips import prepare_for_inference
from tests.conftest import make_band_folder


def _encoder(folder):
    torch.manual_seed(0)
    return Encoder("resnet18_half", ["B04", "B03", "B02"], [0.1] * 3, [0.05] * 3).save(folder)


def test_predict_chips_writes_each_chips_embedding_on_the_chip_grid(tmp_path):
    scene_dir = make_band_folder(tmp_path / "scene", size=40)
    enc = _encoder(tmp_path / "enc")
    out = tmp_path / "grid.tif"
    args = ["predict-chips", str(scene_dir), "--encoder", str(enc), "--chip", "16"]
    result = CliRunner().invoke(cli, [*args, "--workers", "0", "--out", str(out)])
    assert result.exit_code == 0, result.output
    scene = open_scene(scene_dir)
    encoder = Encoder.load(enc)
    with rasterio.open(out) as src:
        grid = src.read()
        assert src.transform == scene.transform * Affine.scale(16)
        assert (src.width, src.height) == (3, 3)  # ceil(40 / 16): edge cells reach past the scene
        assert src.tags()["units"] == "embedding"
    assert grid.shape[0] == encoder.num_features
    # cell (1, 0): the 16 x 16 chip at rows 16-31, columns 0-15, embedded by hand
    chip = scene.read(["B04", "B03", "B02"], Window(0, 16, 16, 16))[None]
    np.testing.assert_allclose(grid[:, 1, 0], embed_array(encoder, chip)[0], rtol=1e-4, atol=1e-5)
    # the right edge column has half its chip inside (8 of 16 columns): predicted;
    # the corner has a quarter inside, below --min-valid 0.5: NaN
    assert np.isfinite(grid[:, 0, 2]).all() and np.isnan(grid[:, 2, 2]).all()
    # the conv-bn folded, channels-last copy agrees with the encoder as trained
    ready = prepare_for_inference(encoder.backbone)
    x = torch.rand(2, 3, 32, 32)
    with torch.inference_mode():
        np.testing.assert_allclose(ready(x).numpy(), encoder.backbone(x).numpy(), atol=1e-5)


def test_predict_chips_on_two_workers_matches_one_process(tmp_path):
    scene_dir = make_band_folder(tmp_path / "scene", size=40)
    enc = _encoder(tmp_path / "enc")
    base = ["predict-chips", str(scene_dir), "--encoder", str(enc), "--chip", "8", "--tile", "2"]
    runner = CliRunner()
    assert (
        runner.invoke(cli, [*base, "--workers", "0", "-o", str(tmp_path / "a.tif")]).exit_code == 0
    )
    two = runner.invoke(cli, [*base, "--workers", "2", "-o", str(tmp_path / "b.tif")])
    assert two.exit_code == 0, two.output
    with rasterio.open(tmp_path / "a.tif") as a, rasterio.open(tmp_path / "b.tif") as b:
        np.testing.assert_allclose(a.read(), b.read(), rtol=1e-5, atol=1e-6)
        assert a.shape == (5, 5)
