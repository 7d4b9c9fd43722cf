"""NT-Xent under torchrun (2 gloo processes) equals NT-Xent on the concatenated batch in one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from radiossl.losses.nt_xent import nt_xent_loss

pytestmark = pytest.mark.ddp

SCRIPT = Path(__file__).with_name("nt_xent_ddp_script.py")


def _one_process_reference() -> tuple[float, list[torch.Tensor]]:
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        from nt_xent_ddp_script import TEMPERATURE, inputs_and_projection
    finally:
        sys.path.remove(str(SCRIPT.parent))
    x1, x2, projection = inputs_and_projection()
    loss = nt_xent_loss(projection(x1), projection(x2), TEMPERATURE)
    loss.backward()
    return float(loss.detach()), [p.grad.clone() for p in projection.parameters() if p.grad is not None]


def test_two_ranks_give_the_loss_and_gradients_of_the_whole_batch(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[2])}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone"]
    done = subprocess.run(
        [*command, str(SCRIPT), str(tmp_path)], capture_output=True, text=True, timeout=120, env=env, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "rank0.json").read_text())
    loss, grads = _one_process_reference()

    gathered = results["gathered"]
    assert gathered["loss"] == pytest.approx(loss, abs=1e-6)
    for got, want in zip(gathered["grads"], grads, strict=True):
        assert torch.allclose(torch.tensor(got), want, atol=1e-6)

    # without the gather each rank sees only its own negatives: neither the loss nor the gradients match
    local = results["local"]
    assert abs(local["loss"] - loss) > 1e-3
    assert not all(torch.allclose(torch.tensor(g), w, atol=1e-4) for g, w in zip(local["grads"], grads, strict=True))
