"""Each command's options reach the config fields they are declared for, and only when given.

Every option of a stage command either sets a config field (its entry in the command's ``*_FIELDS``
mapping) or is read by the command itself (``HANDLED``); an option in neither would be ignored.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from radiossl.cli import app
from radiossl.commands.demo import DEMO_FIELDS
from radiossl.commands.evaluate import EVALUATE_FIELDS
from radiossl.commands.finetune import FINETUNE_FIELDS
from radiossl.commands.kmeans import FIT_FIELDS, PREDICT_FIELDS
from radiossl.commands.preprocess import PREPROCESS_FIELDS
from radiossl.commands.pretrain import PRETRAIN_FIELDS
from radiossl.commands.sweep import SWEEP_FIELDS

runner = CliRunner()

# command words -> (its option -> field mapping, the options the command reads itself, the function it calls)
COMMANDS: dict[tuple[str, ...], tuple[dict[str, str], set[str], str]] = {
    ("pretrain",): (
        PRETRAIN_FIELDS,
        {"method", "resume", "extend_epochs", "config", "overrides"},
        "radiossl.pretext.pretrain.pretrain",
    ),
    ("finetune",): (
        FINETUNE_FIELDS,
        {"task", "resume", "extend_epochs", "config", "overrides"},
        "radiossl.downstream.finetune.finetune",
    ),
    ("evaluate",): (
        EVALUATE_FIELDS,
        {"task", "config", "overrides", "shard", "merge_only"},
        "radiossl.downstream.evaluate.evaluate",
    ),
    ("kmeans", "fit"): (
        FIT_FIELDS,
        {"config", "overrides", "shard", "merge_only"},
        "radiossl.clustering.fit.kmeans_fit",
    ),
    ("kmeans", "predict"): (
        PREDICT_FIELDS,
        {"config", "overrides", "shard", "merge_only"},
        "radiossl.clustering.predict.kmeans_predict",
    ),
    ("sweep",): (SWEEP_FIELDS, {"task", "config", "overrides", "shard"}, "radiossl.sweep.run.run_sweep"),
    ("preprocess",): (PREPROCESS_FIELDS, {"config", "overrides", "merge_only"}, "radiossl.data.preprocess.preprocess"),
    ("demo",): (DEMO_FIELDS, {"config", "overrides"}, "radiossl.demo.run_demo"),
}


class CapturedConfigError(Exception):
    """Raised by the stand-in of the library function: carries the config the command built."""

    def __init__(self, config: Any) -> None:
        super().__init__("captured")
        self.config = config


def capture(monkeypatch: pytest.MonkeyPatch, target: str) -> None:
    def stand_in(config: Any, *args: Any, **kwargs: Any) -> None:
        raise CapturedConfigError(config)

    module, name = target.rsplit(".", 1)
    monkeypatch.setattr(importlib.import_module(module), name, stand_in)  # radiossl.demo is also a function


def invoke(monkeypatch: pytest.MonkeyPatch, words: tuple[str, ...], args: list[str]) -> Any:
    """The resolved config the command passes to the library."""
    capture(monkeypatch, COMMANDS[words][2])
    result = runner.invoke(app, [*words, *args])
    assert isinstance(result.exception, CapturedConfigError), result.output
    return result.exception.config


def value(config: Any, dotted: str) -> Any:
    for name in dotted.split("."):
        config = config[name] if isinstance(config, dict) else getattr(config, name)
    return config


@pytest.mark.parametrize("words", list(COMMANDS), ids=" ".join)
def test_every_option_sets_a_field_or_is_read_by_the_command(words: tuple[str, ...]) -> None:
    fields, handled, _ = COMMANDS[words]
    command = typer.main.get_command(app)
    for word in words:
        command = command.commands[word]  # type: ignore[attr-defined]
    names = {param.name for param in command.params}
    assert not names - set(fields) - handled, "options that would be ignored"
    assert not set(fields) - names and not handled - names, "entries for options that do not exist"


def test_pretrain_options_reach_their_fields(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    args = ["--method", "patch-cluster", "--data", str(tmp_path / "proc"), "--out", str(tmp_path / "runs")]
    args += ["--epochs", "3", "--batch-size", "2", "--lr", "0.5", "--vis", "--seed", "4", "--device", "cpu"]
    args += ["--workers", "1", "--amp", "bf16", "--width", "0.5", "--tensorboard", "--verbose"]
    config = invoke(monkeypatch, ("pretrain",), args)
    expected = {
        "data.root": tmp_path / "proc",
        "out": tmp_path / "runs",
        "optim.epochs": 3,
        "optim.batch_size": 2,
        "optim.lr": 0.5,
        "logging.vis": True,
        "runtime.seed": 4,
        "runtime.device": "cpu",
        "data.workers": 1,
        "runtime.amp": "bf16",
        "model.width": 0.5,
        "logging.tensorboard": True,
        "logging.verbose": True,
    }
    assert {field: value(config, field) for field in expected} == expected


def test_finetune_options_reach_their_fields(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    args = ["--task", "brats", "--data", str(tmp_path / "raw"), "--out", str(tmp_path / "runs")]
    args += ["--weights", str(tmp_path / "w.pt"), "--transfer", "all", "--train", "decoder", "--ratio", "0.5"]
    args += ["--epochs", "2", "--batch-size", "1", "--lr", "0.1", "--width", "0.25", "--no-vis", "--amp", "none"]
    args += ["--allow-unsafe-pickle", "--seed", "1", "--device", "cpu", "--workers", "0", "--verbose"]
    config = invoke(monkeypatch, ("finetune",), args)
    expected = {
        "data.root": tmp_path / "raw",
        "out": tmp_path / "runs",
        "weights": tmp_path / "w.pt",
        "transfer": "all",
        "train": "decoder",
        "data.ratio": 0.5,
        "optim.epochs": 2,
        "optim.batch_size": 1,
        "optim.lr": 0.1,
        "model.width": 0.25,
        "logging.vis": False,
        "runtime.amp": "none",
        "allow_unsafe_pickle": True,
        "runtime.seed": 1,
        "runtime.device": "cpu",
        "data.workers": 0,
        "logging.verbose": True,
    }
    assert {field: value(config, field) for field in expected} == expected


def test_evaluate_options_reach_their_fields(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    args = ["--task", "brats", "--data", str(tmp_path / "raw"), "--weights", str(tmp_path / "w.pt")]
    args += ["--out", str(tmp_path / "eval"), "--split", "val", "--protocol", "thesis-crops", "--save-predictions"]
    args += ["--tta-flips", "--amp", "none", "--allow-unsafe-pickle", "--seed", "2", "--device", "cpu"]
    config = invoke(monkeypatch, ("evaluate",), [*args, "--workers", "1"])
    expected = {
        "data.root": tmp_path / "raw",
        "weights": tmp_path / "w.pt",
        "out": tmp_path / "eval",
        "split": "val",
        "protocol": "thesis-crops",
        "save_predictions": True,
        "tta_flips": True,
        "runtime.amp": "none",
        "allow_unsafe_pickle": True,
        "runtime.seed": 2,
        "runtime.device": "cpu",
        "data.workers": 1,
    }
    assert {field: value(config, field) for field in expected} == expected


def test_kmeans_options_reach_their_fields(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    features = ["--extractor", "dino-vits16", "--upsampler", "jbu", "--weights", str(tmp_path / "dino.pth")]
    features += ["--upsampler-weights", str(tmp_path / "jbu.ckpt")]
    runtime = ["--seed", "3", "--device", "cpu", "--workers", "2"]
    args = ["--data", str(tmp_path / "proc"), "--k", "4", "--out", str(tmp_path / "c.npy"), "--voxels-per-crop", "8"]
    fit = invoke(monkeypatch, ("kmeans", "fit"), [*args, "--gpu", *features, *runtime])
    expected: dict[str, Any] = {
        "data.root": tmp_path / "proc",
        "kmeans.k": 4,
        "out": tmp_path / "c.npy",
        "sampling.voxels_per_crop": 8,
        "kmeans.gpu": True,
        "features.extractor": "dino-vits16",
        "features.upsampler": "jbu",
        "features.extractor_options.weights": str(tmp_path / "dino.pth"),
        "features.upsampler_options.weights": str(tmp_path / "jbu.ckpt"),
        "runtime.seed": 3,
        "runtime.device": "cpu",
        "runtime.workers": 2,
    }
    assert {field: value(fit, field) for field in expected} == expected
    args = ["--data", str(tmp_path / "proc"), "--centroids", str(tmp_path / "c.npy"), "--tag", "t", "--split", "val"]
    predict = invoke(monkeypatch, ("kmeans", "predict"), [*args, "--overwrite", *features, *runtime])
    expected = {
        "data.root": tmp_path / "proc",
        "data.split": "val",
        "centroids": tmp_path / "c.npy",
        "tag": "t",
        "overwrite": True,
        "features.extractor": "dino-vits16",
        "features.upsampler_options.weights": str(tmp_path / "jbu.ckpt"),
        "runtime.workers": 2,
    }
    assert {field: value(predict, field) for field in expected} == expected
    bare = invoke(monkeypatch, ("kmeans", "predict"), ["--data", str(tmp_path / "proc")])
    assert bare.features is None  # no feature option given: the ones recorded with the centroids


def test_preprocess_and_demo_options_reach_their_fields(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    args = ["--dataset", "brats18", "--data", str(tmp_path / "raw"), "--out", str(tmp_path / "proc")]
    args += ["--views", "pcrlv2", "--pairs", "3", "--shard", "1/2", "--multichannel", "--workers", "2", "--seed", "5"]
    pre = invoke(monkeypatch, ("preprocess",), args)
    assert (pre.dataset, pre.data, pre.out, pre.view, pre.pairs) == (
        "brats18",
        tmp_path / "raw",
        tmp_path / "proc",
        "pcrlv2",
        3,
    )
    assert (pre.shard, pre.multichannel, pre.workers, pre.seed) == ("1/2", True, 2, 5)
    args = ["--out", str(tmp_path / "demo"), "--method", "pcrlv2", "--cases", "7", "--width", "0.25"]
    args += ["--pretrain-epochs", "1", "--finetune-epochs", "2", "--device", "cpu", "--seed", "9"]
    demo = invoke(monkeypatch, ("demo",), args)
    assert (demo.out, demo.method, demo.cases, demo.width) == (tmp_path / "demo", "pcrlv2", 7, 0.25)
    assert (demo.pretrain_epochs, demo.finetune_epochs, demo.device, demo.seed) == (1, 2, "cpu", 9)


def test_options_left_at_their_default_do_not_override_the_config_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Precedence: defaults < file < --set < options given; an option's default is not 'given'."""
    demo_file = tmp_path / "demo.yaml"
    demo_file.write_text(f"method: pcrlv2\nout: {tmp_path / 'from-file'}\n")
    demo = invoke(monkeypatch, ("demo",), ["--config", str(demo_file)])
    assert demo.method == "pcrlv2" and demo.out == tmp_path / "from-file"  # --method/--out have defaults
    predict_file = tmp_path / "predict.yaml"
    predict_file.write_text("overwrite: true\ntag: from-file\n")
    predict = invoke(monkeypatch, ("kmeans", "predict"), ["--config", str(predict_file), "--set", "tag=from-set"])
    assert predict.overwrite is True and predict.tag == "from-set"
    predict = invoke(monkeypatch, ("kmeans", "predict"), ["--config", str(predict_file), "--tag", "given"])
    assert predict.tag == "given"
