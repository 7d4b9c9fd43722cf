"""Distributed helpers that work without a process group: shards, exact metric reduction, failures."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from radiossl.engine import distributed
from radiossl.engine.distributed import (
    DistInfo,
    ShardSampler,
    combine_weighted,
    convert_sync_batchnorm,
    make_eval_sampler,
    raise_if_any_failed,
    reduce_validation,
    step_status,
    sync_batchnorm,
)
from radiossl.errors import DataError, TrainingError


def test_validation_shards_cover_every_sample_exactly_once() -> None:
    for length in (1, 2, 5, 8):
        shards = [list(ShardSampler(length, DistInfo(world_size=3, rank=r))) for r in range(3)]
        assert sorted(i for shard in shards for i in shard) == list(range(length))
        assert [len(ShardSampler(length, DistInfo(world_size=3, rank=r))) for r in range(3)] == [len(s) for s in shards]
    assert make_eval_sampler(list(range(5)), DistInfo()) is None


def test_combined_validation_means_weight_each_rank_by_its_samples() -> None:
    samples = [1.0, 2.0, 3.0, 4.0, 5.0]
    shards = [samples[0::2], samples[1::2]]  # 3 and 2 samples
    reports = [({"val_mse": sum(s) / len(s), "rank_metric": float(r)}, float(len(s))) for r, s in enumerate(shards)]
    combined = combine_weighted(reports)
    assert combined["val_mse"] == pytest.approx(sum(samples) / len(samples))
    assert list(combined) == ["rank_metric", "val_mse"]


def test_ranks_without_samples_do_not_count_and_metrics_of_no_samples_are_plain_means() -> None:
    reports = [({"val_dice": 0.5, "val_dice_wt": 0.4}, 2.0), ({"val_dice": math.nan}, 0.0)]
    assert combine_weighted(reports) == {"val_dice": 0.5, "val_dice_wt": 0.4}
    assert combine_weighted([({"x": 1.0}, 0.0), ({"x": 3.0}, 0.0)]) == {"x": 2.0}
    assert math.isnan(combine_weighted([({"val_dice": math.nan}, 3.0), ({"val_dice": 0.5}, 1.0)])["val_dice"])


def test_single_process_helpers_pass_values_through_and_raise_the_original_error() -> None:
    info = DistInfo()
    assert reduce_validation({"val_mse": 0.25}, 3, None, info, "in validation") == {"val_mse": 0.25}
    assert step_status(False, None, info, "at epoch 1 (batch 0)") is False
    raise_if_any_failed(None, info, "after epoch 1")
    error = DataError("/data/case001.npy: truncated file")
    with pytest.raises(DataError, match="truncated file"):
        step_status(True, error, info, "at epoch 1 (loading batch 1)")
    with pytest.raises(DataError, match="truncated file"):
        reduce_validation({}, 0, error, info, "in validation")
    with pytest.raises(DataError, match="truncated file"):
        raise_if_any_failed(error, info, "after epoch 1")


def _norm_zoo() -> nn.Module:
    from radiossl.models.norms import ContBatchNorm3d, SafeBatchNorm1d

    return nn.Sequential(
        nn.Conv3d(1, 4, 3),
        nn.BatchNorm3d(4),
        nn.Sequential(ContBatchNorm3d(4), nn.BatchNorm2d(4, affine=False)),
        SafeBatchNorm1d(4),
        nn.BatchNorm1d(4),
    )


def test_sync_batchnorm_converts_plain_batchnorm_and_keeps_its_tensors() -> None:
    from radiossl.models.norms import ContBatchNorm3d, SafeBatchNorm1d

    model = _norm_zoo()
    model[1].running_mean.fill_(0.5)
    weight, keys = model[1].weight, list(model.state_dict())
    converted, count = convert_sync_batchnorm(model)
    assert converted is model and count == 3
    assert [type(m).__name__ for m in (model[1], model[2][0], model[2][1], model[3], model[4])] == [
        "SyncBatchNorm",
        ContBatchNorm3d.__name__,  # always batch statistics: synchronising would change what it computes
        "SyncBatchNorm",
        SafeBatchNorm1d.__name__,  # batches of one
        "SyncBatchNorm",
    ]
    assert model[1].weight is weight and float(model[1].running_mean[0]) == 0.5  # optimiser and values kept
    assert list(model.state_dict()) == keys  # checkpoints keep their keys
    assert model[2][1].weight is None and not model[2][1].affine


def test_sync_batchnorm_only_in_distributed_cuda_runs() -> None:
    two = DistInfo(world_size=2, rank=0, local_rank=0)
    model = _norm_zoo()
    same, note = sync_batchnorm(model, torch.device("cuda", 0), DistInfo(), enabled=True)
    assert same is model and note is None and isinstance(model[1], nn.BatchNorm3d)  # one process: nothing to sync
    same, note = sync_batchnorm(model, torch.device("cpu"), two, enabled=True)
    assert isinstance(model[1], nn.BatchNorm3d) and note is not None and "CUDA devices only" in note
    same, note = sync_batchnorm(model, torch.device("cuda", 0), two, enabled=False)
    assert note is None and isinstance(model[1], nn.BatchNorm3d)
    same, note = sync_batchnorm(model, torch.device("cuda", 0), two, enabled=True)  # conversion needs no GPU
    assert isinstance(model[1], nn.SyncBatchNorm) and note is not None and "3 BatchNorm layers" in note


def test_a_lost_rank_is_named_by_the_ranks_that_answer_the_roll_call(monkeypatch: pytest.MonkeyPatch) -> None:
    store = torch.distributed.HashStore()
    store.set("radiossl/alive/g1/2", "alive")  # rank 2 answered; rank 1 never will
    store.set("radiossl/alive/g0/1", "alive")  # an earlier group's rank 1: does not count
    monkeypatch.setattr(distributed, "ROLL_CALL_S", 0.3)
    monkeypatch.setattr(distributed, "_default_store", lambda: store)
    info = DistInfo(world_size=3, rank=0, hosts=("node-a", "node-b", "node-a"), timeout_s=60.0, group_id="g1")
    gloo = RuntimeError("[/x/third_party/gloo/transport/pair.cc:553] Connection closed by peer [10.0.0.2]:4. Y")
    assert distributed.is_communication_failure(gloo) and not distributed.is_communication_failure(ValueError("x"))
    error = distributed.lost_contact_error(gloo, info, "at epoch 2 (batch 0)")
    assert str(error).startswith("lost contact with rank 1 (host node-b) at epoch 2 (batch 0): stopped without")
    assert "runtime.dist_timeout_s=60 s" in str(error)
    assert str(error).endswith("[Connection closed by peer [10.0.0.2]:4]")

    store.set("radiossl/alive/g1/1", "alive")  # everyone answers: nobody is lost, a rank was too slow
    assert "although every rank is still running" in str(distributed.lost_contact_error(gloo, info, "here"))

    monkeypatch.setattr(distributed, "_default_store", lambda: None)  # the store is gone with its node
    assert "which one could not be told" in str(distributed.lost_contact_error(gloo, info, "here"))
    two = DistInfo(world_size=2, rank=1, hosts=("node-a", "node-b"))  # two ranks: no need to ask
    assert str(distributed.lost_contact_error(gloo, two, "here")).startswith("lost contact with rank 0 (host node-a)")


def test_communicating_turns_only_backend_errors_into_a_lost_contact_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(distributed, "_default_store", lambda: None)
    two = DistInfo(world_size=2, rank=0)
    lost = pytest.raises(TrainingError, match=r"^lost contact with rank 1 while testing")
    with lost, distributed.communicating(two, "while testing"):
        raise torch.distributed.DistNetworkError("Connection reset by peer")
    with pytest.raises(RuntimeError, match="CUDA out of memory"), distributed.communicating(two, "while testing"):
        raise RuntimeError("CUDA out of memory")


def test_a_restartable_job_over_torchruns_shared_store_gets_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCHELASTIC_MAX_RESTARTS", "2")
    monkeypatch.setenv("TORCHELASTIC_USE_AGENT_STORE", "True")
    note = distributed.shared_store_restart_note()
    assert note is not None and "TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1" in note and "--max-restarts=2" in note
    monkeypatch.setenv("TORCHELASTIC_USE_AGENT_STORE", "False")  # what that variable makes torchrun set
    assert distributed.shared_store_restart_note() is None
    monkeypatch.setenv("TORCHELASTIC_USE_AGENT_STORE", "True")
    monkeypatch.setenv("TORCHELASTIC_MAX_RESTARTS", "0")
    assert distributed.shared_store_restart_note() is None
