"""Models Genesis: published defaults, corruption pipeline, training step, validation, end-to-end run."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from radiossl.engine.protocol import StepContext
from radiossl.errors import ConfigError
from radiossl.models.norms import ContBatchNorm3d
from radiossl.pretext.base import load_pretrain_config
from radiossl.pretext.models_genesis import ModelsGenesis, build_corruption, composed_corruption
from radiossl.transforms import BezierIntensity, GenesisCorruption, LocalShuffle, OneOf

CUBE = (32, 32, 16)


def _method(*overrides: str) -> ModelsGenesis:
    return ModelsGenesis(load_pretrain_config("models-genesis", overrides=["model.width=0.125", *overrides]))


def _context(index: int = 0, epoch: int = 0) -> StepContext:
    return StepContext(
        epoch=epoch, total_epochs=5, step=index, device=torch.device("cpu"), extra={"batch_index": index}
    )


def test_published_defaults() -> None:
    cfg = load_pretrain_config("models-genesis")
    optim = cfg.optim
    assert (optim.optimizer, optim.lr, optim.momentum, optim.weight_decay, optim.batch_size) == (
        "sgd",
        1.0,
        0.9,
        0.0,
        6,
    )
    assert (optim.schedule, optim.step_size, optim.gamma) == ("step", 40, 0.5)
    assert (cfg.model.skip_connections, cfg.model.norm) == (True, "genesis")
    m = cfg.method
    assert (m.flip_rate, m.local_rate, m.nonlinear_rate, m.paint_rate, m.inpaint_rate) == (0.4, 0.5, 0.9, 0.9, 0.2)
    model = ModelsGenesis(cfg).build_model()
    assert any(isinstance(module, ContBatchNorm3d) for module in model.modules())


def test_bad_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="0, 1, 2"):
        load_pretrain_config("models-genesis", overrides=["method.flip_axes=[]"])
    with pytest.raises(ConfigError, match="inpaint_rate"):
        load_pretrain_config("models-genesis", overrides=["method.inpaint_rate=1.5"])


def test_corruption_pipeline_order_and_rates() -> None:
    settings = load_pretrain_config("models-genesis").method
    fused = build_corruption(settings)
    assert isinstance(fused, GenesisCorruption) and fused.n_blocks == 10_000
    assert (fused.local_rate, fused.nonlinear_rate, fused.paint_rate, fused.inpaint_rate) == (0.5, 0.9, 0.9, 0.2)
    shuffle, bezier, paint = composed_corruption(settings).transforms
    assert isinstance(shuffle, LocalShuffle) and shuffle.p == 0.5 and shuffle.n_blocks == 10_000
    assert isinstance(bezier, BezierIntensity) and bezier.p == 0.9
    assert isinstance(paint, OneOf) and paint.p == 0.9 and paint.weights == pytest.approx([0.2, 0.8])


def test_target_is_the_flipped_clean_cube() -> None:
    method = _method("method.local_rate=0", "method.nonlinear_rate=0", "method.paint_rate=0", "method.flip_rate=1")
    cubes = torch.rand(8, 1, *CUBE)
    inputs, target = method.corrupt_batch(cubes, torch.Generator().manual_seed(0))
    assert torch.equal(inputs, target)
    flips = 0
    for b in range(8):
        candidates = [cubes[b].flip(dims) for dims in ((), (1,), (2,), (3,), (1, 2), (1, 3), (2, 3), (1, 2, 3))]
        assert any(torch.equal(target[b], c) for c in candidates)
        flips += not torch.equal(target[b], cubes[b])
    assert flips > 0


@pytest.mark.parametrize("size", [1, 2])
def test_training_step_is_finite(size: int) -> None:
    method = _method()
    model = method.build_model()
    out = method.training_step(model, torch.rand(size, 1, *CUBE), _context())
    assert torch.isfinite(out.loss) and out.loss.dtype == torch.float32
    assert 0.0 <= out.metrics["output_std"] < 1.0
    out.loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_loss_decreases_on_a_fixed_batch() -> None:
    torch.manual_seed(0)
    method = _method()
    model = method.build_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    cubes = torch.rand(2, 1, *CUBE) * 0.5 + torch.linspace(0, 0.5, CUBE[0]).view(1, 1, -1, 1, 1)
    losses = []
    for _ in range(10):
        loss = method.training_step(model, cubes, _context(index=0)).loss  # same corruption every step
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses


def test_validation_is_repeatable() -> None:
    method = _method()
    model = method.build_model().eval()
    loader = DataLoader(torch.rand(4, 1, *CUBE), batch_size=2)
    with torch.no_grad():
        first = method.validate(model, loader, _context(epoch=1))
        second = method.validate(model, loader, _context(epoch=3))
    assert set(first) == {"val_mse"} and first == second and 0 < first["val_mse"] < 1
    assert method.validate(model, None, _context()) == {}


def test_validation_does_not_depend_on_batching_or_sharding() -> None:
    from radiossl.engine.distributed import DistInfo, ShardSampler

    class Recorder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inputs: list[torch.Tensor] = []

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.inputs.append(x.clone())
            return torch.zeros_like(x)

    def corrupted(loader: DataLoader) -> torch.Tensor:
        recorder = Recorder()
        method.validate(recorder, loader, _context())
        return torch.cat(recorder.inputs)

    method = _method()
    cubes = torch.rand(5, 1, *CUBE)
    whole = corrupted(DataLoader(cubes, batch_size=2))
    assert not torch.equal(whole[0], whole[1])
    assert torch.equal(corrupted(DataLoader(cubes, batch_size=3)), whole)  # cube i gets the same corruption
    for rank, ids in ((0, [0, 2, 4]), (1, [1, 3])):  # two DDP ranks, each with its shard
        shard = ShardSampler(5, DistInfo(world_size=2, rank=rank))
        assert torch.equal(corrupted(DataLoader(cubes, batch_size=2, sampler=shard)), whole[ids])


def test_end_to_end_pretraining_with_validation(tmp_path: Path) -> None:
    from radiossl.data.phantoms import synthesize
    from radiossl.data.preprocess import PreprocessConfig, preprocess
    from radiossl.models import build_model
    from radiossl.pretext.pretrain import pretrain

    raw, proc = tmp_path / "raw", tmp_path / "proc"
    synthesize("lits", raw, cases=3, shape=(48, 48, 32), seed=0)  # the last volume is the val split
    prep = PreprocessConfig(
        dataset="lits17",
        data=raw,
        out=proc,
        view="genesis",
        crop_size=CUBE,
        pairs=2,
        rejection={"max_foreground": None, "max_background": None},
        progress=False,
    )
    assert preprocess(prep).failed == 0
    cfg = load_pretrain_config(
        "models-genesis",
        overrides=[
            f"data.root={proc}",
            f"out={tmp_path / 'runs'}",
            f"data.crop_size=[{CUBE[0]}, {CUBE[1]}, {CUBE[2]}]",
            "data.workers=0",
            "model.width=0.125",
            "optim.epochs=1",
            "optim.batch_size=2",
            "logging.progress=false",
        ],
    )
    result = pretrain(cfg)
    record = result.history[-1]
    assert result.epochs_completed == 1 and math.isfinite(record["loss"]) and math.isfinite(record["val_mse"])
    assert result.best_checkpoint is not None and result.best_metric == pytest.approx(record["val_mse"])
    state = torch.load(result.final_checkpoint, weights_only=True)
    assert state["model_spec"]["kwargs"]["norm"] == "genesis"
    build_model(state["model_spec"]).load_state_dict(state["model"])
