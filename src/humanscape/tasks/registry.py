"""From a model folder's kind to its class: the one place that knows every task model.

``config.json`` names what a folder holds (``kind: humanscape.<task>``);
:func:`load_model` reads any task model folder, and commands that accept several kinds of model
(``predict-chips --model``) ask for the kinds they can use instead of matching strings themselves.
Classes are imported only when a folder of their kind is loaded (the deep-learning stack is heavy).
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Sequence
from pathlib import Path

from humanscape.errors import HumanscapeError
from humanscape.models.estimator import CONFIG, TaskModel

#: kind -> (module, class) of every task model.
MODELS: dict[str, tuple[str, str]] = {
    "humanscape.settlements": ("humanscape.tasks.settlements.model", "SettlementClassifier"),
    "humanscape.population": ("humanscape.tasks.population.model", "PopulationModel"),
    "humanscape.population.disaggregation": (
        "humanscape.tasks.population.disaggregate",
        "Disaggregator",
    ),
    "humanscape.economy.score": ("humanscape.tasks.economy.score", "ScoreModel"),
    "humanscape.economy": ("humanscape.tasks.economy.model", "EconomyModel"),
    "humanscape.migration": ("humanscape.tasks.migration.model", "MigrationModel"),
    "humanscape.flows": ("humanscape.tasks.flows.model", "FlowModel"),
}


def model_class(kind: str) -> type[TaskModel]:
    """The class of a model kind (``humanscape.population`` -> ``PopulationModel``)."""
    if kind not in MODELS:
        raise HumanscapeError(
            f"unknown model kind {kind!r}",
            fix=f"a humanscape model folder has one of {', '.join(MODELS)}",
        )
    module, name = MODELS[kind]
    return getattr(importlib.import_module(module), name)


def folder_kind(folder: str | Path) -> str | None:
    """The kind a folder's ``config.json`` names (None when there is none or it is unreadable)."""
    try:
        kind = json.loads((Path(folder) / CONFIG).read_text()).get("kind")
    except (OSError, ValueError, AttributeError):
        return None
    return kind if isinstance(kind, str) else None


def load_model(folder: str | Path, *, kinds: Sequence[str] | None = None) -> TaskModel:
    """Load any task model folder; with ``kinds``, only a model of one of those kinds.

    A folder that is not a model, or a model of another kind, is refused by name with the
    commands that write the accepted kinds.
    """
    kind = folder_kind(folder)
    accepted = list(kinds) if kinds is not None else list(MODELS)
    if kind not in accepted:
        commands = ", ".join(f"'{model_class(k).refit}'" for k in accepted)
        found = f"a model of kind {kind!r}" if kind else "not a humanscape model folder"
        raise HumanscapeError(
            f"{found}; this needs one written by {commands}",
            path=folder,
            fix=f"point --model at a folder written by {commands}",
        )
    return model_class(kind).load(folder)  # type: ignore[arg-type]
