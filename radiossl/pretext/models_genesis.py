"""Models Genesis (Zhou et al., MICCAI 2019 / MedIA 2021): restore a cube from a corrupted copy.

A 3D U-Net with skip connections and ModelsGenesis' always-batch-statistics norm
(``model.norm = "genesis"``, configurable) learns to restore 64x64x32 cubes (intensities in
[0, 1], cut by ``radiossl preprocess --views genesis``). Per sample, in the published order and
with the published rates:

1. flips, applied to input and target alike: up to 3 times, while ``U(0, 1) < 0.4``, flip a
   random axis. The original drew the axis from ``(channel, X, Y)``, so Z never flipped and a
   third of the draws did nothing; here the axis is drawn from the spatial axes (X, Y, Z);
2. local pixel shuffling with p 0.5 (10,000 blocks of up to ``S // 10`` voxels per axis);
3. the Bézier non-linear intensity map with p 0.9 (half of the maps inverted);
4. painting with p 0.9: in-painting (0.2) or out-painting (0.8).

The loss is ``MSE(sigmoid(logits), flipped clean cube)``. Corruption runs batched on the training
device inside the step (``benchmarks/transforms.py`` measures it; see ``docs/methods/models-genesis.md``).
Validation, when the folder has a ``val`` split, uses corruptions fixed per validation cube, so the
``val_mse`` curve is comparable between epochs, batch sizes and numbers of GPUs; it selects
``checkpoint_best.pt``. The training metric ``output_std`` (spread of the restored voxels) makes the
known failure mode — collapse to a constant output at lr 1.0 (ModelsGenesis issue #25) — visible;
lower ``optim.lr`` if it drops to ~0.

Example::

    from radiossl import load_config, pretrain
    cfg = load_config("pretrain", "models-genesis", overrides=["data.root=proc", "optim.epochs=50"])
    pretrain(cfg)
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, field_validator
from torch import nn
from torch.utils.data import DataLoader

from radiossl.config import MethodConfig
from radiossl.engine.protocol import StepContext, StepOutput
from radiossl.errors import DataError
from radiossl.models.factory import unwrap_model
from radiossl.models.network import build_network
from radiossl.pretext.base import PretextMethod
from radiossl.transforms import (
    BezierIntensity,
    Compose,
    GenesisCorruption,
    GenesisFlip,
    InPaint,
    LocalShuffle,
    OneOf,
    OutPaint,
    generator_for,
)
from radiossl.utils.seeding import rng_for


class ModelsGenesisConfig(MethodConfig):
    """Models Genesis settings; defaults are the published rates (``pytorch/config.py``)."""

    name: Literal["models-genesis"] = "models-genesis"
    flip_rate: float = Field(0.4, ge=0.0, le=1.0, description="Keep flipping while U(0,1) < flip_rate.")
    max_flips: int = Field(3, ge=0, description="At most this many flips per sample.")
    flip_axes: tuple[int, ...] = Field((0, 1, 2), description="Spatial axes a flip picks from (0=X, 1=Y, 2=Z).")
    local_rate: float = Field(0.5, ge=0.0, le=1.0, description="Probability of local pixel shuffling.")
    shuffle_blocks: int = Field(10_000, ge=0, description="Blocks shuffled per cube.")
    nonlinear_rate: float = Field(0.9, ge=0.0, le=1.0, description="Probability of the Bézier intensity map.")
    paint_rate: float = Field(0.9, ge=0.0, le=1.0, description="Probability of in- or out-painting.")
    inpaint_rate: float = Field(
        0.2, ge=0.0, le=1.0, description="Share of in-painting among painted samples (rest: out-painting)."
    )

    @field_validator("flip_axes")
    @classmethod
    def _spatial_axes(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or any(axis not in (0, 1, 2) for axis in value):
            raise ValueError("axes must be a non-empty selection of 0, 1, 2 (X, Y, Z)")
        return value


def build_corruption(settings: ModelsGenesisConfig) -> GenesisCorruption:
    """The corruption after the flips: shuffle, non-linear map, painting (one fused transform).

    Same distribution as the step-by-step :func:`composed_corruption`, faster.
    """
    return GenesisCorruption(
        local_rate=settings.local_rate,
        n_blocks=settings.shuffle_blocks,
        nonlinear_rate=settings.nonlinear_rate,
        paint_rate=settings.paint_rate,
        inpaint_rate=settings.inpaint_rate,
    )


def composed_corruption(settings: ModelsGenesisConfig) -> Compose:
    """:func:`build_corruption` as a :class:`Compose` of the separate transforms (the reference)."""
    paint = OneOf(
        [InPaint(), OutPaint()],
        weights=[settings.inpaint_rate, 1.0 - settings.inpaint_rate],
        p=settings.paint_rate,
    )
    return Compose(
        [
            LocalShuffle(p=settings.local_rate, n_blocks=settings.shuffle_blocks),
            BezierIntensity(p=settings.nonlinear_rate),
            paint,
        ]
    )


def _cubes(batch: Any) -> torch.Tensor:
    if isinstance(batch, torch.Tensor):
        return batch
    if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], torch.Tensor):
        return batch[0]
    raise TypeError(f"models-genesis expects batches of cubes [B, C, X, Y, Z], got {type(batch).__name__}")


class ModelsGenesis(PretextMethod):
    """Models Genesis pretraining (``radiossl pretrain --method models-genesis``); see the module doc."""

    name = "models-genesis"
    config_class = ModelsGenesisConfig
    views = "genesis"
    summary = "Models Genesis: restore cubes after flips, local shuffling, Bézier intensity and painting"
    ddp_find_unused_parameters = False
    """Every parameter gets a gradient in every step."""

    @classmethod
    def default_settings(cls) -> dict[str, Any]:
        """Published settings: SGD lr 1.0, momentum 0.9, no weight decay, batch 6, lr x0.5 every 40 epochs.

        The original trains up to 10,000 epochs with early stopping (patience 50) on validation
        MSE: ``optim.epochs=10000 optim.patience=50`` reproduces it; the default is 240 epochs.
        """
        return {
            "optim": {
                "optimizer": "sgd",
                "lr": 1.0,
                "momentum": 0.9,
                "weight_decay": 0.0,
                "batch_size": 6,
                "epochs": 240,
                "schedule": "step",
                "step_size": 40,
                "gamma": 0.5,
            },
            "model": {"skip_connections": True, "norm": "genesis"},
            "data": {"crop_size": (64, 64, 32)},
        }

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        s = self.settings
        self.flip = GenesisFlip(s.flip_rate, s.max_flips, s.flip_axes)
        self.corrupt = build_corruption(s)
        self.monitor = None

    def build_model(self) -> nn.Module:
        m = self.config.model
        return build_network(
            m,
            in_channels=m.in_channels,
            out_channels=m.in_channels,
            input_sizes={"data.crop_size": self.config.data.crop_size},
            batch_size=self.config.optim.batch_size,
        )

    def build_datasets(self) -> tuple[Any, Any]:
        from radiossl.views.genesis import GenesisCubeDataset

        data, seed = self.config.data, self.config.runtime.seed
        root = self.data_root()
        train = GenesisCubeDataset(root, "train", seed=seed, ratio=data.ratio)
        val: GenesisCubeDataset | None
        try:
            val = GenesisCubeDataset(root, "val", seed=seed)
        except DataError:
            val = None
        self.monitor = ("val_mse", "min") if val is not None else None
        return train, val

    def corrupt_batch(self, cubes: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``(corrupted input, target)``: the target is the flipped clean cube."""
        with torch.autocast(cubes.device.type, enabled=False):
            target = self.flip(cubes.float(), generator)
            return self.corrupt(target, generator), target

    def _generator(self, purpose: str, epoch: int, index: int, rank: int, device: torch.device) -> torch.Generator:
        return generator_for(rng_for(self.config.runtime.seed, "models-genesis", purpose, epoch, index, rank), device)

    def training_step(self, model: nn.Module, batch: Any, context: StepContext) -> StepOutput:
        cubes = _cubes(batch)
        index = int(context.extra.get("batch_index", context.step))
        generator = self._generator("train", context.epoch, index, context.rank, cubes.device)
        inputs, target = self.corrupt_batch(cubes, generator)
        restored = torch.sigmoid(model(inputs).float())
        loss = F.mse_loss(restored, target)
        return StepOutput(loss=loss, metrics={"output_std": float(restored.detach().std())})

    def validate(self, model: nn.Module, loader: DataLoader[Any] | None, context: StepContext) -> dict[str, float]:
        """Mean restoration MSE on the ``val`` split, with corruptions fixed per validation cube.

        Each cube's corruption is seeded by its index in the validation set, so the metric does not
        depend on the batch size or on how the cubes are shared among DDP ranks (with BatchNorm's
        running statistics; ContBatchNorm normalises with the batch and so always depends on it).
        The cube indices are read from ``loader.sampler``, so the loader must not shuffle (the
        trainer's validation loaders never do).
        """
        if loader is None:
            return {}
        order = list(loader.sampler) if loader.batch_size is not None else None
        total, count, seen = 0.0, 0, 0
        for batch in loader:
            cubes = _cubes(batch).to(context.device)
            ids = order[seen : seen + len(cubes)] if order is not None else range(seen, seen + len(cubes))
            seen += len(cubes)
            pairs = [
                self.corrupt_batch(cubes[i : i + 1], self._generator("val", 0, int(cube_id), 0, cubes.device))
                for i, cube_id in enumerate(ids)
            ]
            inputs, target = torch.cat([pair[0] for pair in pairs]), torch.cat([pair[1] for pair in pairs])
            restored = torch.sigmoid(model(inputs).float())
            total += float(F.mse_loss(restored, target, reduction="sum"))
            count += target.numel()
        return {"val_mse": total / max(count, 1)}

    def visualise(self, model: nn.Module, batch: Any, context: StepContext) -> dict[str, np.ndarray]:
        """``genesis_restoration``: middle axial slice of cube 0: corrupted input, target, restoration.

        Cubes carry no dataset index, so the title names the epoch but not the case.
        """
        from radiossl.engine.visualise import restoration_picture, vis_title

        cubes = _cubes(batch)[:1]
        inputs, target = self.corrupt_batch(cubes, self._generator("vis", context.epoch, 0, 0, cubes.device))
        restored = torch.sigmoid(unwrap_model(model)(inputs).float())
        z = cubes.shape[-1] // 2
        title = vis_title(f"{self.name} restoration", batch, context)
        return {"genesis_restoration": restoration_picture(title, inputs[0, 0], target[0, 0], restored[0, 0], z)}
