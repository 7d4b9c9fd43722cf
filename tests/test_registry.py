from __future__ import annotations

from importlib import metadata
from typing import Any

import pytest

from radiossl import registry
from radiossl.errors import PluginError


def test_builtin_groups_are_declared_through_entry_points() -> None:
    assert {"patch-cluster", "pixel-cluster", "pcrlv2", "models-genesis"} <= set(registry.names("radiossl.pretext"))
    assert {"brats18", "lits17", "luna16", "nnunet"} <= set(registry.names("radiossl.datasets"))
    assert {"filterbank", "dino-vits16"} <= set(registry.names("radiossl.feature_extractors"))
    assert {"bilinear", "jbu", "featup-jbu"} <= set(registry.names("radiossl.upsamplers"))
    assert {"brats", "lits", "nnunet"} <= set(registry.names("radiossl.tasks"))


def test_builtin_views_are_declared_in_pyproject() -> None:
    """The views group as radiossl's own pyproject.toml declares it (the installed metadata may be older)."""
    import importlib
    import sys
    from pathlib import Path

    from radiossl.views.base import View

    if sys.version_info >= (3, 11):
        import tomllib
    else:
        import tomli as tomllib

    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    declared = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["entry-points"]["radiossl.views"]
    assert set(declared) == {"cluster", "pcrlv2", "genesis"}
    for name, target in declared.items():
        module, _, attribute = target.partition(":")
        view = getattr(importlib.import_module(module), attribute)
        assert issubclass(view, View) and view.name == name
    assert "radiossl.views" in registry.GROUPS and set(declared) <= set(registry.names("radiossl.views"))


def test_a_group_no_installed_package_declares_says_to_reinstall(monkeypatch: pytest.MonkeyPatch) -> None:
    real = metadata.entry_points

    def without_views(**kwargs: Any) -> Any:
        kept = [ep for group in registry.GROUPS if group != "radiossl.views" for ep in real(group=group)]
        return metadata.EntryPoints(kept).select(**kwargs) if kwargs else metadata.EntryPoints(kept)

    monkeypatch.setattr(metadata, "entry_points", without_views)
    registry.refresh()
    try:
        with pytest.raises(PluginError, match=r"unknown views plugin 'no-such-view'; .*reinstall radiossl"):
            registry.get("radiossl.views", "no-such-view")
        with pytest.raises(PluginError) as populated:
            registry.get("radiossl.pretext", "no-such-method")
        assert "reinstall" not in str(populated.value)
    finally:
        monkeypatch.undo()
        registry.refresh()


def test_unknown_name_lists_available() -> None:
    with pytest.raises(PluginError, match=r"available: .*patch-cluster"):
        registry.get("radiossl.pretext", "no-such-method")


def test_unknown_group_is_an_error() -> None:
    with pytest.raises(PluginError, match="unknown plugin group"):
        registry.names("radiossl.nothing")


def _fake_entry_point(name: str, value: str, group: str) -> metadata.EntryPoint:
    return metadata.EntryPoint(name=name, value=value, group=group)


@pytest.fixture
def fake_entry_points(monkeypatch: pytest.MonkeyPatch) -> list[metadata.EntryPoint]:
    extra: list[metadata.EntryPoint] = []
    real = metadata.entry_points

    def entry_points(**kwargs: Any) -> Any:
        eps = [ep for group in registry.GROUPS for ep in real(group=group)] + extra
        return metadata.EntryPoints(eps).select(**kwargs) if kwargs else metadata.EntryPoints(eps)

    monkeypatch.setattr(metadata, "entry_points", entry_points)
    registry.refresh()
    yield extra
    registry.refresh()


def test_broken_plugin_is_isolated_and_reported(fake_entry_points: list[metadata.EntryPoint]) -> None:
    fake_entry_points.append(_fake_entry_point("broken", "radiossl_no_such_module:Thing", "radiossl.pretext"))
    assert "broken" in registry.names("radiossl.pretext")
    with pytest.raises(PluginError, match=r"broken.*failed to load.*ModuleNotFoundError"):
        registry.get("radiossl.pretext", "broken")
    rows = {(row.group, row.name): row for row in registry.list_plugins(load=False)}
    assert ("radiossl.pretext", "broken") in rows
    # other plugins are unaffected
    assert registry.get("radiossl.datasets", "brats18") is not None


def test_name_clash_is_reported(fake_entry_points: list[metadata.EntryPoint]) -> None:
    fake_entry_points.append(_fake_entry_point("twice", "json:dumps", "radiossl.upsamplers"))
    fake_entry_points.append(_fake_entry_point("twice", "json:loads", "radiossl.upsamplers"))
    with pytest.raises(PluginError, match="declared more than once"):
        registry.get("radiossl.upsamplers", "twice")
    row = next(r for r in registry.list_plugins(load=False) if r.name == "twice")
    assert row.clash


def test_register_pretext_in_process() -> None:
    class Dummy:
        name = "dummy-method"

    try:
        assert registry.register_pretext(Dummy) is Dummy
        assert registry.get("radiossl.pretext", "dummy-method") is Dummy
        assert "dummy-method" in registry.names("radiossl.pretext")
    finally:
        registry.unregister("radiossl.pretext", "dummy-method")
    with pytest.raises(PluginError):
        registry.register_pretext(type("Nameless", (), {}))
