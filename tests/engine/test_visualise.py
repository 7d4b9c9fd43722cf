"""Image helpers for --vis, and what the engine does with the pictures (PNG files, TensorBoard)."""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np
import pytest
import torch
from engine_task import Pair, TinyTask
from PIL import Image
from torch import nn

from radiossl.config import ExampleRunConfig
from radiossl.engine.protocol import StepContext
from radiossl.engine.trainer import run_training
from radiossl.engine.visualise import (
    batch_case,
    colorize_labels,
    palette,
    save_png,
    tile_images,
    to_rgb_uint8,
    vis_title,
)


def test_to_rgb_uint8_scales_min_to_0_and_max_to_255() -> None:
    image = to_rgb_uint8(torch.tensor([[1.0, 2.0], [3.0, 5.0]]))
    assert image.shape == (2, 2, 3) and image.dtype == np.uint8
    assert image[0, 0, 0] == 0 and image[1, 1, 2] == 255
    assert (to_rgb_uint8(np.full((3, 3), 7.0)) == 0).all()
    with pytest.raises(ValueError, match="2-D"):
        to_rgb_uint8(np.zeros((2, 2, 2)))


def test_palette_is_fixed_and_distinct() -> None:
    colours = palette(50)
    assert len({tuple(c) for c in colours}) == 50
    assert (palette(50) == colours).all() and (palette(5) == colours[:5]).all()


def test_colorize_labels_uses_the_palette_and_blacks_out_invalid_labels() -> None:
    labels = np.array([[0, 1], [2, 9]])
    image = colorize_labels(labels, k=3)
    assert (image[0, 1] == palette(3)[1]).all()
    assert (image[1, 1] == 0).all()


def test_tile_images_pads_with_white_and_handles_rows() -> None:
    a = np.zeros((4, 4, 3), np.uint8)
    b = np.zeros((2, 3, 3), np.uint8)
    row = tile_images([a, b], pad=2)
    assert row.shape == (4, 10, 3)
    assert (row[:, 4:6] == 255).all() and (row[2:, 6:9] == 255).all()
    grid = tile_images([[a], [a, a]], pad=1)
    assert grid.shape == (9, 9, 3)
    assert tile_images([a, a, a, a], pad=0, ncols=2).shape == (8, 8, 3)


def test_save_png_round_trips(tmp_path: Path) -> None:
    image = colorize_labels(np.arange(12).reshape(3, 4) % 5, 5)
    path = save_png(tmp_path / "vis" / "x.png", image)
    assert (np.asarray(Image.open(path)) == image).all()
    assert [p.name for p in path.parent.iterdir()] == ["x.png"]


class _Indexed(NamedTuple):
    image: torch.Tensor
    index: torch.Tensor  # type: ignore[assignment]


class _Cases:
    def case_id(self, index: int) -> str:
        return f"case-{index:03d}"


def _context(train_set: object = None, epoch: int = 2, total: int = 10) -> StepContext:
    return StepContext(epoch, total, 0, torch.device("cpu"), extra={"train_set": train_set})


def test_batch_case_names_the_case_of_a_sample_when_batch_and_dataset_allow_it() -> None:
    batch = _Indexed(torch.zeros(2, 1), torch.tensor([7, 3]))
    assert batch_case(batch, _context(_Cases())) == "case-007"
    assert batch_case(batch, _context(_Cases()), sample=1) == "case-003"
    assert batch_case(batch, _context(_Cases()), sample=2) is None
    assert batch_case(batch, _context(None)) is None  # no training set
    assert batch_case((torch.zeros(2), torch.zeros(2)), _context(_Cases())) is None  # a plain tuple: no indices
    assert batch_case(torch.zeros(2, 3), _context(_Cases())) is None


def test_vis_title_counts_epochs_from_one_like_the_file_names() -> None:
    batch = _Indexed(torch.zeros(1, 1), torch.tensor([12]))
    assert vis_title("pixel-cluster clusters", batch, _context(_Cases(), epoch=2, total=10)) == (
        "pixel-cluster clusters | case case-012 | epoch 3/10"
    )
    assert vis_title("genesis restoration", torch.zeros(1), _context(None, epoch=0, total=4)) == (
        "genesis restoration | epoch 1/4"
    )


class _FakeWriter:
    """Stands in for TensorBoard's SummaryWriter (importing tensorboard is slow)."""

    images: ClassVar[list[tuple[str, np.ndarray, int, str]]] = []

    def __init__(self, log_dir: str) -> None:
        Path(log_dir).mkdir(parents=True, exist_ok=True)

    def add_scalar(self, *args: Any) -> None:
        pass

    def add_image(self, tag: str, image: Any, step: int, dataformats: str = "CHW") -> None:
        _FakeWriter.images.append((tag, np.asarray(image), step, dataformats))

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class _GreyFloatPicture(TinyTask):
    """Returns a grey float picture, which the engine must turn into the same uint8 RGB for PNG and TensorBoard."""

    def visualise(self, model: nn.Module, batch: Pair, context: StepContext) -> dict[str, np.ndarray]:
        return {"grey": np.linspace(0.0, 300.0, 6 * 7).reshape(6, 7)}


def test_tensorboard_gets_exactly_the_pixels_of_the_png(
    make_config: Callable[..., ExampleRunConfig], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = types.ModuleType("torch.utils.tensorboard")
    fake.SummaryWriter = _FakeWriter  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", fake)
    _FakeWriter.images = []
    config = make_config("logging.vis=true", "logging.tensorboard=true", "optim.epochs=2")
    result = run_training(_GreyFloatPicture(), config)
    assert [(tag, step, formats) for tag, _, step, formats in _FakeWriter.images] == [
        ("vis/grey", 1, "HWC"),
        ("vis/grey", 2, "HWC"),
    ]
    for (_, sent, step, _), name in zip(_FakeWriter.images, ("grey_e0001.png", "grey_e0002.png"), strict=True):
        with Image.open(result.run_dir / "vis" / name) as png:
            written = np.asarray(png)
        assert sent.dtype == np.uint8 and sent.shape == (6, 7, 3)
        assert (written == sent).all(), step
