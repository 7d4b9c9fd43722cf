"""Orchestration of ``radiossl preprocess``: parallel, shardable, resumable, failure-tolerant.

1. Fix the split (``splits.json``) and resolve the plan; a folder made with other settings is refused.
   One pass over the adapter's case stream (:meth:`~radiossl.data.datasets.base.DatasetAdapter.iter_cases`)
   keeps only the case ids, in order.
2. Walk the case stream again, keeping the cases of this shard (``--shard I/N``, counted from 1:
   position ``% N == I - 1`` in the stream) and skipping every group whose fragment
   ``cases/<group_id>.csv`` exists (resume). Jobs are made one at a time as workers free up, so a
   collection of any size is never held as cases or jobs: per case the run keeps its id and split.
3. Process each remaining case in a worker process (or in this process for ``workers <= 1``): read
   every file once, resample, normalise, let the view plugin (``plan.sampler``, see
   :mod:`radiossl.data.view_contract`) sample all groups, write ``arrays/*.npy`` and then the fragment, all
   atomically. A bad case is recorded with its reason (and this run's shard); the
   others go on. Bad cases include unreadable files, labels that differ in shape or geometry or
   (``check_labels``) hold values outside the adapter's label set, and case ids found more than once
   (every copy). A worker that dies fails the cases it held; a fresh pool takes the rest. Progress
   (cases done, failures, ETA) goes to the current progress reporter at a bounded rate.
4. Merge all fragments into ``manifest.csv`` (streamed, fragment by fragment) and all statuses into
   ``preprocess.json``, which lists every failed case of every shard with its reason, under a
   folder lock, so that the last shard to finish leaves the complete folder. Both files are
   written through :mod:`radiossl.data.processed`, the folder's one owner.

Example (``raw`` is a BraTS-layout folder; see ``docs/data.md`` for a full walk-through)::

    from radiossl.data.preprocess import PreprocessConfig, preprocess
    result = preprocess(PreprocessConfig(dataset="brats18", data="raw", out="proc", workers=2))
    print(result.ok, result.failed)
"""

from __future__ import annotations

import concurrent.futures as cf
import itertools
import json
import multiprocessing
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from radiossl import __version__
from radiossl.data.datasets.base import Case, DatasetAdapter, get_adapter
from radiossl.data.labels import LabelSet
from radiossl.data.loading import RawCase, arrays_from_raw, read_case
from radiossl.data.normalise import default_threshold
from radiossl.data.preprocess.boxes import pad_to
from radiossl.data.preprocess.config import EXECUTION_FIELDS, PreprocessConfig, resolve_plan
from radiossl.data.preprocess.progress import CaseProgress
from radiossl.data.processed import (
    FORMAT,
    has_preprocess_record,
    read_preprocess_record,
    read_rows,
    rows_to_csv,
    write_manifest,
    write_preprocess_record,
)
from radiossl.data.splits import UNUSED, Splits, load_splits, save_splits
from radiossl.data.view_contract import Plan, view_names
from radiossl.errors import ConfigError, DataError, RadiosslError
from radiossl.utils.atomic import atomic_save_npy, atomic_write_text, write_json
from radiossl.utils.locking import folder_lock
from radiossl.utils.settings_diff import settings_differences
from radiossl.utils.sharding import Shard, ShardError, parse_shard

ProgressCallback = Callable[[str, bool], None]


@dataclass(frozen=True)
class CaseFailure:
    """A case that could not be preprocessed, and why (``shard``: the shard that tried it, if sharded)."""

    case_id: str
    reason: str
    shard: str | None = None


@dataclass
class MergeSummary:
    """What the merged folder holds: manifest rows, case counts, and every failed case of every shard."""

    rows: int
    counts: dict[str, int]
    failures: list[CaseFailure]


@dataclass
class PreprocessResult:
    """Outcome of one ``preprocess`` call (this shard / this run)."""

    out: Path
    ok: int = 0
    failed: int = 0
    skipped: int = 0
    samples: int = 0
    total_cases: int = 0
    failures: list[CaseFailure] = field(default_factory=list)
    seconds: float = 0.0
    shard: Shard | None = None
    manifest_rows: int = 0
    merged: MergeSummary | None = None
    """The whole folder after the merge: counts and failures of every shard, not only this run's."""

    @property
    def success(self) -> bool:
        """True when no case failed."""
        return self.failed == 0


@dataclass(frozen=True)
class CaseJob:
    """Everything a worker needs to preprocess one case (picklable)."""

    case: Case
    plan: Plan
    out: Path
    split: str
    groups: tuple[tuple[str, tuple[str, ...]], ...]
    problems: tuple[str, ...] = ()
    labels: LabelSet | None = None
    """The allowed label values (``check_labels``); None = the label is not checked."""
    shard: str | None = None
    """The shard of this run (``"2/4"``), recorded in the case's status; None when not sharded."""


# --------------------------------------------------------------------------------------------------
# One case (runs in a worker process)


def process_case(job: CaseJob) -> dict[str, Any]:
    """Preprocess one case; never raises for bad data (the status dict carries the reason)."""
    start = time.perf_counter()
    status: dict[str, Any] = {
        "case_id": job.case.case_id,
        "split": job.split,
        "status": "failed",
        "error": None,
        "groups": [g for g, _ in job.plan.groups(job.case.case_id)],
        "samples": 0,
        "sources": source_info(job.case),
        "shard": job.shard,
    }
    try:
        if job.problems:
            raise DataError("; ".join(job.problems))
        status["samples"] = _process(job, status)
        status["status"] = "ok"
    except RadiosslError as exc:
        status["error"] = str(exc)
    except MemoryError:
        status["error"] = "out of memory while processing this case"
    except Exception as exc:
        status["error"] = f"{type(exc).__name__}: {exc}"
    status["seconds"] = round(time.perf_counter() - start, 3)
    write_json(job.out / "status" / f"{job.case.case_id}.json", status)
    return status


def _process(job: CaseJob, status: dict[str, Any]) -> int:
    plan, case = job.plan, job.case
    raw = read_case(case if plan.check_labels else replace(case, label=None), job.labels)
    # The label was read only to check its shape and values; pretext samples do not use it.
    arrays = arrays_from_raw(
        case, RawCase(raw.images, None), spacing=plan.spacing, intensity=plan.intensity, zoom=plan.zoom
    )
    shape = arrays.image.shape[1:]
    status["shape"] = list(raw.images[plan.channels[0]].shape)
    status["processed_shape"] = list(shape)
    minimum = [plan.min_size_fraction * c for c in plan.crop_size]
    if any(n < m for n, m in zip(shape, minimum, strict=True)):
        raise DataError(
            f"case {case.case_id}: volume of shape {tuple(shape)} after resampling is smaller than "
            f"{plan.min_size_fraction:g} x the crop size {plan.crop_size}"
        )
    thresholds = _thresholds(plan, raw, arrays.intensity)
    # Sample every group before writing anything, so that a case that fails leaves no samples.
    outputs = []
    for group_id, channels in job.groups:
        index = [plan.channels.index(c) for c in channels]
        selected = arrays.image[index[0] : index[0] + 1] if len(index) == 1 else arrays.image[index]
        volume = pad_to(selected, plan.crop_size)
        outputs.append(_sample_group(job, group_id, volume, [thresholds[c] for c in channels]))
    for group in outputs:
        for name, array in group.arrays.items():
            atomic_save_npy(job.out / "arrays" / name, array)
        atomic_write_text(job.out / "cases" / f"{group.group_id}.csv", rows_to_csv(group.rows))  # marker: last
    return sum(len(group.rows) for group in outputs)


def _thresholds(plan: Plan, raw: RawCase, maps: dict[str, Any]) -> dict[str, float]:
    if plan.rejection.threshold is not None:
        return dict.fromkeys(plan.channels, float(plan.rejection.threshold))
    out = {}
    for channel in plan.channels:
        array = raw.images[channel].array
        out[channel] = default_threshold(
            plan.modalities[channel], maps[channel], float(array.min()), float(array.max())
        )
    return out


@dataclass
class GroupOutput:
    """The arrays (file name -> array) and manifest rows of one sample group, ready to be written."""

    group_id: str
    arrays: dict[str, np.ndarray]
    rows: list[dict[str, str]]


def _sample_group(job: CaseJob, group_id: str, volume: np.ndarray, thresholds: list[float]) -> GroupOutput:
    """Let the plan's view sample one group, and lay its samples out as array files and manifest rows."""
    plan = job.plan
    dtype = torch.float16 if plan.storage == "float16" else torch.float32
    samples = plan.sampler.sample(volume, group_id, plan, thresholds, dtype)
    file = f"arrays/{group_id}.npy"
    arrays: dict[str, np.ndarray] = {f"{group_id}.npy": _stored(samples.crops, plan.storage)}
    for suffix, crops in samples.extra_crops.items():
        arrays[f"{group_id}{suffix}.npy"] = _stored(crops, plan.storage)
    for suffix, values in samples.extra_arrays.items():
        arrays[f"{group_id}{suffix}.npy"] = np.asarray(values)
    numbers = samples.sample_numbers()
    count = int(samples.crops.shape[0])
    if len(numbers) != count or samples.boxes.shape != (count, 2, 6):
        raise DataError(
            f"view {plan.view!r} returned {count} samples with {len(numbers)} numbers and boxes of shape "
            f"{tuple(samples.boxes.shape)} (expected ({count}, 2, 6))"
        )
    rows = []
    for row_index, (number, pair) in enumerate(zip(numbers, samples.boxes.tolist(), strict=True)):
        row = {
            "sample_id": f"{group_id}_{number:04d}",
            "case_id": job.case.case_id,
            "group_id": group_id,
            "split": job.split,
            "view": plan.view,
            "file": file,
            "index": str(row_index),
            "channels": str(volume.shape[0]),
        }
        for prefix, box in (("a", pair[0]), ("b", pair[1])):
            for name, value in zip(("x1", "x2", "y1", "y2", "z1", "z2"), box, strict=True):
                row[f"{prefix}_{name}"] = str(value)
        rows.append(row)
    return GroupOutput(group_id, arrays, rows)


def _stored(tensor: torch.Tensor, storage: str) -> np.ndarray:
    if storage == "uint8":
        return tensor.clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8).numpy()
    return tensor.to(torch.float16).numpy()


def source_info(case: Case) -> list[dict[str, Any]]:
    """Path, size and modification time of every file of ``case`` (None when missing)."""
    out = []
    for path in case.files:
        try:
            stat = path.stat()
            out.append({"path": str(path), "size": stat.st_size, "mtime": round(stat.st_mtime, 3)})
        except OSError:
            out.append({"path": str(path), "size": None, "mtime": None})
    return out


def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)


# --------------------------------------------------------------------------------------------------
# The whole run


def preprocess(
    config: PreprocessConfig,
    *,
    merge_only: bool = False,
    progress: ProgressCallback | None = None,
) -> PreprocessResult:
    """Preprocess a raw dataset into ``config.out`` (see the module docstring).

    ``progress(case_id, ok)`` is called after each case; otherwise, when ``config.progress`` is true,
    progress lines (cases done, failures, ETA) go to the current progress reporter. ``merge_only``
    only rebuilds ``manifest.csv`` and ``preprocess.json`` from the fragments and statuses that exist
    (after sharded runs); ``result.merged`` then lists the failures of every shard.

    Raises:
        ConfigError: missing ``data``/``out``, bad shard, or ``out`` made with other settings.
        DataError: the dataset layout is wrong (no cases, unreadable split file).
    """
    start = time.perf_counter()
    if config.data is None or config.out is None:
        raise ConfigError("preprocess needs both data (raw dataset folder) and out (output folder)")
    root, out = Path(config.data).resolve(), Path(config.out)
    if not root.exists():
        raise ConfigError(f"{root}: raw dataset folder not found")
    try:
        shard = parse_shard(config.shard) if config.shard else None
    except ShardError as exc:
        raise ConfigError(f"--shard {exc}") from None
    adapter = get_adapter(config.dataset, config.dataset_options)
    channels = adapter.channel_names(root)
    plan = resolve_plan(config, channels, adapter.channel_modalities(root))
    splits = load_splits(config.splits_file) if config.splits_file else adapter.default_splits_of(root)
    header = _header(config, adapter, root, plan, splits)
    _prepare_folder(out, header, config, splits, clean_temporaries=shard is None and not merge_only)

    assignment = splits.assignment()
    case_ids = [case.case_id for case in adapter.iter_cases(root)]  # the only per-case list kept

    def wanted(case_id: str) -> bool:
        return config.include_splits is None or assignment.get(case_id, UNUSED) in config.include_splits

    selected = sum(1 for case_id in case_ids if wanted(case_id))
    result = PreprocessResult(out=out, total_cases=_shard_size(selected, shard), shard=shard)
    if not merge_only:
        labels = _label_check(adapter, root) if config.check_labels else None
        cases: Iterator[Case] = (case for case in adapter.iter_cases(root) if wanted(case.case_id))
        mine = cases if shard is None else shard.pick(cases)
        label = f"preprocess {config.dataset}/{plan.view}" + (f" shard {shard}" if shard is not None else "")
        tracker = CaseProgress(label, result.total_cases, write=None if config.progress else _silent)
        if progress is None:
            tracker.start()

        def jobs() -> Iterator[CaseJob]:
            for case in mine:
                todo = tuple(g for g in plan.groups(case.case_id) if not (out / "cases" / f"{g[0]}.csv").is_file())
                if not todo:
                    result.skipped += 1
                    tracker.skip()
                    continue
                split = assignment.get(case.case_id, UNUSED)
                problems = tuple(adapter.case_problems(case))
                yield CaseJob(case, plan, out, split, todo, problems, labels, str(shard) if shard else None)

        for status in _run_jobs(jobs(), config):
            ok = status["status"] == "ok"
            if ok:
                result.ok += 1
                result.samples += int(status["samples"])
            else:
                result.failed += 1
                result.failures.append(CaseFailure(status["case_id"], str(status["error"]), status.get("shard")))
            if progress is not None:
                progress(status["case_id"], ok)
            else:
                tracker.advance(ok)
        if progress is None:
            tracker.finish()
    result.merged = merge(out, header, case_ids, plan, splits)
    result.manifest_rows = result.merged.rows
    result.seconds = time.perf_counter() - start
    return result


def _silent(line: str) -> None:
    """Progress lines of a run with ``progress`` off go nowhere."""


def _shard_size(count: int, shard: Shard | None) -> int:
    """How many of ``count`` positions shard ``shard`` takes (all when not sharded)."""
    if shard is None:
        return count
    return len(range(shard.index - 1, count, shard.count))


def _label_check(adapter: DatasetAdapter, root: Path) -> LabelSet:
    """The adapter's label set, with the advice that preprocessing can skip the label check."""
    advice = "pretext samples do not use labels: --set check_labels=false skips the label checks"
    return replace(adapter.label_set(root), advice=advice)


IN_FLIGHT_PER_WORKER = 2
"""Jobs handed to the worker pool per worker at a time: enough to keep workers busy, few enough to
keep memory bounded however many cases there are."""


def _run_jobs(jobs: Iterable[CaseJob], config: PreprocessConfig) -> Iterator[dict[str, Any]]:
    """The status of every job, as each finishes (in this process, or in a pool of worker processes)."""
    queue = iter(jobs)
    head = list(itertools.islice(queue, 2))
    if config.workers <= 1 or len(head) <= 1:
        for job in itertools.chain(head, queue):
            yield process_case(job)
        return
    yield from _run_in_pool(itertools.chain(head, queue), config.workers)


def _run_in_pool(jobs: Iterator[CaseJob], workers: int) -> Iterator[dict[str, Any]]:
    """Run ``jobs`` in ``workers`` processes, at most ``IN_FLIGHT_PER_WORKER * workers`` at a time.

    A worker that dies (killed, e.g. out of memory) breaks the pool: the cases in flight are reported
    as failed, and a fresh pool takes the remaining cases.
    """
    threads = max(1, (os.cpu_count() or 1) // workers)
    context = multiprocessing.get_context("spawn")  # safe with torch and threads on every OS
    limit = IN_FLIGHT_PER_WORKER * workers

    def new_pool() -> cf.ProcessPoolExecutor:
        return cf.ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=(threads,))

    pool = new_pool()
    pending: dict[cf.Future[dict[str, Any]], CaseJob] = {}
    waiting: CaseJob | None = None  # a job that a broken pool refused, for the next pool
    try:
        while True:
            broken = False
            while len(pending) < limit and not broken:
                job = waiting if waiting is not None else next(jobs, None)
                if job is None:
                    break
                try:
                    pending[pool.submit(process_case, job)] = job
                    waiting = None
                except cf.process.BrokenProcessPool:
                    waiting, broken = job, True
            if not pending and not broken:
                return
            if not broken:
                done, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
                for future in done:
                    broken = broken or isinstance(future.exception(), cf.process.BrokenProcessPool)
                    yield _future_status(future, pending.pop(future))
            if broken:  # every job still in flight died with the pool
                cf.wait(pending)
                for future, job in list(pending.items()):
                    yield _future_status(future, job)
                pending.clear()
                pool.shutdown(wait=True, cancel_futures=True)
                pool = new_pool()
    except (KeyboardInterrupt, GeneratorExit):
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _future_status(future: cf.Future[dict[str, Any]], job: CaseJob) -> dict[str, Any]:
    try:
        return future.result()
    except cf.process.BrokenProcessPool:
        reason = "worker process died (killed, e.g. out of memory)"
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
    status = {
        "case_id": job.case.case_id,
        "split": job.split,
        "status": "failed",
        "error": reason,
        "groups": [g for g, _ in job.plan.groups(job.case.case_id)],
        "samples": 0,
        "sources": source_info(job.case),
        "shard": job.shard,
    }
    write_json(job.out / "status" / f"{job.case.case_id}.json", status)
    return status


# --------------------------------------------------------------------------------------------------
# Folder bookkeeping


def _header(
    config: PreprocessConfig, adapter: DatasetAdapter, root: Path, plan: Plan, splits: Splits
) -> dict[str, Any]:
    settings = config.model_dump(mode="json", exclude=set(EXECUTION_FIELDS))
    return {
        "format": FORMAT,
        "radiossl_version": __version__,
        "dataset": config.dataset,
        "modality": adapter.modality,
        "raw_root": str(root.resolve()),
        "view": plan.view,
        "channels": list(plan.channels),
        "label_values": adapter.label_values(root),
        "settings": settings,
        "resolved": plan.describe(),
        "splits": {
            "file": "splits.json",
            "source": splits.source,
            "counts": {"train": len(splits.train), "val": len(splits.val), "test": len(splits.test)},
        },
    }


def _prepare_folder(
    out: Path, header: dict[str, Any], config: PreprocessConfig, splits: Splits, clean_temporaries: bool
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with folder_lock(out):
        if has_preprocess_record(out):
            try:
                existing = dict(read_preprocess_record(out).data)
            except DataError as exc:
                raise ConfigError(f"{exc}; use another --out folder") from None
            differences = _differences(existing, header, config)
            if differences:
                raise ConfigError(
                    f"{out} was preprocessed with other settings ({'; '.join(differences[:4])}); "
                    "use another --out folder or the same settings"
                )
            _check_same_source(out, existing, header, splits)
        elif any(p.name != ".lock" for p in out.iterdir()):
            raise ConfigError(f"{out}: folder is not empty and not a preprocessed folder; choose a new folder")
        else:
            write_preprocess_record(out, {**header, "counts": {}, "cases": {}})
        for sub in ("arrays", "cases", "status"):
            (out / sub).mkdir(exist_ok=True)
        save_splits(out / "splits.json", splits)
    if clean_temporaries:  # only unsharded runs: another shard may be writing right now
        for sub in ("arrays", "cases", "status", "."):
            folder = out / sub
            if folder.is_dir():
                for stray in folder.glob(".tmp-*"):
                    stray.unlink(missing_ok=True)


def _check_same_source(out: Path, existing: dict[str, Any], header: dict[str, Any], splits: Splits) -> None:
    """ConfigError when ``out`` was made from another raw folder or with another split."""
    old_root = existing.get("raw_root")
    if old_root is not None and old_root != header["raw_root"]:
        raise ConfigError(
            f"{out} was preprocessed from raw data {old_root}, not {header['raw_root']}; "
            "use another --out folder or the same --data"
        )
    saved = out / "splits.json"
    if not saved.is_file():
        return
    before, now = load_splits(saved).assignment(), splits.assignment()
    if before != now:
        changed = sorted(c for c in before.keys() | now.keys() if before.get(c) != now.get(c))
        examples = ", ".join(f"{c}: {before.get(c, 'unused')} -> {now.get(c, 'unused')}" for c in changed[:3])
        raise ConfigError(
            f"{out} was preprocessed with another split ({len(changed)} case(s) differ, e.g. {examples}); "
            "use another --out folder or the same split"
        )


def _differences(existing: dict[str, Any], header: dict[str, Any], config: PreprocessConfig) -> list[str]:
    """Settings that differ between the folder's record and this run (sections of other views change no sample).

    A setting added since the folder was written is absent from its record; it is no difference while it
    holds its field's default (:func:`radiossl.utils.settings_diff.settings_differences`).
    """

    def described(record: dict[str, Any]) -> dict[str, Any]:
        return {key: record.get(key) for key in ("format", "dataset", "view", "channels")}

    other_views = set(view_names()) - {header["view"]}

    def own(settings: dict[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in settings.items() if key not in other_views}

    out = settings_differences(described(existing), described(header))
    old = existing.get("settings")
    if not isinstance(old, dict):
        return [*out, "settings: not recorded"]
    return out + settings_differences(own(old), own(header["settings"]), {"": config})


def merge(out: Path, header: dict[str, Any], case_ids: Sequence[str], plan: Plan, splits: Splits) -> MergeSummary:
    """Rebuild ``manifest.csv`` and ``preprocess.json`` from fragments and statuses.

    ``case_ids`` are every case of the dataset. The manifest is written fragment by fragment (rows
    sorted by case, group and index), so its size in memory is one fragment; ``preprocess.json`` holds
    one entry per case and, under ``failures``, every failed case of every shard with its reason.
    """
    assignment = splits.assignment()
    with folder_lock(out):
        done_groups = {p.stem for p in (out / "cases").glob("*.csv") if not p.name.startswith(".tmp-")}
        per_case: dict[str, int] = {}
        order = sorted(dict.fromkeys(case_ids))

        def manifest_rows() -> Iterator[dict[str, str]]:
            for case_id in order:
                for group_id in sorted(g for g, _ in plan.groups(case_id) if g in done_groups):
                    rows = read_rows(out / "cases" / f"{group_id}.csv")
                    rows.sort(key=lambda r: int(r["index"]))
                    for row in rows:
                        row["split"] = assignment.get(row["case_id"], UNUSED)
                        per_case[row["case_id"]] = per_case.get(row["case_id"], 0) + 1
                        yield row

        write_manifest(out, manifest_rows())
        case_status: dict[str, Any] = {}
        failures: list[CaseFailure] = []
        counts = {"cases": len(order), "ok": 0, "failed": 0, "pending": 0, "samples": sum(per_case.values())}
        for case_id in order:
            entry = _read_status(out / "status" / f"{case_id}.json")
            complete = all(g in done_groups for g, _ in plan.groups(case_id))
            state = "ok" if complete else ("failed" if entry.get("status") == "failed" else "pending")
            counts[state] += 1
            case_status[case_id] = {
                **entry,
                "status": state,
                "split": assignment.get(case_id, UNUSED),
                "samples": per_case.get(case_id, 0),
            }
            if state == "failed":
                failures.append(CaseFailure(case_id, str(entry.get("error")), entry.get("shard")))
            else:
                case_status[case_id]["error"] = None
        failed = [{"case_id": f.case_id, "reason": f.reason, "shard": f.shard} for f in failures]
        write_preprocess_record(out, {**header, "counts": counts, "failures": failed, "cases": case_status})
    return MergeSummary(counts["samples"], counts, failures)


def _read_status(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}
