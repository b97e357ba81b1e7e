"""One way to train humanscape's Lightning modules: progress, checkpoints every epoch, resume.

Runs on whatever accelerator Lightning finds (CPU here; a GPU or several nodes with DDP elsewhere).
"""

from __future__ import annotations

import logging
from pathlib import Path

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Dataset

log = logging.getLogger(__name__)


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
) -> pl.LightningModule:
    """Train ``module`` on ``dataset`` for ``epochs``; with ``work_dir``, checkpoint each epoch and resume.

    A run interrupted and started again with the same ``work_dir`` continues from ``last.ckpt``.
    """
    pl.seed_everything(seed, workers=True, verbose=False)
    n = len(dataset)  # type: ignore[arg-type]
    batch = min(batch_size, n)
    loader = DataLoader(
        dataset,
        batch_size=batch,
        shuffle=True,
        drop_last=drop_last and n > batch,
        generator=torch.Generator().manual_seed(seed),
    )
    callbacks: list[pl.Callback] = []
    ckpt_path = None
    if work_dir is not None:
        work = Path(work_dir)
        callbacks.append(
            pl.callbacks.ModelCheckpoint(dirpath=work, save_last=True, every_n_epochs=1)
        )
        if (work / "last.ckpt").exists():
            ckpt_path = str(work / "last.ckpt")
            log.info("resuming from %s", ckpt_path)
    trainer = pl.Trainer(
        max_epochs=epochs,
        accelerator="auto",
        devices=1,
        default_root_dir=work_dir,
        callbacks=callbacks,
        enable_checkpointing=work_dir is not None,
        logger=work_dir is not None,
        enable_progress_bar=progress,
        enable_model_summary=False,
        log_every_n_steps=1,
    )
    trainer.fit(module, loader, ckpt_path=ckpt_path)
    return module
