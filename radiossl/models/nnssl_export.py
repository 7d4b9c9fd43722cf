"""``radiossl checkpoint export-nnssl``: write a radiossl pretraining run as an nnssl checkpoint for nnU-Net.

The output folder holds ``checkpoint_final.pth`` (``network_weights``, ``nnssl_adaptation_plan``,
``citations``, ``trainer_name`` and a ``radiossl`` provenance entry; opens with
``torch.load(weights_only=True)``) and ``adaptation_plan.json`` (the same plan plus ``trainer_name``),
the two files nnU-Net's ``nnUNetv2_preprocess_like_nnssl`` and ``PretrainedTrainer`` read (see
:mod:`radiossl.models.nnssl_format` for the layout and the axis-order conversion). Both are written
atomically.

What goes into the plan: the network's constructor arguments (from the checkpoint's ``model_spec``),
the pretraining patch size (the run's ``data.crop_size``), and the spacing and normalisation the data
was preprocessed with (``preprocess.json`` of the run's ``data.root``, or of ``preprocessed``).

Example::

    from radiossl.models.nnssl_export import export_nnssl
    result = export_nnssl("runs/pretrain-patch-cluster-...", "nnssl/radiossl-resenc-l")
    print(result.checkpoint, result.encoder_tensors)
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from radiossl.errors import CheckpointError, ConfigError
from radiossl.models.nnssl_format import (
    CHECKPOINT_FILE,
    DNA_CLASS_NAMES,
    EXPORTABLE_BACKBONES,
    PLAN_ENTRY,
    PLAN_FILE,
    WEIGHTS_ENTRY,
    PretrainSettings,
    adaptation_plan,
    key_locations,
    reverse_state_axes,
)

_EXPORT_ORDER: tuple[str, ...] = ("checkpoint_final.pt", "checkpoint_latest.pt")
"""Which checkpoint of a run folder is exported: the final weights, else the latest ones."""


@dataclass(frozen=True)
class NnsslExport:
    """What :func:`export_nnssl` wrote."""

    checkpoint: Path
    plan: Path
    source: Path
    arch_class_name: str
    encoder_tensors: int
    decoder_tensors: int  # the decoder, and the encoder again under decoder.encoder. (the library's alias)


def source_checkpoint(path: str | Path) -> Path:
    """The checkpoint to export: ``path`` itself, or a run folder's final (else latest) checkpoint."""
    path = Path(path)
    if path.is_file():
        return path
    if path.is_dir():
        for name in _EXPORT_ORDER:
            if (path / name).is_file():
                return path / name
        raise CheckpointError(f"{path}: run folder has no {' or '.join(_EXPORT_ORDER)}")
    raise CheckpointError(f"{path}: no such checkpoint file or run folder")


def backbone_spec(spec: Any) -> dict[str, Any] | None:
    """The nnU-Net U-Net spec inside a model spec: the spec itself, or one nested in a wrapper's kwargs."""
    if isinstance(spec, Mapping):
        if spec.get("class") in DNA_CLASS_NAMES and isinstance(spec.get("kwargs"), Mapping):
            return dict(spec)
        for value in spec.values():
            found = backbone_spec(value)
            if found is not None:
                return found
    elif isinstance(spec, (list, tuple)):
        for value in spec:
            found = backbone_spec(value)
            if found is not None:
                return found
    return None


def _normalisation_scheme(intensity: Mapping[str, Any]) -> str:
    """nnU-Net's name for a radiossl intensity mode where they agree, else ``radiossl.<mode>``."""
    mode = str(intensity.get("mode"))
    return "ZScoreNormalization" if mode == "zscore" else f"radiossl.{mode}"


def pretrain_settings(
    config: Mapping[str, Any], in_channels: int, preprocessed: str | Path | None = None
) -> PretrainSettings:
    """Patch size, spacing and normalisation of a run, from its config and its data's ``preprocess.json``.

    Raises:
        ConfigError: no ``preprocess.json`` to read (the folder moved: pass ``preprocessed``), or no patch size.
    """
    data = config.get("data") or {}
    root = Path(preprocessed) if preprocessed is not None else (Path(data["root"]) if data.get("root") else None)
    params_file = root / "preprocess.json" if root is not None else None
    if params_file is None or not params_file.is_file():
        where = f"{params_file} not found" if params_file is not None else "the run records no data.root"
        raise ConfigError(
            f"{where}: the nnssl plan needs the spacing and normalisation the data was preprocessed with; "
            "pass --preprocessed PROC_DIR (the folder the run was trained on)"
        )
    try:
        params = json.loads(params_file.read_text(encoding="utf-8"))
        resolved = params["resolved"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as err:
        raise ConfigError(f"{params_file}: not a readable preprocess.json ({err})") from err
    crop = data.get("crop_size") or resolved.get("crop_size")
    if not isinstance(crop, list) or len(crop) != 3:
        raise ConfigError(f"{params_file}: no 3D crop size recorded in the run or the preprocessed folder")
    spacing = resolved.get("spacing")
    channels = [str(c) for c in resolved.get("channels") or []]
    intensity = resolved.get("intensity") or {}
    per_channel = [
        (_normalisation_scheme(intensity.get(c, {})), bool(intensity.get(c, {}).get("nonzero"))) for c in channels
    ]
    if len(per_channel) != in_channels:
        # Single-channel samples cut from several channels: one network input sees each of them.
        distinct = list(dict.fromkeys(per_channel))
        scheme = distinct[0] if len(distinct) == 1 else (f"radiossl.mixed({','.join(s for s, _ in distinct)})", False)
        per_channel = [scheme] * in_channels
    return PretrainSettings(
        dataset_name=str(params.get("dataset") or root.name),  # type: ignore[union-attr]
        patch_size=(int(crop[0]), int(crop[1]), int(crop[2])),
        spacing=None if spacing in (None, "native") else (float(spacing[0]), float(spacing[1]), float(spacing[2])),
        normalization_schemes=tuple(s for s, _ in per_channel),
        use_mask_for_norm=tuple(m for _, m in per_channel),
        data_identifier=f"radiossl_{resolved.get('view', 'views')}",
    )


def _backbone_weights(
    state: Mapping[str, torch.Tensor], network: torch.nn.Module, source: Path
) -> tuple[dict[str, torch.Tensor], int]:
    """The network's tensors found in ``state`` (under whatever prefix a wrapper added) and the encoder count."""
    expected = network.state_dict()
    declared: Any = network  # ResEncUNet / PlainConvNet: stem_keys is a class attribute
    stem = str(declared.stem_keys[0])
    prefixes = sorted({key[: -len(stem)] for key in state if key.endswith(stem)}, key=len)
    prefixes = [p for p in prefixes if p == "" or p.endswith(".")]
    encoder = [key for key in expected if key.startswith("encoder.")]
    problems = f"no tensor named *{stem}"
    for prefix in prefixes:
        absent = [k for k in encoder if prefix + k not in state]
        wrong = [k for k in encoder if prefix + k in state and state[prefix + k].shape != expected[k].shape]
        if absent or wrong:
            problems = f"under {prefix!r}: " + (
                f"{len(absent)} encoder tensors missing (first {absent[0]})"
                if absent
                else f"{wrong[0]} has another shape"
            )
            continue
        weights = {
            key: state[prefix + key]
            for key, want in expected.items()
            if prefix + key in state and state[prefix + key].shape == want.shape
        }
        return weights, len(encoder)
    raise CheckpointError(
        f"{source}: the {type(network).__name__} of its model spec is not in its weights ({problems})"
    )


def export_nnssl(
    source: str | Path,
    out: str | Path,
    preprocessed: str | Path | None = None,
    downstream_patch_size: Sequence[int] | None = None,
) -> NnsslExport:
    """Write the nnU-Net U-Net of a radiossl checkpoint (or run folder) as an nnssl checkpoint in ``out``.

    Args:
        source: a radiossl checkpoint, or a run folder (its ``checkpoint_final.pt``, else ``checkpoint_latest.pt``).
        out: the folder to write ``checkpoint_final.pth`` and ``adaptation_plan.json`` into (created).
        preprocessed: the preprocessed folder whose ``preprocess.json`` records spacing and normalisation;
            default: the run's ``data.root``.
        downstream_patch_size: recommended finetuning patch size, (i, j, k) order; default: the pretraining
            patch size rounded up to a multiple of the network's total stride.

    Raises:
        CheckpointError: not a radiossl checkpoint, or a network nnU-Net cannot build (``unet3d``).
        ConfigError: the preprocessing parameters cannot be found.
    """
    from radiossl import __version__
    from radiossl.models.checkpoint import clean_state_dict, load_checkpoint, save_checkpoint
    from radiossl.models.factory import build_model
    from radiossl.utils.atomic import write_json

    path = source_checkpoint(source)
    checkpoint = load_checkpoint(path)
    stored_spec = checkpoint.get("model_spec")
    spec = backbone_spec(stored_spec)
    if spec is None:
        network_name = stored_spec.get("class") if isinstance(stored_spec, Mapping) else "unknown"
        raise CheckpointError(
            f"{path}: a {network_name} network cannot be exported to nnssl (nnU-Net cannot build it); "
            f"export-nnssl takes checkpoints of the backbones {', '.join(EXPORTABLE_BACKBONES)} "
            "(pretrain with --set model.name=resenc-l)"
        )
    with torch.device("meta"):
        network = build_model(spec)
    weights, encoder_count = _backbone_weights(clean_state_dict(checkpoint["model"]), network, path)
    in_channels = int(spec["kwargs"].get("input_channels", 1))
    settings = pretrain_settings(checkpoint.get("config") or {}, in_channels, preprocessed)
    plan = adaptation_plan(spec, key_locations(network), settings, downstream_patch_size)
    trainer_name = f"radiossl:{checkpoint.get('name', 'unknown')}"
    provenance = {
        "source": str(path.resolve()),
        "kind": checkpoint.get("kind"),
        "method": checkpoint.get("name"),
        "epoch": checkpoint.get("epoch"),
        "radiossl_version": __version__,
        "axis_order": "exported in nnU-Net (z, y, x) order: sizes, strides and kernels reversed from (i, j, k)",
    }
    payload = {
        WEIGHTS_ENTRY: {k: v.detach().cpu() for k, v in reverse_state_axes(weights, contiguous=True).items()},
        PLAN_ENTRY: plan,
        "citations": [],
        "trainer_name": trainer_name,
        "radiossl": provenance,
    }
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    checkpoint_file = save_checkpoint(out / CHECKPOINT_FILE, payload)
    plan_file = out / PLAN_FILE
    write_json(plan_file, {**plan, "trainer_name": trainer_name})
    return NnsslExport(
        checkpoint=checkpoint_file,
        plan=plan_file,
        source=path,
        arch_class_name=plan["architecture_plans"]["arch_class_name"],
        encoder_tensors=encoder_count,
        decoder_tensors=len(weights) - encoder_count,
    )
