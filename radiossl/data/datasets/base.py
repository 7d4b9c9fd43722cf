"""Dataset adapters: one class per raw on-disk layout, listing cases with their files.

An adapter knows where a dataset keeps its images and labels, in which order the channels go, what
the label values mean and how the data is split. Everything downstream (preprocessing, finetuning,
evaluation) works on :class:`Case` objects, never on folder names. Adapters are plugins of the
``radiossl.datasets`` entry-point group; :func:`get_adapter` returns one by name.

Example:
    >>> adapter = get_adapter("luna16")
    >>> adapter.name, adapter.modality
    ('luna16', 'ct')
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

from radiossl.data.labels import LabelSet
from radiossl.data.splits import Splits
from radiossl.errors import ConfigError, DataError, PluginError

GROUP = "radiossl.datasets"


@dataclass(frozen=True)
class Case:
    """One patient/scan: its image file per channel (model channel order), label file, and group.

    ``problems`` are found while listing (e.g. the same case id in two folders): such a case is
    reported with them and never read.
    """

    case_id: str
    images: dict[str, Path]
    label: Path | None
    group: str | None = None
    problems: tuple[str, ...] = ()

    @property
    def files(self) -> list[Path]:
        """Every file of the case (images first, then the label)."""
        return [*self.images.values(), *([self.label] if self.label is not None else [])]


class DatasetAdapter(ABC):
    """Base class of dataset adapters (see the module docstring).

    Subclasses set ``name`` and ``modality`` (``"ct"`` or ``"mri"``) and implement
    :meth:`channel_names`, :meth:`label_values`, :meth:`list_cases` and :meth:`default_splits`.
    """

    name: ClassVar[str]
    modality: ClassVar[str]
    #: Whether every case is expected to have a label file (checked by :meth:`check`).
    labelled: ClassVar[bool] = True

    @abstractmethod
    def channel_names(self, root: Path) -> tuple[str, ...]:
        """Channel names in model input order (e.g. ``("t1", "t2", "flair", "t1ce")``)."""

    @abstractmethod
    def label_values(self, root: Path) -> dict[str, int]:
        """Label name -> voxel value, e.g. ``{"background": 0, "liver": 1, "tumour": 2}``."""

    @abstractmethod
    def list_cases(self, root: Path) -> list[Case]:
        """All cases under ``root``, sorted by case id; raises DataError when the layout is wrong.

        A case whose channel file is missing is still listed (with the expected path), so that it can
        be reported per case; :meth:`case_problems` names what is wrong with it.
        """

    @abstractmethod
    def default_splits(self, root: Path, cases: list[Case]) -> Splits:
        """The dataset's standard train/val/test split of ``cases`` (by case id)."""

    def iter_cases(self, root: Path) -> Iterator[Case]:
        """The cases of :meth:`list_cases`, one at a time, in a fixed order.

        Preprocessing walks this iterator (twice: once for the case ids, once to process them), so an
        adapter of a collection too large to list at once overrides it to yield cases without building
        them all first; it must give the same cases in the same order on every call, and read no image
        file while listing. The default walks :meth:`list_cases`.
        """
        yield from self.list_cases(root)

    def default_splits_of(self, root: Path) -> Splits:
        """The standard split of every case under ``root`` (what preprocessing uses without a split file).

        The default is :meth:`default_splits` of :meth:`list_cases`; a streaming adapter overrides it
        to compute the split from :meth:`iter_cases` without holding every :class:`Case`.
        """
        return self.default_splits(root, self.list_cases(root))

    def label_set(self, root: Path) -> LabelSet:
        """The voxel values a label file may hold: by default those of :meth:`label_values`."""
        return LabelSet(frozenset(self.label_values(root).values()), f"{self.name} labels")

    def channel_modalities(self, root: Path) -> dict[str, str]:
        """Channel name -> ``"ct"`` or ``"mri"`` (decides the default intensity normalisation)."""
        return {channel: self.modality for channel in self.channel_names(root)}

    def case_problems(self, case: Case) -> list[str]:
        """Problems that prevent reading ``case`` (listing problems, missing channel files), one line each."""
        problems = list(case.problems)
        for channel, path in case.images.items():
            if not path.is_file():
                problems.append(f"case {case.case_id}: missing {channel} (expected {path})")
        return problems

    def check(self, root: Path) -> list[str]:
        """Every problem found in the dataset, one line per problem (empty list = layout is fine)."""
        cases = self.list_cases(root)
        problems: list[str] = []
        for case in cases:
            problems.extend(self.case_problems(case))
            if self.labelled and case.label is None:
                problems.append(f"case {case.case_id}: no label file")
        problems.extend(self.extra_files(root, cases))
        return problems

    def extra_files(self, root: Path, cases: list[Case]) -> list[str]:
        """Files in case folders that the adapter does not use (reported by :meth:`check`)."""
        return []


def require_dir(root: Path, what: str) -> Path:
    """``root`` as a Path, or DataError if it is not an existing folder."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: {what} folder not found")
    return root


def check_unique(cases: Iterable[Case], root: Path) -> list[Case]:
    """Sort cases by id; an id found more than once becomes one case with a problem naming every copy.

    That case (holding the first copy's files) is reported and skipped wherever cases are read
    (preprocessing, finetuning, evaluation) while the other cases are used: which copy is meant
    cannot be guessed. ``root`` is not needed by the check; it stays for callers that pass it.
    """
    by_id: dict[str, list[Case]] = {}
    for case in cases:
        by_id.setdefault(case.case_id, []).append(case)
    unique = []
    for case_id in sorted(by_id):
        copies = by_id[case_id]
        if len(copies) == 1:
            unique.append(copies[0])
            continue
        where = " and ".join(str(_first_file(copy)) for copy in copies)
        problem = (
            f"case {case_id}: the same case id appears {len(copies)} times ({where}); every copy is skipped; "
            "rename or remove all but one"
        )
        unique.append(replace(copies[0], problems=(*copies[0].problems, problem)))
    return unique


def _first_file(case: Case) -> Path | None:
    """The first image file of ``case`` (its label when it has no image), for messages."""
    return next(iter(case.files), None)


def get_adapter(name: str, options: Mapping[str, Any] | None = None) -> DatasetAdapter:
    """The dataset adapter registered as ``name`` (an instance), e.g. ``get_adapter("brats18")``.

    ``options`` are keyword arguments of the adapter class (preprocessing's ``dataset_options``, e.g.
    ``{"image_root": "/data"}`` for ``nnssl``); an option the adapter does not take is a ConfigError
    naming the options it does take.
    """
    from radiossl import registry

    obj = registry.get(GROUP, name)
    given = dict(options or {})
    if given and not isinstance(obj, type):
        raise ConfigError(f"dataset {name!r} takes no dataset_options (got {', '.join(sorted(given))})")
    if isinstance(obj, type):
        _check_options(name, obj, given)
        adapter = obj(**given)
    else:
        adapter = obj
    if not isinstance(adapter, DatasetAdapter):
        raise PluginError(f"dataset plugin {name!r} is {type(adapter).__name__}, not a DatasetAdapter")
    return adapter


def _check_options(name: str, cls: type, given: Mapping[str, Any]) -> None:
    """ConfigError when ``given`` holds a keyword that ``cls`` does not take."""
    parameters = inspect.signature(cls).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    accepted = [n for n, p in parameters.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
    unknown = sorted(set(given) - set(accepted))
    if unknown:
        takes = f"it takes {', '.join(accepted)}" if accepted else "it takes none"
        raise ConfigError(f"dataset {name!r}: unknown dataset_options {', '.join(unknown)} ({takes})")
