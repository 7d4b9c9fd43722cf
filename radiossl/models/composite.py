"""A method's network around a backbone, with the backbone's own parameter names.

A pretext method adds heads to a backbone (prototypes, PCRLv2's projection heads). Checkpoints must
keep the backbone's key names at the top level (``down_tr64...`` of the thesis and PCRLv2 files,
``encoder.stages...`` of nnU-Net), so :class:`BackboneComposite` registers the backbone's child
modules as its own children instead of nesting the backbone under an attribute. The backbone object
is kept (unregistered) to run its ``encode``/``decode``/``head`` on those same child modules; it
must hold no parameters or buffers of its own, so moving or loading the composite moves and loads
everything the backbone uses.

Example:
    >>> import torch
    >>> from radiossl.models import UNet3D
    >>> net = BackboneComposite(UNet3D(width=0.125))
    >>> list(net.state_dict())[0], net.backbone.down_tr64 is net.down_tr64
    ('down_tr64.ops.0.conv1.weight', True)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from radiossl.models.backbone import StageHook, total_stride


def encoder_backbone(backbone: nn.Module | None, in_channels: int, width: float, norm: str) -> tuple[nn.Module, bool]:
    """The encoder a head network wraps, and whether its spec nests the backbone's.

    ``backbone`` None is the thesis encoder ``Encoder3D(in_channels, width, norm)``, which keeps the
    published checkpoint spec (flat constructor arguments); any other backbone is described by its
    own spec under ``kwargs.backbone`` (:func:`radiossl.models.factory.model_spec`).
    """
    from radiossl.models.unet3d import Encoder3D

    if backbone is None:
        backbone = Encoder3D(in_channels, width, norm)
    return backbone, type(backbone) is not Encoder3D


class BackboneComposite(nn.Module):
    """Adopts ``backbone``'s children (all of them, or only the encoder's with ``encoder_only=True``).

    Delegates the :class:`~radiossl.models.backbone.BackboneNetwork` interface to the backbone. With
    ``encoder_only`` the children outside ``encoder_prefixes`` (decoder, output head) are dropped,
    from the composite and from the backbone alike.
    """

    def __init__(self, backbone: Any, encoder_only: bool = False) -> None:
        super().__init__()
        if any(True for _ in backbone.parameters(recurse=False)) or any(True for _ in backbone.buffers(recurse=False)):
            raise ValueError(f"{type(backbone).__name__} holds parameters outside its child modules")
        prefixes = tuple(backbone.encoder_prefixes)
        for name, child in list(backbone.named_children()):
            owns_state = any(True for _ in child.parameters()) or any(True for _ in child.buffers())
            if encoder_only and owns_state and not (name + ".").startswith(prefixes):
                delattr(backbone, name)  # the decoder of a backbone that is always built whole
                continue
            self.add_module(name, child)
        object.__setattr__(self, "backbone", backbone)  # not a registered child: its children are ours
        self.encoder_only = encoder_only
        self.encoder_prefixes: tuple[str, ...] = prefixes
        self.decoder_prefixes: tuple[str, ...] = () if encoder_only else tuple(backbone.decoder_prefixes)
        self.stem_key: str = backbone.stem_key
        self.stage_channels: tuple[int, ...] = tuple(backbone.stage_channels)
        self.encoder_channels = self.stage_channels
        self.stage_strides: tuple[tuple[int, int, int], ...] = tuple(backbone.stage_strides)
        self.decoder_channels: tuple[int, ...] = () if encoder_only else tuple(backbone.decoder_channels)

    backbone: Any

    @property
    def total_stride(self) -> tuple[int, int, int]:
        """Voxels per bottleneck cell along each axis."""
        return total_stride(self)

    def train(self, mode: bool = True) -> BackboneComposite:
        """Training mode for the composite and the (unregistered) backbone object."""
        super().train(mode)
        self.backbone.training = mode
        return self

    def encode(self, x: torch.Tensor, after_stage: StageHook | None = None) -> list[torch.Tensor]:
        """The backbone's encoder stage features (see :class:`~radiossl.models.backbone.BackboneNetwork`)."""
        features: list[torch.Tensor] = self.backbone.encode(x, after_stage)
        return features

    def decode(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        """The backbone's decoder stage outputs, coarsest first."""
        if self.encoder_only:
            raise RuntimeError(f"{type(self).__name__} keeps the encoder only")
        decoded: list[torch.Tensor] = self.backbone.decode(features)
        return decoded

    def head(self, decoded: list[torch.Tensor]) -> torch.Tensor:
        """The backbone's output head on the last decoder stage."""
        if self.encoder_only:
            raise RuntimeError(f"{type(self).__name__} keeps the encoder only")
        out: torch.Tensor = self.backbone.head(decoded)
        return out
