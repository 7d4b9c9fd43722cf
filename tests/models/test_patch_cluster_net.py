"""PatchClusterNet: thesis ClusterPatch3d keys, shapes and patch order."""

from __future__ import annotations

import torch

from radiossl.models import PatchClusterNet

TINY = 0.125


def test_keys_are_encoder_plus_heads() -> None:
    with torch.device("meta"):
        net = PatchClusterNet(k=50)
    keys = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    extra = {k: s for k, s in keys.items() if not k.startswith("down_tr")}
    assert extra == {
        "cluster_projection_head.weight": (64, 512),
        "cluster_projection_head.bias": (64,),
        "prototypes.weight": (50, 64),
    }
    assert len(keys) == 56 + 3
    assert (
        net.patch_size == 8 and net.proto_num == 50 and net.head_prefixes == ("cluster_projection_head", "prototypes")
    )


def test_shapes() -> None:
    net = PatchClusterNet(k=10, width=TINY)
    emb, logits = net(torch.rand(2, 1, 32, 16, 16))
    assert emb.shape == (2, 16, 64) and logits.shape == (2, 16, 10)
    assert torch.allclose(logits, emb @ net.prototypes.weight.T, atol=1e-6)


def test_patches_are_in_row_major_order() -> None:
    net = PatchClusterNet(k=4, width=TINY).eval()
    x = torch.rand(1, 1, 24, 16, 32)
    with torch.no_grad():
        bottleneck = net.encode(x)[-1]  # [1, C, 3, 2, 4]
        patches = net.patch_features(x)
    h, w, d = bottleneck.shape[2:]
    for i in range(h):
        for j in range(w):
            for k in range(d):
                assert torch.equal(patches[0, (i * w + j) * d + k], bottleneck[0, :, i, j, k])


def test_batch_of_one_trains() -> None:
    net = PatchClusterNet(k=5, width=TINY, norm="group").train()
    emb, logits = net(torch.rand(1, 1, 16, 16, 16))
    logits.sum().backward()
    assert net.prototypes.weight.grad is not None and emb.shape == (1, 8, 64)
