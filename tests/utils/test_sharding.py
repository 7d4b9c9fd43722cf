"""The ``--shard I/N`` notation: counted from 1, a partition of the items, and Slurm job arrays."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from radiossl.utils.sharding import Shard, ShardError, check_shard, parse_shard


def _slurm(task: int, first: int, last: int | None = None, count: int | None = None, step: int | None = None):
    env = {"SLURM_ARRAY_TASK_ID": str(task), "SLURM_ARRAY_TASK_MIN": str(first)}
    for name, value in (("MAX", last), ("COUNT", count), ("STEP", step)):
        if value is not None:
            env[f"SLURM_ARRAY_TASK_{name}"] = str(value)
    return env


@pytest.mark.parametrize("count", [1, 2, 3, 5])
def test_shards_one_to_n_partition_the_items_in_the_old_order(count: int) -> None:
    items = list(range(11))
    parts = [parse_shard(f"{index}/{count}").select(items) for index in range(1, count + 1)]
    assert sorted(item for part in parts for item in part) == items
    for index, part in enumerate(parts, start=1):
        assert part == [i for i in items if i % count == index - 1]  # I/N takes index % N == I - 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0/4", "0/4: shards count from 1; use 1/4 … 4/4"),
        ("5/4", "5/4: there are only 4 shards; use 1/4 … 4/4"),
        ("2/1", "2/1: there is only 1 shard; use 1/1"),
        ("1/0", "1/0: the number of shards N must be at least 1"),
        ("2", "2: expected I/N"),
        ("a/b", "a/b: expected I/N"),
        ("-1/2", "-1/2: expected I/N"),
    ],
)
def test_values_that_name_no_shard_say_which_are_valid(text: str, message: str) -> None:
    with pytest.raises(ShardError, match="^" + message.replace("(", r"\(")):
        parse_shard(text)
    with pytest.raises(ShardError):
        check_shard(text)


def test_str_and_takes() -> None:
    shard = Shard(2, 4)
    assert str(shard) == "2/4"
    assert [p for p in range(10) if shard.takes(p)] == [1, 5, 9]


@pytest.mark.parametrize(
    ("tasks", "env"),
    [
        ([0, 1, 2, 3], lambda t: _slurm(t, 0, last=3, count=4, step=1)),  # --array=0-3
        ([1, 2, 3, 4], lambda t: _slurm(t, 1, last=4, count=4, step=1)),  # --array=1-4
        ([0, 4, 8, 12], lambda t: _slurm(t, 0, last=12, count=4, step=4)),  # --array=0-12:4
        ([5, 6, 7, 8], lambda t: _slurm(t, 5, last=8)),  # no COUNT nor STEP: derived from MAX
        ([1, 2, 3, 4], lambda t: _slurm(t, 1, count=4)),  # no MAX
    ],
)
def test_slurm_array_tasks_map_to_shards_one_to_n(tasks: list[int], env) -> None:
    assert [parse_shard("slurm", env(t)) for t in tasks] == [Shard(i, 4) for i in (1, 2, 3, 4)]
    assert parse_shard(" SLURM ", env(tasks[0])) == Shard(1, 4)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_MIN, SLURM_ARRAY_TASK_COUNT or SLURM_ARRAY_TASK_MAX not set"),
        ({"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "4"}, "SLURM_ARRAY_TASK_MIN not set"),
        ({"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_MIN": "0"}, "SLURM_ARRAY_TASK_COUNT or"),
        ({**_slurm(0, 0, count=4), "SLURM_ARRAY_TASK_ID": "x"}, "is not an integer"),
        (_slurm(7, 1, last=7, count=3, step=1), "evenly spaced"),  # --array=1,3,7: not a range
        (_slurm(2, 0, last=12, count=4, step=4), "evenly spaced"),  # task id off the step
        (_slurm(5, 1, last=4, count=4), "evenly spaced"),  # task id beyond the array
        (_slurm(1, 1, count=4, step=0), "STEP=0"),
    ],
)
def test_slurm_without_a_usable_array_is_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ShardError, match=message):
        parse_shard("slurm", env)
    check_shard("slurm")  # the syntax is fine; the environment is read only when the run starts


def test_pick_takes_a_shard_of_a_stream_lazily() -> None:
    drawn: list[int] = []

    def stream() -> Iterator[int]:
        for item in itertools.count():  # endless: a shard of it can only be taken lazily
            drawn.append(item)
            yield item

    picked = Shard(2, 3).pick(stream())
    assert list(itertools.islice(picked, 3)) == [1, 4, 7]
    assert drawn == list(range(8))  # nothing read ahead of the last item taken
    assert Shard(2, 3).select(range(10)) == list(Shard(2, 3).pick(iter(range(10))))
