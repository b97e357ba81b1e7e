"""Atomic output: write to a temporary file beside the target, rename on success.

A failed or interrupted run leaves no half-written file behind (DESIGN.md, conventions).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; move it onto ``path`` only if the block succeeds.

    The temporary name keeps the target's suffix so that format drivers chosen by extension
    (GeoTIFF, GeoPackage, Parquet, PNG) behave as they would for the final file.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.stem}.{uuid.uuid4().hex[:8]}.tmp{target.suffix}")
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
        for sidecar in tmp.parent.glob(tmp.name + ".*"):  # e.g. .aux.xml, -journal
            sidecar.unlink()
