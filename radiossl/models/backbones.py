"""radiossl's built-in backbone plugins (entry-point group ``radiossl.models``).

* ``unet3d`` — the 3D U-Net of ModelsGenesis / PCRLv2 / the thesis (:class:`~radiossl.models.UNet3D`),
  key-compatible with their checkpoints; the default;
* ``plainconv-unet`` — nnU-Net's plain convolutional U-Net (two convolutions per stage);
* ``resenc-unet`` — nnU-Net's residual-encoder U-Net;
* ``resenc-m``, ``resenc-l``, ``resenc-xl`` — the residual-encoder topologies of nnU-Net's presets
  and of nnssl's ResEnc-L (see :data:`RESENC_PRESETS` and ``docs/models.md`` for the sources).

The nnU-Net networks come from dynamic-network-architectures (an optional dependency, imported only
when one of them is built). ``model.width`` scales their features per stage (at least 1 channel;
a multiple of 8 with ``model.norm = group``); ``model.norm`` picks the normalisation operator
(nnU-Net itself uses ``instance``); ``model.skip_connections`` does not apply (they always have skips).

Example:
    >>> from radiossl.config import ModelConfig
    >>> from radiossl.models.backbones import RESENC_L
    >>> RESENC_L.arch_kwargs(ModelConfig(width=0.125, norm="instance"), 1, 2)["features_per_stage"]
    [4, 8, 16, 32, 40, 40]
    >>> RESENC_L.total_stride(ModelConfig())
    (32, 32, 32)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from torch import nn

from radiossl.models.backbone import Backbone, NetworkRequest
from radiossl.models.norms import GROUPS

if TYPE_CHECKING:
    from radiossl.config import ModelConfig

NORM_OPS: dict[str, tuple[str, dict[str, Any]]] = {
    "instance": ("torch.nn.modules.instancenorm.InstanceNorm3d", {"eps": 1e-5, "affine": True}),
    "batch": ("torch.nn.modules.batchnorm.BatchNorm3d", {"eps": 1e-5, "momentum": 0.1, "affine": True}),
    "group": ("radiossl.models.norms.GroupNorm3d", {"eps": 1e-5, "affine": True}),
    "genesis": ("radiossl.models.norms.ContBatchNorm3d", {"eps": 1e-5, "momentum": 0.1, "affine": True}),
}
"""``model.norm`` -> the dotted norm operator and its kwargs in an nnU-Net network (``instance`` is nnU-Net's)."""


def scale_features(features: int, width: float, norm: str) -> int:
    """``features * width`` rounded, at least 1 (at least and a multiple of 8 for GroupNorm)."""
    if norm == "group":
        return max(GROUPS, GROUPS * round(features * width / GROUPS))
    return max(1, round(features * width))


class UNet3DBackbone(Backbone):
    """``unet3d``: radiossl's original 3D U-Net (4 stages, 64-512 channels at width 1.0, total stride 8)."""

    name = "unet3d"
    summary = "3D U-Net of ModelsGenesis/PCRLv2/the thesis: 4 stages, 64-512 channels, total stride 8 (default)"

    def build(self, model: ModelConfig, request: NetworkRequest) -> nn.Module:
        from radiossl.models.unet3d import Encoder3D, UNet3D

        if not request.decoder:
            return Encoder3D(in_channels=request.in_channels, width=model.width, norm=model.norm)
        return UNet3D(
            in_channels=request.in_channels,
            out_channels=request.out_channels,
            width=model.width,
            skip_connections=model.skip_connections,
            norm=model.norm,
            decoder=True,
            pretrain_heads=request.stage_heads,
        )

    def stage_strides(self, model: ModelConfig) -> tuple[tuple[int, int, int], ...]:
        return ((1, 1, 1), (2, 2, 2), (2, 2, 2), (2, 2, 2))


@dataclass(frozen=True)
class UNetTopology:
    """Stages of an nnU-Net U-Net at width 1.0: features, encoder blocks (or convs), strides, kernels."""

    features_per_stage: tuple[int, ...]
    blocks_per_stage: tuple[int, ...]
    strides: tuple[tuple[int, int, int], ...]
    kernel_sizes: tuple[tuple[int, int, int], ...]
    decoder_convs_per_stage: tuple[int, ...]

    def __post_init__(self) -> None:
        stages = len(self.features_per_stage)
        if not (len(self.blocks_per_stage) == len(self.strides) == len(self.kernel_sizes) == stages):
            raise ValueError("features, blocks, strides and kernel sizes need one entry per stage")
        if len(self.decoder_convs_per_stage) != stages - 1:
            raise ValueError("decoder_convs_per_stage needs one entry per decoder stage (stages - 1)")


def _isotropic(features: tuple[int, ...], blocks: tuple[int, ...]) -> UNetTopology:
    """Stride 1 then 2 per stage, 3x3x3 kernels, one decoder convolution per stage (nnU-Net, isotropic data)."""
    stages = len(features)
    return UNetTopology(
        features_per_stage=features,
        blocks_per_stage=blocks,
        strides=((1, 1, 1),) + ((2, 2, 2),) * (stages - 1),
        kernel_sizes=((3, 3, 3),) * stages,
        decoder_convs_per_stage=(1,) * (stages - 1),
    )


class NnUNetBackbone(Backbone):
    """An nnU-Net U-Net of a fixed topology, scaled by ``model.width``."""

    def __init__(self, name: str, summary: str, topology: UNetTopology, spec_class: str) -> None:
        self.name = name
        self.summary = summary
        self.topology = topology
        self.spec_class = spec_class

    def arch_kwargs(self, model: ModelConfig, in_channels: int, out_channels: int) -> dict[str, Any]:
        """The network's ``arch_kwargs`` (plain values, as in an nnU-Net/nnssl plan)."""
        t = self.topology
        norm_op, norm_kwargs = NORM_OPS[model.norm]
        kwargs: dict[str, Any] = {
            "input_channels": in_channels,
            "n_stages": len(t.features_per_stage),
            "features_per_stage": [scale_features(f, model.width, model.norm) for f in t.features_per_stage],
            "conv_op": "torch.nn.modules.conv.Conv3d",
            "kernel_sizes": [list(k) for k in t.kernel_sizes],
            "strides": [list(s) for s in t.strides],
            "num_classes": out_channels,
            "n_conv_per_stage_decoder": list(t.decoder_convs_per_stage),
            "conv_bias": True,
            "norm_op": norm_op,
            "norm_op_kwargs": dict(norm_kwargs),
            "dropout_op": None,
            "dropout_op_kwargs": None,
            "nonlin": "torch.nn.modules.activation.LeakyReLU",
            "nonlin_kwargs": {"inplace": True},
        }
        blocks_key = "n_blocks_per_stage" if self.spec_class == "ResidualEncoderUNet" else "n_conv_per_stage"
        kwargs[blocks_key] = list(t.blocks_per_stage)
        return kwargs

    def build(self, model: ModelConfig, request: NetworkRequest) -> nn.Module:
        """The whole U-Net (its decoder too when ``request.decoder`` is False: the method keeps the encoder)."""
        from radiossl.models.factory import build_model

        kwargs = self.arch_kwargs(model, request.in_channels, request.out_channels)
        return build_model({"class": self.spec_class, "kwargs": kwargs})

    def stage_strides(self, model: ModelConfig) -> tuple[tuple[int, int, int], ...]:
        return self.topology.strides


NNUNET_RESENC_BLOCKS = (1, 3, 4, 6, 6, 6, 6)
"""Residual blocks per encoder stage of nnU-Net's ResEncUNetPlanner (``UNet_blocks_per_stage_encoder``)."""

RESENC_6 = _isotropic((32, 64, 128, 256, 320, 320), NNUNET_RESENC_BLOCKS[:6])
"""nnssl's ResEnc-L (``architecture_registry.get_res_enc_l``), also what nnU-Net's ResEnc planners give for
isotropic data whose patch edge lies in [128, 256) voxels."""

RESENC_7 = _isotropic((32, 64, 128, 256, 320, 320, 320), NNUNET_RESENC_BLOCKS[:7])
"""One stage more: nnU-Net's ResEnc planners for isotropic patches of 256 voxels per edge and more."""

PLAIN = _isotropic((32, 64, 128, 256, 320, 320), (2, 2, 2, 2, 2, 2))
"""nnU-Net's default plain U-Net (two convolutions per stage), isotropic data, 6 stages."""

RESENC_M = NnUNetBackbone(
    "resenc-m",
    "nnU-Net ResEnc-M preset (nnUNetPlannerResEncM): 6 stages, 32-320 features, blocks 1-3-4-6-6-6, stride 32",
    RESENC_6,
    "ResidualEncoderUNet",
)
RESENC_L = NnUNetBackbone(
    "resenc-l",
    "nnU-Net ResEnc-L preset = nnssl's ResEnc-L (OpenMind): 6 stages, 32-320 features, blocks 1-3-4-6-6-6, stride 32",
    RESENC_6,
    "ResidualEncoderUNet",
)
RESENC_XL = NnUNetBackbone(
    "resenc-xl",
    "nnU-Net ResEnc-XL preset (nnUNetPlannerResEncXL, large patches): 7 stages, 32-320 features, "
    "blocks 1-3-4-6-6-6-6, stride 64",
    RESENC_7,
    "ResidualEncoderUNet",
)
RESENC_UNET = NnUNetBackbone(
    "resenc-unet",
    "nnU-Net residual-encoder U-Net (dynamic-network-architectures ResidualEncoderUNet), the ResEnc-L topology",
    RESENC_6,
    "ResidualEncoderUNet",
)
PLAINCONV_UNET = NnUNetBackbone(
    "plainconv-unet",
    "nnU-Net plain convolutional U-Net (PlainConvUNet): 6 stages, 32-320 features, 2 convs per stage, stride 32",
    PLAIN,
    "PlainConvUNet",
)
