"""The ModelsGenesis transform benchmark runs end to end on tiny cubes and reports which shuffle path it timed."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from radiossl.transforms import _compiled as compiled


@pytest.mark.parametrize("numpy_only", [False, True])
def test_benchmark_reports_every_row_and_its_shuffle_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, numpy_only: bool
) -> None:
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "transforms.py"
    spec = importlib.util.spec_from_file_location("radiossl_benchmark_transforms_smoke", path)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    monkeypatch.setattr(compiled, "kernels", compiled.kernels)  # restored afterwards
    out = tmp_path / "bench.json"
    argv = ["--size", "32", "32", "16", "--batch", "2", "--repeats", "1", "--loop-cubes", "1"]
    argv += ["--pipeline-cubes", "2", "--threads", "1", "--json", str(out)]
    threads = torch.get_num_threads()
    try:
        assert bench.main(argv + (["--no-numba"] if numpy_only else [])) == 0
    finally:
        torch.set_num_threads(threads)
    report = json.loads(out.read_text())
    names = [row["transform"] for row in report["results"]]
    assert names[1] == "local shuffle (always)" and names[-2:] == ["published pipeline", "pipeline, step by step"]
    assert all(row["batched_ms_per_cube"] > 0 and row["speedup_vs_loop"] > 0 for row in report["results"])
    if numpy_only:
        assert report["meta"]["local_shuffle"] == "NumPy path"
    elif compiled.kernels() is not None:
        assert report["meta"]["local_shuffle"].startswith("Numba ")
