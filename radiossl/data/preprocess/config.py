"""Configuration of ``radiossl preprocess`` and its resolution into a concrete plan.

``view`` names a registered view plugin (:mod:`radiossl.views`). Fields left at ``None`` take a
default of that view (and, for intensities and thresholds, of each channel's modality);
:func:`resolve_plan` fills them in, and the resolved values are what ``preprocess.json`` records.
A view's own settings are the top-level section named like the view (``pcrlv2: {local_count: 4}``),
validated with the view's ``options_class``; sections of other registered views are accepted and
validated too (one config file can serve several views), and any other unknown key is an error.

Defaults of the built-in views (spec §2.3, §2.4 and baselines A4/B3; each view's module holds its own):

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
    >>> view_defaults("genesis").pairs, cfg.crop_size, cfg.view_options().allow_partial
    (32, (64, 64, 32), True)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationError, ValidatorFunctionWrapHandler, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from radiossl.config import Section
from radiossl.data.normalise import IntensityConfig, default_intensity
from radiossl.data.view_contract import Plan, RejectionConfig, Size3, View, ViewDefaults, get_view, view_names
from radiossl.errors import PluginError
from radiossl.utils.sharding import ShardError, check_shard

# Plan and RejectionConfig are the view contract's (a view's sampler receives them); they stay importable here.
__all__ = ["EXECUTION_FIELDS", "Plan", "PreprocessConfig", "RejectionConfig", "resolve_plan", "view_defaults"]


class PreprocessConfig(Section):
    """Everything ``radiossl preprocess`` does (see the module docstring for the view defaults).

    Besides the fields below it holds the sections of registered views (``config.pcrlv2``), each an
    instance of that view's ``options_class``; :meth:`view_options` is the section of ``view``.
    """

    # Extra keys are allowed only as they are checked in _view_sections: sections of registered views.
    model_config = ConfigDict(extra="allow")

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
    view: str = Field(
        default="cluster",
        description="A registered view: cluster (crop pairs), pcrlv2 (pairs + locals), genesis (cubes) or a plugin.",
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

    @model_validator(mode="wrap")
    @classmethod
    def _view_sections(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> PreprocessConfig:
        """Validate ``view`` against the registry and every extra key as a registered view's section."""
        if not isinstance(data, dict):
            return handler(data)  # type: ignore[no-any-return]
        fields = {k: v for k, v in data.items() if k in cls.model_fields}
        errors: list[InitErrorDetails] = []
        sections: dict[str, Section] = {}
        for key, value in data.items():
            if key in cls.model_fields:
                continue
            options = _options_class(key)
            if options is None:
                errors.append(InitErrorDetails(type="extra_forbidden", loc=(key,), input=value))
                continue
            try:
                sections[key] = value if isinstance(value, options) else options.model_validate(value)
            except ValidationError as exc:
                errors.extend(_nested_errors(exc, key))
        view = fields.get("view", cls.model_fields["view"].default)
        view_class = None
        try:
            view_class = _view_class(view) if isinstance(view, str) else None
        except PluginError as exc:
            errors.append(InitErrorDetails(type=PydanticCustomError("view", str(exc)), loc=("view",), input=view))
        try:
            model = handler(fields)
        except ValidationError as exc:
            errors[:0] = _nested_errors(exc)
            model = None
        if errors or model is None:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        if view_class is not None and view_class.options_class is not None and view not in sections:
            sections[view] = view_class.options_class()
        extra = model.__pydantic_extra__
        assert extra is not None  # extra="allow"
        extra.clear()
        extra.update(sections)
        return model

    def view_options(self) -> Section | None:
        """The section of the selected view (an instance of its ``options_class``; None if it has none)."""
        extra = self.__pydantic_extra__ or {}
        section = extra.get(self.view)
        return section if isinstance(section, Section) else None

    def view_plugin(self) -> View:
        """The selected view, with its options."""
        return _view_class(self.view)(self.view_options())

    @model_validator(mode="after")
    def _check_storage(self) -> PreprocessConfig:
        if self.storage == "uint8" and self.intensity is not None and not self.intensity.bounded:
            raise ValueError(f"storage uint8 needs values in [0, 1]; intensity mode {self.intensity.mode!r} is not")
        if (
            self.rejection is not None
            and self.rejection.rule == "thesis"
            and not _view_class(self.view).accepts_thesis_rejection
        ):
            raise ValueError(
                f"rejection.rule thesis is the cluster view's rule; view {self.view!r} does not implement it"
            )
        return self


def _view_class(name: str) -> type[View]:
    return get_view(name)


def _options_class(key: str) -> type[Section] | None:
    """The options class of the registered view named ``key`` (None: no such view, or one without options)."""
    if key not in view_names():
        return None
    try:
        return _view_class(key).options_class
    except PluginError:
        return None


def _nested_errors(exc: ValidationError, *prefix: str) -> list[InitErrorDetails]:
    """The line errors of ``exc`` re-raised at ``prefix`` + their location (messages kept)."""
    out: list[InitErrorDetails] = []
    for error in exc.errors():
        kind = error["type"]
        if kind == "extra_forbidden":
            detail: Any = kind
        else:
            detail = PydanticCustomError(kind, error["msg"].replace("{", "{{").replace("}", "}}"))
        out.append(InitErrorDetails(type=detail, loc=(*prefix, *error["loc"]), input=error.get("input")))
    return out


#: Fields that change no sample (a rerun into the same folder may differ in them).
EXECUTION_FIELDS: frozenset[str] = frozenset(
    {"data", "out", "workers", "shard", "progress", "include_splits", "check_labels"}
)


def view_defaults(view: str) -> ViewDefaults:
    """The defaults of the registered view ``view``."""
    return _view_class(view).defaults


def resolve_plan(config: PreprocessConfig, channels: tuple[str, ...], modalities: dict[str, str]) -> Plan:
    """Fill every view- and modality-dependent default of ``config`` (the view's own hooks decide)."""
    view = config.view_plugin()
    defaults = view.defaults
    any_ct = any(modalities.get(c) == "ct" for c in channels)
    all_ct = all(modalities.get(c) == "ct" for c in channels)
    if config.candidate_sizes is not None:
        sizes = tuple(config.candidate_sizes)
    else:
        sizes = view.candidate_sizes(config.crop_size)
    if config.spacing == "native" or (config.spacing is None and defaults.native_spacing):
        spacing = None
    elif config.spacing is None:
        spacing = (1.0, 1.0, 1.0)
    else:
        spacing = (float(config.spacing[0]), float(config.spacing[1]), float(config.spacing[2]))
    zoom_factor = config.inplane_zoom
    if zoom_factor is None:
        zoom_factor = view.inplane_zoom(all_ct)
    rejection = config.rejection if config.rejection is not None else view.rejection(any_ct)
    intensity = {c: config.intensity or default_intensity(modalities.get(c, "mri")) for c in channels}
    if config.storage == "uint8":
        unbounded = sorted(c for c, cfg in intensity.items() if not cfg.bounded)
        if unbounded:
            from radiossl.errors import ConfigError

            raise ConfigError(f"storage uint8 needs intensities in [0, 1]; channels {unbounded} are z-scored")
    return Plan(
        view=config.view,
        sampler=view,
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
    )
