"""Distributed helpers that work without a process group: shards, exact metric reduction, failures."""

from __future__ import annotations

import math

import pytest

from radiossl.engine.distributed import (
    DistInfo,
    ShardSampler,
    combine_weighted,
    make_eval_sampler,
    raise_if_any_failed,
    reduce_validation,
    step_status,
)
from radiossl.errors import DataError


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
