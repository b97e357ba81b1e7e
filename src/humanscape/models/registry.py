"""Shipped encoder weights and how to load any encoder by name or path.

Each entry is a folder under ``humanscape/models/weights/`` holding ``config.json`` (architecture,
band list, units, normalisation statistics, and provenance: training data, epochs, seed, licence,
the linear-probe accuracy measured at training time) and ``model.safetensors``. The weights were
trained by ``scripts/train_encoders.py`` on real EuroSAT data; no weights are downloaded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from humanscape.errors import HumanscapeError
from humanscape.models.encoder import Encoder

WEIGHTS_DIR = Path(str(files("humanscape").joinpath("models", "weights")))


@dataclass(frozen=True)
class WeightsEntry:
    """One shipped checkpoint and its metadata."""

    name: str
    path: Path
    arch: str
    bands: list[str]
    units: str
    mean: list[float]
    std: list[float]
    metadata: dict[str, Any]
    input_scale: float = 1.0
    pooling: str = "last"
    orientations: int = 1

    @property
    def recipe(self) -> str:
        """The embedding recipe in words, e.g. ``x2 multiscale, 4 orientations``."""
        return f"x{self.input_scale:g} {self.pooling}, {self.orientations} orientation(s)"

    @property
    def linear_probe_accuracy(self) -> float | None:
        return self.metadata.get("linear_probe_accuracy")


def list_weights() -> list[WeightsEntry]:
    """All shipped encoders, sorted by name."""
    entries = []
    for config in sorted(WEIGHTS_DIR.glob("*/config.json")):
        c = json.loads(config.read_text())
        entries.append(
            WeightsEntry(
                config.parent.name,
                config.parent,
                c["arch"],
                c["bands"],
                c["units"],
                c["mean"],
                c["std"],
                c.get("metadata", {}),
                float(c.get("input_scale", 1.0)),
                c.get("pooling", "last"),
                int(c.get("orientations", 1)),
            )
        )
    return entries


def get_weights(name: str) -> WeightsEntry:
    """The shipped entry called ``name``; a clear error lists the available names otherwise."""
    for entry in list_weights():
        if entry.name == name:
            return entry
    available = ", ".join(e.name for e in list_weights()) or "none"
    raise HumanscapeError(
        f"unknown encoder '{name}'",
        fix=f"use one of: {available}; or a path to a saved encoder folder",
    )


def load_encoder(name_or_path: str | Path) -> Encoder:
    """Load a shipped encoder by name, or a saved encoder folder (``config.json`` + ``model.safetensors``)."""
    path = Path(name_or_path)
    if path.exists():
        return Encoder.load(path.parent if path.is_file() else path)
    return Encoder.load(get_weights(str(name_or_path)).path)
