"""``radiossl kmeans fit`` and ``radiossl kmeans predict``: pixel-level clustering targets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from radiossl.commands.common import (
    EXIT_FAILURES,
    ConfigOption,
    DeviceOption,
    ProcessedDataOption,
    SeedOption,
    SetOption,
    WorkersOption,
    config_flags,
    console,
    given_options,
    handle_errors,
    merge_only_option,
    parse_shard_option,
    shard_option,
)

ExtractorOption = typer.Option(
    None,
    "--extractor",
    "-e",
    help="Feature extractor: filterbank (default, weight-free), dino-vits16, dino-vits8, dino-vitb16, "
    "encoder, or a plugin (radiossl plugins list).",
    show_default=False,
)
UpsamplerOption = typer.Option(
    None,
    "--upsampler",
    "-u",
    help="Upsampler: bilinear (default; thesis 'interp'), jbu (weight-free joint bilateral), featup-jbu.",
    show_default=False,
)
WeightsOption = typer.Option(
    None, "--weights", help="Weights of the extractor (DINO .pth, radiossl checkpoint).", show_default=False
)
UpsamplerWeightsOption = typer.Option(
    None, "--upsampler-weights", help="Weights of the upsampler (FeatUp JBU .ckpt).", show_default=False
)


FEATURE_FIELDS: dict[str, str] = {
    "extractor": "features.extractor",
    "upsampler": "features.upsampler",
    "weights": "features.extractor_options.weights",
    "upsampler_weights": "features.upsampler_options.weights",
}
KMEANS_RUNTIME_FIELDS: dict[str, str] = {
    "seed": "runtime.seed",
    "device": "runtime.device",
    "workers": "runtime.workers",  # k-means configs keep the worker count in runtime, not in data
}
FIT_FIELDS: dict[str, str] = {
    "data": "data.root",
    **FEATURE_FIELDS,
    "voxels_per_crop": "sampling.voxels_per_crop",
    "k": "kmeans.k",
    "gpu": "kmeans.gpu",
    "out": "out",
    **KMEANS_RUNTIME_FIELDS,
}
"""Each ``kmeans fit`` option that sets a config field, and the field."""
PREDICT_FIELDS: dict[str, str] = {
    "data": "data.root",
    "split": "data.split",
    **FEATURE_FIELDS,
    "centroids": "centroids",
    "tag": "tag",
    "overwrite": "overwrite",
    **KMEANS_RUNTIME_FIELDS,
}
"""Each ``kmeans predict`` option that sets a config field, and the field."""


def register(app: typer.Typer) -> None:
    """Add the ``kmeans`` command group (``fit``, ``predict``) to ``app``."""
    kmeans_app = typer.Typer(
        help="K-means targets for pixel-level clustering: fit centroids, then assign every voxel.",
        no_args_is_help=True,
    )
    app.add_typer(kmeans_app, name="kmeans")

    @kmeans_app.command("fit")
    @handle_errors
    def fit_command(
        ctx: typer.Context,
        data: ProcessedDataOption = None,
        k: int = typer.Option(None, "--k", "-k", min=2, help="Number of clusters (default 10).", show_default=False),
        extractor: str = ExtractorOption,
        upsampler: str = UpsamplerOption,
        weights: Path = WeightsOption,
        upsampler_weights: Path = UpsamplerWeightsOption,
        out: Path = typer.Option(
            None,
            "--out",
            "-o",
            help="Centroids file (.npy); default <PROC>/kmeans/k<K>_<extractor>_<upsampler>.npy.",
            show_default=False,
        ),
        voxels_per_crop: int = typer.Option(
            None,
            "--voxels-per-crop",
            min=1,
            help="Voxels sampled per crop (default 256).",
            show_default=False,
        ),
        gpu: bool = typer.Option(
            None, "--gpu/--no-gpu", help="faiss-gpu for the fit (falls back to CPU).", show_default=False
        ),
        shard: str = shard_option("sample groups (pair-array files)"),
        merge_only: bool = merge_only_option("one sample and fit the centroids"),
        config: ConfigOption = None,
        overrides: SetOption = None,
        seed: SeedOption = None,
        device: DeviceOption = None,
        workers: WorkersOption = None,
    ) -> None:
        """Fit K-means centroids on features sampled from every crop of a preprocessed folder.

        Writes the centroids (.npy), a JSON with every parameter, the inertia and cluster sizes, and a
        PNG montage. Other settings are config fields, e.g. --set sampling.foreground=true
        --set kmeans.niter=50 --set features.upsampler_options.radius=3.

        Shardable: with --shard I/N each process computes the features of its share of the sample and
        writes it beside the centroids (<stem>.sample/); the last shard to finish, or --merge-only, fits.
        The centroids are those of the unsharded fit.

        Example: radiossl kmeans fit --data data/brats_proc --k 10
        """
        from radiossl.clustering.config import KMeansConfig, load_kmeans_config
        from radiossl.clustering.fit import kmeans_fit
        from radiossl.commands.progress import console_progress

        chosen = parse_shard_option(shard)
        flags = config_flags(given_options(ctx), FIT_FIELDS)
        settings = load_kmeans_config(KMeansConfig, config, overrides or [], flags)
        with console_progress(console()):
            result = kmeans_fit(settings, shard=chosen, merge_only=merge_only)
        _fit_report(result)

    @kmeans_app.command("predict")
    @handle_errors
    def predict_command(
        ctx: typer.Context,
        data: ProcessedDataOption = None,
        centroids: Path = typer.Option(
            None, "--centroids", help="Centroids .npy from `kmeans fit` (JSON beside it).", show_default=False
        ),
        extractor: str = ExtractorOption,
        upsampler: str = UpsamplerOption,
        weights: Path = WeightsOption,
        upsampler_weights: Path = UpsamplerWeightsOption,
        tag: str = typer.Option(
            None, "--tag", help="Target tag (default k<K>-<extractor>-<upsampler>).", show_default=False
        ),
        split: str = typer.Option(None, "--split", help="Only this split (default: every split).", show_default=False),
        overwrite: bool = typer.Option(False, "--overwrite", help="Recompute existing target files."),
        shard: str = shard_option("groups (pair-array files)"),
        merge_only: bool = merge_only_option("the manifest column and targets/<tag>.json"),
        config: ConfigOption = None,
        overrides: SetOption = None,
        seed: SeedOption = None,
        device: DeviceOption = None,
        workers: WorkersOption = None,
    ) -> None:
        """Assign every voxel of every crop to fixed centroids; write and register uint8 target maps.

        The extractor, upsampler and their options default to those recorded with the centroids.
        Resumable: a rerun skips groups whose target file exists. Exit code 1 if any group failed.
        Shardable: --shard I/N predicts a share of the groups; the last shard to finish, or --merge-only,
        registers the targets.

        Example: radiossl kmeans predict --data proc --centroids proc/kmeans/k10_filterbank_bilinear.npy
        """
        from radiossl.clustering.config import KMeansPredictConfig, load_kmeans_config
        from radiossl.clustering.predict import kmeans_predict
        from radiossl.commands.progress import console_progress

        chosen = parse_shard_option(shard)
        flags = config_flags(given_options(ctx), PREDICT_FIELDS)
        settings = load_kmeans_config(KMeansPredictConfig, config, overrides or [], flags)
        with console_progress(console()):
            result = kmeans_predict(settings, shard=chosen, merge_only=merge_only)
        _predict_report(result)
        if not result.success:
            raise typer.Exit(EXIT_FAILURES)


def _fit_report(result: Any) -> None:
    from rich.table import Table

    table = Table(title=f"radiossl kmeans fit (K = {result.k})", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    if result.shard is not None:
        table.add_row("shard", f"{result.shard}: sampled {result.sampled_groups} of {result.total_groups} groups")
    if not result.fitted:
        table.add_row("fit", f"not yet: {len(result.missing_groups)} groups of other shards missing")
        table.add_row("then", "the last shard to finish fits (or run the same command with --merge-only)")
        table.add_row("time", f"{result.seconds:.1f} s")
        console().print(table)
        return
    table.add_row("centroids", str(result.centroids))
    table.add_row("metadata", str(result.metadata))
    table.add_row("montage", str(result.montage) if result.montage else "-")
    table.add_row("sample", f"{result.n_points:,} voxels from {result.n_crops:,} crops, {result.feature_dim} features")
    table.add_row("inertia", f"{result.inertia:.6g} ({result.inertia / max(1, result.n_points):.4g} per voxel)")
    table.add_row("cluster sizes", ", ".join(str(s) for s in result.cluster_sizes))
    table.add_row("faiss", "GPU" if result.used_gpu else "CPU")
    table.add_row("time", f"{result.seconds:.1f} s")
    console().print(table)


def _predict_report(result: Any) -> None:
    from rich.table import Table

    table = Table(title=f"radiossl kmeans predict ({result.tag})", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    table.add_row("groups written", str(len(result.written)))
    table.add_row("groups skipped (existing)", str(len(result.skipped)))
    table.add_row("groups failed", str(len(result.failures)))
    if result.shard is not None:
        table.add_row("shard", str(result.shard))
    if result.registered:
        table.add_row("registered", "yes")
    elif result.missing:
        table.add_row(
            "registered",
            f"not yet: {len(result.missing)} groups of other shards missing (the last "
            "shard to finish registers, or --merge-only)",
        )
    else:
        table.add_row("registered", "no (rerun to finish)")
    if result.cluster_counts:
        table.add_row("voxels per cluster (written)", ", ".join(str(c) for c in result.cluster_counts))
    table.add_row("montage", str(result.montage) if result.montage else "-")
    table.add_row("time", f"{result.seconds:.1f} s")
    console().print(table)
    if result.failures:
        failures = Table(title="failed groups", title_style="bold red")
        failures.add_column("array file")
        failures.add_column("reason", overflow="fold")
        for file, reason in result.failures.items():
            failures.add_row(file, reason)
        console().print(failures)
