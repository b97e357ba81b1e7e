"""Errors a user can act on.

Every error raised on bad input names the file (or object) at fault, the problem and the fix, so
that the CLI can print it as one line and exit non-zero instead of showing a library traceback.
"""

from __future__ import annotations

from pathlib import Path


class HumanscapeError(Exception):
    """Bad input or an impossible request, described for the user.

    Parameters
    ----------
    problem
        What is wrong, in one sentence.
    path
        The file or object the problem is in, if any.
    fix
        What the user can do about it.
    """

    def __init__(self, problem: str, *, path: str | Path | None = None, fix: str | None = None):
        self.problem = problem
        self.path = None if path is None else str(path)
        self.fix = fix
        super().__init__(self.one_line())

    def one_line(self) -> str:
        """The message as one line: ``<path>: <problem> (fix: <fix>)``."""
        text = f"{self.path}: {self.problem}" if self.path else self.problem
        if self.fix:
            text += f" (fix: {self.fix})"
        return " ".join(text.split())


class MissingBandError(HumanscapeError):
    """A band (or band role) a computation needs is not in the scene."""


class NotARasterError(HumanscapeError):
    """A file could not be opened as a raster."""


class CRSMismatchError(HumanscapeError):
    """Two inputs that must share a coordinate reference system do not."""


class NoOverlapError(HumanscapeError):
    """Vector features and a raster (or two rasters) do not overlap."""


class EmptyInputError(HumanscapeError):
    """A glob, folder, table or chip holds nothing usable (no files, nodata only, no rows)."""
