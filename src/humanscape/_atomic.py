"""Atomic output: write to a temporary file beside the target, rename on success.

A failed or interrupted run leaves no half-written file behind (DESIGN.md, conventions).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; move it onto ``path`` only if the block succeeds.

    The temporary name keeps the target's suffix so that format drivers chosen by extension
    (GeoTIFF, GeoPackage, Parquet, PNG) behave as they would for the final file.
    """
    from humanscape.errors import HumanscapeError

    target = Path(path)
    if target.is_dir():
        raise HumanscapeError(
            "is a folder, but a file is written here", path=target, fix="give a file path"
        )
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


@contextlib.contextmanager
def atomic_folder(path: str | Path, *, marker: str) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; it becomes ``path`` only if the block succeeds.

    A failed or interrupted run leaves neither a half-filled folder nor the temporary one. An
    existing ``path`` is replaced only when it is a folder this kind of run wrote before (it holds
    ``marker``, e.g. ``chips.csv``) or an empty folder; anything else is refused, so that a mistyped
    ``--out`` never deletes a user's data.
    """
    from humanscape.errors import HumanscapeError

    target = Path(path)
    if target.exists() and not target.is_dir():
        raise HumanscapeError(
            "exists and is a file, but a folder is written here",
            path=target,
            fix="choose a folder path for --out",
        )
    if target.is_dir() and any(target.iterdir()) and not (target / marker).exists():
        raise HumanscapeError(
            f"folder exists and holds other files (no {marker}); it is not replaced",
            path=target,
            fix="choose a new or empty folder for --out",
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.mkdir()
    old = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.old")
    try:
        yield tmp
        if target.exists():
            os.replace(target, old)
        os.replace(tmp, target)
    finally:
        for leftover in (tmp, old):
            if leftover.exists():
                shutil.rmtree(leftover, ignore_errors=True)
