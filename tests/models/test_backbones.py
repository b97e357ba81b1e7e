import pytest
import torch

from humanscape.errors import HumanscapeError
from humanscape.models.backbones import PAPER_BACKBONES, Backbone, samescale_weight, widen_backbone


@pytest.mark.parametrize("name", [*PAPER_BACKBONES, "resnet18_half"])
def test_every_backbone_builds_for_3_4_13_bands(name):
    torch.manual_seed(0)
    for bands, adapter in ((3, "native"), (4, "native"), (13, "native"), (13, "conv1x1")):
        model = Backbone(name, bands, adapter).eval()
        with torch.no_grad():
            out = model(torch.randn(2, bands, 32, 32))
        assert out.shape == (2, model.num_features) and torch.isfinite(out).all()
    with torch.no_grad():
        multi = model.multiscale(torch.randn(2, 13, 32, 32))
    assert multi.shape == (2, model.multiscale_features) and torch.isfinite(multi).all()


def test_conv1x1_adapter_maps_bands_to_rgb_in_front():
    model = Backbone("resnet18_half", 13, "conv1x1")
    assert model.stem.in_channels == 13 and model.stem.out_channels == 3
    assert model.body.conv1.in_channels == 3


def test_samescaled_widening_keeps_the_response_to_band_constant_input():
    torch.manual_seed(1)
    rgb = Backbone("resnet18_half", 3).eval()
    wide = widen_backbone(rgb, 13, rgb_index=(3, 2, 1)).eval()
    grey = torch.rand(4, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(
            rgb(grey.repeat(1, 3, 1, 1)), wide(grey.repeat(1, 13, 1, 1)), atol=1e-5, rtol=1e-4
        )
    w3 = rgb.body.conv1.weight
    w13 = wide.body.conv1.weight
    torch.testing.assert_close(w13[:, 3], w3[:, 0] * 3 / 13)  # red keeps its filter, scaled by 3/N
    torch.testing.assert_close(
        w13[:, 0], w3.mean(1) * 3 / 13
    )  # an extra band gets the mean RGB filter


def test_samescale_weight_rejects_bad_shapes():
    with pytest.raises(HumanscapeError, match="3-band weight"):
        samescale_weight(torch.zeros(8, 4, 3, 3), 13)
    with pytest.raises(HumanscapeError, match="does not fit"):
        samescale_weight(torch.zeros(8, 3, 3, 3), 4, rgb_index=(0, 1, 7))


def test_unknown_backbone_and_wrong_input_are_refused():
    with pytest.raises(HumanscapeError, match="unknown backbone 'resnet19'"):
        Backbone("resnet19", 3)
    with pytest.raises(HumanscapeError, match=r"expects \(batch, 4, H, W\)"):
        Backbone("resnet18_half", 4)(torch.zeros(1, 3, 32, 32))


def test_quarter_turns_are_torch_rot90_written_so_that_onnx_exports_them():
    import torch

    from humanscape.models.heads import quarter_turns

    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)
    turns = quarter_turns(x)
    for k in range(4):
        assert torch.equal(turns[k], torch.rot90(x, k, dims=(2, 3)))
    # by hand: one quarter turn of [[0, 1], [2, 3]] (counter-clockwise, as rot90) is [[1, 3], [0, 2]]
    small = torch.tensor([[0.0, 1.0], [2.0, 3.0]])[None, None]
    assert quarter_turns(small)[1][0, 0].tolist() == [[1.0, 3.0], [0.0, 2.0]]
