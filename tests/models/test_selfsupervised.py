"""SimCLR, DeepCluster and random features on tiny real samples (shipped EuroSAT chips)."""

import numpy as np
import pytest
import torch
from PIL import Image

from humanscape.data import samples
from humanscape.errors import HumanscapeError
from humanscape.models.augment import SatelliteAugment
from humanscape.models.deepcluster import DeepCluster, IndexDataset, nmi_between_epochs
from humanscape.models.encoder import Encoder
from humanscape.models.random_features import RandomConvFeatures
from humanscape.models.simclr import SimCLR, nt_xent_loss
from humanscape.models.training import fit_module


@pytest.fixture(scope="module")
def rgb_sample():
    table = samples.eurosat_rgb()
    table = table.groupby("class").head(6)  # 60 real chips, 6 per class
    images = np.stack(
        [np.asarray(Image.open(p).convert("RGB")).transpose(2, 0, 1) for p in table["image"]]
    )
    return images[:, :, ::2, ::2].astype(np.float32), table["label"].to_numpy()  # 32 x 32 for speed


def tiny_encoder(images: np.ndarray) -> Encoder:
    torch.manual_seed(0)
    return Encoder(
        "resnet18_half",
        ["red", "green", "blue"],
        images.mean((0, 2, 3)),
        images.std((0, 2, 3)),
        units="rgb8",
    )


def test_nt_xent_is_low_for_matching_views_and_high_for_random():
    torch.manual_seed(0)
    z = torch.randn(16, 8)
    assert nt_xent_loss(z, z, 0.1) < nt_xent_loss(z, torch.randn(16, 8), 0.1) - 1.0
    # perfectly aligned distinct views: the loss tends to 0 with low temperature
    eye = torch.eye(16)
    assert nt_xent_loss(eye, eye, 0.05) < 1e-3


def test_augment_keeps_shape_and_is_random_but_seeded():
    x = torch.randn(4, 13, 32, 32)
    aug = SatelliteAugment()
    a = aug(x, torch.Generator().manual_seed(0))
    b = aug(x, torch.Generator().manual_seed(0))
    c = aug(x, torch.Generator().manual_seed(1))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)


def test_augment_rotation_and_flip_only_permute_pixels():
    x = torch.arange(16.0).view(1, 1, 4, 4).repeat(8, 1, 1, 1)
    aug = SatelliteAugment(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), brightness=0, contrast=0)
    out = aug(x, torch.Generator().manual_seed(3))
    for img in out:
        assert sorted(img.flatten().round().tolist()) == list(range(16))


def test_simclr_loss_falls_on_real_chips(rgb_sample):
    images, _ = rgb_sample
    module = SimCLR(tiny_encoder(images), max_epochs=8, lr=3e-3)
    dataset = torch.utils.data.TensorDataset(torch.as_tensor(images))
    torch.manual_seed(0)
    before = np.mean([module.views_loss(torch.as_tensor(images)).item() for _ in range(3)])
    fit_module(module, dataset, epochs=8, batch_size=30, progress=False)
    module.eval()
    with torch.no_grad():
        after = np.mean([module.views_loss(torch.as_tensor(images)).item() for _ in range(3)])
    assert after < before - 0.1


def test_deepcluster_loss_falls_and_supervised_term_is_used(rgb_sample):
    images, labels = rgb_sample
    module = DeepCluster(
        tiny_encoder(images), images, n_clusters=10, labels=labels, lam=1.0, lr=3e-3, pca_dim=8
    )
    losses = []

    import lightning.pytorch as pl

    class Record(pl.Callback):
        def on_train_epoch_end(self, trainer, pl_module):
            losses.append(float(trainer.callback_metrics["supervised_loss"]))

    trainer = pl.Trainer(
        max_epochs=6,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[Record()],
    )
    trainer.fit(
        module, torch.utils.data.DataLoader(IndexDataset(len(images)), batch_size=30, shuffle=True)
    )
    assert len(module.assignments) == 6
    # k-means uses the clusters: none of the 10 is empty on 60 chips after re-assignment
    assert len(np.unique(module.assignments[-1])) >= 8
    assert losses[-1] < losses[0]
    with pytest.raises(HumanscapeError, match="n_clusters"):
        DeepCluster(tiny_encoder(images), images, n_clusters=1000)


def test_nmi_between_epochs_by_hand():
    class Fake:  # assignments of 4 images over 3 epochs
        assignments = [np.array([0, 0, 1, 1]), np.array([1, 1, 0, 0]), np.array([0, 1, 0, 1])]

    # epochs 1 -> 2: the same partition relabelled (NMI 1); 2 -> 3: independent halves (NMI 0)
    assert nmi_between_epochs(Fake()) == pytest.approx([1.0, 0.0], abs=1e-12)

    class Three:
        assignments = [np.array([0, 0, 1, 1]), np.array([0, 0, 0, 1])]

    # by hand: H(A) = ln 2, H(B) = -(3/4 ln 3/4 + 1/4 ln 1/4), I(A;B) = H(B) - H(B|A)
    ha = np.log(2)
    hb = -(0.75 * np.log(0.75) + 0.25 * np.log(0.25))
    mi = hb - 0.5 * np.log(2)  # B given A: half the images (A=1) split 1:1
    assert nmi_between_epochs(Three())[0] == pytest.approx(mi / ((ha + hb) / 2), rel=1e-9)


def test_rectified_means_are_eq_1_by_hand():
    from humanscape.models.random_features import rectified_means

    # one band, 3 x 4 px, one 3 x 3 filter of ones: responses are the sums of the two windows,
    # 3 (left) and -4 (right); with b = 1: mean ReLU(r - 1) = (2 + 0) / 2, mean ReLU(-r - 1) =
    # (0 + 3) / 2; an offset of 0.5 shifts both responses by 0.5: (2.5 + 0) / 2, (0 + 2.5) / 2
    image = np.zeros((1, 1, 3, 4), np.float32)
    image[0, 0, :, 0] = [1, 1, 1]  # only in the left window
    image[0, 0, :, 3] = [-2, -1, -1]  # only in the right window
    ones = torch.ones(1, 1, 3, 3)
    out = rectified_means(torch.from_numpy(image), ones, torch.zeros(1), 1.0)
    assert out.tolist() == [[1.0, 1.5]]
    out = rectified_means(torch.from_numpy(image), ones, torch.full((1,), 0.5), 1.0)
    assert out.tolist() == [[1.25, 1.25]]


def test_random_features_are_seeded_and_separate_real_classes(rgb_sample):
    images, labels = rgb_sample
    feats = RandomConvFeatures(num_filters=64, seed=0).fit_transform(images / 255)
    again = RandomConvFeatures(num_filters=64, seed=0).fit_transform(images / 255)
    assert feats.shape == (len(images), 128) and (feats >= 0).all()
    np.testing.assert_allclose(feats, again)
    # nearest-centroid on the features beats chance (0.1) by far on 10 real classes
    centroids = np.stack([feats[labels == k].mean(0) for k in range(10)])
    pred = np.argmin(((feats[:, None] - centroids[None]) ** 2).sum(-1), axis=1)
    assert (pred == labels).mean() > 0.4
    with pytest.raises(HumanscapeError, match="fitted on 3 bands"):
        RandomConvFeatures(num_filters=8).fit(images / 255).transform(np.zeros((1, 4, 32, 32)))


def test_random_features_as_an_encoder_equal_the_featuriser_and_reload(rgb_sample, tmp_path):
    from humanscape.models.embed import batch_for, embed_array
    from humanscape.models.encoder import Encoder

    images = rgb_sample[0][:40].astype(np.float32)
    mean, std = [120.0, 110.0, 100.0], [50.0, 40.0, 30.0]
    encoder = Encoder("mosaiks_16", ["red", "green", "blue"], mean, std, units="rgb8")
    scaled = (images - np.array(mean)[:, None, None]) / np.array(std)[:, None, None]
    encoder.backbone.body.fit(scaled.astype(np.float32), seed=3)
    direct = RandomConvFeatures(num_filters=16, seed=3).fit_transform(scaled.astype(np.float32))
    embedded = embed_array(encoder, images)
    assert embedded.shape == (40, 32)
    np.testing.assert_allclose(embedded, direct, rtol=1e-4, atol=1e-5)
    encoder.save(tmp_path / "m")
    np.testing.assert_array_equal(embed_array(Encoder.load(tmp_path / "m"), images), embedded)
    # batch planning: 64 x 64 px, 3 tensors of K float32 a pixel = 64 * 64 * 3 * 4 * 16 bytes
    assert batch_for(encoder, (64, 64)) == min(1024, 2**30 // (64 * 64 * 3 * 4 * 16)) == 1024
    assert batch_for(encoder, (512, 512)) == 2**30 // (512 * 512 * 3 * 4 * 16) == 21
    with pytest.raises(HumanscapeError, match="mosaiks_<K>"):
        Encoder("mosaiks_k", ["red"], [0.0], [1.0])


def test_lightning_lines_are_quiet_by_default_and_printed_once_with_verbose(capfd):
    from torch.utils.data import TensorDataset

    from humanscape.cli.boundary import configure_logging
    from humanscape.models.training import LightningModule, fit_module

    class Tiny(LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(2, 1)

        def training_step(self, batch, _):
            x, y = batch
            return torch.nn.functional.mse_loss(self.layer(x).squeeze(-1), y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    data = TensorDataset(torch.randn(8, 2), torch.randn(8))
    try:
        configure_logging(verbose=False)
        fit_module(Tiny(), data, epochs=1, batch_size=4, progress=False)
        quiet = capfd.readouterr().err
        configure_logging(verbose=True)
        fit_module(Tiny(), data, epochs=1, batch_size=4, progress=False)
        loud = capfd.readouterr().err
    finally:
        configure_logging(verbose=False)
    assert "GPU available" not in quiet and "litlogger" not in quiet.lower()
    gpu = [line for line in loud.splitlines() if "GPU available" in line]
    assert len(gpu) == 1, loud  # once, not once per handler
