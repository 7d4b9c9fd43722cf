"""The report of a sweep, from whatever cells are done: :func:`write_report`, behind ``radiossl sweep report``.

Written into the sweep folder (atomically, under the sweep's lock):

* ``sweep.csv`` — one row per cell x case x region: the cell's method, transfer/train mode, ratio and
  seed, the case, the region, Dice and HD95 (from the cell's ``evaluate/metrics.csv``);
* ``summary.csv`` — one row per method x ratio x region (``mean`` = the mean over regions per case):
  mean and standard deviation of Dice over seeds and cases, the standard deviation of the per-seed
  means, a bootstrap 95 % interval of the mean (seeds and cases resampled, :mod:`radiossl.sweep.stats`),
  mean HD95, and the paired comparison with scratch at the same ratio: the mean Dice difference and the
  two-sided p-value of a Wilcoxon signed-rank test over cases (each case's Dice averaged over seeds);
* ``table.md`` — the overlap check of the checkpoints (``overlap.json``, when the sweep ran it), the
  thesis' Table 5.2 layout (a row per pretraining method, mean Dice and Dice per region) for every ratio,
  mean Dice against ratio, and the cells not done yet;
* ``label_efficiency.png`` — Dice against label ratio on a log axis, a line per method with its
  interval as a band, a panel per region.

Cells without ``cell.json`` are left out and listed (``failed.json``'s error, or "not run yet or
interrupted"), so the report can be written at any time during a sweep.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from radiossl.errors import DataError
from radiossl.sweep.cell import CELLS_DIR, DONE, FAILED, cell_fragments
from radiossl.sweep.overlap import overlap_markdown
from radiossl.sweep.plan import SCRATCH, Cell
from radiossl.sweep.stats import DEFAULT_LEVEL, DEFAULT_RESAMPLES, describe, paired_wilcoxon
from radiossl.utils.atomic import atomic_write_text

SWEEP_CSV = "sweep.csv"
SUMMARY_CSV = "summary.csv"
TABLE_MD = "table.md"
FIGURE_PNG = "label_efficiency.png"
MEAN_REGION = "mean"
SIGNIFICANT = 0.05
SWEEP_COLUMNS = ("cell", "method", "transfer", "train", "mode", "ratio", "seed", "case", "region", "dice", "hd95")
SUMMARY_COLUMNS = (
    "method",
    "transfer",
    "train",
    "mode",
    "ratio",
    "region",
    "cells",
    "n_seeds",
    "n_cases",
    "n",
    "dice_mean",
    "dice_std",
    "dice_seed_std",
    "ci_low",
    "ci_high",
    "hd95_mean",
    "delta_vs_scratch",
    "p_vs_scratch",
    "n_pairs",
)
NOT_STARTED = "not run yet, or interrupted (a rerun of the sweep resumes it)"


@dataclass
class SweepReport:
    """What :func:`write_report` wrote and found."""

    out: Path
    done: list[str]
    not_done: dict[str, str]
    """Cells without a result, with why (their error, or :data:`NOT_STARTED`)."""
    sweep_csv: Path
    summary_csv: Path
    table_md: Path
    figure_png: Path | None
    """None when no cell is done yet (nothing to draw)."""
    summary: list[dict[str, Any]] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.not_done


def read_sweep_json(sweep_dir: Path) -> dict[str, Any]:
    """The ``sweep.json`` of ``sweep_dir`` (DataError naming the folder when it is not a sweep folder)."""
    path = Path(sweep_dir) / "sweep.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{sweep_dir}: not a sweep folder (no sweep.json; `radiossl sweep --out` makes one)") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: cannot be read ({exc})") from exc
    if not isinstance(data, dict) or data.get("format") != "radiossl-sweep" or not isinstance(data.get("cells"), list):
        raise DataError(f"{path}: not the description of a radiossl sweep")
    return data


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def read_cell_rows(cell_dir: Path, cell: Cell) -> list[dict[str, Any]]:
    """The ``sweep.csv`` rows of a done cell (DataError naming the file when its metrics cannot be read)."""
    record = json.loads((cell_dir / DONE).read_text(encoding="utf-8"))
    metrics = cell_dir / str(record.get("metrics_csv", "evaluate/metrics.csv"))
    try:
        with open(metrics, newline="", encoding="utf-8") as handle:
            table = list(csv.DictReader(handle))
    except OSError as exc:
        raise DataError(f"{metrics}: cannot be read ({exc})") from exc
    if table and not {"case", "region", "dice"} <= set(table[0]):
        raise DataError(f"{metrics}: expected the columns case, region and dice")
    hd = next((name for name in (table[0] if table else {}) if name.startswith("hd")), None)
    return [
        {
            "cell": cell.id,
            "method": cell.method,
            "label": cell.label,
            "transfer": cell.transfer,
            "train": cell.train,
            "mode": cell.mode,
            "ratio": cell.ratio,
            "seed": cell.seed,
            "case": row["case"],
            "region": row["region"],
            "dice": _float(row["dice"]),
            "hd95": _float(row[hd]) if hd else math.nan,
        }
        for row in table
    ]


def _cell_text(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return repr(round(value, 6))
    return "" if value is None else str(value)


def _csv(columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell_text(row.get(column)) for column in columns])
    return buffer.getvalue()


def _with_mean_region(rows: list[dict[str, Any]], regions: list[str]) -> list[dict[str, Any]]:
    """``rows`` plus, per cell and case, a ``mean`` row: Dice and HD95 averaged over the regions present."""
    if len(regions) < 2:
        return rows
    per_case: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        per_case.setdefault((row["cell"], row["case"]), []).append(row)
    means = []
    for group in per_case.values():
        mean = dict(group[0], region=MEAN_REGION)
        for metric in ("dice", "hd95"):
            values = [r[metric] for r in group if not math.isnan(r[metric])]
            mean[metric] = float(np.mean(values)) if values else math.nan
        means.append(mean)
    return rows + means


def _percent(ratio: float) -> str:
    return f"{100 * ratio:g} %"


def summarise(
    rows: list[dict[str, Any]],
    cells: list[Cell],
    seeds: list[int],
    regions: list[str],
    *,
    resamples: int = DEFAULT_RESAMPLES,
    level: float = DEFAULT_LEVEL,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """The ``summary.csv`` rows: one per method x ratio x region (see the module docstring)."""
    groups: dict[tuple[str, float], list[Cell]] = {}
    for cell in cells:
        groups.setdefault((cell.label, cell.ratio), []).append(cell)
    by_key: dict[tuple[str, float, str], list[dict[str, Any]]] = {}
    for scored in rows:
        by_key.setdefault((scored["label"], scored["ratio"], scored["region"]), []).append(scored)

    def matrix(label: str, ratio: float, region: str, metric: str) -> tuple[np.ndarray, list[str]]:
        found = by_key.get((label, ratio, region), [])
        cases = list(dict.fromkeys(r["case"] for r in found))
        values = np.full((len(seeds), len(cases)), math.nan)
        for r in found:
            values[seeds.index(r["seed"]), cases.index(r["case"])] = r[metric]
        return values, cases

    def case_means(values: np.ndarray, cases: list[str]) -> dict[str, float]:
        out = {}
        for j, case in enumerate(cases):
            column = values[:, j][~np.isnan(values[:, j])]
            out[case] = float(column.mean()) if column.size else math.nan
        return out

    summary = []
    for (label, ratio), members in groups.items():
        first = members[0]
        done_seeds = {r["seed"] for r in rows if r["label"] == label and r["ratio"] == ratio}
        for region in regions:
            dice, cases = matrix(label, ratio, region, "dice")
            hd, _ = matrix(label, ratio, region, "hd95")
            stats = describe(
                dice[[seeds.index(s) for s in sorted(done_seeds)]], resamples=resamples, level=level, seed=seed
            )
            finite_hd = hd[np.isfinite(hd)]
            row: dict[str, Any] = {
                "method": first.method,
                "label": label,
                "transfer": first.transfer,
                "train": first.train,
                "mode": first.mode,
                "ratio": ratio,
                "region": region,
                "cells": f"{len(done_seeds)}/{len(members)}",
                "n_seeds": len(done_seeds),
                "n_cases": len(cases),
                "n": stats.n,
                "dice_mean": stats.mean,
                "dice_std": stats.std,
                "dice_seed_std": stats.seed_std,
                "ci_low": stats.ci_low,
                "ci_high": stats.ci_high,
                "hd95_mean": float(finite_hd.mean()) if finite_hd.size else math.nan,
                "delta_vs_scratch": None,
                "p_vs_scratch": None,
                "n_pairs": None,
            }
            if label != SCRATCH and (SCRATCH, ratio) in groups and done_seeds:
                base, base_cases = matrix(SCRATCH, ratio, region, "dice")
                mine, theirs = case_means(dice, cases), case_means(base, base_cases)
                common = [case for case in cases if case in theirs]
                if common:
                    test = paired_wilcoxon([mine[c] for c in common], [theirs[c] for c in common])
                    row.update(delta_vs_scratch=test.mean_difference, p_vs_scratch=test.p_value, n_pairs=test.n_pairs)
            summary.append(row)
    return summary


def ordered_labels(summary: list[dict[str, Any]]) -> list[str]:
    """The methods of ``summary`` in the sweep's order, scratch first."""
    labels = list(dict.fromkeys(row["label"] for row in summary))
    return sorted(labels, key=lambda label: label != SCRATCH)


def _pm(row: dict[str, Any]) -> str:
    mean, std = row["dice_mean"], row["dice_std"]
    if mean is None or math.isnan(mean):
        return "–"
    text = f"{mean:.3f} ± {std:.3f}"
    p = row.get("p_vs_scratch")
    if isinstance(p, float) and p < SIGNIFICANT:
        text += " †"
    return text


def table_markdown(
    identity: dict[str, Any],
    summary: list[dict[str, Any]],
    regions: list[str],
    done: int,
    not_done: dict[str, str],
    overlap: list[str] | None = None,
) -> str:
    """``table.md``: the overlap check (``overlap`` lines), Table 5.2's layout per ratio, mean Dice against
    ratio, and the cells not done yet."""
    total = done + len(not_done)
    lines = [
        f"# Label-efficiency sweep: {identity['task']} ({identity['split']} split, {identity['protocol']} protocol)"
        + (" | frozen-encoder probe (scratch: a random frozen encoder)" if identity.get("mode") == "probe" else ""),
        "",
        f"Dice, mean ± std over seeds and {identity['split']} cases (95 % bootstrap intervals and HD95 in "
        f"`summary.csv`); † = differs from scratch at p < {SIGNIFICANT} (Wilcoxon signed-rank over cases). "
        f"{done} of {total} cells done.",
    ]
    lines += overlap or []
    columns = ([MEAN_REGION] if MEAN_REGION in regions else []) + [r for r in regions if r != MEAN_REGION]
    labels = ordered_labels(summary)
    cell_of = {(row["label"], row["ratio"], row["region"]): row for row in summary}
    ratios = sorted({row["ratio"] for row in summary})
    for ratio in ratios:
        header = ["pretraining", *(("mean Dice" if c == MEAN_REGION else c) for c in columns), "seeds"]
        lines += ["", f"## {_percent(ratio)} of the training cases labelled", ""]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for label in labels:
            rows = [cell_of.get((label, ratio, c)) for c in columns]
            if all(r is None for r in rows):
                continue
            seeds = next(r["cells"] for r in rows if r is not None)
            lines.append("| " + " | ".join([label, *(_pm(r) if r else "–" for r in rows), seeds]) + " |")
    if ratios and columns:
        headline = columns[0]
        lines += ["", f"## {'Mean Dice' if headline == MEAN_REGION else headline + ' Dice'} by label ratio", ""]
        lines += ["| pretraining | " + " | ".join(_percent(r) for r in ratios) + " |"]
        lines += ["|" + "---|" * (len(ratios) + 1)]
        for label in labels:
            texts = [_pm(cell_of[(label, r, headline)]) if (label, r, headline) in cell_of else "–" for r in ratios]
            lines.append(f"| {label} | " + " | ".join(texts) + " |")
    if not_done:
        lines += ["", f"## Not done yet ({len(not_done)} of {total} cells)", ""]
        lines += [f"- `{cell}`: {why}" for cell, why in not_done.items()]
    return "\n".join(lines) + "\n"


def dice_axis_range(summary: list[dict[str, Any]]) -> tuple[float, float]:
    """The Dice axis of every panel: the range of the means and intervals, padded, within [0, 1]."""
    values = [
        float(row[key])
        for row in summary
        for key in ("dice_mean", "ci_low", "ci_high")
        if isinstance(row.get(key), float) and math.isfinite(row[key])
    ]
    if not values:
        return 0.0, 1.0
    low, high = min(values), max(values)
    pad = max(0.1 * (high - low), 0.02)
    return max(0.0, low - pad), min(1.0, high + pad)


def draw_label_efficiency(identity: dict[str, Any], summary: list[dict[str, Any]], regions: list[str]) -> np.ndarray:
    """``label_efficiency.png``: Dice against label ratio (log axis), a line and band per method, a panel per region."""
    from radiossl.utils.figures import Figure, LineSeries, Panel, Row, line_chart, render, series_legend

    ratios = sorted({row["ratio"] for row in summary})
    labels = ordered_labels(summary)
    cell_of = {(row["label"], row["ratio"], row["region"]): row for row in summary}
    ticks = [(ratio, f"{100 * ratio:g}%") for ratio in ratios]
    y_range = dice_axis_range(summary)
    panels = []
    legend_series: list[LineSeries] = []
    for region in ([MEAN_REGION] if MEAN_REGION in regions else []) + [r for r in regions if r != MEAN_REGION]:
        series = []
        for label in labels:
            found = [cell_of.get((label, ratio, region)) for ratio in ratios]
            pick = [r for r in found if r is not None]
            series.append(
                LineSeries(
                    label,
                    [r["ratio"] for r in pick],
                    [r["dice_mean"] for r in pick],
                    [r["ci_low"] for r in pick],
                    [r["ci_high"] for r in pick],
                )
            )
        legend_series = series
        title = "mean over regions" if region == MEAN_REGION else region
        chart = line_chart(
            series, x_label="labelled training cases", y_label="Dice", log_x=True, y_range=y_range, x_ticks=ticks
        )
        panels.append(Panel(title, chart))
    per_row = 4 if len(panels) == 4 else 3
    rows = [Row("", panels[i : i + per_row]) for i in range(0, len(panels), per_row)]
    title = f"{identity['task']} label efficiency | Dice on the {identity['split']} cases, 95 % CI bands"
    title += " | frozen-encoder probe" if identity.get("mode") == "probe" else ""
    return render(Figure(title, rows, series_legend(legend_series), legend_title="pretraining"))


def write_report(
    sweep_dir: str | Path, *, resamples: int = DEFAULT_RESAMPLES, level: float = DEFAULT_LEVEL, seed: int = 0
) -> SweepReport:
    """Write ``sweep.csv``, ``summary.csv``, ``table.md`` and ``label_efficiency.png`` from the cells that are done.

    Raises:
        DataError: ``sweep_dir`` is not a sweep folder.
    """
    from radiossl.utils.figures import save_png

    out = Path(sweep_dir)
    identity = read_sweep_json(out)
    cells = [Cell.from_dict(entry) for entry in identity["cells"]]
    seeds = [int(s) for s in identity["seeds"]]
    rows: list[dict[str, Any]] = []
    done: list[Cell] = []
    not_done: dict[str, str] = {}
    for cell in cells:
        cell_dir = out / CELLS_DIR / cell.id
        if (cell_dir / DONE).is_file():
            try:
                rows.extend(read_cell_rows(cell_dir, cell))
            except (DataError, OSError, json.JSONDecodeError) as exc:
                not_done[cell.id] = f"its results cannot be read: {exc}"
                continue
            done.append(cell)
        elif (cell_dir / FAILED).is_file():
            try:
                not_done[cell.id] = "failed: " + str(json.loads((cell_dir / FAILED).read_text()).get("error"))
            except (OSError, json.JSONDecodeError):
                not_done[cell.id] = "failed"
        else:
            not_done[cell.id] = NOT_STARTED
    regions = list(dict.fromkeys(row["region"] for row in rows))
    all_rows = _with_mean_region(rows, regions)
    if len(regions) > 1:
        regions = [*regions, MEAN_REGION]
    summary = summarise(all_rows, done, seeds, regions, resamples=resamples, level=level, seed=seed)
    report = SweepReport(out, [c.id for c in done], not_done, out / SWEEP_CSV, out / SUMMARY_CSV, out / TABLE_MD, None)
    report.summary = summary
    with cell_fragments(out).lock():  # shards finishing at once write one report after the other
        atomic_write_text(report.sweep_csv, _csv(SWEEP_COLUMNS, rows))
        atomic_write_text(report.summary_csv, _csv(SUMMARY_COLUMNS, summary))
        atomic_write_text(
            report.table_md, table_markdown(identity, summary, regions, len(done), not_done, overlap_markdown(out))
        )
        figure = out / FIGURE_PNG
        if summary:
            report.figure_png = save_png(figure, draw_label_efficiency(identity, summary, regions))
        else:
            figure.unlink(missing_ok=True)
    return report
