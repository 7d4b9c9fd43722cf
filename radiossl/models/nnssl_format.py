"""The nnssl checkpoint format (what nnU-Net's pretrained-finetuning path reads): build, recognise, parse.

An nnssl checkpoint, ``checkpoint_final.pth``, is a dict holding

* ``network_weights`` — the ``state_dict`` of a dynamic-network-architectures network
  (``encoder.stem.convs.0.conv.weight``, ``encoder.stages.0...``, ``decoder...``, no ``module.`` prefix);
* ``nnssl_adaptation_plan`` — how to rebuild that network and which tensors to transfer::

      {"architecture_plans": {"arch_class_name", "arch_kwargs", "arch_kwargs_requiring_import"},
       "pretrain_plan": {"dataset_name", "plans_name", "original_median_spacing_after_transp",
                         "image_reader_writer", "transpose_forward", "transpose_backward",
                         "experiment_planner_used",
                         "configurations": {NAME: {"spacing", "patch_size", "normalization_schemes", ...}}},
       "pretrain_num_input_channels", "recommended_downstream_patchsize",
       "key_to_encoder", "key_to_stem", "keys_to_in_proj", "key_to_lpe"}

  with plain Python values only, so ``torch.load(weights_only=True)`` opens the file. The layout is
  the one nnssl's ``AdaptationPlan.serialize`` writes (``src/nnssl/adaptation_planning/adaptation_plan.py``)
  and nnU-Net's ``PretrainedTrainer.load_pretrained_weights`` and ``nnUNetv2_preprocess_like_nnssl`` read
  (see ``docs/nnunet.md`` for the exact files).

**Axis order.** nnssl and nnU-Net index arrays (z, y, x): their NIfTI reader transposes nibabel's
(i, j, k) voxel order. radiossl keeps (i, j, k). Sizes and spacings in a plan, per-stage kernel sizes
and strides, and the spatial axes of every convolution kernel are therefore reversed on the way out
and on the way in (:func:`reverse_spatial_axes`, :func:`reverse_arch_axes`), so a network computes
the same function on nnU-Net's arrays as on radiossl's.

Example:
    >>> plan_model_spec({"architecture_plans": {"arch_class_name": "ResEncL", "arch_kwargs": None}},
    ...                 in_channels=4, num_classes=3)["kwargs"]["features_per_stage"]
    [32, 64, 128, 256, 320, 320]
"""

from __future__ import annotations

import copy
import inspect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from radiossl.errors import CheckpointError, ConfigError
from radiossl.models.arch_kwargs import ARCH_KWARGS_REQUIRING_IMPORT, import_dotted
from radiossl.models.checkpoint import Recognised

FAMILY = "nnssl"
"""The ``family`` name :mod:`radiossl.models.checkpoint` gives an nnssl checkpoint."""

CHECKPOINT_FILE = "checkpoint_final.pth"
PLAN_FILE = "adaptation_plan.json"
WEIGHTS_ENTRY = "network_weights"
PLAN_ENTRY = "nnssl_adaptation_plan"

DNA_CLASS_NAMES: tuple[str, ...] = ("ResidualEncoderUNet", "PlainConvUNet")
"""Architectures a plan describes by ``arch_kwargs`` that radiossl builds (its model-spec class names)."""

EXPORTABLE_BACKBONES: tuple[str, ...] = ("resenc-unet", "plainconv-unet", "resenc-m", "resenc-l", "resenc-xl")
"""``model.name`` values whose checkpoints ``radiossl checkpoint export-nnssl`` writes (the nnU-Net U-Nets)."""

PER_TASK_KWARGS: tuple[str, ...] = ("input_channels", "num_classes", "deep_supervision")
"""Constructor arguments a plan leaves out: nnU-Net passes them for the downstream task."""

REQUIRED_PLAN_KEYS: tuple[str, ...] = (
    "architecture_plans",
    "pretrain_plan",
    "pretrain_num_input_channels",
    "recommended_downstream_patchsize",
    "key_to_encoder",
    "key_to_stem",
    "keys_to_in_proj",
)

_CNN_FIELDS: tuple[str, ...] = (
    "n_stages",
    "features_per_stage",
    "conv_op",
    "kernel_sizes",
    "strides",
    "n_conv_per_stage_decoder",
    "conv_bias",
    "norm_op",
    "norm_op_kwargs",
    "dropout_op",
    "dropout_op_kwargs",
    "nonlin",
    "nonlin_kwargs",
)
"""Fields of nnssl's ``DynamicArchitecturePlans`` (besides the per-stage depth) that an exported plan always has."""

_STAGE_DEPTH = {"ResidualEncoderUNet": "n_blocks_per_stage", "PlainConvUNet": "n_conv_per_stage"}
_PER_AXIS_KWARGS = ("kernel_sizes", "strides")

NNSSL_PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    # nnssl src/nnssl/architectures/architecture_registry.py get_res_enc_l (the ResEnc-L of the OpenMind
    # benchmark; "Revisiting MAE pre-training for 3D medical image segmentation", arXiv:2410.23132).
    "ResEncL": (
        "ResidualEncoderUNet",
        {
            "n_stages": 6,
            "features_per_stage": [32, 64, 128, 256, 320, 320],
            "conv_op": "torch.nn.modules.conv.Conv3d",
            "kernel_sizes": [[3, 3, 3]] * 6,
            "strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 2]],
            "n_blocks_per_stage": [1, 3, 4, 6, 6, 6],
            "n_conv_per_stage_decoder": [1, 1, 1, 1, 1],
            "conv_bias": True,
            "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
            "norm_op_kwargs": {"eps": 1e-5, "affine": True},
            "dropout_op": None,
            "dropout_op_kwargs": None,
            "nonlin": "torch.nn.modules.activation.LeakyReLU",
            "nonlin_kwargs": {"inplace": True},
        },
    ),
}
"""Architectures nnssl names without ``arch_kwargs`` (its released ResEnc-L checkpoints do) → class and kwargs."""


# --------------------------------------------------------------------------------------------------
# Axis order


def reverse_spatial_axes(tensor: torch.Tensor) -> torch.Tensor:
    """A 3D convolution kernel (``[out, in, a, b, c]``, or transposed ``[in, out, ...]``) with axes ``c, b, a``.

    Every other tensor (biases, norm parameters) is returned unchanged. The result is a view.
    """
    if tensor.dim() == 5:
        return tensor.permute(0, 1, 4, 3, 2)
    return tensor


def reverse_state_axes(state_dict: Mapping[str, torch.Tensor], contiguous: bool = False) -> dict[str, torch.Tensor]:
    """:func:`reverse_spatial_axes` of every tensor; names that share one tensor keep sharing it.

    dynamic-network-architectures registers some tensors under two names (the stem convolution, and
    the whole encoder again under ``decoder.encoder.``); with ``contiguous`` each is copied once.
    """
    converted: dict[tuple[Any, ...], torch.Tensor] = {}
    out: dict[str, torch.Tensor] = {}
    for key, tensor in state_dict.items():
        if tensor.device.type == "meta":
            out[key] = reverse_spatial_axes(tensor)
            continue
        identity = (
            tensor.device,
            tensor.untyped_storage().data_ptr(),
            tensor.storage_offset(),
            tuple(tensor.shape),
            tensor.stride(),
            tensor.dtype,
        )
        if identity not in converted:
            reversed_tensor = reverse_spatial_axes(tensor)
            converted[identity] = reversed_tensor.contiguous() if contiguous else reversed_tensor
        out[key] = converted[identity]
    return out


def reverse_arch_axes(arch_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """``arch_kwargs`` with every per-axis kernel size and stride (``[a, b, c]`` → ``[c, b, a]``) reversed.

    A per-stage single number (the same on every axis) stays as it is.
    """
    out = copy.deepcopy(dict(arch_kwargs))
    for key in _PER_AXIS_KWARGS:
        value = out.get(key)
        if isinstance(value, list):
            out[key] = [list(reversed(item)) if isinstance(item, list) else item for item in value]
    return out


def reverse_size(size: Sequence[Any] | None) -> list[Any] | None:
    """A size or spacing in the other axis order (None stays None)."""
    return None if size is None else list(reversed(list(size)))


# --------------------------------------------------------------------------------------------------
# Building a plan


def total_stride(arch_kwargs: Mapping[str, Any]) -> tuple[int, int, int]:
    """The product of the per-stage strides on each axis (what every input size must be a multiple of)."""
    strides = arch_kwargs.get("strides", 1)
    stages = int(arch_kwargs.get("n_stages", 1))
    per_stage = strides if isinstance(strides, list) else [strides] * stages
    total = [1, 1, 1]
    for stride in per_stage:
        axes = stride if isinstance(stride, list) else [stride] * 3
        if len(axes) != 3:
            raise CheckpointError(f"strides {strides!r} are not those of a 3D network")
        total = [t * int(s) for t, s in zip(total, axes, strict=True)]
    return (total[0], total[1], total[2])


def fit_to_stride(size: Sequence[int], stride: Sequence[int]) -> list[int]:
    """``size`` rounded up, per axis, to a multiple of ``stride``."""
    return [int(math.ceil(int(s) / int(t)) * int(t)) for s, t in zip(size, stride, strict=True)]


def plan_arch_kwargs(spec: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """``(arch_class_name, arch_kwargs)`` of a plan for the radiossl model spec of an nnU-Net U-Net.

    The per-task arguments are left out; fields nnssl's ``DynamicArchitecturePlans`` has that the spec
    leaves at the network's default get that default; the result is in nnU-Net axis order.
    """
    class_name = spec.get("class")
    if class_name not in DNA_CLASS_NAMES:
        raise CheckpointError(f"model spec class {class_name!r} is not an nnU-Net U-Net ({', '.join(DNA_CLASS_NAMES)})")
    kwargs = {k: v for k, v in dict(spec.get("kwargs") or {}).items() if k not in PER_TASK_KWARGS}
    network_class = import_dotted(f"dynamic_network_architectures.architectures.unet.{class_name}")
    parameters = inspect.signature(network_class.__init__).parameters
    for name in (*_CNN_FIELDS, _STAGE_DEPTH[class_name]):
        if name in kwargs:
            continue
        default = parameters[name].default if name in parameters else inspect.Parameter.empty
        if default is inspect.Parameter.empty:
            raise CheckpointError(f"model spec of {class_name} lacks {name!r}")
        kwargs[name] = default
    conv_op = kwargs.get("conv_op")
    if not (isinstance(conv_op, str) and conv_op.endswith("Conv3d")):
        raise CheckpointError(f"only 3D networks can be exported (conv_op is {conv_op!r})")
    return class_name, reverse_arch_axes(kwargs)


def architecture_plans(class_name: str, arch_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The ``architecture_plans`` entry: class, kwargs, and which kwargs are dotted names to import."""
    return {
        "arch_class_name": class_name,
        "arch_kwargs": dict(arch_kwargs),
        "arch_kwargs_requiring_import": [k for k in ARCH_KWARGS_REQUIRING_IMPORT if k in arch_kwargs],
    }


@dataclass(frozen=True)
class PretrainSettings:
    """What a pretraining run saw, in radiossl's (i, j, k) axis order: the ``pretrain_plan`` of a plan."""

    dataset_name: str
    patch_size: tuple[int, int, int]
    spacing: tuple[float, float, float] | None  # None: native spacing, no resampling
    normalization_schemes: tuple[str, ...]  # one per network input channel
    use_mask_for_norm: tuple[bool, ...]
    data_identifier: str = "radiossl"

    @property
    def spacing_style(self) -> str:
        """nnssl's name for the resampling: ``onemmiso``, ``noresample``, or ``fixed`` (another spacing)."""
        if self.spacing is None:
            return "noresample"
        return "onemmiso" if all(float(s) == 1.0 for s in self.spacing) else "fixed"


def pretrain_plan(settings: PretrainSettings) -> dict[str, Any]:
    """The ``pretrain_plan`` entry (nnssl's ``Plan`` with one ``ConfigurationPlan``), in nnU-Net axis order."""
    spacing = reverse_size([float(s) for s in settings.spacing]) if settings.spacing is not None else None
    configuration: dict[str, Any] = {
        "data_identifier": settings.data_identifier,
        "preprocessor_name": "radiossl",
        "spacing_style": settings.spacing_style,
        "normalization_schemes": list(settings.normalization_schemes),
        "use_mask_for_norm": list(settings.use_mask_for_norm),
        "resampling_fn_data": "radiossl",
        "resampling_fn_data_kwargs": {},
        "resampling_fn_mask": "radiossl",
        "resampling_fn_mask_kwargs": {},
        "spacing": spacing,
        "patch_size": reverse_size([int(s) for s in settings.patch_size]),
    }
    return {
        "dataset_name": settings.dataset_name,
        "plans_name": "radiosslPlans",
        "original_median_spacing_after_transp": spacing,
        "image_reader_writer": "NibabelReaderWriter",  # the reader whose (z, y, x) order the plan uses
        "transpose_forward": [0, 1, 2],
        "transpose_backward": [0, 1, 2],
        "configurations": {settings.spacing_style: configuration},
        "experiment_planner_used": "radiossl",
    }


def adaptation_plan(
    spec: Mapping[str, Any],
    key_locations: Mapping[str, Any],
    settings: PretrainSettings,
    downstream_patch_size: Sequence[int] | None = None,
) -> dict[str, Any]:
    """The ``nnssl_adaptation_plan`` of a network with model spec ``spec``.

    Args:
        spec: the radiossl model spec (``ResidualEncoderUNet`` or ``PlainConvUNet``).
        key_locations: ``key_to_encoder``, ``key_to_stem``, ``keys_to_in_proj`` and ``key_to_lpe`` of the
            network (dynamic-network-architectures sets them on every network it builds).
        settings: the pretraining's patch size, spacing and normalisation.
        downstream_patch_size: recommended finetuning patch size in radiossl axis order; default: the
            pretraining patch size rounded up to a multiple of the network's total stride.

    Raises:
        CheckpointError: the spec is not an exportable network, or ``downstream_patch_size`` does not fit it.
    """
    class_name, arch_kwargs = plan_arch_kwargs(spec)
    stride = total_stride(reverse_arch_axes(arch_kwargs))  # radiossl order
    if downstream_patch_size is None:
        downstream = fit_to_stride(settings.patch_size, stride)
    else:
        downstream = [int(s) for s in downstream_patch_size]
        if len(downstream) != 3 or any(s % t for s, t in zip(downstream, stride, strict=True)):
            raise CheckpointError(
                f"downstream patch size {downstream} does not fit the network: every size must be a multiple "
                f"of its total stride {list(stride)}"
            )
    return {
        "architecture_plans": architecture_plans(class_name, arch_kwargs),
        "pretrain_plan": pretrain_plan(settings),
        "pretrain_num_input_channels": int(dict(spec.get("kwargs") or {}).get("input_channels", 1)),
        "recommended_downstream_patchsize": reverse_size(downstream),
        "key_to_encoder": str(key_locations["key_to_encoder"]),
        "key_to_stem": str(key_locations["key_to_stem"]),
        "keys_to_in_proj": [str(k) for k in key_locations["keys_to_in_proj"]],
        "key_to_lpe": key_locations.get("key_to_lpe"),
    }


def key_locations(network: torch.nn.Module) -> dict[str, Any]:
    """The transfer keys dynamic-network-architectures declares on ``network`` (``key_to_encoder`` ...)."""
    names = ("key_to_encoder", "key_to_stem", "keys_to_in_proj")
    missing = [name for name in names if not hasattr(network, name)]
    if missing:
        raise CheckpointError(f"{type(network).__name__} declares no nnssl transfer keys ({', '.join(missing)})")
    declared: Any = network  # attributes set by the library's constructors, unknown to nn.Module's type
    return {
        "key_to_encoder": str(declared.key_to_encoder),
        "key_to_stem": str(declared.key_to_stem),
        "keys_to_in_proj": [str(k) for k in declared.keys_to_in_proj],
        "key_to_lpe": getattr(network, "key_to_lpe", None),
    }


# --------------------------------------------------------------------------------------------------
# Recognising and parsing


def is_nnssl_checkpoint(obj: Any) -> bool:
    """Whether a loaded checkpoint object has the two entries of the nnssl layout."""
    return isinstance(obj, Mapping) and WEIGHTS_ENTRY in obj and PLAN_ENTRY in obj


def _plain(value: Any) -> Any:
    """Tensors (nnssl stores NumPy arrays of a plan as tensors) as lists, tuples as lists, mappings as dicts."""
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def check_plan(plan: Any, where: str = "checkpoint") -> dict[str, Any]:
    """``plan`` as a dict of plain values, or a one-line :class:`CheckpointError` naming what it lacks."""
    if not isinstance(plan, Mapping):
        raise CheckpointError(f"{where}: {PLAN_ENTRY} is a {type(plan).__name__}, not a dict")
    missing = [key for key in REQUIRED_PLAN_KEYS if key not in plan]
    if missing:
        raise CheckpointError(f"{where}: {PLAN_ENTRY} lacks {', '.join(missing)}")
    arch = plan["architecture_plans"]
    if not isinstance(arch, Mapping) or not isinstance(arch.get("arch_class_name"), str):
        raise CheckpointError(f"{where}: {PLAN_ENTRY}.architecture_plans has no arch_class_name")
    plain: dict[str, Any] = _plain(plan)
    return plain


def plan_model_spec(plan: Mapping[str, Any], in_channels: int, num_classes: int) -> dict[str, Any]:
    """The radiossl model spec of the network a plan describes, for ``in_channels`` and ``num_classes``.

    ``ResEncL`` without ``arch_kwargs`` (nnssl's released checkpoints) is nnssl's ResEnc-L preset; a
    dotted class name (``dynamic_network_architectures.architectures.unet.ResidualEncoderUNet``) counts
    by its last part, as in nnU-Net. Kernel sizes and strides come back in radiossl axis order.

    Raises:
        CheckpointError: an architecture radiossl cannot build (Primus, NoSkipResEncL, 2D networks ...).
    """
    arch = plan.get("architecture_plans") or {}
    name = str(arch.get("arch_class_name"))
    class_name = name.rsplit(".", 1)[-1]
    kwargs = arch.get("arch_kwargs")
    if not kwargs and class_name in NNSSL_PRESETS:
        class_name, kwargs = NNSSL_PRESETS[class_name]
    buildable = sorted({*DNA_CLASS_NAMES, *NNSSL_PRESETS})
    if class_name not in DNA_CLASS_NAMES or not isinstance(kwargs, Mapping) or not kwargs:
        raise CheckpointError(f"nnssl architecture {name!r} is not one radiossl can build ({', '.join(buildable)})")
    foreign = [k for k in arch.get("arch_kwargs_requiring_import") or () if k not in ARCH_KWARGS_REQUIRING_IMPORT]
    if foreign:
        raise CheckpointError(f"nnssl architecture {name!r} imports {', '.join(foreign)}, which radiossl cannot build")
    conv_op = kwargs.get("conv_op")
    if not (isinstance(conv_op, str) and conv_op.endswith("Conv3d")):
        raise CheckpointError(f"nnssl architecture {name!r} is not a 3D network (conv_op {conv_op!r})")
    spec_kwargs = {k: v for k, v in reverse_arch_axes(kwargs).items() if k not in PER_TASK_KWARGS}
    spec_kwargs.update(input_channels=int(in_channels), num_classes=int(num_classes), deep_supervision=False)
    return {"class": class_name, "kwargs": spec_kwargs}


def _output_channels(state_dict: Mapping[str, torch.Tensor]) -> int:
    """Output channels of the last segmentation layer (``decoder.seg_layers.N.weight``), 1 when absent."""
    layers = {}
    for key, value in state_dict.items():
        parts = key.split(".")
        if len(parts) == 4 and parts[:2] == ["decoder", "seg_layers"] and parts[2].isdigit() and parts[3] == "weight":
            layers[int(parts[2])] = int(value.shape[0])
    return layers[max(layers)] if layers else 1


def recognise(obj: Any, path: str | Path = "<memory>") -> Recognised | None:
    """The family, state dict and metadata of an nnssl checkpoint, or None for any other layout.

    The state dict is in radiossl axis order (views, no copies). The metadata holds the plan
    (``nnssl_adaptation_plan``, as stored), the model spec it describes (None, with the reason under
    ``model_spec_error``, for architectures radiossl cannot build) and the encoder prefixes.
    """
    if not is_nnssl_checkpoint(obj):
        return None
    from radiossl.models.checkpoint import is_state_dict, to_plain

    weights = obj[WEIGHTS_ENTRY]
    if not is_state_dict(weights):
        raise CheckpointError(f"{path}: {WEIGHTS_ENTRY} is not a dict of tensors")
    plan = check_plan(obj[PLAN_ENTRY], str(path))
    meta: dict[str, Any] = {
        "top_level_keys": [str(k) for k in obj],
        "state_dict_entry": WEIGHTS_ENTRY,
        "architecture": str(plan["architecture_plans"]["arch_class_name"]),
        "axis_order": "kernels converted from nnU-Net (z, y, x) to radiossl (i, j, k)",
        PLAN_ENTRY: plan,
    }
    try:
        in_channels = int(plan["pretrain_num_input_channels"])
        meta["model_spec"] = plan_model_spec(plan, in_channels, _output_channels(weights))
        meta["model_spec_source"] = "nnssl plan"
        meta["encoder_prefixes"] = ["encoder."]
    except (CheckpointError, TypeError, ValueError) as err:
        meta["model_spec_error"] = str(err)
    for key in ("trainer_name", "citations", "radiossl"):
        if key in obj:
            meta[key] = to_plain(obj[key])
    return Recognised(FAMILY, WEIGHTS_ENTRY, reverse_state_axes(weights), meta)


def _peek(path: Path) -> Any:
    """The object in ``path`` with tensors memory-mapped (cheap for big files); None if it cannot be read so."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # not a zip checkpoint, pickled objects, unreadable: the regular loader reports it
        return None


def finetune_model_spec(
    weights: str | Path,
    in_channels: int,
    num_classes: int,
    sizes: Mapping[str, Sequence[int] | None] | None = None,
) -> dict[str, Any] | None:
    """The model spec to finetune from ``weights`` when it is an nnssl checkpoint, else None.

    Args:
        weights: the ``--weights`` file.
        in_channels, num_classes: the downstream task's input channels and output regions.
        sizes: input sizes the network will see, by config field (``{"data.crop_size": [...]}``);
            each must be a multiple of the network's total stride.

    Raises:
        CheckpointError: an nnssl checkpoint whose architecture radiossl cannot build.
        ConfigError: a size that the network cannot take.
    """
    obj = _peek(Path(weights))
    if not is_nnssl_checkpoint(obj):
        return None
    plan = check_plan(obj[PLAN_ENTRY], str(weights))
    spec = plan_model_spec(plan, in_channels, num_classes)
    stride = total_stride(spec["kwargs"])
    for field_name, size in (sizes or {}).items():
        if size is not None and any(int(s) % t for s, t in zip(size, stride, strict=True)):
            raise ConfigError(
                f"{field_name}: {list(size)} does not fit the {spec['class']} of {weights}: every size must be a "
                f"multiple of its total stride {list(stride)} (e.g. {fit_to_stride(size, stride)})"
            )
    return spec


def describe_plan(plan: Mapping[str, Any]) -> list[str]:
    """Plain-text lines summarising a plan (sizes as stored, in nnU-Net (z, y, x) order)."""
    arch = plan.get("architecture_plans") or {}
    lines = [f"nnssl adaptation plan (sizes in nnU-Net (z, y, x) order): architecture {arch.get('arch_class_name')}"]
    kwargs = arch.get("arch_kwargs")
    if isinstance(kwargs, Mapping):
        shown = ", ".join(f"{k}={v}" for k, v in kwargs.items() if k not in ARCH_KWARGS_REQUIRING_IMPORT)
        lines.append(f"  arch_kwargs: {shown}")
        lines.append(f"  operators: {', '.join(f'{k}={kwargs.get(k)}' for k in ARCH_KWARGS_REQUIRING_IMPORT)}")
    configurations = (plan.get("pretrain_plan") or {}).get("configurations") or {}
    for name, config in configurations.items():
        if isinstance(config, Mapping):
            lines.append(
                f"  pretraining configuration {name!r}: spacing {config.get('spacing')}, patch size "
                f"{config.get('patch_size')}, normalisation {config.get('normalization_schemes')}"
            )
    lines.append(
        f"  input channels {plan.get('pretrain_num_input_channels')}, recommended downstream patch size "
        f"{plan.get('recommended_downstream_patchsize')}"
    )
    lines.append(
        f"  transfer: encoder {plan.get('key_to_encoder')}, stem {plan.get('key_to_stem')}, "
        f"input projection {plan.get('keys_to_in_proj')}, positional embedding {plan.get('key_to_lpe')}"
    )
    return lines
