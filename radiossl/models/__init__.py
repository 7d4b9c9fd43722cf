"""Networks of radiossl (backbones: the 3D U-Net family, key-compatible with the originals, and nnU-Net's
U-Nets), the one network factory :func:`build_network`, and checkpoint loading.

Example:
    >>> import torch
    >>> from radiossl.models import UNet3D, build_model, model_spec
    >>> net = UNet3D(width=0.125, skip_connections=False, pretrain_heads=True)
    >>> out, feats, masks = net.forward_pretrain(torch.zeros(2, 1, 16, 16, 16))
    >>> out.shape, [pro.shape[1] for pro, _ in feats], len(masks)
    (torch.Size([2, 1, 16, 16, 16]), [32, 16, 8], 3)
    >>> type(build_model(model_spec(net))).__name__
    'UNet3D'
"""

from radiossl.models.backbone import Backbone, BackboneNetwork, NetworkRequest, get_backbone
from radiossl.models.checkpoint import RawCheckpoint, clean_state_dict, export_encoder, read_checkpoint
from radiossl.models.factory import build_model, model_spec, register_model_class, unwrap_model
from radiossl.models.loading import LoadReport, load_pretrained, model_from_checkpoint
from radiossl.models.multiscale import MultiScaleHeadNet
from radiossl.models.network import build_network
from radiossl.models.patch_cluster_net import PatchClusterNet
from radiossl.models.unet3d import Encoder3D, UNet3D

__all__ = [
    "Backbone",
    "BackboneNetwork",
    "Encoder3D",
    "LoadReport",
    "MultiScaleHeadNet",
    "NetworkRequest",
    "PatchClusterNet",
    "RawCheckpoint",
    "UNet3D",
    "build_model",
    "build_network",
    "clean_state_dict",
    "export_encoder",
    "get_backbone",
    "load_pretrained",
    "model_from_checkpoint",
    "model_spec",
    "read_checkpoint",
    "register_model_class",
    "unwrap_model",
]
