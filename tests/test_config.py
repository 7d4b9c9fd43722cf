from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from radiossl.config import (
    ExampleRunConfig,
    build_config,
    commented_yaml,
    deep_merge,
    load_config_file_into,
    parse_override,
    read_config_file,
    to_yaml,
)
from radiossl.errors import ConfigError


def test_defaults_are_the_published_settings() -> None:
    cfg = ExampleRunConfig()
    assert cfg.model.width == 1.0
    assert cfg.data.crop_size == (64, 64, 32)
    assert cfg.runtime.amp == "none"


def test_precedence_defaults_file_overrides_flags(tmp_path: Path) -> None:
    file = tmp_path / "run.yaml"
    file.write_text("optim:\n  lr: 0.1\n  epochs: 5\nmodel:\n  width: 0.5\n")
    cfg = load_config_file_into(
        ExampleRunConfig,
        file,
        overrides=["optim.epochs=7", "data.crop_size=[32,32,16]"],
        defaults={"optim": {"lr": 0.5, "batch_size": 3}},
        flags={"optim": {"epochs": 9}},
    )
    assert cfg.optim.lr == 0.1  # file beats defaults
    assert cfg.optim.batch_size == 3  # defaults kept where nothing overrides
    assert cfg.optim.epochs == 9  # flags beat --set beat file
    assert cfg.data.crop_size == (32, 32, 16)
    assert cfg.model.width == 0.5


def test_toml_files_are_read(tmp_path: Path) -> None:
    file = tmp_path / "run.toml"
    file.write_text("[optim]\nlr = 0.25\n")
    assert load_config_file_into(ExampleRunConfig, file).optim.lr == 0.25


def test_typo_names_the_field_path(tmp_path: Path) -> None:
    file = tmp_path / "bad.yaml"
    file.write_text("optim:\n  lrr: 0.1\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: optim.lrr: unknown field"):
        load_config_file_into(ExampleRunConfig, file)


def test_wrong_type_names_the_field_path() -> None:
    with pytest.raises(ConfigError, match=r"model.width"):
        build_config(ExampleRunConfig, overrides=["model.width=wide"])


@pytest.mark.parametrize("text", ["noequals", "=3", "a..b=1", ".a=1"])
def test_malformed_overrides_are_rejected(text: str) -> None:
    with pytest.raises(ConfigError, match="--set"):
        parse_override(text)


def test_override_values_are_yaml_scalars_and_lists() -> None:
    assert parse_override("a.b=3") == {"a": {"b": 3}}
    assert parse_override("a=[1, 2]") == {"a": [1, 2]}
    assert parse_override("a=true") == {"a": True}
    assert parse_override("a=none_string") == {"a": "none_string"}


def test_unreadable_files_give_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        read_config_file(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim: [unclosed\n")
    with pytest.raises(ConfigError, match="cannot parse"):
        read_config_file(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        read_config_file(listy)
    other = tmp_path / "conf.ini"
    other.write_text("x")
    with pytest.raises(ConfigError, match="unknown config format"):
        read_config_file(other)


def test_yaml_round_trip_keeps_the_config(tmp_path: Path) -> None:
    cfg = build_config(ExampleRunConfig, overrides=["optim.lr=0.03", "data.crop_size=[16,16,8]"])
    file = tmp_path / "resolved.yaml"
    file.write_text(to_yaml(cfg))
    assert load_config_file_into(ExampleRunConfig, file) == cfg


def test_commented_yaml_is_valid_yaml_with_descriptions() -> None:
    import yaml

    text = commented_yaml(ExampleRunConfig())
    assert "# Channel multiplier" in text
    assert "one of: none, bf16, fp16" in text
    assert yaml.safe_load(text)["optim"]["lr"] == ExampleRunConfig().optim.lr


@given(
    st.dictionaries(st.sampled_from("abc"), st.integers(), max_size=3),
    st.dictionaries(st.sampled_from("abc"), st.integers(), max_size=3),
)
def test_deep_merge_later_wins(base: dict[str, int], update: dict[str, int]) -> None:
    merged = deep_merge({"s": base}, {"s": update})
    assert merged["s"] == {**base, **update}
