"""Image tiles per municipality for the imagery branch (Runfola et al. 2022, Sec. 2.2.2).

Each municipality's imagery is cut into tiles (224 px in the paper; any size here, the same for
all tiles): a chip table with ``image`` and the municipality id column (as written by
``humanscape economy tiles`` or :func:`humanscape.data.chips.chip_districts`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from humanscape.data.chiptable import read_chip_table, read_chips
from humanscape.errors import HumanscapeError

log = logging.getLogger(__name__)


@dataclass
class MunicipalImages:
    """Tiles ``(n, bands, H, W)`` (reflectance), the municipality id of each, the band names."""

    tiles: np.ndarray
    owner: np.ndarray
    bands: list[str]
    source: str = ""

    def owners_of(self, ids: list[str], *, path: str = "", warn: bool = False) -> list[np.ndarray]:
        """Per census id, the indices of its tiles; a municipality without tiles is refused.

        With ``warn``, tile ids that are not among ``ids`` are counted in a warning.
        """
        by_id: dict[str, list[int]] = {}
        for k, m in enumerate(self.owner):
            by_id.setdefault(str(m), []).append(k)
        unmatched = check_tile_ids(list(by_id), ids, self.source)
        if unmatched and warn:
            log.warning(
                "%s: %d municipality id(s) of the tiles are not in the census table, ignored",
                self.source,
                len(unmatched),
            )
        lacking = [i for i in ids if i not in by_id]
        if lacking:
            raise HumanscapeError(
                f"{len(lacking)} municipality(ies) have no image tile, first '{lacking[0]}'",
                path=path or self.source or None,
                fix="cut tiles for every municipality, or use a model without imagery",
            )
        return [np.asarray(by_id[i], dtype=np.int64) for i in ids]


def check_tile_ids(tile_ids: list[str], ids: list[str], source: str = "") -> list[str]:
    """Tile ids not among the census ``ids``; refused when none of them is."""
    known = set(ids)
    unmatched = [m for m in tile_ids if m not in known]
    if tile_ids and len(unmatched) == len(tile_ids):
        raise HumanscapeError(
            f"none of the {len(tile_ids)} municipality ids of the tiles matches a census id "
            f"(first tile id '{unmatched[0]}', first census id '{ids[0] if ids else ''}')",
            path=source or None,
            fix="give tiles cut for these municipalities, with the same ids as --id-column",
        )
    return unmatched


def read_municipal_images(
    chip_table: str | Path,
    *,
    id_column: str,
    bands: list[str] | None = None,
    progress: bool = True,
    expect_ids: list[str] | None = None,
) -> MunicipalImages:
    """Read every tile of a chip table with a municipality ``id_column`` (bands by name).

    Without ``bands`` the bands of the first tile are used (all of them but QA bands). With
    ``expect_ids`` (the census ids), tiles whose ids match none of them are refused before any
    tile is read.
    """
    table = read_chip_table(chip_table, required=[id_column])
    if expect_ids is not None:
        names = table[id_column].astype(str).str.strip().unique().tolist()
        check_tile_ids(names, expect_ids, str(chip_table))
    if bands is None:
        from humanscape.data.chiptable import read_chip

        first = read_chip(table["image"].iloc[0])
        if first.bands is None:
            raise HumanscapeError(
                "the tiles do not name their bands",
                path=table["image"].iloc[0],
                fix="write band descriptions into the tiles (humanscape economy tiles does)",
            )
        bands = list(first.bands)
    tiles, _ = read_chips(list(table["image"]), bands, progress=progress)
    owner = table[id_column].astype(str).str.strip().to_numpy()
    return MunicipalImages(tiles, owner, list(bands), str(chip_table))
