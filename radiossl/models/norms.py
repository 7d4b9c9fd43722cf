"""Normalisation layers of the 3D U-Net family.

``make_norm(kind, channels)`` builds one of four flavours, all stored under the same attribute
names so that checkpoints trained with one flavour can be loaded into another:

* ``"batch"`` — :class:`torch.nn.BatchNorm3d` (momentum 0.1): PCRLv2 and the thesis pretext models;
* ``"group"`` — :class:`torch.nn.GroupNorm` with 8 groups: the thesis fine-tuning U-Net;
* ``"instance"`` — :class:`torch.nn.InstanceNorm3d` with affine parameters;
* ``"genesis"`` — :class:`ContBatchNorm3d`, the ModelsGenesis layer that always normalises with the
  statistics of the current batch, in training *and* evaluation mode.

A layer with a single output channel always gets ``BatchNorm3d`` (GroupNorm(8) cannot split one
channel); the original networks do the same for their 1-channel deep-supervision heads.

Also here: :class:`SafeBatchNorm1d`, the ``BatchNorm1d`` of the PCRLv2 projection heads made
usable with a batch of one sample.

Example:
    >>> import torch
    >>> norm = make_norm("genesis", 8)
    >>> x = torch.randn(2, 8, 4, 4, 4)
    >>> torch.allclose(norm.train()(x), norm.eval()(x))
    True
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

NormKind = Literal["batch", "group", "instance", "genesis"]
NORM_KINDS: tuple[str, ...] = ("batch", "group", "instance", "genesis")
GROUPS = 8

# Names used by the original code bases (and by people who know them).
_ALIASES = {"bn": "batch", "gn": "group", "in": "instance", "cbn": "genesis"}


def canonical_norm(kind: str) -> NormKind:
    """Map a norm name or one of its aliases (``bn``, ``gn``, ``in``, ``cbn``) to its canonical name.

    Raises ``ValueError`` for unknown names.
    """
    name = _ALIASES.get(kind, kind)
    if name not in NORM_KINDS:
        raise ValueError(f"unknown norm {kind!r}; expected one of {', '.join(NORM_KINDS)}")
    return name  # type: ignore[return-value]


class ContBatchNorm3d(nn.BatchNorm3d):
    """BatchNorm3d that always normalises with the current batch's statistics (ModelsGenesis).

    The layer keeps ``running_mean``/``running_var``/``num_batches_tracked`` buffers so that
    ModelsGenesis checkpoints load key for key, but never uses them for normalisation. Unlike the
    original, the running statistics are only updated in training mode, so evaluating a model does
    not change its state; they then describe the training batches, which makes a later switch to
    ordinary BatchNorm meaningful.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        if self.training and self.track_running_stats and self.running_mean is not None:
            assert self.num_batches_tracked is not None
            self.num_batches_tracked.add_(1)
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, True, factor, self.eps)
        return F.batch_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)


class SafeBatchNorm1d(nn.BatchNorm1d):
    """BatchNorm1d that accepts a training batch of one sample.

    Batch statistics of a single sample are undefined (PyTorch raises). For such a batch this layer
    normalises with its running statistics and leaves them unchanged; for two or more samples it is
    exactly ``nn.BatchNorm1d``. Parameter and buffer names are those of ``nn.BatchNorm1d``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] == 1 and self.running_mean is not None:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)
        return super().forward(x)


class GroupNorm3d(nn.GroupNorm):
    """GroupNorm with :data:`GROUPS` groups, built from the channel count alone.

    dynamic-network-architectures builds a network's norm layers as ``norm_op(channels, **norm_op_kwargs)``;
    ``nn.GroupNorm`` takes the number of groups first, so the nnU-Net backbones use this class for
    ``model.norm = "group"``.
    """

    def __init__(self, num_channels: int, eps: float = 1e-5, affine: bool = True) -> None:
        if num_channels % GROUPS:
            raise ValueError(f"GroupNorm({GROUPS}) needs a multiple of {GROUPS} channels, got {num_channels}")
        super().__init__(GROUPS, num_channels, eps=eps, affine=affine)


def make_norm(kind: str, channels: int) -> nn.Module:
    """Build a 3-D normalisation layer for ``channels`` feature maps (BatchNorm3d when ``channels == 1``)."""
    name = canonical_norm(kind)
    if channels == 1 or name == "batch":
        return nn.BatchNorm3d(channels, momentum=0.1)
    if name == "genesis":
        return ContBatchNorm3d(channels, momentum=0.1)
    if name == "group":
        if channels % GROUPS:
            raise ValueError(f"GroupNorm({GROUPS}) needs a multiple of {GROUPS} channels, got {channels}")
        return nn.GroupNorm(GROUPS, channels, eps=1e-5, affine=True)
    return nn.InstanceNorm3d(channels, affine=True)
