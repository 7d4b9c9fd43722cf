"""``monitoring.probe_*`` (``radiossl pretrain --monitor-task``): probes of the encoder while it pretrains.

A tiny U-Net method on a stand-in preprocessed folder, probed on BraTS phantoms; each probe is a real
``radiossl probe`` subprocess (a few seconds on a CPU at width 0.125).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Literal

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset
from typer.testing import CliRunner

from radiossl import registry
from radiossl.cli import app
from radiossl.config import MethodConfig
from radiossl.data.phantoms import synthesize
from radiossl.data.processed import FORMAT
from radiossl.engine.progress import PlainProgress, reporting_to
from radiossl.engine.protocol import StepContext, StepOutput
from radiossl.errors import ConfigError
from radiossl.models.network import build_network
from radiossl.pretext.base import PretextMethod, load_pretrain_config
from radiossl.pretext.pretrain import pretrain
from radiossl.pretext.probe_monitor import (
    MONITOR_DIR,
    RESULTS_FILE,
    ProbeMonitor,
    probe_command,
    probe_environment,
)

runner = CliRunner()

PROBE = [
    "optim.epochs=1",
    "optim.batch_size=2",
    "data.ratio=1.0",
    "data.workers=0",
    "data.crop_size=[16,16,16]",
    "sliding_window.roi=[32,32,24]",
]


class Volumes(Dataset[torch.Tensor]):
    def __init__(self) -> None:
        self.data = torch.randn(4, 1, 16, 16, 16, generator=torch.Generator().manual_seed(0))

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.data[index]


class TinyUNetConfig(MethodConfig):
    name: Literal["tiny-unet"] = "tiny-unet"


class TinyUNet(PretextMethod):
    """Denoising reconstruction with a width-0.125 U-Net (a backbone ``radiossl probe`` can load)."""

    name = "tiny-unet"
    config_class = TinyUNetConfig
    views = "genesis"

    @classmethod
    def default_settings(cls) -> dict[str, Any]:
        return {"optim": {"lr": 0.01, "epochs": 2, "batch_size": 2}, "model": {"width": 0.125}}

    def build_model(self) -> nn.Module:
        return build_network(self.config.model, in_channels=1, out_channels=1)

    def build_datasets(self) -> tuple[Volumes, None]:
        return Volumes(), None

    def training_step(self, model: nn.Module, batch: Any, context: StepContext) -> StepOutput:
        noisy = batch + 0.1 * torch.randn_like(batch)
        return StepOutput(loss=(model(noisy).float() - batch).pow(2).mean())


@pytest.fixture(autouse=True)
def tiny_method() -> Iterator[None]:
    registry.register("radiossl.pretext", TinyUNet.name, TinyUNet)
    yield
    registry.unregister("radiossl.pretext", TinyUNet.name)


@pytest.fixture(scope="module")
def brats(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthesize("brats", tmp_path_factory.mktemp("brats"), cases=4, shape=(32, 32, 24), seed=0).out


@pytest.fixture
def proc(tmp_path: Path) -> Path:
    folder = tmp_path / "proc"
    folder.mkdir()
    (folder / "preprocess.json").write_text(json.dumps({"format": FORMAT, "dataset": "phantom", "view": "genesis"}))
    return folder


def _pretrain_args(proc: Path, out: Path, brats: Path | None, *extra: str, probe: list[str] = PROBE) -> list[str]:
    args = ["pretrain", "--method", "tiny-unet", "--data", str(proc), "--out", str(out), "--device", "cpu"]
    args += ["--workers", "0", "--set", "logging.progress=false", "--set", "monitoring.enabled=false"]
    if brats is not None:
        args += ["--monitor-task", "brats", "--monitor-data", str(brats)]
        args += ["--set", f"monitoring.probe_overrides={json.dumps(probe)}"]
    return [*args, *extra]


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _monitor_lines(run: Path) -> list[dict[str, Any]]:
    return [line for line in _lines(run / "metrics.jsonl") if line["type"] == "monitor"]


def test_probes_every_epoch_log_dice_and_leave_training_and_resume_as_they_were(
    proc: Path, brats: Path, tmp_path: Path
) -> None:
    result = runner.invoke(app, _pretrain_args(proc, tmp_path / "runs", brats, "--monitor-every", "1"))
    assert result.exit_code == 0, result.output
    run = next((tmp_path / "runs").iterdir())
    monitor = run / MONITOR_DIR
    probes = _lines(monitor / RESULTS_FILE)
    assert [p["epoch"] for p in probes] == [1, 2] and all("error" not in p for p in probes)
    for probe in probes:
        assert 0.0 <= probe["metrics"]["probe_val_dice"] <= 1.0 and probe["seconds"] > 0
        assert probe["metrics"]["probe_best_val_dice"] >= probe["metrics"]["probe_val_dice"]
        assert (run / probe["run"] / "checkpoint_final.pt").is_file()
        folder = monitor / f"epoch-{probe['epoch']:04d}"
        assert (folder / "snapshot.pt").is_file() and (folder / "probe.log").is_file()
    epochs = [line for line in _lines(run / "metrics.jsonl") if line["type"] == "epoch"]
    lines = _monitor_lines(run)
    assert [(line["epoch"], line["step"]) for line in lines] == [(e["epoch"], e["step"]) for e in epochs]
    assert [line["probe_val_dice"] for line in lines] == [p["metrics"]["probe_val_dice"] for p in probes]
    assert "waiting for the probe of epoch" in (run / "train.log").read_text()

    # the snapshot is the network at that epoch's end: the last one equals the final checkpoint
    final = torch.load(run / "checkpoint_final.pt", weights_only=True)["model"]
    snapshot = torch.load(monitor / "epoch-0002" / "snapshot.pt", weights_only=True)
    assert snapshot["epoch"] == 2 and snapshot["kind"] == "pretrain" and "optimizer" not in snapshot
    assert all(torch.equal(final[k], snapshot["model"][k]) for k in final)

    # the monitor draws no random numbers in the training process: the same weights without it
    plain = runner.invoke(app, _pretrain_args(proc, tmp_path / "plain", None))
    assert plain.exit_code == 0, plain.output
    unmonitored = torch.load(next((tmp_path / "plain").iterdir()) / "checkpoint_final.pt", weights_only=True)
    assert all(torch.equal(final[k], unmonitored["model"][k]) for k in final)

    # an interrupted probe (no result for epoch 2) runs again on resume; epoch 1's result is kept
    (monitor / RESULTS_FILE).write_text(json.dumps(probes[0]) + "\n")
    kept = [line for line in _lines(run / "metrics.jsonl") if not (line["type"] == "monitor" and line["epoch"] == 2)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in kept))
    first_run = probes[0]["run"]
    again = runner.invoke(app, _pretrain_args(proc, run, brats, "--monitor-every", "1", "--resume", "auto"))
    assert again.exit_code == 0, again.output
    assert "probing the snapshot of epoch 2 again" in again.output
    rerun = _lines(monitor / RESULTS_FILE)
    assert [p["epoch"] for p in rerun] == [1, 2] and rerun[0] == probes[0] and "error" not in rerun[1]
    assert [p.name for p in (monitor / "epoch-0001").iterdir() if p.is_dir()] == [Path(first_run).name]
    assert [line["epoch"] for line in _monitor_lines(run)] == [1, 2]

    # a finished run with every result: resuming probes nothing
    done = runner.invoke(app, _pretrain_args(proc, run, brats, "--monitor-every", "1", "--resume", "auto"))
    assert done.exit_code == 0, done.output
    assert _lines(monitor / RESULTS_FILE) == rerun and "probe of epoch" not in done.output


def test_a_failing_probe_only_warns(proc: Path, brats: Path, tmp_path: Path) -> None:
    args = _pretrain_args(proc, tmp_path / "runs", brats, "--epochs", "1", probe=[*PROBE, "optim.epochs=many"])
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    run = next((tmp_path / "runs").iterdir())
    log = run / MONITOR_DIR / "epoch-0001" / "probe.log"
    assert f"warning: the probe of epoch 1 failed (exit code 2); see {log}" in " ".join(result.output.split())
    assert "optim.epochs" in log.read_text()
    (probe,) = _lines(run / MONITOR_DIR / RESULTS_FILE)
    assert probe["error"] == "exit code 2" and probe["log"] == str(log) and "metrics" not in probe
    assert _monitor_lines(run) == [] and (run / "checkpoint_final.pt").is_file()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (["monitoring.probe_task=no-such-task"], r"monitoring.probe_task: unknown task 'no-such-task'; available: "),
        (["monitoring.probe_task=brats"], r"monitoring.probe_task is set but monitoring.probe_data is not"),
        (["monitoring.probe_data=x"], r"monitoring.probe_data is set but monitoring.probe_task is not"),
        (
            ["monitoring.probe_task=brats", "monitoring.probe_data=missing"],
            r"monitoring.probe_data: missing: dataset folder not found",
        ),
    ],
)
def test_probe_settings_are_checked_before_training(
    proc: Path, tmp_path: Path, settings: list[str], message: str
) -> None:
    overrides = [f"data.root={proc}", f"out={tmp_path / 'runs'}", "runtime.device=cpu", *settings]
    with pytest.raises(ConfigError, match=message):
        pretrain(load_pretrain_config("tiny-unet", overrides=overrides))
    assert not (tmp_path / "runs").exists()


def test_a_malformed_override_and_a_missing_folder_are_one_line_cli_errors(
    proc: Path, brats: Path, tmp_path: Path
) -> None:
    bad = runner.invoke(app, _pretrain_args(proc, tmp_path / "runs", brats, probe=["optim.epochs"]))
    assert bad.exit_code == 2 and "monitoring.probe_overrides: 'optim.epochs' is not key=value" in bad.output
    missing = _pretrain_args(proc, tmp_path / "runs", None, "--monitor-task", "brats", "--monitor-data", "nowhere")
    result = runner.invoke(app, missing)
    assert result.exit_code == 2 and "monitoring.probe_data: nowhere: dataset folder not found" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "runs").exists()


def test_the_probe_builds_the_pretraining_backbone_outside_its_torchrun_job(
    proc: Path, brats: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    overrides = [f"data.root={proc}", "model.norm=group", "runtime.seed=7"]
    overrides += ["monitoring.probe_task=brats", f"monitoring.probe_data={brats}", "monitoring.probe_overrides=[a=1]"]
    cfg = load_pretrain_config("tiny-unet", overrides=overrides)
    command = probe_command(cfg, tmp_path / "s.pt", tmp_path, "cpu")
    sets = [command[i + 1] for i, word in enumerate(command) if word == "--set"]
    assert command[3:6] == ["probe", "--task", "brats"] and command[command.index("--device") + 1] == "cpu"
    assert sets == [
        'model.name="unet3d"',
        "model.width=0.125",
        "model.skip_connections=false",
        'model.norm="group"',
        "runtime.seed=7",
        "logging.progress=false",
        "a=1",  # the user's overrides come last, so they win
    ]
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr("os.cpu_count", lambda: 16)
    env = probe_environment("cpu", None)
    assert "RANK" not in env and "WORLD_SIZE" not in env and env["OMP_NUM_THREADS"] == "4"
    assert probe_environment("cpu", 2)["MKL_NUM_THREADS"] == "2"
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert "OMP_NUM_THREADS" not in probe_environment("cuda", None)  # a GPU probe keeps torch's default


class _FakeProbe:
    """A probe subprocess that runs until waited for, then leaves a probe run with one validation."""

    launched: ClassVar[list[list[str]]] = []

    def __init__(self, command: list[str], **kwargs: Any) -> None:
        self.command, self.code = command, None
        _FakeProbe.launched.append(command)

    def poll(self) -> int | None:
        return self.code

    def wait(self) -> int:
        run = Path(self.command[self.command.index("--out") + 1]) / "probe-run"
        run.mkdir()
        (run / "metrics.jsonl").write_text(json.dumps({"type": "epoch", "epoch": 1, "val_dice": 0.25}) + "\n")
        self.code = 0
        return 0


def test_one_probe_at_a_time_and_only_the_newest_waiting_snapshot_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("radiossl.pretext.probe_monitor.subprocess.Popen", _FakeProbe)
    _FakeProbe.launched = []
    overrides = ["monitoring.probe_task=brats", f"monitoring.probe_data={tmp_path}", "monitoring.probe_every=1"]
    monitor = ProbeMonitor(load_pretrain_config("tiny-unet", overrides=overrides), lambda model: {})
    model = nn.Linear(2, 2)

    def context(epoch: int) -> StepContext:
        return StepContext(epoch, 3, 10 * epoch, torch.device("cpu"), extra={"run_dir": str(tmp_path)})

    rng = torch.get_rng_state()
    lines: list[str] = []
    with reporting_to(PlainProgress(write=lines.append)):
        records = [record for epoch in range(3) for record in monitor.after_epoch(model, context(epoch))]
        assert records == [] and len(_FakeProbe.launched) == 1  # epoch 1 runs, 2 then 3 wait
        assert not (tmp_path / MONITOR_DIR / "epoch-0002").exists()
        records = monitor.after_training(model, context(3))
    assert torch.equal(torch.get_rng_state(), rng)
    assert [(r["epoch"], r["step"], r["probe_val_dice"]) for r in records] == [(1, 0, 0.25), (3, 20, 0.25)]
    weights = [command[command.index("--weights") + 1] for command in _FakeProbe.launched]
    assert [Path(w).parent.name for w in weights] == ["epoch-0001", "epoch-0003"]
    assert "dropping the waiting probe of epoch 2: epoch 3 is newer" in lines
    assert [p["epoch"] for p in _lines(tmp_path / MONITOR_DIR / RESULTS_FILE)] == [1, 3]
