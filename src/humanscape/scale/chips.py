"""A CNN over every chip of a scene, as a georeferenced grid: fast batched chip inference.

The output grid has one pixel per *cell* of ``stride`` x ``stride`` scene pixels (a
:class:`~humanscape.geo.grid.CellGrid`); cell ``(i, j)`` is predicted from the ``chip`` x ``chip``
window centred on it (``chip == stride``: the cell itself; ``chip > stride``: the cell with
context, Huang et al.'s nbr(n) or overlapping chips). Cells at the right and bottom edge may reach
past the scene; their chips are padded with nodata, and a cell whose chip has less than
``min_valid`` valid pixels is NaN.

Why it is fast (bench/scale.py against TorchGeo's ``RasterDataset`` + ``GridGeoSampler``):

- one windowed read per *tile* of cells (its chips are views into it, cut with
  ``sliding_window_view``), not one read, reprojection check and merge per chip;
- batches of ``batch_size`` chips under ``torch.inference_mode``, in channels-last memory layout
  (the layout oneDNN's CPU convolutions prefer), one thread per Dask worker (the nanny sets
  ``OMP_NUM_THREADS=1``; PyTorch is told the same), so workers do not fight over cores;
- nodata pixels take the band mean (0 after normalisation), as in :func:`~humanscape.models.embed.embed_array`.
"""

from __future__ import annotations

import os
from typing import Any, Protocol

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from rasterio.windows import Window

from humanscape.errors import HumanscapeError, MissingBandError
from humanscape.geo.grid import CellGrid, read_padded
from humanscape.geo.raster import GridSpec, RasterSpec, Scene, file_token


class ChipPredictor(Protocol):
    """What runs on chips: ``(n, len(bands), chip, chip)`` float32 (NaN = nodata) -> ``(n, len(outputs))``."""

    bands: list[str]
    outputs: tuple[str, ...]
    units: str | tuple[str, ...]

    def __call__(self, chips: np.ndarray) -> np.ndarray: ...

    def token(self) -> str: ...


def set_worker_threads() -> None:
    """Let PyTorch use the threads the process was given: ``OMP_NUM_THREADS`` on a Dask worker,
    else every core of the machine (PyTorch's own default is the physical cores, which on
    virtual machines can be half of them)."""
    import torch

    from humanscape.scale.cluster import available_cores

    given = os.environ.get("OMP_NUM_THREADS", "")
    threads = int(given) if given.isdigit() else available_cores()
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def prepare_for_inference(net: Any) -> Any:
    """A copy of ``net`` for fast CPU inference: batch norms folded into the convolutions before
    them (``torch.fx`` conv-bn fusion; the module as is when it cannot be traced) and the weights
    in channels-last layout. Outputs agree with the original to float rounding (~1e-7)."""
    import copy

    import torch
    from torch.fx.experimental.optimization import fuse

    net = copy.deepcopy(net).eval()
    try:
        net = fuse(net)
    except Exception:  # not traceable by torch.fx: keep the eager module
        pass
    return net.to(memory_format=torch.channels_last)


class EncoderChips:
    """Embeddings of a frozen :class:`~humanscape.models.encoder.Encoder`: bands ``e000``, ``e001``..."""

    def __init__(
        self, encoder: object, *, batch_size: int = 32, channels_last: bool = True, name: str = ""
    ) -> None:
        self.encoder = encoder.eval()  # type: ignore[attr-defined]
        self.bands = list(encoder.bands)  # type: ignore[attr-defined]
        n = int(encoder.num_features)  # type: ignore[attr-defined]
        self.outputs = tuple(f"e{i:03d}" for i in range(n))
        self.units = "embedding"
        self.batch_size = batch_size
        self.channels_last = channels_last
        self.name = name
        self._ready: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_ready": None}

    def __call__(self, chips: np.ndarray) -> np.ndarray:
        import torch

        set_worker_threads()
        if self._ready is None:  # once per process (a Dask worker prepares its own copy)
            import copy

            self._ready = copy.deepcopy(self.encoder)
            if self.channels_last:
                self._ready.backbone = prepare_for_inference(self._ready.backbone)
        out = np.empty((len(chips), len(self.outputs)), np.float32)
        mean = self.encoder.mean  # type: ignore[attr-defined]
        with torch.inference_mode():
            for start in range(0, len(chips), self.batch_size):
                x = torch.from_numpy(np.ascontiguousarray(chips[start : start + self.batch_size]))
                if not torch.isfinite(x).all():
                    x = torch.where(torch.isfinite(x), x, mean.expand_as(x))
                if self.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                out[start : start + len(x)] = self._ready(x).numpy()
        return out

    def token(self) -> str:
        import hashlib

        digest = hashlib.sha256()
        for value in self.encoder.state_dict().values():  # type: ignore[attr-defined]
            digest.update(value.detach().cpu().numpy().tobytes())
        return f"encoder {self.name} {digest.hexdigest()[:16]}"


class ChipMap:
    """``predictor`` over every cell of ``cells`` on ``scene``, as a windowed map (see module doc).

    Parameters
    ----------
    scene
        The scene; read on ``cells.pixels`` (warped on the fly when its grid differs).
    predictor
        A :class:`ChipPredictor` (an encoder's embeddings, a population or score model).
    chip
        Chip side in pixels, or ``(height, width)``.
    cells
        The output cells (default: ``stride`` x ``stride`` cells from the scene's origin).
    stride
        Cell side in pixels when ``cells`` is not given.
    min_valid
        Least share of valid pixels in a chip for its cell to be predicted.
    tags
        Extra GeoTIFF tags of the output (e.g. the model).
    """

    def __init__(
        self,
        scene: Scene,
        predictor: ChipPredictor,
        *,
        chip: int | tuple[int, int],
        cells: CellGrid | None = None,
        stride: int | None = None,
        min_valid: float = 0.5,
        tags: dict[str, str] | None = None,
    ) -> None:
        self.chip = (chip, chip) if isinstance(chip, int) else (int(chip[0]), int(chip[1]))
        if min(self.chip) < 1:
            raise HumanscapeError(f"--chip must be at least 1 pixel, got {chip}")
        if cells is None:
            if stride is None or stride < 1:
                raise HumanscapeError(
                    f"--stride must be at least 1 pixel, got {stride}", fix="e.g. --stride 256"
                )
            cells = CellGrid(scene.grid, stride)
        self.cells = cells
        self.scene = scene if scene.grid.matches(cells.pixels) else scene.aligned_to(cells.pixels)
        missing = [b for b in predictor.bands if not self.scene.has(b)]
        if missing:
            raise MissingBandError(
                f"the scene has no band {', '.join(missing)} (the model reads "
                f"{', '.join(predictor.bands)}; the scene has {', '.join(scene.band_names)})",
                path=scene.name,
                fix="give a scene with the model's bands (or --band-names for a multi-band file)",
            )
        self.bands = self.scene.resolve(predictor.bands)
        self.predictor = predictor
        self.min_valid = min_valid
        self.offset = tuple((cells.cell_px - c) // 2 for c in self.chip)
        grid = GridSpec(cells.crs, cells.transform, cells.n_cols, cells.n_rows)
        self.spec = RasterSpec(
            grid,
            tuple(predictor.outputs),
            predictor.units,
            tags=(
                ("chip_px", f"{self.chip[0]}x{self.chip[1]}"),
                ("cell_px", str(cells.cell_px)),
                *(tags or {}).items(),
            ),
        )

    #: Run in this process (PyTorch on every core) unless workers are asked for: on one machine
    #: one process with N threads beats N single-threaded workers, which compete for memory
    #: bandwidth with their own copies of the activations (bench/scale.py, docs/scale.md).
    in_process_by_default = True

    def default_tile(self, read_px: int = 2048) -> int:
        """Cells per tile side so that a tile's read is about ``read_px`` scene pixels a side."""
        return max(16, read_px // self.cells.cell_px)

    def compute(self, window: Window) -> np.ndarray:
        data = self._read(window)
        rows, cols = int(window.height), int(window.width)
        mask = np.isfinite(data).all(axis=0)
        share = np.ones(rows * cols) if mask.all() else self._valid_share(mask, rows, cols).ravel()
        valid = share >= self.min_valid
        out = np.full((rows * cols, self.spec.count), np.nan, np.float32)
        if valid.any():
            chips = self._chips(data, rows, cols)  # one contiguous copy: (cells, bands, h, w)
            out[valid] = self.predictor(chips if valid.all() else chips[valid])
        return out.T.reshape(self.spec.count, rows, cols)

    def _read(self, window: Window) -> np.ndarray:
        """The scene pixels under every chip of the cells in ``window`` (cell units), one read."""
        step = self.cells.cell_px
        (ch, cw), (oy, ox) = self.chip, self.offset
        rows, cols = int(window.height), int(window.width)
        read = Window(
            int(window.col_off) * step + ox,
            int(window.row_off) * step + oy,
            (cols - 1) * step + cw,
            (rows - 1) * step + ch,
        )
        return read_padded(self.scene, read, self.bands)

    def _chips(self, data: np.ndarray, rows: int, cols: int) -> np.ndarray:
        step = self.cells.cell_px
        ch, cw = self.chip
        if (ch, cw) == (step, step):  # cells side by side: a reshape, no window view
            b = data.shape[0]
            blocks = data.reshape(b, rows, ch, cols, cw).transpose(1, 3, 0, 2, 4)
        else:
            blocks = sliding_window_view(data, (ch, cw), axis=(1, 2))[:, ::step, ::step]
            blocks = blocks.transpose(1, 2, 0, 3, 4)
        return np.ascontiguousarray(blocks).reshape(rows * cols, data.shape[0], ch, cw)

    def _valid_share(self, mask: np.ndarray, rows: int, cols: int) -> np.ndarray:
        """Share of valid pixels in each cell's chip: block sums when chips are the cells, else
        a summed-area table of ``mask``."""
        step = self.cells.cell_px
        ch, cw = self.chip
        if (ch, cw) == (step, step):
            return mask.reshape(rows, ch, cols, cw).sum(axis=(1, 3)) / (ch * cw)
        table = np.zeros(
            (mask.shape[0] + 1, mask.shape[1] + 1), np.int32 if mask.size < 2**31 else np.int64
        )
        table[1:, 1:] = mask.cumsum(axis=0).cumsum(axis=1)
        r0 = np.arange(rows)[:, None] * step
        c0 = np.arange(cols)[None, :] * step
        counts = table[r0 + ch, c0 + cw] - table[r0, c0 + cw] - table[r0 + ch, c0] + table[r0, c0]
        return counts / (ch * cw)

    def sources(self) -> list[str]:
        return sorted({str(s.path) for s in self.scene.sources})

    def token(self) -> str:
        return (
            f"chips {self.chip} {self.cells.cell_px} {self.min_valid} {self.bands} "
            f"{self.predictor.token()} {file_token(self.sources())}"
        )
