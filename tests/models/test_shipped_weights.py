"""The shipped encoder checkpoints: metadata complete, they load, and reproduce stored embeddings."""

import json
from pathlib import Path

import numpy as np

from humanscape.data import samples
from humanscape.models.embed import embed_array, read_chip_for
from humanscape.models.registry import list_weights, load_encoder

REFERENCE = json.loads((Path(__file__).parent / "shipped_embeddings.json").read_text())


def test_registry_lists_both_shipped_encoders_with_full_metadata():
    entries = {e.name: e for e in list_weights()}
    assert set(entries) == {"simclr_resnet18half_eurosat_rgb", "simclr_resnet18half_eurosat_ms"}
    assert (
        entries["simclr_resnet18half_eurosat_ms"].bands[8] == "B8A"
        and len(entries["simclr_resnet18half_eurosat_ms"].bands) == 13
    )
    for entry in entries.values():
        assert len(entry.mean) == len(entry.std) == len(entry.bands)
        for key in (
            "training_data",
            "epochs",
            "seed",
            "licence",
            "linear_probe_accuracy",
            "linear_probe_accuracy_plain",
            "embedding",
            "method",
        ):
            assert key in entry.metadata, (entry.name, key)
        assert 0.5 < entry.linear_probe_accuracy <= 1.0
    total = sum(f.stat().st_size for e in entries.values() for f in e.path.iterdir())
    assert total < 50 * 2**20  # checkpoints stay small


def test_shipped_checkpoints_reproduce_stored_embeddings_of_real_chips():
    assert set(REFERENCE) == {e.name for e in list_weights()}
    for name, records in REFERENCE.items():
        encoder = load_encoder(name)
        chips = np.stack([read_chip_for(encoder, samples.sample_path(*r["chip"])) for r in records])
        got = embed_array(encoder, chips)
        expected = np.array([r["embedding"] for r in records], np.float32)
        np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-4)
        assert not np.allclose(got[0], got[1])  # a forest and a residential chip differ


def test_cli_lists_shipped_encoders_with_recipe_and_accuracy():
    from typer.testing import CliRunner

    from humanscape.cli import app

    result = CliRunner().invoke(app, ["encoders"])
    assert result.exit_code == 0, result.output
    for entry in list_weights():
        line = next(ln for ln in result.output.splitlines() if ln.startswith(entry.name))
        assert f"embedding {entry.recipe}" in line
        assert f"linear probe {entry.linear_probe_accuracy}" in line
