"""The U-Nets of nnU-Net and nnssl (dynamic-network-architectures) as radiossl model classes.

The classes subclass the library's own networks, so their ``state_dict`` keys are exactly the ones
nnU-Net and nnssl read and write (``encoder.stem...``, ``encoder.stages...``, ``decoder...``). Their
constructor takes the library's arguments, with operator classes either as classes or as dotted
names, and ``spec_kwargs()`` returns them in the plain ``arch_kwargs`` form of an nnssl plan
(:mod:`radiossl.models.arch_kwargs`).

dynamic-network-architectures is an optional dependency. Its package metadata requires timm (and so
torchvision), which would make pip replace a CPU build of torch; install it without dependencies::

    pip install --no-deps dynamic-network-architectures==0.4.4 einops
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from radiossl.errors import ConfigError
from radiossl.models.arch_kwargs import resolve_arch_kwargs, serialise_arch_kwargs
from radiossl.models.backbone import StageHook, apply_hook, total_stride

INSTALL_HINT = "pip install --no-deps dynamic-network-architectures==0.4.4 einops"

try:
    from dynamic_network_architectures.architectures.unet import PlainConvUNet, ResidualEncoderUNet
except ImportError as err:  # pragma: no cover - exercised only without the optional dependency
    raise ConfigError(
        f"the nnU-Net backbones need dynamic-network-architectures ({err}); install it with: {INSTALL_HINT}"
    ) from err


class _NnUNetBackbone(nn.Module):
    """The :class:`radiossl.models.backbone.BackboneNetwork` interface of a dynamic-network-architectures U-Net.

    ``encode``/``decode``/``head`` run the library's own modules in the library's order (so
    ``head(decode(encode(x)))`` equals its ``forward`` without deep supervision). The decoder's
    deep-supervision outputs (``decoder.seg_layers`` except the last) exist so that the keys are
    nnU-Net's, but radiossl never evaluates them: they are built with ``requires_grad=False`` so that
    no optimiser or DDP expects a gradient for them.
    """

    encoder_prefixes: tuple[str, ...] = ("encoder.",)
    decoder_prefixes: tuple[str, ...] = ("decoder.",)
    head_prefixes: tuple[str, ...] = ("decoder.seg_layers.",)
    encoder: Any
    decoder: Any
    initialize: Any
    _arch_kwargs: dict[str, Any]

    def _finish(self) -> None:
        """Initialise as nnU-Net does and describe the stages (called at the end of ``__init__``)."""
        self.apply(self.initialize)
        for layer in list(self.decoder.seg_layers)[:-1]:
            layer.requires_grad_(False)
        self.stage_channels: tuple[int, ...] = tuple(int(c) for c in self.encoder.output_channels)
        self.stage_strides: tuple[tuple[int, int, int], ...] = tuple(
            (int(s[0]), int(s[1]), int(s[2])) for s in self.encoder.strides
        )
        self.decoder_channels: tuple[int, ...] = self.stage_channels[-2::-1]
        self.in_channels = int(self._arch_kwargs["input_channels"])
        self.out_channels = int(self._arch_kwargs["num_classes"])

    def encode(self, x: torch.Tensor, after_stage: StageHook | None = None) -> list[torch.Tensor]:
        """Features of every encoder stage, finest first (the stem belongs to stage 0)."""
        divisor = total_stride(self)
        sizes = tuple(x.shape[2:])
        if x.dim() != 5 or x.shape[1] != self.in_channels or any(s % d for s, d in zip(sizes, divisor, strict=True)):
            raise ValueError(
                f"expected an input [B, {self.in_channels}, X, Y, Z] with sizes divisible by {list(divisor)}, "
                f"got shape {tuple(x.shape)}"
            )
        stem = getattr(self.encoder, "stem", None)
        if stem is not None:
            x = stem(x)
        features = []
        for index, stage in enumerate(self.encoder.stages):
            x = apply_hook(after_stage, index, stage(x))
            features.append(x)
        return features

    def decode(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        """Output of every decoder stage, coarsest first."""
        below = features[-1]
        outputs = []
        for index, (up, stage) in enumerate(zip(self.decoder.transpconvs, self.decoder.stages, strict=True)):
            below = stage(torch.cat((up(below), features[-(index + 2)]), 1))
            outputs.append(below)
        return outputs

    def head(self, decoded: list[torch.Tensor]) -> torch.Tensor:
        """Logits from the last decoder stage (``decoder.seg_layers[-1]``)."""
        return self.decoder.seg_layers[-1](decoded[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, num_classes, X, Y, Z]``."""
        return self.head(self.decode(self.encode(x)))

    def spec_kwargs(self) -> dict[str, Any]:
        """The constructor arguments in plain ``arch_kwargs`` form."""
        return copy.deepcopy(self._arch_kwargs)


class ResEncUNet(_NnUNetBackbone, ResidualEncoderUNet):  # type: ignore[misc]
    """nnU-Net's residual-encoder U-Net, describable as a radiossl model spec."""

    stem_key = "encoder.stem.convs.0.conv.weight"
    # The first convolution is registered twice (ConvDropoutNormReLU keeps it in .conv and .all_modules):
    # both names are adapted when the number of input channels changes.
    stem_keys: tuple[str, ...] = ("encoder.stem.convs.0.conv.weight", "encoder.stem.convs.0.all_modules.0.weight")

    def __init__(self, **arch_kwargs: Any) -> None:
        plain = serialise_arch_kwargs(arch_kwargs)
        super().__init__(**resolve_arch_kwargs(plain))
        self._arch_kwargs = plain
        self._finish()


class PlainConvNet(_NnUNetBackbone, PlainConvUNet):  # type: ignore[misc]
    """nnU-Net's plain convolutional U-Net, describable as a radiossl model spec."""

    stem_key = "encoder.stages.0.0.convs.0.conv.weight"
    stem_keys: tuple[str, ...] = (
        "encoder.stages.0.0.convs.0.conv.weight",
        "encoder.stages.0.0.convs.0.all_modules.0.weight",
    )

    def __init__(self, **arch_kwargs: Any) -> None:
        plain = serialise_arch_kwargs(arch_kwargs)
        super().__init__(**resolve_arch_kwargs(plain))
        self._arch_kwargs = plain
        self._finish()


SPEC_CLASS_NAMES: dict[str, type[Any]] = {"ResidualEncoderUNet": ResEncUNet, "PlainConvUNet": PlainConvNet}
"""Model-spec class names (the library's own class names, as in an nnssl plan) → radiossl classes."""
