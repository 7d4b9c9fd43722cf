"""Configuration of ``radiossl preprocess`` and its resolution into a concrete plan.

Fields left at ``None`` take a default that depends on the view (and, for intensities and
thresholds, on each channel's modality); :func:`resolve_plan` fills them in, and the resolved values
are what ``preprocess.json`` records.

View defaults (spec §2.3, §2.4 and baselines A4/B3):

============  ==============================================  ============  ===========  =====
view          candidate box sizes                             border        spacing      pairs
============  ==============================================  ============  ===========  =====
cluster       (160,160,32) (192,192,32) (128,128,32)          0, 0, 0       1 mm         16
pcrlv2        (96,96,64) (96,96,96) (112,112,64) (64,64,32)   70, 70, 15    1 mm         16
genesis       the crop size itself (no resizing)              100, 100, 30  native       32
============  ==============================================  ============  ===========  =====

The rejection rule defaults to "at most 85 % background" (the thesis' BraTS setting, with the
meaning fixed as spec §8 item 10 asks), and for ModelsGenesis on CT to its lung rule "at most 15 %
soft tissue, scored with a 2-slice look-ahead". The thesis' in-plane zoom of 0.75 is the default for
CT in the cluster view.

Example:
    >>> cfg = PreprocessConfig(dataset="luna16", view="genesis")
    >>> view_defaults("genesis").pairs, cfg.crop_size
    (32, (64, 64, 32))
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from radiossl.config import Section
from radiossl.data.normalise import IntensityConfig, default_intensity
from radiossl.utils.sharding import ShardError, check_shard

ViewName = Literal["cluster", "pcrlv2", "genesis"]
VIEWS: tuple[str, ...] = ("cluster", "pcrlv2", "genesis")
Size3 = tuple[int, int, int]


class RejectionConfig(Section):
    """Which crops are rejected, by their fraction of foreground voxels.

    A voxel is *foreground* when its normalised value is at least ``threshold`` (in any channel of a
    multi-channel sample) and *background* otherwise. Fractions are normalised by the size of the box
    they score. With ``look_ahead = L > 0`` a voxel scores ``1 - k/L`` where ``k < L`` is the first of
    the next slices (including itself) that is foreground — ModelsGenesis' soft rule with ``L = 2``.
    """

    threshold: float | None = Field(
        default=None,
        description="Normalised foreground threshold; None = -150 HU for CT, 2% of the raw range for MRI.",
    )
    max_background: float | None = Field(
        default=0.85,
        ge=0.0,
        le=1.0,
        description="Reject a crop whose background fraction exceeds this (None = off).",
    )
    max_foreground: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="Reject a crop whose foreground fraction exceeds this (None = off).",
    )
    look_ahead: int = Field(default=0, ge=0, le=8, description="Soft look-ahead over the next slices (0 = voxel test).")
    rule: Literal["fraction", "thesis"] = Field(
        default="fraction",
        description="fraction = the limits above; thesis = the thesis' bright-voxel rule with thesis_bg_max "
        "(cluster view only; max_background, max_foreground and look_ahead are then not used).",
    )
    thesis_bg_max: float = Field(
        default=0.85,
        ge=0.0,
        description="The thesis' --bg_max (rule: thesis): reject a pair when either crop's bright-voxel score "
        "on its resized window exceeds thesis_bg_max x the voxel count of crop 1's box before resizing.",
    )


class PCRLv2Options(Section):
    """Local crops of the PCRLv2 view."""

    local_count: int = Field(default=6, ge=1, description="Local crops per pair.")
    local_size: Size3 = Field(default=(16, 16, 16), description="Output size of each local crop.")
    local_sizes: list[Size3] = Field(
        default_factory=lambda: [(32, 32, 16), (16, 16, 16), (32, 32, 32), (8, 8, 8)],
        description="Candidate local crop sizes.",
    )
    local_margin: int = Field(default=3, ge=0, description="Margin around the union of the two global boxes.")
    z_align: bool = Field(default=False, description="Crop 2 reuses crop 1's z start (PCRLv2's z-aligned variant).")


class GenesisOptions(Section):
    """ModelsGenesis cube extraction."""

    allow_partial: bool = Field(
        default=True, description="Skip cubes not found within max_attempts (fail only if none is found)."
    )


class PreprocessConfig(Section):
    """Everything ``radiossl preprocess`` does (see the module docstring for the view defaults)."""

    dataset: str = Field(
        default="brats18", description="Dataset adapter: brats18, lits17, luna16, nnunet, nnssl or a plugin."
    )
    dataset_options: dict[str, Any] = Field(
        default_factory=dict,
        description="Keyword options of the dataset adapter, e.g. nnssl: image_root (folder of relative image "
        "paths), modality (auto, mri or ct).",
    )
    data: Path | None = Field(default=None, description="Raw dataset folder.")
    out: Path | None = Field(default=None, description="Output (preprocessed) folder.")
    view: ViewName = Field(
        default="cluster", description="cluster (crop pairs), pcrlv2 (pairs + locals), genesis (cubes)."
    )
    pairs: int | None = Field(default=None, ge=1, description="Samples per volume; None = 16 (32 for genesis).")
    seed: int = Field(default=1, description="Seed; sample i of a group uses rng_for(seed, group_id, i).")
    crop_size: Size3 = Field(default=(64, 64, 32), description="Output crop size (X, Y, Z).")
    candidate_sizes: list[Size3] | None = Field(default=None, description="Box sizes drawn before resizing.")
    iou_threshold: float = Field(default=0.3, ge=0.0, lt=1.0, description="Accept a pair when IoU > this.")
    border: Size3 | None = Field(default=None, description="Margin kept from the volume edges (X, Y, Z).")
    max_attempts: int = Field(default=1000, ge=1, description="Candidate draws per sample before giving up.")
    spacing: tuple[float, float, float] | Literal["native"] | None = Field(
        default=None, description="Target spacing in mm, or 'native'; None = 1 mm (genesis: native)."
    )
    inplane_zoom: float | None = Field(
        default=None,
        gt=0.0,
        description="Extra in-plane zoom; None = 0.75 for CT in the cluster view, else 1.",
    )
    intensity: IntensityConfig | None = Field(
        default=None,
        description="Normalisation for every channel; None = CT window / MRI min-max per channel.",
    )
    rejection: RejectionConfig | None = Field(default=None, description="Crop rejection rule; None = view default.")
    multichannel: bool = Field(
        default=False, description="One C-channel sample per case instead of one sample per channel."
    )
    min_size_fraction: float = Field(
        default=0.5,
        gt=0.0,
        le=1.0,
        description="Fail a volume smaller than this fraction of the crop on any axis.",
    )
    storage: Literal["float16", "uint8"] = Field(default="float16", description="Array dtype on disk.")
    resize_mode: Literal["trilinear", "area"] = Field(default="trilinear", description="Crop resizing (torch).")
    splits_file: Path | None = Field(default=None, description="splits.json to use instead of the dataset's split.")
    include_splits: list[str] | None = Field(
        default=None,
        description="Only preprocess cases of these splits (train, val, test, unused); None = all.",
    )
    check_labels: bool = Field(
        default=True,
        description="Read label files to check their shape, geometry and values (the dataset's label set).",
    )
    pcrlv2: PCRLv2Options = Field(default_factory=lambda: PCRLv2Options())
    genesis: GenesisOptions = Field(default_factory=lambda: GenesisOptions())
    workers: int = Field(default=1, ge=0, description="Worker processes (<= 1: in this process).")
    shard: str | None = Field(
        default=None,
        description="'I/N' (1 <= I <= N): process the cases with index % N == I - 1; 'slurm': this Slurm array task's.",
    )
    progress: bool = Field(default=True, description="Report progress lines (cases done, failures, ETA).")

    @field_validator("shard")
    @classmethod
    def _check_shard(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                check_shard(value)
            except ShardError as exc:
                raise PydanticCustomError("shard", str(exc)) from None
        return value

    @model_validator(mode="after")
    def _check_storage(self) -> PreprocessConfig:
        if self.storage == "uint8" and self.intensity is not None and not self.intensity.bounded:
            raise ValueError(f"storage uint8 needs values in [0, 1]; intensity mode {self.intensity.mode!r} is not")
        if self.rejection is not None and self.rejection.rule == "thesis" and self.view != "cluster":
            raise ValueError(f"rejection.rule thesis is the cluster view's rule; view {self.view!r} cannot use it")
        return self


#: Fields that change no sample (a rerun into the same folder may differ in them).
EXECUTION_FIELDS: frozenset[str] = frozenset(
    {"data", "out", "workers", "shard", "progress", "include_splits", "check_labels"}
)


@dataclass(frozen=True)
class ViewDefaults:
    """Defaults of one view (see the module docstring)."""

    candidate_sizes: tuple[Size3, ...] | None
    border: Size3
    native_spacing: bool
    pairs: int


_VIEW_DEFAULTS: dict[str, ViewDefaults] = {
    "cluster": ViewDefaults(((160, 160, 32), (192, 192, 32), (128, 128, 32)), (0, 0, 0), False, 16),
    "pcrlv2": ViewDefaults(((96, 96, 64), (96, 96, 96), (112, 112, 64), (64, 64, 32)), (70, 70, 15), False, 16),
    "genesis": ViewDefaults(None, (100, 100, 30), True, 32),
}
_PCRLV2_Z_ALIGNED: tuple[Size3, ...] = ((96, 96, 32), (96, 96, 32), (112, 112, 32), (64, 64, 32))


def view_defaults(view: str) -> ViewDefaults:
    """The defaults of ``view``."""
    return _VIEW_DEFAULTS[view]


@dataclass(frozen=True)
class Plan:
    """A fully resolved preprocessing plan (picklable; sent to worker processes)."""

    view: str
    dataset: str
    channels: tuple[str, ...]
    modalities: dict[str, str]
    intensity: dict[str, IntensityConfig]
    spacing: tuple[float, float, float] | None
    zoom: tuple[float, float, float]
    pairs: int
    seed: int
    crop_size: Size3
    candidate_sizes: tuple[Size3, ...]
    iou_threshold: float
    border: Size3
    max_attempts: int
    rejection: RejectionConfig
    multichannel: bool
    min_size_fraction: float
    storage: str
    resize_mode: str
    check_labels: bool
    pcrlv2: PCRLv2Options
    allow_partial: bool

    def groups(self, case_id: str) -> list[tuple[str, tuple[str, ...]]]:
        """``(group_id, channels)`` of the samples of a case: one per channel, or one for all."""
        if self.multichannel or len(self.channels) == 1:
            return [(case_id, self.channels)]
        return [(f"{case_id}_{channel}", (channel,)) for channel in self.channels]

    def describe(self) -> dict[str, Any]:
        """JSON-ready resolved values (for ``preprocess.json``)."""
        return {
            "view": self.view,
            "channels": list(self.channels),
            "modalities": self.modalities,
            "intensity": {k: v.model_dump(mode="json") for k, v in self.intensity.items()},
            "spacing": list(self.spacing) if self.spacing is not None else "native",
            "zoom": list(self.zoom),
            "pairs": self.pairs,
            "seed": self.seed,
            "crop_size": list(self.crop_size),
            "candidate_sizes": [list(s) for s in self.candidate_sizes],
            "iou_threshold": self.iou_threshold,
            "border": list(self.border),
            "max_attempts": self.max_attempts,
            "rejection": self.rejection.model_dump(mode="json"),
            "multichannel": self.multichannel,
            "storage": self.storage,
            "resize_mode": self.resize_mode,
            **({"pcrlv2": self.pcrlv2.model_dump(mode="json")} if self.view == "pcrlv2" else {}),
            **({"allow_partial": self.allow_partial} if self.view == "genesis" else {}),
        }


def resolve_plan(config: PreprocessConfig, channels: tuple[str, ...], modalities: dict[str, str]) -> Plan:
    """Fill every view- and modality-dependent default of ``config``."""
    defaults = view_defaults(config.view)
    any_ct = any(modalities.get(c) == "ct" for c in channels)
    all_ct = all(modalities.get(c) == "ct" for c in channels)
    if config.candidate_sizes is not None:
        sizes = tuple(config.candidate_sizes)
    elif config.view == "genesis":
        sizes = (config.crop_size,)
    elif config.view == "pcrlv2" and config.pcrlv2.z_align:
        sizes = _PCRLV2_Z_ALIGNED
    else:
        sizes = defaults.candidate_sizes or (config.crop_size,)
    if config.spacing == "native" or (config.spacing is None and defaults.native_spacing):
        spacing = None
    elif config.spacing is None:
        spacing = (1.0, 1.0, 1.0)
    else:
        spacing = (float(config.spacing[0]), float(config.spacing[1]), float(config.spacing[2]))
    zoom_factor = config.inplane_zoom
    if zoom_factor is None:
        zoom_factor = 0.75 if config.view == "cluster" and all_ct else 1.0
    if config.rejection is not None:
        rejection = config.rejection
    elif config.view == "genesis" and any_ct:
        rejection = RejectionConfig(max_background=None, max_foreground=0.15, look_ahead=2)
    else:
        rejection = RejectionConfig()
    intensity = {c: config.intensity or default_intensity(modalities.get(c, "mri")) for c in channels}
    if config.storage == "uint8":
        unbounded = sorted(c for c, cfg in intensity.items() if not cfg.bounded)
        if unbounded:
            from radiossl.errors import ConfigError

            raise ConfigError(f"storage uint8 needs intensities in [0, 1]; channels {unbounded} are z-scored")
    return Plan(
        view=config.view,
        dataset=config.dataset,
        channels=channels,
        modalities={c: modalities.get(c, "mri") for c in channels},
        intensity=intensity,
        spacing=spacing,
        zoom=(zoom_factor, zoom_factor, 1.0),
        pairs=config.pairs or defaults.pairs,
        seed=config.seed,
        crop_size=config.crop_size,
        candidate_sizes=sizes,
        iou_threshold=config.iou_threshold,
        border=config.border if config.border is not None else defaults.border,
        max_attempts=config.max_attempts,
        rejection=rejection,
        multichannel=config.multichannel,
        min_size_fraction=config.min_size_fraction,
        storage=config.storage,
        resize_mode=config.resize_mode,
        check_labels=config.check_labels,
        pcrlv2=config.pcrlv2,
        allow_partial=config.genesis.allow_partial,
    )
