"""Models Genesis' whole corruption (after the flips) as one transform that skips overwritten work.

Models Genesis corrupts a cube with local shuffling (p 0.5), then the Bézier intensity map (p 0.9),
then in-painting or out-painting (p 0.9, 1 : 4). Composed step by step (see
:class:`~radiossl.transforms.Compose`), every step works on the whole cube, although out-painting
(72 % of the cubes) then replaces everything outside a few windows (about 40 % of the cube) with
noise. :class:`GenesisCorruption` draws every decision of a batch first (:func:`plan_corruption`)
and then, per sample (:func:`apply_corruption`):

* shuffles with only the blocks that can reach a kept window (:func:`local_shuffle`'s ``keep``:
  inside the windows the result is the one without culling);
* evaluates the Bézier map only inside the kept windows, and writes every result straight into
  the output, with no intermediate copies of the batch.

On CPU the samples are corrupted on up to ``torch.get_num_threads()`` threads; every sample's noise
seeds are drawn before, so the result does not depend on the number of threads.

The output has the same distribution as the composed pipeline; for one batch, the two differ only
in the order in which random numbers are drawn. The test suite checks the result against the
step-by-step functions under the same decisions.

Example:
    >>> import torch
    >>> from radiossl.transforms import generator_for
    >>> corrupt = GenesisCorruption()
    >>> y = corrupt(torch.rand(2, 1, 64, 64, 32), generator_for(0))
    >>> y.shape
    torch.Size([2, 1, 64, 64, 32])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from radiossl.transforms._boxes import box_slices
from radiossl.transforms._random import (
    bernoulli,
    check_batch,
    fill_uniform_,
    fill_uniform_seeded,
    float64_device,
    noise_seeds,
)
from radiossl.transforms._threads import cpu_threads, run_parallel
from radiossl.transforms.bezier_intensity import N_POINTS, TABLE_SIZE, apply_tables, bezier_tables
from radiossl.transforms.inpaint import inpaint_boxes
from radiossl.transforms.local_shuffle import (
    N_BLOCKS,
    Boxes,
    compiled_path,
    compiled_seeds,
    local_shuffle,
    shuffle_compiled,
)
from radiossl.transforms.outpaint import outpaint_windows

NO_PAINT, IN_PAINT, OUT_PAINT = 0, 1, 2
"""Values of :attr:`GenesisPlan.paint`."""

Box = tuple[int, int, int, int, int, int]


@dataclass
class GenesisPlan:
    """Every random decision of one batch, except the shuffled blocks and the noise values.

    ``boxes[b]``: the in-painted boxes of an in-painted sample, the kept windows of an out-painted
    one (``(x, y, z, size_x, size_y, size_z)``, in drawing order), nothing otherwise.
    """

    shuffle: torch.Tensor  # bool [B]
    bezier: torch.Tensor  # bool [B]
    controls: torch.Tensor  # [B, 4] Bézier control points (x1, y1, x2, y2)
    inverted: torch.Tensor  # bool [B]
    paint: torch.Tensor  # int [B]: NO_PAINT, IN_PAINT or OUT_PAINT
    boxes: list[list[Box]]


def plan_corruption(
    batch: int,
    spatial: tuple[int, int, int],
    generator: torch.Generator,
    device: torch.device,
    local_rate: float = 0.5,
    nonlinear_rate: float = 0.9,
    inversion_prob: float = 0.5,
    paint_rate: float = 0.9,
    inpaint_rate: float = 0.2,
) -> GenesisPlan:
    """Draw the decisions of a batch with the published probabilities (the defaults)."""
    shuffle = bernoulli((batch,), local_rate, generator, device)
    bezier = bernoulli((batch,), nonlinear_rate, generator, device)
    controls = torch.rand(batch, 4, generator=generator, device=device)
    inverted = bernoulli((batch,), inversion_prob, generator, device)
    painted = bernoulli((batch,), paint_rate, generator, device)
    inpainted = bernoulli((batch,), inpaint_rate, generator, device)
    paint = torch.where(painted, torch.where(inpainted, IN_PAINT, OUT_PAINT), NO_PAINT)
    boxes: list[list[Box]] = [[] for _ in range(batch)]
    kinds = paint.tolist()
    if IN_PAINT in kinds:
        for sample, *box in inpaint_boxes(batch, spatial, generator, device):
            if kinds[sample] == IN_PAINT:
                boxes[sample].append(tuple(box))  # type: ignore[arg-type]
    if OUT_PAINT in kinds:
        for sample, *window in outpaint_windows(batch, spatial, generator, device):
            if kinds[sample] == OUT_PAINT:
                boxes[sample].append(tuple(window))  # type: ignore[arg-type]
    return GenesisPlan(shuffle, bezier, controls, inverted, paint, boxes)


def _region(box: Box) -> tuple[slice, slice, slice, slice]:
    """Index ``[:, x-range, y-range, z-range]`` of a box inside one sample."""
    return box_slices((0, *box))[1:]  # type: ignore[return-value]


def apply_corruption(
    x: torch.Tensor,
    plan: GenesisPlan,
    generator: torch.Generator,
    n_blocks: int = N_BLOCKS,
    n_points: int = N_POINTS,
    table_size: int = TABLE_SIZE,
) -> torch.Tensor:
    """Corrupt ``x`` as ``plan`` says: shuffle, Bézier map, then in- or out-painting, per sample.

    The result is a new tensor without gradient (corruption acts on data; ``x`` is not modified).
    """
    check_batch(x, "apply_corruption")
    batch = x.shape[0]
    source = x.detach()
    out = torch.empty_like(source, memory_format=torch.contiguous_format)
    kinds = plan.paint.tolist()

    shuffled_rows = plan.shuffle.nonzero().squeeze(1).tolist()
    shuffled: dict[int, torch.Tensor] = {}
    kernel = compiled_path(x)
    late_shuffle: dict[int, tuple[np.ndarray, Boxes | None]] = {}  # with the kernel: per sample, in its thread
    if shuffled_rows and n_blocks > 0:
        keep = [
            torch.tensor(plan.boxes[b], dtype=torch.long).view(-1, 6) if kinds[b] == OUT_PAINT else None
            for b in shuffled_rows
        ]
        if kernel is not None:  # the same seeds as local_shuffle's: the same result, but cache-hot per sample
            shuffle_seeds = compiled_seeds(len(shuffled_rows), generator)
            late_shuffle = {b: (shuffle_seeds[i : i + 1], [keep[i]]) for i, b in enumerate(shuffled_rows)}
        else:
            index = torch.tensor(shuffled_rows, device=x.device)
            result = local_shuffle(source.index_select(0, index), generator, n_blocks, keep=keep)
            shuffled = {b: result[i] for i, b in enumerate(shuffled_rows)}

    mapped_rows = plan.bezier.nonzero().squeeze(1).tolist()
    tables: dict[int, torch.Tensor] = {}
    if mapped_rows:
        where = float64_device(x.device)
        index = torch.tensor(mapped_rows, device=plan.controls.device)
        rows = bezier_tables(
            plan.controls.index_select(0, index).to(where),
            plan.inverted.index_select(0, index).to(where),
            n_points,
            table_size,
        ).to(device=x.device, dtype=x.dtype)
        tables = {b: rows[i] for i, b in enumerate(mapped_rows)}

    # Per sample: on CPU on up to torch.get_num_threads() threads, with the noise seeds drawn first
    # (a sample's result never depends on the thread count); elsewhere in order, from ``generator``.
    cpu_noise = x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)
    most_boxes = max([1] + [len(boxes) for boxes in plan.boxes])
    seeds = noise_seeds((batch, most_boxes), generator) if cpu_noise else None

    def noise_into(target: torch.Tensor, sample: int, k: int) -> None:
        if seeds is not None:
            fill_uniform_seeded(target, seeds[sample][k])
        else:
            fill_uniform_(target, generator)

    def corrupt_sample(b: int) -> None:
        image = shuffled.get(b, source[b])
        if kernel is not None and b in late_shuffle:
            seed, boxes = late_shuffle[b]
            image = torch.empty_like(image, memory_format=torch.contiguous_format)
            spatial = (image.shape[1], image.shape[2], image.shape[3])
            shuffle_compiled(
                kernel, source[b : b + 1].flatten(2), image.view(1, image.shape[0], -1), spatial, n_blocks, seed, boxes
            )
        table = tables.get(b)
        if kinds[b] == OUT_PAINT:
            noise_into(out[b], b, 0)
            regions = [_region(window) for window in plan.boxes[b]]
        else:
            regions = [(slice(None),) * 4]
        if table is None:
            for region in regions:
                out[b][region].copy_(image[region])
        elif kinds[b] != OUT_PAINT:
            apply_tables(image.unsqueeze(0), table.unsqueeze(0), out=out[b : b + 1])
        else:  # the windows' voxels, copied into one run and mapped in place, so the map is set up once
            parts = [image[region] for region in regions]
            flat = image.new_empty(sum(part.numel() for part in parts))
            offset = 0
            for part in parts:
                flat[offset : offset + part.numel()].view(part.shape).copy_(part)
                offset += part.numel()
            run = flat.view(1, 1, -1, 1, 1)
            apply_tables(run, table.unsqueeze(0), out=run)
            offset = 0
            for region, part in zip(regions, parts, strict=True):
                out[b][region].copy_(flat[offset : offset + part.numel()].view(part.shape))
                offset += part.numel()
        if kinds[b] == IN_PAINT:
            for k, box in enumerate(plan.boxes[b]):
                noise_into(out[b][_region(box)], b, k)

    run_parallel(corrupt_sample, range(batch), cpu_threads(batch) if seeds is not None else 1)
    return out


class GenesisCorruption:
    """Models Genesis' corruption after the flips, with the published probabilities by default.

    Equivalent in distribution to ``Compose([LocalShuffle(local_rate), BezierIntensity(nonlinear_rate),
    OneOf([InPaint(), OutPaint()], weights=[inpaint_rate, 1 - inpaint_rate], p=paint_rate)])``, and
    faster (see the module docstring).
    """

    def __init__(
        self,
        local_rate: float = 0.5,
        n_blocks: int = N_BLOCKS,
        nonlinear_rate: float = 0.9,
        inversion_prob: float = 0.5,
        paint_rate: float = 0.9,
        inpaint_rate: float = 0.2,
    ) -> None:
        for name, value in (
            ("local_rate", local_rate),
            ("nonlinear_rate", nonlinear_rate),
            ("inversion_prob", inversion_prob),
            ("paint_rate", paint_rate),
            ("inpaint_rate", inpaint_rate),
        ):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        self.local_rate = local_rate
        self.n_blocks = n_blocks
        self.nonlinear_rate = nonlinear_rate
        self.inversion_prob = inversion_prob
        self.paint_rate = paint_rate
        self.inpaint_rate = inpaint_rate

    def plan(self, x: torch.Tensor, generator: torch.Generator) -> GenesisPlan:
        """The random decisions for batch ``x`` (drawn from ``generator``)."""
        check_batch(x, "GenesisCorruption")
        spatial = (x.shape[2], x.shape[3], x.shape[4])
        return plan_corruption(
            x.shape[0],
            spatial,
            generator,
            x.device,
            self.local_rate,
            self.nonlinear_rate,
            self.inversion_prob,
            self.paint_rate,
            self.inpaint_rate,
        )

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return apply_corruption(x, self.plan(x, generator), generator, self.n_blocks)

    def __repr__(self) -> str:
        return (
            f"GenesisCorruption(local_rate={self.local_rate:g}, n_blocks={self.n_blocks}, "
            f"nonlinear_rate={self.nonlinear_rate:g}, paint_rate={self.paint_rate:g}, "
            f"inpaint_rate={self.inpaint_rate:g})"
        )
