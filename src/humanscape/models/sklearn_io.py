"""Loading scikit-learn models saved with skops, trusting only named types.

skops (Jakubowski et al.) stores an estimator without pickle; loading it instantiates only types
on an allow-list, so opening a model folder someone sent never runs code (DESIGN.md conventions).
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from humanscape.errors import HumanscapeError


def load_skops(path: str | Path, *, trusted: Sequence[str], refit: str) -> Any:
    """Load ``path`` when every type it names is scikit-learn's own or in ``trusted``.

    A missing, truncated or corrupt file, or one naming other types, is refused with the file
    named and the command (``refit``) that re-creates it.
    """
    import skops.io as sio

    path = Path(path)
    if not path.exists():
        raise HumanscapeError("model file missing", path=path, fix="copy the whole model folder")

    def unreadable(exc: Exception) -> HumanscapeError:
        return HumanscapeError(
            f"not a readable skops file ({type(exc).__name__}: {exc})",
            path=path,
            fix=f"the file is truncated or corrupt; re-create the model with '{refit}'",
        )

    try:
        untrusted = sio.get_untrusted_types(file=path)
    except (zipfile.BadZipFile, OSError, KeyError, ValueError, json.JSONDecodeError) as exc:
        raise unreadable(exc) from None
    untrusted = [t for t in untrusted if t not in trusted]
    if untrusted:
        raise HumanscapeError(
            f"the model names types that are not trusted: {', '.join(untrusted[:5])}",
            path=path,
            fix=f"only load models you can vouch for; re-fit it with '{refit}'",
        )
    try:
        return sio.load(path, trusted=list(trusted))
    except Exception as exc:  # skops raises many types on corrupt content
        raise unreadable(exc) from None
