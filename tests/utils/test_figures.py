"""The shared figure drawer: panel sizes, exact label colours, title band, legend, fonts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from radiossl.utils import figures
from radiossl.utils.figures import (
    BACKGROUND,
    MAX_PANEL,
    MIN_PANEL,
    Figure,
    LegendEntry,
    Panel,
    Row,
    blend,
    cluster_legend,
    colorize_labels,
    figure_title,
    label_colours,
    layout,
    most_foreground_slice,
    paint_regions,
    palette,
    panel_scale,
    region_legend,
    render,
    save_figure,
    to_rgb_uint8,
)


def _crop(box: tuple[int, int, int, int], image: np.ndarray) -> np.ndarray:
    left, top, right, bottom = box
    return image[top:bottom, left:right]


def test_panel_scale_enlarges_small_slices_by_an_integer_factor_and_shrinks_huge_ones() -> None:
    assert panel_scale(32, 32) == (192, 192)  # a 32^3 crop: factor 6
    assert panel_scale(16, 32) == (192, 384)  # the short side decides
    assert panel_scale(66, 100) == (198, 300)
    assert panel_scale(200, 300) == (200, 300)  # already readable
    assert panel_scale(16, 32, pixel_aspect=2.0) == (192, 192)  # 2 mm slices are drawn twice as tall
    rows, cols = panel_scale(1024, 512)
    assert max(rows, cols) <= MAX_PANEL and rows == 2 * cols
    with pytest.raises(ValueError, match="at least one pixel"):
        panel_scale(0, 4)


def test_nearest_upscaling_keeps_exact_label_colours() -> None:
    labels = np.random.default_rng(0).integers(0, 5, size=(32, 32))
    panel = Panel("clusters", colorize_labels(labels, 5), exact=True)
    image = render(Figure("t", [Row("", [panel])]))
    drawn = _crop(layout(Figure("t", [Row("", [panel])])).panel_boxes[0][0], image)
    assert drawn.shape == (MIN_PANEL, MIN_PANEL, 3)
    assert {tuple(c) for c in drawn.reshape(-1, 3)} <= {tuple(c) for c in palette(5)}
    assert (drawn[::6, ::6] == colorize_labels(labels, 5)).all()  # each voxel is a 6 x 6 block of its colour


def test_the_title_is_drawn_in_a_band_above_the_panels() -> None:
    grey = to_rgb_uint8(np.zeros((32, 32)))
    figure = Figure("segmentation | case A | epoch 3/10", [Row("case A", [Panel("input", grey), Panel("truth", grey)])])
    where = layout(figure)
    image = render(figure)
    assert image.shape == (where.height, where.width, 3)
    grid_h = MIN_PANEL
    grid_w = 2 * MIN_PANEL + figures.GAP
    assert image.shape[0] > grid_h + 40 and image.shape[1] >= grid_w
    row_label = where.row_label_boxes[0]
    assert row_label is not None
    assert where.title_box[3] <= row_label[1] < where.panel_title_boxes[0][0][1] < where.panel_boxes[0][0][1]
    band = _crop(where.title_box, image)
    assert (band != np.array(BACKGROUND, np.uint8)).any(axis=2).sum() > 50  # text pixels in the title band
    titles = _crop(where.panel_title_boxes[0][1], image)
    assert (titles != np.array(BACKGROUND, np.uint8)).any()


def test_the_legend_lists_one_entry_per_cluster_and_draws_its_colour() -> None:
    figure = Figure("clusters", [Row("", [Panel("x", np.zeros((8, 8, 3), np.uint8))])], cluster_legend(6), "clusters")
    where = layout(figure)
    assert [entry.name for entry, _ in where.legend_entries] == ["0", "1", "2", "3", "4", "5"]
    image = render(figure)
    for entry, (x0, y0, _, y1) in where.legend_entries:
        centre = image[(y0 + y1) // 2, x0 + figures.SWATCH // 2]
        assert tuple(int(v) for v in centre) == entry.colour


def test_many_legend_entries_wrap_inside_the_figure() -> None:
    figure = Figure("", [Row("", [Panel("x", np.zeros((8, 8, 3), np.uint8))])], cluster_legend(60))
    where = layout(figure)
    assert len(where.legend_entries) == 60
    assert all(box[2] <= where.width and box[3] <= where.height for _, box in where.legend_entries)
    assert len({box[1] for _, box in where.legend_entries}) > 1  # several lines


def test_region_legend_and_painted_regions_share_colours() -> None:
    masks = np.zeros((3, 4, 4), bool)
    masks[0, :3, :3] = True  # WT
    masks[1, :2, :2] = True  # TC inside it
    masks[2, 0, 0] = True  # ET inside that
    painted = paint_regions(masks)
    assert painted.tolist()[0][:4] == [3, 2, 1, 0] and painted[3, 3] == 0
    legend = region_legend(["WT", "TC", "ET"])
    assert [e.name for e in legend] == ["WT", "TC", "ET"]
    assert [e.colour for e in legend] == [label_colours([1, 2, 3])[v] for v in (1, 2, 3)]


def test_figure_title_names_what_is_known() -> None:
    assert figure_title("brats segmentation", case="c1", epoch=3, total_epochs=10) == (
        "brats segmentation | case c1 | epoch 3/10"
    )
    assert figure_title("restoration", epoch=2) == "restoration | epoch 2"
    assert figure_title("montage") == "montage"


def test_long_panel_titles_are_shortened_to_the_panel_width() -> None:
    text = figures._fit_text("a very long panel title " * 4, figures.TEXT_SIZE, MIN_PANEL)
    assert text.endswith("...") and figures._text_size(text, figures.TEXT_SIZE)[0] <= MIN_PANEL
    assert figures._fit_text("input", figures.TEXT_SIZE, MIN_PANEL) == "input"


def test_a_pillow_without_scalable_default_font_still_draws(monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import ImageFont

    original = ImageFont.load_default
    asked: list[float | None] = []

    def unsized_only(size: float | None = None) -> object:
        asked.append(size)
        if size is not None:
            raise TypeError("load_default() got an unexpected keyword argument 'size'")  # Pillow < 10.1
        return original()

    monkeypatch.setattr(ImageFont, "load_default", unsized_only)
    figures.font.cache_clear()
    try:
        figures.font(16)
        assert asked == [16, None]  # the sized font was refused, the plain default is used
        image = render(Figure("title", [Row("row", [Panel("p", np.zeros((16, 16, 3), np.uint8))])], cluster_legend(2)))
        assert image.shape[0] > MIN_PANEL
    finally:
        figures.font.cache_clear()


def test_most_foreground_slice_and_blend() -> None:
    mask = np.zeros((4, 4, 6), bool)
    mask[:, :, 4] = True
    mask[0, 0, 1] = True
    assert most_foreground_slice(mask) == 4
    assert most_foreground_slice(np.zeros((4, 4, 6))) == 3  # empty: the middle slice
    base = np.full((2, 2, 3), 100, np.uint8)
    colours = np.full((2, 2, 3), 200, np.uint8)
    mixed = blend(base, colours, np.array([[True, False], [False, False]]), alpha=0.5)
    assert mixed[0, 0].tolist() == [150, 150, 150] and mixed[1, 1].tolist() == [100, 100, 100]


def test_to_rgb_uint8_with_a_window_clips() -> None:
    grey = to_rgb_uint8(np.array([[-100.0, 0.0], [50.0, 500.0]]), window=(0.0, 100.0))
    assert grey[..., 0].tolist() == [[0, 0], [128, 255]]


def test_save_figure_writes_the_rendered_pixels(tmp_path: Path) -> None:
    figure = Figure(
        "t",
        [Row("", [Panel("p", colorize_labels(np.eye(4, dtype=int), 2), exact=True)])],
        [LegendEntry("a", (1, 2, 3))],
    )
    path = save_figure(tmp_path / "sub" / "f.png", figure)
    with Image.open(path) as png:
        assert (np.asarray(png.convert("RGB")) == render(figure)).all()
    assert [p.name for p in path.parent.iterdir()] == ["f.png"]


def test_line_chart_draws_lines_bands_and_breaks_at_missing_points() -> None:
    from radiossl.utils.figures import CHART_SIZE, LineSeries, line_chart, series_colours

    series = [
        LineSeries("scratch", [0.01, 0.1, 1.0], [0.2, 0.5, 0.8], [0.1, 0.4, 0.7], [0.3, 0.6, 0.9]),
        LineSeries("pretrained", [0.01, 0.1, 1.0], [0.4, float("nan"), 0.85]),
    ]
    chart = line_chart(series, log_x=True, y_range=(0.0, 1.0), x_label="ratio", y_label="Dice")
    assert chart.shape == (CHART_SIZE[1], CHART_SIZE[0], 3) and chart.dtype == np.uint8
    first, second = series_colours(series)
    pixels = chart.reshape(-1, 3)
    assert (pixels == first).all(axis=1).sum() > 100
    assert 20 < (pixels == second).all(axis=1).sum() < 200  # two markers: no line across the missing point
    # The band is the first colour blended over the plot area: neither the line colour nor the background.
    band = chart[chart.shape[0] // 2 - 20 : chart.shape[0] // 2 + 20, chart.shape[1] // 2]
    assert len({tuple(p) for p in band}) > 3
    with pytest.raises(ValueError, match="log_x needs positive"):
        line_chart([LineSeries("x", [0.0, 1.0], [0.1, 0.2])], log_x=True)
