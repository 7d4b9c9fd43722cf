"""A tiny but complete TrainingTask for the engine tests (a Conv3d regression on random volumes).

Also imported by ``ddp_script.py``, which ``torchrun`` launches in a separate process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from radiossl.config import ExampleRunConfig, build_config
from radiossl.engine.protocol import StepContext, StepOutput, TaskDefaults
from radiossl.engine.visualise import colorize_labels, tile_images, to_rgb_uint8
from radiossl.utils.seeding import rng_for

SHAPE = (1, 8, 8, 4)


class Pair(NamedTuple):
    image: torch.Tensor
    target: torch.Tensor
    position: torch.Tensor


class RandomVolumes(Dataset[Pair]):
    """Fixed random volumes; the target is a fixed linear function of the input plus per-epoch noise."""

    def __init__(self, n: int, seed: int = 0, jitter: bool = True) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.images = torch.rand((n, *SHAPE), generator=gen)
        self.seed = seed
        self.jitter = jitter
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.images)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, index: int) -> Pair:
        image = self.images[index]
        noise = rng_for(self.seed, self.epoch, index).normal(0.0, 0.01, SHAPE).astype(np.float32)
        # worker-process randomness seeded by the engine's worker_init_fn must be reproducible too
        jitter = np.float32(np.random.uniform(0.0, 1e-3)) if self.jitter else 0.0
        target = 2.0 * image - 0.5 + torch.from_numpy(noise) + float(jitter)
        return Pair(image, target, torch.tensor(index))


class TinyNet(nn.Module):
    def __init__(self, norm: bool = True) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(1, 4, 3, padding=1)
        self.norm = nn.BatchNorm3d(4) if norm else nn.Identity()
        self.conv2 = nn.Conv3d(4, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(torch.relu(self.norm(self.conv1(x))))


class TinyTask(TaskDefaults):
    """Implements radiossl.engine.protocol.TrainingTask, inheriting the hooks it does not use."""

    kind = "pretrain"
    name = "tiny"

    def __init__(
        self,
        n_train: int = 12,
        n_val: int | None = 4,
        crash_at_epoch: int | None = None,
        nan_at_epoch: int | None = None,
        monitor: tuple[str, Literal["min", "max"]] | None = None,
        norm: bool = True,
        dropout_noise: bool = True,
        val_jitter: bool = True,
    ) -> None:
        self.n_train = n_train
        self.n_val = n_val
        self.crash_at_epoch = crash_at_epoch
        self.nan_at_epoch = nan_at_epoch
        self.monitor = monitor
        self.norm = norm
        self.dropout_noise = dropout_noise
        self.val_jitter = val_jitter  # False: validation targets depend on nothing but the index
        self.after_steps = 0

    def build_model(self) -> nn.Module:
        return TinyNet(self.norm)

    def build_datasets(self) -> tuple[Dataset[Any], Dataset[Any] | None]:
        val = RandomVolumes(self.n_val, seed=99, jitter=self.val_jitter) if self.n_val else None
        return RandomVolumes(self.n_train, seed=7), val

    def train_mode(self, model: nn.Module) -> None:
        model.train()

    def training_step(self, model: nn.Module, batch: Pair, context: StepContext) -> StepOutput:
        if self.crash_at_epoch is not None and context.epoch == self.crash_at_epoch:
            raise RuntimeError("simulated interruption")
        image = batch.image
        if self.dropout_noise:  # uses the global torch RNG, which resume must restore
            image = image + 0.01 * torch.randn_like(image)
        prediction = model(image).float()
        loss = (prediction - batch.target.float()).pow(2).mean()
        if self.nan_at_epoch is not None and context.epoch == self.nan_at_epoch:
            loss = loss * float("nan")
        return StepOutput(loss=loss, metrics={"mae": float((prediction.detach() - batch.target).abs().mean())})

    def after_optimizer_step(self, model: nn.Module, context: StepContext) -> None:
        self.after_steps += 1

    def validate(self, model: nn.Module, loader: DataLoader[Any] | None, context: StepContext) -> dict[str, float]:
        if loader is None:
            return {}
        total, count = 0.0, 0
        for batch in loader:
            prediction = model(batch.image.to(context.device)).float()
            total += float((prediction - batch.target.to(context.device)).pow(2).sum())
            count += batch.target.numel()
        return {"val_mse": total / max(count, 1)}

    def visualise(self, model: nn.Module, batch: Pair, context: StepContext) -> dict[str, np.ndarray]:
        prediction = model(batch.image)
        depth = batch.image.shape[-1] // 2
        labels = (prediction[0, 0, :, :, depth] > 0).long()
        return {
            "slice": tile_images([to_rgb_uint8(batch.image[0, 0, :, :, depth]), colorize_labels(labels, 2)]),
        }

    def model_spec(self, model: nn.Module) -> dict[str, Any]:
        return {"class": "TinyNet", "kwargs": {"norm": self.norm}}

    def run_name_parts(self) -> list[str]:
        return ["n" + str(self.n_train)]


def tiny_config(
    data_root: Path, out: Path, *overrides: str, config_class: type[ExampleRunConfig] = ExampleRunConfig
) -> ExampleRunConfig:
    """A CPU, deterministic, quiet config for the tiny task."""
    base = [
        f"data.root={data_root}",
        "data.workers=0",
        f"out={out}",
        "optim.epochs=3",
        "optim.batch_size=4",
        "optim.lr=0.05",
        "runtime.device=cpu",
        "runtime.deterministic=true",
        "logging.progress=false",
        "logging.log_every=1",
    ]
    return build_config(config_class, [], [*base, *overrides])
