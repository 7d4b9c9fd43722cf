"""Readable PNG figures: titled, upscaled panels in rows, a figure title and a colour legend.

Every picture radiossl writes (``--vis`` images of a run, the phantom preview, the k-means montages)
is a :class:`Figure` drawn by :func:`render`: a title band (what, which case, which epoch), rows of
panels each with its own title above it, and a legend of the label or cluster colours. Small slices
are enlarged by an integer factor with nearest-neighbour sampling until their short side is at least
:data:`MIN_PANEL` pixels, so every voxel stays a sharp block of its exact colour; slices whose long
side exceeds :data:`MAX_PANEL` are shrunk. Text uses Pillow's built-in font, so no system font is
needed. Only NumPy and Pillow are used.

The array helpers (:func:`to_rgb_uint8`, :func:`colorize_labels`, :func:`blend`, :func:`palette`)
build the panel images; :func:`palette` is the one colour table for cluster ids and label regions.

Example:
    >>> import numpy as np
    >>> grey = to_rgb_uint8(np.arange(64.0).reshape(8, 8))
    >>> clusters = colorize_labels(np.arange(64).reshape(8, 8) % 3, k=3)
    >>> figure = Figure(
    ...     title=figure_title("demo", case="case_000", epoch=2, total_epochs=5),
    ...     rows=[Row("", [Panel("input", grey), Panel("clusters", clusters, exact=True)])],
    ...     legend=cluster_legend(3),
    ... )
    >>> figure.title
    'demo | case case_000 | epoch 2/5'
    >>> image = render(figure)
    >>> image.dtype, image.shape[2], image.shape[0] > MIN_PANEL
    (dtype('uint8'), 3, True)
"""

from __future__ import annotations

import colorsys
import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from radiossl.utils.atomic import atomic_write_path

Colour = tuple[int, int, int]

MIN_PANEL = 192
"""Panels are enlarged (integer factor, nearest neighbour) until their short side is at least this."""
MAX_PANEL = 640
"""Panels whose long side is larger than this are shrunk (by an integer factor)."""
MIN_WIDTH = 240
"""Narrowest canvas (without margins), so that a legend has room beside a single small panel."""

BACKGROUND: Colour = (24, 24, 28)
TEXT: Colour = (235, 235, 235)
PANEL_TEXT: Colour = (255, 235, 150)
TITLE_SIZE = 16
TEXT_SIZE = 13
MARGIN = 10
GAP = 8
SWATCH = 14

# Twenty clearly distinct colours first (cluster ids and label regions); further ids get golden-ratio hues.
_BASE_PALETTE: tuple[Colour, ...] = (
    (230, 25, 75),
    (60, 180, 75),
    (255, 225, 25),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 212),
    (0, 128, 128),
    (220, 190, 255),
    (170, 110, 40),
    (255, 250, 200),
    (128, 0, 0),
    (170, 255, 195),
    (128, 128, 0),
    (255, 215, 180),
    (0, 0, 128),
    (128, 128, 128),
)


# ------------------------------------------------------------------------------------------- colours


def palette(k: int) -> np.ndarray:
    """``k`` distinct RGB colours (uint8, ``k x 3``); ``palette(k)`` is always a prefix of ``palette(k + 1)``."""
    colours = list(_BASE_PALETTE[:k])
    index = 0
    while len(colours) < k:
        hue = (index * 0.618033988749895) % 1.0
        saturation = 0.55 + 0.4 * ((index // 3) % 2)
        value = 0.95 - 0.3 * ((index // 2) % 2)
        r, g, b = colorsys.hsv_to_rgb(hue, saturation, value)
        colours.append((round(r * 255), round(g * 255), round(b * 255)))
        index += 1
    return np.asarray(colours, dtype=np.uint8).reshape(k, 3)


def label_colours(values: Sequence[int]) -> dict[int, Colour]:
    """Colours of non-zero label values: value ``v`` gets ``palette[v - 1]`` (0 is background, no colour)."""
    wanted = sorted({int(v) for v in values if int(v) > 0})
    if not wanted:
        return {}
    table = palette(wanted[-1])
    return {v: (int(table[v - 1][0]), int(table[v - 1][1]), int(table[v - 1][2])) for v in wanted}


def _as_numpy(image: Any) -> np.ndarray:
    if hasattr(image, "detach"):  # torch tensors, without importing torch here
        image = image.detach().float().cpu().numpy()
    return np.asarray(image)


def to_rgb_uint8(slice2d: Any, window: tuple[float, float] | None = None) -> np.ndarray:
    """A 2-D array (numpy or torch) as grey ``H x W x 3`` uint8.

    Without ``window`` the slice is min-max scaled (a constant slice is black); with ``window=(low, high)``
    values are clipped to it. Non-finite values count as the lowest value.
    """
    array = _as_numpy(slice2d).astype(np.float64)
    if array.ndim != 2:
        raise ValueError(f"to_rgb_uint8 expects a 2-D slice, got shape {array.shape}")
    finite = np.isfinite(array)
    if window is not None:
        low, high = float(window[0]), float(window[1])
    elif finite.any():
        low, high = float(array[finite].min()), float(array[finite].max())
    else:
        low = high = 0.0
    array = np.where(finite, array, low)
    scaled = (array - low) / (high - low) * 255.0 if high > low else np.zeros_like(array)
    grey = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    return np.repeat(grey[:, :, None], 3, axis=2)


def colorize_labels(labels2d: Any, k: int) -> np.ndarray:
    """Colour a 2-D map of cluster ids with :func:`palette` ``(k)``; ids outside ``[0, k)`` are black."""
    labels = _as_numpy(labels2d)
    if labels.ndim != 2:
        raise ValueError(f"colorize_labels expects a 2-D label map, got shape {labels.shape}")
    if k < 1:
        raise ValueError(f"colorize_labels needs k >= 1, got {k}")
    labels = labels.astype(np.int64)
    colours = palette(k)
    out = np.zeros((*labels.shape, 3), dtype=np.uint8)
    valid = (labels >= 0) & (labels < k)
    out[valid] = colours[labels[valid]]
    return out


def colour_values(labels2d: Any, colours: Mapping[int, Colour]) -> np.ndarray:
    """Colour a 2-D map of label values with ``colours``; values without a colour (background) are black."""
    labels = _as_numpy(labels2d).astype(np.int64)
    if labels.ndim != 2:
        raise ValueError(f"colour_values expects a 2-D label map, got shape {labels.shape}")
    out = np.zeros((*labels.shape, 3), dtype=np.uint8)
    for value, colour in colours.items():
        out[labels == value] = colour
    return out


def paint_regions(masks: Any) -> np.ndarray:
    """``R x H x W`` region masks as one ``H x W`` map: 0 outside all, ``r + 1`` where region ``r`` is the last one set.

    Later regions are painted over earlier ones, so nested regions (BraTS WT > TC > ET) show their
    innermost region.
    """
    array = _as_numpy(masks)
    if array.ndim != 3:
        raise ValueError(f"paint_regions expects R x H x W masks, got shape {array.shape}")
    out = np.zeros(array.shape[1:], dtype=np.int64)
    for region in range(array.shape[0]):
        out[array[region].astype(bool)] = region + 1
    return out


def blend(base: np.ndarray, colours: np.ndarray, mask: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """``base`` with ``colours`` mixed in at ``alpha`` where ``mask`` is true (all ``H x W x 3`` uint8)."""
    out = base.astype(np.float32).copy()
    inside = np.asarray(mask, dtype=bool)
    out[inside] = (1.0 - alpha) * out[inside] + alpha * colours[inside].astype(np.float32)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def most_foreground_slice(mask: Any, axis: int = -1) -> int:
    """Index along ``axis`` of the slice with most non-zero voxels of the 3-D ``mask`` (the middle one if empty)."""
    array = _as_numpy(mask)
    if array.ndim != 3:
        raise ValueError(f"most_foreground_slice expects a 3-D mask, got shape {array.shape}")
    axis = axis % 3
    counts = np.count_nonzero(array, axis=tuple(a for a in range(3) if a != axis))
    return int(np.argmax(counts)) if counts.any() else array.shape[axis] // 2


def as_rgb_uint8(image: Any) -> np.ndarray:
    """An ``H x W x 3`` (or grey ``H x W``) image as a contiguous ``H x W x 3`` uint8 array."""
    array = _as_numpy(image)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"expected an H x W x 3 image, got shape {array.shape}")
    if array.dtype != np.uint8:
        array = np.clip(array, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(array)


# ------------------------------------------------------------------------------------------- figures


@dataclass(frozen=True)
class Panel:
    """One image of a figure with the title drawn above it.

    ``image`` is ``H x W x 3`` uint8 (or grey ``H x W``) at one pixel per voxel. ``exact`` marks label
    and cluster maps: they are only ever resampled by repeating or dropping pixels, so every pixel keeps
    a palette colour. ``pixel_aspect`` is the physical height / width of one pixel.
    """

    title: str
    image: np.ndarray
    exact: bool = False
    pixel_aspect: float = 1.0


@dataclass(frozen=True)
class Row:
    """A row of panels with an optional label line above it (e.g. the case id)."""

    label: str
    panels: Sequence[Panel]


@dataclass(frozen=True)
class LegendEntry:
    """A colour swatch and its name."""

    name: str
    colour: Colour


@dataclass(frozen=True)
class Figure:
    """What :func:`render` draws: a title, rows of panels and a legend (``legend_title`` names it)."""

    title: str
    rows: Sequence[Row]
    legend: Sequence[LegendEntry] = ()
    legend_title: str = ""


Box = tuple[int, int, int, int]  # left, top, right, bottom (exclusive)


@dataclass
class FigureLayout:
    """Where everything of a figure goes, in canvas pixels (see :func:`layout`)."""

    width: int
    height: int
    title_box: Box
    row_label_boxes: list[Box | None] = field(default_factory=list)
    panel_boxes: list[list[Box]] = field(default_factory=list)
    panel_title_boxes: list[list[Box]] = field(default_factory=list)
    legend_title_box: Box | None = None
    legend_entries: list[tuple[LegendEntry, Box]] = field(default_factory=list)


def figure_title(
    subject: str, *, case: str | None = None, epoch: int | None = None, total_epochs: int | None = None
) -> str:
    """``"subject | case ID | epoch E/N"``, leaving out what is not known (``epoch`` counts from 1)."""
    parts = [subject]
    if case:
        parts.append(f"case {case}")
    if epoch is not None:
        parts.append(f"epoch {epoch}/{total_epochs}" if total_epochs else f"epoch {epoch}")
    return " | ".join(parts)


def cluster_legend(k: int) -> list[LegendEntry]:
    """One legend entry per cluster id ``0 .. k-1`` in :func:`palette` colours."""
    return [LegendEntry(str(i), (int(c[0]), int(c[1]), int(c[2]))) for i, c in enumerate(palette(k))]


def region_legend(names: Sequence[str]) -> list[LegendEntry]:
    """One legend entry per region, coloured like region ``r`` in :func:`paint_regions` maps (value ``r + 1``)."""
    colours = label_colours(range(1, len(names) + 1))
    return [LegendEntry(name, colours[index + 1]) for index, name in enumerate(names)]


def panel_scale(height: int, width: int, pixel_aspect: float = 1.0) -> tuple[int, int]:
    """Display size ``(rows, columns)`` of a ``height x width`` slice.

    The short physical side is enlarged by the smallest integer factor that reaches :data:`MIN_PANEL`;
    a long side above :data:`MAX_PANEL` is instead shrunk by the smallest integer divisor that fits.
    """
    if height < 1 or width < 1:
        raise ValueError(f"a panel needs at least one pixel, got {height} x {width}")
    aspect = pixel_aspect if pixel_aspect > 0 and math.isfinite(pixel_aspect) else 1.0
    physical_h, physical_w = height * aspect, float(width)
    if max(physical_h, physical_w) > MAX_PANEL:
        divisor = math.ceil(max(physical_h, physical_w) / MAX_PANEL)
        return max(1, round(physical_h / divisor)), max(1, round(physical_w / divisor))
    factor = max(1, math.ceil(MIN_PANEL / min(physical_h, physical_w)))
    return height * max(1, round(factor * aspect)), width * factor


def _display_size(panel: Panel) -> tuple[int, int]:
    shape = np.shape(panel.image)
    return panel_scale(int(shape[0]), int(shape[1]), panel.pixel_aspect)


def scale_panel(panel: Panel) -> np.ndarray:
    """The panel image at its display size (:func:`panel_scale`)."""
    image = as_rgb_uint8(panel.image)
    rows, cols = panel_scale(image.shape[0], image.shape[1], panel.pixel_aspect)
    if rows % image.shape[0] == 0 and cols % image.shape[1] == 0:
        return np.repeat(np.repeat(image, rows // image.shape[0], axis=0), cols // image.shape[1], axis=1)
    from PIL import Image

    method = Image.Resampling.NEAREST if panel.exact or rows > image.shape[0] else Image.Resampling.BOX
    return np.asarray(Image.fromarray(image).resize((cols, rows), method))


@functools.lru_cache(maxsize=8)
def font(size: int) -> Any:
    """Pillow's built-in font at ``size`` pixels (its fixed bitmap font where Pillow cannot scale it)."""
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # Pillow < 10.1 or built without FreeType
        return ImageFont.load_default()


def _text_size(text: str, size: int) -> tuple[int, int]:
    if not text:
        return 0, 0
    left, top, right, bottom = font(size).getbbox(text)
    return math.ceil(right - min(left, 0)), math.ceil(bottom - min(top, 0))


def _line_height(size: int) -> int:
    return _text_size("Ag|", size)[1] + 4


def _fit_text(text: str, size: int, width: int) -> str:
    """``text``, shortened with an ellipsis until it fits in ``width`` pixels."""
    if _text_size(text, size)[0] <= width:
        return text
    while text and _text_size(text + "...", size)[0] > width:
        text = text[:-1]
    return text + "..." if text else ""


def layout(figure: Figure) -> FigureLayout:
    """Place the title, the rows of panels (with titles and row labels) and the legend entries."""
    if not figure.rows or not any(row.panels for row in figure.rows):
        raise ValueError("a figure needs at least one panel")
    scaled = [[_display_size(panel) for panel in row.panels] for row in figure.rows]
    text_h = _line_height(TEXT_SIZE)
    title_w, title_h = _text_size(figure.title, TITLE_SIZE)
    grid_w = max(sum(w for _, w in row) + GAP * (len(row) - 1) for row in scaled)
    width = max(grid_w, title_w, MIN_WIDTH) + 2 * MARGIN

    out = FigureLayout(width=width, height=0, title_box=(MARGIN, MARGIN, MARGIN + title_w, MARGIN + title_h))
    y = MARGIN + (_line_height(TITLE_SIZE) if figure.title else 0) + GAP
    for row, sizes in zip(figure.rows, scaled, strict=True):
        if row.label:
            out.row_label_boxes.append((MARGIN, y, width - MARGIN, y + text_h))
            y += text_h
        else:
            out.row_label_boxes.append(None)
        x, titles, boxes = MARGIN, [], []
        for h, w in sizes:
            titles.append((x, y, x + w, y + text_h))
            boxes.append((x, y + text_h, x + w, y + text_h + h))
            x += w + GAP
        out.panel_title_boxes.append(titles)
        out.panel_boxes.append(boxes)
        y += text_h + max((h for h, _ in sizes), default=0) + GAP

    if figure.legend:
        if figure.legend_title:
            label_w = _text_size(figure.legend_title + ":", TEXT_SIZE)[0]
            out.legend_title_box = (MARGIN, y, MARGIN + label_w, y + text_h)
            x = MARGIN + label_w + GAP
        else:
            x = MARGIN
        for entry in figure.legend:
            entry_w = SWATCH + 4 + _text_size(entry.name, TEXT_SIZE)[0]
            if x + entry_w > width - MARGIN and x > MARGIN:
                x, y = MARGIN, y + text_h
            out.legend_entries.append((entry, (x, y, x + entry_w, y + text_h)))
            x += entry_w + 2 * GAP
        y += text_h + GAP
    out.height = y + MARGIN - GAP
    return out


def render(figure: Figure) -> np.ndarray:
    """Draw ``figure`` (see :func:`layout`) as an ``H x W x 3`` uint8 image."""
    from PIL import Image, ImageDraw

    where = layout(figure)
    canvas = Image.new("RGB", (where.width, where.height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    if figure.title:
        draw.text(where.title_box[:2], figure.title, fill=TEXT, font=font(TITLE_SIZE))
    for r, row in enumerate(figure.rows):
        label_box = where.row_label_boxes[r]
        if label_box is not None:
            text = _fit_text(row.label, TEXT_SIZE, label_box[2] - label_box[0])
            draw.text((label_box[0], label_box[1] + 1), text, fill=TEXT, font=font(TEXT_SIZE))
        for panel, title_box, box in zip(row.panels, where.panel_title_boxes[r], where.panel_boxes[r], strict=True):
            title = _fit_text(panel.title, TEXT_SIZE, title_box[2] - title_box[0])
            draw.text((title_box[0], title_box[1] + 1), title, fill=PANEL_TEXT, font=font(TEXT_SIZE))
            canvas.paste(Image.fromarray(scale_panel(panel)), box[:2])
    if where.legend_title_box is not None:
        draw.text(
            (where.legend_title_box[0], where.legend_title_box[1] + 1),
            figure.legend_title + ":",
            fill=TEXT,
            font=font(TEXT_SIZE),
        )
    for entry, (x0, y0, _, y1) in where.legend_entries:
        top = y0 + (y1 - y0 - SWATCH) // 2
        draw.rectangle((x0, top, x0 + SWATCH - 1, top + SWATCH - 1), fill=entry.colour, outline=TEXT)
        draw.text((x0 + SWATCH + 4, y0 + 1), entry.name, fill=TEXT, font=font(TEXT_SIZE))
    return np.asarray(canvas, dtype=np.uint8).copy()


def save_png(path: str | Path, image: Any) -> Path:
    """Write an ``H x W x 3`` (or ``H x W``) uint8 image as PNG, atomically (the folder is created)."""
    from PIL import Image

    path = Path(path)
    with atomic_write_path(path) as tmp, open(tmp, "wb") as handle:
        Image.fromarray(as_rgb_uint8(image)).save(handle, format="PNG")
    return path


def save_figure(path: str | Path, figure: Figure) -> Path:
    """:func:`render` ``figure`` and write it as PNG at ``path`` (atomically)."""
    return save_png(path, render(figure))


# ---------------------------------------------------------------------------------------------- charts

CHART_SIZE = (380, 280)
"""Default ``(width, height)`` of a :func:`line_chart` in pixels."""
_PLOT_AREA: Colour = (36, 36, 44)
_GRID: Colour = (66, 66, 78)
_BAND_ALPHA = 64  # of 255: a confidence band lets the lines and grid show through


@dataclass(frozen=True)
class LineSeries:
    """One line of a :func:`line_chart`: points ``(x, y)``, an optional band ``low..high`` and its colour.

    NaN values break the line (and the band) at that point; ``colour`` None takes ``palette`` colour
    number ``i`` for the ``i``-th series.
    """

    name: str
    x: Sequence[float]
    y: Sequence[float]
    low: Sequence[float] | None = None
    high: Sequence[float] | None = None
    colour: Colour | None = None


def series_colours(series: Sequence[LineSeries]) -> list[Colour]:
    """The colour each series is drawn in (its own, or its palette colour)."""
    table = palette(max(1, len(series)))
    return [s.colour or (int(table[i][0]), int(table[i][1]), int(table[i][2])) for i, s in enumerate(series)]


def series_legend(series: Sequence[LineSeries]) -> list[LegendEntry]:
    """One legend entry per series, in the colours :func:`line_chart` draws them."""
    return [LegendEntry(s.name, colour) for s, colour in zip(series, series_colours(series), strict=True)]


def _nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values covering ``[low, high]`` (steps of 1, 2 or 5 times a power of ten)."""
    span = high - low
    raw = span / max(1, count - 1)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1.0, 2.0, 5.0, 10.0) if m * power >= raw - 1e-12)
    first = math.ceil(low / step - 1e-9) * step
    ticks = []
    value = first
    while value <= high + 1e-9 * span:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _runs(points: list[tuple[float, float] | None]) -> list[list[tuple[float, float]]]:
    """The stretches of consecutive points that are not None."""
    runs: list[list[tuple[float, float]]] = [[]]
    for point in points:
        if point is None:
            runs.append([])
        else:
            runs[-1].append(point)
    return [run for run in runs if run]


def line_chart(
    series: Sequence[LineSeries],
    *,
    x_label: str = "",
    y_label: str = "",
    log_x: bool = False,
    y_range: tuple[float, float] | None = None,
    x_ticks: Sequence[tuple[float, str]] | None = None,
    size: tuple[int, int] = CHART_SIZE,
) -> np.ndarray:
    """A line chart as an ``H x W x 3`` uint8 image, to be placed in a :class:`Panel` of a :class:`Figure`.

    Every series is a line with round markers and, when it has ``low``/``high``, a translucent band.
    ``log_x`` puts x on a logarithmic axis (every x must then be positive); ``x_ticks`` are
    ``(value, label)`` pairs (default: the distinct x values); ``y_range`` defaults to the data's range.
    The legend is the figure's (:func:`series_legend`).
    """
    from PIL import Image, ImageDraw

    width, height = size
    xs = [float(v) for s in series for v in s.x if math.isfinite(float(v))]
    if not xs:
        raise ValueError("a line chart needs at least one finite x value")
    if log_x and min(xs) <= 0:
        raise ValueError(f"log_x needs positive x values, got {min(xs)}")

    def fx(value: float) -> float:
        return math.log10(value) if log_x else value

    ys = [
        float(v)
        for s in series
        for values in (s.y, s.low or (), s.high or ())
        for v in values
        if math.isfinite(float(v))
    ]
    y_low, y_high = y_range if y_range is not None else ((min(ys), max(ys)) if ys else (0.0, 1.0))
    if y_high <= y_low:
        y_low, y_high = y_low - 0.5, y_high + 0.5
    x_low, x_high = fx(min(xs)), fx(max(xs))
    if x_high <= x_low:
        x_low, x_high = x_low - 1.0, x_high + 1.0
    pad = 0.04 * (x_high - x_low)
    x_low, x_high = x_low - pad, x_high + pad

    text_h = _line_height(TEXT_SIZE)
    left, right, top, bottom = 46, width - 12, 8, height - 2 * text_h - 6
    if right - left < 40 or bottom - top < 40:
        raise ValueError(f"a line chart of {width} x {height} pixels has no room to plot")

    def px(value: float) -> float:
        return left + (fx(value) - x_low) / (x_high - x_low) * (right - left)

    def py(value: float) -> float:
        return bottom - (value - y_low) / (y_high - y_low) * (bottom - top)

    canvas = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    draw.rectangle((left, top, right, bottom), fill=_PLOT_AREA)
    small = font(TEXT_SIZE)
    for tick in _nice_ticks(y_low, y_high):
        y = py(tick)
        draw.line((left, y, right, y), fill=_GRID)
        label = f"{tick:g}"
        draw.text((left - 4 - _text_size(label, TEXT_SIZE)[0], y - text_h / 2 + 1), label, fill=TEXT, font=small)
    ticks = list(x_ticks) if x_ticks is not None else [(v, f"{v:g}") for v in sorted(set(xs))]
    last_right = -math.inf
    for value, label in ticks:
        x = px(float(value))
        draw.line((x, top, x, bottom), fill=_GRID)
        label_w = _text_size(label, TEXT_SIZE)[0]
        if x - label_w / 2 > last_right + 2:  # leave out labels that would overlap the previous one
            draw.text((x - label_w / 2, bottom + 3), label, fill=TEXT, font=small)
            last_right = x + label_w / 2
    if x_label:
        label_w = _text_size(x_label, TEXT_SIZE)[0]
        draw.text(((left + right - label_w) / 2, bottom + text_h + 3), x_label, fill=TEXT, font=small)
    if y_label:
        draw.text((left + 4, top + 2), y_label, fill=PANEL_TEXT, font=small)

    colours = series_colours(series)
    overlay = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    shade = ImageDraw.Draw(overlay)
    for s, colour in zip(series, colours, strict=True):
        if s.low is None or s.high is None:
            continue
        edges: list[tuple[float, float] | None] = []  # (x pixel, index) of the points with a full band
        for i, (x, lo, hi) in enumerate(zip(s.x, s.low, s.high, strict=True)):
            ok = all(math.isfinite(float(v)) for v in (x, lo, hi)) and (not log_x or float(x) > 0)
            edges.append((px(float(x)), float(i)) if ok else None)
        for run in _runs(edges):
            if len(run) < 2:
                continue
            upper = [(x, py(float(s.high[int(i)]))) for x, i in run]
            lower = [(x, py(float(s.low[int(i)]))) for x, i in reversed(run)]
            shade.polygon(upper + lower, fill=(*colour, _BAND_ALPHA))
    canvas = Image.alpha_composite(canvas.convert("RGBA"), overlay).convert("RGB")
    draw = ImageDraw.Draw(canvas)
    for s, colour in zip(series, colours, strict=True):
        points = [
            (px(float(x)), py(float(y))) if math.isfinite(float(x)) and math.isfinite(float(y)) else None
            for x, y in zip(s.x, s.y, strict=True)
        ]
        for run in _runs(points):
            if len(run) > 1:
                draw.line(run, fill=colour, width=3)
            for x, y in run:
                draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=colour)
    draw.rectangle((left, top, right, bottom), outline=_GRID)
    return np.asarray(canvas, dtype=np.uint8).copy()
