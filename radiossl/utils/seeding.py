"""Seeding: one place that makes runs repeatable.

:func:`rng_for` derives an independent NumPy random stream from a base seed and any keys (case id,
pair index, epoch, ...). Because the stream depends only on the keys, results do not depend on how
work is split between worker processes or machines.

Example:
    >>> a = rng_for(1, "case", "Brats18_X", 3).integers(0, 100, 3)
    >>> b = rng_for(1, "case", "Brats18_X", 3).integers(0, 100, 3)
    >>> bool((a == b).all())
    True
"""

from __future__ import annotations

import hashlib
import os
import random

import numpy as np


def _key_to_int(key: object) -> int:
    if isinstance(key, (int, np.integer)) and int(key) >= 0:
        return int(key)
    digest = hashlib.sha256(repr(key).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little")


def rng_for(seed: int, *keys: object) -> np.random.Generator:
    """Return a NumPy generator determined only by ``seed`` and ``keys``."""
    entropy = [_key_to_int(seed), *(_key_to_int(k) for k in keys)]
    return np.random.default_rng(np.random.SeedSequence(entropy))


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch (if imported); optionally request deterministic kernels."""
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    import torch

    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
