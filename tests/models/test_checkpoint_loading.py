"""read_checkpoint / load_pretrained / export_encoder on every supported layout, built from the specs."""

from __future__ import annotations

import argparse
import os
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from radiossl.errors import CheckpointError, ConfigError
from radiossl.models import (
    PatchClusterNet,
    UNet3D,
    clean_state_dict,
    export_encoder,
    load_pretrained,
    model_from_checkpoint,
    model_spec,
    read_checkpoint,
)
from radiossl.models.checkpoint import FORMAT_VERSION, RawCheckpoint, infer_model_spec
from radiossl.models.loading import LoadReport, adapt_input_channels

TINY = 0.125
ENCODER_BLOCKS = ("down_tr64", "down_tr128", "down_tr256", "down_tr512")
Randomise = Callable[..., nn.Module]
Options = Callable[..., argparse.Namespace]


def pcrlv2_net() -> UNet3D:
    return UNet3D(width=TINY, skip_connections=False, norm="batch", pretrain_heads=True)


def genesis_net(**kwargs: object) -> UNet3D:
    return UNet3D(width=TINY, skip_connections=True, norm="genesis", **kwargs)  # type: ignore[arg-type]


def sgd_state(model: nn.Module) -> dict:  # type: ignore[type-arg]
    return torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9).state_dict()


def outputs_equal(a: nn.Module, b: nn.Module, x: torch.Tensor) -> bool:
    a.eval()
    b.eval()
    with torch.no_grad():
        return torch.allclose(a(x), b(x), atol=1e-6)


def test_models_genesis_file(tmp_path: Path, randomise: Randomise, volume: torch.Tensor) -> None:
    source = randomise(genesis_net())
    stored = {f"module.{k}": v for k, v in source.state_dict().items()}  # saved from DataParallel
    path = tmp_path / "Genesis_Chest_CT.pt"
    torch.save({"epoch": 12, "state_dict": stored, "optimizer_state_dict": sgd_state(source)}, path)

    raw = read_checkpoint(path)
    assert raw.family == "models-genesis"
    assert raw.meta["epoch"] == 12 and raw.meta["optimizer"]["momentum"] == 0.9
    assert all(k.startswith("module.") for k in raw.state_dict)
    reference = genesis_net()
    reference.load_state_dict(clean_state_dict(raw.state_dict), strict=True)

    target = genesis_net()
    report = load_pretrained(target, path, transfer="all", strict=True)
    assert len(report.matched) == 106 and not report.missing and not report.unexpected
    assert outputs_equal(target, reference, volume) and outputs_equal(target, source, volume)
    assert torch.equal(target.down_tr64.ops[0].bn1.running_mean, source.down_tr64.ops[0].bn1.running_mean)


def test_genesis_without_num_batches_tracked_loads_strictly(tmp_path: Path, randomise: Randomise) -> None:
    source = randomise(genesis_net())
    stored = {k: v for k, v in source.state_dict().items() if not k.endswith("num_batches_tracked")}
    report = load_pretrained(genesis_net(), stored, transfer="all", strict=True)
    assert len(report.missing) == 14 and all(k.endswith("num_batches_tracked") for k in report.missing)
    assert not report.problems


PCRLV2_ARGV = ["--model", "pcrlv2", "--b", "32", "--epochs", "240", "--output", "/runs", "--gpus", "0,1"]


def _save_pcrlv2(path: Path, model: nn.Module, options: Options) -> None:
    """The PCRLv2 release layout (baselines spec B5): ``opt`` is the run's argparse Namespace."""
    opt = options(PCRLV2_ARGV)
    torch.save({"opt": opt, "state_dict": model.state_dict(), "optimizer": sgd_state(model), "epoch": 240}, path)


def test_pcrlv2_release_loads_safely_without_the_flag(
    tmp_path: Path, randomise: Randomise, options: Options, volume: torch.Tensor
) -> None:
    source = randomise(pcrlv2_net())
    path = tmp_path / "simance_multi_crop_luna_pretask_1.0_240.pt"
    _save_pcrlv2(path, source, options)

    raw = read_checkpoint(path)
    assert raw.family == "pcrlv2"
    assert raw.meta["epoch"] == 240 and raw.meta["args"]["lr"] == 1e-3 and raw.meta["args"]["output"] == "/runs"
    assert raw.meta["args"]["momentum"] == 0.9 and raw.meta["args"]["weight"] is None
    assert len(raw.state_dict) == 169
    assert read_checkpoint(path, allow_unsafe=True).meta == raw.meta
    reference = pcrlv2_net()
    reference.load_state_dict(clean_state_dict(raw.state_dict), strict=True)
    target = pcrlv2_net()
    report = load_pretrained(target, path, transfer="all", strict=True)
    assert len(report.matched) == 169
    target.eval()
    reference.eval()
    with torch.no_grad():
        out_t, feats_t, masks_t = target.forward_pretrain(volume)
        out_r, feats_r, masks_r = reference.forward_pretrain(volume)
    assert torch.allclose(out_t, out_r)
    assert all(
        torch.allclose(a, b)
        for pair_t, pair_r in zip(feats_t, feats_r, strict=True)
        for a, b in zip(pair_t, pair_r, strict=True)
    )
    assert all(torch.allclose(a, b) for a, b in zip(masks_t, masks_r, strict=True))


def test_pcrlv2_state_dict_alone_loads_safely(tmp_path: Path, randomise: Randomise, volume: torch.Tensor) -> None:
    source = randomise(pcrlv2_net())
    path = tmp_path / "pcrlv2_weights.pth"
    torch.save(source.state_dict(), path)
    raw = read_checkpoint(path)
    assert raw.family == "state-dict" and raw.meta["architecture"] == "unet3d+heads"
    target = pcrlv2_net()
    load_pretrained(target, path, transfer="all", strict=True)
    assert outputs_equal(target, source, volume)


def test_pcrlv2_encoder_into_groupnorm_skip_model(tmp_path: Path, randomise: Randomise, options: Options) -> None:
    """The thesis fine-tuning transfer: BN encoder -> GN skip U-Net; running stats have nowhere to go."""
    source = randomise(pcrlv2_net())
    path = tmp_path / "pcrlv2.pt"
    _save_pcrlv2(path, source, options)
    target = UNet3D(in_channels=1, out_channels=1, width=TINY, norm="group")
    decoder_before = target.up_tr256.ops[0].conv1.weight.clone()
    report = load_pretrained(target, path, transfer="encoder")
    assert len(report.matched) == 32  # 8 ConvUnits x (conv w, b, norm w, b)
    assert len(report.unexpected) == 24 and all("running" in k or "num_batches" in k for k in report.unexpected)
    assert not report.missing and not report.shape_mismatched
    assert len(report.skipped) == 169 - 56
    assert torch.equal(target.down_tr512.ops[1].bn1.weight, source.down_tr512.ops[1].bn1.weight)
    assert torch.equal(target.up_tr256.ops[0].conv1.weight, decoder_before)
    with pytest.raises(CheckpointError, match="strictly"):
        load_pretrained(UNet3D(width=TINY, norm="group"), path, transfer="encoder", strict=True)
    # The printed table has one row per block and counts the running statistics instead of listing all 24.
    table = report.as_table()
    assert [row[0] for row in table.rows] == [*ENCODER_BLOCKS, "up_tr256", "up_tr128", "up_tr64", "out_tr"]
    for row in table.rows[:4]:  # block, loaded, missing, unexpected, BN stats, shape, skipped
        assert row[1:7] == ("8", "0", "0", "6", "0", "0") and "running statistics" in row[7]
    assert [row[6] for row in table.rows[4:]] == ["37", "37", "37", "2"]
    assert all(row[7] == "outside transfer=encoder" for row in table.rows[4:])


def test_all_transfer_reports_and_skips_shape_mismatches(randomise: Randomise) -> None:
    """PCRLv2 (no skip, 1 output) into a skip U-Net with 3 outputs: first decoder convs and out_tr differ."""
    source = randomise(pcrlv2_net())
    target = UNet3D(out_channels=3, width=TINY, skip_connections=True, norm="batch", pretrain_heads=True)
    out_bias = target.out_tr.final_conv.bias.clone()
    report = load_pretrained(target, source.state_dict(), transfer="all")
    mismatched = {m.key: (m.checkpoint_shape, m.model_shape) for m in report.shape_mismatched}
    assert mismatched == {
        "up_tr256.ops.0.conv1.weight": ((32, 64, 3, 3, 3), (32, 96, 3, 3, 3)),
        "up_tr128.ops.0.conv1.weight": ((16, 32, 3, 3, 3), (16, 48, 3, 3, 3)),
        "up_tr64.ops.0.conv1.weight": ((8, 16, 3, 3, 3), (8, 24, 3, 3, 3)),
        "out_tr.final_conv.weight": ((1, 8, 1, 1, 1), (3, 8, 1, 1, 1)),
        "out_tr.final_conv.bias": ((1,), (3,)),
    }
    assert len(report.matched) == 169 - 5 and not report.missing and not report.unexpected
    assert torch.equal(target.out_tr.final_conv.bias, out_bias)
    assert torch.equal(target.up_tr128.predictor_head[3].weight, source.up_tr128.predictor_head[3].weight)
    with pytest.raises(CheckpointError, match="5 problems"):
        load_pretrained(target, source.state_dict(), transfer="all", strict=True)


def test_one_to_four_channel_adaptation_keeps_the_response(randomise: Randomise) -> None:
    source = randomise(UNet3D(in_channels=1, width=TINY, norm="group"))
    target = UNet3D(in_channels=4, width=TINY, norm="group")
    report = load_pretrained(target, source.state_dict(), transfer="all", strict=True)
    assert [(a.key, a.checkpoint_shape, a.model_shape) for a in report.adapted] == [
        ("down_tr64.ops.0.conv1.weight", (8, 1, 3, 3, 3), (8, 4, 3, 3, 3))
    ]
    x = torch.rand(2, 1, 16, 16, 16)
    with torch.no_grad():
        assert torch.allclose(target(x.repeat(1, 4, 1, 1, 1)), source(x), atol=1e-5)
    assert torch.allclose(target.down_tr64.ops[0].conv1.weight[:, 2:3], source.down_tr64.ops[0].conv1.weight / 4)


def test_four_to_one_channel_adaptation_sums(randomise: Randomise) -> None:
    source = randomise(UNet3D(in_channels=4, width=TINY, norm="group"))
    target = UNet3D(in_channels=1, width=TINY, norm="group")
    load_pretrained(target, source.state_dict(), transfer="all", strict=True)
    x = torch.rand(2, 1, 16, 16, 16)
    with torch.no_grad():
        assert torch.allclose(target(x), source(x.repeat(1, 4, 1, 1, 1)), atol=1e-5)


def test_adaptation_modes(randomise: Randomise) -> None:
    source = randomise(UNet3D(in_channels=1, width=TINY, norm="group"))
    legacy = UNet3D(in_channels=4, width=TINY, norm="group")
    report = load_pretrained(legacy, source.state_dict(), adapt_in_channels="repeat")
    assert "without scaling" in report.adapted[0].how
    assert torch.equal(legacy.down_tr64.ops[0].conv1.weight[:, 3:], source.down_tr64.ops[0].conv1.weight)
    off = load_pretrained(UNet3D(in_channels=4, width=TINY), source.state_dict(), adapt_in_channels=False)
    assert [m.key for m in off.shape_mismatched] == ["down_tr64.ops.0.conv1.weight"] and not off.adapted
    with pytest.raises(ConfigError):
        load_pretrained(legacy, source.state_dict(), adapt_in_channels="mean")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        load_pretrained(legacy, source.state_dict(), transfer="decoder")  # type: ignore[arg-type]
    w = torch.randn(8, 3, 3, 3, 3)
    assert torch.allclose(adapt_input_channels(w, 2).sum(dim=1), w.sum(dim=1), atol=1e-6)


def test_thesis_pretext_and_finetune_files(tmp_path: Path, randomise: Randomise, volume: torch.Tensor) -> None:
    patch = randomise(PatchClusterNet(k=10, width=TINY))
    torch.save({"state_dict": patch.state_dict(), "optimizer": sgd_state(patch), "epoch": 3}, tmp_path / "p.pt")
    raw = read_checkpoint(tmp_path / "p.pt")
    assert raw.family == "thesis-pretext" and raw.meta["architecture"] == "patch-cluster-net"
    target = PatchClusterNet(k=10, width=TINY)
    load_pretrained(target, raw, transfer="all", strict=True)
    target.eval()
    patch.eval()
    with torch.no_grad():
        assert torch.allclose(target(volume)[1], patch(volume)[1])

    pixel = randomise(UNet3D(out_channels=10, width=TINY, skip_connections=False, pretrain_heads=True))
    torch.save({"state_dict": pixel.state_dict(), "optimizer": sgd_state(pixel), "epoch": 1}, tmp_path / "c.pt")
    assert read_checkpoint(tmp_path / "c.pt").family == "thesis-pretext"

    seg = randomise(UNet3D(in_channels=4, out_channels=3, width=TINY, norm="group", pretrain_heads=True))
    torch.save(
        {"epoch": 50, "state_dict": seg.state_dict(), "optimizer_state_dict": sgd_state(seg)},
        tmp_path / "ft.pt",
    )
    raw = read_checkpoint(tmp_path / "ft.pt")
    assert raw.family == "thesis-finetune"
    rebuilt, report = model_from_checkpoint(raw)
    assert model_spec(rebuilt) == model_spec(seg) and not report.problems
    x = torch.rand(2, 4, 16, 16, 16)
    assert outputs_equal(rebuilt, seg, x)


@pytest.mark.parametrize("kind", ["cluster_patch", "cluster"])
def test_thesis_pretext_files_with_their_options_load_without_the_flag(
    tmp_path: Path, randomise: Randomise, options: Options, kind: str
) -> None:
    """Thesis pretext runs save ``{'opt': Namespace, 'state_dict', 'optimizer', 'epoch'}`` (spec §5.4b)."""
    if kind == "cluster_patch":
        source: nn.Module = randomise(PatchClusterNet(k=50, width=TINY))
        target: nn.Module = PatchClusterNet(k=50, width=TINY)
    else:
        source = randomise(UNet3D(out_channels=10, width=TINY, skip_connections=False, pretrain_heads=True))
        target = UNet3D(out_channels=10, width=TINY, skip_connections=False, pretrain_heads=True)
    opt = options(["--model", kind, "--n", "brats", "--k", "50", "--lr", "2e-3", "--tensorboard"])
    path = tmp_path / f"{kind}_brats_pretask.pt"
    torch.save({"opt": opt, "state_dict": source.state_dict(), "optimizer": sgd_state(source), "epoch": 100}, path)

    raw = read_checkpoint(path)
    assert raw.family == "thesis-pretext" and raw.meta["epoch"] == 100
    assert raw.meta["args"]["model"] == kind and raw.meta["args"]["tensorboard"] is True
    report = load_pretrained(target, path, transfer="all", strict=True)
    assert not report.problems
    assert all(torch.equal(target.state_dict()[key], value) for key, value in source.state_dict().items())
    encoder = UNet3D(in_channels=4, width=TINY, norm="group")  # the finetuning network, as --weights loads it
    transferred = load_pretrained(encoder, path, transfer="encoder")
    assert len(transferred.adapted) == 1 and not transferred.shape_mismatched and not transferred.missing


def test_namespace_contents_are_checked_like_everything_else(tmp_path: Path) -> None:
    """Only the container is allowed: a Path or a NumPy scalar inside it is still refused by name."""
    state = UNet3D(width=TINY, norm="group").state_dict()
    for name, value, refused in (
        ("path", Path("/runs"), "pathlib.PosixPath" if os.name == "posix" else "pathlib.WindowsPath"),
        ("numpy", np.float64(0.83), "multiarray.scalar"),
    ):
        opt = argparse.Namespace(lr=1e-3, extra=value)
        torch.save({"opt": opt, "state_dict": state, "optimizer": {}, "epoch": 1}, tmp_path / f"{name}.pt")
        with pytest.raises(CheckpointError, match=rf"holds pickled Python objects \([\w.]*{refused}\)"):
            read_checkpoint(tmp_path / f"{name}.pt")
        assert read_checkpoint(tmp_path / f"{name}.pt", allow_unsafe=True).meta["args"]["lr"] == 1e-3


@pytest.mark.parametrize("where", ["top level", "inside the options"])
def test_code_running_pickle_is_refused_by_name_and_never_run(
    tmp_path: Path, code_running_object: tuple[object, Path], where: str
) -> None:
    payload, marker = code_running_object
    state = UNet3D(width=TINY, norm="group").state_dict()
    if where == "top level":
        content = {"state_dict": state, "epoch": 1, "hook": payload}
    else:
        content = {"opt": argparse.Namespace(lr=1e-3, hook=payload), "state_dict": state, "optimizer": {}, "epoch": 1}
    path = tmp_path / "innocent.pt"
    torch.save(content, path)
    for load in (read_checkpoint, lambda p: load_pretrained(UNet3D(width=TINY, norm="group"), p)):
        with pytest.raises(CheckpointError) as info:
            load(path)
        message = str(info.value)
        assert "\n" not in message and message.startswith(f"{path}: holds pickled Python objects")
        assert f"({os.system.__module__}.system)" in message and "--allow-unsafe-pickle" in message
    assert not marker.exists()


def test_the_allowlist_does_not_leak_into_the_process(tmp_path: Path, randomise: Randomise, options: Options) -> None:
    path = tmp_path / "pcrlv2.pt"
    _save_pcrlv2(path, randomise(pcrlv2_net()), options)
    read_checkpoint(path)
    with pytest.raises(pickle.UnpicklingError, match=r"argparse\.Namespace"):
        torch.load(path, weights_only=True)  # plain torch outside radiossl: Namespace not allowed
    with torch.serialization.safe_globals([argparse.Namespace]):  # a user who allowed it on their own
        read_checkpoint(path)
        assert argparse.Namespace in torch.serialization.get_safe_globals()
        assert torch.load(path, weights_only=True)["epoch"] == 240


def test_radiossl_checkpoint_and_encoder_export(tmp_path: Path, randomise: Randomise, volume: torch.Tensor) -> None:
    source = randomise(UNet3D(width=TINY, skip_connections=False, pretrain_heads=True))
    path = tmp_path / "checkpoint_final.pt"
    torch.save(
        {
            "format_version": FORMAT_VERSION,
            "model": source.state_dict(),
            "model_spec": model_spec(source),
            "config": {"optim": {"lr": 0.002}},
            "epoch": 5,
            "optimizer": sgd_state(source),
        },
        path,
    )
    raw = read_checkpoint(path)
    assert raw.family == "radiossl" and raw.meta["model_spec"] == model_spec(source)
    assert raw.meta["config"] == {"optim": {"lr": 0.002}} and raw.meta["epoch"] == 5
    rebuilt, _ = model_from_checkpoint(path)
    assert outputs_equal(rebuilt, source, volume)

    out = export_encoder(path, tmp_path / "enc" / "encoder.pt")
    assert out.exists() and not list(out.parent.glob(".tmp-*"))
    obj = torch.load(out, weights_only=True)
    assert set(obj) == {"format_version", "encoder", "model_spec", "encoder_prefixes", "source"}
    assert obj["encoder_prefixes"] == ["down_tr"] and len(obj["encoder"]) == 56
    assert obj["model_spec"] == {
        "class": "Encoder3D",
        "kwargs": {"in_channels": 1, "width": TINY, "norm": "batch"},
    }
    assert obj["source"]["family"] == "radiossl" and obj["source"]["epoch"] == 5
    enc = read_checkpoint(out)
    assert enc.family == "radiossl-encoder"

    target = UNet3D(in_channels=1, width=TINY, norm="batch")
    report = load_pretrained(target, out, transfer="encoder", strict=True)
    assert len(report.matched) == 56
    target.eval()
    source.eval()
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(target.encode(volume), source.encode(volume), strict=True))


def test_export_from_pcrlv2_and_genesis(tmp_path: Path, randomise: Randomise, options: Options) -> None:
    _save_pcrlv2(tmp_path / "pcrl.pt", randomise(pcrlv2_net()), options)
    export_encoder(tmp_path / "pcrl.pt", tmp_path / "e.pt")
    assert read_checkpoint(tmp_path / "e.pt").meta["source"]["family"] == "pcrlv2"

    gen = randomise(genesis_net())
    torch.save(
        {
            "epoch": 1,
            "state_dict": {f"module.{k}": v for k, v in gen.state_dict().items()},
            "optimizer_state_dict": {},
        },
        tmp_path / "g.pt",
    )
    export_encoder(tmp_path / "g.pt", tmp_path / "ge.pt")
    enc = torch.load(tmp_path / "ge.pt", weights_only=True)
    assert enc["model_spec"]["kwargs"]["norm"] == "genesis" and "down_tr64.ops.0.conv1.weight" in enc["encoder"]


def test_key_map_and_prefix_cleaning(randomise: Randomise) -> None:
    source = randomise(UNet3D(width=TINY, norm="group"))
    renamed = {
        f"_orig_mod.backbone.{k[len('down_tr') :]}" if k.startswith("down_tr") else f"module.{k}": v
        for k, v in source.state_dict().items()
    }
    target = UNet3D(width=TINY, norm="group")
    report = load_pretrained(target, renamed, transfer="all", key_map={"backbone.": "down_tr", "out_tr.": None})
    assert not report.unexpected and report.missing == ["out_tr.final_conv.weight", "out_tr.final_conv.bias"]
    assert torch.equal(target.down_tr128.ops[1].conv1.weight, source.down_tr128.ops[1].conv1.weight)
    with pytest.raises(CheckpointError, match="same name"):
        clean_state_dict({"module.a": torch.zeros(1), "a": torch.zeros(1)})


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="file not found"):
        read_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match="directory"):
        read_checkpoint(tmp_path)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match=r"junk\.pt: not a readable"):
        read_checkpoint(tmp_path / "junk.pt")
    torch.save({"epoch": 3, "notes": "x"}, tmp_path / "nostate.pt")
    with pytest.raises(CheckpointError, match="no state dict found; top-level keys are epoch, notes"):
        read_checkpoint(tmp_path / "nostate.pt")
    torch.save([torch.zeros(1)], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="holds a list"):
        read_checkpoint(tmp_path / "list.pt")


def test_infer_model_spec() -> None:
    for model in (
        pcrlv2_net(),
        UNet3D(in_channels=4, out_channels=3, width=0.25, norm="group", pretrain_heads=True),
        PatchClusterNet(k=7, width=TINY),
        UNet3D(width=TINY, decoder=False),
    ):
        spec = infer_model_spec(model.state_dict())
        assert spec is not None
        if spec["class"] != "Encoder3D":
            assert spec == model_spec(model)
    assert infer_model_spec({"conv.weight": torch.zeros(1, 1, 1, 1, 1)}) is None
    broken = dict(pcrlv2_net().state_dict())
    broken.pop("up_tr64.ops.1.conv1.bias")
    assert infer_model_spec(broken) is None


def test_report_rendering(randomise: Randomise) -> None:
    source = randomise(pcrlv2_net())
    report = load_pretrained(
        UNet3D(in_channels=2, out_channels=2, width=TINY, norm="group"),
        RawCheckpoint(source.state_dict(), "pcrlv2", path=Path("w.pt")),
        transfer="all",
    )
    assert isinstance(report, LoadReport)
    line = report.summary()
    assert line.startswith(f"loaded {report.loaded} tensors (all) from w.pt [pcrlv2]")
    assert "1 adapted" in line and "shape-mismatched" in line
    blocks = {row[0]: row for row in report.as_table().rows}
    assert list(blocks) == [*ENCODER_BLOCKS, "up_tr256", "up_tr128", "up_tr64", "out_tr"]
    assert blocks["down_tr64"][7].startswith("adapted down_tr64.ops.0.conv1.weight")
    # up_tr64: 15 BN buffers the GN model cannot take, counted apart; the first offending key as the example
    assert blocks["up_tr64"][4:6] == ("15", "1") and "shape up_tr64.ops.0.conv1.weight" in blocks["up_tr64"][7]
    text = "\n".join(report.as_table().lines())
    assert "running_mean" not in text and len(report.unexpected) > 15
    # --verbose: every tensor on its own row, the running statistics included.
    every = report.as_table(verbose=True)
    assert len(every.rows) == sum(len(part) for part in report.to_dict().values() if isinstance(part, list))
    assert {row[1] for row in every.rows} >= set(report.unexpected) | set(report.matched)
    assert ("shape", "up_tr64.ops.0.conv1.weight", "[8, 16, 3, 3, 3]", "[8, 24, 3, 3, 3]") in every.rows
    data = report.to_dict()
    assert data["adapted"][0]["model_shape"] == (8, 2, 3, 3, 3) and data["family"] == "pcrlv2"


def test_dataparallel_target_is_unwrapped(randomise: Randomise) -> None:
    source = randomise(UNet3D(width=TINY, norm="group"))
    target = UNet3D(width=TINY, norm="group")
    load_pretrained(nn.DataParallel(target), source.state_dict(), transfer="all", strict=True)
    assert torch.equal(target.out_tr.final_conv.weight, source.out_tr.final_conv.weight)


def test_match_report_has_one_row_per_block_with_the_batchnorm_statistics_counted(randomise: Randomise) -> None:
    """A BatchNorm U-Net into a GroupNorm one: 8 rows, not one per running statistic."""
    source = randomise(UNet3D(width=TINY, norm="batch"))
    report = load_pretrained(UNet3D(width=TINY, norm="group"), source.state_dict(), transfer="all", strict=False)
    statistics = [key for key in source.state_dict() if key.rsplit(".", 1)[-1] in ("running_mean", "running_var")]
    assert len(report.unexpected) == len(statistics) * 3 // 2 == 42  # with num_batches_tracked
    table = report.as_table()
    assert [row[0] for row in table.rows] == [*ENCODER_BLOCKS, "up_tr256", "up_tr128", "up_tr64", "out_tr"]
    assert sum(int(row[4]) for row in table.rows) == len(report.unexpected)  # all of them BN statistics
    assert all(row[3] == "0" and row[2] == "0" and row[5] == "0" for row in table.rows)
    assert len(table.lines()) == 3 + 8  # title, header, rule, one line per block
    assert len(report.as_table(verbose=True).rows) == len(source.state_dict())
