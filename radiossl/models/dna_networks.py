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

from radiossl.errors import ConfigError
from radiossl.models.arch_kwargs import resolve_arch_kwargs, serialise_arch_kwargs

INSTALL_HINT = "pip install --no-deps dynamic-network-architectures==0.4.4 einops"

try:
    from dynamic_network_architectures.architectures.unet import PlainConvUNet, ResidualEncoderUNet
except ImportError as err:  # pragma: no cover - exercised only without the optional dependency
    raise ConfigError(
        f"the nnU-Net backbones need dynamic-network-architectures ({err}); install it with: {INSTALL_HINT}"
    ) from err


class _ChannelCounts:
    """``in_channels`` / ``out_channels`` as radiossl's networks have them (evaluation checks them)."""

    _arch_kwargs: dict[str, Any]

    @property
    def in_channels(self) -> int:
        """Input channels (the library's ``input_channels``)."""
        return int(self._arch_kwargs["input_channels"])

    @property
    def out_channels(self) -> int:
        """Output channels (the library's ``num_classes``)."""
        return int(self._arch_kwargs["num_classes"])


class ResEncUNet(_ChannelCounts, ResidualEncoderUNet):  # type: ignore[misc]
    """nnU-Net's residual-encoder U-Net, describable as a radiossl model spec."""

    encoder_prefixes: tuple[str, ...] = ("encoder.",)
    # The first convolution is registered twice (ConvDropoutNormReLU keeps it in .conv and .all_modules):
    # both names are adapted when the number of input channels changes.
    stem_keys: tuple[str, ...] = ("encoder.stem.convs.0.conv.weight", "encoder.stem.convs.0.all_modules.0.weight")

    def __init__(self, **arch_kwargs: Any) -> None:
        plain = serialise_arch_kwargs(arch_kwargs)
        super().__init__(**resolve_arch_kwargs(plain))
        self._arch_kwargs = plain

    def spec_kwargs(self) -> dict[str, Any]:
        """The constructor arguments in plain ``arch_kwargs`` form."""
        return copy.deepcopy(self._arch_kwargs)


class PlainConvNet(_ChannelCounts, PlainConvUNet):  # type: ignore[misc]
    """nnU-Net's plain convolutional U-Net, describable as a radiossl model spec."""

    encoder_prefixes: tuple[str, ...] = ("encoder.",)
    stem_keys: tuple[str, ...] = (
        "encoder.stages.0.0.convs.0.conv.weight",
        "encoder.stages.0.0.convs.0.all_modules.0.weight",
    )

    def __init__(self, **arch_kwargs: Any) -> None:
        plain = serialise_arch_kwargs(arch_kwargs)
        super().__init__(**resolve_arch_kwargs(plain))
        self._arch_kwargs = plain

    def spec_kwargs(self) -> dict[str, Any]:
        """The constructor arguments in plain ``arch_kwargs`` form."""
        return copy.deepcopy(self._arch_kwargs)


SPEC_CLASS_NAMES: dict[str, type[Any]] = {"ResidualEncoderUNet": ResEncUNet, "PlainConvUNet": PlainConvNet}
"""Model-spec class names (the library's own class names, as in an nnssl plan) → radiossl classes."""
