"""Did pretraining see downstream evaluation cases? :func:`check_overlap`, behind ``radiossl check-overlap``.

A pretrained encoder that saw a downstream test case (or validation case, which picks the
checkpoint) inflates every number measured on it. This module compares

* the **pretraining side**: the cases of a preprocessed folder that pretraining trains on (its
  ``train`` split by default), with the raw files each was read from
  (:meth:`radiossl.data.processed.PreprocessRecord.processed_cases`), and
* the **downstream side**: the validation and test cases of a task, chosen exactly as finetuning and
  evaluation choose them (:meth:`SegmentationTask.splits` for each seed: the task's split file or the
  adapter's default split, LiTS' validation folder as the test set, the seeded validation carve-out,
  ``task.val_is_test``), and their image files,

by **case id** and by **content**: the voxel hash of every image (:mod:`radiossl.data.voxel_hash`), so a
case copied under another name or saved in another format is found too. Pretraining cases whose source
files moved or changed since preprocessing are compared by id only (and counted as such).

Example (``proc`` a preprocessed folder, ``raw`` a BraTS folder)::

    from radiossl.downstream.overlap import check_overlap
    from radiossl.downstream.tasks.brats import BraTSConfig, BraTSTask
    result = check_overlap("proc", BraTSTask(BraTSConfig(), "raw"), cache="overlap.hashes.json")
    print(result.counts(), [m.case_id for m in result.matches])
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from radiossl.data.processed import ProcessedCase, read_preprocess_record
from radiossl.data.voxel_hash import HashCache
from radiossl.errors import RadiosslError
from radiossl.utils.atomic import write_json
from radiossl.utils.text_table import TextTable

if TYPE_CHECKING:
    from radiossl.downstream.tasks.base import SegmentationTask

FORMAT = "radiossl-overlap"
PRETRAIN_SPLITS: tuple[str, ...] = ("train",)
"""The splits of a preprocessed folder that pretraining trains on (``ViewDataset``'s default)."""
MatchKind = Literal["id", "hash", "both"]
Content = Literal["same", "different", "unknown"]


@dataclass(frozen=True)
class EvaluationCase:
    """A downstream case that validation or testing uses: its id, roles (``val``, ``test``) and images."""

    case_id: str
    roles: tuple[str, ...]
    images: tuple[Path, ...]


@dataclass(frozen=True)
class OverlapMatch:
    """A downstream evaluation case found in the pretraining data, and how it was found."""

    case_id: str
    roles: tuple[str, ...]
    matched_by: MatchKind
    pretrain_cases: tuple[str, ...]
    """The pretraining cases it matched (its own id for an id match, any id for a content match)."""
    content: Content
    """For a case whose id is in the pretraining data: whether the pretraining case holds the same voxels
    (``unknown`` when one side's files could not be hashed)."""
    files: tuple[str, ...] = ()
    """The downstream image files whose voxels were found in the pretraining data."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "case_id": self.case_id,
            "roles": list(self.roles),
            "matched_by": self.matched_by,
            "pretrain_cases": list(self.pretrain_cases),
            "content": self.content,
            "files": list(self.files),
        }


@dataclass
class OverlapResult:
    """What :func:`check_overlap` found (see the module docstring)."""

    pretrain: Path
    task: str
    data: Path | None
    pretrain_splits: tuple[str, ...]
    pretrain_cases: int
    evaluation_cases: int
    matches: list[OverlapMatch] = field(default_factory=list)
    id_only: list[str] = field(default_factory=list)
    """Pretraining cases compared by id only: their source files moved, changed or were never recorded."""
    id_only_example: str = ""
    unreadable: dict[str, str] = field(default_factory=dict)
    """Image files that could not be hashed, with the reason (their cases are compared by id only)."""
    images_read: int = 0
    """Image files read (the others' hashes came from the cache)."""

    @property
    def found(self) -> bool:
        """True when some evaluation case is in the pretraining data."""
        return bool(self.matches)

    def counts(self) -> dict[str, int]:
        """Cases on each side, overlapping cases (in total, per match kind and per role), id-only cases."""
        counts = {
            "pretrain_cases": self.pretrain_cases,
            "evaluation_cases": self.evaluation_cases,
            "overlap": len(self.matches),
            **{f"by_{kind}": sum(m.matched_by == kind for m in self.matches) for kind in ("id", "hash", "both")},
            "val": sum("val" in m.roles for m in self.matches),
            "test": sum("test" in m.roles for m in self.matches),
            "pretrain_id_only": len(self.id_only),
            "unreadable_files": len(self.unreadable),
        }
        return counts

    def notes(self) -> list[str]:
        """One-line remarks on what could not be compared by content."""
        lines = []
        if self.id_only:
            lines.append(
                f"{len(self.id_only)} pretraining case(s) compared by case id only: their source files moved or "
                f"changed since preprocessing (e.g. {self.id_only_example})"
            )
        if self.unreadable:
            path, reason = next(iter(self.unreadable.items()))
            lines.append(f"{len(self.unreadable)} image file(s) could not be hashed (e.g. {path}: {reason})")
        return lines

    def summary_line(self) -> str:
        """``3 of 12 validation/test case(s) were in the pretraining data (...)`` or that none were."""
        c = self.counts()
        if not self.found:
            return f"none of the {self.evaluation_cases} validation/test case(s) is in the pretraining data"
        return (
            f"{c['overlap']} of {self.evaluation_cases} validation/test case(s) in the pretraining data "
            f"({c['test']} test, {c['val']} validation; by id and content {c['by_both']}, by content only "
            f"{c['by_hash']}, by id only {c['by_id']})"
        )

    def table(self) -> TextTable:
        """The overlapping cases as a table (empty rows when there are none)."""
        rows = [
            (m.case_id, "+".join(m.roles), m.matched_by, m.content, ", ".join(m.pretrain_cases)) for m in self.matches
        ]
        title = f"{self.task} validation/test cases in {self.pretrain}"
        return TextTable(title, ("case", "split", "matched by", "content", "pretraining case(s)"), rows)

    def as_dict(self) -> dict[str, Any]:
        """The JSON report (``--out``)."""
        return {
            "format": FORMAT,
            "pretrain": str(self.pretrain),
            "pretrain_splits": list(self.pretrain_splits),
            "task": self.task,
            "data": None if self.data is None else str(self.data),
            "overlap": self.found,
            "counts": self.counts(),
            "matches": [m.as_dict() for m in self.matches],
            "pretrain_id_only": list(self.id_only),
            "unreadable": dict(self.unreadable),
            "notes": self.notes(),
        }


def evaluation_cases(task: SegmentationTask, seeds: Iterable[int] = (0,)) -> list[EvaluationCase]:
    """The validation and test cases of ``task`` for each seed, as finetuning and evaluation choose them.

    The test cases do not depend on the seed; the validation cases carved out of the training cases
    do (``task.val_fraction``), so every seed's are included. With ``task.val_is_test`` the test
    cases are also the validation cases.
    """
    cases = task.list_cases()
    by_id = {case.case_id: case for case in cases}
    roles: dict[str, set[str]] = {}
    for seed in seeds:
        splits = task.splits(cases, seed)
        validation = splits.test if task.settings.val_is_test else splits.val
        for role, ids in (("val", validation), ("test", splits.test)):
            for case_id in ids:
                roles.setdefault(case_id, set()).add(role)
    return [
        EvaluationCase(case_id, tuple(sorted(found)), tuple(by_id[case_id].images.values()))
        for case_id, found in sorted(roles.items())
    ]


def check_overlap(
    pretrain: str | Path,
    task: SegmentationTask,
    *,
    seeds: Sequence[int] = (0,),
    pretrain_splits: Sequence[str] = PRETRAIN_SPLITS,
    cache: str | Path | None = None,
) -> OverlapResult:
    """The validation/test cases of ``task`` whose images were in the preprocessed folder ``pretrain``.

    Args:
        pretrain: a preprocessed folder (``radiossl preprocess --out``), the pretraining data.
        task: the downstream task, with its raw dataset folder (``task.root``).
        seeds: the finetuning seeds whose validation carve-outs count (the test cases are the same for all).
        pretrain_splits: the splits of ``pretrain`` that pretraining trained on.
        cache: a JSON file remembering image hashes by path, size and mtime (None: no cache).

    Raises:
        DataError: ``pretrain`` is not a preprocessed folder, or the task's dataset cannot be listed.
    """
    record = read_preprocess_record(pretrain)
    chosen = set(pretrain_splits)
    trained = [case for case in record.processed_cases() if case.split in chosen]
    evaluated = evaluation_cases(task, seeds)
    hashes = HashCache(Path(cache) if cache is not None else None)
    result = OverlapResult(Path(pretrain), task.name, task.root, tuple(pretrain_splits), len(trained), len(evaluated))
    pretrain_hashes: dict[str, set[str]] = {}  # pretraining case -> voxel hashes of its files
    owners: dict[str, set[str]] = {}  # voxel hash -> pretraining cases holding it
    for case in trained:
        problem = _source_problem(case)
        if problem is not None:
            result.id_only.append(case.case_id)
            result.id_only_example = result.id_only_example or f"{case.case_id}: {problem}"
            continue
        found = _hash_files((s.path for s in case.sources), hashes, result)
        if found is None:
            result.id_only.append(case.case_id)
            continue
        pretrain_hashes[case.case_id] = set(found.values())
        for digest in found.values():
            owners.setdefault(digest, set()).add(case.case_id)
    by_id = {case.case_id for case in trained}
    for evaluation in evaluated:
        found = _hash_files(evaluation.images, hashes, result)
        match = _match(evaluation, found, by_id, pretrain_hashes, owners)
        if match is not None:
            result.matches.append(match)
    result.images_read = hashes.read
    hashes.save()
    return result


def _source_problem(case: ProcessedCase) -> str | None:
    """Why the recorded source files of ``case`` no longer stand for what was preprocessed (None: they do)."""
    if not case.sources:
        return "no source files recorded"
    for source in case.sources:
        try:
            size = source.path.stat().st_size
        except OSError:
            return f"{source.path} not found"
        if source.size is not None and size != source.size:
            return f"{source.path} changed size ({source.size} -> {size} bytes)"
    return None


def _hash_files(paths: Iterable[Path], cache: HashCache, result: OverlapResult) -> dict[str, str] | None:
    """Voxel hash of each file (by path); None when one cannot be read (recorded in ``result.unreadable``)."""
    out = {}
    for path in paths:
        try:
            out[str(path)] = cache.file_hash(path)
        except (OSError, RadiosslError) as exc:
            result.unreadable[str(path)] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            return None
    return out


def _match(
    case: EvaluationCase,
    found: dict[str, str] | None,
    by_id: set[str],
    pretrain_hashes: dict[str, set[str]],
    owners: dict[str, set[str]],
) -> OverlapMatch | None:
    """How ``case`` (its image hashes ``found``, None if unreadable) is in the pretraining data, if it is."""
    same_id = case.case_id in by_id
    hit_files = tuple(path for path, digest in (found or {}).items() if digest in owners)
    holders = sorted({holder for path in hit_files for holder in owners[(found or {})[path]]})
    if not same_id and not holders:
        return None
    content: Content = "unknown"
    if same_id and found is not None and case.case_id in pretrain_hashes:
        content = "same" if set(found.values()) & pretrain_hashes[case.case_id] else "different"
    elif not same_id:
        content = "same"
    kind: MatchKind = "both" if same_id and holders else ("id" if same_id else "hash")
    cases = tuple(dict.fromkeys([*([case.case_id] if same_id else []), *holders]))
    return OverlapMatch(case.case_id, case.roles, kind, cases, content, hit_files)


def write_overlap_report(result: OverlapResult, path: str | Path) -> Path:
    """Write ``result`` as JSON to ``path`` (atomically); returns the path."""
    target = Path(path)
    write_json(target, result.as_dict())
    return target


def cache_path_for(report: str | Path) -> Path:
    """The hash cache kept beside a report: ``overlap.json`` -> ``overlap.hashes.json``."""
    target = Path(report)
    return target.with_name(f"{target.stem}.hashes.json")
