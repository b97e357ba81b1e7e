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
- batches of ``batch_size`` chips through :class:`CpuNet`: ONNX Runtime when installed (the
  default), else PyTorch under ``torch.inference_mode`` with batch norms folded and channels-last
  layout (the layout oneDNN's CPU convolutions prefer); one thread per Dask worker (the nanny sets
  ``OMP_NUM_THREADS=1``; both runtimes are told the same), so workers do not fight over cores;
- nodata pixels take the band mean (0 after normalisation), as in :func:`~humanscape.models.embed.embed_array`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any, Protocol

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from rasterio.windows import Window

from humanscape.errors import HumanscapeError, MissingBandError
from humanscape.geo.grid import CellGrid, GridSpec
from humanscape.geo.scene import Scene, read_padded
from humanscape.geo.write import RasterSpec, file_token


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

    threads = _process_threads()
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def prepare_for_inference(net: Any) -> Any:
    """A copy of ``net`` for fast CPU inference: batch norms folded into the convolutions before
    them (``torch.fx`` conv-bn fusion) and the weights in channels-last layout. A module that
    ``torch.fx`` cannot trace as a whole (an encoder that checks its input's shape), or that
    offers methods besides ``forward`` (a backbone's ``multiscale``), has its children fused
    instead, each one that traces. Outputs agree with the original to float
    rounding (~1e-7)."""
    import copy

    import torch

    net = _fused(copy.deepcopy(net).eval())
    return net.to(memory_format=torch.channels_last)


def _fused(module: Any) -> Any:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its import uses the deprecated torch.jit.script
        from torch.fx.experimental.optimization import fuse

    if not _only_forward(module):  # a graph module would lose the other methods it offers
        return _fuse_children(module)
    try:
        return fuse(module)
    except Exception:  # not traceable by torch.fx: fuse what is inside
        return _fuse_children(module)


def _fuse_children(module: Any) -> Any:
    for name, child in list(module.named_children()):
        if any(True for _ in child.parameters()):
            setattr(module, name, _fused(child))
    return module


def _only_forward(module: Any) -> bool:
    """Whether ``module``'s class adds no public method besides ``forward`` to PyTorch's own
    modules (``nn.Sequential``'s ``append`` and the like are fine)."""
    import torch

    extra = {
        name
        for cls in type(module).__mro__
        if issubclass(cls, torch.nn.Module) and not cls.__module__.startswith("torch.nn")
        for name, value in vars(cls).items()
        if callable(value) and not name.startswith("_") and name != "forward"
    }
    return not extra


#: Inference backends of :class:`CpuNet`.
BACKENDS = ("auto", "onnx", "torch")


def onnx_available() -> bool:
    """Whether ONNX Runtime and the ONNX exporter's ``onnx`` package can be imported."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("onnxruntime", "onnx"))


class CpuNet:
    """A frozen CNN for fast CPU inference: float32 NCHW array in, array out.

    ``backend``:

    - ``"onnx"``: the module is exported once per process with ``torch.onnx`` (batch axis
      dynamic, one export per chip shape) and run by ONNX Runtime, which folds batch norms and
      picks its own convolution kernels: 43 vs 34 chips/s for a ResNet-18 on 4 x 256 x 256 chips
      on 2 cores (``bench/scale.py --part onnx``);
    - ``"torch"``: PyTorch with :func:`prepare_for_inference` (conv-bn folded, channels-last)
      under ``torch.inference_mode``;
    - ``"auto"`` (default): ONNX Runtime when it is installed and the module exports, else PyTorch.

    Both use the threads the process was given (``OMP_NUM_THREADS`` on a Dask worker, else every
    core). Outputs agree to float rounding (~1e-7). Picklable: a Dask worker builds its own runtime
    on its first batch.
    """

    def __init__(self, net: Any, backend: str = "auto") -> None:
        if backend not in BACKENDS:
            raise HumanscapeError(
                f"unknown inference backend {backend!r}", fix=f"use one of {', '.join(BACKENDS)}"
            )
        if backend == "onnx" and not onnx_available():
            raise HumanscapeError(
                "--backend onnx needs the onnxruntime and onnx packages",
                fix="pip install -r requirements.txt, or use --backend torch",
            )
        self.net = net.eval()
        self.backend = backend
        self.used: str | None = None  # the backend in use, once the first batch has run
        self._runs: dict[tuple[int, ...], Any] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_runs": {}, "used": None}

    def token(self) -> str:
        """What decides the numbers besides the weights: the backend that will run."""
        if self.backend == "auto":
            return "onnx" if onnx_available() else "torch"
        return self.backend

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        shape = tuple(x.shape[1:])
        if shape not in self._runs:
            self._runs[shape] = self._build(x)
        return self._runs[shape](x)

    def _build(self, x: np.ndarray) -> Any:
        threads = _process_threads()
        if self.backend != "torch" and onnx_available():
            try:
                run = onnx_session(self.net, x, threads)
                _check_export(self.net, run, x[:1])
            except Exception as exc:  # a module torch.onnx cannot export (faithfully)
                if self.backend == "onnx":
                    raise HumanscapeError(
                        f"the model does not export to ONNX ({type(exc).__name__}: {exc})",
                        fix="use --backend torch",
                    ) from exc
            else:
                self.used = "onnx"
                return run
        import torch

        set_worker_threads()
        ready = prepare_for_inference(self.net)
        self.used = "torch"

        def run(batch: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                tensor = torch.from_numpy(batch).contiguous(memory_format=torch.channels_last)
                return ready(tensor).numpy()

        return run


def _process_threads() -> int:
    from humanscape.scale.cluster import available_cores

    given = os.environ.get("OMP_NUM_THREADS", "")
    return int(given) if given.isdigit() else available_cores()


def _check_export(net: Any, run: Any, example: np.ndarray) -> None:
    """Raise when the exported model does not give the module's own output on ``example`` (a
    module whose trace lost its input, e.g. one that leaves torch for numpy)."""
    import torch

    with torch.inference_mode():
        want = net(torch.from_numpy(example.copy())).numpy()
    got = run(example)
    scale = max(float(np.abs(want).max()), 1.0)
    if got.shape != want.shape or not np.allclose(got, want, rtol=1e-3, atol=1e-4 * scale):
        raise ValueError("the exported graph does not reproduce the module's output")


@contextlib.contextmanager
def _quiet_fds() -> Iterator[None]:
    """Send this process's stdout and stderr file descriptors to /dev/null for the ``with`` block:
    the ONNX exporter prints its whole graph from C++ when an operator has no ONNX form."""
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, null):
            os.close(fd)


def onnx_session(net: Any, example: np.ndarray, threads: int) -> Any:
    """``net`` exported to ONNX (in memory) and an ONNX Runtime session on ``threads`` threads."""
    import io
    import warnings

    import onnxruntime
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.onnx's import uses the deprecated torch.jit.script
        import torch.onnx

    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.inference_mode(), _quiet_fds():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            net,
            (torch.from_numpy(example[:1].copy()),),
            buffer,
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "n"}, "y": {0: "n"}},
            dynamo=False,
        )
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(
        buffer.getvalue(), options, providers=["CPUExecutionProvider"]
    )

    def run(batch: np.ndarray) -> np.ndarray:
        return session.run(None, {"x": batch})[0]

    return run


class EncoderChips:
    """Embeddings of a frozen :class:`~humanscape.models.encoder.Encoder`: bands ``e000``, ``e001``..."""

    def __init__(
        self, encoder: object, *, batch_size: int = 32, backend: str = "auto", name: str = ""
    ) -> None:
        self.bands = list(encoder.bands)  # type: ignore[attr-defined]
        n = int(encoder.num_features)  # type: ignore[attr-defined]
        self.outputs = tuple(f"e{i:03d}" for i in range(n))
        self.units = "embedding"
        self.batch_size = batch_size
        self.name = name
        self.net = CpuNet(encoder, backend)
        # nodata pixels take the band mean (0 after the encoder's normalisation)
        self._fill = encoder.mean.detach().cpu().numpy().reshape(1, -1, 1, 1).astype(np.float32)  # type: ignore[attr-defined]

    def __call__(self, chips: np.ndarray) -> np.ndarray:
        out = np.empty((len(chips), len(self.outputs)), np.float32)
        for start in range(0, len(chips), self.batch_size):
            x = chips[start : start + self.batch_size]
            if not np.isfinite(x).all():
                x = np.where(np.isfinite(x), x, self._fill)
            out[start : start + len(x)] = self.net(x)
        return out

    def token(self) -> str:
        import hashlib

        digest = hashlib.sha256()
        for value in self.net.net.state_dict().values():
            digest.update(value.detach().cpu().numpy().tobytes())
        return f"encoder {self.name} {digest.hexdigest()[:16]} {self.net.token()}"


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
