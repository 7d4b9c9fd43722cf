"""Are the pixel-level clusters anatomical? NMI against tissue maps of the MNI152 template.

The MNI152 T1 template and its grey- and white-matter probability maps ship inside the nilearn
wheel (no download). Inside nilearn's brain mask (T1 > 0.2) every voxel gets a reference tissue
label: the argmax of (CSF, GM, WM), where CSF = max(0, 1 - GM - WM) because nilearn ships no CSF map
offline. The volume (values in [0, 1]) is treated as one crop: features come from each
extractor + upsampler combination, K-means (radiossl's faiss fit, on a seeded sample of brain
voxels, then assignment of every brain voxel) clusters them, and the normalised mutual information
(scikit-learn ``normalized_mutual_info_score``) between clusters and tissue labels is reported —
mean ± std over ``--seeds``. Features are prepared as ``radiossl kmeans fit`` does (standardised
per channel and weighted with the extractor's channel weights where it has them; one row repeats
the filterbank with equal weights). The baseline clusters the T1 intensity alone.

Combinations that need weights run only when a file is given (``--dino-weights`` for dino-vits16
with bilinear / jbu, plus featup-jbu with ``--featup-weights``; ``--encoder-weights`` for a
radiossl checkpoint); otherwise they are listed as skipped.

Usage::

    python benchmarks/kmeans_nmi.py                            # 2 mm template, K = 3 and 10
    python benchmarks/kmeans_nmi.py --resolution 1 --k 3 --json nmi.json
    python benchmarks/kmeans_nmi.py --dino-weights dino_deitsmall16_pretrain.pth
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np


def load_template(resolution: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """T1 volume in [0, 1], brain mask, and tissue labels (0 CSF, 1 GM, 2 WM) from nilearn."""
    from nilearn import datasets

    t1 = datasets.load_mni152_template(resolution=resolution).get_fdata().astype(np.float32)
    gm = datasets.load_mni152_gm_template(resolution=resolution).get_fdata()
    wm = datasets.load_mni152_wm_template(resolution=resolution).get_fdata()
    mask = datasets.load_mni152_brain_mask(resolution=resolution).get_fdata() > 0
    csf = np.clip(1.0 - gm - wm, 0.0, 1.0)
    tissue = np.argmax(np.stack([csf, gm, wm]), axis=0)
    return np.clip(t1, 0.0, 1.0), mask, tissue


def brain_features(
    volume: np.ndarray, mask: np.ndarray, extractor: str, upsampler: str, **kw: Any
) -> tuple[np.ndarray, list[float] | None, bool]:
    """Brain-voxel features ``(n_brain, d)``, the extractor's channel weights, and whether K-means
    standardises its features by default (as ``radiossl kmeans fit`` uses them)."""
    import torch

    from radiossl.features import build_pipeline

    pipeline = build_pipeline(extractor, upsampler, **kw)
    with torch.no_grad():
        features = pipeline(torch.from_numpy(volume)[None, None])[0]
    rows = features[:, torch.from_numpy(mask)].T.contiguous().numpy()
    ext = pipeline.extractor
    return rows, ext.channel_weights(1), ext.standardize_default


def cluster_nmi(
    features: np.ndarray,
    tissue: np.ndarray,
    k: int,
    seed: int,
    sample: int,
    standardize: bool,
    weights: list[float] | None = None,
) -> float:
    """Fit on a seeded sample of brain voxels, assign all of them, NMI with the tissue labels."""
    from sklearn.metrics import normalized_mutual_info_score

    from radiossl.clustering.faiss_kmeans import CentroidAssigner, fit_kmeans
    from radiossl.clustering.sampling import FeatureTransform

    rng = np.random.default_rng(seed)
    idx = rng.choice(features.shape[0], size=min(sample, features.shape[0]), replace=False)
    transform = FeatureTransform.fit(features[idx], standardize=standardize, l2_normalize=False, weights=weights)
    fit = fit_kmeans(transform.apply_numpy(features[idx].copy()), k, seed=seed)
    labels = CentroidAssigner(fit.centroids).assign_numpy(transform.apply_numpy(features.copy()))
    return float(normalized_mutual_info_score(tissue, labels))


def combinations(args: argparse.Namespace) -> list[tuple[str, str, str, dict[str, Any], str | None]]:
    """(row name, extractor, upsampler, build kwargs, reason to skip or None)."""
    rows: list[tuple[str, str, str, dict[str, Any], str | None]] = [
        ("intensity (baseline)", "", "", {}, None),
        ("filterbank + bilinear", "filterbank", "bilinear", {}, None),
        ("filterbank + jbu", "filterbank", "jbu", {}, None),
        ("filterbank + bilinear, equal weights", "filterbank", "bilinear", {"equal_weights": True}, None),
    ]
    dino = {"weights": args.dino_weights, "slice_batch": 16} if args.dino_weights else {}
    no_dino = None if args.dino_weights else "needs --dino-weights (dino_deitsmall16_pretrain.pth)"
    rows += [
        ("dino-vits16 + bilinear", "dino-vits16", "bilinear", dino, no_dino),
        ("dino-vits16 + jbu", "dino-vits16", "jbu", dino, no_dino),
    ]
    featup = dict(dino, upsampler_weights=args.featup_weights) if args.featup_weights else dino
    no_featup = no_dino or (None if args.featup_weights else "needs --featup-weights (FeatUp JBU .ckpt)")
    rows.append(("dino-vits16 + featup-jbu", "dino-vits16", "featup-jbu", featup, no_featup))
    encoder = {"weights": args.encoder_weights} if args.encoder_weights else {}
    no_encoder = None if args.encoder_weights else "needs --encoder-weights (a radiossl checkpoint)"
    rows += [
        ("encoder + bilinear", "encoder", "bilinear", encoder, no_encoder),
        ("encoder + jbu", "encoder", "jbu", encoder, no_encoder),
    ]
    return rows


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    torch.set_num_threads(args.threads)
    volume, mask, tissue_map = load_template(args.resolution)
    tissue = tissue_map[mask]
    results: dict[str, Any] = {
        "setup": {
            "template": f"MNI152 (nilearn), {args.resolution} mm, shape {list(volume.shape)}",
            "brain_voxels": int(mask.sum()),
            "tissue_counts": {
                n: int(c) for n, c in zip(("csf", "gm", "wm"), np.bincount(tissue, minlength=3), strict=True)
            },
            "k": args.k,
            "seeds": args.seeds,
            "sample": args.sample,
        },
        "rows": {},
    }
    for name, extractor, upsampler, kwargs, skip in combinations(args):
        if skip:
            results["rows"][name] = {"skipped": skip}
            continue
        tick = time.perf_counter()
        weights: list[float] | None = None
        if not extractor:
            features, standardize = volume[mask][:, None].copy(), False
        else:
            options = dict(kwargs)
            equal = bool(options.pop("equal_weights", False))
            features, weights, standardize = brain_features(volume, mask, extractor, upsampler, **options)
            weights = None if equal else weights
        feature_s = time.perf_counter() - tick
        row: dict[str, Any] = {"feature_dim": int(features.shape[1]), "feature_seconds": feature_s}
        for k in args.k:
            scores = [
                cluster_nmi(features, tissue, k, seed, args.sample, standardize, weights) for seed in range(args.seeds)
            ]
            row[f"nmi_k{k}"] = statistics.mean(scores)
            row[f"nmi_k{k}_std"] = statistics.pstdev(scores)
        row["seconds"] = time.perf_counter() - tick
        results["rows"][name] = row
        print(f"  done: {name} ({row['seconds']:.1f} s)", flush=True)
    return results


def print_table(results: dict[str, Any]) -> None:
    setup = results["setup"]
    counts = setup["tissue_counts"]
    print(
        f"{setup['template']}: {setup['brain_voxels']:,} brain voxels (CSF {counts['csf']:,}, GM {counts['gm']:,}, "
        f"WM {counts['wm']:,}); NMI mean ± std over {setup['seeds']} seeds"
    )
    header = "".join(f"{'NMI K=' + str(k):>18s}" for k in setup["k"])
    print(f"{'features':38s}{'dim':>5s}{header}{'time s':>9s}")
    for name, row in results["rows"].items():
        if "skipped" in row:
            print(f"{name:38s}  skipped: {row['skipped']}")
            continue
        cells = "".join(f"{row[f'nmi_k{k}']:>11.3f} ±{row[f'nmi_k{k}_std']:.3f}" for k in setup["k"])
        print(f"{name:38s}{row['feature_dim']:5d}{cells}{row['seconds']:9.1f}")


def main() -> None:
    from radiossl.runtime.cpu import machine_line

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=2, choices=(1, 2), help="Template voxel size (mm).")
    parser.add_argument("--k", type=int, nargs="+", default=[3, 10], help="Cluster counts.")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--sample", type=int, default=100_000, help="Brain voxels used to fit K-means.")
    parser.add_argument("--dino-weights", type=Path, help="dino_deitsmall16_pretrain.pth")
    parser.add_argument("--featup-weights", type=Path, help="FeatUp dino16 JBU checkpoint (.ckpt)")
    parser.add_argument("--encoder-weights", type=Path, help="A radiossl checkpoint (3-D encoder)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, help="Also write the results here.")
    args = parser.parse_args()
    results = run(args)
    results["setup"]["machine"] = machine_line()
    print(results["setup"]["machine"])
    print_table(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
