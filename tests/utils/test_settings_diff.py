"""The one rule by which a resumed stage compares a folder's recorded settings with the current ones."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ConfigDict, Field

from radiossl.config import Section
from radiossl.errors import ConfigError
from radiossl.utils.fragments import Fragments
from radiossl.utils.settings_diff import settings_differences
from tests.older_records import without


class Rejection(Section):
    max_background: float | None = 0.85
    thesis_bg_max: float = 0.85


class Optim(Section):
    lr: float = 0.01
    epochs: int = 10


class Crop(Section):
    size: tuple[int, int, int] = Field(default=[64, 64, 32])  # spelled otherwise than validation gives it


class Settings(Section):
    model_config = ConfigDict(extra="allow")

    optim: Optim = Field(default_factory=Optim)
    rejection: Rejection | None = None
    options: dict[str, Any] = Field(default_factory=dict)


def _dump(settings: Settings) -> dict[str, Any]:
    return settings.model_dump(mode="json")


def test_a_real_change_is_named_with_both_values() -> None:
    now = Settings(optim=Optim(lr=0.1))
    recorded = _dump(Settings(optim=Optim(lr=0.01), rejection=Rejection()))
    assert settings_differences(recorded, _dump(now), {"": now}) == [
        "optim.lr: 0.01 -> 0.1",
        'rejection: {"max_background": 0.85, "thesis_bg_max": 0.85} -> null',
    ]
    assert settings_differences(_dump(now), _dump(now), {"": now}) == []


def test_a_key_absent_from_the_record_is_accepted_at_its_field_default_in_nested_sections() -> None:
    now = Settings(optim=Optim(lr=0.1), rejection=Rejection(max_background=0.9))
    recorded = without(_dump(now), "optim.epochs", "rejection.thesis_bg_max")
    assert settings_differences(recorded, _dump(now), {"": now}) == []
    crop = Crop(size=(64, 64, 32))  # validated to a tuple; equal to the default [64, 64, 32] as JSON
    assert settings_differences({}, crop.model_dump(mode="json"), {"": crop}) == []
    whole_section = without(_dump(Settings()), "optim")  # a section added since, at its default
    assert settings_differences(whole_section, _dump(Settings()), {"": Settings()}) == []


def test_an_absent_key_that_is_not_at_its_field_default_is_refused() -> None:
    now = Settings(optim=Optim(epochs=20), rejection=Rejection(thesis_bg_max=0.5))
    recorded = without(_dump(now), "optim.epochs", "rejection.thesis_bg_max")
    assert settings_differences(recorded, _dump(now), {"": now}) == [
        "optim.epochs: (absent) -> 20",
        "rejection.thesis_bg_max: (absent) -> 0.5",
    ]
    # the default is the field's (None: the view decides), not the section's defaults
    explicit = Settings(rejection=Rejection())
    assert settings_differences(without(_dump(explicit), "rejection"), _dump(explicit), {"": explicit}) == [
        'rejection: (absent) -> {"max_background": 0.85, "thesis_bg_max": 0.85}'
    ]
    changed = Settings(optim=Optim(lr=0.5))
    assert settings_differences(without(_dump(changed), "optim"), _dump(changed), {"": changed}) == [
        'optim: (absent) -> {"lr": 0.5, "epochs": 10}'
    ]


def test_without_a_model_every_absent_key_and_every_key_only_in_the_record_is_reported() -> None:
    now = Settings(options={"radius": 2})
    recorded = _dump(now) | {"removed": 1}
    recorded["options"] = {}
    assert settings_differences(recorded, _dump(now), {"": now}) == [
        "options.radius: (absent) -> 2",  # a plugin's options dict: no field defaults to go by
        "removed: 1 -> (absent)",
    ]
    assert settings_differences({"a": {}}, {"a": {"b": 0}}) == ["a.b: (absent) -> 0"]
    assert settings_differences(None, {"a": 1}) == ['record: null -> {"a": 1}']


def test_an_absent_extra_section_is_held_to_its_own_defaults() -> None:
    now = Settings.model_validate({"view": Rejection()})
    assert settings_differences(without(_dump(now), "view"), _dump(now), {"": now}) == []
    other = Settings.model_validate({"view": Rejection(thesis_bg_max=0.5)})
    assert settings_differences(without(_dump(other), "view"), _dump(other), {"": other}) == [
        "view.thesis_bg_max: (absent) -> 0.5"
    ]


def test_models_name_the_parts_of_a_record_that_are_config_dumps() -> None:
    now = Settings()
    current = {"format": "x", "cells": [1, 2], "finetune": _dump(now)}
    recorded = {"format": "x", "cells": [1, 2], "finetune": without(_dump(now), "optim.epochs")}
    assert settings_differences(recorded, current, {"finetune": now}) == []
    assert settings_differences(recorded, current) == ["finetune.optim.epochs: (absent) -> 10"]
    assert settings_differences(recorded | {"cells": [1]}, current, {"finetune": now}) == ["cells: [1] -> [1, 2]"]


def test_claim_accepts_a_record_of_an_older_release_and_keeps_it(tmp_path: Path) -> None:
    parts = Fragments(tmp_path / "parts", ".json", tmp_path / "parts" / "record.json")
    now = Settings(optim=Optim(lr=0.1))
    parts.claim({"seed": 1, "config": without(_dump(now), "optim.epochs")}, advice="-")
    parts.write_json("a", {"ok": True})
    before = parts.record.read_text()
    parts.claim({"seed": 1, "config": _dump(now)}, advice="-", models={"config": now}, replace=True)
    assert parts.has("a") and parts.record.read_text() == before  # neither cleared nor rewritten
    longer = Settings(optim=Optim(lr=0.1, epochs=20))
    with pytest.raises(ConfigError, match=r"parts holds results of other settings \(config\.optim\.epochs: "):
        parts.claim({"seed": 1, "config": _dump(longer)}, advice="use another folder", models={"config": longer})
    faster = Settings(optim=Optim(lr=0.2))
    with pytest.raises(ConfigError, match=r"\(config\.optim\.lr: 0\.1 -> 0\.2\); use another folder$"):
        parts.claim({"seed": 1, "config": _dump(faster)}, advice="use another folder", models={"config": faster})
