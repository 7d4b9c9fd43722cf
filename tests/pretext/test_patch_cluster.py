"""Patch-level clustering: one step on fabricated pairs, prototype handling, legacy mode, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from radiossl.engine.protocol import StepContext
from radiossl.errors import ConfigError
from radiossl.models import PatchClusterNet
from radiossl.pretext.base import load_pretrain_config
from radiossl.pretext.patch_cluster import PatchCluster
from radiossl.views.cluster import PairSample

CROP = (32, 32, 16)
TINY = ["model.width=0.125", "method.k=8", "runtime.device=cpu"]


def make_batch(batch: int = 2, seed: int = 0, disjoint: tuple[int, ...] = ()) -> PairSample:
    """Random crops with overlapping boxes (of different physical sizes) in a common voxel grid."""
    g = torch.Generator().manual_seed(seed)
    boxes1, boxes2 = [], []
    for b in range(batch):
        start = torch.randint(0, 16, (3,), generator=g).tolist()
        size1 = [40, 40, 20]
        size2 = [48, 36, 24]
        shift = [8, -4, 3] if b not in disjoint else [200, 0, 0]
        boxes1.append([v for a in range(3) for v in (start[a], start[a] + size1[a])])
        boxes2.append([v for a in range(3) for v in (start[a] + shift[a], start[a] + shift[a] + size2[a])])
    return PairSample(
        view1=torch.rand(batch, 1, *CROP, generator=g),
        view2=torch.rand(batch, 1, *CROP, generator=g),
        box1=torch.tensor(boxes1),
        box2=torch.tensor(boxes2),
        target1=torch.zeros(0, dtype=torch.int64),
        target2=torch.zeros(0, dtype=torch.int64),
        index=torch.arange(batch),
    )


def context(epoch: int = 1) -> StepContext:
    return StepContext(epoch=epoch, total_epochs=4, step=0, device=torch.device("cpu"))


def method(*overrides: str) -> PatchCluster:
    return PatchCluster(load_pretrain_config("patch-cluster", overrides=[*TINY, *overrides]))


def build(m: PatchCluster, seed: int = 0) -> PatchClusterNet:
    torch.manual_seed(seed)
    net = m.build_model()
    assert isinstance(net, PatchClusterNet)
    return net


@pytest.mark.parametrize("legacy", [False, True])
def test_training_step_gives_a_finite_float32_loss_with_gradients(legacy: bool) -> None:
    m = method(f"method.legacy={str(legacy).lower()}")
    net = build(m)
    out = m.training_step(net, make_batch(), context(epoch=1))
    assert out.loss.dtype == torch.float32 and out.loss.dim() == 0 and torch.isfinite(out.loss)
    out.loss.backward()
    for name in ("down_tr64.ops.0.conv1.weight", "cluster_projection_head.weight", "prototypes.weight"):
        grad = dict(net.named_parameters())[name].grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name
    for key in (
        "pred_clusters_used",
        "pred_cluster_entropy",
        "target_clusters_used",
        "target_cluster_entropy",
    ):
        assert key in out.metrics
    assert 1 <= out.metrics["pred_clusters_used"] <= 8
    assert 0.0 <= out.metrics["target_cluster_entropy"] <= 1.0


def sgd_steps(m: PatchCluster, net: PatchClusterNet, batch: PairSample, steps: int, epoch: int) -> list[float]:
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(steps):
        out = m.training_step(net, batch, context(epoch))
        opt.zero_grad()
        out.loss.backward()
        m.before_optimizer_step(net, context(epoch))
        opt.step()
        m.after_optimizer_step(net, context(epoch))
        losses.append(float(out.loss.detach()))
    return losses


def test_loss_decreases_on_a_fixed_batch() -> None:
    m = method()
    net = build(m)
    losses = sgd_steps(m, net, make_batch(batch=2, seed=3), steps=6, epoch=1)
    assert all(np.isfinite(losses))
    assert min(losses[-2:]) < losses[0]


def test_prototypes_are_unit_norm_after_each_step() -> None:
    m = method()
    net = build(m)
    assert not torch.allclose(net.prototypes.weight.norm(dim=1), torch.ones(8))  # default init is not unit
    sgd_steps(m, net, make_batch(), steps=1, epoch=1)
    torch.testing.assert_close(net.prototypes.weight.norm(dim=1), torch.ones(8))


def test_prototypes_are_frozen_for_the_first_epochs() -> None:
    m = method("method.freeze_prototypes_epochs=1")
    net = build(m)
    start = F.normalize(net.prototypes.weight.detach().clone(), dim=1)
    out = m.training_step(net, make_batch(), context(epoch=0))
    out.loss.backward()
    assert net.prototypes.weight.grad is not None and net.prototypes.weight.grad.abs().sum() == 0
    net.zero_grad()
    sgd_steps(m, net, make_batch(), steps=2, epoch=0)
    torch.testing.assert_close(net.prototypes.weight.detach(), start)
    sgd_steps(m, net, make_batch(), steps=2, epoch=1)
    assert not torch.allclose(net.prototypes.weight.detach(), start, atol=1e-6)


def test_frozen_prototypes_get_no_update_momentum_or_weight_decay() -> None:
    """Frozen must mean frozen for the optimiser too: nothing accumulates for the first unfrozen step."""
    m = method("method.freeze_prototypes_epochs=1")
    net = build(m)
    protos = net.prototypes.weight
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=0.1)

    def step(epoch: int) -> None:  # the engine's order (radiossl.engine.trainer)
        out = m.training_step(net, make_batch(), context(epoch))
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        before = getattr(m, "before_optimizer_step", None)
        if before is not None:
            before(net, context(epoch))
        opt.step()
        m.after_optimizer_step(net, context(epoch))

    step(0)
    frozen = protos.detach().clone()
    torch.testing.assert_close(frozen.norm(dim=1), torch.ones(8))
    for _ in range(3):
        step(0)
    torch.testing.assert_close(protos.detach(), frozen, rtol=0.0, atol=1e-6)  # only renormalisation rounding
    assert "momentum_buffer" not in opt.state.get(protos, {})

    # the first unfrozen step starts the momentum from this step's gradient alone
    out = m.training_step(net, make_batch(), context(1))
    opt.zero_grad(set_to_none=True)
    out.loss.backward()
    assert protos.grad is not None
    expected = protos.grad + 0.1 * protos.detach()
    opt.step()
    torch.testing.assert_close(opt.state[protos]["momentum_buffer"], expected)


def test_legacy_reproduces_the_thesis_student_and_keeps_raw_prototypes() -> None:
    fixed, legacy = method(), method("method.legacy=true")
    batch = make_batch()
    net = build(legacy)
    raw_norms = net.prototypes.weight.norm(dim=1).detach().clone()
    loss_legacy = legacy.training_step(net, batch, context()).loss
    loss_fixed = fixed.training_step(net, batch, context()).loss
    # thesis ce averages over K too: its loss is about log(K)/K, the fixed one about log(K)
    assert float(loss_legacy.detach()) < float(loss_fixed.detach()) / 4
    legacy.after_optimizer_step(net, context())
    torch.testing.assert_close(net.prototypes.weight.norm(dim=1), raw_norms)
    with pytest.raises(ConfigError, match="nearest"):
        load_pretrain_config("patch-cluster", overrides=["method.legacy=true", "method.align_mode=trilinear"])


def test_non_overlapping_pairs_are_masked_out() -> None:
    m = method()
    net = build(m)
    out = m.training_step(net, make_batch(batch=3, disjoint=(1,)), context())
    assert torch.isfinite(out.loss)
    # an all-disjoint batch carries no signal, but must not produce NaN
    out = m.training_step(net, make_batch(batch=2, disjoint=(0, 1)), context())
    assert float(out.loss.detach()) == 0.0
    # trilinear alignment of the student logits works too
    tri = method("method.align_mode=trilinear")
    assert torch.isfinite(tri.training_step(net, make_batch(), context()).loss)


def test_defaults_are_the_thesis_settings() -> None:
    cfg = load_pretrain_config("patch-cluster")
    assert (cfg.method.k, cfg.method.epsilon, cfg.method.sinkhorn_iterations, cfg.method.temperature) == (
        50,
        0.05,
        3,
        0.1,
    )
    assert (cfg.optim.optimizer, cfg.optim.lr, cfg.optim.momentum, cfg.optim.weight_decay) == (
        "sgd",
        2e-3,
        0.9,
        1e-4,
    )
    assert (cfg.optim.batch_size, cfg.optim.epochs, cfg.data.crop_size) == (16, 240, (64, 64, 32))
    assert PatchCluster(cfg).run_name_parts() == ["k50"]
    assert method("method.legacy=true").run_name_parts() == ["k8", "legacy"]


def test_visualise_and_validate() -> None:
    m = method()
    net = build(m)
    batch = make_batch()
    images = m.visualise(net, batch, context())
    image = images["clusters"]
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert image.shape[0] >= 3 * CROP[0] and image.shape[1] >= 2 * CROP[1]
    assert net.training  # mode restored
    metrics = m.validate(net, [batch, make_batch(seed=1)], context())  # type: ignore[arg-type]
    assert set(metrics) >= {"val_loss", "val_pred_clusters_used", "val_target_cluster_entropy"}
    assert all(np.isfinite(v) for v in metrics.values())
    assert m.validate(net, None, context()) == {}


# ------------------------------------------------------------------------------------------------
# end to end: synthetic BraTS -> preprocess -> pretrain


@pytest.fixture(scope="module")
def processed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from radiossl.data.phantoms import synthesize
    from radiossl.data.preprocess import PreprocessConfig, preprocess

    base = tmp_path_factory.mktemp("patch_cluster_e2e")
    synthesize("brats", base / "raw", cases=3, shape=(64, 64, 40), seed=0)
    result = preprocess(
        PreprocessConfig(
            dataset="brats18",
            data=base / "raw",
            out=base / "proc",
            view="cluster",
            crop_size=CROP,
            candidate_sizes=[(32, 32, 16), (48, 48, 24)],
            pairs=2,
            workers=0,
            progress=False,
        )
    )
    assert result.failed == 0
    return base / "proc"


def test_pretrain_end_to_end(processed: Path, tmp_path: Path) -> None:
    from radiossl.pretext.pretrain import pretrain

    cfg = load_pretrain_config(
        "patch-cluster",
        overrides=[
            *TINY,
            f"data.root={processed}",
            f"out={tmp_path / 'runs'}",
            f"data.crop_size={list(CROP)}",
            "data.workers=0",
            "optim.epochs=1",
            "optim.batch_size=4",
            "logging.progress=false",
            "logging.vis=true",
        ],
    )
    result = pretrain(cfg)
    assert result.final_checkpoint.is_file()
    assert "-k8-" in result.run_dir.name
    assert list((result.run_dir / "vis").glob("clusters_e0001.png"))
    lines = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert any("pred_clusters_used" in line for line in lines)
    assert any("val_loss" in line for line in lines)
    state = torch.load(result.final_checkpoint, weights_only=True)
    assert isinstance(state, dict)
