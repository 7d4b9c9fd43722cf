"""The training loop: exact resume, checkpoints, NaN guard, accumulation, clipping, logging, --vis."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from engine_task import TinyTask

from radiossl.config import ExampleRunConfig
from radiossl.engine.checkpoint import BEST, FINAL, LATEST
from radiossl.engine.optim import lr_factor
from radiossl.engine.protocol import StepContext
from radiossl.engine.trainer import TrainResult, run_training
from radiossl.errors import CheckpointError, ConfigError, TrainingError
from radiossl.models.checkpoint import load_checkpoint
from radiossl.runtime.cpu import CpuInfo
from radiossl.utils.seeding import seed_everything

Factory = Callable[..., ExampleRunConfig]


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def _epoch_lines(run_dir: Path) -> list[dict]:
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [line for line in lines if line["type"] == "epoch"]


@pytest.mark.parametrize("workers", [0, 1])
def test_interrupted_and_resumed_run_ends_with_identical_weights(make_config: Factory, workers: int) -> None:
    straight = run_training(TinyTask(), make_config(f"data.workers={workers}", out="straight"))
    config = make_config(f"data.workers={workers}")
    with pytest.raises(RuntimeError, match="simulated interruption"):
        run_training(TinyTask(crash_at_epoch=2), config)
    (interrupted_dir,) = config.out.iterdir()
    assert load_checkpoint(interrupted_dir / LATEST)["epoch"] == 2
    assert not (interrupted_dir / FINAL).exists()

    resumed = run_training(TinyTask(), config, resume="auto")

    assert resumed.run_dir == interrupted_dir
    a, b = _weights(straight.final_checkpoint), _weights(resumed.final_checkpoint)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert [h["loss"] for h in straight.history] == [h["loss"] for h in resumed.history]
    assert len(_epoch_lines(resumed.run_dir)) == 3  # the lines of the interrupted epoch were not duplicated
    final = load_checkpoint(resumed.final_checkpoint)
    assert final["epoch"] == 3 and final["global_step"] == 9


def test_checkpoints_load_with_weights_only_and_follow_the_schema(make_config: Factory) -> None:
    result = run_training(TinyTask(), make_config())
    for name in (LATEST, BEST, FINAL):
        state = torch.load(result.run_dir / name, map_location="cpu", weights_only=True)
        assert state["format_version"] == 1
        assert state["kind"] == "pretrain" and state["name"] == "tiny"
        assert isinstance(state["radiossl_version"], str) and isinstance(state["torch_version"], str)
        assert state["config"]["optim"]["epochs"] == 3
        assert not any(key.startswith("module.") for key in state["model"])
        assert state["model_spec"] == {"class": "TinyNet", "kwargs": {"norm": True}}
        assert {
            "optimizer",
            "scheduler",
            "grad_scaler",
            "global_step",
            "history",
            "best_metric",
        } <= state.keys()
        rng = state["rng"]
        assert rng["world_size"] == 1 and isinstance(rng["states"][0]["torch"], torch.Tensor)
    assert load_checkpoint(result.final_checkpoint)["epoch"] == 3
    assert (result.run_dir / "config.yaml").read_text().startswith("data:")


def test_resuming_a_finished_run_trains_nothing(make_config: Factory) -> None:
    config = make_config()
    first = run_training(TinyTask(), config)
    again = run_training(TinyTask(), config, resume=str(first.run_dir))
    assert again.epochs_completed == 3 and again.run_dir == first.run_dir
    for key, value in _weights(first.final_checkpoint).items():
        assert torch.equal(value, _weights(again.final_checkpoint)[key])


def test_starting_over_an_existing_run_folder_without_resume_is_refused(make_config: Factory) -> None:
    first = run_training(TinyTask(), make_config())
    with pytest.raises(ConfigError, match="--resume auto"):
        run_training(TinyTask(), make_config(), run_dir=first.run_dir)


def test_resume_from_a_missing_checkpoint_names_the_path(make_config: Factory, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"nothing\.pt"):
        run_training(TinyTask(), make_config(), resume=str(tmp_path / "nothing.pt"))


def test_non_finite_loss_stops_with_a_clear_message_and_keeps_checkpoints(make_config: Factory) -> None:
    config = make_config()
    with pytest.raises(TrainingError) as info:
        run_training(TinyTask(nan_at_epoch=1), config)
    message = str(info.value)
    assert "epoch 2" in message and "optim.lr" in message and "--amp none" in message
    (run_dir,) = config.out.iterdir()
    assert load_checkpoint(run_dir / LATEST)["epoch"] == 1  # the last good epoch, intact
    assert not (run_dir / FINAL).exists()
    assert json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])["type"] == "error"


def test_dataset_smaller_than_a_batch_still_trains(make_config: Factory) -> None:
    result = run_training(TinyTask(n_train=3, n_val=None), make_config("optim.batch_size=4", "optim.epochs=2"))
    assert result.history[-1]["step"] == 2  # one partial batch per epoch


def test_partial_last_batch_is_dropped_when_a_full_batch_exists(make_config: Factory) -> None:
    result = run_training(TinyTask(n_train=10, n_val=None), make_config("optim.batch_size=4", "optim.epochs=1"))
    assert result.history[-1]["step"] == 2


def test_gradient_accumulation_matches_a_large_batch(make_config: Factory) -> None:
    def task() -> TinyTask:
        return TinyTask(n_train=16, n_val=None, norm=False, dropout_noise=False)

    common = ("optim.epochs=2", "optim.momentum=0.0", "optim.weight_decay=0.0")
    big = run_training(task(), make_config(*common, "optim.batch_size=8", out="big"))
    small = run_training(task(), make_config(*common, "optim.batch_size=4", "optim.accumulate=2", out="small"))
    assert big.history[-1]["step"] == small.history[-1]["step"] == 4
    a, b = _weights(big.final_checkpoint), _weights(small.final_checkpoint)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)


def test_gradient_clipping_bounds_the_update_and_logs_the_norm(make_config: Factory) -> None:
    task = TinyTask(n_train=4, n_val=None, norm=False)
    config = make_config(
        "optim.epochs=1",
        "optim.momentum=0.0",
        "optim.weight_decay=0.0",
        "optim.lr=1.0",
        "optim.grad_clip=0.001",
        "optim.schedule=constant",
    )
    result = run_training(task, config)
    assert result.history[-1]["grad_norm"] > 0.001
    seed_everything(config.runtime.seed, True)  # the engine seeds like this before build_model()
    initial = task.build_model().state_dict()
    final = _weights(result.final_checkpoint)
    change = torch.sqrt(sum(((final[k] - initial[k]) ** 2).sum() for k in initial))
    assert float(change) <= 1.0 * 0.001 + 1e-6


def test_after_optimizer_step_is_called_once_per_step(make_config: Factory) -> None:
    task = TinyTask(n_val=None)
    result = run_training(task, make_config("optim.accumulate=2"))
    assert task.after_steps == result.history[-1]["step"] == 3 * 2  # 3 batches -> 2 steps per epoch


def test_best_checkpoint_follows_the_monitored_validation_metric(make_config: Factory) -> None:
    result = run_training(TinyTask(monitor=("val_mse", "max")), make_config())
    best_epoch = max(result.history, key=lambda h: h["val_mse"])
    assert result.best_metric == best_epoch["val_mse"]
    assert result.best_checkpoint is not None
    assert load_checkpoint(result.best_checkpoint)["epoch"] == best_epoch["epoch"]


def test_epochs_without_validation_metrics_do_not_change_the_best_checkpoint(make_config: Factory) -> None:
    result = run_training(TinyTask(n_val=None, monitor=("val_mse", "min")), make_config("optim.epochs=1"))
    assert result.best_checkpoint is None and result.best_metric is None
    assert not (result.run_dir / BEST).exists() and result.final_checkpoint.is_file()


def test_monitoring_a_metric_that_validate_does_not_return_fails_clearly(make_config: Factory) -> None:
    with pytest.raises(TrainingError, match="val_dice"):
        run_training(TinyTask(monitor=("val_dice", "max")), make_config())


def test_metrics_jsonl_vis_pngs_and_tensorboard(make_config: Factory) -> None:
    config = make_config(
        "logging.vis=true",
        "logging.tensorboard=true",
        "logging.log_every=2",
        "logging.checkpoint_every=2",
        "logging.progress=true",
    )
    result: TrainResult = run_training(TinyTask(), config)
    lines = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [line for line in lines if line["type"] == "step"]
    assert [line["step"] for line in steps] == [2, 4, 6, 8]
    for line in lines:
        assert {"epoch", "step", "lr", "loss", "mae", "time"} <= line.keys()
    assert [line["epoch"] for line in lines if line["type"] == "epoch"] == [1, 2, 3]
    assert sorted(p.name for p in (result.run_dir / "vis").iterdir()) == [
        "slice_e0001.png",
        "slice_e0002.png",
        "slice_e0003.png",
    ]
    assert any((result.run_dir / "tensorboard").iterdir())
    assert load_checkpoint(result.latest_checkpoint)["epoch"] == 3  # written on the last epoch too


def test_bf16_and_fp16_autocast_train_on_cpu(make_config: Factory, fake_cpu: Callable[..., CpuInfo]) -> None:
    fake_cpu(bf16=True, fp16=True)  # a CPU with native bf16 and fp16: both precisions run as asked
    for amp in ("bf16", "fp16"):
        result = run_training(TinyTask(n_val=None), make_config(f"runtime.amp={amp}", "optim.epochs=1", out=amp))
        assert torch.isfinite(torch.tensor(result.history[-1]["loss"]))
        scaler = load_checkpoint(result.final_checkpoint)["grad_scaler"]
        assert bool(scaler) == (amp == "fp16")


class _RecordsOutputDtype(TinyTask):
    dtypes: set[torch.dtype]

    def training_step(self, model, batch, context):  # type: ignore[no-untyped-def]
        self.dtypes.add(model(batch.image).dtype)
        return super().training_step(model, batch, context)


@pytest.mark.parametrize("amp", ["bf16", "auto"])
def test_bf16_on_a_cpu_without_native_bf16_trains_in_float32_and_records_it(
    make_config: Factory, fake_cpu: Callable[..., CpuInfo], caplog: pytest.LogCaptureFixture, amp: str
) -> None:
    fake_cpu(bf16=False)
    task = _RecordsOutputDtype(n_val=None)
    task.dtypes = set()
    with caplog.at_level(logging.INFO, logger="radiossl.runtime.precision"):
        result = run_training(task, make_config(f"runtime.amp={amp}", "optim.epochs=2"))
    assert task.dtypes == {torch.float32}
    messages = [r for r in caplog.records if r.name == "radiossl.runtime.precision"]
    assert len(messages) == 1  # once per run, not per epoch or step
    assert "float32" in messages[0].getMessage() and "no native bf16" in messages[0].getMessage()
    assert messages[0].levelno == (logging.WARNING if amp == "bf16" else logging.INFO)
    assert "amp: none" in (result.run_dir / "config.yaml").read_text()
    assert load_checkpoint(result.final_checkpoint)["config"]["runtime"]["amp"] == "none"


class _RecordsWeightLayout(TinyTask):
    layouts: set[tuple[int, ...]]

    def build_model(self) -> torch.nn.Module:
        model = super().build_model()
        model.conv2 = torch.nn.Conv3d(4, 1, 3, padding=1)  # a weight with several input channels has two layouts
        return model

    def training_step(self, model, batch, context):  # type: ignore[no-untyped-def]
        self.layouts.add(model.conv2.weight.stride())
        return super().training_step(model, batch, context)


def test_cpu_training_runs_channels_last_with_the_same_losses_and_contiguous_checkpoints(
    make_config: Factory,
) -> None:
    runs = {}
    for memory_format in ("auto", "contiguous"):
        task = _RecordsWeightLayout(n_val=None)
        task.layouts = set()
        config = make_config(f"runtime.memory_format={memory_format}", "optim.epochs=2", out=memory_format)
        runs[memory_format] = run_training(task, config)
        # auto = channels_last_3d on the CPU: the channel stride is 1
        assert task.layouts == {(108, 1, 36, 12, 4) if memory_format == "auto" else (108, 27, 9, 3, 1)}
    losses = [[line["loss"] for line in _epoch_lines(runs[name].run_dir)] for name in ("auto", "contiguous")]
    assert losses[0] == pytest.approx(losses[1], rel=1e-4)
    weights = _weights(runs["auto"].final_checkpoint)
    assert all(w.is_contiguous() for w in weights.values())


class _StopsAfterSecondEpoch(TinyTask):
    def validate(self, model, loader, context):  # type: ignore[no-untyped-def]
        metrics = super().validate(model, loader, context)
        if context.epoch == 1:
            context.extra["stop"] = True
        return metrics


def test_a_task_can_stop_training_early_and_still_gets_a_final_checkpoint(make_config: Factory) -> None:
    result = run_training(_StopsAfterSecondEpoch(), make_config("optim.epochs=5"))
    assert result.stopped_early
    assert result.epochs_completed == 2
    assert [line["epoch"] for line in _epoch_lines(result.run_dir)] == [1, 2]
    assert load_checkpoint(result.final_checkpoint)["epoch"] == 2


def test_resuming_with_a_new_learning_rate_uses_it(make_config: Factory) -> None:
    first = run_training(TinyTask(n_val=None), make_config("optim.epochs=1", "optim.schedule=constant"))
    config = make_config("optim.epochs=2", "optim.schedule=constant", "optim.lr=0.005")
    resumed = run_training(TinyTask(n_val=None), config, run_dir=first.run_dir, resume="auto")
    assert [round(h["lr"], 6) for h in resumed.history] == [0.05, 0.005]


def test_a_finished_run_trains_longer_when_resumed_with_more_epochs(make_config: Factory) -> None:
    finished = run_training(TinyTask(n_val=None), make_config("optim.epochs=2", out="short"))
    longer = run_training(
        TinyTask(n_val=None), make_config("optim.epochs=4", out="short"), run_dir=finished.run_dir, resume="auto"
    )
    planned = run_training(TinyTask(n_val=None), make_config("optim.epochs=4", out="planned"))
    assert [h["epoch"] for h in longer.history] == [1, 2, 3, 4] and longer.epochs_completed == 4
    # from the resume on, the learning rate follows the schedule of a run planned for 4 epochs
    assert [h["lr"] for h in longer.history[2:]] == pytest.approx([h["lr"] for h in planned.history[2:]])
    assert load_checkpoint(longer.final_checkpoint)["epoch"] == 4


def test_extend_epochs_trains_past_the_planned_end_with_a_rebuilt_schedule(make_config: Factory) -> None:
    finished = run_training(TinyTask(n_val=None), make_config("optim.epochs=2", out="short"))
    same_command = make_config("optim.epochs=2", out="short")
    with pytest.raises(ConfigError, match="--extend-epochs continues an earlier run"):
        run_training(TinyTask(n_val=None), same_command, extend_epochs=2)  # no --resume: nothing to extend
    longer = run_training(TinyTask(n_val=None), same_command, run_dir=finished.run_dir, resume="auto", extend_epochs=2)
    planned = run_training(TinyTask(n_val=None), make_config("optim.epochs=4", out="planned"))
    assert [h["epoch"] for h in longer.history] == [1, 2, 3, 4] and longer.epochs_completed == 4
    assert [h["lr"] for h in longer.history[2:]] == pytest.approx([h["lr"] for h in planned.history[2:]])
    assert "epochs: 4" in (finished.run_dir / "config.yaml").read_text()  # the run folder records the new total
    assert load_checkpoint(longer.final_checkpoint)["config"]["optim"]["epochs"] == 4


def test_resuming_an_early_stopped_run_trains_nothing(make_config: Factory) -> None:
    stopped = run_training(_StopsAfterSecondEpoch(), make_config("optim.epochs=5"))
    again = run_training(
        _StopsAfterSecondEpoch(), make_config("optim.epochs=5"), run_dir=stopped.run_dir, resume="auto"
    )
    assert again.stopped_early and again.epochs_completed == 2
    assert load_checkpoint(again.final_checkpoint)["epoch"] == 2


class _FrozenBias(TinyTask):
    """Drops conv2.bias' gradient before every step (how a task freezes a parameter for a while)."""

    def before_optimizer_step(self, model: torch.nn.Module, context) -> None:  # type: ignore[no-untyped-def]
        model.conv2.bias.grad = None


def test_before_optimizer_step_runs_before_the_step_so_a_dropped_gradient_freezes_the_parameter(
    make_config: Factory,
) -> None:
    result = run_training(_FrozenBias(n_val=None), make_config("optim.weight_decay=0.1", "optim.epochs=2"))
    state = load_checkpoint(result.final_checkpoint)
    seed_everything(1)  # as run_training does (runtime.seed) before building the model
    net = TinyTask().build_model()
    initial = net.state_dict()
    assert torch.equal(state["model"]["conv2.bias"], initial["conv2.bias"])  # no update, no weight decay
    bias_index = [name for name, _ in net.named_parameters()].index("conv2.bias")
    assert bias_index not in state["optimizer"]["state"]  # no momentum buffer
    assert 0 in state["optimizer"]["state"]
    assert not torch.equal(state["model"]["conv2.weight"], initial["conv2.weight"])


def test_the_scaled_lr_trains_and_a_resume_with_another_effective_batch_rescales_it(make_config: Factory) -> None:
    # 12 volumes, batch 4: 3 batches per epoch; lr 0.05 tuned for a batch of 2, scaled linearly
    scaling = ("optim.epochs=2", "optim.lr_scaling=linear", "optim.reference_batch_size=2")
    config = make_config(*scaling)
    with pytest.raises(RuntimeError, match="simulated interruption"):
        run_training(TinyTask(crash_at_epoch=1), config)
    (run_dir,) = config.out.iterdir()
    first = load_checkpoint(run_dir / LATEST)
    assert first["scale"]["lr"] == pytest.approx(0.1) and first["scale"]["effective_batch_size"] == 4
    assert _epoch_lines(run_dir)[0]["lr"] == pytest.approx(0.1 * lr_factor(config.optim, 2, 3))
    assert (
        "effective batch 4 = 4 per process x 1 process x 1 accumulation step; lr 0.1 = 0.05 x 4/2"
        in (run_dir / "train.log").read_text()
    )
    assert "#   effective_batch_size: 4" in (run_dir / "config.yaml").read_text()

    # as if resumed on another number of processes: 3 accumulation steps make the effective batch 12
    # (lr 0.05 x 12/2 = 0.3) and one optimiser step per epoch; the schedule continues at epoch 2's start
    resumed = run_training(TinyTask(), make_config(*scaling, "optim.accumulate=3"), resume="auto")
    log = (resumed.run_dir / "train.log").read_text()
    assert "note: the effective batch changed from 4 to 12" in log and "lr 0.1 -> 0.3" in log
    assert _epoch_lines(resumed.run_dir)[-1]["lr"] == pytest.approx(0.3 * 0.5)  # cosine at half of 2 steps


class _AfterHooks(TinyTask):
    """A task whose after_epoch/after_training report one record each; records where they ran."""

    def __init__(self, records: object = None) -> None:
        super().__init__(n_val=None)
        self.records = records
        self.calls: list[tuple[str, int, int]] = []

    def after_epoch(self, model: torch.nn.Module, context: StepContext) -> list[dict]:
        self.calls.append(("epoch", context.epoch, context.step))
        if self.records is not None:
            return self.records  # type: ignore[return-value]
        return [{"epoch": context.epoch + 1, "step": context.step, "probe_val_dice": 0.5 + context.epoch}]

    def after_training(self, model: torch.nn.Module, context: StepContext) -> list[dict]:
        self.calls.append(("training", context.epoch, context.step))
        return [{"epoch": context.epoch, "probe_val_dice": 0.9}]


def test_after_epoch_and_after_training_records_become_monitor_lines(make_config: Factory) -> None:
    task = _AfterHooks()
    result = run_training(task, make_config("optim.epochs=2"))
    steps = [line["step"] for line in _epoch_lines(result.run_dir)]
    assert task.calls == [("epoch", 0, steps[0]), ("epoch", 1, steps[1]), ("training", 2, steps[1])]
    lines = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    monitor = [(line["epoch"], line["step"], line["probe_val_dice"]) for line in lines if line["type"] == "monitor"]
    assert monitor == [(1, steps[0], 0.5), (2, steps[1], 1.5), (2, steps[1], 0.9)]  # no step: the last one


def test_after_epoch_returning_something_else_fails_clearly(make_config: Factory) -> None:
    with pytest.raises(TrainingError, match=r"_AfterHooks.after_epoch must return a list of dicts with an int 'epoch'"):
        run_training(_AfterHooks(records={"probe_val_dice": 1.0}), make_config())
