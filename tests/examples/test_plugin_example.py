"""The example plugin, a separate distribution, registers a view and a method through entry points only.

The tests see the checkout's example as if it were installed: a fixture writes its distribution's
metadata (``entry_points.txt`` generated from ``examples/plugin-example/pyproject.toml``) into a
temporary folder put first on ``sys.path`` with the example's sources, so the entry points declared in
that ``pyproject.toml`` are what the registry finds, whether or not (and whichever version of) the
example is installed in the environment.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from radiossl import registry
from radiossl.cli import app
from radiossl.pretext.base import get_method, load_pretrain_config

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

runner = CliRunner()
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "plugin-example"


@pytest.fixture(autouse=True)
def example_installed(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Make the checkout's example the installed ``radiossl-rotation`` distribution for one test."""
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    site = tmp_path_factory.mktemp("site")
    info = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    lines = []
    for group, entries in project["entry-points"].items():
        lines += [f"[{group}]", *(f"{name} = {target}" for name, target in entries.items()), ""]
    (info / "entry_points.txt").write_text("\n".join(lines))
    for name in [m for m in sys.modules if m == "radiossl_rotation" or m.startswith("radiossl_rotation.")]:
        monkeypatch.delitem(sys.modules, name)  # an installed copy imported earlier must not answer
    monkeypatch.syspath_prepend(str(EXAMPLE / "src"))
    monkeypatch.syspath_prepend(str(site))
    registry.refresh()
    yield
    registry.refresh()


def test_plugin_is_discovered_through_its_entry_point() -> None:
    assert "rotation-3d" in registry.names("radiossl.pretext")
    info = next(row for row in registry.list_plugins(load=True) if row.name == "rotation-3d")
    assert info.distribution == "radiossl-rotation"
    assert info.error is None
    assert get_method("rotation-3d").config_class.__name__ == "RotationConfig"


def test_plugins_list_shows_the_example() -> None:
    result = runner.invoke(app, ["plugins", "list"], terminal_width=250)
    assert result.exit_code == 0
    assert "rotation-3d" in result.output
    assert "radiossl-rotation" in result.output
    views = [line for line in result.output.splitlines() if "rotation-cubes" in line]
    assert len(views) == 1 and "views" in views[0] and "ok" in views[0]


def test_plugin_config_through_the_cli(tmp_path: Path) -> None:
    shown = runner.invoke(app, ["config", "show", "--method", "rotation-3d"])
    assert shown.exit_code == 0, shown.output
    assert "rotations: 4" in shown.output
    assert "lr: 0.01" in shown.output  # the plugin's default_settings layer
    good = tmp_path / "rot.yaml"
    good.write_text("method:\n  name: rotation-3d\n  rotations: 2\n")
    assert runner.invoke(app, ["config", "validate", str(good)]).exit_code == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("method:\n  name: rotation-3d\n  rotations: 9\n")
    result = runner.invoke(app, ["config", "validate", str(bad)])
    assert result.exit_code == 2
    assert "method.rotations" in result.output


def test_plugin_config_precedence() -> None:
    cfg = load_pretrain_config("rotation-3d", overrides=["optim.lr=0.5"], flags={"optim": {"epochs": 2}})
    assert cfg.method.rotations == 4
    assert cfg.optim.lr == 0.5
    assert cfg.optim.epochs == 2
    assert cfg.optim.batch_size == 8


def test_the_view_is_discovered_and_typed() -> None:
    assert "rotation-cubes" in registry.names("radiossl.views")
    info = next(row for row in registry.list_plugins(load=True) if row.name == "rotation-cubes")
    assert info.group == "radiossl.views" and info.distribution == "radiossl-rotation" and info.error is None
    assert get_method("rotation-3d").trains_on() == ("rotation-cubes",)
    from radiossl.config import build_config
    from radiossl.data.preprocess import PreprocessConfig
    from radiossl.errors import ConfigError

    config = build_config(PreprocessConfig, [{"view": "rotation-cubes"}], ["rotation-cubes.rotations=2"])
    assert config.view_options().rotations == 2  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match=r"rotation-cubes\.rotations: Input should be less than or equal to 4"):
        build_config(PreprocessConfig, [{"view": "rotation-cubes"}], ["rotation-cubes.rotations=9"])


def _preprocess(raw: Path, proc: Path, view: str) -> None:
    args = ["preprocess", "--dataset", "brats18", "--data", str(raw), "--out", str(proc), "--views", view]
    size = ["--set", "crop_size=[16,16,8]", "--pairs", "4"]
    result = runner.invoke(app, [*args, *size, "--set", "candidate_sizes=[[16,16,8],[24,24,8]]"])
    assert result.exit_code == 0, result.output


def test_plugin_view_and_method_train_through_radiossl(tmp_path: Path) -> None:
    """``radiossl preprocess --views rotation-cubes`` then ``radiossl pretrain --method rotation-3d``."""
    import numpy as np
    import torch

    from radiossl.data.phantoms import synthesize
    from radiossl.data.processed import ProcessedDataset

    raw = tmp_path / "raw"
    synthesize("brats", raw, cases=2, shape=(40, 40, 24), seed=3)
    proc = tmp_path / "proc"
    _preprocess(raw, proc, "rotation-cubes")
    data = ProcessedDataset.open(proc)
    assert data.view == "rotation-cubes" and data.params["resolved"]["rotation-cubes"] == {"rotations": 4}
    record = data.records(split=None)[0]
    turns = np.load(proc / record.array_file(".rotation"))
    assert turns.dtype == np.int64 and turns.shape == (4,) and set(turns.tolist()) <= {0, 1, 2, 3}
    assert data.load_crops(record).shape == (1, 16, 16, 8)
    pretrain = [
        "pretrain",
        "--method",
        "rotation-3d",
        "--out",
        str(tmp_path / "runs"),
        "--epochs",
        "1",
        "--batch-size",
        "2",
        "--device",
        "cpu",
        "--set",
        "model.width=0.125",
        "--set",
        "data.workers=0",
        "--set",
        "data.crop_size=[16,16,8]",
    ]
    result = runner.invoke(app, [*pretrain, "--data", str(proc)])
    assert result.exit_code == 0, result.output
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert run_dir.name.startswith("pretrain-rotation-3d-brats18-")
    checkpoint = torch.load(run_dir / "checkpoint_final.pt", weights_only=True)
    assert checkpoint["model_spec"]["class"] == "RotationNet"
    assert any(key.startswith("rotation_classifier.") for key in checkpoint["model"])
    assert (run_dir / "config.yaml").read_text().count("rotation-3d") >= 1

    # a folder of another view is refused with one line naming both views
    pairs = tmp_path / "pairs"
    _preprocess(raw, pairs, "cluster")
    refused = runner.invoke(app, [*pretrain, "--data", str(pairs)])
    assert refused.exit_code == 1
    assert "preprocessed with the 'cluster' view but method 'rotation-3d' trains on the 'rotation-cubes' view" in (
        refused.output
    )
