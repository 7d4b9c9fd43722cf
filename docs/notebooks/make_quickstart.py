"""Writes quickstart.ipynb (kept as code so that the notebook's source is reviewable in diffs).

Run ``python docs/notebooks/make_quickstart.py`` after editing; CI executes the notebook.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

CELLS: list[tuple[str, str]] = [
    (
        "md",
        """# radiossl quick start

The whole pipeline from Python, step by step, on phantom data: synthesize → preprocess → k-means targets →
pretrain (pixel-level clustering) → finetune → evaluate. Every function is part of the public API
(`import radiossl`) and takes the same typed configs as the CLI. Settings are tiny so the notebook runs on a
laptop CPU in a few minutes; raise `WIDTH`, `EPOCHS` and the shapes for real runs.""",
    ),
    (
        "code",
        """import os
from pathlib import Path

from IPython.display import Image, display

import radiossl

OUT = Path(os.environ.get("RADIOSSL_NOTEBOOK_OUT", "quickstart-output")).resolve()
WIDTH, EPOCHS, SEED = 0.125, 1, 1
print(radiossl.__version__, OUT)""",
    ),
    ("md", "## 1. Phantom BraTS data in the real on-disk layout"),
    (
        "code",
        """raw = OUT / "BraTS18"
synth = radiossl.synthesize("brats", raw, cases=6, shape=(48, 48, 32), seed=SEED, preview=True, overwrite=True)
print(synth.case_ids)
display(Image(filename=str(synth.preview)))""",
    ),
    ("md", "## 2. Preprocess into overlapping crop pairs"),
    (
        "code",
        """from radiossl.data.preprocess import PreprocessConfig

proc = OUT / "proc"
prep = radiossl.preprocess(PreprocessConfig(
    dataset="brats18", data=raw, out=proc, view="cluster", pairs=2, seed=SEED,
    crop_size=(32, 32, 16), candidate_sizes=[(32, 32, 16), (40, 40, 16)], progress=False,
))
print(f"{prep.ok} cases, {prep.samples} samples, {prep.failed} failed")
print((proc / "manifest.csv").read_text().splitlines()[:3])""",
    ),
    ("md", "## 3. Pixel-level targets: filter-bank features + K-means (faiss), then assign every voxel"),
    (
        "code",
        """from radiossl.clustering.config import KMeansConfig, KMeansPredictConfig

fit = radiossl.kmeans_fit(KMeansConfig.model_validate(
    {"data": {"root": proc}, "kmeans": {"k": 4}, "runtime": {"seed": SEED}, "progress": False}))
print(f"k={fit.k}, {fit.n_points} voxels, inertia {fit.inertia:.3g}, sizes {fit.cluster_sizes}")
pred = radiossl.kmeans_predict(KMeansPredictConfig.model_validate(
    {"data": {"root": proc}, "centroids": fit.centroids, "progress": False}))
print(pred.tag, len(pred.target_files), "target files")
if pred.montage is not None:
    display(Image(filename=str(pred.montage)))""",
    ),
    ("md", "## 4. Pretrain pixel-level clustering"),
    (
        "code",
        """pre_cfg = radiossl.load_config("pretrain", "pixel-cluster", flags={
    "data": {"root": str(proc), "crop_size": [32, 32, 16], "workers": 0},
    "model": {"width": WIDTH}, "method": {"k": 4},
    "optim": {"epochs": EPOCHS, "batch_size": 2}, "runtime": {"seed": SEED, "device": "cpu"},
    "logging": {"vis": True, "progress": False}, "out": str(OUT / "runs"),
})
pretrained = radiossl.pretrain(pre_cfg)
print(pretrained.final_checkpoint)
for png in sorted((pretrained.run_dir / "vis").glob("*.png")):
    display(Image(filename=str(png)))""",
    ),
    ("md", "## 5. Finetune brain-tumour segmentation from the pretrained encoder"),
    (
        "code",
        """ft_cfg = radiossl.load_config("finetune", "brats", flags={
    "data": {"root": str(raw), "crop_size": [32, 32, 32], "ratio": 1.0, "workers": 0},
    "model": {"width": WIDTH}, "optim": {"epochs": EPOCHS, "batch_size": 2},
    "runtime": {"seed": SEED, "device": "cpu"}, "logging": {"progress": False},
    "weights": str(pretrained.final_checkpoint), "transfer": "encoder", "out": str(OUT / "runs"),
})
finetuned = radiossl.finetune(ft_cfg)
print(finetuned.run_dir)""",
    ),
    ("md", "## 6. Evaluate on the held-out cases: Dice and HD95 per region"),
    (
        "code",
        """ev_cfg = radiossl.load_config("evaluate", "brats", flags={
    "data": {"root": str(raw)}, "weights": str(finetuned.final_checkpoint),
    "out": str(OUT / "evaluation"), "split": "test", "save_predictions": True,
})
evaluation = radiossl.evaluate(ev_cfg)
for region, stats in evaluation.summary["regions"].items():
    print(f"{region}: Dice {stats['dice_mean']:.3f}  HD95 {stats['hd_mean']:.1f} mm")
print(evaluation.metrics_csv.read_text())""",
    ),
    ("md", "Predictions are NIfTI files with the input's geometry and BraTS label values:"),
    (
        "code",
        """import nibabel as nib
import numpy as np

first = evaluation.predictions[0]
img = nib.load(first)
print(first.name, img.shape, np.unique(np.asarray(img.dataobj)))""",
    ),
]


def build() -> nbformat.NotebookNode:
    cells = [new_markdown_cell(src) if kind == "md" else new_code_cell(src) for kind, src in CELLS]
    notebook = new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return notebook


if __name__ == "__main__":
    target = Path(__file__).with_name("quickstart.ipynb")
    nbformat.write(build(), target)
    print(f"wrote {target}")
