"""Checkpoint files: radiossl's format, reading and writing them safely, recognising other layouts, encoder export.

This module is the one owner of what a checkpoint file is. The training engine writes and resumes its
checkpoints through it (the engine keeps only the RNG state and the choice of which file to resume,
:mod:`radiossl.engine.checkpoint`), and :mod:`radiossl.models.loading` loads any file it reads into a
network.

* **Format.** :data:`FORMAT_VERSION` of radiossl's own layouts; :func:`save_checkpoint` writes
  atomically after checking that ``torch.load(weights_only=True)`` can read the payload back
  (:func:`save_weights`: a model's weights alone);
  :func:`load_checkpoint` reads a radiossl training checkpoint; :func:`to_plain` turns values into
  storable primitives (or, with ``summary=True``, into a short description for display).
* **Keys.** :func:`strip_wrapper_prefixes` / :func:`clean_state_dict` remove the ``module.`` and
  ``_orig_mod.`` prefixes DataParallel/DDP and ``torch.compile`` add.
* **Any layout.** :func:`read_checkpoint` reads a file with the safe unpickler (plus
  :data:`SAFE_GLOBALS`) and :func:`classify` recognises its layout by asking the registered
  recognisers in turn (:func:`register_recogniser`; built-in formats kept in their own module are
  listed in :data:`FORMAT_MODULES`). :func:`infer_model_spec` rebuilds a model spec from key names
  and shapes alone.
* **Encoder export.** :func:`export_encoder` writes the encoder of any readable file as a radiossl
  encoder file.

Layouts (``family`` names):

* ``"radiossl"`` — written by the engine (``format_version`` 1)::

      {"format_version": 1, "radiossl_version": str, "torch_version": str,
       "kind": "pretrain" | "finetune", "name": method/task name,
       "config": resolved config (JSON-compatible dict), "model": state_dict (no "module." prefix),
       "model_spec": {"class", "kwargs"}, "optimizer": state_dict, "scheduler": state_dict,
       "grad_scaler": state_dict, "epoch": completed epochs, "global_step": optimiser steps,
       "rng": {"world_size": n, "states": [per-rank RNG state]}, "best_metric": float | None,
       "history": [per-epoch dicts], "scale": effective batch and learning rate (optim.BatchScale),
       "steps_per_epoch": optimiser steps per epoch, "stopped_early": bool,
       "early_stopping": {"best": float | None, "stale": int}}

* ``"radiossl-encoder"`` — ``{"format_version", "encoder": state_dict, "model_spec",
  "encoder_prefixes", "source"}`` written by :func:`export_encoder`;
* ``"models-genesis"`` — ``Genesis_Chest_CT.pt``: ``{"epoch", "state_dict", "optimizer_state_dict"}``
  with ``module.``-prefixed keys of the ModelsGenesis U-Net (no pretraining heads);
* ``"pcrlv2"`` — PCRLv2 releases and thesis PCRLv2 runs: ``{"opt", "state_dict", "optimizer", "epoch"}``
  where ``opt`` is a pickled ``argparse.Namespace`` (allowed in safe loading, see :data:`SAFE_GLOBALS`);
* ``"thesis-pretext"`` — thesis clustering runs, same container as PCRLv2 holding a ``Cluster3d``
  (K output channels) or ``ClusterPatch3d`` (``prototypes``) network;
* ``"thesis-finetune"`` — thesis fine-tuning runs: ``{"epoch", "state_dict", "optimizer_state_dict"}``
  holding the GroupNorm segmentation U-Net (with its unused pretraining heads);
* ``"state-dict"`` — a bare ``{name: tensor}`` mapping, or any other dict holding one.

Example:
    >>> import tempfile, pathlib, torch
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "c.pt"
    >>> _ = save_checkpoint(path, {"format_version": FORMAT_VERSION, "model": {"module.w": torch.zeros(2)}})
    >>> raw = read_checkpoint(path)
    >>> raw.family, list(clean_state_dict(raw.state_dict))
    ('radiossl', ['w'])
"""

from __future__ import annotations

import argparse
import importlib
import pickle
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from radiossl.errors import CheckpointError
from radiossl.models.factory import build_model, model_classes
from radiossl.models.unet3d import Encoder3D
from radiossl.utils.atomic import atomic_write_path

FORMAT_VERSION = 1
"""Version of radiossl's own checkpoint layouts (their ``format_version`` entry)."""

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
"""Key prefixes added by DataParallel/DDP and ``torch.compile``; stripped when loading and saving."""

STEM_KEY: str = Encoder3D.stem_key
"""The U-Net family's first convolution weight (its input channels tell a checkpoint's in_channels)."""

DEFAULT_ENCODER_PREFIXES: tuple[str, ...] = Encoder3D.encoder_prefixes
"""Key prefixes of the encoder when neither the file nor the network class names its own."""

UNSAFE_HINT = "pass allow_unsafe=True (CLI: --allow-unsafe-pickle), but only for files you trust"

_STATE_DICT_ENTRIES = ("state_dict", "model", "model_state_dict", "net", "network", "teacher", "student")
_OPTIMIZER_ENTRIES = ("optimizer", "optimizer_state_dict", "optim")
_ARGS_ENTRIES = ("opt", "args", "hparams", "hyper_parameters")
_PRIMITIVES = (bool, int, float, str, type(None))


# --------------------------------------------------------------------------------------------------
# Values and keys


def to_plain(value: Any, summary: bool = False, _depth: int = 0) -> Any:
    """``value`` as primitives, lists and string-keyed dicts.

    Tensors and NumPy values become numbers or lists, paths strings, tuples lists and an
    ``argparse.Namespace`` its dict; anything else is returned as it is (so that
    :func:`check_weights_only_safe` names it). With ``summary`` the result is a short JSON-compatible
    description for display instead: tensors and arrays of more than one element become their shape,
    containers are cut at depth 4 and 64 items, other objects become their (shortened) ``repr``.
    """
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, torch.Tensor):
        if value.numel() == 1:
            return value.item()
        return f"tensor{list(value.shape)}" if summary else value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        if summary:
            return value.item() if value.size == 1 else f"array{list(value.shape)}"
        return value.tolist()
    if isinstance(value, argparse.Namespace):
        value = vars(value)
    if summary and _depth >= 4:
        return f"<{type(value).__name__}>"
    if isinstance(value, Mapping):
        return {str(k): to_plain(v, summary, _depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v, summary, _depth + 1) for v in (value[:64] if summary else value)]
    if not summary:
        return value
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


def check_weights_only_safe(obj: Any, where: str = "checkpoint") -> None:
    """Raise CheckpointError if ``obj`` holds anything but tensors, primitives, lists, tuples and dicts.

    Catches e.g. numpy scalars, ``Path`` objects or pydantic models before they end up pickled into a
    file that ``torch.load(weights_only=True)`` would refuse.
    """
    if isinstance(obj, torch.Tensor) or type(obj) in _PRIMITIVES:  # exact types: no str/int subclasses
        return
    if isinstance(obj, Mapping):
        for key, value in obj.items():
            if not isinstance(key, (str, int)):
                raise CheckpointError(f"{where}: key {key!r} of type {type(key).__name__} cannot be stored safely")
            check_weights_only_safe(value, f"{where}.{key}")
        return
    if isinstance(obj, (list, tuple)):
        for index, value in enumerate(obj):
            check_weights_only_safe(value, f"{where}[{index}]")
        return
    raise CheckpointError(
        f"{where}: a {type(obj).__module__}.{type(obj).__name__} cannot be stored "
        "(checkpoints hold only tensors and primitives so that weights_only=True loading works)"
    )


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


def clean_state_dict(
    state_dict: Mapping[str, Any], key_map: Mapping[str, str | None] | None = None
) -> dict[str, torch.Tensor]:
    """Strip wrapper prefixes (``module.``, ``_orig_mod.``), drop non-tensors and apply ``key_map``.

    ``key_map`` renames key prefixes, longest match first, e.g. ``{"encoder.": "down_tr64."}``; a
    prefix mapped to ``None`` drops those keys (``{"out_tr.": None}``).

    Raises:
        CheckpointError: two keys map to the same name.
    """
    renames = sorted((key_map or {}).items(), key=lambda item: len(item[0]), reverse=True)
    out: dict[str, torch.Tensor] = {}
    for raw_key, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            continue
        key: str | None = strip_wrapper_prefixes(str(raw_key))
        for old, new in renames:
            if key is not None and key.startswith(old):
                key = None if new is None else new + key[len(old) :]
                break
        if key is None:
            continue
        if key in out:
            raise CheckpointError(f"two checkpoint tensors map to the same name {key!r} (check key_map)")
        out[key] = value
    return out


# --------------------------------------------------------------------------------------------------
# radiossl's own files: save and load


def save_checkpoint(path: str | Path, payload: Mapping[str, Any]) -> Path:
    """Write ``payload`` to ``path`` atomically after checking it is ``weights_only``-safe."""
    path = Path(path)
    check_weights_only_safe(payload)
    with atomic_write_path(path) as tmp:
        torch.save(dict(payload), tmp)
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a radiossl training checkpoint with ``weights_only=True``.

    Raises:
        CheckpointError: the file is missing, unreadable, not a radiossl training checkpoint, or of a
            newer ``format_version`` than this radiossl reads.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for truncated/corrupt files
        raise CheckpointError(f"{path}: cannot read checkpoint: {_first_line(exc, with_type=False)}") from exc
    if not isinstance(obj, dict) or "format_version" not in obj or "model" not in obj:
        raise CheckpointError(f"{path}: not a radiossl training checkpoint (no format_version/model entries)")
    version = obj["format_version"]
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format_version {version!r} is newer than this radiossl supports "
            f"({FORMAT_VERSION}); upgrade radiossl"
        )
    return obj


def portable_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The weights of ``model`` as checkpoints store them: wrapper prefixes removed, on the CPU, in the
    standard (contiguous) layout whatever ``runtime.memory_format`` trained with."""
    return {k: v.detach().cpu().contiguous() for k, v in clean_state_dict(model.state_dict()).items()}


def save_weights(
    path: str | Path, model: torch.nn.Module, model_spec: Mapping[str, Any] | None, meta: Mapping[str, Any]
) -> Path:
    """Write the weights of ``model`` to ``path`` atomically: the ``"radiossl"`` layout without optimiser state.

    ``meta`` adds entries such as ``kind``, ``name``, ``config`` and ``epoch`` (stored as primitives). The file
    loads wherever a training checkpoint's weights do (``--weights``), e.g. the probe monitor's snapshots.
    """
    payload = {
        **{str(k): to_plain(v) for k, v in meta.items()},
        "format_version": FORMAT_VERSION,
        "model": portable_state_dict(model),
        "model_spec": to_plain(model_spec),
    }
    return save_checkpoint(path, payload)


# --------------------------------------------------------------------------------------------------
# Any layout: read and recognise


@dataclass
class RawCheckpoint:
    """A checkpoint as read from disk: its state dict (keys as stored), layout family and metadata."""

    state_dict: dict[str, torch.Tensor]
    family: str
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def source(self) -> str:
        """The file name, or ``<memory>`` for checkpoints built in memory."""
        return str(self.path) if self.path is not None else "<memory>"


class Recognised(NamedTuple):
    """What a recogniser found in a checkpoint dict: the layout's family and the entry holding its state dict.

    A format that must convert its weights (e.g. nnssl's axis order) returns them as ``state_dict``
    and its own description as ``meta``; :func:`classify` then uses those as they are.
    """

    family: str
    entry: str
    state_dict: dict[str, torch.Tensor] | None = None
    meta: dict[str, Any] | None = None


Recogniser = Callable[[Mapping[str, Any], str], Recognised | None]
"""Looks at a loaded checkpoint dict (and the file's name, for its messages); returns what it
recognised, or ``None`` for another layout."""


@contextmanager
def allow_safe_globals() -> Iterator[None]:
    """Allow :data:`SAFE_GLOBALS` in ``torch.load(..., weights_only=True)`` inside the block only.

    The allowlist does not outlive the block, and classes the calling process had allowed itself
    (``torch.serialization.add_safe_globals``) stay allowed after it.
    """
    already = set(torch.serialization.get_safe_globals())
    with torch.serialization.safe_globals([cls for cls in SAFE_GLOBALS if cls not in already]):
        yield


def read_checkpoint(path: str | Path, allow_unsafe: bool = False) -> RawCheckpoint:
    """Read a checkpoint file of any supported layout on the CPU and recognise it.

    Loads with ``weights_only=True`` and the classes of :data:`SAFE_GLOBALS` allowed; files holding
    other pickled objects raise :class:`CheckpointError` naming the first one, unless ``allow_unsafe``
    (which runs the unpickler without limits: only for trusted files).
    """
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"{p}: file not found")
    if p.is_dir():
        raise CheckpointError(f"{p}: is a directory, expected a checkpoint file")
    try:
        if allow_unsafe:
            obj = torch.load(p, map_location="cpu", weights_only=False)
        else:
            with allow_safe_globals():
                obj = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if allow_unsafe:
            raise CheckpointError(f"{p}: cannot be unpickled ({_first_line(err)})") from err
        # A refused global ("GLOBAL posix.system"), or a class only met when an object is built.
        found = re.search(r"GLOBAL ([\w.]+)", str(err)) or re.search(r"but got <class '([\w.]+)'>", str(err))
        if found is None:
            detail = re.search(r"WeightsUnpickler error:\s*(\S[^\n]*)", str(err))
            reason = detail.group(1).strip() if detail else _first_line(err)
            raise CheckpointError(f"{p}: not a readable PyTorch checkpoint ({reason})") from err
        raise CheckpointError(
            f"{p}: holds pickled Python objects ({found.group(1)}) that safe loading refuses; "
            f"to load it anyway, {UNSAFE_HINT}"
        ) from err
    except Exception as err:  # torch raises many types for truncated, foreign or corrupt files
        raise CheckpointError(f"{p}: not a readable PyTorch checkpoint ({_first_line(err)})") from err
    family, state_dict, meta = classify(obj, p)
    return RawCheckpoint(state_dict=state_dict, family=family, meta=meta, path=p)


def _first_line(err: BaseException, with_type: bool = True) -> str:
    text = str(err).strip().splitlines()
    if not text:
        return type(err).__name__
    return f"{type(err).__name__}: {text[0]}" if with_type else text[0]


def _radiossl_layout(obj: Mapping[str, Any], path: str) -> Recognised | None:
    if "format_version" not in obj:
        return None
    if is_state_dict(obj.get("encoder")):
        return Recognised("radiossl-encoder", "encoder")
    if is_state_dict(obj.get("model")):
        return Recognised("radiossl", "model")
    return None


def _known_container(obj: Mapping[str, Any], path: str) -> Recognised | None:
    """ModelsGenesis, PCRLv2 and thesis files, or any dict holding a state dict under a usual name."""
    entry = next((name for name in _STATE_DICT_ENTRIES if is_state_dict(obj.get(name))), None)
    return None if entry is None else Recognised(_foreign_family(obj, entry), entry)


FORMAT_MODULES: tuple[str, ...] = ("radiossl.models.nnssl_format:recognise",)
"""Built-in recognisers that live in a format's own module, as ``"module:function"``; imported when
the first checkpoint is classified and asked before the generic container match."""

_recognisers: list[Recogniser] = [_radiossl_layout]
_modules_loaded = False


def register_recogniser(recogniser: Recogniser) -> None:
    """Teach :func:`classify` a layout: asked after radiossl's own and before the generic container match."""
    if recogniser not in _recognisers:
        _recognisers.append(recogniser)


def recognisers() -> list[Recogniser]:
    """Every recogniser :func:`classify` asks, in order (radiossl's layouts, registered ones, the generic match)."""
    global _modules_loaded
    if not _modules_loaded:
        _modules_loaded = True
        for target in FORMAT_MODULES:
            module, _, name = target.partition(":")
            register_recogniser(getattr(importlib.import_module(module), name))
    return [*_recognisers, _known_container]


def classify(obj: Any, path: str | Path = "<memory>") -> tuple[str, dict[str, torch.Tensor], dict[str, Any]]:
    """``(family, state_dict as stored, metadata)`` of a loaded checkpoint object.

    Raises :class:`CheckpointError` when no state dict can be found.

    Example:
        >>> family, sd, meta = classify({STEM_KEY: torch.zeros(8, 1, 3, 3, 3)})
        >>> family, meta["top_level_keys"], meta["architecture"]
        ('state-dict', [], 'encoder')
    """
    meta: dict[str, Any] = {"top_level_keys": []}
    if is_state_dict(obj):
        meta["architecture"] = _content_kind(obj)
        return "state-dict", dict(obj), meta
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: holds a {type(obj).__name__}, not a dict of tensors or a checkpoint dict")
    meta["top_level_keys"] = [str(k) for k in obj]
    found = next((answer for recognise in recognisers() if (answer := recognise(obj, str(path))) is not None), None)
    if found is None:
        raise CheckpointError(
            f"{path}: no state dict found; top-level keys are {', '.join(meta['top_level_keys']) or 'none'}"
        )
    family, entry = found.family, found.entry
    if found.state_dict is not None:
        return family, found.state_dict, {**meta, "state_dict_entry": entry, **(found.meta or {})}
    state_dict = dict(obj[entry])
    meta["state_dict_entry"] = entry
    meta["architecture"] = _content_kind(state_dict)
    for name in _OPTIMIZER_ENTRIES:
        if name in obj:
            meta["optimizer"] = optimizer_summary(obj[name])
    for name in _ARGS_ENTRIES:
        if name in obj:
            meta["args"] = to_plain(obj[name], summary=True)
    for key, value in obj.items():
        if key == entry or key in _OPTIMIZER_ENTRIES or key in _ARGS_ENTRIES:
            continue
        if is_state_dict(value):
            meta.setdefault("other_state_dicts", []).append(str(key))
            continue
        # The spec rebuilds the network, so it is kept whole: a backbone's spec nested in a method network's
        # (ProbeNet, PatchClusterNet, MultiScaleHeadNet) is deeper than a display summary goes.
        meta[str(key)] = to_plain(value) if key == "model_spec" else to_plain(value, summary=True)
    return family, state_dict, meta


def optimizer_summary(state: Any) -> dict[str, Any]:
    """Number of parameter groups/states and the first group's hyper-parameters of an optimizer state."""
    if isinstance(state, Mapping) and isinstance(state.get("param_groups"), list) and state["param_groups"]:
        groups = state["param_groups"]
        first = {k: to_plain(v, summary=True) for k, v in groups[0].items() if k != "params"}
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
    if STEM_KEY in keys:
        return "encoder"
    return "unknown"


def _out_channels(state_dict: Mapping[str, torch.Tensor]) -> int | None:
    for key, value in state_dict.items():
        if strip_wrapper_prefixes(key) == "out_tr.final_conv.weight":
            return int(value.shape[0])
    return None


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


# --------------------------------------------------------------------------------------------------
# Which network a file holds


def infer_model_spec(state_dict: Mapping[str, torch.Tensor], family: str = "") -> dict[str, Any] | None:
    """Guess the radiossl ``model_spec`` whose ``state_dict`` has exactly these names and shapes.

    Returns ``None`` when the keys are not those of the U-Net family. GroupNorm and InstanceNorm have
    the same keys; ``"group"`` (the thesis fine-tuning norm) is assumed. ``family="models-genesis"``
    selects ModelsGenesis' batch-statistics norm. The guess is verified by building the network on
    the ``meta`` device.
    """
    sd = {strip_wrapper_prefixes(k): v for k, v in state_dict.items()}
    stem = sd.get(STEM_KEY)
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
            "kwargs": {"in_channels": in_channels, "k": k, "width": width, "norm": norm, "proj_dim": proj_dim},
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


def spec_of(raw: RawCheckpoint) -> dict[str, Any] | None:
    """The ``model_spec`` stored in a radiossl checkpoint, or one inferred from the tensors."""
    spec = raw.meta.get("model_spec")
    if isinstance(spec, dict) and isinstance(spec.get("class"), str):
        return spec
    return infer_model_spec(raw.state_dict, raw.family)


# --------------------------------------------------------------------------------------------------
# Encoder export


def encoder_prefixes_of(raw: RawCheckpoint, spec: dict[str, Any] | None) -> tuple[str, ...]:
    """The encoder's key prefixes: stored in the file, else those of the spec's network class, else ``down_tr``."""
    stored = raw.meta.get("encoder_prefixes")
    if isinstance(stored, list) and stored and all(isinstance(p, str) for p in stored):
        return tuple(stored)
    cls = model_classes().get(spec["class"]) if spec else None
    return tuple(getattr(cls, "encoder_prefixes", DEFAULT_ENCODER_PREFIXES)) or DEFAULT_ENCODER_PREFIXES


def export_encoder(
    path: str | Path,
    out: str | Path,
    allow_unsafe: bool = False,
    key_map: Mapping[str, str | None] | None = None,
) -> Path:
    """Write the encoder of checkpoint ``path`` as a radiossl encoder file ``out`` (atomically).

    The file is ``{"format_version", "encoder": state_dict, "model_spec": Encoder3D spec or None,
    "encoder_prefixes", "source": {path, family, model_spec, epoch}}`` and loads with
    ``weights_only=True``.
    """
    raw = read_checkpoint(path, allow_unsafe=allow_unsafe)
    state = clean_state_dict(raw.state_dict, key_map)
    source_spec = spec_of(raw)
    prefixes = encoder_prefixes_of(raw, source_spec)
    encoder = {k: v.detach().clone() for k, v in state.items() if k.startswith(prefixes)}
    if not encoder:
        raise CheckpointError(f"{path}: no encoder tensors (no key starts with {', '.join(prefixes)})")
    encoder_spec: dict[str, Any] | None
    kwargs = source_spec.get("kwargs", {}) if source_spec else {}
    if source_spec and source_spec["class"] in ("UNet3D", "PatchClusterNet", "Encoder3D") and kwargs:
        encoder_spec = {
            "class": "Encoder3D",
            "kwargs": {k: kwargs[k] for k in ("in_channels", "width", "norm") if k in kwargs},
        }
    else:
        encoder_spec = infer_model_spec(encoder, raw.family)
    payload = {
        "format_version": FORMAT_VERSION,
        "encoder": encoder,
        "model_spec": to_plain(encoder_spec),
        "encoder_prefixes": list(prefixes),
        "source": {
            "path": str(Path(path).resolve()),
            "family": raw.family,
            "model_spec": to_plain(source_spec, summary=True),
            "epoch": to_plain(raw.meta.get("epoch"), summary=True),
        },
    }
    return save_checkpoint(out, payload)
