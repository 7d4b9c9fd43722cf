"""Whether the settings a folder records are this run's settings: one rule for every stage that resumes.

Stages record what their results are results *of* (``preprocess.json``, ``sweep.json``, the record beside
the fragments of ``kmeans fit`` and ``evaluate``, the marker of ``kmeans predict``) and refuse to resume
with other settings. A record outlives the release that wrote it, and a later release may add a config
field whose default reproduces what the older release did; the field is then absent from the record.
:func:`settings_differences` compares a record with the current settings by this rule:

* a key in both must have the same value (nested sections are compared key by key);
* a key only in the current settings is accepted when the config model declares it as a field and its
  current value is that field's default (the pydantic default, not what a task or file set); a section
  that is not a declared field (a view's options section of ``preprocess``) counts as all-default when
  absent, so each of its keys is held to its own field default;
* a key only in the record is reported (a setting this release does not have, or does not record).

Which parts of a record are dumps of a config model is said by ``models``: a dotted path in the record
(``""`` for the record itself) and the model instance whose dump is there.

Example:
    >>> from radiossl.config import OptimConfig
    >>> now = OptimConfig(lr=0.1)
    >>> recorded = now.model_dump(mode="json") | {"lr": 0.01}
    >>> settings_differences(recorded, now.model_dump(mode="json"), {"": now})
    ['lr: 0.01 -> 0.1']
    >>> del recorded["lr"], recorded["min_lr"]  # written before lr and min_lr existed
    >>> settings_differences(recorded, now.model_dump(mode="json"), {"": now})  # min_lr is its default
    ['lr: (absent) -> 0.1']
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticSerializationError, to_jsonable_python

ABSENT = "(absent)"
"""How a difference shows a key that one side does not have."""


def settings_differences(recorded: Any, current: Any, models: Mapping[str, BaseModel] | None = None) -> list[str]:
    """``key.path: recorded -> current`` for every difference that makes ``recorded`` other settings.

    Args:
        recorded: the JSON value a folder holds.
        current: this run's JSON value of the same description.
        models: dotted path in ``current`` (``""`` = all of it) -> the config model instance dumped there;
            it says which absent keys are fields with their default (see the module docstring).

    Returns:
        The differences in key order (empty: the folder holds results of these settings).
    """
    models = models or {}
    out: list[str] = []
    _compare(recorded, current, "", models.get(""), models, out)
    return out


def _compare(
    recorded: Any, current: Any, path: str, model: BaseModel | None, models: Mapping[str, BaseModel], out: list[str]
) -> None:
    if not (isinstance(recorded, dict) and isinstance(current, dict)):
        if recorded != current:
            out.append(f"{path or 'record'}: {_short(recorded)} -> {_short(current)}")
        return
    for key in sorted(set(recorded) | set(current), key=str):
        where = f"{path}.{key}" if path else str(key)
        section = models[where] if where in models else _section(model, key)
        if key not in current:
            out.append(f"{where}: {_short(recorded[key])} -> {ABSENT}")
        elif key in recorded:
            _compare(recorded[key], current[key], where, section, models, out)
        elif model is not None and key in type(model).model_fields:
            if not _is_default(model, key):
                out.append(f"{where}: {ABSENT} -> {_short(current[key])}")
        elif section is not None and key in _extras(model):
            _compare({}, current[key], where, section, models, out)
        else:
            out.append(f"{where}: {ABSENT} -> {_short(current[key])}")


def _extras(model: BaseModel | None) -> dict[str, Any]:
    """The keys of ``model`` beyond its declared fields (``extra="allow"``)."""
    return {} if model is None else dict(model.__pydantic_extra__ or {})


def _section(model: BaseModel | None, key: str) -> BaseModel | None:
    """The sub-model of ``model`` at ``key`` (a field or an extra section), if it is one."""
    if model is None:
        return None
    value = getattr(model, key) if key in type(model).model_fields else _extras(model).get(key)
    return value if isinstance(value, BaseModel) else None


def _is_default(model: BaseModel, key: str) -> bool:
    """Whether field ``key`` of ``model`` holds the field's declared default."""
    field = type(model).model_fields[key]
    if field.is_required():
        return False
    default = field.get_default(call_default_factory=True, validated_data=dict(model.__dict__))
    value = getattr(model, key)
    if value == default:
        return True
    # a default written in another spelling than validation gives (a list for a tuple field, a str for a Path)
    try:
        return bool(to_jsonable_python(value) == to_jsonable_python(default))
    except PydanticSerializationError:  # a value without a JSON form: equality above was the only test
        return False


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."
