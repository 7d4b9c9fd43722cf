"""mae, simclr and voco on phantoms, CPU, tiny width: they train, the loss falls, resume is exact, DDP runs."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from radiossl.pretext.base import get_method, load_pretrain_config
from radiossl.pretext.pretrain import pretrain

CROP = (32, 32, 16)
METHODS = {
    # method: (view, overrides that make it tiny)
    "mae": ("genesis", ["method.block_size=8"]),
    "simclr": ("cluster", ["method.hidden_dim=64", "method.out_dim=32", "optim.batch_size=4"]),
    "voco": ("genesis", ["method.hidden_dim=64", "method.out_dim=32", "method.crops=2"]),
}


@pytest.fixture(scope="module")
def proc(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One phantom LiTS dataset preprocessed into the genesis and the cluster view."""
    from radiossl.data.phantoms import synthesize
    from radiossl.data.preprocess import PreprocessConfig, preprocess

    base = tmp_path_factory.mktemp("new_methods")
    synthesize("lits", base / "raw", cases=3, shape=(48, 48, 32), seed=0)
    folders = {}
    for view in ("genesis", "cluster"):
        settings = PreprocessConfig(
            dataset="lits17",
            data=base / "raw",
            out=base / view,
            view=view,
            crop_size=CROP,
            candidate_sizes=[CROP, (40, 40, 16)] if view == "cluster" else None,
            pairs=2,
            rejection={"max_foreground": None, "max_background": None},
            workers=0,
            progress=False,
        )
        assert preprocess(settings).failed == 0
        folders[view] = base / view
    return folders


def _config(method: str, proc: dict[str, Path], out: Path, *overrides: str) -> object:
    view, tiny = METHODS[method]
    return load_pretrain_config(
        method,
        overrides=[
            f"data.root={proc[view]}",
            f"out={out}",
            f"data.crop_size=[{CROP[0]}, {CROP[1]}, {CROP[2]}]",
            "data.workers=0",
            "model.width=0.125",
            "optim.batch_size=2",
            "optim.epochs=2",
            "logging.progress=false",
            *tiny,
            *overrides,
        ],
    )


@pytest.mark.parametrize("method", sorted(METHODS))
def test_training_resumes_exactly_and_finetuning_reads_the_checkpoint(
    method: str, proc: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from radiossl.models import UNet3D, build_model
    from radiossl.models.loading import load_pretrained

    straight = pretrain(_config(method, proc, tmp_path / "straight", "logging.vis=true"))  # type: ignore[arg-type]
    assert straight.epochs_completed == 2 and all(math.isfinite(h["loss"]) for h in straight.history)
    state = torch.load(straight.final_checkpoint, weights_only=True)
    build_model(state["model_spec"]).load_state_dict(state["model"])
    report = load_pretrained(UNet3D(width=0.125, norm="instance"), straight.final_checkpoint, transfer="encoder")
    assert report.loaded > 0 and not report.shape_mismatched
    assert (straight.run_dir / "vis").is_dir() == (method == "mae")

    method_class = get_method(method)
    original_step = method_class.training_step

    def crash_in_epoch_two(self, model, batch, context):  # type: ignore[no-untyped-def]
        if context.epoch == 1:
            raise RuntimeError("simulated interruption")
        return original_step(self, model, batch, context)

    config = _config(method, proc, tmp_path / "resumed", "logging.vis=true")
    monkeypatch.setattr(method_class, "training_step", crash_in_epoch_two)
    with pytest.raises(RuntimeError, match="simulated interruption"):
        pretrain(config)  # type: ignore[arg-type]
    monkeypatch.setattr(method_class, "training_step", original_step)
    resumed = pretrain(config, resume="auto")  # type: ignore[arg-type]

    a = torch.load(straight.final_checkpoint, weights_only=True)["model"]
    b = torch.load(resumed.final_checkpoint, weights_only=True)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)
    assert [h["loss"] for h in straight.history] == [h["loss"] for h in resumed.history]


NO_RANDOM_AUGMENTATION = {
    "mae": [],
    "simclr": ["method.flip_prob=0", "method.blur_prob=0", "method.noise_prob=0", "method.gamma_prob=0"],
    "voco": ["method.flip_prob=0"],
}


@pytest.mark.slow
@pytest.mark.parametrize("method", sorted(METHODS))
def test_the_training_loss_falls(method: str, proc: dict[str, Path], tmp_path: Path) -> None:
    # Adam and no random augmentation, so that a dozen small steps show the trend through the sampling noise
    settings = ["optim.epochs=12", "optim.optimizer=adam", "optim.lr=0.001", "optim.grad_clip=null"]
    result = pretrain(_config(method, proc, tmp_path / "runs", *settings, *NO_RANDOM_AUGMENTATION[method]))  # type: ignore[arg-type]
    losses = [h["loss"] for h in result.history]
    assert sum(losses[-3:]) / 3 < 0.8 * sum(losses[:3]) / 3, losses


SCRIPT = Path(__file__).with_name("mae_simclr_voco_ddp_script.py")


@pytest.mark.ddp
@pytest.mark.parametrize("method", sorted(METHODS))
def test_torchrun_two_processes_train_each_method(method: str, proc: dict[str, Path], tmp_path: Path) -> None:
    config = _config(method, proc, tmp_path / "runs", "optim.epochs=1")
    config_file = tmp_path / "config.json"
    config_file.write_text(config.model_dump_json())  # type: ignore[attr-defined]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[2])}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone", str(SCRIPT)]
    done = subprocess.run(
        [*command, method, str(config_file), str(tmp_path / "report")],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    reports = [json.loads((tmp_path / "report" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert reports[0]["run_dir"] == reports[1]["run_dir"]
    assert reports[0]["loss"] == reports[1]["loss"] and math.isfinite(reports[0]["loss"])
    assert (Path(reports[0]["run_dir"]) / "checkpoint_final.pt").is_file()
    # the collapse monitor gathered both ranks' rows: statistics in rank 0's metrics
    epochs = [json.loads(line) for line in (Path(reports[0]["run_dir"]) / "metrics.jsonl").read_text().splitlines()]
    assert all("emb_rank" in line for line in epochs if line["type"] == "epoch")
