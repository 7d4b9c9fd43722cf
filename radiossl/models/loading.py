"""Load any checkpoint radiossl reads into a radiossl network, with a report of what happened.

This is the one loader behind ``radiossl finetune --weights``, ``radiossl checkpoint`` and the
notebook API. Reading files (safely, ``torch.load(weights_only=True)`` plus the ``argparse.Namespace``
of PCRLv2 and thesis files), recognising their layout, prefix cleaning and encoder export belong to
:mod:`radiossl.models.checkpoint`; this module puts the tensors into a network:

* :func:`load_pretrained` copies the encoder (``transfer="encoder"``) or everything that matches in
  name and shape (``"all"``) into a model, adapts the first convolution to a different number of
  input channels, and returns a :class:`LoadReport`;
* :func:`model_from_checkpoint` rebuilds the network a checkpoint describes and loads it strictly.

Example:
    >>> import torch, tempfile, pathlib
    >>> from radiossl.models import UNet3D
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "sd.pt"
    >>> torch.save(UNet3D(width=0.125).state_dict(), path)
    >>> report = load_pretrained(UNet3D(in_channels=4, width=0.125, norm="group"), path)
    >>> len(report.adapted), len(report.shape_mismatched)
    (1, 0)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

import torch
from torch import nn

from radiossl.errors import CheckpointError, ConfigError
from radiossl.models.checkpoint import (
    DEFAULT_ENCODER_PREFIXES,
    STEM_KEY,
    RawCheckpoint,
    classify,
    clean_state_dict,
    read_checkpoint,
    spec_of,
)
from radiossl.models.factory import build_model, unwrap_model
from radiossl.utils.text_table import TextTable


class ShapeMismatch(NamedTuple):
    """A tensor present in both, with different shapes (not loaded)."""

    key: str
    checkpoint_shape: tuple[int, ...]
    model_shape: tuple[int, ...]


class AdaptedTensor(NamedTuple):
    """A tensor loaded after changing its shape (first convolution for other input channels)."""

    key: str
    checkpoint_shape: tuple[int, ...]
    model_shape: tuple[int, ...]
    how: str


@dataclass
class LoadReport:
    """What :func:`load_pretrained` did.

    ``matched``: loaded as is; ``adapted``: loaded after adaptation; ``missing``: model tensors in
    the transferred part that the checkpoint lacks (they keep their initial values);
    ``unexpected``: checkpoint tensors in the transferred part the model has no place for;
    ``shape_mismatched``: same name, other shape (skipped); ``skipped``: checkpoint tensors outside
    the transferred part (e.g. the decoder when ``transfer="encoder"``).
    """

    source: str
    family: str
    transfer: str
    matched: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    shape_mismatched: list[ShapeMismatch] = field(default_factory=list)
    adapted: list[AdaptedTensor] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def loaded(self) -> int:
        """Number of tensors written into the model."""
        return len(self.matched) + len(self.adapted)

    @property
    def problems(self) -> list[str]:
        """Reasons a strict load fails (missing ``num_batches_tracked`` buffers are tolerated)."""
        out = [f"missing {k}" for k in self.missing if not k.endswith("num_batches_tracked")]
        out += [f"unexpected {k}" for k in self.unexpected]
        out += [
            f"shape {m.key}: checkpoint {list(m.checkpoint_shape)} vs model {list(m.model_shape)}"
            for m in self.shape_mismatched
        ]
        return out

    def summary(self) -> str:
        """One line, e.g. ``loaded 56 tensors (encoder) from a.pt [pcrlv2]: 0 missing, 113 skipped, ...``."""
        return (
            f"loaded {self.loaded} tensors ({self.transfer}) from {self.source} [{self.family}]: "
            f"{len(self.adapted)} adapted, {len(self.missing)} missing, {len(self.unexpected)} unexpected, "
            f"{len(self.shape_mismatched)} shape-mismatched, {len(self.skipped)} outside the transfer"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form (for run folders)."""
        return {
            "source": self.source,
            "family": self.family,
            "transfer": self.transfer,
            "matched": list(self.matched),
            "missing": list(self.missing),
            "unexpected": list(self.unexpected),
            "shape_mismatched": [m._asdict() for m in self.shape_mismatched],
            "adapted": [a._asdict() for a in self.adapted],
            "skipped": list(self.skipped),
        }

    def blocks(self) -> list[BlockCounts]:
        """The report counted per top-level module (``down_tr64`` ... ``out_tr``), in report order."""
        counts: dict[str, BlockCounts] = {}

        def block(key: str) -> BlockCounts:
            name = key.split(".", 1)[0]
            return counts.setdefault(name, BlockCounts(name))

        for key in self.matched:
            block(key).loaded += 1
        for adapted in self.adapted:
            row = block(adapted.key)
            row.loaded += 1
            row.note(f"adapted {adapted.key} ({adapted.how})", priority=3)
        for mismatch in self.shape_mismatched:
            row = block(mismatch.key)
            row.shape_mismatched += 1
            row.note(
                f"shape {mismatch.key}: {list(mismatch.checkpoint_shape)} vs model {list(mismatch.model_shape)}",
                priority=0,
            )
        for key in self.missing:
            row = block(key)
            if is_running_statistic(key):
                row.running_statistics += 1
                row.note("BN running statistics missing: kept initial values", priority=4)
            else:
                row.missing += 1
                row.note(f"missing {key}: kept its initial value", priority=1)
        for key in self.unexpected:
            row = block(key)
            if is_running_statistic(key):
                row.running_statistics += 1
                row.note("BN running statistics: the model's norm layers keep none", priority=4)
            else:
                row.unexpected += 1
                row.note(f"unexpected {key}: no such tensor in the model", priority=2)
        for key in self.skipped:
            row = block(key)
            row.skipped += 1
            row.note(f"outside transfer={self.transfer}", priority=5)
        return list(counts.values())

    def as_table(self, verbose: bool = False) -> TextTable:
        """The report as a table: one row per block, or with ``verbose`` one row per tensor.

        Per block: tensors loaded (adapted ones included), missing, unexpected, BatchNorm running
        statistics not loaded (counted apart from missing/unexpected: they are expected when a
        BatchNorm checkpoint meets a GroupNorm/InstanceNorm model), shape mismatches, tensors
        outside the transfer, and the first issue as an example.
        """
        if not verbose:
            columns = ("block", "loaded", "missing", "unexpected", "BN stats", "shape", "skipped", "first issue")
            rows = [
                (
                    row.block,
                    str(row.loaded),
                    str(row.missing),
                    str(row.unexpected),
                    str(row.running_statistics),
                    str(row.shape_mismatched),
                    str(row.skipped),
                    row.first_issue,
                )
                for row in self.blocks()
            ]
            return TextTable(self.summary(), columns, rows, right=tuple(range(1, 7)))
        rows_v: list[tuple[str, str, str, str]] = [(_MATCHED, key, "", "") for key in self.matched]
        rows_v += [
            (_ADAPTED, a.key, str(list(a.checkpoint_shape)), f"{list(a.model_shape)}: {a.how}") for a in self.adapted
        ]
        rows_v += [
            (_SHAPE, m.key, str(list(m.checkpoint_shape)), str(list(m.model_shape))) for m in self.shape_mismatched
        ]
        rows_v += [(_MISSING, key, "", "kept initial value") for key in self.missing]
        rows_v += [
            (_UNEXPECTED, key, "", "BatchNorm running statistic" if is_running_statistic(key) else "not in the model")
            for key in self.unexpected
        ]
        rows_v += [("skipped", key, "", f"outside transfer={self.transfer}") for key in self.skipped]
        return TextTable(self.summary(), ("status", "tensor", "checkpoint shape", "model shape / note"), rows_v)


_MATCHED, _ADAPTED, _SHAPE, _MISSING, _UNEXPECTED = "matched", "adapted", "shape", "missing", "unexpected"


@dataclass
class BlockCounts:
    """What :func:`load_pretrained` did with the tensors of one top-level module."""

    block: str
    loaded: int = 0
    missing: int = 0
    unexpected: int = 0
    running_statistics: int = 0  # BatchNorm running statistics not loaded (missing or unexpected)
    shape_mismatched: int = 0
    skipped: int = 0
    first_issue: str = ""
    _issue_priority: int = field(default=99, repr=False)

    def note(self, text: str, priority: int) -> None:
        """Keep ``text`` as the example when nothing more important (lower ``priority``) was noted."""
        if priority < self._issue_priority:
            self.first_issue, self._issue_priority = text, priority


def is_running_statistic(key: str) -> bool:
    """Whether ``key`` names a BatchNorm running statistic (running_mean, running_var, num_batches_tracked)."""
    return key.rsplit(".", 1)[-1] in _RUNNING_STATISTICS


_RUNNING_STATISTICS = frozenset({"running_mean", "running_var", "num_batches_tracked"})
"""Buffer names of BatchNorm statistics: unexpected when the model normalises with GroupNorm/InstanceNorm."""


def adapt_input_channels(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """First-conv weight ``[out, C, ...]`` adapted to ``in_channels`` inputs: sum over C, tile, divide.

    The result responds to an input whose ``in_channels`` channels all show the same image exactly as
    the original responds to that image on all its C channels. So 1 -> 4 channels tiles the kernel
    with a 1/4 scale (an unscaled tile, as in the thesis, makes the first activations 4x larger:
    spec §8 item 19), and 4 -> 1 sums the four kernels (a mean would shrink activations 4x).
    """
    total = weight.sum(dim=1, keepdim=True)
    repeats = [1, in_channels] + [1] * (weight.dim() - 2)
    return total.repeat(*repeats) / in_channels


def _can_adapt(checkpoint_shape: torch.Size, model_shape: torch.Size) -> bool:
    return (
        len(checkpoint_shape) == len(model_shape) >= 3
        and checkpoint_shape[0] == model_shape[0]
        and checkpoint_shape[2:] == model_shape[2:]
        and checkpoint_shape[1] != model_shape[1]
    )


def _as_raw(source: str | Path | RawCheckpoint | Mapping[str, Any], allow_unsafe: bool) -> RawCheckpoint:
    if isinstance(source, RawCheckpoint):
        return source
    if isinstance(source, Mapping):
        family, state_dict, meta = classify(source)
        return RawCheckpoint(state_dict=state_dict, family=family, meta=meta)
    return read_checkpoint(source, allow_unsafe=allow_unsafe)


def load_pretrained(
    model: nn.Module,
    source: str | Path | RawCheckpoint | Mapping[str, Any],
    transfer: Literal["encoder", "all"] = "encoder",
    strict: bool = False,
    adapt_in_channels: bool | Literal["scale", "repeat"] = True,
    allow_unsafe: bool = False,
    key_map: Mapping[str, str | None] | None = None,
) -> LoadReport:
    """Copy pretrained tensors from ``source`` into ``model`` and report what was loaded.

    Args:
        model: the target network (DataParallel/DDP/compiled wrappers are unwrapped).
        source: checkpoint file (any supported layout), :class:`RawCheckpoint`, or a state dict.
        transfer: ``"encoder"`` copies keys under the model's ``encoder_prefixes`` (``down_tr*``);
            ``"all"`` copies every tensor whose name and shape match.
        strict: raise :class:`CheckpointError` if, within the transferred part, anything is missing
            (other than ``num_batches_tracked``), unexpected or of another shape.
        adapt_in_channels: adapt the first convolution when input channel counts differ
            (``True``/``"scale"``: see :func:`adapt_input_channels`; ``"repeat"``: the thesis' unscaled
            tiling, 1 -> C only; ``False``: report it as a shape mismatch).
        allow_unsafe: unpickle arbitrary objects (trusted files only).
        key_map: prefix renames/drops applied after cleaning (see :func:`clean_state_dict`).

    Normalisation tensors load by name: BatchNorm running statistics are loaded when the model has
    them, and BatchNorm affine parameters fill GroupNorm/InstanceNorm ones (same names and shapes).
    """
    if transfer not in ("encoder", "all"):
        raise ConfigError(f"transfer must be 'encoder' or 'all', got {transfer!r}")
    if adapt_in_channels not in (True, False, "scale", "repeat"):
        raise ConfigError(f"adapt_in_channels must be True, False, 'scale' or 'repeat', got {adapt_in_channels!r}")
    raw = _as_raw(source, allow_unsafe)
    net = unwrap_model(model)
    state = clean_state_dict(raw.state_dict, key_map)
    target = net.state_dict()
    prefixes = tuple(getattr(net, "encoder_prefixes", DEFAULT_ENCODER_PREFIXES))
    # A network may register its first convolution under several names (stem_keys); all are adapted.
    stem_keys = tuple(getattr(net, "stem_keys", ())) or (getattr(net, "stem_key", STEM_KEY),)

    def in_scope(key: str) -> bool:
        return transfer == "all" or key.startswith(prefixes)

    report = LoadReport(source=raw.source, family=raw.family, transfer=transfer)
    to_load: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if not in_scope(key):
            report.skipped.append(key)
            continue
        if key not in target:
            report.unexpected.append(key)
            continue
        want = target[key]
        if value.shape == want.shape:
            to_load[key] = value.to(want.dtype)
            report.matched.append(key)
        elif adapt_in_channels and key in stem_keys and _can_adapt(value.shape, want.shape):
            adapted, how = _adapt(value, int(want.shape[1]), adapt_in_channels)
            if adapted is None:
                report.shape_mismatched.append(ShapeMismatch(key, tuple(value.shape), tuple(want.shape)))
                continue
            to_load[key] = adapted.to(want.dtype)
            report.adapted.append(AdaptedTensor(key, tuple(value.shape), tuple(want.shape), how))
        else:
            report.shape_mismatched.append(ShapeMismatch(key, tuple(value.shape), tuple(want.shape)))
    report.missing = [k for k in target if in_scope(k) and k not in state]
    if strict and report.problems:
        shown = "; ".join(report.problems[:5]) + (" ..." if len(report.problems) > 5 else "")
        raise CheckpointError(
            f"{raw.source}: does not fit {type(net).__name__} strictly ({len(report.problems)} problems: {shown})"
        )
    net.load_state_dict(to_load, strict=False)
    return report


def _adapt(weight: torch.Tensor, in_channels: int, mode: bool | str) -> tuple[torch.Tensor | None, str]:
    """Adapted first-conv weight and a note on how, or ``(None, "")`` when ``mode`` cannot apply."""
    c = int(weight.shape[1])
    if mode != "repeat":
        note = f"summed over {c}, tiled {in_channels}x, scaled 1/{in_channels}"
        return adapt_input_channels(weight, in_channels), note
    if c != 1:
        return None, ""
    tiled = weight.repeat(1, in_channels, *([1] * (weight.dim() - 2)))
    return tiled, f"tiled {in_channels}x without scaling"


def model_from_checkpoint(
    source: str | Path | RawCheckpoint, allow_unsafe: bool = False
) -> tuple[nn.Module, LoadReport]:
    """Rebuild the network a checkpoint describes and load all its tensors strictly."""
    raw = _as_raw(source, allow_unsafe)
    spec = spec_of(raw)
    if spec is None:
        raise CheckpointError(f"{raw.source}: cannot tell which network these tensors belong to ({raw.family})")
    model = build_model(spec)
    return model, load_pretrained(model, raw, transfer="all", strict=True, adapt_in_channels=False)
