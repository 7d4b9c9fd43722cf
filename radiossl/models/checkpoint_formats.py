"""Recognise the checkpoint layouts radiossl reads, and describe what they hold.

Layouts (``family`` names):

* ``"radiossl"`` — ``{"format_version", "model": state_dict, "model_spec", "config", ...}``
  written by the radiossl engine;
* ``"radiossl-encoder"`` — ``{"format_version", "encoder": state_dict, "model_spec",
  "encoder_prefixes", "source"}`` written by :func:`radiossl.models.loading.export_encoder`;
* ``"models-genesis"`` — ``Genesis_Chest_CT.pt``: ``{"epoch", "state_dict", "optimizer_state_dict"}``
  with ``module.``-prefixed keys of the ModelsGenesis U-Net (no pretraining heads);
* ``"pcrlv2"`` — PCRLv2 releases and thesis PCRLv2 runs: ``{"opt", "state_dict", "optimizer", "epoch"}``
  where ``opt`` is a pickled ``argparse.Namespace`` (allowed in safe loading, see :data:`SAFE_GLOBALS`);
* ``"thesis-pretext"`` — thesis clustering runs, same container as PCRLv2 holding a ``Cluster3d``
  (K output channels) or ``ClusterPatch3d`` (``prototypes``) network;
* ``"thesis-finetune"`` — thesis fine-tuning runs: ``{"epoch", "state_dict", "optimizer_state_dict"}``
  holding the GroupNorm segmentation U-Net (with its unused pretraining heads);
* ``"nnssl"`` — nnssl / nnU-Net pretrained checkpoints: ``{"network_weights", "nnssl_adaptation_plan", ...}``,
  recognised by :mod:`radiossl.models.nnssl_format` (kernels converted to radiossl's axis order);
* ``"state-dict"`` — a bare ``{name: tensor}`` mapping, or any other dict holding one.

:func:`infer_model_spec` rebuilds a :func:`radiossl.models.factory.model_spec` from the key names
and shapes alone, verified by building the network on the ``meta`` device.

Example:
    >>> import torch
    >>> family, sd, meta = classify({"down_tr64.ops.0.conv1.weight": torch.zeros(8, 1, 3, 3, 3)})
    >>> family, meta["top_level_keys"]
    ('state-dict', [])
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from radiossl.errors import CheckpointError

FORMAT_VERSION = 1
"""Version of radiossl's own checkpoint layout (``format_version`` entry)."""

SAFE_GLOBALS: tuple[type, ...] = (
    # PCRLv2 releases and the thesis' pretext runs keep their training options under "opt". Unpickling
    # a Namespace calls only object.__new__ (never __init__) and fills its __dict__ with values that
    # pass the same weights-only checks; the class has no __setstate__/__reduce__ that could run code.
    argparse.Namespace,
)
"""Classes that known foreign checkpoint layouts hold and that safe loading allows besides torch's own
list. That list already covers the rest of these files: ``collections.OrderedDict`` (state dicts),
``torch.Size``, ``torch.device``, tensors and plain Python values. Anything else (``pathlib`` paths,
NumPy scalars or arrays, any function such as ``os.system``) is still refused by name."""

WRAPPER_PREFIXES: tuple[str, ...] = ("module.", "_orig_mod.")
"""Key prefixes added by DataParallel/DDP and ``torch.compile``; stripped when loading."""

_STATE_DICT_ENTRIES = ("state_dict", "model", "model_state_dict", "net", "network", "teacher", "student")
_OPTIMIZER_ENTRIES = ("optimizer", "optimizer_state_dict", "optim")
_ARGS_ENTRIES = ("opt", "args", "hparams", "hyper_parameters")
_STEM = "down_tr64.ops.0.conv1.weight"


@contextmanager
def allow_safe_globals() -> Iterator[None]:
    """Allow :data:`SAFE_GLOBALS` in ``torch.load(..., weights_only=True)`` inside the block only.

    The allowlist does not outlive the block, and classes the calling process had allowed itself
    (``torch.serialization.add_safe_globals``) stay allowed after it.
    """
    already = set(torch.serialization.get_safe_globals())
    with torch.serialization.safe_globals([cls for cls in SAFE_GLOBALS if cls not in already]):
        yield


def is_state_dict(obj: Any) -> bool:
    """True for a non-empty mapping of string keys to tensors."""
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def strip_wrapper_prefixes(key: str) -> str:
    """Remove leading ``module.`` / ``_orig_mod.`` (repeatedly, e.g. ``module._orig_mod.x`` -> ``x``)."""
    changed = True
    while changed:
        changed = False
        for prefix in WRAPPER_PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix) :]
                changed = True
    return key


def to_primitive(value: Any, depth: int = 0) -> Any:
    """A JSON-compatible summary of ``value`` (tensors become their shape, objects their ``repr``)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else f"tensor{list(value.shape)}"
    if isinstance(value, argparse.Namespace):
        value = vars(value)
    if depth >= 4:
        return f"<{type(value).__name__}>"
    if isinstance(value, Mapping):
        return {str(k): to_primitive(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_primitive(v, depth + 1) for v in value[:64]]
    item = getattr(value, "item", None)
    if callable(item):  # numpy scalars
        try:
            return to_primitive(item(), depth + 1)
        except (TypeError, ValueError):
            pass
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


def optimizer_summary(state: Any) -> dict[str, Any]:
    """Number of parameter groups/states and the first group's hyper-parameters of an optimizer state."""
    if isinstance(state, Mapping) and isinstance(state.get("param_groups"), list) and state["param_groups"]:
        groups = state["param_groups"]
        first = {k: to_primitive(v) for k, v in groups[0].items() if k != "params"}
        per_param = state.get("state")
        return {
            "param_groups": len(groups),
            "parameter_states": len(per_param) if isinstance(per_param, Mapping) else 0,
            **first,
        }
    return {"type": type(state).__name__}


def _content_kind(state_dict: Mapping[str, torch.Tensor]) -> str:
    """``patch-cluster-net``, ``unet3d+heads`` (PCRLv2 heads), ``unet3d``, ``encoder`` or ``unknown``."""
    keys = {strip_wrapper_prefixes(k) for k in state_dict}
    if "prototypes.weight" in keys:
        return "patch-cluster-net"
    if "up_tr256.bn.weight" in keys:
        return "unet3d+heads"
    if "up_tr256.up_conv.weight" in keys:
        return "unet3d"
    if _STEM in keys:
        return "encoder"
    return "unknown"


def _out_channels(state_dict: Mapping[str, torch.Tensor]) -> int | None:
    for key, value in state_dict.items():
        if strip_wrapper_prefixes(key) == "out_tr.final_conv.weight":
            return int(value.shape[0])
    return None


def classify(obj: Any, path: str | Path = "<memory>") -> tuple[str, dict[str, torch.Tensor], dict[str, Any]]:
    """``(family, state_dict as stored, metadata)`` of a loaded checkpoint object.

    Raises :class:`CheckpointError` when no state dict can be found.
    """
    meta: dict[str, Any] = {"top_level_keys": []}
    if is_state_dict(obj):
        meta["architecture"] = _content_kind(obj)
        return "state-dict", dict(obj), meta
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: holds a {type(obj).__name__}, not a dict of tensors or a checkpoint dict")
    from radiossl.models.nnssl_format import recognise as recognise_nnssl

    if (nnssl := recognise_nnssl(obj, path)) is not None:
        return nnssl
    meta["top_level_keys"] = [str(k) for k in obj]
    family: str
    if "format_version" in obj and is_state_dict(obj.get("encoder")):
        family, entry = "radiossl-encoder", "encoder"
    elif "format_version" in obj and is_state_dict(obj.get("model")):
        family, entry = "radiossl", "model"
    else:
        found = next((name for name in _STATE_DICT_ENTRIES if is_state_dict(obj.get(name))), None)
        if found is None:
            raise CheckpointError(
                f"{path}: no state dict found; top-level keys are {', '.join(meta['top_level_keys']) or 'none'}"
            )
        entry = found
        family = _foreign_family(obj, entry)
    state_dict = dict(obj[entry])
    meta["state_dict_entry"] = entry
    meta["architecture"] = _content_kind(state_dict)
    for name in _OPTIMIZER_ENTRIES:
        if name in obj:
            meta["optimizer"] = optimizer_summary(obj[name])
    for name in _ARGS_ENTRIES:
        if name in obj:
            meta["args"] = to_primitive(obj[name])
    for key, value in obj.items():
        if key == entry or key in _OPTIMIZER_ENTRIES or key in _ARGS_ENTRIES:
            continue
        if is_state_dict(value):
            meta.setdefault("other_state_dicts", []).append(str(key))
            continue
        meta[str(key)] = to_primitive(value)
    return family, state_dict, meta


def _foreign_family(obj: Mapping[str, Any], entry: str) -> str:
    if entry != "state_dict":
        return "state-dict"
    state_dict = obj[entry]
    kind = _content_kind(state_dict)
    pretext_container = "opt" in obj or "optimizer" in obj
    finetune_container = "optimizer_state_dict" in obj and not pretext_container
    if kind == "patch-cluster-net":
        return "thesis-pretext"
    if kind == "unet3d+heads":
        if pretext_container:
            # PCRLv2 has one output channel; the thesis' pixel-level clustering net has K.
            return "pcrlv2" if _out_channels(state_dict) in (1, None) else "thesis-pretext"
        return "thesis-finetune" if finetune_container else "state-dict"
    if kind == "unet3d" and (finetune_container or any(k.startswith("module.") for k in state_dict)):
        return "models-genesis"
    return "state-dict"


def infer_model_spec(state_dict: Mapping[str, torch.Tensor], family: str = "") -> dict[str, Any] | None:
    """Guess the radiossl ``model_spec`` whose ``state_dict`` has exactly these names and shapes.

    Returns ``None`` when the keys are not those of the U-Net family. GroupNorm and InstanceNorm have
    the same keys; ``"group"`` (the thesis fine-tuning norm) is assumed. ``family="models-genesis"``
    selects ModelsGenesis' batch-statistics norm.
    """
    from radiossl.models.factory import build_model

    sd = {strip_wrapper_prefixes(k): v for k, v in state_dict.items()}
    stem = sd.get(_STEM)
    second = sd.get("down_tr64.ops.1.conv1.weight")
    if stem is None or second is None or stem.dim() != 5:
        return None
    in_channels, width = int(stem.shape[1]), int(second.shape[0]) / 64
    if "down_tr64.ops.0.bn1.running_mean" in sd:
        norm = "genesis" if family == "models-genesis" else "batch"
    else:
        norm = "group"
    spec: dict[str, Any]
    if "prototypes.weight" in sd and "cluster_projection_head.weight" in sd:
        k, proj_dim = (int(s) for s in sd["prototypes.weight"].shape)
        spec = {
            "class": "PatchClusterNet",
            "kwargs": {
                "in_channels": in_channels,
                "k": k,
                "width": width,
                "norm": norm,
                "proj_dim": proj_dim,
            },
        }
    elif "up_tr256.up_conv.weight" in sd and "up_tr256.ops.0.conv1.weight" in sd:
        upsampled = int(sd["up_tr256.up_conv.weight"].shape[1])
        out = sd.get("out_tr.final_conv.weight")
        spec = {
            "class": "UNet3D",
            "kwargs": {
                "in_channels": in_channels,
                "out_channels": int(out.shape[0]) if out is not None else 1,
                "width": width,
                "skip_connections": int(sd["up_tr256.ops.0.conv1.weight"].shape[1]) > upsampled,
                "norm": norm,
                "decoder": True,
                "pretrain_heads": "up_tr256.bn.weight" in sd,
            },
        }
    else:
        spec = {"class": "Encoder3D", "kwargs": {"in_channels": in_channels, "width": width, "norm": norm}}
    try:
        with torch.device("meta"):
            expected = build_model(spec).state_dict()
    except CheckpointError:
        return None
    for key, value in expected.items():
        have = sd.get(key)
        if have is None and not key.endswith("num_batches_tracked"):
            return None
        if have is not None and have.shape != value.shape:
            return None
    return spec
