"""Configs shipped inside the package, addressed by name.

A shipped config lives at ``radiossl/configs/<family>/.../<stem>.yaml`` and its name is that path below
``radiossl/configs`` without the suffix, e.g. ``thesis/pretrain/patch-cluster-k50-brats18``. Every folder
under the root is a family; nothing here names one, so a new family is a new folder. Files are read
through :mod:`importlib.resources`, which works from a wheel, an editable install and a zipped package.

Example:
    >>> find_shipped_config("thesis/pretrain/patch-cluster-k50-brats18.yaml") is not None
    True
    >>> close_config_names("thesis/pretrain/patch-cluster-k50-brats")[0]
    'thesis/pretrain/patch-cluster-k50-brats18'
"""

from __future__ import annotations

import difflib
from importlib import resources
from pathlib import PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

CONFIG_SUFFIXES = (".yaml", ".yml", ".toml")
"""File suffixes that count as config files (a name may be given with or without one)."""


def shipped_configs_root() -> Traversable:
    """The folder holding every shipped config family (``radiossl/configs``)."""
    return resources.files("radiossl").joinpath("configs")


def shipped_configs() -> dict[str, Traversable]:
    """Every shipped config, by name, sorted by name."""
    found: dict[str, Traversable] = {}
    root = shipped_configs_root()
    if root.is_dir():
        _collect(root, "", found)
    return dict(sorted(found.items()))


def _collect(folder: Traversable, prefix: str, found: dict[str, Traversable]) -> None:
    for entry in sorted(folder.iterdir(), key=lambda item: item.name):
        if entry.name.startswith((".", "_")):
            continue
        if entry.is_dir():
            _collect(entry, f"{prefix}{entry.name}/", found)
            continue
        suffix = PurePosixPath(entry.name).suffix.lower()
        if suffix in CONFIG_SUFFIXES:
            # Sorted iteration makes the first of two same-stem files win; tests keep stems unique.
            found.setdefault(prefix + entry.name[: -len(suffix)], entry)


def _split_name(text: str) -> tuple[str, str]:
    """``("thesis/pretrain/x", ".yaml")`` for ``"thesis\\pretrain\\x.yaml"``; the suffix is ``""`` if none."""
    name = text.strip().replace("\\", "/")
    suffix = PurePosixPath(name).suffix.lower()
    if suffix in CONFIG_SUFFIXES:
        return name[: -len(suffix)], suffix
    return name, ""


def find_shipped_config(text: str) -> Traversable | None:
    """The shipped config called ``text`` (with or without its suffix), or None.

    Names are relative: an absolute path or one starting with ``./`` or ``../`` is never a name.
    """
    if PurePosixPath(text).is_absolute() or PureWindowsPath(text).is_absolute():
        return None
    name, suffix = _split_name(text)
    if name.startswith(("./", "../")):
        return None
    entry = shipped_configs().get(name)
    if entry is None or (suffix and PurePosixPath(entry.name).suffix.lower() != suffix):
        return None
    return entry


def close_config_names(text: str, limit: int = 3) -> list[str]:
    """Shipped names resembling ``text``: those with the same file stem first, then the closest spellings."""
    name, _ = _split_name(text)
    names = list(shipped_configs())
    stem = name.rsplit("/", 1)[-1]
    # Compare the tail of the text with as many folders as names have, so a long path still matches.
    depth = max((candidate.count("/") for candidate in names), default=0)
    tail = "/".join(name.split("/")[-(depth + 1) :])
    # The same stem is in several families (thesis/..., recommended/...): the closest folders first.
    same_stem = sorted(
        (candidate for candidate in names if candidate.rsplit("/", 1)[-1] == stem),
        key=lambda candidate: -difflib.SequenceMatcher(None, tail, candidate).ratio(),
    )
    spelled = difflib.get_close_matches(tail, names, n=limit, cutoff=0.6)
    return list(dict.fromkeys(same_stem + spelled))[:limit]


def config_not_found_message(text: str) -> str:
    """One line for a ``--config`` value that is neither a file nor a shipped name, with close names."""
    close = close_config_names(text)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return (
        f"{text}: config file not found, and no shipped config has that name{hint} "
        "(`radiossl config list` lists the shipped configs)"
    )
