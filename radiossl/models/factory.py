"""Describe a network as primitives and rebuild it: the ``model_spec`` stored in every checkpoint.

A spec is ``{"class": NAME, "kwargs": {...}}`` with JSON-compatible values only, so checkpoints
load with ``torch.load(weights_only=True)`` and the spec can be printed or written to JSON.
Built-in classes are :class:`UNet3D`, :class:`Encoder3D`, :class:`PatchClusterNet`,
:class:`MultiScaleHeadNet`, :class:`ProbeNet`, ``ContrastiveEncoder`` (simclr, voco) and the nnU-Net
U-Nets ``ResidualEncoderUNet`` / ``PlainConvUNet``; a plugin can add its own with
:func:`register_model_class` (the class needs a ``spec_kwargs()`` method returning its constructor
arguments).

Example:
    >>> from radiossl.models import UNet3D
    >>> spec = model_spec(UNet3D(width=0.125, norm="group"))
    >>> spec["class"], spec["kwargs"]["norm"]
    ('UNet3D', 'group')
    >>> type(build_model(spec)).__name__
    'UNet3D'
"""

from __future__ import annotations

from typing import Any

from torch import nn

from radiossl.errors import CheckpointError
from radiossl.models.multiscale import MultiScaleHeadNet
from radiossl.models.patch_cluster_net import PatchClusterNet
from radiossl.models.probe_net import ProbeNet
from radiossl.models.unet3d import Encoder3D, UNet3D

_CLASSES: dict[str, type[nn.Module]] = {
    "UNet3D": UNet3D,
    "Encoder3D": Encoder3D,
    "PatchClusterNet": PatchClusterNet,
    "MultiScaleHeadNet": MultiScaleHeadNet,
    "ProbeNet": ProbeNet,
}


_OPTIONAL_CLASSES: dict[str, str] = {
    "ResidualEncoderUNet": "radiossl.models.dna_networks",
    "PlainConvUNet": "radiossl.models.dna_networks",
    "ContrastiveEncoder": "radiossl.pretext.projection",
}
"""Classes imported only when a spec names them: those of optional dependencies (see :mod:`.dna_networks`)
and built-in method networks defined outside this package (``simclr``/``voco``'s encoder). Each module
lists its classes in ``SPEC_CLASS_NAMES``."""


def _optional_class(name: str) -> type[nn.Module] | None:
    module_name = _OPTIONAL_CLASSES.get(name)
    if module_name is None:
        return None
    import importlib

    module = importlib.import_module(module_name)
    cls: type[nn.Module] = module.SPEC_CLASS_NAMES[name]
    _CLASSES[name] = cls
    return cls


NESTED_NETWORK = "backbone"
"""The constructor argument of a head network (patch-cluster, PCRLv2, probe...) that holds its backbone:
a network in ``spec_kwargs()``, its own model spec in a stored spec (built first by :func:`build_model`)."""


def register_model_class(cls: type[nn.Module], name: str | None = None) -> None:
    """Make ``cls`` buildable by :func:`build_model` under ``name`` (default: the class name)."""
    if not callable(getattr(cls, "spec_kwargs", None)):
        raise TypeError(f"{cls.__name__} needs a spec_kwargs() method returning its constructor arguments")
    _CLASSES[name or cls.__name__] = cls


def model_classes() -> dict[str, type[nn.Module]]:
    """The classes :func:`build_model` knows, by name."""
    return dict(_CLASSES)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The network inside DataParallel/DistributedDataParallel and ``torch.compile`` wrappers."""
    while True:
        inner = getattr(model, "_orig_mod", None)
        if isinstance(inner, nn.Module):
            model = inner
            continue
        inner = getattr(model, "module", None)
        if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)) and isinstance(inner, nn.Module):
            model = inner
            continue
        return model


def model_spec(model: nn.Module) -> dict[str, Any]:
    """``{"class": name, "kwargs": constructor arguments}`` of a radiossl network (wrappers are unwrapped)."""
    net = unwrap_model(model)
    # a subclass that only adds a training forward names the registered class it is described as
    kind = getattr(type(net), "described_as", type(net))
    name = next((n for n, c in _CLASSES.items() if kind is c), None)
    if name is None and type(net).__module__ in _OPTIONAL_CLASSES.values():
        name = next((n for n in _OPTIONAL_CLASSES if _optional_class(n) is type(net)), None)
    spec_kwargs = getattr(net, "spec_kwargs", None)
    if name is None or not callable(spec_kwargs):
        raise CheckpointError(
            f"cannot describe a {type(net).__name__}: not a registered radiossl model class "
            f"({', '.join(sorted(_CLASSES))}); see radiossl.models.factory.register_model_class"
        )
    kwargs = dict(spec_kwargs())
    inner = kwargs.get(NESTED_NETWORK)
    if isinstance(inner, nn.Module):  # a head network around a backbone: describe the backbone too
        kwargs[NESTED_NETWORK] = model_spec(inner)
    return {"class": name, "kwargs": kwargs}


def backbone_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """The backbone's spec inside a method network's spec, or ``spec`` itself.

    Method networks around a backbone (:class:`PatchClusterNet`, :class:`MultiScaleHeadNet`) keep it
    under ``kwargs.backbone``; e.g. a patch-cluster checkpoint on ResEnc-L gives the
    ``ResidualEncoderUNet`` spec with its ``arch_kwargs``.
    """
    inner = (spec.get("kwargs") or {}).get("backbone")
    if isinstance(inner, dict) and isinstance(inner.get("class"), str):
        return backbone_spec(inner)
    return spec


def build_model(spec: dict[str, Any]) -> nn.Module:
    """A freshly initialised network from a :func:`model_spec` dict."""
    if not isinstance(spec, dict) or not isinstance(spec.get("class"), str):
        raise CheckpointError(f"model spec must be a dict with a 'class' name, got {spec!r}")
    name = spec["class"]
    cls = _CLASSES.get(name) or _optional_class(name)
    if cls is None:
        raise CheckpointError(f"model spec names unknown class {name!r}; known: {', '.join(sorted(_CLASSES))}")
    kwargs = spec.get("kwargs") or {}
    if not isinstance(kwargs, dict):
        raise CheckpointError(f"model spec kwargs must be a dict, got {kwargs!r}")
    inner = kwargs.get(NESTED_NETWORK)
    if isinstance(inner, dict) and isinstance(inner.get("class"), str):
        kwargs = {**kwargs, NESTED_NETWORK: build_model(inner)}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"model spec for {name} is invalid: {err}") from err
