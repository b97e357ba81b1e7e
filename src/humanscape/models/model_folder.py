"""Reading a saved model folder (``config.json`` + weight files) with one error per way it fails.

Every task model is a folder: ``config.json`` names its ``kind`` and holds the parameters, the
weights are safetensors / skops files beside it. :func:`config_of` reads and checks the config,
:func:`parsing` turns a missing key or a bad value met while rebuilding the model into one
error naming the file, :func:`read_weights` reads a weight file. Nothing here runs stored code.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from humanscape.errors import HumanscapeError


def config_of(folder: str | Path, *, kind: str, what: str, command: str) -> dict[str, Any]:
    """The parsed ``config.json`` of ``folder``, whose ``kind`` must be ``kind``.

    ``what`` names the model in errors ("population model"), ``command`` the command that writes
    such folders ("population fit").
    """
    folder = Path(folder)
    path = folder / "config.json"
    if not path.exists():
        raise HumanscapeError(
            f"not a{'n' if what[0] in 'aeiou' else ''} {what} folder (no config.json)",
            path=folder,
            fix=f"point --model at the folder '{command}' wrote",
        )
    with parsing(path, what, command):
        config = json.loads(path.read_text())
        if not isinstance(config, dict):
            raise ValueError("config.json holds no object")
    found = config.get("kind")
    if found is None:
        raise HumanscapeError(
            "config.json names no kind: a model folder of an older humanscape (before 0.2) or of "
            "another tool",
            path=path,
            fix=f"re-create the model with '{command}'",
        )
    if found != kind:
        raise HumanscapeError(
            f"holds a model of kind {found!r}, not a{'n' if what[0] in 'aeiou' else ''} {what}",
            path=folder,
            fix=f"point --model at the folder '{command}' wrote",
        )
    return config


@contextmanager
def parsing(path: Path, what: str, command: str) -> Iterator[None]:
    """Turn ``KeyError`` / ``TypeError`` / ``ValueError`` in the block into one error on ``path``."""
    try:
        yield
    except (KeyError, TypeError, ValueError) as exc:
        raise HumanscapeError(
            f"invalid {what} config ({type(exc).__name__}: {exc})",
            path=path,
            fix=f"re-create the model with '{command}'",
        ) from None


def read_weights(path: Path, reader: Callable[[str], Any], command: str) -> Any:
    """``reader(path)`` for a weight file; a missing or unreadable file is refused by name."""
    if not path.exists():
        raise HumanscapeError("model file missing", path=path, fix="copy the whole model folder")
    try:
        return reader(str(path))
    except Exception as exc:  # safetensors raises several types on corrupt content
        raise HumanscapeError(
            f"not a readable model file ({type(exc).__name__})",
            path=path,
            fix=f"the file is truncated or corrupt; re-create the model with '{command}'",
        ) from None


def load_net_weights(
    net: Any, path: Path, command: str, *, state: dict[str, Any] | None = None
) -> Any:
    """Read a safetensors state dict into ``net`` (put in eval mode); a mismatch is refused by name.

    ``state``: the part of ``path`` that belongs to ``net`` when the file holds several networks.
    """
    from safetensors.torch import load_file

    if state is None:
        state = read_weights(path, load_file, command)
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise HumanscapeError(
            f"weights do not fit the network ({str(exc).splitlines()[0][:100]})",
            path=path,
            fix=f"re-create the model with '{command}'",
        ) from None
    return net.eval()
