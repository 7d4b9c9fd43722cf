from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from radiossl.utils.seeding import rng_for, seed_everything


@given(st.integers(0, 2**32), st.text(max_size=8), st.integers(0, 1000))
def test_streams_depend_only_on_keys(seed: int, name: str, index: int) -> None:
    a = rng_for(seed, name, index).random(4)
    b = rng_for(seed, name, index).random(4)
    assert np.array_equal(a, b)


def test_different_keys_give_different_streams() -> None:
    draws = {tuple(rng_for(1, "case", i).integers(0, 2**31, 2)) for i in range(50)}
    assert len(draws) == 50
    assert not np.array_equal(rng_for(1, "a").random(3), rng_for(2, "a").random(3))


def test_seed_everything_makes_torch_repeatable() -> None:
    import torch

    seed_everything(5)
    first = torch.rand(3)
    seed_everything(5)
    assert torch.equal(first, torch.rand(3))
