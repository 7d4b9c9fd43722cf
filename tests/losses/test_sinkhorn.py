"""Sinkhorn-Knopp: rows are distributions, columns become uniform, stable, no gradient, legacy reshape."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from hypothesis import given, settings
from hypothesis import strategies as st

from radiossl.losses.sinkhorn import scrambled_reshape, sinkhorn_knopp


def reference_sinkhorn(scores: torch.Tensor, epsilon: float, iterations: int) -> torch.Tensor:
    """The textbook linear-domain SwAV/thesis algorithm in float64 (for small, well-scaled scores)."""
    q = torch.exp(scores.double() / epsilon).t()  # K x N
    q = q / q.sum()
    k, n = q.shape
    for _ in range(iterations):
        q = q / q.sum(dim=1, keepdim=True) / k
        q = q / q.sum(dim=0, keepdim=True) / n
    q = q / q.sum(dim=0, keepdim=True)
    return q.t()


shapes = st.tuples(st.integers(2, 48), st.integers(2, 12))


@settings(max_examples=40, deadline=None)
@given(
    shape=shapes,
    seed=st.integers(0, 2**16),
    eps=st.sampled_from([0.05, 0.3, 1.0]),
    iters=st.integers(0, 6),
    dtype=st.sampled_from([torch.float32, torch.float64]),
)
def test_rows_are_distributions(shape: tuple[int, int], seed: int, eps: float, iters: int, dtype: torch.dtype) -> None:
    scores = torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    q = sinkhorn_knopp(scores, epsilon=eps, iterations=iters)
    assert q.shape == shape and q.dtype == dtype
    assert torch.isfinite(q).all() and (q >= 0).all()
    torch.testing.assert_close(q.sum(1), torch.ones(shape[0], dtype=dtype), atol=1e-5, rtol=0)


@settings(max_examples=30, deadline=None)
@given(shape=shapes, seed=st.integers(0, 2**16), eps=st.sampled_from([0.05, 0.5]), iters=st.integers(0, 5))
def test_matches_textbook_linear_domain_algorithm(shape: tuple[int, int], seed: int, eps: float, iters: int) -> None:
    scores = torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 2 - 1
    torch.testing.assert_close(
        sinkhorn_knopp(scores, eps, iters), reference_sinkhorn(scores, eps, iters), atol=1e-10, rtol=1e-8
    )


def _cosines(n: int, k: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    z = torch.nn.functional.normalize(torch.randn(n, 16, generator=g), dim=1)
    c = torch.nn.functional.normalize(torch.randn(k, 16, generator=g), dim=1)
    return z @ c.t()


@settings(max_examples=8, deadline=None)
@given(n=st.integers(64, 256), k=st.integers(2, 10), seed=st.integers(0, 2**16))
def test_column_marginals_approach_uniform(n: int, k: int, seed: int) -> None:
    scores = _cosines(n, k, seed)

    def imbalance(q: torch.Tensor) -> float:
        return float((q.mean(0) * k - 1).abs().max())  # 0 = every prototype gets exactly N/K

    # well-conditioned kernel (ε = 0.5): close to uniform after the default 3 iterations
    assert imbalance(sinkhorn_knopp(scores, epsilon=0.5, iterations=3)) < 0.05
    # and exactly uniform (to numerical precision) with many iterations, even at ε = 0.05
    assert imbalance(sinkhorn_knopp(scores.double(), epsilon=0.05, iterations=500)) < 1e-6


def test_zero_iterations_is_a_tempered_softmax() -> None:
    scores = _cosines(20, 5, 0)
    torch.testing.assert_close(sinkhorn_knopp(scores, 0.1, 0), torch.softmax(scores / 0.1, dim=1))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_extreme_scores_stay_finite(dtype: torch.dtype) -> None:
    scores = (torch.randn(32, 8, generator=torch.Generator().manual_seed(1)) * 500).to(dtype)
    q = sinkhorn_knopp(scores, epsilon=0.05, iterations=3)
    assert q.dtype == torch.float32
    assert torch.isfinite(q).all()
    torch.testing.assert_close(q.sum(1), torch.ones(32), atol=1e-5, rtol=0)


def test_no_gradient_and_input_untouched() -> None:
    scores = torch.randn(10, 4, requires_grad=True)
    before = scores.detach().clone()
    q = sinkhorn_knopp(scores)
    assert not q.requires_grad and q.grad_fn is None
    assert torch.equal(scores.detach(), before)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="N, K"):
        sinkhorn_knopp(torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match="epsilon"):
        sinkhorn_knopp(torch.zeros(2, 3), epsilon=0)
    with pytest.raises(ValueError, match="iterations"):
        sinkhorn_knopp(torch.zeros(2, 3), iterations=-1)


def test_legacy_scrambled_reshape_breaks_rows() -> None:
    batch, patches, k = 2, 8, 5
    q = sinkhorn_knopp(_cosines(batch * patches, k, 3), 0.05, 3)
    fixed = q.reshape(batch, patches, k)
    scrambled = scrambled_reshape(q, batch, patches)
    torch.testing.assert_close(fixed.sum(-1), torch.ones(batch, patches))
    assert not torch.allclose(scrambled.sum(-1), torch.ones(batch, patches), atol=1e-3)
    # same numbers, different places
    torch.testing.assert_close(scrambled.flatten().sort().values, fixed.flatten().sort().values)
    assert torch.equal(scrambled, q.t().reshape(batch, patches, k))
    with pytest.raises(ValueError, match="expected"):
        scrambled_reshape(q, 3, patches)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _distributed_worker(rank: int, world: int, port: int, scores: torch.Tensor, out: torch.Tensor) -> None:
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        out.copy_(sinkhorn_knopp(scores.chunk(world)[rank], 0.05, 3, distributed=True))
    finally:
        dist.destroy_process_group()


@pytest.mark.ddp
def test_distributed_equals_global_batch() -> None:
    """Two gloo ranks, each with half the samples, reproduce the single-process result on the whole batch."""
    scores = _cosines(24, 6, 7)
    expected = sinkhorn_knopp(scores, 0.05, 3)
    world = 2
    # balancing each half separately gives something else, so the test can tell the difference
    assert not torch.allclose(sinkhorn_knopp(scores.chunk(world)[0], 0.05, 3), expected.chunk(world)[0], atol=1e-4)
    outs = [torch.zeros(12, 6).share_memory_() for _ in range(world)]
    port = _free_port()
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_distributed_worker, args=(r, world, port, scores, outs[r])) for r in range(world)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    for rank in range(world):
        torch.testing.assert_close(outs[rank], expected.chunk(world)[rank], atol=1e-6, rtol=1e-5)
