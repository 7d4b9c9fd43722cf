"""What a backbone network offers the methods, and what a backbone plugin is.

Every network a method trains is built around a *backbone*: an encoder of stages, each at a coarser
resolution, and a decoder that climbs back to the input resolution with skip features, followed by
an output head. Methods use the backbone only through :class:`BackboneNetwork`:

* ``encode(x, after_stage=None)`` -> the features of every encoder stage, finest first; the last is
  the bottleneck. ``after_stage(i, features)`` (optional) replaces stage ``i``'s output before the
  next stage reads it (masked image modelling re-applies its mask there) and before it is kept as a
  skip feature;
* ``decode(features)`` -> the output of every decoder stage, coarsest first;
* ``head(decoded)`` -> the output logits from the decoder's last stage;
* ``stage_channels`` / ``stage_strides`` -> channels and stride (per axis, relative to the previous
  stage) of every encoder stage; ``decoder_channels`` -> channels of every decoder stage;
* ``encoder_prefixes`` / ``decoder_prefixes`` / ``head_prefixes`` / ``stem_key`` -> which parameter
  names are the encoder, decoder, head and first convolution (checkpoint transfer and freezing).

A backbone *plugin* (:class:`Backbone`, entry-point group ``radiossl.models``) turns ``config.model``
into such a network; :func:`radiossl.models.network.build_network` is the one place that calls it.

Example:
    >>> import torch
    >>> from radiossl.models import UNet3D
    >>> net = UNet3D(width=0.125)
    >>> total_stride(net), isinstance(net, BackboneNetwork)
    ((8, 8, 8), True)
    >>> [f.shape[1] for f in net.encode(torch.zeros(1, 1, 16, 16, 16))], net.decoder_channels
    ([8, 16, 32, 64], (32, 16, 8))
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import torch
from torch import nn

from radiossl.errors import ConfigError, PluginError

if TYPE_CHECKING:
    from radiossl.config import ModelConfig

GROUP = "radiossl.models"
"""The entry-point group of backbone plugins."""

StageHook = Callable[[int, torch.Tensor], torch.Tensor]
"""``after_stage(stage_index, features) -> features``, called on every encoder stage's output."""


@runtime_checkable
class BackboneNetwork(Protocol):
    """The interface every backbone network implements (see the module docstring)."""

    stage_channels: tuple[int, ...]
    stage_strides: tuple[tuple[int, int, int], ...]
    decoder_channels: tuple[int, ...]
    encoder_prefixes: tuple[str, ...]
    decoder_prefixes: tuple[str, ...]
    head_prefixes: tuple[str, ...]
    stem_key: str

    def encode(self, x: torch.Tensor, after_stage: StageHook | None = None) -> list[torch.Tensor]: ...

    def decode(self, features: list[torch.Tensor]) -> list[torch.Tensor]: ...

    def head(self, decoded: list[torch.Tensor]) -> torch.Tensor: ...


def total_stride(net: Any) -> tuple[int, int, int]:
    """Voxels per bottleneck cell along each axis: the product of the encoder's stage strides."""
    out = [1, 1, 1]
    for stride in net.stage_strides:
        out = [a * int(b) for a, b in zip(out, stride, strict=True)]
    return (out[0], out[1], out[2])


def stage_scales(net: Any) -> list[tuple[int, int, int]]:
    """Downsampling of every encoder stage's output relative to the input (finest first)."""
    scales, current = [], (1, 1, 1)
    for stride in net.stage_strides:
        current = (current[0] * int(stride[0]), current[1] * int(stride[1]), current[2] * int(stride[2]))
        scales.append(current)
    return scales


def check_divisible(size: Sequence[int], divisor: Sequence[int], where: str, backbone: str) -> None:
    """Raise a one-line :class:`ConfigError` unless every axis of ``size`` is a multiple of ``divisor``."""
    if any(int(s) % int(d) for s, d in zip(size, divisor, strict=True)):
        raise ConfigError(
            f"{where}: every size must be a multiple of the {backbone} backbone's total stride "
            f"{list(divisor)}, got {list(size)}"
        )


def apply_hook(hook: StageHook | None, index: int, features: torch.Tensor) -> torch.Tensor:
    """``hook(index, features)``, or ``features`` when there is no hook."""
    return features if hook is None else hook(index, features)


@dataclass(frozen=True)
class NetworkRequest:
    """What a method asks of the backbone, besides ``config.model``.

    ``decoder=False``: the method uses the encoder only (patch-level clustering); a backbone may
    then leave its decoder out. ``stage_heads=True``: the method wants PCRLv2's projection heads on
    every decoder stage; a backbone that owns such heads in its own key layout (the original
    ``UNet3D``) builds them and returns them from ``stage_heads()``; otherwise the method's network
    adds them.
    """

    in_channels: int
    out_channels: int
    decoder: bool = True
    stage_heads: bool = False


class Backbone(ABC):
    """A backbone plugin: builds a :class:`BackboneNetwork` from ``config.model``.

    Subclasses set ``name`` and ``summary`` and implement :meth:`build` and :meth:`stage_strides`
    (which must not need the optional dependencies, so that sizes are checked before anything is built).
    """

    name: str = ""
    summary: str = ""

    @abstractmethod
    def build(self, model: ModelConfig, request: NetworkRequest) -> nn.Module:
        """A freshly initialised network for ``request`` (on the CPU)."""

    @abstractmethod
    def stage_strides(self, model: ModelConfig) -> tuple[tuple[int, int, int], ...]:
        """The stride of every encoder stage, as the built network will report it."""

    def total_stride(self, model: ModelConfig) -> tuple[int, int, int]:
        """Input sizes must be multiples of this along each axis."""
        return total_stride(_Strides(self.stage_strides(model)))

    def describe(self) -> str:
        """One line for ``radiossl config show`` and the docs."""
        return self.summary


@dataclass(frozen=True)
class _Strides:
    stage_strides: tuple[tuple[int, int, int], ...]


def get_backbone(name: str) -> Backbone:
    """The backbone plugin registered as ``name`` (an instance; classes are instantiated)."""
    from radiossl import registry

    if not registry.names(GROUP):
        raise PluginError(
            f"no backbone is registered (entry-point group {GROUP}), not even radiossl's own: the installed "
            "radiossl metadata predates them; reinstall it (pip install -e . --no-deps in a source checkout)"
        )
    obj = registry.get(GROUP, name)
    if isinstance(obj, type) and issubclass(obj, Backbone):
        obj = obj()
    if not isinstance(obj, Backbone):
        raise PluginError(f"backbone plugin {name!r} is {obj!r}, not a radiossl.models.backbone.Backbone")
    return obj


def backbone_names() -> list[str]:
    """The names ``model.name`` accepts."""
    from radiossl import registry

    return registry.names(GROUP)


def backbone_summaries() -> list[tuple[str, str]]:
    """``(name, one-line summary)`` of every registered backbone; a broken plugin's line is its error."""
    rows = []
    for name in backbone_names():
        try:
            rows.append((name, get_backbone(name).describe()))
        except PluginError as exc:
            rows.append((name, f"unavailable: {exc}"))
    return rows
