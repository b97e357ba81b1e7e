"""What ``humanscape settlements features | fit | predict | evaluate`` do (Tingzon et al. 2020), as
functions that write their outputs atomically and return the lines to print.

:class:`Labels` gathers what a user says about the labels (the file, which values are settlements
and which are negatives, groups, land use, exclusions, how many negatives to draw); fitting and
evaluation burn them on the feature grid and draw the same pixel sample from them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from humanscape.errors import HumanscapeError
from humanscape.geo.composite import CloudMask, parse_periods
from humanscape.geo.inputs import SceneReader
from humanscape.scale import IN_PROCESS, Execution
from humanscape.tasks.settlements.evaluate import cross_validate, make_folds, write_report
from humanscape.tasks.settlements.features import (
    FeatureStack,
    feature_recipe,
    is_feature_stack,
    read_feature_names,
    settlement_features,
    stack_features,
)
from humanscape.tasks.settlements.model import MODELS, SettlementClassifier, select_model
from humanscape.tasks.settlements.predict import (
    candidate_polygons,
    predict_probability,
    ranked_grid,
)
from humanscape.tasks.settlements.sampling import (
    LabelRasters,
    LabelSpec,
    label_rasters,
    sample_pixels,
)

log = logging.getLogger(__name__)

#: The methods ``settlements fit --method`` takes: a classifier, or ``auto`` (chosen by spatial CV).
METHODS = (*MODELS, "auto")


@dataclass
class Labels:
    """The labels of a fit or an evaluation and how to sample pixels from them.

    ``path`` holds polygons or points (any vector format, any CRS); ``column`` their class and
    ``positive`` the values that mark settlements (no column: every feature is a settlement);
    ``negative`` the values that are negatives (default every other value). ``group_polygons``
    with ``group_column`` (municipalities) make the cross-validation leave one group out;
    ``landuse`` polygons split the random-block negatives into formal settlement (``formal``
    values) and unoccupied land; ``exclude`` polygons are never negatives nor scored.
    ``negatives`` random-block negative pixels are drawn per group (paper: 30,000), at most
    ``labelled_negatives`` labelled ones.
    """

    path: Path
    column: str | None = None
    positive: list[str] = field(default_factory=list)
    negative: list[str] | None = None
    exclude: Path | None = None
    group_polygons: Path | None = None
    group_column: str | None = None
    landuse: Path | None = None
    landuse_column: str | None = None
    formal: list[str] = field(default_factory=list)
    negatives: int = 30_000
    labelled_negatives: int | None = None

    def sample(
        self, features: str | Path, *, seed: int = 0
    ) -> tuple[LabelSpec, LabelRasters, pd.DataFrame]:
        """Labels burnt on the feature grid and the pixel sample drawn from them."""
        from humanscape.geo.vector import read_vector

        if self.column and not self.positive:
            raise HumanscapeError(
                "--label-column needs --positive (the value(s) marking settlements)",
                fix="e.g. --label-column fclass --positive residential",
            )
        if self.negative and not self.column:
            raise HumanscapeError(
                "--negative names values of --label-column, which is not given",
                fix="add --label-column (and --positive)",
            )
        spec = LabelSpec(
            read_vector(self.path), self.column, self.positive, str(self.path), self.negative
        )
        rasters = label_rasters(
            features,
            spec,
            groups=read_vector(self.group_polygons) if self.group_polygons else None,
            group_column=self.group_column,
            exclude=read_vector(self.exclude) if self.exclude else None,
        )
        sample = sample_pixels(
            str(features),
            spec,
            landuse=read_vector(self.landuse) if self.landuse else None,
            landuse_column=self.landuse_column,
            formal_values=self.formal,
            negatives_per_group=self.negatives,
            labelled_per_group=self.labelled_negatives,
            seed=seed,
            rasters=rasters,
        )
        return spec, rasters, sample


@dataclass
class SpatialCV:
    """How folds are made without groups: ``folds`` folds of ``block_km`` blocks, ``buffer_m``
    between training and held-out data (with groups: leave one group out, same buffer)."""

    block_km: float = 2.0
    folds: int = 4
    buffer_m: float = 250.0


def compute_features(
    scenes: Sequence[str | Path],
    out: Path,
    reader: SceneReader,
    *,
    periods: str | None = None,
    cloud_mask: CloudMask | None = None,
    composites: bool = False,
    texture: bool = False,
    texture_window: int = 7,
    execution: Execution = IN_PROCESS,
) -> list[str]:
    """Per-pixel features: per period the bands and the 10 indices (and texture), from dated
    scenes composited per period, or from one composite per period (``composites``)."""
    chosen = parse_periods(periods) if periods else None
    opened = reader.open_each(scenes)
    if composites:
        names = [p.name for p in chosen] if chosen else [Path(str(p)).stem for p in scenes]
        path = stack_features(
            opened, names, out, texture=texture, texture_window=texture_window, execution=execution
        )
    else:
        path = settlement_features(
            opened,
            out,
            periods=chosen,
            cloud_mask=cloud_mask,
            texture=texture,
            texture_window=texture_window,
            execution=execution,
        )
    return [f"wrote {path} with {len(read_feature_names(path))} features"]


def fit_settlements(
    features: Path,
    labels: Labels,
    out: Path,
    *,
    method: str = "rf",
    n_estimators: int = 200,
    cv: SpatialCV | None = None,
    n_jobs: int | None = None,
    seed: int = 0,
) -> list[str]:
    """Sample pixels, fit a classifier and write the model folder (with its class balance).

    Labelled features of other classes become negatives; the weight of the paper's random-block
    negatives next to them, and with ``method="auto"`` the classifier, are chosen by spatial CV on
    the labelled data (the candidates and their scores are kept in the model folder).
    """
    cv = cv or SpatialCV()
    if method not in METHODS:
        raise HumanscapeError(f"unknown method {method!r}", fix=f"use one of {', '.join(METHODS)}")
    _, rasters, sample = labels.sample(features, seed=seed)
    base = SettlementClassifier(
        "rf" if method == "auto" else method, n_estimators=n_estimators, n_jobs=n_jobs, seed=seed
    )
    lines: list[str] = []
    selection = None
    clf = None
    if method == "auto" or (sample["kind"] == "labelled").any():
        folds = make_folds(
            rasters, block_size=cv.block_km * 1000, n_folds=cv.folds, buffer=cv.buffer_m, seed=seed
        )
        try:
            clf, selection = select_model(
                sample,
                folds.splits(sample["x"].to_numpy(), sample["y"].to_numpy()),
                base=base,
                models=MODELS if method == "auto" else [method],
            )
            lines.append(selection.round(3).to_string(index=False))
        except HumanscapeError as exc:
            if method == "auto":
                raise
            lines.append(
                f"warning: {exc.problem}; random-block negatives keep weight "
                f"{base.complement_weight:g}"
            )
    if clf is None:
        clf = base.fit(sample, sample["label"])
    balance = sample.attrs["balance"]
    clf.info_ = {
        **feature_recipe(features),
        "features_file": str(features),
        "labels": str(labels.path),
        "label_column": labels.column,
        "positive": labels.positive,
        "negative": labels.negative,
        "n_samples": len(sample),
        "seed": seed,
    }
    clf.tables_ = {"class_balance.csv": balance}
    if selection is not None:
        clf.tables_["candidates.csv"] = selection
    clf.save(out)
    lines += [
        balance.to_string(index=False),
        f"wrote model {out} ({clf.method}, {len(clf.feature_names_)} features, {len(sample)} pixels)",
    ]
    return lines


def predict_settlements(
    inputs: Sequence[str | Path],
    model: str | Path,
    out: Path,
    reader: SceneReader,
    *,
    grid_out: Path | None = None,
    polygons_out: Path | None = None,
    threshold: float = 0.5,
    top_k: int | None = None,
    min_area: float = 0.0,
    cell: float = 500.0,
    change: bool = False,
    periods: Sequence[str] | None = None,
    execution: Execution = IN_PROCESS,
) -> list[str]:
    """Probability map (tile by tile), ranked validation grid and candidate polygons.

    ``inputs`` is the feature stack of ``settlements features``, or one composite per period of
    the model (features are then computed tile by tile, never written)."""
    clf = SettlementClassifier.load(model)
    if len(inputs) == 1 and is_feature_stack(inputs[0]):
        predict_probability(clf, inputs[0], out, change=change, execution=execution)
    else:
        names = list(periods) if periods else clf.recipe.get("periods")
        if not names:
            raise HumanscapeError(
                "the model folder does not record its periods (fitted on a plain array)",
                path=model,
                fix="give --periods NAME,NAME,... in the order of the composites",
            )
        if len(names) != len(inputs):
            raise HumanscapeError(
                f"{len(inputs)} composite(s) given for the model's {len(names)} period(s) "
                f"({', '.join(names)})",
                path=inputs[0],
                fix="give one composite per period, in order (or the feature stack)",
            )
        window = clf.recipe.get("texture_window")
        stack = FeatureStack(
            reader.open_each(inputs),
            names,
            texture=window is not None,
            texture_window=window or 7,
        )
        predict_probability(clf, stack, out, change=change, execution=execution)
    lines = [f"wrote {out}"]
    if grid_out:
        grid = ranked_grid(out, grid_out, cell=cell)
        lines.append(f"wrote {grid_out}: {len(grid)} cells ranked")
    if polygons_out:
        polys = candidate_polygons(
            out, polygons_out, threshold=threshold, top_k=top_k, min_area=min_area
        )
        lines.append(f"wrote {polygons_out}: {len(polys)} candidate polygons")
    return lines


def evaluate_settlements(
    features: Path,
    labels: Labels,
    out: Path,
    *,
    methods: Sequence[str] = ("lr", "svm", "rf", "hgb"),
    n_estimators: int = 200,
    cv: SpatialCV | None = None,
    max_test_pixels: int = 200_000,
    n_jobs: int | None = None,
    seed: int = 0,
) -> list[str]:
    """Leave-one-group-out (or spatial block) CV at the true class balance: PR-AUC and
    precision / recall at the top x %, pixel and settlement level, per fold and pooled."""
    cv = cv or SpatialCV()
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise HumanscapeError(
            f"unknown method(s) {', '.join(unknown) or '(none)'}",
            fix=f"use --methods {','.join(METHODS)}",
        )
    spec, rasters, sample = labels.sample(features, seed=seed)
    folds = make_folds(
        rasters, block_size=cv.block_km * 1000, n_folds=cv.folds, buffer=cv.buffer_m, seed=seed
    )
    results = []
    for m in methods:
        clf = (
            m
            if m == "auto"
            else SettlementClassifier(m, n_estimators=n_estimators, n_jobs=n_jobs, seed=seed)
        )
        results.append(
            cross_validate(
                features,
                sample,
                clf,
                rasters,
                folds,
                points=spec.points,
                max_test_pixels=max_test_pixels,
                seed=seed,
            )
        )
    paths = write_report(results, out)
    table = pd.read_csv(paths["table"])
    return [table.round(3).to_string(index=False), f"wrote {out}"]
