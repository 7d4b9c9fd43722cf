"""The engine protocol is complete: every member the trainer uses is declared, with a default for each hook."""

from __future__ import annotations

import ast
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from engine_task import TinyTask
from torch import nn

from radiossl.config import ExampleRunConfig
from radiossl.engine import trainer
from radiossl.engine.protocol import (
    HOOKS,
    REQUIRED_MEMBERS,
    StepContext,
    StepOutput,
    TaskDefaults,
    TrainingTask,
    task_label,
    with_defaults,
)
from radiossl.engine.trainer import run_training
from radiossl.errors import TrainingError
from radiossl.pretext.base import PretextMethod

Factory = Callable[..., ExampleRunConfig]


def _protocol_members() -> set[str]:
    return {name for name in vars(TrainingTask) if not name.startswith("_")}


def test_every_protocol_member_is_required_or_a_hook_with_a_default() -> None:
    assert _protocol_members() == set(REQUIRED_MEMBERS) | set(HOOKS)
    assert not set(REQUIRED_MEMBERS) & set(HOOKS)
    for name in HOOKS:
        assert name in vars(TaskDefaults), f"TaskDefaults has no default for the hook {name}"
    assert issubclass(PretextMethod, TaskDefaults)


def _task_reads(tree: ast.AST) -> tuple[set[str], list[str]]:
    """Attributes the trainer reads on ``task`` / ``self.task``, and any getattr/hasattr on them."""

    def is_task(node: ast.AST) -> bool:
        return (isinstance(node, ast.Name) and node.id == "task") or (
            isinstance(node, ast.Attribute) and node.attr == "task" and isinstance(node.value, ast.Name)
        )

    read, probes = set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and is_task(node.value):
            read.add(node.attr)
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "hasattr")
            and node.args
            and is_task(node.args[0])
        ):
            probes.append(ast.unparse(node))
    return read, probes


def test_the_trainer_uses_only_declared_members_and_probes_none() -> None:
    read, probes = _task_reads(ast.parse(inspect.getsource(trainer)))
    assert probes == []  # optional hooks are declared with defaults, not looked up with getattr
    assert read <= _protocol_members(), sorted(read - _protocol_members())
    assert {"before_optimizer_step", "ddp_find_unused_parameters", "monitor"} <= read


class _Minimal:
    """Only the required members: everything else comes from the protocol's defaults."""

    kind = "pretrain"
    name = "minimal"

    def __init__(self) -> None:
        self.inner = TinyTask(n_val=None)

    def build_model(self) -> nn.Module:
        return self.inner.build_model()

    def build_datasets(self) -> tuple[Any, Any]:
        return self.inner.build_datasets()

    def training_step(self, model: nn.Module, batch: Any, context: StepContext) -> StepOutput:
        return self.inner.training_step(model, batch, context)

    def model_spec(self, model: nn.Module) -> dict[str, Any]:
        return {"class": "TinyNet", "kwargs": {}}


def test_a_task_with_only_the_required_members_trains_with_the_defaults(make_config: Factory) -> None:
    task = with_defaults(_Minimal())
    assert (task.monitor, task.ddp_find_unused_parameters, task.headline_metrics) == (None, True, None)
    assert task.validate(nn.Identity(), None, StepContext(0, 1, 0, torch.device("cpu"))) == {}
    assert task_label(task) == "_Minimal"
    result = run_training(_Minimal(), make_config("optim.epochs=1"))  # type: ignore[arg-type]  # completed at run time
    assert result.epochs_completed == 1 and result.is_main


def test_a_structural_task_keeps_its_own_hooks() -> None:
    class Freezes(TinyTask):
        ddp_find_unused_parameters = False

        def before_optimizer_step(self, model: nn.Module, context: StepContext) -> None:
            model.frozen = True  # type: ignore[assignment]

    task = with_defaults(Freezes())
    net = nn.Linear(1, 1)
    task.before_optimizer_step(net, StepContext(0, 1, 0, torch.device("cpu")))
    assert net.frozen and task.ddp_find_unused_parameters is False


class _Subclassed(TaskDefaults, _Minimal):
    pass


def test_a_task_that_subclasses_the_defaults_is_used_as_it_is() -> None:
    task = _Subclassed()
    assert with_defaults(task) is task


def test_a_task_without_a_required_member_is_refused_by_name(make_config: Factory) -> None:
    with pytest.raises(TrainingError, match=r"_NoStep does not implement .*TrainingTask: no training_step$"):
        run_training(_NoStep(), make_config())  # type: ignore[arg-type]  # deliberately incomplete


class _NoStep:
    kind = "pretrain"
    name = "no-step"

    def build_model(self) -> nn.Module:
        return nn.Identity()

    def build_datasets(self) -> tuple[Any, Any]:
        return [], None

    def model_spec(self, model: nn.Module) -> dict[str, Any]:
        return {}


def test_the_step_context_says_which_process_is_main_and_carries_a_stop_request() -> None:
    context = StepContext(epoch=0, total_epochs=2, step=0, device=torch.device("cpu"), world_size=2, rank=1)
    assert not context.is_main and StepContext(0, 2, 0, torch.device("cpu")).is_main
    assert context.stop_reason is None
    context.request_stop("plateau")
    assert context.stop_reason == "plateau"
    context.extra["stop"] = True  # the older spelling still asks to stop
    assert context.stop_reason == ""


class _StopsWithAReason(TinyTask):
    def validate(self, model: nn.Module, loader: Any, context: StepContext) -> dict[str, float]:
        if context.epoch == 0:
            context.request_stop("enough for today")
        return super().validate(model, loader, context)


def test_a_stop_request_names_its_reason(make_config: Factory, tmp_path: Path) -> None:
    result = run_training(_StopsWithAReason(), make_config("optim.epochs=3"))
    assert result.stopped_early and result.epochs_completed == 1
    assert (
        "stopping early after epoch 1/3 (requested by tiny: enough for today)"
        in (result.run_dir / "train.log").read_text()
    )
