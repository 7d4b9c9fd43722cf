"""Each phantom kind writes exactly the real data set's layout, file names and label values."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from radiossl.data.phantoms import SynthResult, synthesize
from radiossl.data.phantoms.lits import split_of
from radiossl.errors import ConfigError
from radiossl.io import read_image


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_brats_layout_and_labels(tmp_path: Path, tiny_shapes: dict) -> None:
    result = synthesize("brats", tmp_path / "b", cases=3, shape=tiny_shapes["brats"], seed=3)
    ids = ["Brats18_PHANTOM_000_1", "Brats18_PHANTOM_001_1", "Brats18_PHANTOM_002_1"]
    assert result.case_ids == ids
    assert result.groups == dict(zip(ids, ["HGG", "LGG", "HGG"], strict=True))
    expected = [
        f"{grade}/{case}/{case}_{suffix}.nii.gz"
        for case, grade in result.groups.items()
        for suffix in ("flair", "seg", "t1", "t1ce", "t2")
    ]
    assert _files(result.out) == sorted(expected)
    labels: set[int] = set()
    for case, grade in result.groups.items():
        folder = result.out / grade / case
        seg = read_image(folder / f"{case}_seg.nii.gz")
        assert seg.array.dtype == np.uint8 and seg.shape == (32, 32, 24)
        values = set(np.unique(seg.array).tolist())
        assert values <= {0, 1, 2, 4} and 1 in values  # every case has a tumour core
        labels |= values
        np.testing.assert_allclose(seg.spacing, (1.0, 1.0, 1.0))
        flair = read_image(folder / f"{case}_flair.nii.gz")
        assert flair.array.dtype == np.int16
        np.testing.assert_allclose(flair.affine, seg.affine)
        # Skull-stripped like BraTS: zero outside the brain, no labels outside it either.
        assert flair.array[0, 0, 0] == 0 and np.all(flair.array[seg.array > 0] > 0)
    assert labels == {0, 1, 2, 4}


def test_brats_contrasts_behave_like_mri(tmp_path: Path) -> None:
    """Oedema is bright on FLAIR, the enhancing rim is bright on T1ce, the tumour core dark on T1."""
    result = synthesize("brats", tmp_path / "b", cases=1, shape=(48, 48, 32), seed=5)
    case = result.case_ids[0]
    folder = result.out / "HGG" / case
    img = {c: read_image(folder / f"{case}_{c}.nii.gz").array.astype(np.float64) for c in ("flair", "t1", "t1ce")}
    seg = read_image(folder / f"{case}_seg.nii.gz").array
    brain = img["t1"] > 0
    normal = brain & (seg == 0)
    assert img["flair"][seg == 2].mean() > 1.3 * img["flair"][normal].mean()
    assert img["t1ce"][seg == 4].mean() > 1.2 * img["t1ce"][normal].mean()
    assert img["t1"][seg == 1].mean() < 0.7 * img["t1"][normal].mean()


def test_lits_layout_labels_and_split(tmp_path: Path, tiny_shapes: dict) -> None:
    result = synthesize("lits", tmp_path / "l", cases=3, shape=tiny_shapes["lits"], seed=1)
    assert result.case_ids == ["volume-0", "volume-1", "volume-2"]
    assert result.groups == {"volume-0": "train", "volume-1": "train", "volume-2": "val"}
    assert _files(result.out) == sorted(
        [f"train/ct/volume-{i}.nii" for i in (0, 1)]
        + [f"train/seg/segmentation-{i}.nii" for i in (0, 1)]
        + ["val/ct/volume-2.nii", "val/seg/segmentation-2.nii"]
    )
    ct = read_image(result.out / "train/ct/volume-0.nii")
    seg = read_image(result.out / "train/seg/segmentation-0.nii")
    assert ct.array.dtype == np.int16 and seg.array.dtype == np.uint8
    assert set(np.unique(seg.array).tolist()) == {0, 1, 2}  # volume-0 always has a tumour
    np.testing.assert_allclose(ct.affine, seg.affine)
    assert ct.spacing[2] > ct.spacing[0]  # anisotropic: thicker slices
    assert ct.array.min() <= -900  # air outside the body
    liver = ct.array[seg.array == 1]
    assert 20 < np.median(liver) < 120
    assert np.median(ct.array[seg.array == 2]) < np.median(liver)  # hypodense tumours


def test_lits_split_rule() -> None:
    assert [split_of(i, 50).count("val") for i in range(50)].count(1) == 20
    assert all(split_of(i, 50) == "val" for i in range(28, 48))
    assert split_of(27, 50) == "train" and split_of(48, 50) == "train"
    assert [split_of(i, 30) for i in (27, 28, 29)] == ["train", "val", "val"]
    assert [split_of(i, 5) for i in range(5)] == ["train"] * 4 + ["val"]
    assert split_of(0, 1) == "train"


def test_luna_layout_hu_and_annotations(tmp_path: Path, tiny_shapes: dict) -> None:
    result = synthesize("luna", tmp_path / "u", cases=12, shape=tiny_shapes["luna"], seed=2)
    assert len(set(result.case_ids)) == 12
    for i, uid in enumerate(result.case_ids):
        assert uid.startswith("1.3.6.1.4.1.14519.5.2.1.")
        assert all(part.isdigit() for part in uid.split("."))
        assert result.groups[uid] == f"subset{i % 10}"
    expected = [f"subset{i % 10}/{uid}.{ext}" for i, uid in enumerate(result.case_ids) for ext in ("mhd", "raw")]
    assert _files(result.out) == sorted([*expected, "annotations.csv"])
    vol = read_image(result.out / "subset0" / f"{result.case_ids[0]}.mhd")
    assert vol.array.dtype == np.int16
    lung_voxels = np.count_nonzero((vol.array > -950) & (vol.array < -700))
    assert lung_voxels > 0.1 * vol.array.size  # lungs fill a good part of the chest
    assert vol.array.max() > 300  # bone
    with open(result.out / "annotations.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows and {r["seriesuid"] for r in rows} <= set(result.case_ids)
    assert result.case_ids[0] in {r["seriesuid"] for r in rows}  # case 0 always has a nodule
    for row in rows:
        assert 3.0 <= float(row["diameter_mm"]) <= 30.0


def test_luna_annotation_points_at_a_nodule(tmp_path: Path) -> None:
    """The LPS world coordinate in annotations.csv maps back to a dense voxel inside the lung."""
    result = synthesize("luna", tmp_path / "u", cases=1, shape=(48, 48, 32), seed=4)
    uid = result.case_ids[0]
    vol = read_image(result.out / "subset0" / f"{uid}.mhd")
    with open(result.out / "annotations.csv", newline="") as handle:
        row = next(csv.DictReader(handle))
    ras = np.array([-float(row["coordX"]), -float(row["coordY"]), float(row["coordZ"]), 1.0])
    i, j, k = np.rint(np.linalg.solve(vol.affine, ras)[:3]).astype(int)
    assert vol.array[i, j, k] > -700


def test_nnunet_layout_and_dataset_json(tmp_path: Path, tiny_shapes: dict) -> None:
    result = synthesize("nnunet", tmp_path / "n", cases=4, shape=tiny_shapes["nnunet"], seed=1)
    root = result.out / "Dataset901_Phantom"
    assert result.case_ids == [f"case_{i:04d}" for i in range(5)]
    train = [f"case_{i:04d}" for i in range(4)]
    expected = (
        ["Dataset901_Phantom/dataset.json"]
        + [f"Dataset901_Phantom/imagesTr/{c}_{ch:04d}.nii.gz" for c in train for ch in (0, 1)]
        + [f"Dataset901_Phantom/labelsTr/{c}.nii.gz" for c in train]
        + [f"Dataset901_Phantom/imagesTs/case_0004_{ch:04d}.nii.gz" for ch in (0, 1)]
        + ["Dataset901_Phantom/labelsTs/case_0004.nii.gz"]
    )
    assert _files(result.out) == sorted(expected)
    meta = json.loads((root / "dataset.json").read_text())
    assert meta["channel_names"] == {"0": "FLAIR", "1": "T1ce"}
    assert meta["labels"] == {"background": 0, "edema": 1, "tumor": 2}
    assert meta["numTraining"] == 4 and meta["file_ending"] == ".nii.gz"
    labels: set[int] = set()
    for case in train:
        lab = read_image(root / "labelsTr" / f"{case}.nii.gz")
        img = read_image(root / "imagesTr" / f"{case}_0000.nii.gz")
        assert img.array.dtype == np.float32 and img.shape == lab.shape
        labels |= set(np.unique(lab.array).tolist())
    assert labels == {0, 1, 2}


def test_preview_png(tmp_path: Path) -> None:
    from PIL import Image

    result = synthesize("lits", tmp_path / "l", cases=2, shape=(32, 32, 16), seed=1, preview=True)
    assert result.preview == result.out / "preview.png"
    with Image.open(result.preview) as png:
        assert png.format == "PNG" and png.width > 300 and png.height > 300
        pixels = np.asarray(png.convert("RGB"))
    assert pixels.std() > 10  # not a blank canvas
    red = (pixels[..., 0] > 150) & (pixels[..., 1] < 120)
    assert red.any()  # the liver overlay is drawn


def test_preview_figure_has_a_legend_of_the_label_names_and_nearest_upscaled_tiles() -> None:
    from radiossl.data.phantoms.lits import LABEL_NAMES
    from radiossl.data.phantoms.preview import Tile, montage_figure
    from radiossl.utils.figures import MIN_PANEL, label_colours, layout, scale_panel

    label = np.zeros((32, 24), np.uint8)
    label[4:20, 4:12] = 1
    label[8:10, 6:8] = 2
    label[0, 0] = 7  # a value without a name still gets a legend entry
    tile = Tile("ct+seg", np.random.default_rng(0).normal(0, 50, (32, 24)).astype(np.float32), label, (-160.0, 240.0))
    figure = montage_figure([("case 1", [tile])], title="lits phantoms", label_names=LABEL_NAMES)
    assert figure.title == "lits phantoms" and figure.rows[0].label == "case 1"
    assert [entry.name for entry in figure.legend] == ["1 liver", "2 tumour", "7 label 7"]
    assert [entry.colour for entry in figure.legend] == [label_colours([1, 2, 7])[v] for v in (1, 2, 7)]
    panel = figure.rows[0].panels[0]
    enlarged = scale_panel(panel)
    assert enlarged.shape[:2] == (256, 192) and min(enlarged.shape[:2]) >= MIN_PANEL  # 24 columns at 8x
    assert (enlarged[::8, ::8] == panel.image).all()  # nearest neighbour: every pixel is an 8 x 8 block
    assert len(layout(figure).legend_entries) == 3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "mri"}, "unknown phantom kind"),
        ({"cases": 0}, "--cases"),
        ({"seed": -1}, "--seed"),
        ({"shape": (8, 32, 32)}, "--shape"),
        ({"shape": (32, 32)}, "--shape"),
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict, message: str) -> None:
    args = {"kind": "brats", "out": tmp_path / "x", "cases": 1, "shape": (32, 32, 24), "seed": 0, **kwargs}
    with pytest.raises(ConfigError, match=message):
        synthesize(**args)


def test_refuses_non_empty_folder_unless_overwrite(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not empty"):
        synthesize("lits", tmp_path, cases=1, shape=(32, 32, 16))
    result: SynthResult = synthesize("lits", tmp_path, cases=1, shape=(32, 32, 16), overwrite=True)
    assert (tmp_path / "notes.txt").read_text() == "keep me"
    assert result.files[0].is_file()
