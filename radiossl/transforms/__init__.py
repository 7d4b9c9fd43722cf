"""Batched, device-agnostic 3-D augmentations for the baseline pretext methods.

Every transform works on a ``[B, C, X, Y, Z]`` float tensor, draws its randomness from a
:class:`torch.Generator` on the same device (see :func:`generator_for`), makes its random choices
per sample, and returns a new tensor. One transform per module:

==================================  ==============================================================
PCRLv2 (torchio defaults)           Models Genesis (published rates)
==================================  ==============================================================
:class:`RandomFlip` (X, p 0.5)      :class:`GenesisFlip` (≤ 3 flips while U < 0.4)
:class:`RandomAffine` (0.9–1.1, 10°) :class:`LocalShuffle` (p 0.5, 10,000 blocks)
:class:`RandomBlur` (σ ≤ 2)          :class:`BezierIntensity` (p 0.9, half inverted)
:class:`RandomNoise` (σ ≤ 0.25)      :class:`InPaint` / :class:`OutPaint` (p 0.9, 0.2 : 0.8)
:class:`RandomGamma` (log γ ±0.3)
:class:`RandomPatchSwap` (8x4x4, 100)
:class:`ZNormalise`
==================================  ==============================================================

:class:`Compose` and :class:`OneOf` chain them. :class:`GenesisCorruption` is Models Genesis' shuffle,
Bézier and painting steps fused into one transform that skips the work out-painting would discard.

Example:
    >>> import torch
    >>> from radiossl.transforms import Compose, LocalShuffle, BezierIntensity, generator_for
    >>> corrupt = Compose([LocalShuffle(p=0.5), BezierIntensity(p=0.9)])
    >>> corrupt(torch.rand(2, 1, 32, 32, 16), generator_for(0)).shape
    torch.Size([2, 1, 32, 32, 16])
"""

from radiossl.transforms._random import generator_for
from radiossl.transforms.affine import RandomAffine, affine_warp
from radiossl.transforms.bezier_intensity import BezierIntensity, bezier_remap
from radiossl.transforms.blur import RandomBlur, gaussian_blur
from radiossl.transforms.compose import BatchTransform, Compose, OneOf, apply_per_sample, random_apply
from radiossl.transforms.flip import GenesisFlip, RandomFlip, flip, sample_flips, sample_genesis_flips
from radiossl.transforms.gamma import RandomGamma, gamma_transform
from radiossl.transforms.genesis_corruption import GenesisCorruption, apply_corruption, plan_corruption
from radiossl.transforms.inpaint import InPaint, inpaint
from radiossl.transforms.local_shuffle import LocalShuffle, local_shuffle
from radiossl.transforms.noise import RandomNoise, add_gaussian_noise
from radiossl.transforms.outpaint import OutPaint, outpaint
from radiossl.transforms.patch_swap import RandomPatchSwap, patch_swap
from radiossl.transforms.znorm import ZNormalise, z_normalise

__all__ = [
    "BatchTransform",
    "BezierIntensity",
    "Compose",
    "GenesisCorruption",
    "GenesisFlip",
    "InPaint",
    "LocalShuffle",
    "OneOf",
    "OutPaint",
    "RandomAffine",
    "RandomBlur",
    "RandomFlip",
    "RandomGamma",
    "RandomNoise",
    "RandomPatchSwap",
    "ZNormalise",
    "add_gaussian_noise",
    "affine_warp",
    "apply_corruption",
    "apply_per_sample",
    "bezier_remap",
    "flip",
    "gamma_transform",
    "gaussian_blur",
    "generator_for",
    "inpaint",
    "local_shuffle",
    "outpaint",
    "patch_swap",
    "plan_corruption",
    "random_apply",
    "sample_flips",
    "sample_genesis_flips",
    "z_normalise",
]
