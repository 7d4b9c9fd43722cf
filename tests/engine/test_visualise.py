"""Image helpers for --vis."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from radiossl.engine.visualise import colorize_labels, palette, save_png, tile_images, to_rgb_uint8


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
