"""Collapse monitoring in the engine: emb_rank/emb_spread, the warning, exact resume, no effect on training."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from engine_task import Pair, TinyNet, TinyTask, tiny_config
from pydantic import Field
from torch import nn

from radiossl.config import ExampleRunConfig, MonitoringConfig
from radiossl.engine.checkpoint import LATEST
from radiossl.engine.collapse import CollapseWatch, bottleneck_embeddings, first_input
from radiossl.engine.trainer import run_training
from radiossl.errors import TrainingError
from radiossl.models import UNet3D
from radiossl.models.checkpoint import load_checkpoint


class MonitoredConfig(ExampleRunConfig):
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig)


class EncodingNet(TinyNet):
    """TinyNet with the backbone interface's ``encode``; ``collapsed``: every sample has the same bottleneck."""

    def __init__(self, collapsed: bool = False) -> None:
        super().__init__()
        self.collapsed = collapsed

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        # one voxel: the pooled features of i.i.d. noise volumes would all be alike
        features = self.conv1(x)[:, :, :1, :1, :1]
        if self.collapsed:
            features = 0.0 * features + self.conv1.bias.view(1, -1, 1, 1, 1)
        return [features]


class EncodingTask(TinyTask):
    def __init__(self, collapsed: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.collapsed = collapsed

    def build_model(self) -> nn.Module:
        return EncodingNet(self.collapsed)


def _config(tmp_path: Path, out: str, *overrides: str) -> MonitoredConfig:
    root = tmp_path / "data"
    root.mkdir(exist_ok=True)
    config = tiny_config(root, tmp_path / out, *overrides, config_class=MonitoredConfig)
    assert isinstance(config, MonitoredConfig)
    return config


def _epochs(run_dir: Path) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [line for line in lines if line["type"] == "epoch"]


def _warnings(run_dir: Path) -> list[str]:
    return [line for line in (run_dir / "train.log").read_text().splitlines() if "look collapsed" in line]


def test_every_epoch_logs_rank_and_spread_and_monitoring_does_not_change_training(tmp_path: Path) -> None:
    monitored = run_training(EncodingTask(), _config(tmp_path, "on", "monitoring.samples=8"))
    plain = run_training(EncodingTask(), _config(tmp_path, "off", "monitoring.enabled=false"))

    epochs = _epochs(monitored.run_dir)
    assert len(epochs) == 3
    for line in epochs:
        assert 1.0 < line["emb_rank"] <= 4.0  # 4 channels, 8 samples
        assert line["emb_spread"] > 0.0
    assert all("emb_rank" not in line for line in _epochs(plain.run_dir))
    # eval-mode, gradient-free forward: same losses and weights as without monitoring
    assert [h["loss"] for h in monitored.history] == [h["loss"] for h in plain.history]
    a = torch.load(monitored.final_checkpoint, weights_only=True)["model"]
    b = torch.load(plain.final_checkpoint, weights_only=True)["model"]
    assert all(torch.equal(a[key], b[key]) for key in a)
    assert not _warnings(monitored.run_dir)


def test_a_collapsed_encoder_warns_once_after_patience_epochs(tmp_path: Path) -> None:
    config = _config(tmp_path, "runs", "optim.epochs=4", "monitoring.patience=2")
    result = run_training(EncodingTask(collapsed=True), config)

    epochs = _epochs(result.run_dir)
    assert all(line["emb_spread"] < 0.05 for line in epochs)
    (warning,) = _warnings(result.run_dir)
    assert "collapsed since epoch 1" in warning and "monitoring" in warning
    state = load_checkpoint(result.final_checkpoint)["collapse_monitor"]
    assert state["warned"] and state["history"] == [0, 1, 2, 3]


def test_a_resumed_run_logs_the_same_statistics_and_warns_at_the_same_epoch(tmp_path: Path) -> None:
    overrides = ("optim.epochs=4", "monitoring.patience=3")
    straight = run_training(EncodingTask(collapsed=True), _config(tmp_path, "straight", *overrides))
    config = _config(tmp_path, "cut", *overrides)
    with pytest.raises(RuntimeError, match="simulated interruption"):
        run_training(EncodingTask(collapsed=True, crash_at_epoch=2), config)
    (cut_dir,) = config.out.iterdir()
    assert load_checkpoint(cut_dir / LATEST)["collapse_monitor"]["low_epochs"] == 2
    resumed = run_training(EncodingTask(collapsed=True), config, resume="auto")

    keys = ("emb_rank", "emb_spread")
    assert [[line[k] for k in keys] for line in _epochs(straight.run_dir)] == [
        [line[k] for k in keys] for line in _epochs(resumed.run_dir)
    ]
    assert len(_warnings(straight.run_dir)) == len(_warnings(resumed.run_dir)) == 1
    assert "since epoch 1" in _warnings(resumed.run_dir)[0]


def test_a_task_that_cannot_say_trains_without_statistics(tmp_path: Path) -> None:
    result = run_training(TinyTask(), _config(tmp_path, "runs"))  # TinyNet has no encode
    assert all("emb_rank" not in line for line in _epochs(result.run_dir))


def test_embeddings_of_the_wrong_shape_stop_with_the_task_named(tmp_path: Path) -> None:
    class Broken(EncodingTask):
        def embeddings(self, model: nn.Module, batch: Any) -> torch.Tensor | None:
            return torch.zeros(2, 3, 4)

    with pytest.raises(TrainingError, match=r"Broken\.embeddings must return a \[batch, dimension\]"):
        run_training(Broken(), _config(tmp_path, "runs"))


def test_the_rows_are_split_over_ranks_and_the_statistics_do_not_depend_on_the_world_size() -> None:
    rows = torch.randn(10, 6, generator=torch.Generator().manual_seed(0))
    settings = MonitoringConfig(samples=8)

    def hook(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
        return batch

    def run(world_size: int) -> dict[str, float]:
        watches = [CollapseWatch(settings, hook, world_size, "Task") for _ in range(world_size)]
        shards = rows.chunk(world_size)
        for watch, shard in zip(watches, shards, strict=True):
            watch.start_epoch()
            for batch in shard.split(2):
                if watch.wants_more:
                    watch.collect(nn.Identity(), batch, torch.autocast("cpu", enabled=False))
        gathered = [watch.local_rows() for watch in watches]
        assert sum(0 if g is None else g.shape[0] for g in gathered) == 8
        stats, _ = watches[0].end_epoch(0, gathered)
        return stats

    one, two = run(1), run(2)
    assert one.keys() == {"emb_rank", "emb_spread"}
    # two ranks hold rows 0-3 and 5-8, one rank rows 0-7: same count, close statistics on isotropic data
    assert two["emb_rank"] == pytest.approx(one["emb_rank"], rel=0.2)


def test_the_default_hook_pools_the_bottleneck_of_the_first_input_view() -> None:
    net = UNet3D(width=0.125)
    x = torch.randn(3, 1, 16, 16, 16)
    pair = Pair(x, torch.zeros(3), torch.zeros(3))
    expected = net.encode(x)[-1].mean(dim=(2, 3, 4))
    assert torch.allclose(bottleneck_embeddings(net, pair), expected)
    assert first_input({"index": 1, "image": x}) is x
    assert first_input(["text", 1]) is None
    assert bottleneck_embeddings(TinyNet(), pair) is None
