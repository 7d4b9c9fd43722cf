"""The whole pipeline in one call, on built-in phantom data: ``radiossl demo``.

Steps (each a public API function, each resumable — rerunning the demo continues where it stopped):

1. :func:`radiossl.synthesize` a BraTS-like phantom dataset (4 MRI contrasts + labels);
2. :func:`radiossl.preprocess` it into the view the pretext method trains on (``PretextMethod.views``);
3. for a method that trains on k-means targets (``PretextMethod.needs_targets``, e.g. pixel-level
   clustering), :func:`radiossl.kmeans_fit` and :func:`radiossl.kmeans_predict` them
   (weight-free filter-bank features, so no download is needed);
4. :func:`radiossl.pretrain` the method;
5. :func:`radiossl.finetune` the BraTS task twice, from scratch and from the pretrained encoder, on a
   label ratio;
6. :func:`radiossl.evaluate` both on the held-out cases and compare Dice per region.

The defaults are tiny (network width 0.25, 32³ crops, a few epochs) so that the demo runs in about three
minutes on two CPU cores, AVX2-only ones included; :class:`DemoConfig` scales every part up for real runs.
Nearly all of the time goes into training 3D U-Nets (pretraining and the two finetuning runs, about a third
each); the sizes were chosen so that whole-tumour Dice still ends clearly above zero. The numbers it prints
show that the pipeline works end to end; they say nothing about how well the methods work at full scale.

Example:
    >>> cfg = DemoConfig(out="demo-output", pretrain_epochs=1)
    >>> cfg.method
    'pixel-cluster'
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from radiossl.config import Section
from radiossl.engine.progress import ProgressReporter, current_reporter, reporting_to
from radiossl.errors import RadiosslError
from radiossl.utils.text_table import TextTable

if TYPE_CHECKING:
    from radiossl.pretext.base import PretextMethod

REGIONS = ("WT", "TC", "ET")


class DemoConfig(Section):
    """Settings of ``radiossl demo``; defaults finish in minutes on 2 CPU cores."""

    out: Path = Field(Path("radiossl-demo"), description="Folder for every artefact of the demo.")
    method: str = Field("pixel-cluster", description="Pretext method to pretrain.")
    cases: int = Field(16, ge=6, description="Phantom BraTS cases to generate.")
    shape: tuple[int, int, int] = Field((64, 64, 48), description="Phantom volume shape (240 240 155 = real size).")
    crop_size: tuple[int, int, int] = Field((32, 32, 16), description="Pretraining crop size.")
    pairs: int = Field(2, ge=1, description="Crop pairs per volume.")
    k: int = Field(6, ge=2, description="Clusters for pixel-level targets (10 in the thesis).")
    width: float = Field(0.25, gt=0, description="U-Net width multiplier (1.0 = published network).")
    pretrain_epochs: int = Field(3, ge=1)
    pretrain_batch_size: int = Field(4, ge=1)
    finetune_epochs: int = Field(30, ge=1)
    validate_every: int = Field(15, ge=1, description="Epochs between full-volume validations while finetuning.")
    finetune_crop_size: tuple[int, int, int] = Field((32, 32, 32), description="Finetuning patch size.")
    finetune_batch_size: int = Field(2, ge=1)
    ratio: float = Field(0.5, gt=0, le=1, description="Fraction of labelled training cases used for finetuning.")
    seed: int = 1
    device: str = Field("auto", description="auto, cpu, cuda or mps.")
    workers: int = Field(0, ge=0, description="DataLoader workers (0 = in the main process).")


@dataclass
class DemoRun:
    """One finetuned model and its evaluation."""

    label: str
    finetune_dir: Path
    evaluate_dir: Path
    dice: dict[str, float]
    hd95: dict[str, float]


@dataclass
class DemoResult:
    """Where the demo wrote everything, and the Dice of both runs."""

    config: DemoConfig
    runs: list[DemoRun]
    artefacts: dict[str, Path] = field(default_factory=dict)
    seconds: float = 0.0


def run_demo(config: DemoConfig | None = None, reporter: ProgressReporter | None = None) -> DemoResult:
    """Run the demo pipeline; see the module docstring.

    Each step opens a section of ``reporter`` (default: the current reporter, see
    :mod:`radiossl.engine.progress`), and the training stages report their progress through it too.
    """
    config = config or DemoConfig()
    reporter = reporter or current_reporter()
    with reporting_to(reporter):
        return _run_steps(config, reporter)


def _run_steps(config: DemoConfig, reporter: ProgressReporter) -> DemoResult:
    start = time.perf_counter()
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    artefacts: dict[str, Path] = {}

    def step(title: str) -> None:
        reporter.section(f"{title} ({time.perf_counter() - start:.0f} s)")

    step("1/6 phantom BraTS data")
    raw = _synthesize(config, out / "data" / "BraTS18", artefacts)
    step("2/6 preprocess")
    proc = _preprocess(config, raw, out / "proc")
    artefacts["preprocessed"] = proc
    if _method(config).needs_targets:
        step("3/6 k-means targets")
        _kmeans(config, proc, artefacts)
    else:
        step(f"3/6 k-means targets (not needed by {config.method})")
    step(f"4/6 pretrain {config.method}")
    checkpoint = _pretrain(config, proc, out / "runs" / "pretrain", artefacts)
    runs = []
    for label, weights in (("scratch", None), (config.method, checkpoint)):
        step(f"5/6 finetune brats from {label}")
        finetune_dir = _finetune(config, raw, out / "runs" / "finetune" / label, weights)
        step(f"6/6 evaluate {label}")
        runs.append(_evaluate(config, raw, finetune_dir, out / "evaluation" / label, label))
    result = DemoResult(config=config, runs=runs, artefacts=artefacts, seconds=time.perf_counter() - start)
    _print_result(result, reporter)
    return result


def _synthesize(config: DemoConfig, raw: Path, artefacts: dict[str, Path]) -> Path:
    from radiossl.data.phantoms import synthesize

    marker = raw / ".complete"
    if not marker.is_file():
        result = synthesize(
            "brats", raw, cases=config.cases, shape=config.shape, seed=config.seed, preview=True, overwrite=True
        )
        marker.write_text(f"{len(result.case_ids)} cases\n")
    if (raw / "preview.png").is_file():
        artefacts["phantom preview"] = raw / "preview.png"
    return raw


def _method(config: DemoConfig) -> type[PretextMethod]:
    from radiossl.pretext.base import get_method

    return get_method(config.method)


def _preprocess(config: DemoConfig, raw: Path, proc: Path) -> Path:
    from radiossl.data.preprocess import PreprocessConfig, preprocess
    from radiossl.data.view_contract import get_view

    # The first view the method trains on; a method that takes any view gets the default one.
    views = _method(config).trains_on()
    view = views[0] if views else PreprocessConfig.model_fields["view"].default
    settings = PreprocessConfig.model_validate(
        {
            "dataset": "brats18",
            "data": raw,
            "out": proc,
            "view": view,
            "pairs": config.pairs,
            "seed": config.seed,
            "workers": 0,
            "progress": True,
            **get_view(view).small_settings(config.crop_size),
        }
    )
    result = preprocess(settings)
    if result.failed:
        raise RadiosslError(f"{proc}: preprocessing failed for {result.failed} case(s); see preprocess.json")
    return proc


def _kmeans(config: DemoConfig, proc: Path, artefacts: dict[str, Path]) -> None:
    from radiossl.clustering.config import KMeansConfig, KMeansPredictConfig
    from radiossl.clustering.fit import kmeans_fit
    from radiossl.clustering.predict import kmeans_predict

    fit_config = KMeansConfig.model_validate(
        {
            "data": {"root": proc},
            "kmeans": {"k": config.k},
            "runtime": {"seed": config.seed, "device": config.device},
        }
    )
    centroids = proc / "kmeans" / f"k{config.k}_filterbank_bilinear.npy"
    if not centroids.is_file():
        fitted = kmeans_fit(fit_config)
        centroids = fitted.centroids
    artefacts["k-means centroids"] = centroids
    predicted = kmeans_predict(
        KMeansPredictConfig.model_validate(
            {
                "data": {"root": proc},
                "centroids": centroids,
                "runtime": {"seed": config.seed, "device": config.device},
            }
        )
    )
    if not predicted.success:
        raise RadiosslError(f"{proc}: k-means prediction failed: {predicted.failures}")
    for png in sorted((proc / "kmeans").glob("*.png")):
        artefacts["k-means predict montage" if png.stem.startswith("predict") else "k-means fit montage"] = png


def _pretrain(config: DemoConfig, proc: Path, runs: Path, artefacts: dict[str, Path]) -> Path:
    from radiossl.data.processed import read_preprocess_record
    from radiossl.pretext.base import load_pretrain_config
    from radiossl.pretext.pretrain import pretrain

    stored = read_preprocess_record(proc).crop_size or config.crop_size
    method_fields = _method(config).config_class.model_fields
    flags = {
        "data": {"root": str(proc), "crop_size": list(stored), "workers": config.workers},
        "model": {"width": config.width},
        "optim": {"epochs": config.pretrain_epochs, "batch_size": config.pretrain_batch_size},
        "runtime": {"seed": config.seed, "device": config.device},
        "logging": {"vis": True, "vis_every": config.pretrain_epochs},
        "out": str(runs),
        "method": {"k": config.k} if "k" in method_fields else {},  # the demo's k, for methods that have one
    }
    settings = load_pretrain_config(config.method, flags=flags)
    result = pretrain(settings, resume="auto")
    artefacts["pretraining run"] = result.run_dir
    return result.final_checkpoint


def _finetune(config: DemoConfig, raw: Path, runs: Path, weights: Path | None) -> Path:
    from radiossl.downstream.config import load_task_config
    from radiossl.downstream.finetune import finetune

    flags: dict[str, Any] = {
        "data": {
            "root": str(raw),
            "crop_size": list(config.finetune_crop_size),
            "ratio": config.ratio,
            "workers": config.workers,
        },
        "model": {"width": config.width},
        "optim": {"epochs": config.finetune_epochs, "batch_size": config.finetune_batch_size, "step_size": 1000},
        "runtime": {"seed": config.seed, "device": config.device},
        "logging": {"vis": True, "vis_every": config.finetune_epochs},
        "out": str(runs),
        "transfer": "encoder" if weights is not None else "none",
        "validation": {"every": config.validate_every},
    }
    if weights is not None:
        flags["weights"] = str(weights)
    settings = load_task_config("finetune", "brats", flags=flags)
    return finetune(settings, resume="auto").run_dir


def _evaluate(config: DemoConfig, raw: Path, finetune_dir: Path, out: Path, label: str) -> DemoRun:
    from radiossl.downstream.config import load_task_config
    from radiossl.downstream.evaluate import evaluate

    best = finetune_dir / "checkpoint_best.pt"
    weights = best if best.is_file() else finetune_dir / "checkpoint_final.pt"
    settings = load_task_config(
        "evaluate",
        "brats",
        flags={
            "data": {"root": str(raw)},
            "weights": str(weights),
            "out": str(out),
            "split": "test",
            "save_predictions": True,
            "runtime": {"seed": config.seed, "device": config.device},
        },
    )
    result = evaluate(settings)
    regions = result.summary["regions"]
    return DemoRun(
        label=label,
        finetune_dir=finetune_dir,
        evaluate_dir=out,
        dice={name: float(regions[name]["dice_mean"]) for name in regions},
        hd95={name: float(regions[name]["hd_mean"]) for name in regions},
    )


def _print_result(result: DemoResult, reporter: ProgressReporter) -> None:
    from radiossl.runtime.cpu import machine_line

    regions = list(result.runs[0].dice) if result.runs else list(REGIONS)
    rows = []
    for run in result.runs:
        values = [run.dice[name] for name in regions]
        rows.append((run.label, *(f"{v:.3f}" for v in values), f"{sum(values) / len(values):.3f}"))
    title = (
        f"Dice on held-out phantom cases (ratio {result.config.ratio:g}, "
        f"width {result.config.width:g}, {result.config.finetune_epochs} finetuning epochs)"
    )
    columns = ("initialisation", *regions, "mean")
    reporter.table(TextTable(title, columns, rows, right=tuple(range(1, len(columns)))))
    where = [(name, str(path)) for name, path in result.artefacts.items()]
    for run in result.runs:
        where.append((f"finetune run ({run.label})", str(run.finetune_dir)))
        where.append((f"metrics.csv ({run.label})", str(run.evaluate_dir / "metrics.csv")))
        where.append((f"predictions ({run.label})", str(run.evaluate_dir / "predictions")))
    reporter.table(TextTable("Artefacts", ("what", "where"), where))
    reporter.message(f"demo finished in {result.seconds / 60:.1f} min")
    reporter.message(machine_line())  # durations compare only between machines named alike
