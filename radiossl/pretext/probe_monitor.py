"""The probe monitor: a frozen-encoder segmentation probe of the encoder while it pretrains.

With ``monitoring.probe_task`` set (``radiossl pretrain ... --monitor-task TASK --monitor-data RAW_DIR``),
every ``monitoring.probe_every`` epochs and after the last one the main process writes the network's
weights into ``<run>/monitor/epoch-NNNN/snapshot.pt`` (atomically, through
:func:`radiossl.models.checkpoint.save_weights`) and starts ``radiossl probe`` on it in a subprocess::

    python -m radiossl probe --task TASK --data RAW_DIR --weights <run>/monitor/epoch-NNNN/snapshot.pt
        --out <run>/monitor/epoch-NNNN --device <the pretraining's> --set model.<each field>=<the pretraining's>
        --set runtime.seed=<the pretraining's> --set logging.progress=false --set <monitoring.probe_overrides>...

so the probe builds the same backbone, and training goes on meanwhile: no trainer, DDP or random
state is shared, and the training process draws no random numbers for it (resume stays exact). The
subprocess's output goes to ``epoch-NNNN/probe.log``; on the CPU it gets ``monitoring.probe_threads``
threads (default a quarter of the cores, at least 1) through ``OMP_NUM_THREADS``/``MKL_NUM_THREADS``.

One probe runs at a time. An epoch that is due while one runs still writes its snapshot, which waits
its turn; only the newest waiting snapshot is kept (an older waiting one is dropped, with a line
saying so). At each epoch end a finished probe is read: the last validation of the probe run
(``probe_val_dice``, ``probe_val_dice_<region>``, ...) and its best ``val_dice``
(``probe_best_val_dice``) become one line of ``<run>/monitor/probes.jsonl`` (``epoch``, ``step``,
``seconds``, ``metrics``, ``run``) and a ``"type": "monitor"`` line of ``metrics.jsonl`` (and
TensorBoard) at the probed epoch's step. A probe that fails is one warning naming its log and a
``probes.jsonl`` line with ``error``; it never fails the pretraining. At the end of pretraining the
main process waits for the remaining probes (saying so in one line).

Resume: results in ``probes.jsonl`` count as done (a failed probe too; delete its line to probe again).
A snapshot of a completed epoch without a result (the run was interrupted) is probed again; the files
and results of epochs after the resumed checkpoint are removed, as the engine removes their metric lines.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

from radiossl import registry
from radiossl.engine.progress import current_reporter
from radiossl.errors import ConfigError
from radiossl.utils.atomic import atomic_write_text, write_json
from radiossl.utils.jsonl import read_jsonl

if TYPE_CHECKING:
    from torch import nn

    from radiossl.config import ModelConfig, MonitoringConfig, RuntimeConfig
    from radiossl.engine.protocol import StepContext


class PretrainConfig(Protocol):
    """What the monitor reads of a pretraining config (:class:`radiossl.pretext.base.PretrainConfig`)."""

    model: ModelConfig
    runtime: RuntimeConfig
    monitoring: MonitoringConfig
    method: Any

    def model_dump_json(self) -> str: ...


MONITOR_DIR = "monitor"
RESULTS_FILE = "probes.jsonl"
SNAPSHOT_FILE = "snapshot.pt"
SNAPSHOT_INFO = "snapshot.json"
PROBE_LOG = "probe.log"
TASK_GROUP = "radiossl.tasks"
# the pretraining's torchrun job: a probe must not join it
_JOB_VARIABLES = (
    "RANK",
    "LOCAL_RANK",
    "WORLD_SIZE",
    "LOCAL_WORLD_SIZE",
    "GROUP_RANK",
    "GROUP_WORLD_SIZE",
    "ROLE_RANK",
    "ROLE_WORLD_SIZE",
    "MASTER_ADDR",
    "MASTER_PORT",
    "TORCHELASTIC_RUN_ID",
    "TORCHELASTIC_RESTART_COUNT",
    "TORCHELASTIC_MAX_RESTARTS",
    "TORCHELASTIC_USE_AGENT_STORE",
)


def check_probe_settings(monitoring: MonitoringConfig) -> None:
    """ConfigError (one line) when the probe settings cannot work; nothing when probes are off."""
    task, data = monitoring.probe_task, monitoring.probe_data
    if task is None:
        if data is not None:
            raise ConfigError("monitoring.probe_data is set but monitoring.probe_task is not: add --monitor-task TASK")
        return
    known = registry.names(TASK_GROUP)
    if task not in known:
        raise ConfigError(f"monitoring.probe_task: unknown task {task!r}; available: {', '.join(known) or 'none'}")
    if data is None:
        raise ConfigError("monitoring.probe_task is set but monitoring.probe_data is not: add --monitor-data RAW_DIR")
    if not Path(data).is_dir():
        raise ConfigError(f"monitoring.probe_data: {data}: dataset folder not found")
    for item in monitoring.probe_overrides:
        key, sep, _ = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"monitoring.probe_overrides: {item!r} is not key=value")


def probe_command(config: PretrainConfig, snapshot: Path, out: Path, device: str) -> list[str]:
    """The ``radiossl probe`` command line of one snapshot (same backbone and seed as the pretraining)."""
    monitoring = config.monitoring
    assert monitoring.probe_task is not None and monitoring.probe_data is not None
    model = config.model.model_dump(mode="json")
    settings = [f"model.{key}={json.dumps(value)}" for key, value in model.items() if key != "in_channels"]
    settings += [f"runtime.seed={config.runtime.seed}", "logging.progress=false", *monitoring.probe_overrides]
    command = [sys.executable, "-m", "radiossl", "probe", "--task", monitoring.probe_task]
    command += ["--data", str(Path(monitoring.probe_data).resolve()), "--weights", str(snapshot.resolve())]
    command += ["--out", str(out.resolve()), "--device", device]
    for setting in settings:
        command += ["--set", setting]
    return command


def probe_environment(device: str, threads: int | None) -> dict[str, str]:
    """The probe subprocess's environment: outside any torchrun job, with few threads on the CPU."""
    env = {key: value for key, value in os.environ.items() if key not in _JOB_VARIABLES}
    if device == "cpu":
        count = threads or max(1, (os.cpu_count() or 1) // 4)
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(count)
    return env


def read_probe_metrics(folder: Path) -> tuple[dict[str, float], Path | None]:
    """The ``probe_*`` metrics of the newest probe run under ``folder`` (``{}`` without a validation)."""
    files = sorted(folder.glob("*/metrics.jsonl"), key=lambda p: p.stat().st_mtime)
    if not files:
        return {}, None
    validated: list[dict[str, float]] = []
    for record in read_jsonl(files[-1]):
        if record.get("type") != "epoch":
            continue
        values = {
            key: float(value)
            for key, value in record.items()
            if key.startswith("val_") and isinstance(value, (int, float)) and math.isfinite(value)
        }
        if "val_dice" in values:
            validated.append(values)
    if not validated:
        return {}, files[-1].parent
    metrics = {f"probe_{key}": value for key, value in validated[-1].items()}
    metrics["probe_best_val_dice"] = max(values["val_dice"] for values in validated)
    return metrics, files[-1].parent


def read_results(path: Path) -> dict[int, dict[str, Any]]:
    """The lines of ``probes.jsonl`` by epoch (lines cut short by a crash are skipped)."""
    return {record["epoch"]: record for record in read_jsonl(path) if isinstance(record.get("epoch"), int)}


@dataclass
class _Snapshot:
    epoch: int
    step: int
    folder: Path


@dataclass
class _Running:
    snapshot: _Snapshot
    process: subprocess.Popen[bytes]
    log: IO[bytes]
    started: float


class ProbeMonitor:
    """The probes of one pretraining run, on its main process; see the module docstring.

    ``model_spec`` describes the network for the snapshots (the method's ``model_spec``). Every public
    method turns its own failures into a warning line: the monitor never stops the pretraining.
    """

    def __init__(self, config: PretrainConfig, model_spec: Callable[[nn.Module], dict[str, Any]]) -> None:
        self.config = config
        self.settings = config.monitoring
        self.model_spec = model_spec
        self.folder: Path | None = None
        self.device = "cpu"
        self.results: dict[int, dict[str, Any]] = {}
        self.running: _Running | None = None
        self.waiting: list[_Snapshot] = []

    # ------------------------------------------------------------------------------------ hooks

    def after_epoch(self, model: nn.Module, context: StepContext) -> list[dict[str, Any]]:
        """Read a finished probe; on a due epoch write its snapshot and start (or queue) its probe."""
        records: list[dict[str, Any]] = []
        try:
            self._open(context, completed=context.epoch)
            records += self._poll()
            epoch = context.epoch + 1
            if epoch % self.settings.probe_every == 0:
                self._due(model, context, epoch)
            records += self._poll()
        except Exception as exc:
            _say(f"warning: probe monitor after epoch {context.epoch + 1}: {exc}")
        return records

    def after_training(self, model: nn.Module, context: StepContext) -> list[dict[str, Any]]:
        """Probe the final epoch if it was not, and wait for every probe still running or waiting."""
        records: list[dict[str, Any]] = []
        try:
            self._open(context, completed=context.epoch)
            records += self._poll()
            if context.epoch > 0 and not self._known(context.epoch):
                self._due(model, context, context.epoch)
            records += self._poll()
            while self.running is not None:
                running = self.running
                log = running.snapshot.folder / PROBE_LOG
                _say(f"waiting for the probe of epoch {running.snapshot.epoch} to finish (log: {log})")
                running.process.wait()
                records += self._poll()
        except Exception as exc:
            _say(f"warning: probe monitor at the end of training: {exc}")
        return records

    # ---------------------------------------------------------------------------------- the work

    def _open(self, context: StepContext, completed: int) -> None:
        """On the first call: read earlier results of this run folder (``completed``: epochs done before)."""
        if self.folder is not None:
            return
        self.device = context.device.type
        self.folder = folder = Path(context.extra["run_dir"]) / MONITOR_DIR
        results = read_results(folder / RESULTS_FILE)
        self.results = {epoch: record for epoch, record in results.items() if epoch <= completed}
        if len(self.results) != len(results):  # epochs this run trains again
            lines = "".join(json.dumps(self.results[epoch]) + "\n" for epoch in sorted(self.results))
            atomic_write_text(folder / RESULTS_FILE, lines)
        for sub in sorted(folder.glob("epoch-*")) if folder.is_dir() else []:
            try:
                epoch = int(sub.name.removeprefix("epoch-"))
            except ValueError:
                continue
            if epoch > completed:
                shutil.rmtree(sub, ignore_errors=True)
            elif epoch not in self.results:
                snapshot = _read_snapshot(sub, epoch)
                if snapshot is not None:
                    _say(f"probing the snapshot of epoch {epoch} again: it has no result (the run was interrupted)")
                    self.waiting.append(snapshot)

    def _known(self, epoch: int) -> bool:
        pending = [s.epoch for s in self.waiting] + ([self.running.snapshot.epoch] if self.running else [])
        return epoch in self.results or epoch in pending

    def _due(self, model: nn.Module, context: StepContext, epoch: int) -> None:
        """Write the snapshot of ``epoch`` and start its probe, or let it wait for the running one."""
        if self._known(epoch):
            return
        assert self.folder is not None
        snapshot = _Snapshot(epoch, context.step, self.folder / f"epoch-{epoch:04d}")
        shutil.rmtree(snapshot.folder, ignore_errors=True)
        snapshot.folder.mkdir(parents=True)
        from radiossl import __version__
        from radiossl.models.checkpoint import save_weights

        meta = {
            "radiossl_version": __version__,
            "kind": "pretrain",
            "name": self.config.method.name,
            "config": json.loads(self.config.model_dump_json()),
            "epoch": epoch,
            "global_step": context.step,
        }
        save_weights(snapshot.folder / SNAPSHOT_FILE, model, self.model_spec(model), meta)
        write_json(snapshot.folder / SNAPSHOT_INFO, {"epoch": epoch, "step": context.step})  # marks it complete
        if self.running is not None:
            if self.waiting:
                dropped = self.waiting.pop()
                shutil.rmtree(dropped.folder, ignore_errors=True)
                _say(f"dropping the waiting probe of epoch {dropped.epoch}: epoch {epoch} is newer")
            _say(
                f"the probe of epoch {self.running.snapshot.epoch} is still running: "
                f"the probe of epoch {epoch} starts when it ends"
            )
        self.waiting.append(snapshot)

    def _poll(self) -> list[dict[str, Any]]:
        """Read the running probe if it has ended, then start the next waiting one."""
        records: list[dict[str, Any]] = []
        running = self.running
        if running is not None:
            code = running.process.poll()
            if code is None:
                return records
            self.running = None
            record = self._finish(running, code)
            if record is not None:
                records.append(record)
        while self.running is None and self.waiting:
            self._launch(self.waiting.pop(0))
        return records

    def _launch(self, snapshot: _Snapshot) -> None:
        for child in snapshot.folder.iterdir():  # a probe run left by an interrupted run is replaced
            if child.is_dir():
                shutil.rmtree(child, ignore_errors=True)
        command = probe_command(self.config, snapshot.folder / SNAPSHOT_FILE, snapshot.folder, self.device)
        log = open(snapshot.folder / PROBE_LOG, "wb")  # noqa: SIM115  # closed when the probe ends
        started = time.time()
        try:
            process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=probe_environment(self.device, self.settings.probe_threads),
            )
        except OSError as exc:
            log.close()
            self._record(snapshot, started, {"error": f"cannot start: {exc}"})
            _say(f"warning: the probe of epoch {snapshot.epoch} did not start ({exc})")
            return
        self.running = _Running(snapshot, process, log, started)

    def _finish(self, running: _Running, code: int) -> dict[str, Any] | None:
        """Record a finished probe; the metric record for ``metrics.jsonl``, or None when it failed."""
        running.log.close()
        snapshot = running.snapshot
        log = snapshot.folder / PROBE_LOG
        metrics, run = read_probe_metrics(snapshot.folder) if code == 0 else ({}, None)
        error = f"exit code {code}" if code != 0 else None if metrics else "no validation metrics"
        seconds = self._record(snapshot, running.started, {"error": error} if error else {"metrics": metrics}, run)
        if error:
            _say(f"warning: the probe of epoch {snapshot.epoch} failed ({error}); see {log}")
            return None
        _say(f"probe of epoch {snapshot.epoch}: probe_val_dice {metrics['probe_val_dice']:.4f} ({seconds:.0f} s)")
        return {"epoch": snapshot.epoch, "step": snapshot.step, **metrics, "probe_seconds": seconds}

    def _record(self, snapshot: _Snapshot, started: float, outcome: dict[str, Any], run: Path | None = None) -> float:
        """Append the line of ``snapshot`` to ``probes.jsonl``; return the probe's seconds."""
        assert self.folder is not None
        log = snapshot.folder / PROBE_LOG
        ended = log.stat().st_mtime if log.is_file() else time.time()  # the probe's last output
        seconds = round(max(0.0, ended - started), 1)
        line: dict[str, Any] = {"epoch": snapshot.epoch, "step": snapshot.step, "seconds": seconds, **outcome}
        if run is not None:
            line["run"] = str(run.relative_to(self.folder.parent))
        if "error" in outcome:
            line["log"] = str(log)
        self.results[snapshot.epoch] = line
        with open(self.folder / RESULTS_FILE, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(line) + "\n")
        return seconds


def _read_snapshot(folder: Path, epoch: int) -> _Snapshot | None:
    """The complete snapshot in ``folder`` (weights and ``snapshot.json``), else None."""
    try:
        info = json.loads((folder / SNAPSHOT_INFO).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    if not (folder / SNAPSHOT_FILE).is_file() or info.get("epoch") != epoch:
        return None
    return _Snapshot(epoch, int(info.get("step", 0)), folder)


def _say(text: str) -> None:
    current_reporter().message(text)
