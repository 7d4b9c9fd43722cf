"""What a training run shows on the console (headline metrics, bounded plain lines, live bar, end table).

Everything a run measures still goes to metrics.jsonl; train.log keeps every epoch's full line.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import pytest
from rich.console import Console

from radiossl.commands.progress import RichProgress, console_reporter, live_display_possible
from radiossl.engine.logging import RunLogger
from radiossl.engine.progress import PlainProgress, RunPlan, reporting_to
from radiossl.engine.protocol import headline_metrics, with_defaults
from radiossl.engine.trainer import run_training
from radiossl.errors import TrainingError
from tests.engine.engine_task import TinyTask, tiny_config


def epoch_records(run_dir: Path) -> list[dict[str, object]]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [record for record in map(json.loads, lines) if record["type"] == "epoch"]


def test_epoch_line_leaves_out_unmeasured_metrics(tmp_path: Path) -> None:
    lines: list[str] = []
    log = RunLogger(tmp_path, enabled=True, reporter=PlainProgress(write=lines.append))
    log.start_run(RunPlan("pretrain tiny", tmp_path, 5, 2, ("loss", "val_dice", "lr")))
    record = {"type": "epoch", "epoch": 3, "step": 30, "loss": 0.25, "bce": 0.5, "val_dice": math.nan, "time": 1.0}
    log.end_epoch(record, validated=False)
    log.log_line(record)
    log.close()
    printed = "\n".join(lines)
    assert "loss 0.25" in printed and "epoch 3/5" in printed
    assert "val_dice" not in printed and "nan" not in printed and "bce" not in printed
    assert json.loads((tmp_path / "metrics.jsonl").read_text())["val_dice"] == "nan"
    logged = (tmp_path / "train.log").read_text()
    assert "epoch 3  loss 0.25  bce 0.5" in logged and "nan" not in logged  # the full line, for reading later


def test_plain_progress_of_a_run_is_bounded_headline_only_and_ends_with_a_table(
    data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No reporter installed (a notebook, a script): plain lines on stdout, about 10 per run."""
    epochs = 12
    config = tiny_config(data_root, tmp_path / "runs", f"optim.epochs={epochs}", "logging.checkpoint_every=100")
    result = run_training(TinyTask(n_train=4, monitor=("val_mse", "min")), config)
    out = capsys.readouterr().out
    assert "\x1b" not in out
    epoch_lines = [line for line in out.splitlines() if line.startswith("pretrain tiny epoch ")]
    # TinyTask validates every epoch: no line per validation, the regular lines carry the latest value
    assert [line.split()[3] for line in epoch_lines] == [f"{e}/12" for e in (1, 3, 5, 7, 9, 11, 12)]
    assert len(out.splitlines()) <= 7 + 10  # + the start line and the end-of-run table
    assert "loss " in epoch_lines[-1] and "val_mse " in epoch_lines[-1] and "lr " in epoch_lines[-1]
    assert "mae" not in out and "epoch_time" not in out  # not headline metrics: metrics.jsonl only
    records = epoch_records(result.run_dir)
    assert len(records) == epochs and all("mae" in r and "epoch_time" in r for r in records)
    # the end-of-run table: first, best and last epoch, the checkpoints and the run folder
    assert f"pretrain tiny: {epochs} epochs, finished in" in out
    assert any(line.startswith("first") for line in out.splitlines())
    assert any(line.startswith("last") or ", last" in line for line in out.splitlines())
    assert f"run folder: {result.run_dir}\n  best checkpoint_best.pt (val_mse " in out
    assert "; final checkpoint_final.pt; every metric in metrics.jsonl and train.log" in out
    logged = (result.run_dir / "train.log").read_text()
    assert logged.count("  mae ") == epochs  # train.log keeps every epoch's full line


def test_plain_progress_rate_with_validations_and_slow_steps() -> None:
    """Validation epochs always get a line; a quiet minute gets one too, even inside an epoch."""
    now = [0.0]
    lines: list[str] = []
    progress = PlainProgress(write=lines.append, clock=lambda: now[0])
    progress.start_run(RunPlan("finetune brats", Path("run"), 60, 0, ("loss", "val_dice", "lr")))
    for epoch in range(1, 61):
        progress.start_epoch(epoch, steps=5)
        for _ in range(5):
            progress.advance_step(0.5, 0.001)
        validated = epoch % 10 == 0
        progress.end_epoch(
            {"epoch": epoch, "loss": 0.5, "lr": 0.001, "val_dice": 0.6 if validated else math.nan}, validated
        )
    printed = [int(line.split()[3].split("/")[0]) for line in lines[1:]]
    assert printed == [1, 7, 10, 16, 20, 26, 30, 36, 40, 46, 50, 56, 60]
    assert "val_dice 0.6 (e10)" in lines[4]  # between validations: the last value and its epoch
    lines.clear()
    progress.start_run(RunPlan("pretrain pcrlv2", Path("run"), 40, 0, ("loss", "lr")))
    for epoch in range(1, 41):  # no validation: epoch 1, every 4th epoch (10 %) and the last one
        progress.start_epoch(epoch, steps=5)
        progress.end_epoch({"epoch": epoch, "loss": 0.5, "lr": 0.001}, validated=False)
    printed = [int(line.split()[3].split("/")[0]) for line in lines[1:]]
    assert printed == [1, 5, 9, 13, 17, 21, 25, 29, 33, 37, 40]
    lines.clear()
    progress.start_run(RunPlan("finetune brats", Path("run"), 2, 0, ("loss", "lr")))
    progress.start_epoch(1, steps=10)
    for _ in range(10):
        now[0] += 25.0  # 250 s in one epoch: a step line every minute
        progress.advance_step(0.5, 0.001)
    step_lines = [line for line in lines if " step " in line]
    assert len(step_lines) == 3 and "epoch 1/2 step 3/10" in step_lines[0] and "ETA" in step_lines[0]


def test_plugin_declares_its_headline_metrics(
    data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    class MaeTask(TinyTask):
        headline_metrics = ("loss", "mae")

    assert headline_metrics(with_defaults(TinyTask())) == ("loss", "val_loss", "lr")  # the default
    assert headline_metrics(with_defaults(TinyTask(monitor=("val_mse", "min")))) == ("loss", "val_mse", "lr")
    run_training(MaeTask(), tiny_config(data_root, tmp_path / "runs", "optim.epochs=2"))
    out = capsys.readouterr().out
    epoch_lines = [line for line in out.splitlines() if line.startswith("pretrain tiny epoch ")]
    assert epoch_lines and all(" mae " in line and " lr " not in line for line in epoch_lines)
    assert "val_mse" not in out

    class BrokenTask(TinyTask):
        headline_metrics = "loss"  # type: ignore[assignment]  # the mistake under test

    with pytest.raises(TrainingError, match="headline_metrics must be a tuple"):
        headline_metrics(with_defaults(BrokenTask()))


def test_verbose_prints_every_epoch_in_full(
    data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tiny_config(data_root, tmp_path / "runs", "optim.epochs=3", "logging.verbose=true")
    run_training(TinyTask(), config)
    out = capsys.readouterr().out
    assert out.count("  mae ") == 3 and out.count("epoch_time") == 3


def test_rich_live_bar_renders_and_ends_with_the_table(data_root: Path, tmp_path: Path) -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=200)
    assert live_display_possible(console)
    config = tiny_config(data_root, tmp_path / "runs", "optim.epochs=3", "logging.progress=true")
    with reporting_to(RichProgress(console)):
        result = run_training(TinyTask(monitor=("val_mse", "min")), config)
    text = buffer.getvalue()
    last_frame = text.rsplit("\r", 1)[-1]
    assert "pretrain tiny" in last_frame and "epoch 3/3" in last_frame and "ETA" in last_frame
    assert "loss " in text and "val_mse " in text and "mae" not in text
    assert "pretrain tiny: 3 epochs, finished in" in text and "first" in text
    assert f"run folder: {result.run_dir}" in text.replace("\n", "")


def test_console_reporter_is_plain_off_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(console_reporter(Console(file=io.StringIO())), PlainProgress)  # a pipe, a CI log
    terminal = Console(file=io.StringIO(), force_terminal=True)
    assert isinstance(console_reporter(terminal), RichProgress)
    monkeypatch.setenv("NO_COLOR", "1")
    assert not live_display_possible(terminal)
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setenv("TERM", "dumb")
    assert not live_display_possible(terminal)
