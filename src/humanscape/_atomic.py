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


#: The file that marks a folder humanscape wrote (what wrote it, when, which version).
FOLDER_MARKER = ".humanscape.json"


def check_folder_replaceable(path: str | Path) -> None:
    """The one rule for output folders: a new path, an empty folder, or a folder humanscape wrote.

    Any other existing folder is refused (a mistyped ``--out`` never deletes a user's data), as is
    a file where a folder goes.
    """
    from humanscape.errors import HumanscapeError

    target = Path(path)
    if target.exists() and not target.is_dir():
        raise HumanscapeError(
            "is a file, but a folder is written here", path=target, fix="give a folder path"
        )
    if target.is_dir() and any(target.iterdir()) and not (target / FOLDER_MARKER).exists():
        raise HumanscapeError(
            f"folder exists and was not written by humanscape (no {FOLDER_MARKER}); it is not "
            "replaced",
            path=target,
            fix="choose a new or empty folder for --out, or delete this one",
        )


@contextlib.contextmanager
def atomic_folder(path: str | Path, *, written_by: str) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; it becomes ``path`` only if the block succeeds.

    A failed or interrupted run leaves neither a half-filled folder nor the temporary one. The
    folder records what wrote it in ``.humanscape.json`` (``written_by``: the command); an
    existing ``path`` is replaced only under the rule of :func:`check_folder_replaceable`.
    """
    import json
    from datetime import UTC, datetime

    from humanscape import __version__

    target = Path(path)
    check_folder_replaceable(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.mkdir()
    old = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.old")
    try:
        yield tmp
        record = {
            "written_by": written_by,
            "humanscape": __version__,
            "time": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        (tmp / FOLDER_MARKER).write_text(json.dumps(record, indent=2))
        if target.exists():
            os.replace(target, old)
        os.replace(tmp, target)
    finally:
        for leftover in (tmp, old):
            if leftover.exists():
                shutil.rmtree(leftover, ignore_errors=True)
