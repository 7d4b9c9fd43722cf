"""Loads the Numba kernels of the CPU hot loops (:mod:`radiossl.transforms._kernels`) when it can.

Numba is optional (``pip install "radiossl[fast]"``). Without it, or with ``NUMBA_DISABLE_JIT`` set
(the kernels would then run as slow Python), :func:`kernels` returns ``None`` and the transforms
take their NumPy paths. Numba is imported on the first call only, so importing radiossl stays fast.

Example:
    >>> module = kernels()
    >>> module is None or hasattr(module, "shuffle_blocks")
    True
"""

from __future__ import annotations

import logging
from functools import lru_cache
from types import ModuleType

logger = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def kernels() -> ModuleType | None:
    """The kernel module, or ``None`` when Numba is not installed, cannot be loaded or its JIT is disabled."""
    try:
        import numba

        if numba.config.DISABLE_JIT:  # type: ignore[attr-defined]
            raise ImportError("NUMBA_DISABLE_JIT is set")
        from radiossl.transforms import _kernels
    except (ImportError, RuntimeError, OSError) as error:  # RuntimeError/OSError: Numba found no cache folder
        logger.info(
            "ModelsGenesis transforms on CPU take their NumPy paths (%s); "
            "pip install 'radiossl[fast]' makes local shuffling about 2x faster",
            error,
        )
        return None
    return _kernels
