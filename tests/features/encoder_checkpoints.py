"""Tiny pretraining checkpoints on any backbone, saved as `radiossl pretrain` saves them (encoder extractor tests)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from radiossl.config import ModelConfig
from radiossl.models.checkpoint import FORMAT_VERSION, clean_state_dict, save_checkpoint, to_plain
from radiossl.models.factory import model_spec
from radiossl.models.multiscale import MultiScaleHeadNet
from radiossl.models.network import build_network
from radiossl.models.patch_cluster_net import PatchClusterNet


def save_pretrain_checkpoint(path: Path, model: nn.Module, method: str) -> Path:
    """``model`` saved with the entries the trainer writes that loading reads (spec, state, kind, name)."""
    state = {k: v.detach().cpu().contiguous() for k, v in clean_state_dict(model.state_dict()).items()}
    payload = {
        "format_version": FORMAT_VERSION,
        "kind": "pretrain",
        "name": method,
        "model": state,
        "model_spec": to_plain(model_spec(model)),
        "epoch": 1,
    }
    return save_checkpoint(path, payload)


def pretrain_network(method: str, backbone: str, in_channels: int = 1, norm: str = "batch") -> nn.Module:
    """The network ``method`` trains on ``backbone`` at width 0.125, built as the method builds it."""
    torch.manual_seed(0)
    model = ModelConfig(name=backbone, width=0.125, in_channels=in_channels, norm=norm)
    if method == "patch-cluster":
        encoder = build_network(model, in_channels=in_channels, out_channels=5, decoder=False)
        return PatchClusterNet(k=5, proj_dim=8, backbone=encoder)
    if method == "pcrlv2":
        return MultiScaleHeadNet(build_network(model, in_channels, in_channels, stage_heads=True))
    return build_network(model, in_channels=in_channels, out_channels=3)  # pixel-cluster: the whole U-Net


def pretrain_checkpoint(path: Path, method: str, backbone: str, in_channels: int = 1, norm: str = "batch") -> Path:
    """A checkpoint of :func:`pretrain_network` at ``path``."""
    return save_pretrain_checkpoint(path, pretrain_network(method, backbone, in_channels, norm), method)
