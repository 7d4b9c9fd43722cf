"""What a sweep is: its settings (:class:`SweepSection`), the methods it compares and its cells.

A sweep config is a finetune config of one task with one more section, ``sweep`` (the grid), so a
thesis finetune config (``thesis/finetune/brats-r040``) is a valid sweep config as it stands and
``--set sweep.ratios=[0.1,1.0]`` works like any override. Every cell is the finetune config with
``data.ratio``, ``runtime.seed``, ``weights``, ``transfer`` and ``train`` set for that cell.

Cells are named readably, ``<method>-r<percent>-s<seed>[-<transfer>-<train>][-<mode>]``, e.g.
``patch-cluster-r005-s1-encoder-all`` or ``scratch-r100-s2``. ``scratch`` cells train from random
weights (``transfer: none``, ``train: all``): one per ratio and seed, whatever transfer and train modes
the pretrained methods sweep over.

The labelled training subsets come from finetune's own rule (:func:`radiossl.data.splits.training_subset`):
for a given ratio and seed every method trains on the same cases, and the subsets of one seed are
nested (the 5 % subset contains the 1 % subset). :func:`plan_subsets` lists them for ``subsets.json``
and every cell records the subset it trained on.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, create_model, field_validator, model_validator

from radiossl.config import Section, load_config_file_into
from radiossl.errors import ConfigError, DataError

THESIS_RATIOS: tuple[float, ...] = (0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 1.0)
"""The label ratios of the thesis' label-efficiency curves (its Table 5.2 uses 0.4)."""
SCRATCH = "scratch"
"""The ``--weights`` value (and method name) of training from random weights."""
FORMAT = "radiossl-sweep"
SWEEP_FORMAT_VERSION = 1
NON_IDENTITY_FIELDS: dict[str, Any] = {
    "out": True,
    "weights": True,  # per cell; each checkpoint's SHA-256 stands for it in sweep.json
    "transfer": True,
    "train": True,
    "allow_unsafe_pickle": True,
    "sweep": True,
    "logging": True,
    "data": {"root", "ratio", "workers"},
    "runtime": {"seed", "device", "workers"},
}
"""Fields of the sweep config that are not part of what its results are results of (``sweep.json``):
per-cell values, paths that differ between machines, and execution settings."""


class SweepSection(Section):
    """The grid of a label-efficiency sweep: methods x label ratios x seeds x transfer/train modes."""

    weights: list[str] = Field(
        default_factory=list,
        description="What to compare: checkpoint files (PATH or NAME=PATH) and 'scratch' (random weights).",
    )
    ratios: list[float] = Field(
        default_factory=lambda: list(THESIS_RATIOS),
        description="Label ratios: fractions of the training cases (nested, seeded subsets).",
    )
    seeds: int = Field(3, ge=1, description="Seeds per setting: runtime.seed, runtime.seed + 1, ...")
    transfer: list[Literal["encoder", "all"]] = Field(
        default_factory=lambda: ["encoder"],  # type: ignore[arg-type]
        description="What each checkpoint hands on (one cell per value).",
    )
    train: list[Literal["all", "decoder", "last"]] = Field(
        default_factory=lambda: ["all"],  # type: ignore[arg-type]
        description="What trains (one cell per value; scratch always trains all).",
    )
    mode: Literal["finetune", "probe"] = Field(
        "finetune",
        description="How a cell adapts the network: finetune, or probe (frozen encoder, a trained linear head); "
        "then evaluate.",
    )
    split: Literal["test", "val"] = Field("test", description="Cases every cell is evaluated on.")
    protocol: Literal["full", "thesis-crops"] = Field("full", description="Evaluation protocol of every cell.")
    checkpoint: Literal["best", "final"] = Field(
        "best", description="Which finetuned checkpoint is evaluated: best (by validation Dice) or final."
    )

    @field_validator("ratios")
    @classmethod
    def _ratios_in_range(cls, ratios: list[float]) -> list[float]:
        if not ratios:
            raise ValueError("give at least one label ratio")
        wrong = [r for r in ratios if not 0.0 < r <= 1.0]
        if wrong:
            raise ValueError(f"label ratios must be in (0, 1], got {wrong}")
        return sorted(set(ratios))

    @field_validator("transfer", "train")
    @classmethod
    def _at_least_one(cls, values: list[str]) -> list[str]:
        if not values:
            raise ValueError("give at least one value")
        return list(dict.fromkeys(values))

    @model_validator(mode="after")
    def _probe_trains_its_head(self) -> SweepSection:
        if self.mode == "probe" and self.train != ["all"]:
            raise ValueError(f"train={self.train} does not apply to mode probe (it trains only its head); leave it all")
        return self


@cache
def sweep_config_class(task: str) -> tuple[type[Any], dict[str, Any]]:
    """``(config class, defaults)`` of a sweep over ``task``: its finetune config plus a ``sweep`` section."""
    from radiossl.downstream.config import task_config_class

    finetune_class, defaults = task_config_class(task, "finetune")
    config_class = create_model(  # type: ignore[call-overload]
        f"Sweep{finetune_class.__name__}",
        __base__=finetune_class,
        __doc__="A label-efficiency sweep: the finetune config of every cell and the grid (sweep).",
        sweep=(SweepSection, Field(default_factory=SweepSection, description="The grid of the sweep.")),
    )
    return config_class, defaults


def load_sweep_config(
    name: str | None = None,
    file: str | Path | None = None,
    overrides: Sequence[str] = (),
    flags: dict[str, Any] | None = None,
) -> Any:
    """Resolve a sweep config: defaults < task defaults < file < ``--set`` < flags (as for finetune)."""
    from radiossl.downstream.config import task_name_from_file

    in_file = task_name_from_file(file) if file is not None else None
    name = name or in_file
    if name is None:
        raise ConfigError("no task given: use --task NAME or set task.name in the config file")
    if in_file is not None and in_file != name:
        raise ConfigError(f"{file}: task.name is {in_file!r} but --task is {name!r}")
    config_class, defaults = sweep_config_class(name)
    return load_config_file_into(config_class, file, overrides, defaults, flags)


# ------------------------------------------------------------------------------------------ methods


@dataclass(frozen=True)
class Method:
    """One row of the comparison: a checkpoint (or scratch) and the name it is shown under."""

    name: str
    weights: Path | None
    sha256: str | None = None

    @property
    def is_scratch(self) -> bool:
        return self.weights is None


def _checkpoint_method_name(path: Path) -> str | None:
    """The pretext method a radiossl pretraining checkpoint was made by (None for other files)."""
    import torch

    try:
        payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # a foreign or unsafe-pickled checkpoint: named after its file instead
        return None
    if isinstance(payload, dict) and payload.get("kind") == "pretrain" and isinstance(payload.get("name"), str):
        return str(payload["name"])
    return None


def default_method_name(path: Path, read_name: Callable[[Path], str | None] = _checkpoint_method_name) -> str:
    """A readable name for a checkpoint: its pretext method, else its file stem (its folder for checkpoint_*.pt)."""
    from radiossl.engine.run_dir import safe_name

    named = read_name(path)
    if named:
        return safe_name(named)
    stem = path.stem
    return safe_name(path.parent.name if stem.startswith("checkpoint") and path.parent.name else stem)


def parse_methods(entries: Sequence[str], hash_file: Callable[[Path], str] | None = None) -> list[Method]:
    """The methods named by ``sweep.weights`` entries: ``scratch``, ``PATH`` or ``NAME=PATH``.

    Raises:
        ConfigError: no entry, a checkpoint file that does not exist, or two methods with one name.
    """
    from radiossl.engine.run_dir import safe_name
    from radiossl.utils.fragments import file_sha256

    digest = hash_file or file_sha256
    if not entries:
        raise ConfigError(
            "sweep.weights: nothing to compare; give --weights CKPT (repeatable) and/or --weights scratch"
        )
    methods: list[Method] = []
    for entry in entries:
        text = entry.strip()
        if text.lower() == SCRATCH:
            methods.append(Method(SCRATCH, None))
            continue
        name, sep, rest = text.partition("=")
        if sep and not Path(text).exists() and name and "/" not in name and "\\" not in name:
            label, path = safe_name(name), Path(rest)
        else:
            label, path = "", Path(text)
        if not path.is_file():
            raise ConfigError(f"sweep.weights: {path}: no such checkpoint file")
        methods.append(Method(label or default_method_name(path), path.resolve(), digest(path)))
    seen: dict[str, Method] = {}
    for method in methods:
        if method.name in seen:
            if method.is_scratch:
                raise ConfigError("sweep.weights: scratch is given twice")
            raise ConfigError(
                f"sweep.weights: {seen[method.name].weights} and {method.weights} would both be shown as "
                f"{method.name!r}; name them: --weights NAME=PATH"
            )
        if method.name == SCRATCH and not method.is_scratch:
            raise ConfigError(f"sweep.weights: {method.weights}: the name 'scratch' is reserved for random weights")
        seen[method.name] = method
    return methods


# -------------------------------------------------------------------------------------------- cells


def ratio_label(ratio: float) -> str:
    """``r001`` for 0.01, ``r040`` for 0.4, ``r100`` for 1.0, ``r2p5`` for 0.025 (percent of training cases)."""
    percent = round(100.0 * ratio, 6)
    if percent == int(percent):
        return f"r{int(percent):03d}"
    return "r" + f"{percent:g}".replace(".", "p")


@dataclass(frozen=True)
class Cell:
    """One run of the grid: a method finetuned at one label ratio with one seed and one transfer/train mode."""

    method: str
    ratio: float
    seed: int
    transfer: str
    train: str
    mode: str = "finetune"

    @property
    def id(self) -> str:
        """The cell's folder name under ``<sweep>/cells``."""
        parts = [self.method, ratio_label(self.ratio), f"s{self.seed}"]
        if self.method != SCRATCH:
            parts.append(f"{self.transfer}-{self.train}")
        if self.mode != "finetune":
            parts.append(self.mode)
        return "-".join(parts)

    @property
    def label(self) -> str:
        """The method and mode as the report shows them (without ratio and seed)."""
        if self.method == SCRATCH:
            return SCRATCH
        if self.mode != "finetune":  # a probe trains no part of the network: its mode is what it is
            return f"{self.method} ({self.transfer}, {self.mode})"
        return f"{self.method} ({self.transfer}, train {self.train})"

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "method": self.method,
            "ratio": self.ratio,
            "seed": self.seed,
            "transfer": self.transfer,
            "train": self.train,
            "mode": self.mode,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Cell:
        return cls(
            str(data["method"]),
            float(data["ratio"]),
            int(data["seed"]),
            str(data["transfer"]),
            str(data["train"]),
            str(data.get("mode", "finetune")),
        )


def seeds_of(config: Any) -> list[int]:
    """The sweep's seeds: ``runtime.seed`` and the ``sweep.seeds - 1`` following integers."""
    return [config.runtime.seed + i for i in range(config.sweep.seeds)]


def plan_cells(config: Any, methods: Sequence[Method]) -> list[Cell]:
    """Every cell of the sweep, in the order shards take them (ratio, then seed, then method and mode).

    Interleaving ratios this way gives every shard a similar mix of cheap (few labels) and expensive cells.
    """
    grid = config.sweep
    cells: list[Cell] = []
    for ratio in grid.ratios:
        for seed in seeds_of(config):
            for method in methods:
                if method.is_scratch:
                    cells.append(Cell(SCRATCH, ratio, seed, "none", "all", grid.mode))
                    continue
                for transfer in grid.transfer:
                    for train in grid.train:
                        cells.append(Cell(method.name, ratio, seed, transfer, train, grid.mode))
    return cells


def cell_config(config: Any, cell: Cell, method: Method, cell_dir: Path) -> dict[str, Any]:
    """The finetune config of ``cell`` as a JSON-ready dict (the sweep section left out)."""
    data = json.loads(config.model_dump_json(exclude={"sweep"}))
    data["data"]["ratio"] = cell.ratio
    data["runtime"]["seed"] = cell.seed
    data["weights"] = None if method.weights is None else str(method.weights)
    data["transfer"] = "none" if method.is_scratch else cell.transfer
    data["train"] = cell.train
    data["out"] = str(cell_dir)
    return data


def identity(config: Any, methods: Sequence[Method], cells: Sequence[Cell]) -> dict[str, Any]:
    """What the sweep's results are results of: written to ``sweep.json``; shards must agree on it."""
    grid = config.sweep
    return {
        "format": FORMAT,
        "version": SWEEP_FORMAT_VERSION,
        "task": config.task.name,
        "mode": grid.mode,
        "methods": [{"name": m.name, "sha256": m.sha256} for m in methods],
        "ratios": list(grid.ratios),
        "seeds": seeds_of(config),
        "transfer": list(grid.transfer),
        "train": list(grid.train),
        "split": grid.split,
        "protocol": grid.protocol,
        "checkpoint": grid.checkpoint,
        "cells": [cell.as_dict() for cell in cells],
        "finetune": json.loads(config.model_dump_json(exclude=NON_IDENTITY_FIELDS)),
    }


def identity_models(config: Any) -> dict[str, Any]:
    """Which parts of :func:`identity` dump which config model: a ``sweep.json`` written before a finetune
    field existed resumes when the field is at its default (:mod:`radiossl.utils.settings_diff`)."""
    return {"finetune": config}


# ------------------------------------------------------------------------------------------ subsets


def plan_subsets(config: Any) -> dict[str, Any]:
    """The cases of every seed's split and label-ratio subsets, as finetune will choose them.

    ``{"<seed>": {"train": [...], "val": [...], "test": [...], "subsets": {"<ratio>": [...]}}}``.

    Raises:
        DataError: the dataset has no cases, or (a broken subset rule) a subset that is not nested.
    """
    from radiossl.data.splits import training_subset
    from radiossl.downstream.tasks.base import get_task_class

    task = get_task_class(config.task.name)(config.task, config.data.root)
    cases = task.list_cases()
    planned: dict[str, Any] = {}
    for seed in seeds_of(config):
        splits = task.splits(cases, seed)
        subsets: dict[str, list[str]] = {}
        previous: set[str] = set()
        for ratio in config.sweep.ratios:
            chosen = training_subset(splits, ratio, seed)
            if not previous <= set(chosen):
                raise DataError(
                    f"{config.data.root}: the {ratio} subset of seed {seed} does not contain the smaller one"
                )
            subsets[f"{ratio:g}"] = chosen
            previous = set(chosen)
        planned[str(seed)] = {"train": list(splits.train), "val": list(splits.val), "test": list(splits.test)}
        planned[str(seed)]["subsets"] = subsets
    return planned
