"""Shipped configs: found by name with or without a suffix, files win over names, close names on a miss."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from radiossl import shipped_configs as shipped
from radiossl.cli import app
from radiossl.config import read_config_file, read_config_text
from radiossl.errors import ConfigError
from radiossl.pretext.base import load_pretrain_config

NAME = "thesis/pretrain/patch-cluster-k50-brats18"
runner = CliRunner()


def test_a_name_resolves_with_and_without_its_suffix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no file of that name here: the shipped config is read
    bare, suffixed = read_config_file(NAME), read_config_file(f"{NAME}.yaml")
    assert bare == suffixed
    assert bare["method"] == {"name": "patch-cluster", "k": 50, "legacy": True}
    assert read_config_file(NAME.replace("/", "\\")) == bare


def test_a_name_with_another_suffix_or_a_path_form_is_not_a_name() -> None:
    assert shipped.find_shipped_config(f"{NAME}.yaml") is not None
    for text in (f"{NAME}.toml", f"./{NAME}", f"/{NAME}", f"../{NAME}", "thesis/pretrain", "thesis"):
        assert shipped.find_shipped_config(text) is None, text


def test_an_existing_file_wins_over_a_shipped_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    own = tmp_path / f"{NAME}.yaml"
    own.parent.mkdir(parents=True)
    own.write_text("method:\n  name: patch-cluster\n  k: 7\n")
    monkeypatch.chdir(tmp_path)
    assert read_config_file(f"{NAME}.yaml")["method"]["k"] == 7
    # Without the suffix no file exists, so the name is looked up.
    assert read_config_file(NAME)["method"]["k"] == 50


def test_an_unknown_name_is_one_line_with_close_names() -> None:
    with pytest.raises(ConfigError) as caught:
        read_config_file("thesis/pretrain/patch-cluster-k50-brast18")
    message = str(caught.value)
    assert "\n" not in message
    assert "config file not found" in message
    assert f"did you mean {NAME}" in message
    assert "radiossl config list" in message


@pytest.mark.parametrize(
    "text",
    [
        "patch-cluster-k50-brats18",
        "configs/thesis/pretrain/patch-cluster-k50-brats18.yaml",
        "/old/clone/configs/" + NAME,
    ],
)
def test_a_bare_stem_or_an_old_checkout_path_suggests_the_name(text: str) -> None:
    suggested = shipped.close_config_names(text)
    assert NAME in suggested and NAME.replace("thesis/", "recommended/") in suggested
    if "thesis" in text:  # the family the path names comes first
        assert suggested[0] == NAME


def test_a_name_matching_nothing_suggests_nothing() -> None:
    assert shipped.close_config_names("zzzz") == []
    assert "did you mean" not in shipped.config_not_found_message("zzzz")


def test_names_are_unique_per_file_and_every_folder_is_a_family(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = [path for path in Path(str(shipped.shipped_configs_root())).rglob("*") if path.suffix == ".yaml"]
    assert len(shipped.shipped_configs()) == len(files) > 0

    (tmp_path / "recommended" / "pretrain").mkdir(parents=True)
    (tmp_path / "recommended" / "pretrain" / "small.toml").write_text('[method]\nname = "pcrlv2"\n')
    (tmp_path / "recommended" / "notes.md").write_text("not a config")
    (tmp_path / "recommended" / "__pycache__").mkdir()
    monkeypatch.setattr(shipped, "shipped_configs_root", lambda: tmp_path)
    assert list(shipped.shipped_configs()) == ["recommended/pretrain/small"]
    assert read_config_text("recommended/pretrain/small")[1] == ".toml"
    assert load_pretrain_config(file="recommended/pretrain/small.toml").method.name == "pcrlv2"


def test_config_list_prints_every_name_and_filters_by_folder() -> None:
    everything = runner.invoke(app, ["config", "list"])
    assert everything.exit_code == 0, everything.output
    assert everything.stdout.splitlines() == list(shipped.shipped_configs())
    pretrain = runner.invoke(app, ["config", "list", "thesis/pretrain/"]).stdout.splitlines()
    assert NAME in pretrain and all(name.startswith("thesis/pretrain/") for name in pretrain)
    missing = runner.invoke(app, ["config", "list", "nope"])
    assert missing.exit_code == 2 and "families are baselines, recommended, thesis" in missing.output


def test_config_validate_accepts_every_shipped_name() -> None:
    for name in shipped.shipped_configs():
        result = runner.invoke(app, ["config", "validate", name])
        assert result.exit_code == 0, result.output
        assert f"valid: {name} (shipped config) is a" in result.stdout


def test_config_validate_and_stage_commands_report_an_unknown_name() -> None:
    result = runner.invoke(app, ["config", "validate", "thesis/pretrain/nope"])
    assert result.exit_code == 2 and "radiossl config list" in result.output
    pretrain = runner.invoke(app, ["pretrain", "--config", "thesis/pretrain/patch-cluster-k50-brats", "--out", "x"])
    assert pretrain.exit_code == 2 and f"did you mean {NAME}" in pretrain.output


def test_config_cat_prints_the_shipped_file(tmp_path: Path) -> None:
    result = runner.invoke(app, ["config", "cat", NAME])
    assert result.exit_code == 0, result.output
    assert result.stdout == shipped.shipped_configs()[NAME].read_text(encoding="utf-8")
    copy = tmp_path / "mine.yaml"
    copy.write_text(result.stdout)
    assert read_config_file(copy) == read_config_file(NAME)


def test_config_validate_names_the_three_kinds_it_knows(tmp_path: Path) -> None:
    neither = tmp_path / "neither.yaml"
    neither.write_text("optim:\n  epochs: 3\n")
    result = runner.invoke(app, ["config", "validate", str(neither)])
    assert result.exit_code == 2
    assert "a `dataset` field (preprocess)" in result.output
    typo = tmp_path / "typo.yaml"
    typo.write_text("dataset: brats18\npairz: 3\n")
    result = runner.invoke(app, ["config", "validate", str(typo)])
    assert result.exit_code == 2 and "pairz: unknown field" in result.output
