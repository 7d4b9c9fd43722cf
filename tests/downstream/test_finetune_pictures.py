"""The ``segmentation`` picture of a finetuning run (``--vis``): panels, slice, legend, title, colours."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from radiossl.downstream.config import load_task_config
from radiossl.downstream.datasets import Patch
from radiossl.downstream.finetune import FinetuneTask
from radiossl.engine.protocol import StepContext
from radiossl.utils import figures
from radiossl.utils.figures import MIN_PANEL, Figure, label_colours, layout

CROP = 32


class _Cases:
    def case_id(self, index: int) -> str:
        return f"Brats18_X_{index}"


def _patches() -> Patch:
    """Two 32^3 patches with nested WT > TC > ET spheres, densest around slice 20 (patch 0) and 9 (patch 1)."""
    grid = np.stack(np.meshgrid(*(np.arange(CROP),) * 3, indexing="ij"))
    targets = []
    for centre_z in (20, 9):
        distance = np.sqrt(((grid - np.array([16, 16, centre_z])[:, None, None, None]) ** 2).sum(0))
        targets.append(np.stack([distance < 9, distance < 5, distance < 2]))
    image = torch.rand(2, 4, CROP, CROP, CROP, generator=torch.Generator().manual_seed(0))
    return Patch(image, torch.from_numpy(np.stack(targets).astype(np.uint8)), torch.tensor([4, 1]))


@pytest.fixture
def task(brats_root: Path) -> FinetuneTask:
    flags: dict[str, Any] = {
        "data": {"root": str(brats_root), "crop_size": [CROP] * 3, "ratio": 1.0},
        "model": {"width": 0.125},
    }
    return FinetuneTask(load_task_config("finetune", "brats", flags=flags))


def test_segmentation_picture_of_a_32_cube_crop(task: FinetuneTask, monkeypatch: pytest.MonkeyPatch) -> None:
    drawn: list[Figure] = []
    render = figures.render

    def capture(figure: Figure) -> np.ndarray:
        drawn.append(figure)
        return render(figure)

    monkeypatch.setattr(figures, "render", capture)
    context = StepContext(4, 60, 0, torch.device("cpu"), extra={"train_set": _Cases()})
    model = task.build_model().eval()
    with torch.no_grad():
        image = task.visualise(model, _patches(), context)["segmentation"]

    (figure,) = drawn
    assert figure.title == "brats segmentation | case Brats18_X_4, Brats18_X_1 | epoch 5/60"
    assert [row.label for row in figure.rows] == ["patch 1 of case Brats18_X_4", "patch 2 of case Brats18_X_1"]
    titles = [[panel.title for panel in row.panels] for row in figure.rows]
    channel = task.task.channel_names()[0]
    assert titles[0] == [f"input {channel} (z=20)", "ground truth", "prediction", "prediction over input"]
    assert titles[1][0] == f"input {channel} (z=9)"  # the slice with most foreground, not the middle one
    assert [entry.name for entry in figure.legend] == ["WT", "TC", "ET"]

    colours = {(0, 0, 0), *label_colours([1, 2, 3]).values()}
    where = layout(figure)
    for r in range(2):
        for p in (1, 2):  # ground truth, prediction
            left, top, right, bottom = where.panel_boxes[r][p]
            assert (right - left, bottom - top) == (MIN_PANEL, MIN_PANEL)
            assert {tuple(c) for c in image[top:bottom, left:right].reshape(-1, 3)} <= colours
    truth = image[slice(*where.panel_boxes[0][1][1::2]), slice(*where.panel_boxes[0][1][0::2])]
    assert len({tuple(c) for c in truth.reshape(-1, 3)}) == 4  # background and all three nested regions

    # two rows of four 192-pixel panels, plus the title band, panel titles and the legend
    assert image.dtype == np.uint8 and image.shape[2] == 3
    assert image.shape[0] > 2 * MIN_PANEL + 60 and image.shape[1] >= 4 * MIN_PANEL


def test_patches_carry_their_index_and_name_their_case(task: FinetuneTask) -> None:
    train_set, _ = task.build_datasets()
    assert task.train_cache is not None and len(task.train_cache) > 1
    item = train_set[1]
    assert isinstance(item, Patch) and int(item.index) == 1
    assert train_set.case_id(1) == task.train_cache.cases[1].case_id != train_set.case_id(0)  # type: ignore[attr-defined]
