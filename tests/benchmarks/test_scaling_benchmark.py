"""benchmarks/scaling.py: samples/s from the training loops of a run, medians per world size, one real run."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "scaling.py"


@pytest.fixture(scope="module")
def scaling() -> Iterator[ModuleType]:
    path, modules = list(sys.path), set(sys.modules)
    spec = importlib.util.spec_from_file_location("radiossl_scaling_under_test", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    sys.path[:] = path
    yield module
    for name in set(sys.modules) - modules:
        if name in (spec.name, "host_info", "phantom_data"):
            del sys.modules[name]


def _metrics(path: Path, lines: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_throughput_counts_the_training_loops_after_the_first_epoch(scaling: ModuleType, tmp_path: Path) -> None:
    metrics = _metrics(
        tmp_path / "metrics.jsonl",
        [
            {"type": "step", "step": 2, "time": 1.0},
            {"type": "epoch", "epoch": 1, "step": 4, "epoch_time": 9.0, "time": 10.0},  # warm-up: not counted
            {"type": "epoch", "epoch": 2, "step": 8, "epoch_time": 2.0, "time": 13.0},
            {"type": "epoch", "epoch": 3, "step": 12, "epoch_time": 2.0, "time": 16.0},
        ],
    )
    assert scaling.training_throughput(metrics, global_batch=4) == (32, 4.0)  # 2 epochs x 4 steps x 4 samples
    one = _metrics(tmp_path / "one.jsonl", [{"type": "epoch", "epoch": 1, "step": 4, "epoch_time": 1.0}])
    with pytest.raises(ValueError, match="1 epoch line"):
        scaling.training_throughput(one, global_batch=4)


def test_the_table_gives_medians_speedup_and_efficiency(scaling: ModuleType) -> None:
    runs = [scaling.Run(w, r, 100, s) for w, r, s in [(1, 0, 10.0), (1, 1, 20.0), (1, 2, 12.5), (2, 0, 6.25)]]
    rows = scaling.summarise(runs, [1, 2])
    assert rows[0] == {"world_size": 1, "median": 8.0, "min": 5.0, "max": 10.0, "speedup": 1.0, "efficiency": 1.0}
    assert rows[1]["speedup"] == pytest.approx(2.0) and rows[1]["efficiency"] == pytest.approx(1.0)
    table = scaling.markdown_table(rows, threads=1, global_batch=4).splitlines()
    assert table[2] == "| 1 | 1 | 4 | 8.00 | 5.00–10.00 | 1.00× | 1.00 |"
    assert table[3].startswith("| 2 | 1 | 2 | 16.00 |")


def test_a_global_batch_that_does_not_split_is_a_usage_error(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--world-sizes", "1", "3", "--global-batch", "4", "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert done.returncode == 2 and "--global-batch 4 must split evenly over 3 processes" in done.stderr
    assert not any(tmp_path.iterdir())


@pytest.mark.ddp
@pytest.mark.slow  # two torchrun launches and a phantom folder: 18-54 s measured on the shared 2-core machine
def test_one_and_two_processes_train_the_same_samples(tmp_path: Path) -> None:
    report = tmp_path / "scaling.json"
    command = [sys.executable, str(SCRIPT), "--repeats", "1", "--epochs", "2", "--global-batch", "2"]
    command += [
        "--pairs",
        "1",
        "--shape",
        "48",
        "48",
        "32",
        "--crop",
        "16",
        "16",
        "16",
        "--workdir",
        str(tmp_path / "w"),
        "--json",
        str(report),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(report.read_text())
    runs = result["runs"]
    assert [r["world_size"] for r in runs] == [1, 2]
    assert runs[0]["samples"] == runs[1]["samples"] > 0  # strong scaling: the same work at every world size
    assert [row["world_size"] for row in result["table"]] == [1, 2]
    assert "| processes | threads each |" in done.stdout and result["cpu"] in done.stdout
