"""Numbers and tables as text for the terminal: a value that is not finite prints as ``n/a``.

An overflowing or undefined metric (a regression that extrapolates to ``1e38``, an R2 over a
constant reference) must never read as a number.
"""

from __future__ import annotations

import math

import pandas as pd

NOT_AVAILABLE = "n/a"


def number(value: object, spec: str = ".3f") -> str:
    """``format(value, spec)``, or ``n/a`` for NaN, ``±inf``, ``None`` and magnitudes over 1e15."""
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return NOT_AVAILABLE
    if not math.isfinite(v) or abs(v) > 1e15:
        return NOT_AVAILABLE
    return format(v, spec)


def table_text(frame: pd.DataFrame, spec: str = ".3f") -> str:
    """``frame`` as an aligned text table without the index, floats through :func:`number`."""
    return frame.to_string(index=False, float_format=lambda v: number(v, spec))
