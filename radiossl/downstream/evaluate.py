"""Evaluating a finetuned checkpoint: ``radiossl evaluate`` and :func:`evaluate`.

Two protocols (``protocol``):

* ``full`` (default) — every case of the split, whole volume: sliding-window inference with Gaussian
  blending (optional test-time flips), sigmoid, threshold 0.5 per region, probabilities mapped back
  onto the original image grid when the task resamples; then Dice and HD95 (mm, with the image's
  spacing) per case and region against the original label, with the empty-mask policy of
  :mod:`radiossl.downstream.metrics`. Predicted label maps (dataset label values, e.g. BraTS 1/2/4)
  are written as NIfTI with the input image's geometry when ``save_predictions`` is set.
* ``thesis-crops`` — the thesis protocol (spec §7.3): one near-centre crop of ``roi`` per case (start
  ``(size - crop - 1) // 2`` per axis, on the task's processed grid), no threshold, **soft** Dice
  ``(2Σpt + 1e-5) / (Σp + Σt + 1e-5)`` per region, and the thesis' test loss. Use it only to
  compare with the thesis' published numbers; it covers part of each volume and is not a standard
  BraTS/LiTS metric.

Outputs in ``out``: ``metrics.csv`` (one row per case and region: case, region, dice, hd95,
gt_voxels, pred_voxels), ``summary.json`` (mean ± std per region and over regions, failures, the
resolved config) and ``predictions/<case>.nii.gz``. A case that cannot be used (an unreadable
file, label values outside the task's label set, a case id found twice) is reported, listed under
``failures`` and skipped; ``radiossl evaluate`` then exits with code 1.

Every case's result is written first as a fragment ``cases/<case>.json`` (rows, or the failure, and
the thesis loss); ``metrics.csv`` and ``summary.json`` are joined from the fragments of all cases of
the split. A rerun skips the cases with a result (failed ones are tried again); ``evaluate.json``
records the weights (SHA-256), the settings and the case list the fragments belong to, and an
unsharded run with other ones starts afresh. With ``shard`` (``--shard I/N``) a process evaluates
its share of the cases into the same ``out``; the shard that finds every case done (the last to
finish) writes ``metrics.csv`` and ``summary.json``, and ``merge_only`` writes them alone. A shard
with cases still missing writes no summary.

Task settings that were not set explicitly are taken from the checkpoint's finetune config
(``task_from_checkpoint``), and the cases of the split from the run folder's ``splits.json`` when
there is one, so evaluation uses the preprocessing and split the model was trained with.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from radiossl.downstream.crops import centre_crop
from radiossl.downstream.inference import InferenceSettings, predict_probabilities
from radiossl.downstream.losses import DiceBCELoss
from radiossl.downstream.metrics import EmptyPolicy, mean_std, score_regions, soft_dice
from radiossl.downstream.tasks.base import SegmentationTask, get_task_class
from radiossl.engine.progress import current_reporter
from radiossl.errors import CheckpointError, ConfigError, DataError, RadiosslError
from radiossl.utils.atomic import atomic_write_text, write_json
from radiossl.utils.fragments import Fragments, describe_missing, file_sha256, merge_advice, share
from radiossl.utils.sharding import Shard
from radiossl.utils.text_table import TextTable

if TYPE_CHECKING:
    from torch import nn

    from radiossl.data.datasets import Case
    from radiossl.downstream.config import EvaluateConfig
    from radiossl.models.checkpoint import RawCheckpoint

CSV_COLUMNS = ("case", "region", "dice", "hd95", "gt_voxels", "pred_voxels")
RECORD_FORMAT = "radiossl-evaluation"
EXECUTION_FIELDS: dict[str, Any] = {
    "out": True,
    "weights": True,  # the file's SHA-256 stands for it: the same weights may lie at other paths on other machines
    "allow_unsafe_pickle": True,
    "data": {"workers"},
    "runtime": {"device", "workers"},
    "sliding_window": {"sw_batch_size"},
}
"""Settings that do not change an evaluation's results: its shards may differ in them."""


@dataclass
class EvaluateResult:
    """What :func:`evaluate` produced."""

    out_dir: Path
    metrics_csv: Path
    summary_json: Path
    rows: list[dict[str, Any]]
    summary: dict[str, Any]
    """The whole evaluation's summary; empty for a shard that found cases missing."""
    predictions: list[Path] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)
    shard: Shard | None = None
    evaluated: int = 0
    """Cases this run evaluated (the others of its share had a result already)."""
    missing: list[str] = field(default_factory=list)
    """Cases of the split without a result yet (metrics.csv and summary.json were not written)."""

    @property
    def complete(self) -> bool:
        """Whether every case has a result and the summary was written."""
        return not self.missing

    def table(self) -> TextTable:
        """Mean ± std of Dice and HD95 per region and over regions (the CLI draws it; ``.lines()`` is plain text)."""
        protocol = self.summary["protocol"]
        columns = ["region", "soft Dice" if protocol == "thesis-crops" else "Dice"]
        if protocol == "full":
            columns.append(f"HD{self.summary['hd_percentile']:g} (mm)")
        columns.append("cases")
        rows = []
        for name, stats in {**self.summary["regions"], "mean": self.summary["mean"]}.items():
            cells = [name, _pm(stats["dice_mean"], stats["dice_std"], 4)]
            if protocol == "full":
                cells.append(_pm(stats["hd_mean"], stats["hd_std"], 2))
            cells.append(str(stats["n"]))
            rows.append(cells)
        title = f"{self.summary['task']['task']} · {self.summary['split']} · {protocol}"
        return TextTable(title, columns, rows, right=tuple(range(1, len(columns))))


def _pm(mean: Any, std: Any, digits: int) -> str:
    """``mean ± std`` (values may be the strings ``"nan"``/``"inf"`` of summary.json)."""
    m, s = float(mean), float(std)
    if not math.isfinite(m):
        return str(m)
    return f"{m:.{digits}f} ± {s:.{digits}f}" if math.isfinite(s) else f"{m:.{digits}f}"


def _resolve_task(config: EvaluateConfig, saved: dict[str, Any]) -> Any:
    """The task section: the checkpoint's, overridden by whatever was set explicitly for this evaluation."""
    section = config.task
    saved_task = saved.get("task")
    if not config.task_from_checkpoint or not isinstance(saved_task, dict) or saved_task.get("name") != section.name:
        return section
    explicit = {name: getattr(section, name) for name in section.model_fields_set if name != "name"}
    merged = {
        **saved_task,
        **{k: v.model_dump() if hasattr(v, "model_dump") else v for k, v in explicit.items()},
    }
    try:
        return type(section).model_validate(merged)
    except ValueError as exc:
        raise ConfigError(f"{config.weights}: its task settings do not validate: {exc}") from exc


def _case_ids(task: SegmentationTask, cases: list[Case], config: EvaluateConfig, saved: dict[str, Any]) -> list[str]:
    """Case ids of ``config.split``: from the run's splits.json, else recomputed as finetuning did.

    ``train`` is the whole training split; ``train_subset`` only the ``data.ratio`` subset of it that
    the checkpoint was trained on (the same cases at ratio 1.0).
    """
    if config.split == "all":
        return [case.case_id for case in cases]
    assert config.weights is not None
    run_splits = Path(config.weights).parent / "splits.json"
    if task.settings.splits is None and run_splits.is_file():
        try:
            data = json.loads(run_splits.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise DataError(f"{run_splits}: cannot be read ({exc})") from exc
        ids = data.get(config.split)
        if isinstance(ids, list):
            known = {case.case_id for case in cases}
            missing = [cid for cid in ids if cid not in known]
            if missing:
                raise DataError(f"{run_splits}: {config.split} case(s) not in {task.root}: {', '.join(missing[:5])}")
            return [str(cid) for cid in ids]
    seed = int((saved.get("runtime") or {}).get("seed", config.runtime.seed))
    splits = task.splits(cases, seed)
    if config.split == "train_subset":  # the data.ratio subset finetuning trained on
        from radiossl.data.splits import training_subset

        ratio = float((saved.get("data") or {}).get("ratio", 1.0))
        return training_subset(splits, ratio, seed, saved.get("ratio_order", "seeded"))
    return list(getattr(splits, config.split))


def evaluate(
    config: EvaluateConfig,
    *,
    shard: Shard | None = None,
    merge_only: bool = False,
) -> EvaluateResult:
    """Evaluate ``config.weights`` on the ``config.split`` cases of ``config.data.root``.

    One line per case (its Dice per region, or why it failed) goes to the current progress reporter
    (:mod:`radiossl.engine.progress`: plain lines by default, the console under the CLI).

    Args:
        config: the resolved evaluate config (see :func:`radiossl.downstream.config.load_task_config`).
        shard: evaluate only this share of the cases (``--shard I/N``); None = all of them.
        merge_only: evaluate nothing; write ``metrics.csv`` and ``summary.json`` from the fragments.

    Raises:
        ConfigError: no weights or dataset, bad settings, or shards of another evaluation in ``out``.
        DataError: no cases, unreadable files; ``merge_only`` with cases that have no result yet.
    """
    from radiossl.models.checkpoint import read_checkpoint

    say = current_reporter().message
    if config.weights is None:
        raise ConfigError("weights: no checkpoint given (--weights CKPT)")
    if config.data.root is None:
        raise ConfigError("data.root: no dataset folder given (--data RAW_DIR)")
    if not Path(config.data.root).is_dir():
        raise DataError(f"{config.data.root}: dataset folder not found")
    raw_ckpt = read_checkpoint(config.weights, allow_unsafe=config.allow_unsafe_pickle)
    stored = raw_ckpt.meta.get("config")
    saved: dict[str, Any] = stored if isinstance(stored, dict) else {}
    task_settings = _resolve_task(config, saved)
    task = get_task_class(task_settings.name)(task_settings, config.data.root)
    cases = task.list_cases()
    by_id = {case.case_id: case for case in cases}
    ids = _case_ids(task, cases, config, saved)
    if config.max_cases is not None:
        ids = ids[: config.max_cases]
    if not ids:
        raise DataError(f"{config.data.root}: the {config.split} split has no cases")
    out = Path(config.out)
    fragments = case_fragments(out)
    fragments.claim(
        _identity(config, ids),
        advice="use another --out, or run without --shard to replace them",
        replace=shard is None and not merge_only,
        models={"config": config},
    )
    todo = [] if merge_only else [by_id[c] for c in share(ids, shard) if not _has_result(fragments, c)]
    predictions, failures = (
        _evaluate_cases(config, raw_ckpt, saved, task, todo, fragments, shard, say) if todo else ([], [])
    )
    metrics_csv, summary_json = out / "metrics.csv", out / "summary.json"
    result = EvaluateResult(out, metrics_csv, summary_json, [], {}, predictions, failures, shard, len(todo))
    with fragments.lock():  # the merge: every case of the split, in the split's order
        result.missing = fragments.missing(ids)
        if result.missing:
            if merge_only:
                where = describe_missing(result.missing, len(ids), "cases")
                raise DataError(f"{out}: {where}; {merge_advice('radiossl evaluate')}")
            return result  # a shard's part: no summary that would claim to be whole
        result.failures = []
        losses: list[float] = []
        precisions: set[str] = set()
        for case_id in ids:
            fragment = fragments.read_json(case_id)
            if fragment.get("status") == "ok":
                result.rows.extend(fragment["rows"])
                if fragment.get("loss") is not None:
                    losses.append(float(fragment["loss"]))
                precisions.add(str(fragment.get("amp", "none")))
            else:
                result.failures.append({"case": case_id, "error": str(fragment.get("error"))})
        result.summary = _summary(result.rows, task.region_names(), config, task, result.failures, losses)
        # The precision the cases really ran in (after resolve_amp); shards on other machines may differ.
        result.summary["amp"] = precisions.pop() if len(precisions) == 1 else sorted(precisions)
        atomic_write_text(metrics_csv, _csv_text(result.rows, config.hd_percentile))
        write_json(summary_json, result.summary)
    return result


def _evaluate_cases(
    config: EvaluateConfig,
    raw_ckpt: RawCheckpoint,
    saved: dict[str, Any],
    task: SegmentationTask,
    cases: list[Case],
    fragments: Fragments,
    shard: Shard | None,
    say: Callable[[str], None],
) -> tuple[list[Path], list[dict[str, str]]]:
    """Evaluate ``cases``, writing each one's fragment; returns the predictions written and the failures."""
    from radiossl.models.loading import model_from_checkpoint
    from radiossl.runtime.device import apply_memory_format, memory_format_for, select_device
    from radiossl.runtime.precision import amp_dtype, resolve_amp

    assert config.weights is not None
    model, _ = model_from_checkpoint(raw_ckpt)
    _check_model(model, task, config.weights)
    roi = _roi(config, saved)
    inference = InferenceSettings.from_config(config.sliding_window, roi, config.tta_flips)
    device = select_device(config.runtime.device)
    apply_memory_format(model.to(device), memory_format_for(device, config.runtime.memory_format)).eval()
    precision = resolve_amp(device, config.runtime.amp)
    precision.log()
    autocast = amp_dtype(precision.amp)
    policy = EmptyPolicy(config.empty_policy.both_empty, config.empty_policy.one_empty_hd)
    out = Path(config.out)
    predictions: list[Path] = []
    failures: list[dict[str, str]] = []
    for number, case in enumerate(cases, start=1):
        where = f"[{number}/{len(cases)}" + (f" of shard {shard}]" if shard else "]")
        loss: float | None = None
        try:
            if config.protocol == "full":
                case_rows, written = _evaluate_full(model, task, case, config, inference, policy, device, autocast, out)
                predictions.extend(written)
            else:
                case_rows, loss = _evaluate_crop(model, task, case, roi, device)
        except RadiosslError as exc:
            failures.append({"case": case.case_id, "error": str(exc)})
            fragments.write_json(case.case_id, {"case": case.case_id, "status": "failed", "error": str(exc)})
            say(f"{where} {case.case_id}: failed: {exc}")
            continue
        fragments.write_json(
            case.case_id,
            {"case": case.case_id, "status": "ok", "rows": case_rows, "loss": loss, "amp": precision.amp},
        )
        scores = ", ".join(f"{row['region']} {row['dice']:.3f}" for row in case_rows)
        say(f"{where} {case.case_id}: {scores or 'no label'}")
    return predictions, failures


def case_fragments(out: Path) -> Fragments:
    """The per-case results of an evaluation: ``out/cases/<case>.json``, described by ``out/evaluate.json``."""
    return Fragments(out / "cases", ".json", out / "evaluate.json")


def _identity(config: EvaluateConfig, ids: list[str]) -> dict[str, Any]:
    """What the per-case results are results of: the weights' bytes, the settings and the cases."""
    assert config.weights is not None
    return {
        "format": RECORD_FORMAT,
        "weights_sha256": file_sha256(Path(config.weights)),
        "cases": ids,
        "config": config.model_dump(mode="json", exclude=EXECUTION_FIELDS),
    }


def _has_result(fragments: Fragments, case_id: str) -> bool:
    """Whether ``case_id`` was evaluated (a failed case has no result: it is tried again)."""
    if not fragments.has(case_id):
        return False
    try:
        return bool(fragments.read_json(case_id).get("status") == "ok")
    except DataError:
        return False  # an unreadable fragment is redone


def _check_model(model: nn.Module, task: SegmentationTask, weights: Path) -> None:
    in_ch, out_ch = getattr(model, "in_channels", None), getattr(model, "out_channels", None)
    if in_ch != task.in_channels or out_ch != task.out_channels:
        raise CheckpointError(
            f"{weights}: network has {in_ch} input / {out_ch} output channels but task {task.name!r} needs "
            f"{task.in_channels} / {task.out_channels} (channels {', '.join(task.channel_names())}; "
            f"regions {', '.join(task.region_names())})"
        )


def _roi(config: EvaluateConfig, saved: dict[str, Any]) -> tuple[int, int, int]:
    """Window size: sliding_window.roi, else the checkpoint's training crop, else data.crop_size."""
    roi: Any = config.sliding_window.roi
    if roi is None:
        roi = (saved.get("sliding_window") or {}).get("roi") or (saved.get("data") or {}).get("crop_size")
    if roi is None:
        roi = config.data.crop_size
    size = tuple(int(v) for v in roi)
    if len(size) != 3 or any(v < 8 or v % 8 for v in size):
        raise ConfigError(f"sliding_window.roi: need three multiples of 8, got {list(size)}")
    return size[0], size[1], size[2]


def _evaluate_full(
    model: nn.Module,
    task: SegmentationTask,
    case: Case,
    config: EvaluateConfig,
    inference: InferenceSettings,
    policy: EmptyPolicy,
    device: torch.device,
    autocast: torch.dtype | None,
    out: Path,
) -> tuple[list[dict[str, Any]], list[Path]]:
    from radiossl.data.loading import to_reference
    from radiossl.io import write_image

    raw, arrays = task.load_with_raw(case)
    probs = predict_probabilities(model, arrays.image, inference, device=device, autocast_dtype=autocast).numpy()
    reference = arrays.reference
    if probs.shape[1:] != reference.shape:
        probs = to_reference(probs, arrays, mode="linear")
    masks = probs > config.threshold
    written: list[Path] = []
    if config.save_predictions:
        path = out / "predictions" / f"{case.case_id}.nii.gz"
        write_image(path, task.label_map(masks), like=reference)
        written.append(path)
    if raw.label is None:
        return [], written
    label = np.rint(raw.label.array).astype(np.int32)
    truth = task.region_targets(label).astype(bool)
    scores = score_regions(masks, truth, task.region_names(), reference.spacing, config.hd_percentile, policy)
    rows = [
        {
            "case": case.case_id,
            "region": s.region,
            "dice": s.dice,
            "hd95": s.hd,
            "gt_voxels": s.gt_voxels,
            "pred_voxels": s.pred_voxels,
        }
        for s in scores
    ]
    return rows, written


@torch.no_grad()
def _evaluate_crop(
    model: nn.Module, task: SegmentationTask, case: Case, roi: tuple[int, int, int], device: torch.device
) -> tuple[list[dict[str, Any]], float]:
    arrays = task.load(case)
    if arrays.label is None:
        raise DataError(f"case {case.case_id}: no label file; thesis-crops needs labels")
    image = task.normalise_crop(centre_crop(arrays.image, roi))
    target = task.region_targets(centre_crop(arrays.label, roi))
    logits = model(torch.from_numpy(image)[None].to(device)).float()
    probs = torch.sigmoid(logits)[0].cpu().numpy()
    thesis_loss = DiceBCELoss(bce_weight=0.2, reduction="sum", legacy_double_sigmoid=True)
    loss = float(thesis_loss(logits.cpu(), torch.from_numpy(target)[None].float()))
    rows = [
        {
            "case": case.case_id,
            "region": name,
            "dice": soft_dice(probs[r], target[r]),
            "hd95": math.nan,
            "gt_voxels": int(target[r].sum()),
            "pred_voxels": int((probs[r] > 0.5).sum()),
        }
        for r, name in enumerate(task.region_names())
    ]
    return rows, loss


def _stats(dice_values: list[float], hd_values: list[float]) -> dict[str, Any]:
    dice_mean, dice_std, n = mean_std(dice_values)
    hd_mean, hd_std, _ = mean_std(hd_values)
    return {"dice_mean": dice_mean, "dice_std": dice_std, "hd_mean": hd_mean, "hd_std": hd_std, "n": n}


def _summary(
    rows: list[dict[str, Any]],
    names: list[str],
    config: EvaluateConfig,
    task: SegmentationTask,
    failures: list[dict[str, str]],
    losses: list[float],
) -> dict[str, Any]:
    regions = {
        name: _stats([r["dice"] for r in rows if r["region"] == name], [r["hd95"] for r in rows if r["region"] == name])
        for name in names
    }
    per_case: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        per_case.setdefault(row["case"], []).append(row)
    case_dice = [
        float(np.nanmean([r["dice"] for r in rs])) if any(not math.isnan(r["dice"]) for r in rs) else math.nan
        for rs in per_case.values()
    ]
    case_hd = [
        float(np.nanmean([r["hd95"] for r in rs])) if any(not math.isnan(r["hd95"]) for r in rs) else math.nan
        for rs in per_case.values()
    ]
    summary: dict[str, Any] = {
        "protocol": config.protocol,
        "split": config.split,
        "weights": str(config.weights),
        "data": str(config.data.root),
        "task": task.describe(),
        "hd_percentile": config.hd_percentile,
        "empty_policy": config.empty_policy.model_dump(),
        "cases": len(per_case),
        "regions": regions,
        "mean": _stats(case_dice, case_hd),
        "failures": failures,
        "config": json.loads(config.model_dump_json()),
    }
    if config.protocol == "thesis-crops":
        loss_mean, loss_std, _ = mean_std(losses)
        summary["thesis_loss"] = {"mean": loss_mean, "std": loss_std}
    return _json_safe(summary)


def _json_safe(value: Any) -> Any:
    """NaN/inf as strings (JSON has neither)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def _csv_text(rows: list[dict[str, Any]], percentile: float) -> str:
    hd_name = "hd95" if percentile == 95 else f"hd{percentile:g}"
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([hd_name if c == "hd95" else c for c in CSV_COLUMNS])
    for row in rows:
        writer.writerow([_cell(row[c]) for c in CSV_COLUMNS])
    return buffer.getvalue()


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(round(value, 6))
    return str(value)
