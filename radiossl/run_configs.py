"""One entry point to resolve any stage's config: ``load_config(kind, name, file, overrides)``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from radiossl.errors import ConfigError


def load_config(
    kind: Literal["pretrain", "finetune", "evaluate"] = "pretrain",
    name: str | None = None,
    file: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    flags: dict[str, Any] | None = None,
) -> BaseModel:
    """Resolve a config (defaults < plugin defaults < file < overrides < flags).

    ``name`` is the pretext method (``kind="pretrain"``) or the downstream task; it may be omitted
    when the file names it.

    Example:
        >>> cfg = load_config("pretrain", "patch-cluster", overrides=["optim.epochs=2"])
        >>> cfg.optim.epochs
        2
    """
    if kind == "pretrain":
        from radiossl.pretext.base import load_pretrain_config

        return load_pretrain_config(name, file, tuple(overrides), flags)
    if kind in ("finetune", "evaluate"):
        from radiossl.downstream.config import load_task_config

        return load_task_config(kind, name, file, tuple(overrides), flags)
    raise ConfigError(f"unknown config kind {kind!r}; use pretrain, finetune or evaluate")
