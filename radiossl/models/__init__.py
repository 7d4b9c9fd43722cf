"""Networks of radiossl (the 3D U-Net family, key-compatible with the originals) and checkpoint loading.

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

from radiossl.models.checkpoint import RawCheckpoint, clean_state_dict, export_encoder, read_checkpoint
from radiossl.models.factory import build_model, model_spec, register_model_class, unwrap_model
from radiossl.models.loading import LoadReport, load_pretrained, model_from_checkpoint
from radiossl.models.patch_cluster_net import PatchClusterNet
from radiossl.models.unet3d import Encoder3D, UNet3D

__all__ = [
    "Encoder3D",
    "LoadReport",
    "PatchClusterNet",
    "RawCheckpoint",
    "UNet3D",
    "build_model",
    "clean_state_dict",
    "export_encoder",
    "load_pretrained",
    "model_from_checkpoint",
    "model_spec",
    "read_checkpoint",
    "register_model_class",
    "unwrap_model",
]
