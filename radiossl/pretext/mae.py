"""Masked image modelling for CNN backbones (``mae``; the SparK variant with ``method.sparse: true``).

Each training cube (the ``genesis`` view: 64x64x32 sub-volumes, intensities in [0, 1]) is cut into
``block_size``³-voxel blocks; ``mask_ratio`` of them are hidden (set to 0) and the backbone's U-Net (with skip
connections) reconstructs the cube. The loss is the mean squared (``loss: l1``: absolute) error over the
hidden voxels only (:func:`radiossl.losses.masked_reconstruction.masked_reconstruction_loss`). The
defaults are nnssl's ``BaseMAETrainer`` (75 % of 16³ blocks hidden, L2 loss, SGD lr 1e-2, momentum
0.99, weight decay 3e-5, gradient norm clipped at 12); ``docs/methods/mae.md`` lists them with their
sources and where radiossl differs.

``sparse: true`` re-applies the mask after every encoder stage (:func:`radiossl.ops.block_mask.zero_masked`
through the backbone's ``after_stage`` hook), so the hidden regions stay exactly zero all the way to the
bottleneck and no convolution carries information into them (SparK). The block size must then be a
multiple of the backbone's total stride (8 for ``unet3d``, 32 for ResEnc-L), so that every hidden block
covers whole bottleneck cells.

The network is the backbone named by ``model.name`` (:func:`radiossl.models.network.build_network`)
wrapped in :class:`MAENet`, which only adds the masked forward; its keys and its checkpoint spec are
the backbone's own (``UNet3D`` on ``unet3d``, ``ResidualEncoderUNet`` on ResEnc-L).

Example::

    from radiossl import load_config, pretrain
    cfg = load_config("pretrain", "mae", overrides=["data.root=proc", "method.sparse=true"])
    pretrain(cfg)
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field
from torch import nn

from radiossl.config import MethodConfig
from radiossl.engine.protocol import StepContext, StepOutput
from radiossl.errors import ConfigError
from radiossl.losses.masked_reconstruction import masked_reconstruction_loss
from radiossl.models.backbone import StageHook
from radiossl.models.composite import BackboneComposite
from radiossl.models.factory import model_spec, unwrap_model
from radiossl.models.network import build_network, check_sizes, input_divisor
from radiossl.ops.block_mask import mask_grid, random_block_mask, zero_masked
from radiossl.pretext.base import PretextMethod
from radiossl.utils.seeding import rng_for


def remask(stage_mask: torch.Tensor) -> StageHook:
    """The ``after_stage`` hook of SparK: every stage's output with the hidden positions zeroed."""

    def hook(index: int, features: torch.Tensor) -> torch.Tensor:
        return zero_masked(features, stage_mask)

    return hook


def encode(net: Any, x: torch.Tensor, stage_mask: torch.Tensor | None = None) -> list[torch.Tensor]:
    """Encoder stage features, finest first; with ``stage_mask``, hidden positions are zeroed after every stage."""
    features: list[torch.Tensor] = net.encode(x, None if stage_mask is None else remask(stage_mask))
    return features


class MAENet(BackboneComposite):
    """A backbone whose ``forward`` takes the optional SparK mask (one call, so DDP sees one forward).

    Its ``state_dict`` is exactly the backbone's, and checkpoints describe it as the backbone
    (:meth:`checkpoint_spec`).
    """

    def __init__(self, backbone: nn.Module) -> None:
        self._backbone_spec = model_spec(backbone)
        super().__init__(backbone)

    def forward(self, x: torch.Tensor, stage_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The reconstruction of ``x`` (the backbone's output head), re-masked per stage with ``stage_mask``."""
        return self.head(self.decode(encode(self, x, stage_mask)))

    def checkpoint_spec(self) -> dict[str, Any]:
        """The backbone's own spec (same weights, standard forward)."""
        return dict(self._backbone_spec)


def _stride_text(stride: tuple[int, int, int]) -> str:
    return str(stride[0]) if len(set(stride)) == 1 else str(list(stride))


# -- the method -------------------------------------------------------------------------------------


class MAEConfig(MethodConfig):
    """Masked image modelling settings; defaults from nnssl's ``BaseMAETrainer``."""

    name: Literal["mae"] = "mae"
    mask_ratio: float = Field(0.75, ge=0.0, lt=1.0, description="Fraction of the blocks hidden per cube.")
    block_size: int = Field(16, ge=1, description="Edge of a masked block in voxels (every crop size must divide).")
    loss: Literal["l2", "l1"] = Field("l2", description="Reconstruction error on the hidden voxels.")
    sparse: bool = Field(False, description="SparK: re-apply the mask after every encoder stage.")


def _cubes(batch: Any) -> torch.Tensor:
    if isinstance(batch, torch.Tensor):
        return batch
    if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], torch.Tensor):
        return batch[0]
    raise TypeError(f"mae expects batches of cubes [B, C, X, Y, Z], got {type(batch).__name__}")


class MAE(PretextMethod):
    """Masked image modelling (``radiossl pretrain --method mae``); see the module docstring."""

    name = "mae"
    config_class = MAEConfig
    views = "genesis"
    summary = "Masked image modelling: reconstruct 75 % hidden 16³ blocks (SparK variant: method.sparse=true)"
    headline_metrics = ("loss", "visible_error", "lr")
    ddp_find_unused_parameters = False
    """Every parameter gets a gradient in every step."""

    @classmethod
    def default_settings(cls) -> dict[str, Any]:
        """nnssl's optimiser (SGD lr 1e-2, momentum 0.99, wd 3e-5, clip 12, batch 8), radiossl's cosine schedule."""
        return {
            "optim": {
                "optimizer": "sgd",
                "lr": 1e-2,
                "momentum": 0.99,
                "weight_decay": 3e-5,
                "grad_clip": 12.0,
                "batch_size": 8,
                "epochs": 240,
                "schedule": "cosine",
            },
            "model": {"skip_connections": True, "norm": "instance"},
            "data": {"crop_size": (64, 64, 32)},
        }

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        s = self.settings
        crop = tuple(config.data.crop_size)
        check_sizes(config.model, {"data.crop_size": crop}, batch_size=config.optim.batch_size)
        try:
            self.grid = mask_grid(crop, s.block_size)
        except ValueError as err:
            raise ConfigError(f"method.block_size: {err} (data.crop_size {list(crop)})") from err
        stride = input_divisor(config.model)
        if s.sparse and any(s.block_size % axis for axis in stride):
            raise ConfigError(
                f"method.sparse needs method.block_size to be a multiple of the encoder stride {_stride_text(stride)} "
                f"of the {config.model.name} backbone, got {s.block_size}"
            )

    def build_model(self) -> nn.Module:
        m = self.config.model
        backbone = build_network(
            m,
            in_channels=m.in_channels,
            out_channels=m.in_channels,
            input_sizes={"data.crop_size": self.config.data.crop_size},
            batch_size=self.config.optim.batch_size,
        )
        return MAENet(backbone)

    def build_datasets(self) -> tuple[Any, Any]:
        from radiossl.views.genesis import GenesisCubeDataset

        data = self.config.data
        root = self.data_root()
        return GenesisCubeDataset(root, "train", seed=self.config.runtime.seed, ratio=data.ratio), None

    def model_spec(self, model: nn.Module) -> dict[str, Any]:
        """Checkpoints describe the network as its backbone (a plain ``UNet3D`` on ``unet3d``)."""
        net = unwrap_model(model)
        if not isinstance(net, MAENet):
            raise TypeError(f"mae needs an MAENet, got {type(net).__name__}")
        return net.checkpoint_spec()

    def run_name_parts(self) -> list[str]:
        s = self.settings
        return [f"m{round(s.mask_ratio * 100)}", f"blk{s.block_size}", *(["sparse"] if s.sparse else [])]

    def _rng(self, context: StepContext, purpose: str) -> np.random.Generator:
        index = context.extra.get("batch_index", context.step)
        return rng_for(self.config.runtime.seed, "mae", purpose, context.epoch, index, context.rank)

    def mask_batch(self, cubes: torch.Tensor, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``(masked input, block mask)`` of a batch; the mask is ``True`` on hidden blocks."""
        grid = mask_grid(cubes.shape[2:], self.settings.block_size)
        mask = random_block_mask(cubes.shape[0], grid, self.settings.mask_ratio, rng, cubes.device)
        return zero_masked(cubes, mask), mask

    def reconstruct(self, model: nn.Module, inputs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The network's reconstruction of the masked inputs (the mask goes in too when ``sparse``)."""
        return model(inputs, mask if self.settings.sparse else None)

    def training_step(self, model: nn.Module, batch: Any, context: StepContext) -> StepOutput:
        cubes = _cubes(batch).float()
        inputs, mask = self.mask_batch(cubes, self._rng(context, "step"))
        reconstruction = self.reconstruct(model, inputs, mask)
        loss = masked_reconstruction_loss(reconstruction, cubes, mask, self.settings.loss)
        # the same error on the visible voxels, which the loss ignores: shows whether the network copies them
        visible = masked_reconstruction_loss(reconstruction.detach(), cubes, ~mask, self.settings.loss)
        metrics = {"visible_error": float(visible), "hidden_fraction": float(mask.float().mean())}
        return StepOutput(loss=loss, metrics=metrics)

    def visualise(self, model: nn.Module, batch: Any, context: StepContext) -> dict[str, np.ndarray]:
        """``mae_reconstruction``: middle axial slice of cube 0: masked input, target, reconstruction."""
        from radiossl.engine.visualise import restoration_picture, vis_title

        cubes = _cubes(batch)[:1].float()
        inputs, mask = self.mask_batch(cubes, self._rng(context, "vis"))
        reconstruction = self.reconstruct(unwrap_model(model), inputs, mask).float()
        z = cubes.shape[-1] // 2
        title = vis_title(f"{self.name} reconstruction", batch, context)
        return {"mae_reconstruction": restoration_picture(title, inputs[0, 0], cubes[0, 0], reconstruction[0, 0], z)}
