"""One way to train humanscape's Lightning modules: progress, checkpoints every epoch, resume,
and early stopping on a validation set.

Runs on whatever accelerator Lightning finds (CPU here; a GPU or several nodes with DDP elsewhere).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import humanscape.models._torch_shim  # noqa: F401  (registers torchvision ops before lightning / timm)

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Dataset

log = logging.getLogger(__name__)

BEST = "best.safetensors"


class BestWeights(pl.Callback):
    """Keep the weights of the epoch with the lowest ``monitor`` in memory (and, with a
    ``folder``, in ``best.safetensors`` there: tensors only, loaded without unpickling, so that a
    resumed run still knows its best epoch). Cheaper than a full checkpoint per improvement."""

    def __init__(self, monitor: str, folder: Path | None = None) -> None:
        self.monitor, self.folder = monitor, folder
        self.score, self.state = math.inf, None
        if folder is not None and (folder / BEST).exists():
            from safetensors import safe_open
            from safetensors.torch import load_file

            with safe_open(str(folder / BEST), "pt") as f:
                self.score = float((f.metadata() or {}).get("score", math.inf))
            self.state = load_file(str(folder / BEST))

    def on_validation_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        value = trainer.callback_metrics.get(self.monitor)
        if value is None or trainer.sanity_checking or not float(value) < self.score:
            return
        self.score = float(value)
        self.state = {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}
        if self.folder is not None:
            from safetensors.torch import save_file

            self.folder.mkdir(parents=True, exist_ok=True)
            tmp = self.folder / f".{BEST}.tmp"
            save_file(
                {k: v.contiguous() for k, v in self.state.items()},
                str(tmp),
                metadata={"score": repr(self.score)},
            )
            tmp.replace(self.folder / BEST)


#: The base class of humanscape's trainable modules (task modules import it from here, after the
#: torchvision shim, never Lightning directly).
LightningModule = pl.LightningModule


def quiet_lightning() -> None:
    """Lightning's own messages through the root logger only, and only with ``--verbose``.

    Lightning gives its ``lightning`` logger a console handler of its own at INFO, so that every
    line (GPU / TPU availability, an advert, why training stopped) came out twice beside the root
    logger's; without it the messages propagate to the root logger, at WARNING unless humanscape
    itself logs at INFO.
    """
    verbose = logging.getLogger("humanscape").getEffectiveLevel() <= logging.INFO
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.propagate = True
        logger.setLevel(logging.INFO if verbose else logging.WARNING)


def fit_module(
    module: pl.LightningModule,
    dataset: Dataset,
    *,
    epochs: int,
    batch_size: int = 256,
    work_dir: str | Path | None = None,
    seed: int = 0,
    progress: bool = True,
    drop_last: bool = True,
    val_dataset: Dataset | None = None,
    monitor: str = "val_loss",
    patience: int | None = None,
    min_epochs: int | None = None,
) -> pl.LightningModule:
    """Train ``module`` on ``dataset`` for up to ``epochs``; return it with its best weights.

    With ``work_dir``, a checkpoint is written every epoch (``last.ckpt``) and a run interrupted and
    started again with the same ``work_dir`` continues from it. With ``val_dataset``, ``monitor``
    (logged by the module's ``validation_step``) is tracked: the epoch with its lowest value is
    kept (:class:`BestWeights`) and loaded at the end, and with ``patience`` training stops after that
    many epochs without improvement (early stopping), but not before ``min_epochs``.
    """
    pl.seed_everything(seed, workers=True, verbose=False)
    module.train()  # a loaded encoder comes in eval mode: fine-tuning updates its batch norms too
    n = len(dataset)  # type: ignore[arg-type]
    batch = min(batch_size, n)
    loader = DataLoader(
        dataset,
        batch_size=batch,
        shuffle=True,
        drop_last=drop_last and n > batch,
        generator=torch.Generator().manual_seed(seed),
    )
    val_loader = (
        DataLoader(val_dataset, batch_size=max(batch, 64), shuffle=False)
        if val_dataset is not None
        else None
    )
    callbacks: list[pl.Callback] = []
    best = None
    if val_loader is not None:
        best = BestWeights(monitor, Path(work_dir) if work_dir is not None else None)
        callbacks.append(best)
    return _fit(
        module,
        loader,
        val_loader,
        callbacks,
        best,
        epochs,
        work_dir,
        progress,
        monitor,
        patience,
        min_epochs,
    )


def _fit(
    module: pl.LightningModule,
    loader: DataLoader,
    val_loader: DataLoader | None,
    callbacks: list[pl.Callback],
    best: BestWeights | None,
    epochs: int,
    work_dir: str | Path | None,
    progress: bool,
    monitor: str,
    patience: int | None,
    min_epochs: int | None = None,
) -> pl.LightningModule:
    ckpt_path = None
    if work_dir is not None:
        work = Path(work_dir)
        # last.ckpt only (save_top_k=0: no extra epoch=N copy): one write per epoch for resume
        callbacks.append(
            pl.callbacks.ModelCheckpoint(
                dirpath=work, save_last=True, save_top_k=0, every_n_epochs=1
            )
        )
        if (work / "last.ckpt").exists():
            ckpt_path = str(work / "last.ckpt")
            log.info("resuming from %s", ckpt_path)
    if val_loader is not None and patience is not None:
        callbacks.append(pl.callbacks.EarlyStopping(monitor=monitor, mode="min", patience=patience))
    quiet_lightning()
    trainer = pl.Trainer(
        max_epochs=epochs,
        min_epochs=min(min_epochs, epochs) if min_epochs else None,
        accelerator="auto",
        devices=1,
        default_root_dir=work_dir,
        callbacks=callbacks,
        enable_checkpointing=work_dir is not None,
        logger=work_dir is not None,
        enable_progress_bar=progress,
        enable_model_summary=False,
        log_every_n_steps=1,
        num_sanity_val_steps=0,
    )
    trainer.fit(module, loader, val_loader, ckpt_path=ckpt_path)
    if best is not None and best.state is not None:
        module.load_state_dict(best.state)
        log.info("best epoch: %s = %.4f", monitor, best.score)
    return module.cpu()
