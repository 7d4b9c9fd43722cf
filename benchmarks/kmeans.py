"""K-means fit strategies for pixel-level targets: time and held-out inertia.

On phantom BraTS data (``radiossl synth brats`` + ``radiossl preprocess``, cluster view) with the
default ``filterbank`` features, this compares:

* ``radiossl``      faiss K-means trained once on a seeded voxel sample drawn from every training crop
                    (what ``radiossl kmeans fit`` does), with k-means++ (default) or random init;
* ``thesis``        the original script: ``faiss.Kmeans`` (defaults: niter 25, max 256 points per
                    centroid) re-trained on every batch of ``--batch`` crop pairs; the saved centroids
                    are those of the last batch (≤ 256·K points). The loader shuffles, so any batch may
                    be last: the held-out inertia is given over ``--last-batches`` different last batches,
                    and the time is the total over all batches, as the script spends it;
* ``sklearn``       scikit-learn ``KMeans`` on the same sample as ``radiossl`` (``init="random"``,
                    ``n_init=1``, ``max_iter`` = niter, like faiss) and with its defaults (k-means++).

Every method is scored by the inertia (sum of squared distances to the nearest centroid) of one
held-out feature set: voxels sampled from the validation and test crops, in the same feature space
(standardised and weighted as ``radiossl kmeans fit`` does). Lower is better.

Usage::

    python benchmarks/kmeans.py                     # 4 phantom cases, K = 10
    python benchmarks/kmeans.py --cases 4 --k 10 --json kmeans.json
    python benchmarks/kmeans.py --data PROC         # an existing preprocessed folder instead
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def make_phantom_proc(workdir: Path, cases: int, seed: int) -> Path:
    """Synthesise phantom BraTS cases and preprocess them into crop pairs (cluster view)."""
    from radiossl.data.phantoms import synthesize
    from radiossl.data.preprocess import PreprocessConfig, preprocess

    raw, proc = workdir / "brats", workdir / "brats_proc"
    synthesize("brats", raw, cases=cases, seed=seed)
    preprocess(PreprocessConfig(dataset="brats18", data=raw, out=proc, seed=seed, progress=False))
    return proc


def feature_batches(dataset: Any, records: list[Any], pipeline: Any, batch: int) -> Any:
    """Yield ``(records, pairs, features)`` for consecutive batches of crop pairs."""
    import torch

    from radiossl.clustering.fit import pair_batch, pair_features

    for start in range(0, len(records), batch):
        chunk = records[start : start + batch]
        pairs = pair_batch(dataset, chunk)
        yield chunk, pairs, pair_features(pipeline, pairs, torch.device("cpu"))


def voxel_sample(
    dataset: Any,
    records: list[Any],
    pipeline: Any,
    per_crop: int,
    seed: int,
    batch: int = 2,
    on_batch: Any = None,
) -> np.ndarray:
    """Seeded voxels of every crop of ``records`` (as ``radiossl kmeans fit`` samples them).

    ``on_batch(index, features)`` is called with each batch's full features (for the thesis method).
    """
    import torch

    from radiossl.clustering.fit import voxel_rows
    from radiossl.clustering.sampling import SAMPLE_STREAM, sample_voxels
    from radiossl.utils.seeding import rng_for

    rows = []
    for b, (chunk, pairs, features) in enumerate(feature_batches(dataset, records, pipeline, batch)):
        if on_batch is not None:
            on_batch(b, features)
        for j, record in enumerate(chunk):
            for crop in (0, 1):
                idx = sample_voxels(pairs[j, crop], per_crop, rng_for(seed, SAMPLE_STREAM, record.sample_id, crop))
                rows.append(voxel_rows(features[2 * j + crop])[torch.from_numpy(idx)].numpy())
    return np.concatenate(rows).astype(np.float32)


def run(args: argparse.Namespace) -> dict[str, Any]:
    import faiss
    import torch
    from sklearn.cluster import KMeans

    from radiossl.clustering.faiss_kmeans import fit_kmeans, inertia
    from radiossl.clustering.fit import voxel_rows
    from radiossl.clustering.sampling import FeatureTransform
    from radiossl.data.processed import ProcessedDataset
    from radiossl.features import build_pipeline

    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        proc = Path(args.data) if args.data else make_phantom_proc(Path(tmp), args.cases, args.seed)
        prepare_s = time.perf_counter() - start
        dataset = ProcessedDataset.open(proc)
        train = [r for r in dataset.records("train") if r.view == "cluster"]
        held_out = [r for r in dataset.records(None) if r.view == "cluster" and r.split != "train"]
        if not train or not held_out:
            sys.exit(f"{proc}: needs crop pairs in the train split and in val/test")
        pipeline = build_pipeline("filterbank", "bilinear")
        k = args.k

        # The thesis script re-trains K-means on every batch (timed here on each batch's features) and
        # keeps the last batch's centroids; the loader shuffles, so candidate last batches are kept.
        n_batches = -(-len(train) // args.batch)
        rng = np.random.default_rng(args.seed)
        candidates = set(rng.choice(n_batches, size=min(args.last_batches, n_batches), replace=False).tolist())
        kept: dict[int, np.ndarray] = {}
        thesis_time = [0.0]
        batch_points = [0]

        def thesis_batch(index: int, features: torch.Tensor) -> None:
            x = torch.cat([voxel_rows(f) for f in features]).numpy().astype(np.float32)
            batch_points[0] = x.shape[0]
            kmeans = faiss.Kmeans(x.shape[1], k, seed=args.seed, niter=args.niter, verbose=False)
            tick = time.perf_counter()
            kmeans.train(x)
            thesis_time[0] += time.perf_counter() - tick
            if index in candidates:
                kept[index] = x

        start = time.perf_counter()
        sample = voxel_sample(dataset, train, pipeline, args.voxels_per_crop, args.seed, args.batch, thesis_batch)
        evaluation = voxel_sample(dataset, held_out, pipeline, args.voxels_per_crop, args.seed + 1)
        features_s = time.perf_counter() - start
        weights = pipeline.extractor.channel_weights(1)
        transform = FeatureTransform.fit(sample, standardize=True, l2_normalize=False, weights=weights)
        sample = transform.apply_numpy(sample)
        evaluation = transform.apply_numpy(evaluation)
        results: dict[str, Any] = {
            "setup": {
                "proc": str(proc) if args.data else f"phantom brats, {args.cases} cases",
                "train_pairs": len(train),
                "held_out_pairs": len(held_out),
                "sample_points": int(sample.shape[0]),
                "held_out_points": int(evaluation.shape[0]),
                "feature_dim": int(sample.shape[1]),
                "k": k,
                "niter": args.niter,
                "threads": args.threads,
                "prepare_seconds": prepare_s,
                "feature_seconds": features_s,
            }
        }
        for name, init in (
            ("radiossl (faiss, whole sample, k-means++)", "kmeans++"),
            ("radiossl (faiss, whole sample, random init)", "random"),
        ):
            ours = fit_kmeans(sample, k, niter=args.niter, seed=args.seed, init=init)
            results[name] = {
                "fit_seconds": ours.seconds,
                "points": int(sample.shape[0]),
                "held_out_inertia": inertia(evaluation, ours.centroids),
            }

        scores = []
        for x in kept.values():
            kmeans = faiss.Kmeans(x.shape[1], k, seed=args.seed, niter=args.niter, verbose=False)
            kmeans.train(transform.apply_numpy(x))
            scores.append(inertia(evaluation, kmeans.centroids))
        results["thesis (faiss, last batch only)"] = {
            "fit_seconds": thesis_time[0],
            "fit_seconds_note": f"total over {n_batches} batches of {args.batch} pairs",
            "points": min(256 * k, batch_points[0]),
            "held_out_inertia": statistics.mean(scores),
            "held_out_inertia_std": statistics.pstdev(scores),
            "held_out_inertia_worst": max(scores),
            "last_batches_tried": len(scores),
        }

        for name, options in (
            (
                "sklearn KMeans (random init, n_init 1)",
                {"init": "random", "n_init": 1, "max_iter": args.niter},
            ),
            ("sklearn KMeans (defaults: k-means++)", {}),
        ):
            tick = time.perf_counter()
            model = KMeans(n_clusters=k, random_state=args.seed, **options).fit(sample)
            results[name] = {
                "fit_seconds": time.perf_counter() - tick,
                "points": int(sample.shape[0]),
                "held_out_inertia": inertia(evaluation, model.cluster_centers_.astype(np.float32)),
            }
    return results


def print_table(results: dict[str, Any]) -> None:
    setup = results["setup"]
    print(
        f"{setup['proc']}: {setup['train_pairs']} train / {setup['held_out_pairs']} held-out pairs, "
        f"K={setup['k']}, {setup['feature_dim']} filterbank features, sample {setup['sample_points']:,} "
        f"points, held-out {setup['held_out_points']:,} points, {setup['threads']} threads"
    )
    best = min(v["held_out_inertia"] for key, v in results.items() if key != "setup")
    print(f"{'method':42s} {'fit s':>8s} {'points':>10s} {'held-out inertia':>22s} {'vs best':>8s}")
    for name, row in results.items():
        if name == "setup":
            continue
        spread = f" ±{row['held_out_inertia_std']:.3g}" if "held_out_inertia_std" in row else ""
        print(
            f"{name:42s} {row['fit_seconds']:8.2f} {row['points']:10,d} "
            f"{row['held_out_inertia']:12.5g}{spread:10s} {row['held_out_inertia'] / best:8.3f}"
        )


def main() -> None:
    from radiossl.runtime.cpu import machine_line

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="An existing preprocessed folder (default: phantom BraTS).")
    parser.add_argument("--cases", type=int, default=4, help="Phantom cases to synthesise.")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--niter", type=int, default=25)
    parser.add_argument("--voxels-per-crop", type=int, default=512)
    parser.add_argument("--batch", type=int, default=2, help="Pairs per batch in the thesis script (README: 2).")
    parser.add_argument("--last-batches", type=int, default=5, help="Candidate last batches to score.")
    parser.add_argument("--seed", type=int, default=1)
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
