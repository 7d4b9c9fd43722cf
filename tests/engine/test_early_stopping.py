"""optim.patience: stop when the validation loss stops improving; the count survives a resume."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from engine_task import TinyTask, tiny_config

from radiossl.config import ExampleRunConfig, OptimConfig
from radiossl.engine.checkpoint import LATEST
from radiossl.engine.protocol import StepContext
from radiossl.engine.trainer import run_training
from radiossl.errors import ConfigError
from radiossl.models.checkpoint import load_checkpoint

# validation loss per epoch: best in epoch 2, never better afterwards
VAL_LOSS = [3.0, 2.0, 2.5, 2.6, 2.7, 2.8, 2.9, 3.0, 3.1, 3.2]


def test_patience_is_a_validated_optim_setting() -> None:
    assert OptimConfig().patience is None
    assert OptimConfig(patience=50).patience == 50
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        OptimConfig(patience=0)


class _Plateau(TinyTask):
    def validate(self, model: Any, loader: Any, context: StepContext) -> dict[str, float]:
        return {"val_loss": VAL_LOSS[context.epoch]}


Factory = Callable[..., ExampleRunConfig]


@pytest.fixture
def patience_config(data_root: Path, tmp_path: Path) -> Factory:
    def factory(*overrides: str) -> ExampleRunConfig:
        return tiny_config(data_root, tmp_path / "runs", *overrides)

    return factory


def test_training_stops_after_patience_epochs_without_a_better_validation_loss(patience_config: Factory) -> None:
    result = run_training(_Plateau(), patience_config("optim.epochs=10", "optim.patience=2"))
    assert result.stopped_early and result.epochs_completed == 4  # best at epoch 2, then 2 worse epochs
    assert [h["epoch"] for h in result.history] == [1, 2, 3, 4]
    state = load_checkpoint(result.final_checkpoint)
    assert state["epoch"] == 4 and state["early_stopping"] == {"best": 2.0, "stale": 2}

    again = run_training(_Plateau(), patience_config("optim.epochs=10", "optim.patience=2"), resume=result.run_dir)
    assert again.stopped_early and again.epochs_completed == 4 and len(again.history) == 4


def test_a_resumed_run_keeps_counting_epochs_without_improvement(patience_config: Factory) -> None:
    config = patience_config("optim.epochs=10", "optim.patience=2")
    with pytest.raises(RuntimeError, match="simulated interruption"):
        run_training(_Plateau(crash_at_epoch=3), config)  # epochs 1-3 done: one epoch without improvement
    (run_dir,) = config.out.iterdir()
    assert load_checkpoint(run_dir / LATEST)["early_stopping"] == {"best": 2.0, "stale": 1}
    resumed = run_training(_Plateau(), config, resume="auto")
    assert resumed.stopped_early and resumed.epochs_completed == 4


def test_without_patience_the_run_trains_every_epoch(patience_config: Factory) -> None:
    result = run_training(_Plateau(n_val=2), patience_config("optim.epochs=5"))
    assert not result.stopped_early and result.epochs_completed == 5


def test_patience_needs_validation_data(patience_config: Factory) -> None:
    with pytest.raises(ConfigError, match=r"optim\.patience=2 .* no validation data"):
        run_training(_Plateau(n_val=None), patience_config("optim.patience=2"))
