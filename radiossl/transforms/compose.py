"""Composing batched transforms: per-sample probabilities, sequences and random choices.

A batched transform is any callable ``transform(x, generator) -> Tensor`` on a ``[B, C, X, Y, Z]``
batch that returns a new tensor (inputs are never modified in place). Random decisions are made
per sample: with ``p = 0.5`` about half of the batch is transformed and the rest passes through.

Speed: inside a running :class:`Compose` or :class:`OneOf`, the first partially applied step copies
the batch once; later steps write their selected samples into that copy in place, instead of
copying the whole batch each time. So a transform used in a pipeline must not read its input
again after passing it to :func:`random_apply` / :func:`apply_per_sample` (return their result).

Example:
    >>> import torch
    >>> from radiossl.transforms import Compose, OneOf, RandomNoise, RandomGamma, generator_for
    >>> pipeline = Compose([RandomNoise(p=0.5), OneOf([RandomGamma(), RandomNoise()], weights=[0.2, 0.8])])
    >>> pipeline(torch.zeros(4, 1, 8, 8, 8), generator_for(0)).shape
    torch.Size([4, 1, 8, 8, 8])
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from functools import partial
from typing import Protocol

import torch

from radiossl.transforms._random import check_batch


class BatchTransform(Protocol):
    """A random transform of a batch ``[B, C, X, Y, Z]``, drawing from ``generator``."""

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor: ...


_owned: ContextVar[dict[int, weakref.ref[torch.Tensor]] | None] = ContextVar("radiossl_owned_batches", default=None)
"""Batches created by :func:`apply_per_sample` inside the current :class:`Compose` / :class:`OneOf` call.

Only the pipeline holds them, so later steps may write into them instead of copying the whole batch.
"""


@contextmanager
def _ownership_scope() -> Iterator[None]:
    if _owned.get() is not None:  # nested pipeline: share the outer scope
        yield
        return
    token = _owned.set({})
    try:
        yield
    finally:
        _owned.reset(token)


def _is_owned(x: torch.Tensor) -> bool:
    owned = _owned.get()
    ref = None if owned is None else owned.get(id(x))
    return ref is not None and ref() is x


def apply_per_sample(
    x: torch.Tensor,
    selected: torch.Tensor,
    fn: Callable[[torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """``fn`` applied to the samples where ``selected`` (bool ``[B]``) is true; the others are kept.

    ``x`` itself is not modified, except a batch that an earlier step of the same running
    :class:`Compose` / :class:`OneOf` created here: that one is updated in place.
    """
    if bool(selected.all()):
        return fn(x)
    if not bool(selected.any()):
        return x
    index = selected.nonzero().squeeze(1)
    result = fn(x.index_select(0, index))
    owned = _owned.get()
    if _is_owned(x):
        out = x
    else:
        out = x.clone(memory_format=torch.contiguous_format)
        if owned is not None and not out.requires_grad:
            owned[id(out)] = weakref.ref(out)
    if out.requires_grad:
        return x.index_copy(0, index, result.to(x.dtype))
    # Sample by sample: plain copies, touching only the selected samples.
    for row, sample in zip(index.tolist(), result.unbind(0), strict=True):
        out[row].copy_(sample)
    return out


def random_apply(
    x: torch.Tensor, p: float, generator: torch.Generator, fn: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """Apply ``fn`` to each sample independently with probability ``p``."""
    check_batch(x, "random_apply")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"probability must be in [0, 1], got {p}")
    if p >= 1.0:
        return fn(x)
    selected = torch.rand(x.shape[0], generator=generator, device=x.device) < p
    return apply_per_sample(x, selected, fn)


def _call(transform: BatchTransform, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return transform(x, generator)


class Compose:
    """Apply transforms one after the other."""

    def __init__(self, transforms: Sequence[BatchTransform]) -> None:
        self.transforms = list(transforms)

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        with _ownership_scope():
            for transform in self.transforms:
                x = transform(x, generator)
        return x

    def __repr__(self) -> str:
        inner = ", ".join(repr(t) for t in self.transforms)
        return f"Compose([{inner}])"


class OneOf:
    """With probability ``p`` per sample, apply one transform chosen with the given ``weights``.

    Models Genesis' painting step is ``OneOf([InPaint(), OutPaint()], weights=[0.2, 0.8], p=0.9)``.
    """

    def __init__(self, transforms: Sequence[BatchTransform], weights: Sequence[float] | None = None, p: float = 1.0):
        if not transforms:
            raise ValueError("OneOf needs at least one transform")
        weights = [1.0] * len(transforms) if weights is None else [float(w) for w in weights]
        if len(weights) != len(transforms) or any(w < 0 for w in weights) or sum(weights) <= 0:
            raise ValueError(f"OneOf needs one non-negative weight per transform, got {weights}")
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"probability must be in [0, 1], got {p}")
        self.transforms = list(transforms)
        total = sum(weights)
        self.weights = [w / total for w in weights]
        self.p = p

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        check_batch(x, "OneOf")
        batch = x.shape[0]
        gate = torch.rand(batch, generator=generator, device=x.device) < self.p
        u = torch.rand(batch, generator=generator, device=x.device)
        edges = torch.tensor(self.weights, device=x.device).cumsum(0)
        choice = torch.searchsorted(edges, u, right=True).clamp_max(len(self.transforms) - 1)
        with _ownership_scope():
            for i, transform in enumerate(self.transforms):
                selected = gate & (choice == i)
                if bool(selected.any()):
                    x = apply_per_sample(x, selected, partial(_call, transform, generator=generator))
        return x

    def __repr__(self) -> str:
        inner = ", ".join(f"{t!r}: {w:g}" for t, w in zip(self.transforms, self.weights, strict=True))
        return f"OneOf({{{inner}}}, p={self.p:g})"
