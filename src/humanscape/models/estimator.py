"""One contract for every task model: a scikit-learn estimator that is saved as one folder format.

Every task model (settlements, population, the economy score and district models, migration,
flows) subclasses :class:`TaskModel`, so that a user who knows scikit-learn knows them all:

- the constructor stores its hyperparameters unchanged (``get_params`` / ``set_params`` /
  ``clone`` work); the checks of their values run when ``fit`` starts
  (:meth:`TaskModel._validate_params`);
- ``fit(X, y=None, **fit_params)`` returns ``self``; what it learns ends with ``_``;
- ``predict(X)`` returns point estimates; regression models add ``predict_interval(X)`` ->
  ``(prediction, lower, upper)``;
- using a model before ``fit`` raises :class:`NotFittedError` (a scikit-learn ``NotFittedError``
  and a :class:`~humanscape.errors.HumanscapeError`: one line in the CLI);
- ``save(folder)`` writes, atomically, ``config.json`` (``kind: humanscape.<task>``, ``params``,
  the fitted ``state``, ``info`` about the data, ``tables``, ``versions``; strict JSON: no NaN or
  Infinity) with the weights beside it as safetensors / skops files and the ``tables_`` (reports)
  as CSV; ``Model.load(folder)`` reads it back and runs no code from the folder. The kind names
  the class (:mod:`humanscape.tasks.registry`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError as SklearnNotFittedError

from humanscape import __version__
from humanscape._atomic import atomic_folder
from humanscape.errors import HumanscapeError
from humanscape.models.model_folder import config_of, parsing

CONFIG = "config.json"


class NotFittedError(HumanscapeError, SklearnNotFittedError):
    """A model was used before it was fitted (or loaded)."""


def versions() -> dict[str, str]:
    """Versions of the packages a saved model depends on (recorded in ``config.json``)."""
    import sys

    import sklearn

    out = {"humanscape": __version__, "sklearn": sklearn.__version__, "numpy": np.__version__}
    if "torch" in sys.modules:
        out["torch"] = sys.modules["torch"].__version__
    return out


def jsonable(value: Any) -> Any:
    """``value`` as strict JSON: numpy scalars and arrays as numbers and lists, tuples as lists,
    paths as strings, and non-finite numbers (NaN, Infinity, which JSON has no word for) as null."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def finite_or(value: Any, default: float) -> float:
    """A float read back from ``config.json``: ``default`` (e.g. ``inf``) where it was null."""
    return default if value is None else float(value)


class TaskModel(BaseEstimator):
    """Base of the task models (see the module docstring).

    Subclasses set :attr:`kind`, :attr:`what`, :attr:`refit`, :attr:`fitted_attribute` and
    implement ``fit``, ``predict``, :meth:`_state` (write weight files, return what else
    ``config.json`` must hold) and :meth:`_restore` (the reverse).
    """

    #: ``humanscape.<task>``: what ``config.json`` says the folder holds.
    kind: ClassVar[str]
    #: The model in words, for messages ("population model").
    what: ClassVar[str]
    #: The command that writes such folders ("population fit"), for messages.
    refit: ClassVar[str]
    #: An attribute that exists once the model is fitted.
    fitted_attribute: ClassVar[str]

    # -- fitted or not
    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, self.fitted_attribute)

    def check_fitted(self) -> None:
        """Refuse to predict or save before ``fit`` (or ``load``)."""
        if not self.__sklearn_is_fitted__():
            raise NotFittedError(
                f"the {self.what} is not fitted",
                fix=f"call fit first, or load a folder written by '{self.refit}'",
            )

    def _validate_params(self) -> None:
        """Check the hyperparameters (called at the start of ``fit``); subclasses add checks."""

    @staticmethod
    def _choice(name: str, value: object, choices: tuple[str, ...]) -> None:
        if value not in choices:
            raise HumanscapeError(
                f"unknown {name} {value!r}", fix=f"use one of {', '.join(choices)}"
            )

    # -- persistence
    def _state(self, folder: Path) -> dict[str, Any]:
        """Write the weight files into ``folder``; return the rest of the fitted state (JSON)."""
        raise NotImplementedError

    def _restore(self, folder: Path, state: dict[str, Any]) -> None:
        """Rebuild the fitted state from ``state`` and the weight files in ``folder``."""
        raise NotImplementedError

    def write_into(self, folder: Path) -> None:
        """Write the model files into an existing folder (a model saved inside another's folder)."""
        self.check_fitted()
        state = self._state(folder)
        tables = dict(getattr(self, "tables_", {}))
        for name, table in tables.items():
            table.to_csv(folder / name, index=False)
        config = {
            "kind": self.kind,
            "params": self.get_params(deep=False),
            "state": state,
            "info": getattr(self, "info_", {}),
            "tables": sorted(tables),
            "versions": versions(),
        }
        text = json.dumps(jsonable(config), indent=2, allow_nan=False)
        (folder / CONFIG).write_text(text)

    def save(self, folder: str | Path) -> Path:
        """Write the model folder atomically (a failed save leaves no half folder)."""
        self.check_fitted()
        with atomic_folder(folder, written_by=self.refit) as tmp:
            self.write_into(tmp)
        return Path(folder)

    @classmethod
    def load(cls, folder: str | Path) -> Self:
        """Read a folder written by :meth:`save`; a foreign, old or corrupt folder is refused."""
        folder = Path(folder)
        config = config_of(folder, kind=cls.kind, what=cls.what, command=cls.refit)
        with parsing(folder / CONFIG, cls.what, cls.refit):
            model = cls(**config["params"])
            state = config["state"]
            model.info_ = dict(config.get("info") or {})
            model.tables_ = {name: pd.read_csv(folder / name) for name in config.get("tables", [])}
            model._restore(folder, state)
        return model
