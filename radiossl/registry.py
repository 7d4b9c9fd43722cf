"""Plugin registry: entry-point discovery, lazy loading, error isolation, in-process registration.

radiossl's own methods, views, datasets, feature extractors, upsamplers, downstream tasks and backbone
networks (``radiossl.models``) are declared
in its ``pyproject.toml`` under the same entry-point groups that third-party packages use, so
built-ins and plugins go through one code path. Entry points are only *listed* at start-up; a
plugin's module is imported when that plugin is named. A plugin that fails to import is reported
by ``radiossl plugins list`` with its error and does not affect any other plugin.

Example:
    >>> from radiossl import registry
    >>> "patch-cluster" in registry.names("radiossl.pretext")
    True
"""

from __future__ import annotations

import contextlib
import traceback
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from radiossl.errors import PluginError

GROUPS: tuple[str, ...] = (
    "radiossl.pretext",
    "radiossl.views",
    "radiossl.datasets",
    "radiossl.feature_extractors",
    "radiossl.upsamplers",
    "radiossl.tasks",
    "radiossl.models",
)


@dataclass
class PluginInfo:
    """One named plugin of a group, as discovered (not necessarily loaded)."""

    group: str
    name: str
    target: str
    distribution: str
    entry_points: list[metadata.EntryPoint] = field(default_factory=list, repr=False)
    obj: Any = field(default=None, repr=False)
    error: str | None = None

    @property
    def clash(self) -> bool:
        """True when several distributions declare this name in the same group."""
        return len({ep.value for ep in self.entry_points}) > 1

    @property
    def loaded(self) -> bool:
        return self.obj is not None


_STALE_INSTALL = (
    " (no installed package declares this group, not even radiossl itself: its installed metadata predates the "
    "group; reinstall radiossl, e.g. `pip install -e .` in a checkout)"
)
_discovered: dict[str, dict[str, PluginInfo]] | None = None
_registered: dict[str, dict[str, Any]] = {group: {} for group in GROUPS}


def _distribution_name(entry_point: metadata.EntryPoint) -> str:
    dist = getattr(entry_point, "dist", None)
    return dist.name if dist is not None else "?"


def _discover() -> dict[str, dict[str, PluginInfo]]:
    global _discovered
    if _discovered is None:
        found: dict[str, dict[str, PluginInfo]] = {group: {} for group in GROUPS}
        all_entry_points = metadata.entry_points()
        for group in GROUPS:
            for entry_point in all_entry_points.select(group=group):
                info = found[group].get(entry_point.name)
                if info is None:
                    found[group][entry_point.name] = PluginInfo(
                        group, entry_point.name, entry_point.value, _distribution_name(entry_point), [entry_point]
                    )
                elif entry_point.value not in {ep.value for ep in info.entry_points}:
                    info.entry_points.append(entry_point)
        _discovered = found
    return _discovered


def refresh() -> None:
    """Forget discovered entry points (after installing a plugin in a running process)."""
    global _discovered
    _discovered = None


def _check_group(group: str) -> None:
    if group not in GROUPS:
        raise PluginError(f"unknown plugin group {group!r}; groups: {', '.join(GROUPS)}")


def names(group: str) -> list[str]:
    """Names available in ``group`` (entry points plus in-process registrations), sorted."""
    _check_group(group)
    return sorted(set(_discover()[group]) | set(_registered[group]))


def register(group: str, name: str, obj: Any) -> None:
    """Register ``obj`` under ``name`` in this process (notebooks, tests). Overrides an entry point."""
    _check_group(group)
    _registered[group][name] = obj


def unregister(group: str, name: str) -> None:
    """Remove an in-process registration (no error if absent)."""
    _check_group(group)
    _registered[group].pop(name, None)


def register_pretext(cls: Any) -> Any:
    """Register a pretext method class under its ``name`` (usable as a decorator).

    Example:
        >>> from radiossl.pretext.base import PretextMethod
        >>> # @register_pretext
        >>> # class MyMethod(PretextMethod): name = "my-method"; ...
    """
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise PluginError(f"{cls!r}: a pretext method class needs a non-empty string attribute `name`")
    register("radiossl.pretext", name, cls)
    return cls


def get(group: str, name: str) -> Any:
    """Load and return the plugin object ``name`` of ``group``.

    Raises:
        PluginError: unknown name (the message lists what is available), a name declared by several
            distributions, or a plugin whose import fails (the message carries the error).
    """
    _check_group(group)
    if name in _registered[group]:
        return _registered[group][name]
    info = _discover()[group].get(name)
    if info is None:
        available = ", ".join(names(group)) or "none"
        stale = "" if _discover()[group] else _STALE_INSTALL
        raise PluginError(f"unknown {group.split('.')[-1]} plugin {name!r}; available: {available}{stale}")
    if info.clash:
        sources = ", ".join(f"{ep.value} ({_distribution_name(ep)})" for ep in info.entry_points)
        raise PluginError(f"plugin name {name!r} in {group} is declared more than once: {sources}")
    if info.obj is None:
        if info.error is not None:
            raise PluginError(f"plugin {name!r} ({info.target}) failed to load: {info.error}")
        try:
            info.obj = info.entry_points[0].load()
        except Exception as exc:
            info.error = f"{type(exc).__name__}: {exc}"
            info.traceback = traceback.format_exc()  # type: ignore[attr-defined]
            raise PluginError(f"plugin {name!r} ({info.target}) failed to load: {info.error}") from exc
    return info.obj


def list_plugins(load: bool = True) -> list[PluginInfo]:
    """All plugins of all groups; with ``load=True`` each is imported so broken ones show their error."""
    rows: list[PluginInfo] = []
    for group in GROUPS:
        for name in names(group):
            if name in _registered[group]:
                rows.append(
                    PluginInfo(
                        group,
                        name,
                        repr(_registered[group][name]),
                        "(registered in process)",
                        obj=_registered[group][name],
                    )
                )
                continue
            info = _discover()[group][name]
            if load and not info.clash:
                with contextlib.suppress(PluginError):
                    get(group, name)
            rows.append(info)
    return rows
