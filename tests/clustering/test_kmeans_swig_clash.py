"""faiss k-means works whatever other SWIG module (SimpleITK) is imported after faiss."""

from __future__ import annotations

import subprocess
import sys


def test_fit_after_importing_faiss_then_simpleitk() -> None:
    code = (
        "import numpy as np, faiss, SimpleITK\n"
        "from radiossl.clustering.faiss_kmeans import fit_kmeans\n"
        "x = np.random.default_rng(0).random((200, 4), dtype=np.float32)\n"
        "fit = fit_kmeans(x, 3, seed=1)\n"
        "assert fit.centroids.shape == (3, 4) and len(fit.objective) > 0\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
