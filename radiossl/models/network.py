"""The one place a network is built from ``config.model``: :func:`build_network`.

Every pretext method and finetuning call this with what they need (channels, decoder or not, PCRLv2
stage heads); the backbone plugin named by ``model.name`` builds it. Input sizes are checked
against the backbone's total stride by :func:`check_sizes` before any data is read.

Example:
    >>> from radiossl.config import ModelConfig
    >>> net = build_network(ModelConfig(width=0.125), in_channels=1, out_channels=3)
    >>> type(net).__name__, net.out_channels
    ('UNet3D', 3)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from torch import nn

from radiossl.errors import ConfigError
from radiossl.models.backbone import NetworkRequest, check_divisible, get_backbone

if TYPE_CHECKING:
    from radiossl.config import ModelConfig


def build_network(
    model: ModelConfig,
    in_channels: int,
    out_channels: int,
    decoder: bool = True,
    stage_heads: bool = False,
    input_sizes: Mapping[str, Sequence[int] | None] | None = None,
    batch_size: int | None = None,
) -> nn.Module:
    """A freshly initialised backbone network for ``model`` (see :class:`~radiossl.models.backbone.NetworkRequest`).

    ``input_sizes`` (setting name -> training input size) are checked against the backbone's total
    stride first, with ``batch_size`` samples per forward call (see :func:`check_sizes`), so a crop
    size the backbone cannot take is a one-line error before anything is built or read.
    """
    backbone = get_backbone(model.name)
    if input_sizes:
        check_sizes(model, input_sizes, batch_size=batch_size)
    request = NetworkRequest(in_channels, out_channels, decoder=decoder, stage_heads=stage_heads)
    return backbone.build(model, request)


def input_divisor(model: ModelConfig) -> tuple[int, int, int]:
    """Every input size must be a multiple of this (the backbone's total stride), without building it."""
    return get_backbone(model.name).total_stride(model)


def check_sizes(model: ModelConfig, sizes: Mapping[str, Sequence[int] | None], batch_size: int | None = None) -> None:
    """One-line :class:`~radiossl.errors.ConfigError` naming the setting whose size the backbone cannot take.

    ``sizes`` maps a setting name (``"data.crop_size"``) to its size; ``None`` entries are skipped.
    ``batch_size`` (samples per training forward call, when these sizes are trained on) also refuses
    a one-voxel bottleneck under batch statistics with a single sample: batch norm then has one
    value per channel and torch stops the first step.
    """
    divisor = input_divisor(model)
    for where, size in sizes.items():
        if size is None:
            continue
        check_divisible(size, divisor, where, model.name)
        if not all(int(s) == int(d) for s, d in zip(size, divisor, strict=True)):
            continue
        # one bottleneck voxel: instance norm has one value per channel and sample; batch statistics
        # have one per channel when a forward call holds a single sample
        if model.norm == "instance":
            cause, advice = "instance norm cannot normalise", "model.norm=batch"
        elif model.norm in ("batch", "genesis") and batch_size == 1:
            cause, advice = f"{model.norm} norm cannot normalise with optim.batch_size 1", "a batch size of at least 2"
        else:
            continue
        raise ConfigError(
            f"{where}: {list(size)} equals the {model.name} backbone's total stride {list(divisor)}, which leaves "
            f"a one-voxel bottleneck that {cause}; use a larger size along one axis (e.g. twice the stride) "
            f"or {advice}"
        )
