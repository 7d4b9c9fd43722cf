"""kmeans fit / predict report their progress through the progress interface: plain lines by default."""

from __future__ import annotations

import builtins
from pathlib import Path

import pytest

from radiossl.clustering import KMeansConfig, KMeansPredictConfig, kmeans_fit, kmeans_predict
from radiossl.engine.progress import PlainProgress, reporting_to

ESCAPE = "\x1b"


def _fit_config(root: Path, **extra: object) -> KMeansConfig:
    return KMeansConfig.model_validate(
        {
            "data": {"root": str(root)},
            "kmeans": {"k": 3, "niter": 5},
            "sampling": {"voxels_per_crop": 16},
            "runtime": {"device": "cpu", "workers": 2},  # advance() from worker threads
            "montage": False,
            **extra,
        }
    )


def _predict_config(root: Path, centroids: Path, **extra: object) -> KMeansPredictConfig:
    return KMeansPredictConfig.model_validate(
        {
            "data": {"root": str(root)},
            "centroids": str(centroids),
            "runtime": {"device": "cpu"},
            "montage": False,
            **extra,
        }
    )


def test_fit_and_predict_print_plain_progress_lines(proc: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fitted = kmeans_fit(_fit_config(proc))
    predicted = kmeans_predict(_predict_config(proc, fitted.centroids))
    out = capsys.readouterr().out
    assert ESCAPE not in out
    lines = out.splitlines()
    assert lines[0] == "kmeans fit: features: 6 crop pairs"  # the 2 train groups of 3 pairs
    assert any(line.startswith("kmeans fit: features: done, 6 crop pairs in ") for line in lines)
    assert f"kmeans predict ({predicted.tag}): 9 crop pairs" in lines  # every split
    assert lines[-1].startswith(f"kmeans predict ({predicted.tag}): done, 9 crop pairs in ")


def test_progress_false_reports_nothing(proc: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fitted = kmeans_fit(_fit_config(proc, progress=False))
    kmeans_predict(_predict_config(proc, fitted.centroids, progress=False))
    assert capsys.readouterr().out == ""


def test_in_a_notebook_the_progress_is_plain_lines(
    proc: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With an IPython kernel in reach (what a notebook looks like to rich) the output stays plain text."""

    class ZMQInteractiveShell:  # the class name rich and tqdm look for
        pass

    monkeypatch.setattr(builtins, "get_ipython", lambda: ZMQInteractiveShell(), raising=False)
    kmeans_fit(_fit_config(proc))
    out = capsys.readouterr().out
    assert ESCAPE not in out
    assert out.splitlines()[0] == "kmeans fit: features: 6 crop pairs"


def test_an_installed_reporter_receives_the_progress(proc: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines: list[str] = []
    with reporting_to(PlainProgress(write=lines.append)):
        kmeans_fit(_fit_config(proc))
    assert capsys.readouterr().out == ""
    assert lines[0] == "kmeans fit: features: 6 crop pairs" and "done, 6 crop pairs" in lines[-1]
