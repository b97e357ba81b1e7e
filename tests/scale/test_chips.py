"""ChipMap's pixel path: which cells a chip's valid share lets through, and the chips it cuts."""

from __future__ import annotations

import numpy as np
import pytest
from rasterio.windows import Window

from humanscape.geo.raster import open_scene
from humanscape.scale.chips import ChipMap
from tests.conftest import make_band_folder


class ChipMeans:
    """A chip 'model' whose output is each chip's mean, so the cutting can be checked by hand."""

    bands = ["B04"]
    outputs = ("mean",)
    units = "reflectance"

    def __call__(self, chips: np.ndarray) -> np.ndarray:
        return np.nanmean(chips, axis=(2, 3))

    def token(self) -> str:
        return "chip means"


def _job(tmp_path, chip: int, stride: int) -> ChipMap:
    scene = open_scene(make_band_folder(tmp_path / "scene", size=8))
    return ChipMap(scene, ChipMeans(), chip=chip, stride=stride, min_valid=0.5)


def test_valid_share_of_side_by_side_chips_is_the_share_of_each_block(tmp_path):
    job = _job(tmp_path, chip=4, stride=4)
    mask = np.ones((8, 8), bool)
    mask[0:4, 0:3] = False  # 12 of the 16 pixels of cell (0, 0)
    mask[4:8, 7] = False  # 4 of cell (1, 1)
    share = job._valid_share(mask, 2, 2)
    np.testing.assert_allclose(share, [[4 / 16, 1.0], [1.0, 12 / 16]])


def test_valid_share_of_overlapping_chips_counts_each_chip_window(tmp_path):
    # chips of 6 px on 4 px cells: the read window is (2 - 1) * 4 + 6 = 10 px a side and cell
    # (i, j) sees mask[4i : 4i + 6, 4j : 4j + 6]
    job = _job(tmp_path, chip=6, stride=4)
    mask = np.ones((10, 10), bool)
    mask[4:6, 4:6] = False  # in all four chips
    mask[0, 0] = False  # only in chip (0, 0)
    mask[9, 0:6] = False  # last row of chips (1, .): 6 in chip (1, 0), 2 in (1, 1)
    share = job._valid_share(mask, 2, 2)
    np.testing.assert_allclose(share, [[(36 - 5) / 36, 32 / 36], [(36 - 10) / 36, 30 / 36]])


def test_a_tile_gives_each_cell_its_chip_mean_and_nan_below_min_valid(tmp_path):
    job = _job(tmp_path, chip=4, stride=4)
    band = job.scene.read(["B04"])[0]
    out = job.compute(Window(0, 0, 2, 2))
    assert out.shape == (1, 2, 2)
    for i in range(2):
        for j in range(2):
            block = band[4 * i : 4 * i + 4, 4 * j : 4 * j + 4]
            np.testing.assert_allclose(out[0, i, j], block.mean(), rtol=1e-6)
    # a 6 px chip on the 4 px cells reaches 1 px past the 8 px scene at every edge: the corner
    # cells' chips hold 5 x 5 = 25 of 36 valid pixels (0.69 >= 0.5), their means over those
    wide = _job(tmp_path / "w", chip=6, stride=4)
    out = wide.compute(Window(0, 0, 2, 2))
    np.testing.assert_allclose(out[0, 0, 0], band[0:5, 0:5].mean(), rtol=1e-6)
    np.testing.assert_allclose(out[0, 1, 1], band[3:8, 3:8].mean(), rtol=1e-6)
    strict = ChipMap(wide.scene, ChipMeans(), chip=6, stride=4, min_valid=0.7)
    assert np.isnan(strict.compute(Window(0, 0, 2, 2))).all()


def _tiny_cnn():
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(2, 4, 3, padding=1),
        torch.nn.BatchNorm2d(4),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
    )
    with torch.no_grad():  # batch-norm statistics that are not the identity
        net[1].running_mean.uniform_(-1, 1)
        net[1].running_var.uniform_(0.5, 2)
    return net.eval()


def test_onnx_and_torch_backends_agree_with_the_module_as_trained():
    import pickle

    import torch

    from humanscape.scale.chips import CpuNet

    net = _tiny_cnn()
    x = np.random.default_rng(0).normal(size=(5, 2, 8, 8)).astype(np.float32)
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    onnx, torch_net = CpuNet(net, "onnx"), CpuNet(net, "torch")
    np.testing.assert_allclose(onnx(x), want, atol=1e-5)
    np.testing.assert_allclose(torch_net(x), want, atol=1e-5)
    assert (onnx.used, torch_net.used) == ("onnx", "torch")
    # another batch size and another chip size reuse or rebuild the runtime
    np.testing.assert_allclose(onnx(x[:2]), want[:2], atol=1e-5)
    with torch.no_grad():
        wide = net(torch.from_numpy(np.tile(x, (1, 1, 2, 2)))).numpy()
    np.testing.assert_allclose(onnx(np.tile(x, (1, 1, 2, 2))), wide, atol=1e-5)
    # shipped to a worker: pickled without its runtime, rebuilt there on the first batch
    again = pickle.loads(pickle.dumps(onnx))
    assert again.used is None and not again._runs
    np.testing.assert_allclose(again(x), want, atol=1e-5)
    assert onnx.token() == "onnx" and torch_net.token() == "torch"


def test_auto_backend_falls_back_to_torch_for_a_module_onnx_cannot_export():
    import torch

    from humanscape.errors import HumanscapeError
    from humanscape.scale.chips import CpuNet

    class NumpyInside(torch.nn.Module):  # leaves the graph: torch.onnx cannot trace it
        def forward(self, x):
            return torch.from_numpy(np.asarray(x.sum(dim=(2, 3))) * 2)

    x = np.ones((2, 3, 4, 4), np.float32)
    auto = CpuNet(NumpyInside(), "auto")
    np.testing.assert_allclose(auto(x), np.full((2, 3), 32.0))
    assert auto.used == "torch"
    with pytest.raises(HumanscapeError, match="does not export to ONNX"):
        CpuNet(NumpyInside(), "onnx")(x)
    with pytest.raises(HumanscapeError, match="unknown inference backend"):
        CpuNet(NumpyInside(), "tensorrt")


def test_a_module_fx_cannot_trace_has_its_children_fused():
    import torch

    from humanscape.scale.chips import prepare_for_inference

    class Checked(torch.nn.Module):  # the shape check stops torch.fx tracing the whole module
        def __init__(self):
            super().__init__()
            self.backbone = _tiny_cnn()

        def forward(self, x):
            if x.shape[1] != 2:
                raise ValueError("two bands")
            return self.backbone(x)

    net = Checked().eval()
    ready = prepare_for_inference(net)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in ready.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())  # original untouched
    x = torch.from_numpy(np.random.default_rng(1).normal(size=(3, 2, 8, 8)).astype(np.float32))
    with torch.inference_mode():
        np.testing.assert_allclose(ready(x).numpy(), net(x).numpy(), atol=1e-5)
