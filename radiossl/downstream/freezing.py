"""Which parts of a network train during finetuning: ``all``, ``decoder`` or ``last``.

* ``all`` — every parameter trains.
* ``decoder`` — the decoder (``up_tr*``) and the output layer (``out_tr``) train; the encoder is frozen.
* ``last`` — only the output layer trains.

Frozen means *really* frozen (unlike the thesis code, spec §7.2 step 5): their parameters get
``requires_grad=False`` (no gradient, so no optimiser update and no weight decay), and their
normalisation layers stay in eval mode during training (:func:`train_mode`), so BatchNorm running
statistics are not updated by finetuning batches either.

Example:
    >>> from radiossl.models import UNet3D
    >>> net = UNet3D(width=0.125, norm="batch")
    >>> report = freeze(net, "decoder")
    >>> any(p.requires_grad for p in net.down_tr64.parameters()), net.out_tr.final_conv.weight.requires_grad
    (False, True)
    >>> train_mode(net, report); net.down_tr64.ops[0].bn1.training, net.up_tr64.training
    (False, True)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from torch import nn

from radiossl.errors import ConfigError

TrainPart = Literal["all", "decoder", "last"]

NORM_TYPES: tuple[type[nn.Module], ...] = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def _unwrap(model: nn.Module) -> nn.Module:
    from radiossl.models.factory import unwrap_model

    return unwrap_model(model)


def trainable_prefixes(model: nn.Module, part: TrainPart) -> tuple[str, ...] | None:
    """Parameter-name prefixes that train for ``part`` (``None`` = everything trains)."""
    net = _unwrap(model)
    if part == "all":
        return None
    heads = tuple(getattr(net, "head_prefixes", ("out_tr",)))
    decoder = tuple(getattr(net, "decoder_prefixes", ("up_tr",)))
    if part == "last":
        prefixes = heads
    elif part == "decoder":
        prefixes = decoder + heads
    else:
        raise ConfigError(f"train must be all, decoder or last, got {part!r}")
    if not prefixes:
        raise ConfigError(f"train={part!r} needs a network with a decoder/output layer ({type(net).__name__})")
    return prefixes


@dataclass
class FreezeReport:
    """What :func:`freeze` did: parameter names that train and that are frozen, and frozen norm layers."""

    part: str
    trainable: list[str] = field(default_factory=list)
    frozen: list[str] = field(default_factory=list)
    frozen_norms: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line, e.g. ``train=decoder: 40 parameter tensors train, 52 frozen (...)``."""
        return (
            f"train={self.part}: {len(self.trainable)} parameter tensors train, {len(self.frozen)} frozen"
            f" ({len(self.frozen_norms)} norm layers kept in eval mode)"
        )


def _is_trainable(name: str, prefixes: tuple[str, ...] | None) -> bool:
    return prefixes is None or name.startswith(prefixes)


def freeze(model: nn.Module, part: TrainPart) -> FreezeReport:
    """Set ``requires_grad`` for ``part`` and list the norm layers that must stay in eval mode."""
    net = _unwrap(model)
    prefixes = trainable_prefixes(net, part)
    report = FreezeReport(part=part)
    for name, param in net.named_parameters():
        keep = _is_trainable(name, prefixes)
        param.requires_grad_(keep)
        (report.trainable if keep else report.frozen).append(name)
    for name, module in net.named_modules():
        if name and isinstance(module, NORM_TYPES) and not _is_trainable(name + ".", prefixes):
            report.frozen_norms.append(name)
    return report


def train_mode(model: nn.Module, report: FreezeReport | None) -> None:
    """``model.train()``, then the frozen norm layers of ``report`` back to eval mode."""
    model.train()
    if report is None or not report.frozen_norms:
        return
    modules = dict(_unwrap(model).named_modules())
    for name in report.frozen_norms:
        modules[name].eval()
