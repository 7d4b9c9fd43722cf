"""nnssl checkpoints: export for nnU-Net (rebuilt and loaded as nnU-Net does), recognition, import, round trip, CLI.

The nnU-Net side is restated here from its code, not imported (nnU-Net is not a dependency):
``nnunetv2/utilities/get_network_from_plans.py`` (``get_network_from_plans``) and
``nnunetv2/training/nnUNetTrainer/pretraining/pretrainedTrainer.py``
(``PretrainedTrainer.load_pretrained_weights``, the branch for a stem outside ``key_to_encoder``).
"""

from __future__ import annotations

import json
import pydoc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import typer
from torch import nn
from typer.testing import CliRunner

pytest.importorskip("dynamic_network_architectures")

from dynamic_network_architectures.architectures.unet import ResidualEncoderUNet

from radiossl.commands.checkpoint import register
from radiossl.errors import CheckpointError, ConfigError
from radiossl.models import UNet3D, model_spec
from radiossl.models.checkpoint import FORMAT_VERSION, read_checkpoint, save_checkpoint
from radiossl.models.dna_networks import ResEncUNet
from radiossl.models.factory import build_model
from radiossl.models.loading import load_pretrained, model_from_checkpoint
from radiossl.models.nnssl_export import export_nnssl
from radiossl.models.nnssl_format import (
    REQUIRED_PLAN_KEYS,
    finetune_model_spec,
    plan_model_spec,
    reverse_spatial_axes,
)

# Anisotropic kernels and strides (radiossl (i, j, k) order), so that a missed axis reversal shows.
ARCH = {
    "n_stages": 3,
    "features_per_stage": [4, 8, 16],
    "conv_op": "torch.nn.modules.conv.Conv3d",
    "kernel_sizes": [[3, 3, 1], [3, 3, 3], [3, 3, 3]],
    "strides": [[1, 1, 1], [2, 2, 1], [2, 2, 2]],
    "n_blocks_per_stage": [1, 2, 1],
    "n_conv_per_stage_decoder": [1, 1],
    "conv_bias": True,
    "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
    "norm_op_kwargs": {"eps": 1e-5, "affine": True},
    "nonlin": "torch.nn.modules.activation.LeakyReLU",
    "nonlin_kwargs": {"inplace": True},
}
CROP = [32, 32, 16]  # total stride of ARCH: (4, 4, 2)


def _nnunet_axes(arch: dict[str, Any]) -> dict[str, Any]:
    """``arch`` in nnU-Net (z, y, x) order, written out by hand for the test's own checkpoints."""
    out = json.loads(json.dumps(arch))
    for key in ("kernel_sizes", "strides"):
        out[key] = [list(reversed(v)) for v in out[key]]
    return out


# ---------------------------------------------------------------------------------------- nnU-Net side


def nnunet_build_network(plan: dict[str, Any], input_channels: int, output_channels: int) -> nn.Module:
    """nnU-Net's ``get_network_from_plans`` for the plan's architecture (deep supervision off)."""
    arch = plan["architecture_plans"]
    kwargs = dict(arch["arch_kwargs"])
    for key in arch["arch_kwargs_requiring_import"]:
        if kwargs[key] is not None:
            kwargs[key] = pydoc.locate(kwargs[key])
    name = arch["arch_class_name"]
    # A bare class name does not locate; nnU-Net then searches dynamic_network_architectures.architectures.
    network_class: Any = pydoc.locate(name) or pydoc.locate(f"dynamic_network_architectures.architectures.unet.{name}")
    assert network_class is not None
    kwargs["deep_supervision"] = False
    network: nn.Module = network_class(input_channels=input_channels, num_classes=output_channels, **kwargs)
    return network


def nnunet_load_encoder_and_stem(network: Any, path: Path, downstream_channels: int) -> None:
    """``PretrainedTrainer.load_pretrained_weights``: encoder and stem, strict ``load_state_dict`` per submodule."""
    checkpoint = torch.load(path, weights_only=True)
    state = checkpoint["network_weights"]
    plan = checkpoint["nnssl_adaptation_plan"]
    key_to_encoder, key_to_stem = plan["key_to_encoder"], plan["key_to_stem"]
    assert key_to_stem not in state  # the stem lies outside the encoder stages
    encoder = {k: v for k, v in state.items() if k.startswith(key_to_encoder)}
    stem = {k: v for k, v in state.items() if k.startswith(key_to_stem)}
    if downstream_channels > plan["pretrain_num_input_channels"]:
        projection = stem[plan["keys_to_in_proj"][0] + ".weight"]
        repeated = projection.repeat(1, downstream_channels, 1, 1, 1) / downstream_channels
        for key in plan["keys_to_in_proj"]:
            stem[key + ".weight"] = repeated

    def strip(key: str, prefix: str) -> str:
        rest = key.replace(prefix, "")
        return rest[1:] if rest.startswith(".") else rest

    network.get_submodule(network.key_to_encoder).load_state_dict(
        {strip(k, key_to_encoder): v for k, v in encoder.items()}
    )
    network.get_submodule(network.key_to_stem).load_state_dict({strip(k, key_to_stem): v for k, v in stem.items()})


# ---------------------------------------------------------------------------------------- fixtures


def _preprocessed(folder: Path, spacing: Any = (1.0, 1.0, 1.0), mode: str = "zscore") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    params = {
        "format": "radiossl-preprocessed",
        "dataset": "brats",
        "resolved": {
            "view": "cluster",
            "channels": ["t1"],
            "intensity": {"t1": {"mode": mode, "nonzero": True}},
            "spacing": list(spacing) if spacing != "native" else "native",
            "crop_size": CROP,
        },
    }
    (folder / "preprocess.json").write_text(json.dumps(params), encoding="utf-8")
    return folder


def _pretrain_run(
    folder: Path, model: nn.Module, proc: Path, state: dict[str, torch.Tensor] | None = None, spec: Any = None
) -> Path:
    """A run folder with a radiossl pretraining checkpoint written by the engine's ``save_checkpoint``."""
    folder.mkdir(parents=True, exist_ok=True)
    save_checkpoint(
        folder / "checkpoint_final.pt",
        {
            "format_version": FORMAT_VERSION,
            "kind": "pretrain",
            "name": "patch-cluster",
            "config": {"data": {"root": str(proc), "crop_size": CROP}, "model": {"width": 1.0}},
            "model": state if state is not None else model.state_dict(),
            "model_spec": spec if spec is not None else model_spec(model),
            "epoch": 2,
        },
    )
    return folder


@pytest.fixture
def backbone(randomise: Callable[..., nn.Module]) -> ResEncUNet:
    return randomise(ResEncUNet(input_channels=1, num_classes=2, **ARCH))  # type: ignore[return-value]


@pytest.fixture
def exported(tmp_path: Path, backbone: ResEncUNet) -> Path:
    run = _pretrain_run(tmp_path / "run", backbone, _preprocessed(tmp_path / "proc"))
    return export_nnssl(run, tmp_path / "nnssl").checkpoint


def _nnssl_checkpoint(path: Path, network: nn.Module, arch_class_name: str, arch_kwargs: Any, channels: int) -> Path:
    """A file in the layout nnssl's trainers write: weights, the serialised AdaptationPlan, citations."""
    plan = {
        "architecture_plans": {
            "arch_class_name": arch_class_name,
            "arch_kwargs": arch_kwargs,
            "arch_kwargs_requiring_import": ["conv_op", "norm_op", "nonlin"] if arch_kwargs else None,
        },
        "pretrain_plan": {
            "dataset_name": "Dataset745_OpenMind",
            "plans_name": "nnsslPlans",
            "original_median_spacing_after_transp": [1, 1, 1],
            "image_reader_writer": "NibabelReaderWriterOrientToRAS",
            "transpose_forward": [0, 1, 2],
            "transpose_backward": [0, 1, 2],
            "configurations": {
                "onemmiso": {
                    "data_identifier": "nnsslPlans_onemmiso",
                    "preprocessor_name": "DefaultPreprocessor",
                    "spacing_style": "onemmiso",
                    "normalization_schemes": ["ZScoreNormalization"] * channels,
                    "use_mask_for_norm": [False] * channels,
                    "resampling_fn_data": "resample_data_or_seg_to_shape",
                    "resampling_fn_data_kwargs": {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None},
                    "resampling_fn_mask": "resample_data_or_seg_to_shape",
                    "resampling_fn_mask_kwargs": {"is_seg": False, "order": 1, "order_z": 0, "force_separate_z": None},
                    "spacing": [1, 1, 1],
                    "patch_size": [16, 32, 32],
                }
            },
            "experiment_planner_used": "ExperimentPlanner",
        },
        "pretrain_num_input_channels": channels,
        "recommended_downstream_patchsize": [16, 32, 32],
        "key_to_encoder": "encoder.stages",
        "key_to_stem": "encoder.stem",
        "keys_to_in_proj": ["encoder.stem.convs.0.conv", "encoder.stem.convs.0.all_modules.0"],
        "key_to_lpe": None,
    }
    citations = [{"type": "architecture", "name": "ResEnc", "apa_citations": ["Isensee, F. et al. (2024)."]}]
    torch.save({"network_weights": network.state_dict(), "nnssl_adaptation_plan": plan, "citations": citations}, path)
    return path


@pytest.fixture
def nnssl_file(tmp_path: Path, randomise: Callable[..., nn.Module]) -> Path:
    """An nnssl-trained network (the library's own class, nnU-Net axis order) with one input channel."""
    arch = _nnunet_axes(ARCH)
    network = randomise(nnunet_build_network({"architecture_plans": _arch_plans(arch)}, 1, 2))
    return _nnssl_checkpoint(tmp_path / "checkpoint_final.pth", network, "ResidualEncoderUNet", arch, 1)


def _arch_plans(arch: dict[str, Any]) -> dict[str, Any]:
    return {
        "arch_class_name": "ResidualEncoderUNet",
        "arch_kwargs": arch,
        "arch_kwargs_requiring_import": ["conv_op", "norm_op", "nonlin"],
    }


# ---------------------------------------------------------------------------------------- export


def test_export_writes_a_weights_only_checkpoint_and_the_same_plan_as_json(exported: Path) -> None:
    checkpoint = torch.load(exported, weights_only=True)
    assert {"network_weights", "nnssl_adaptation_plan"} <= set(checkpoint)
    plan = checkpoint["nnssl_adaptation_plan"]
    assert set(REQUIRED_PLAN_KEYS) | {"key_to_lpe"} <= set(plan)
    on_disk = json.loads((exported.parent / "adaptation_plan.json").read_text(encoding="utf-8"))
    assert on_disk.pop("trainer_name") == "radiossl:patch-cluster"
    assert on_disk == plan
    arch = plan["architecture_plans"]
    assert arch["arch_class_name"] == "ResidualEncoderUNet"
    assert arch["arch_kwargs"]["conv_op"] == "torch.nn.modules.conv.Conv3d"
    assert arch["arch_kwargs"]["strides"] == [[1, 1, 1], [1, 2, 2], [2, 2, 2]]  # nnU-Net (z, y, x) order
    assert {"input_channels", "num_classes", "deep_supervision"}.isdisjoint(arch["arch_kwargs"])
    configuration = plan["pretrain_plan"]["configurations"]["onemmiso"]
    assert configuration["patch_size"] == [16, 32, 32] and configuration["spacing"] == [1.0, 1.0, 1.0]
    assert configuration["normalization_schemes"] == ["ZScoreNormalization"]
    assert plan["recommended_downstream_patchsize"] == [16, 32, 32]
    assert (plan["key_to_encoder"], plan["key_to_stem"], plan["key_to_lpe"]) == ("encoder.stages", "encoder.stem", None)
    weights = checkpoint["network_weights"]
    # The stem convolution is one tensor under two names, as in a dynamic-network-architectures state_dict.
    first, alias = weights["encoder.stem.convs.0.conv.weight"], weights["encoder.stem.convs.0.all_modules.0.weight"]
    assert first.data_ptr() == alias.data_ptr() and first.is_contiguous()


def test_nnunet_rebuilds_the_network_from_arch_kwargs_and_loads_encoder_and_stem_strictly(
    exported: Path, backbone: ResEncUNet
) -> None:
    plan = torch.load(exported, weights_only=True)["nnssl_adaptation_plan"]
    for channels in (1, 3):  # 3: nnU-Net repeats the stem over the extra input channels
        network = nnunet_build_network(plan, channels, 5)
        nnunet_load_encoder_and_stem(network, exported, channels)
        loaded = network.state_dict()
        source = backbone.state_dict()
        assert torch.equal(
            loaded["encoder.stages.1.blocks.0.conv1.conv.weight"],
            reverse_spatial_axes(source["encoder.stages.1.blocks.0.conv1.conv.weight"]),
        )
        assert loaded["encoder.stem.convs.0.conv.weight"].shape[1] == channels


def test_exported_network_computes_the_same_function_on_nnunet_axis_order(exported: Path, backbone: ResEncUNet) -> None:
    checkpoint = torch.load(exported, weights_only=True)
    network = nnunet_build_network(checkpoint["nnssl_adaptation_plan"], 1, 2)
    network.load_state_dict(checkpoint["network_weights"], strict=True)
    x = torch.randn(1, 1, *CROP)
    backbone.eval()
    network.eval()
    with torch.no_grad():
        ours = backbone(x)
        theirs = network(x.permute(0, 1, 4, 3, 2))
    assert theirs.shape == (1, 2, 16, 32, 32)
    torch.testing.assert_close(theirs.permute(0, 1, 4, 3, 2), ours, atol=1e-5, rtol=1e-4)


def test_unet3d_checkpoint_is_refused_naming_the_exportable_backbones(tmp_path: Path) -> None:
    run = _pretrain_run(tmp_path / "run", UNet3D(width=0.125), _preprocessed(tmp_path / "proc"))
    with pytest.raises(CheckpointError) as info:
        export_nnssl(run, tmp_path / "out")
    message = str(info.value)
    assert "\n" not in message and "UNet3D" in message and "resenc-l" in message and "plainconv-unet" in message
    assert not (tmp_path / "out").exists()


def test_wrapped_backbone_is_exported_with_the_library_keys(tmp_path: Path, backbone: ResEncUNet) -> None:
    """A pretext wrapper that holds the backbone under ``backbone.`` (and adds heads) exports the DNA keys."""
    state = {f"backbone.{k}": v for k, v in backbone.state_dict().items()}
    state["projection_head.weight"] = torch.zeros(8, 16)
    spec = {"class": "ClusterHeads", "kwargs": {"backbone": model_spec(backbone), "k": 8}}
    run = _pretrain_run(tmp_path / "run", backbone, _preprocessed(tmp_path / "proc"), state=state, spec=spec)
    weights = torch.load(export_nnssl(run, tmp_path / "out").checkpoint, weights_only=True)["network_weights"]
    assert set(weights) == set(backbone.state_dict())


def test_export_needs_the_preprocessing_record_and_takes_another_folder(tmp_path: Path, backbone: ResEncUNet) -> None:
    run = _pretrain_run(tmp_path / "run", backbone, tmp_path / "moved-away")
    with pytest.raises(ConfigError, match="--preprocessed"):
        export_nnssl(run, tmp_path / "out")
    proc = _preprocessed(tmp_path / "proc", spacing="native", mode="ct-window")
    plan = torch.load(export_nnssl(run, tmp_path / "out", preprocessed=proc).checkpoint, weights_only=True)[
        "nnssl_adaptation_plan"
    ]
    configuration = plan["pretrain_plan"]["configurations"]["noresample"]
    assert configuration["spacing"] is None and configuration["normalization_schemes"] == ["radiossl.ct-window"]


def test_downstream_patch_size_must_fit_the_total_stride(tmp_path: Path, backbone: ResEncUNet) -> None:
    run = _pretrain_run(tmp_path / "run", backbone, _preprocessed(tmp_path / "proc"))
    with pytest.raises(CheckpointError, match=r"total stride \[4, 4, 2\]"):
        export_nnssl(run, tmp_path / "out", downstream_patch_size=(30, 32, 16))
    plan = torch.load(
        export_nnssl(run, tmp_path / "out", downstream_patch_size=(64, 48, 8)).checkpoint, weights_only=True
    )
    assert plan["nnssl_adaptation_plan"]["recommended_downstream_patchsize"] == [8, 48, 64]


# ---------------------------------------------------------------------------------------- import


def test_nnssl_checkpoint_is_recognised_with_the_network_of_its_plan(nnssl_file: Path) -> None:
    raw = read_checkpoint(nnssl_file)
    assert raw.family == "nnssl"
    assert raw.meta["model_spec"]["class"] == "ResidualEncoderUNet"
    assert raw.meta["model_spec"]["kwargs"]["strides"] == ARCH["strides"]  # back in radiossl order
    assert raw.meta["nnssl_adaptation_plan"]["key_to_stem"] == "encoder.stem"
    model, report = model_from_checkpoint(raw)  # every tensor, strictly
    assert type(model) is ResEncUNet and not report.problems


def test_finetune_spec_transfers_encoder_and_stem_and_adapts_the_stem_like_nnunet(nnssl_file: Path) -> None:
    spec = finetune_model_spec(nnssl_file, in_channels=4, num_classes=3, sizes={"data.crop_size": CROP})
    assert spec is not None and spec["kwargs"]["input_channels"] == 4 and spec["kwargs"]["num_classes"] == 3
    model = build_model(spec)
    report = load_pretrained(model, nnssl_file, transfer="encoder")
    assert sorted(a.key for a in report.adapted) == sorted(
        ["encoder.stem.convs.0.conv.weight", "encoder.stem.convs.0.all_modules.0.weight"]
    )
    assert not report.missing and not report.unexpected and not report.shape_mismatched
    assert all(key.startswith("decoder.") for key in report.skipped)
    # The same tensors as nnU-Net's loader produces for a 4-channel task, up to the axis order.
    reference = nnunet_build_network(torch.load(nnssl_file, weights_only=True)["nnssl_adaptation_plan"], 4, 3)
    nnunet_load_encoder_and_stem(reference, nnssl_file, 4)
    expected = reference.state_dict()
    for key, tensor in model.state_dict().items():
        if key.startswith("encoder."):
            torch.testing.assert_close(tensor, reverse_spatial_axes(expected[key]), rtol=0, atol=1e-7)


def test_fewer_input_channels_than_pretraining_are_adapted(tmp_path: Path, randomise: Callable[..., nn.Module]) -> None:
    arch = _nnunet_axes(ARCH)
    network = randomise(nnunet_build_network({"architecture_plans": _arch_plans(arch)}, 2, 2))
    path = _nnssl_checkpoint(tmp_path / "two.pth", network, "ResidualEncoderUNet", arch, 2)
    spec = finetune_model_spec(path, in_channels=1, num_classes=1)
    assert spec is not None
    report = load_pretrained(build_model(spec), path)
    assert (
        len(report.adapted) == 2
        and report.adapted[0].checkpoint_shape[1] == 2
        and report.adapted[0].model_shape[1] == 1
    )


def test_export_then_import_round_trip_restores_the_encoder(exported: Path, backbone: ResEncUNet) -> None:
    spec = finetune_model_spec(exported, in_channels=1, num_classes=3)
    assert spec is not None
    model = build_model(spec)
    report = load_pretrained(model, exported, transfer="encoder")
    assert report.loaded > 0 and not report.problems and not report.adapted
    source = backbone.state_dict()
    for key, tensor in model.state_dict().items():
        if key.startswith("encoder."):
            assert torch.equal(tensor, source[key]), key
    assert spec["kwargs"]["kernel_sizes"] == ARCH["kernel_sizes"]


def test_released_resenc_l_plan_builds_nnssl_resenc_l() -> None:
    """OpenMind's ResEnc-L checkpoints name the preset ``ResEncL`` and carry no arch_kwargs."""
    spec = plan_model_spec({"architecture_plans": {"arch_class_name": "ResEncL", "arch_kwargs": None}}, 1, 2)
    with torch.device("meta"):
        ours = build_model(spec).state_dict()
        # nnssl src/nnssl/architectures/architecture_registry.py get_res_enc_l, restated.
        theirs = ResidualEncoderUNet(
            input_channels=1,
            n_stages=6,
            features_per_stage=[32, 64, 128, 256, 320, 320],
            conv_op=nn.Conv3d,
            kernel_sizes=[[3, 3, 3] for _ in range(6)],
            strides=[[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 2]],
            n_blocks_per_stage=[1, 3, 4, 6, 6, 6],
            num_classes=2,
            n_conv_per_stage_decoder=[1, 1, 1, 1, 1],
            conv_bias=True,
            norm_op=nn.InstanceNorm3d,
            norm_op_kwargs={"eps": 1e-5, "affine": True},
            nonlin=nn.LeakyReLU,
            nonlin_kwargs={"inplace": True},
        ).state_dict()
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}


def test_unbuildable_architecture_is_inspectable_but_not_finetunable(tmp_path: Path) -> None:
    path = tmp_path / "primus.pth"
    plan = {key: None for key in REQUIRED_PLAN_KEYS} | {
        "architecture_plans": {"arch_class_name": "PrimusM", "arch_kwargs": None},
        "pretrain_num_input_channels": 1,
    }
    torch.save({"network_weights": {"eva.pos_embed": torch.zeros(1, 8, 4)}, "nnssl_adaptation_plan": plan}, path)
    raw = read_checkpoint(path)
    assert raw.family == "nnssl" and "PrimusM" in raw.meta["model_spec_error"]
    with pytest.raises(CheckpointError, match=r"PrimusM.*not one radiossl can build"):
        finetune_model_spec(path, 1, 1)


def test_finetune_spec_checks_sizes_and_ignores_other_files(nnssl_file: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"data.crop_size: \[30, 32, 16\].*total stride \[4, 4, 2\]"):
        finetune_model_spec(nnssl_file, 1, 1, sizes={"data.crop_size": (30, 32, 16), "sliding_window.roi": None})
    radiossl_file = tmp_path / "unet.pt"
    torch.save({"format_version": 1, "model": UNet3D(width=0.125).state_dict()}, radiossl_file)
    legacy_file = tmp_path / "legacy.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}}, legacy_file, _use_new_zipfile_serialization=False)
    assert finetune_model_spec(radiossl_file, 1, 1) is None
    assert finetune_model_spec(legacy_file, 1, 1) is None


def test_a_plan_without_required_entries_is_a_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.pth"
    torch.save(
        {"network_weights": {"w": torch.zeros(1)}, "nnssl_adaptation_plan": {"key_to_stem": "encoder.stem"}}, path
    )
    with pytest.raises(CheckpointError, match=r"nnssl_adaptation_plan lacks architecture_plans, pretrain_plan"):
        read_checkpoint(path)


# ---------------------------------------------------------------------------------------- CLI


@pytest.fixture
def app() -> typer.Typer:
    application = typer.Typer()

    @application.callback()
    def main() -> None:
        """Test root."""

    register(application)
    return application


def test_export_nnssl_command_then_inspect_shows_the_plan(
    app: typer.Typer, tmp_path: Path, backbone: ResEncUNet
) -> None:
    run = _pretrain_run(tmp_path / "run", backbone, _preprocessed(tmp_path / "proc"))
    out = tmp_path / "nnssl"
    result = CliRunner().invoke(app, ["checkpoint", "export-nnssl", str(run), "--out", str(out)], terminal_width=300)
    assert result.exit_code == 0, result.output
    assert (
        f"wrote {out / 'checkpoint_final.pth'} and {out / 'adaptation_plan.json'}: ResidualEncoderUNet" in result.output
    )
    encoder = sum(key.startswith("encoder.") for key in backbone.state_dict())
    assert f"({encoder} encoder tensors, {len(backbone.state_dict()) - encoder} decoder tensors)" in result.output
    shown = CliRunner().invoke(app, ["checkpoint", "inspect", str(out / "checkpoint_final.pth")], terminal_width=300)
    assert shown.exit_code == 0, shown.output
    assert "family: nnssl" in shown.output and "model spec (nnssl plan)" in shown.output
    assert "architecture ResidualEncoderUNet" in shown.output
    assert "pretraining configuration 'onemmiso': spacing [1.0, 1.0, 1.0], patch size [16, 32, 32]" in shown.output
    assert "transfer: encoder encoder.stages, stem encoder.stem" in shown.output


def test_export_nnssl_command_refuses_unet3d_in_one_line(app: typer.Typer, tmp_path: Path) -> None:
    run = _pretrain_run(tmp_path / "run", UNet3D(width=0.125), _preprocessed(tmp_path / "proc"))
    result = CliRunner().invoke(app, ["checkpoint", "export-nnssl", str(run), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "cannot be exported to nnssl" in result.output
