"""The training loop shared by every pretext method and downstream task.

:func:`run_training` drives any :class:`radiossl.engine.protocol.TrainingTask`: it picks the device,
joins a ``torchrun`` process group when there is one, builds loaders whose order depends only on
``(seed, epoch)``, runs mixed precision, gradient accumulation and clipping, stops on a non-finite
loss, validates on every rank, stops early after ``optim.patience`` validated epochs without a better
monitored metric (``task.monitor``, else ``val_loss``), logs collapse statistics of the embeddings
(``monitoring`` section, :mod:`radiossl.engine.collapse`), writes visualisations, metrics and
checkpoints on rank 0, and resumes exactly from ``checkpoint_latest.pt``. Under DDP an exception on
one rank stops every rank promptly, with the original message (see :mod:`radiossl.engine.distributed`).

Epochs are numbered from 1 in files and messages (``metrics.jsonl``, ``vis/*_e0003.png``, the
checkpoint's ``epoch`` = completed epochs) and from 0 in :class:`StepContext` (``context.epoch``).

Example (a complete task is in ``tests/engine/tasks.py``)::

    result = run_training(task, config)            # config: a RunConfig (e.g. a PretrainConfig)
    result = run_training(task, config, resume="auto")
    print(result.final_checkpoint, result.history[-1]["loss"])
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

import radiossl
from radiossl.config import RunConfig, to_yaml
from radiossl.engine import checkpoint as ckpt
from radiossl.engine.collapse import CollapseWatch
from radiossl.engine.distributed import (
    DistInfo,
    all_reduce_mean,
    broadcast_buffers,
    broadcast_object,
    communicating,
    destroy_distributed,
    env_dist_info,
    gather_objects,
    init_distributed,
    make_eval_sampler,
    make_train_sampler,
    raise_if_any_failed,
    reduce_validation,
    shared_store_restart_note,
    step_status,
    sync_batchnorm,
    wrap_ddp,
)
from radiossl.engine.logging import RunLogger
from radiossl.engine.optim import BatchScale, batch_scale, build_optimizer, build_scheduler, current_lr, scaled_optim
from radiossl.engine.progress import RunPlan, RunSummary, reporting_to
from radiossl.engine.protocol import StepContext, StepOutput, TrainingTask, headline_metrics, task_label, with_defaults
from radiossl.engine.run_dir import JOB_FILE, job_run_dir, resolve_run_dir, run_prefix
from radiossl.errors import CheckpointError, ConfigError, DataError, RadiosslError, TrainingError
from radiossl.models import checkpoint as checkpoint_file
from radiossl.runtime.device import (
    apply_memory_format,
    memory_format_for,
    move_to_device,
    pin_memory_for,
    select_device,
)
from radiossl.runtime.precision import autocast_context, make_grad_scaler, resolve_amp
from radiossl.utils.atomic import atomic_write_text, write_json
from radiossl.utils.figures import as_rgb_uint8, save_png
from radiossl.utils.seeding import rng_for, seed_everything

_RESERVED = frozenset({"type", "epoch", "step", "lr", "loss", "time", "epoch_time"})


@dataclass
class TrainResult:
    """What a finished (or already complete) training run left behind."""

    run_dir: Path
    final_checkpoint: Path
    best_checkpoint: Path | None
    epochs_completed: int
    history: list[dict[str, Any]] = field(default_factory=list)
    best_metric: float | None = None
    stopped_early: bool = False
    is_main: bool = True
    """Whether this process is the job's main process (rank 0), the one that wrote the run folder."""

    @property
    def latest_checkpoint(self) -> Path:
        return self.run_dir / ckpt.LATEST


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: seed NumPy and ``random`` from the worker's torch seed."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """The seed of epoch ``epoch``'s shuffling/worker generator (independent of anything else)."""
    return int(rng_for(seed, "loader", epoch, rank).integers(0, 2**62))


def _dataset_length(dataset: Any, what: str, root: Any) -> int:
    try:
        length = len(dataset)
    except TypeError as exc:
        raise DataError(f"{root}: the {what} dataset has no length (map-style datasets only)") from exc
    if length == 0:
        raise DataError(f"{root}: the {what} dataset is empty (check the split and data.ratio)")
    return int(length)


def run_training(
    task: TrainingTask,
    config: RunConfig,
    run_dir: Path | None = None,
    resume: str | Path | None = None,
    extend_epochs: int | None = None,
    dataset_name: str | None = None,
) -> TrainResult:
    """Train ``task`` with the shared sections of ``config``; see the module docstring.

    Args:
        task: a pretext method or downstream task instance.
        config: the resolved run config (``data``, ``model``, ``optim``, ``runtime``, ``logging``, ``out``).
        run_dir: use this folder instead of a new ``config.out/<readable name>-<time>`` folder.
        resume: ``"auto"`` or a checkpoint/run-folder path (see :mod:`radiossl.engine.run_dir`).
        extend_epochs: with ``resume``, train this many epochs beyond the resumed run's planned total;
            the learning-rate schedule is rebuilt for the new total.
        dataset_name: the dataset's name in a new run folder's name (default: the data folder's name).

    Under ``torchrun`` the run folder records the job's id (``torchrun.json``: ``--rdzv_id``, or the
    id ``--standalone`` makes up). Workers that torchrun restarts (``--max-restarts``, or nodes joining
    or leaving an elastic job) find that folder again and continue it from its last checkpoint, as
    with ``resume="auto"`` (with ``resume`` unset or ``"auto"``; an explicit path still wins).

    Raises:
        TrainingError: a non-finite loss, a task that breaks the protocol, or a lost DDP rank.
        CheckpointError: the resume checkpoint is missing, corrupt or does not fit the model.
    """
    task = with_defaults(task)
    env = env_dist_info()
    device = select_device(config.runtime.device, env.local_rank if env.distributed else None)
    info, created = init_distributed(device.type, config.runtime.dist_timeout_s)
    try:
        trainer = _Trainer(task, config, device, info)
        trainer.dataset_name = dataset_name
        return trainer.run(run_dir, resume, extend_epochs)
    finally:
        destroy_distributed(created)


class _Trainer:
    """One training run; split into methods only to keep each step readable."""

    def __init__(self, task: TrainingTask, config: RunConfig, device: torch.device, info: DistInfo) -> None:
        self.task = task
        self.config = config
        self.device = device
        self.info = info
        self.history: list[dict[str, Any]] = []
        self.best_metric: float | None = None
        self.global_step = 0
        self.start_epoch = 0
        self.stopped_early = False
        # optim.patience: best validation value so far and epochs since it improved (in checkpoints)
        self.patience: int | None = getattr(config.optim, "patience", None)
        self.patience_best: float | None = None
        self.stale_epochs = 0
        self.resume_state: dict[str, Any] | None = None  # a checkpoint already read for --extend-epochs
        self.notes: list[str] = []  # messages decided before the run's log exists
        self.job_id = os.environ.get("TORCHELASTIC_RUN_ID", "") if info.distributed else ""
        hazard = shared_store_restart_note() if info.distributed else None
        if hazard:
            self.notes.append(hazard)
        self.scale: BatchScale = batch_scale(config.optim, info.world_size, info.nodes)
        self.steps_per_epoch = 0
        self.dataset_name: str | None = None  # for the run folder's name; None = the data folder's name
        # the config's monitoring section (pretraining configs have one): collapse statistics per epoch
        monitoring = getattr(config, "monitoring", None)
        self.collapse: CollapseWatch | None = (
            CollapseWatch(monitoring, task.embeddings, info.world_size, task_label(task))
            if monitoring is not None and monitoring.enabled
            else None
        )

    # ----------------------------------------------------------------------------------- set-up

    def _resolve(self, run_dir: Path | None, resume: str | Path | None) -> tuple[Path, Path | None]:
        parts = list(self.task.run_name_parts())
        prefix = run_prefix(self.task.kind, self.task.name, self.config, parts, self.dataset_name)
        answer: Any = None
        if self.info.is_main:
            try:
                job = job_run_dir(self.config.out, prefix, self.job_id) if self.job_id and run_dir is None else None
                if job is not None and (resume is None or str(resume) == "auto"):
                    run_dir, resume = job, "auto"
                    self.notes.append(f"torchrun restarted the workers of job {self.job_id}: continuing {job}")
                folder, checkpoint, _ = resolve_run_dir(prefix, self.config.out, run_dir, resume)
                answer = (str(folder), None if checkpoint is None else str(checkpoint))
            except RadiosslError as exc:
                answer = exc
        answer = broadcast_object(answer, self.info)
        if isinstance(answer, BaseException):
            raise answer
        folder_text, checkpoint_text = answer
        return Path(folder_text), None if checkpoint_text is None else Path(checkpoint_text)

    def _loader(self, dataset: Any, train: bool, generator: torch.Generator) -> DataLoader[Any]:
        cfg = self.config
        root = cfg.data.root
        length = _dataset_length(dataset, "training" if train else "validation", root)
        sampler = (
            make_train_sampler(dataset, self.info, cfg.runtime.seed) if train else make_eval_sampler(dataset, self.info)
        )
        per_rank = len(sampler) if sampler is not None else length
        batch_size = cfg.optim.batch_size
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=train and sampler is None,
            sampler=sampler,
            num_workers=cfg.data.workers,
            pin_memory=pin_memory_for(self.device),
            drop_last=train and per_rank >= batch_size,
            worker_init_fn=seed_worker,
            generator=generator,
            persistent_workers=False,
        )

    def _restore(self, path: Path, model: nn.Module, optimizer: Any, scheduler: Any, scaler: Any) -> None:
        state, self.resume_state = self.resume_state or checkpoint_file.load_checkpoint(path), None
        try:
            model.load_state_dict(checkpoint_file.clean_state_dict(state["model"]))
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0]
            raise CheckpointError(f"{path}: does not fit this model (check model.* settings): {first}") from exc
        try:
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            if state.get("grad_scaler"):
                scaler.load_state_dict(state["grad_scaler"])
        except (KeyError, ValueError, RuntimeError) as exc:
            raise CheckpointError(f"{path}: optimizer/scheduler state does not fit: {exc}") from exc
        self.start_epoch = int(state.get("epoch", 0))
        self.stopped_early = bool(state.get("stopped_early", False))
        self.global_step = int(state.get("global_step", 0))
        self.history = list(state.get("history") or [])
        best = state.get("best_metric")
        self.best_metric = None if best is None else float(best)
        early = state.get("early_stopping") or {}
        self.patience_best = None if early.get("best") is None else float(early["best"])
        self.stale_epochs = int(early.get("stale", 0))
        if self.collapse is not None and state.get("collapse_monitor"):
            self.collapse.load_state_dict(state["collapse_monitor"])
        rng = state.get("rng") or {}
        states = rng.get("states") or []
        if states:
            ckpt.set_rng_state(states[self.info.rank] if len(states) == self.info.world_size else states[0])
            if len(states) != self.info.world_size and self.info.rank > 0:
                torch.manual_seed(epoch_seed(self.config.runtime.seed, self.start_epoch, self.info.rank))
        saved_optim = (state.get("config") or {}).get("optim") or {}
        now_optim = json.loads(self.config.optim.model_dump_json())
        changed = sorted(k for k in now_optim if k in saved_optim and saved_optim[k] != now_optim[k])
        saved_scale = state.get("scale") or {}
        # checkpoints from before optim.lr_scaling trained with optim.lr itself
        saved_lr = float(saved_scale.get("lr") or saved_optim.get("lr") or self.scale.lr)
        from_lr = None if math.isclose(saved_lr, self.scale.lr, rel_tol=1e-12) else saved_lr
        saved_steps = int(state.get("steps_per_epoch") or self.steps_per_epoch)
        if saved_steps != self.steps_per_epoch:
            # another number of processes: checkpoints are written at epoch ends, so the schedule
            # continues where the completed epochs put it with the current steps per epoch
            scheduler.last_epoch = self.start_epoch * self.steps_per_epoch
        if changed or from_lr is not None or saved_steps != self.steps_per_epoch:
            self._apply_changed_optim(optimizer, scheduler, changed, from_lr)
        if changed:
            self.log.message(
                f"note: resuming with changed optim settings ({', '.join(changed)}); "
                "the schedule follows the current config"
            )
        saved_batch = saved_scale.get("effective_batch_size")
        if saved_batch is not None and int(saved_batch) != self.scale.effective_batch_size:
            self.log.message(
                f"note: the effective batch changed from {saved_batch} to {self.scale.effective_batch_size} "
                f"({self.scale.world_size} processes now); lr {saved_lr:g} -> {self.scale.lr:g} "
                f"(optim.lr_scaling {self.scale.lr_scaling}), {self.steps_per_epoch} steps per epoch"
            )
        self.log.message(f"resumed from {path} (epoch {self.start_epoch}, step {self.global_step})")

    def _apply_changed_optim(self, optimizer: Any, scheduler: Any, changed: list[str], from_lr: float | None) -> None:
        """Make the restored optimiser and schedule use the current config's lr, momentum and weight decay.

        ``load_state_dict`` brings back the saved hyper-parameters (and the scheduler its saved base
        learning rates); without this, a resumed run silently kept the old learning rate. ``from_lr``
        is the (scaled) learning rate the checkpoint trained with when it differs from the current one.
        """
        optim = self.config.optim
        for group in optimizer.param_groups:
            if "weight_decay" in changed:
                group["weight_decay"] = optim.weight_decay
            if "momentum" in changed and "momentum" in group:
                group["momentum"] = optim.momentum
        if from_lr is not None:
            ratio = self.scale.lr / from_lr
            scheduler.base_lrs = [base * ratio for base in scheduler.base_lrs]
            for group in optimizer.param_groups:
                group["initial_lr"] = group.get("initial_lr", from_lr) * ratio
        factors = [fn(scheduler.last_epoch) for fn in scheduler.lr_lambdas]
        for group, base, factor in zip(optimizer.param_groups, scheduler.base_lrs, factors, strict=True):
            group["lr"] = base * factor
        scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]

    def _extend(self, checkpoint: Path | None, extra: int) -> int:
        """Raise ``optim.epochs`` to the resumed run's planned total plus ``extra``; return that planned total."""
        if extra < 1:
            raise ConfigError(f"--extend-epochs must be at least 1, got {extra}")
        if checkpoint is None:
            raise ConfigError(
                "--extend-epochs continues an earlier run, but none was found: add --resume auto (same "
                "command as the run) or --resume RUN_FOLDER"
            )
        state = self.resume_state = checkpoint_file.load_checkpoint(checkpoint)  # _restore uses it: one read
        saved_optim = (state.get("config") or {}).get("optim") or {}
        planned = int(saved_optim.get("epochs", state.get("epoch", 0)))
        optim = self.config.optim.model_copy(update={"epochs": planned + extra})
        self.config = self.config.model_copy(update={"optim": optim})
        return planned

    def _resolve_precision(self) -> None:
        """Replace ``runtime.amp`` by the precision that runs here, so config.yaml and checkpoints record it."""
        choice = resolve_amp(self.device, self.config.runtime.amp)
        if self.info.is_main:
            choice.log()
        if choice.amp != self.config.runtime.amp:
            runtime = self.config.runtime.model_copy(update={"amp": choice.amp})
            self.config = self.config.model_copy(update={"runtime": runtime})

    # --------------------------------------------------------------------------------- the loop

    def run(self, run_dir: Path | None, resume: str | Path | None, extend_epochs: int | None = None) -> TrainResult:
        cfg, info, device = self.config, self.info, self.device
        seed_everything(cfg.runtime.seed, cfg.runtime.deterministic)
        if device.type == "cuda" and not cfg.runtime.deterministic:
            torch.backends.cudnn.benchmark = True
        folder, resume_from = self._resolve(run_dir, resume)
        self.run_dir = folder
        extended = None if extend_epochs is None else self._extend(resume_from, extend_epochs)
        self._resolve_precision()
        cfg = self.config
        error: Exception | None = None
        self.scale = batch_scale(cfg.optim, info.world_size, info.nodes)  # --extend-epochs changed cfg
        if info.is_main:
            try:
                folder.mkdir(parents=True, exist_ok=True)
                atomic_write_text(folder / "config.yaml", to_yaml(cfg) + _scale_comment(self.scale))
                if self.job_id:
                    write_json(folder / JOB_FILE, {"run_id": self.job_id})
            except Exception as exc:
                error = exc
        raise_if_any_failed(error, info, f"while writing {folder / 'config.yaml'}")
        self.log = RunLogger(
            folder, enabled=info.is_main, tensorboard=cfg.logging.tensorboard, verbose=cfg.logging.verbose
        )
        for note in self.notes:
            self.log.message(note)
        if extended is not None:
            self.log.message(f"extending the run from {extended} to {cfg.optim.epochs} epochs (--extend-epochs)")
        try:
            with reporting_to(self.log):  # the task's own messages reach the console and train.log too
                return self._train(resume_from)
        finally:
            self.log.close()

    def _train(self, resume_from: Path | None) -> TrainResult:
        cfg, task, info, device = self.config, self.task, self.info, self.device
        error: Exception | None = None
        try:
            model = task.build_model()
            if not isinstance(model, nn.Module):
                raise TrainingError(f"{task_label(task)}.build_model() returned {type(model).__name__}, not a Module")
            self.model_spec = checkpoint_file.to_plain(task.model_spec(model))
            model.to(device)
            apply_memory_format(model, memory_format_for(device, cfg.runtime.memory_format))
            model, note = sync_batchnorm(model, device, info, cfg.runtime.sync_batchnorm)
            if note:
                self.log.message(note)
            if info.distributed:
                # Different augmentation/dropout streams per rank; the model above was initialised identically.
                torch.manual_seed(epoch_seed(cfg.runtime.seed, -1, info.rank))
            train_set, val_set = task.build_datasets()
            if self.patience is not None and val_set is None:
                watched = (task.monitor or ("val_loss", "min"))[0]
                raise ConfigError(
                    f"optim.patience={self.patience} stops on the validation metric {watched}, but {task.name} has "
                    f"no validation data in {cfg.data.root}; add a val split or unset optim.patience"
                )
            generator = torch.Generator()
            val_generator = torch.Generator()
            train_loader = self._loader(train_set, True, generator)
            val_loader = self._loader(val_set, False, val_generator) if val_set is not None else None
            accumulate = cfg.optim.accumulate
            self.steps_per_epoch = steps_per_epoch = math.ceil(len(train_loader) / accumulate)
            optim = scaled_optim(cfg.optim, self.scale)
            optimizer = build_optimizer(model, optim)
            scheduler = build_scheduler(optimizer, optim, steps_per_epoch)
            scaler = make_grad_scaler(device, cfg.runtime.amp)
            if resume_from is not None:
                self._restore(resume_from, model, optimizer, scheduler, scaler)
                self.log.truncate_after(self.global_step)
        except Exception as exc:
            error = exc
        raise_if_any_failed(error, info, "while setting up training")
        wrapped = wrap_ddp(model, device, info, bool(task.ddp_find_unused_parameters))
        total = cfg.optim.epochs
        # An early-stopped run is complete: resuming it must not train past the stop.
        end = self.start_epoch if self.stopped_early else total
        if self.start_epoch >= end:
            self.log.message(f"run already complete ({self.start_epoch}/{total} epochs); nothing to train")
        headline = headline_metrics(task)
        label = f"{task.kind} {task.name}"
        self.log.start_run(
            RunPlan(label, self.run_dir, total, min(self.start_epoch, total), headline, live=cfg.logging.progress)
        )
        self.log.message(self.scale.describe())  # what a run on 1 GPU and one on 16 compare first
        epochs_done = self.start_epoch if self.stopped_early else max(self.start_epoch, total)
        for epoch in range(self.start_epoch, end):
            record, vis_batch = self._train_epoch(
                epoch, wrapped, model, train_set, train_loader, generator, optimizer, scheduler, scaler
            )
            context = self._context(epoch, {"phase": "validate"})
            val_metrics = self._validate(wrapped, model, val_loader, val_generator, context)
            improved, stop_reason = False, None
            try:
                for key, value in val_metrics.items():
                    record[f"val_{key}" if key in _RESERVED else key] = value
                if (
                    cfg.logging.vis
                    and info.is_main
                    and vis_batch is not None
                    and ((epoch + 1) % cfg.logging.vis_every == 0 or epoch + 1 == total)
                ):
                    self._visualise(model, vis_batch, epoch, train_set)
                record["time"] = round(self.log.elapsed(), 3)
                improved = self._update_best(record, val_metrics, epoch)
                stop_reason = self._patience_stop(val_metrics, epoch)
                self.history.append(record)
                self.log.log_line(record)
                validated = any(math.isfinite(value) for value in val_metrics.values())
                self.log.end_epoch(record, validated)
                if info.is_main:
                    after = task.after_epoch(model, self._context(epoch, {"phase": "after_epoch"}))
                    self._log_monitor(after, "after_epoch")
            except Exception as exc:
                error = exc
            raise_if_any_failed(error, info, f"after epoch {epoch + 1}")
            asked = context.stop_reason  # the task asked to stop in validate()
            if stop_reason is None and asked is not None:
                stop_reason = f"requested by {task.name}" + (f": {asked}" if asked else "")
            stop_reason = broadcast_object(stop_reason, info, f"after epoch {epoch + 1}")
            self.stopped_early = stop_reason is not None
            write_latest = (epoch + 1) % cfg.logging.checkpoint_every == 0 or epoch + 1 == total or self.stopped_early
            if improved or write_latest:
                payload = self._payload(model, optimizer, scheduler, scaler, epoch + 1)
                if info.is_main:
                    try:
                        if improved:
                            checkpoint_file.save_checkpoint(self.run_dir / ckpt.BEST, payload)
                        if write_latest:
                            checkpoint_file.save_checkpoint(self.run_dir / ckpt.LATEST, payload)
                    except Exception as exc:
                        error = exc
                raise_if_any_failed(error, info, f"while writing checkpoints after epoch {epoch + 1}")
            if self.stopped_early:
                self.log.message(f"stopping early after epoch {epoch + 1}/{total} ({stop_reason})")
                epochs_done = epoch + 1
                break
        final_payload = self._payload(model, optimizer, scheduler, scaler, epochs_done)
        final = self.run_dir / ckpt.FINAL
        if info.is_main:
            try:
                checkpoint_file.save_checkpoint(final, final_payload)
            except Exception as exc:
                error = exc
        raise_if_any_failed(error, info, f"while writing {ckpt.FINAL}")
        if info.is_main:
            # after the last collective: the other ranks need not wait (e.g. for a probe to finish)
            after = task.after_training(model, self._context(epochs_done, {"phase": "after_training"}))
            self._log_monitor(after, "after_training")
        best = self.run_dir / ckpt.BEST
        self.log.end_run(
            RunSummary(
                label=label,
                run_dir=self.run_dir,
                history=self.history,
                headline=headline,
                monitor=self.task.monitor or ("loss", "min"),
                best_checkpoint=best if best.is_file() else None,
                final_checkpoint=final,
                best_metric=self.best_metric,
                seconds=self.log.elapsed(),
            )
        )
        return TrainResult(
            run_dir=self.run_dir,
            final_checkpoint=final,
            best_checkpoint=best if self.best_metric is not None else None,
            epochs_completed=epochs_done,
            history=list(self.history),
            best_metric=self.best_metric,
            stopped_early=self.stopped_early,
            is_main=info.is_main,
        )

    def _context(self, epoch: int, extra: dict[str, Any] | None = None) -> StepContext:
        return StepContext(
            epoch=epoch,
            total_epochs=self.config.optim.epochs,
            step=self.global_step,
            device=self.device,
            world_size=self.info.world_size,
            rank=self.info.rank,
            extra={"run_dir": str(self.run_dir), **(extra or {})},
        )

    def _train_epoch(
        self,
        epoch: int,
        wrapped: nn.Module,
        model: nn.Module,
        train_set: Any,
        loader: DataLoader[Any],
        generator: torch.Generator,
        optimizer: torch.optim.Optimizer,
        scheduler: Any,
        scaler: torch.amp.GradScaler,
    ) -> tuple[dict[str, Any], Any]:
        cfg, task, info = self.config, self.task, self.info
        generator.manual_seed(epoch_seed(cfg.runtime.seed, epoch, info.rank))
        sampler = loader.sampler
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        if hasattr(train_set, "set_epoch"):
            train_set.set_epoch(epoch)
        wrapped.train()
        task.train_mode(model)
        n_batches = len(loader)
        accumulate = cfg.optim.accumulate
        self.log.start_epoch(epoch + 1, n_batches)
        epoch_sums: dict[str, list[float]] = {}
        window_sums: dict[str, list[float]] = {}
        vis_batch = None
        lr = current_lr(optimizer)
        epoch_start = self.log.elapsed()
        optimizer.zero_grad(set_to_none=True)
        watch = self.collapse
        if watch is not None:
            watch.start_epoch()
        batches = iter(loader)
        next_batch: Any = None
        error: Exception | None = None
        try:
            next_batch = next(batches)
        except Exception as exc:
            error = exc
        raise_if_any_failed(error, info, f"at epoch {epoch + 1} (loading batch 0)")
        if cfg.logging.vis and info.is_main:
            vis_batch = next_batch
        for index in range(n_batches):
            group_start = (index // accumulate) * accumulate
            group_size = min(accumulate, n_batches - group_start)
            last_in_group = index == group_start + group_size - 1
            lr = current_lr(optimizer)
            context = self._context(epoch, {"batch_index": index, "lr": lr, "phase": "train"})
            with _no_sync(wrapped, skip=not last_in_group):
                # Rank-local work: the forward, the loss and fetching the next batch. A failure in it
                # reaches every rank through the step's one collective (_checked_loss), before any
                # rank starts a batch another rank could not load.
                loss: torch.Tensor | None = None
                where = f"at epoch {epoch + 1} (batch {index})"
                try:
                    batch = move_to_device(next_batch, self.device, non_blocking=self.device.type == "cuda")
                    if watch is not None and watch.wants_more:
                        watch.collect(model, batch, autocast_context(self.device, cfg.runtime.amp))
                    with autocast_context(self.device, cfg.runtime.amp):
                        out = task.training_step(wrapped, batch, context)
                    loss = self._scalar_loss(out)
                    if index + 1 < n_batches:
                        where = f"at epoch {epoch + 1} (loading batch {index + 1})"
                        next_batch = next(batches)
                except Exception as exc:
                    error = exc
                loss = self._checked_loss(loss, error, where, epoch, index)
                with communicating(info, f"at epoch {epoch + 1} (batch {index}, exchanging gradients)"):
                    scaler.scale(loss / group_size).backward()
            values = {"loss": float(loss.detach().item()), **{k: float(v) for k, v in out.metrics.items()}}
            if last_in_group:
                task.before_optimizer_step(model, self._context(epoch, {"batch_index": index, "lr": lr}))
                if cfg.optim.grad_clip is not None:
                    scaler.unscale_(optimizer)
                    norm = torch.nn.utils.clip_grad_norm_(
                        [p for p in model.parameters() if p.requires_grad], cfg.optim.grad_clip
                    )
                    values["grad_norm"] = float(norm)
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
                with warnings.catch_warnings():
                    # fp16: the scaler may skip the very first step; the schedule still advances.
                    warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
                    scheduler.step()
                self.global_step += 1
                task.after_optimizer_step(model, self._context(epoch, {"batch_index": index, "lr": lr}))
            for key, value in values.items():
                for sums in (epoch_sums, window_sums):
                    total_count = sums.setdefault(key, [0.0, 0.0])
                    total_count[0] += value
                    total_count[1] += 1.0
            self.log.advance_step(values["loss"], lr)
            if last_in_group and self.global_step % cfg.logging.log_every == 0:
                means = all_reduce_mean(_means(window_sums), info, f"at epoch {epoch + 1} (step {self.global_step})")
                self.log.log_line(
                    {
                        "type": "step",
                        "epoch": epoch + 1,
                        "step": self.global_step,
                        "lr": lr,
                        **_ordered(means),
                        "time": round(self.log.elapsed(), 3),
                    }
                )
                window_sums = {}
        means = all_reduce_mean(_means(epoch_sums), info, f"at the end of epoch {epoch + 1}")
        record: dict[str, Any] = {
            "type": "epoch",
            "epoch": epoch + 1,
            "step": self.global_step,
            "lr": lr,
            **_ordered(means),
            "epoch_time": round(self.log.elapsed() - epoch_start, 3),
        }
        if watch is not None:
            record.update(self._collapse_statistics(watch, epoch))
        return record, vis_batch

    def _log_monitor(self, records: Any, hook: str) -> None:
        """Log the records a task's ``after_epoch``/``after_training`` returned as ``"type": "monitor"`` lines."""
        if not isinstance(records, list) or not all(
            isinstance(r, Mapping) and isinstance(r.get("epoch"), int) for r in records
        ):
            raise TrainingError(f"{task_label(self.task)}.{hook} must return a list of dicts with an int 'epoch'")
        for values in records:
            line = {k: v for k, v in values.items() if k not in ("type", "epoch", "step", "time")}
            self.log.log_line(
                {
                    "type": "monitor",
                    "epoch": int(values["epoch"]),
                    "step": int(values.get("step", self.global_step)),
                    **line,
                    "time": round(self.log.elapsed(), 3),
                }
            )

    def _collapse_statistics(self, watch: CollapseWatch, epoch: int) -> dict[str, float]:
        """``emb_rank``/``emb_spread`` over every rank's rows of this epoch (collective); warns once on collapse."""
        gathered = gather_objects(watch.local_rows(), self.info, f"while gathering embeddings after epoch {epoch + 1}")
        stats, warning = watch.end_epoch(epoch, gathered)
        if warning:
            self.log.message(f"warning: {warning} (monitoring.* settings; see docs/training.md)")
        return stats

    def _scalar_loss(self, out: Any) -> torch.Tensor:
        """The float32 scalar loss of a ``training_step`` result (TrainingError if the task broke the protocol)."""
        if not isinstance(out, StepOutput) or not isinstance(out.loss, torch.Tensor):
            raise TrainingError(
                f"{task_label(self.task)}.training_step must return StepOutput(loss=<scalar tensor>), "
                f"got {type(out).__name__}"
            )
        loss = out.loss
        if loss.numel() != 1:
            raise TrainingError(
                f"{task_label(self.task)}.training_step returned a loss of shape {tuple(loss.shape)}, not a scalar"
            )
        return loss.reshape(()).float()

    def _checked_loss(
        self, loss: torch.Tensor | None, error: Exception | None, where: str, epoch: int, index: int
    ) -> torch.Tensor:
        """The step's collective: raise on every rank if one failed or has a non-finite loss; else ``loss``."""
        finite = loss is None or bool(torch.isfinite(loss.detach()).item())
        if not step_status(finite, error, self.info, where):
            cfg = self.config
            value = math.nan if loss is None else loss.detach().item()
            self.log.log_line(
                {
                    "type": "error",
                    "epoch": epoch + 1,
                    "step": self.global_step,
                    "batch": index,
                    "loss": value,
                    "time": round(self.log.elapsed(), 3),
                }
            )
            raise TrainingError(
                f"non-finite loss ({value if not finite else 'on another rank'}) at epoch {epoch + 1}, "
                f"step {self.global_step} (batch {index}); no checkpoint was written for this epoch. "
                f"Try a lower learning rate (optim.lr={cfg.optim.lr:g}) or --amp none "
                f"(runtime.amp={cfg.runtime.amp}), then --resume auto"
            )
        assert loss is not None  # step_status raised if this rank failed
        return loss

    def _validate(
        self,
        wrapped: nn.Module,
        model: nn.Module,
        loader: DataLoader[Any] | None,
        generator: torch.Generator,
        context: StepContext,
    ) -> dict[str, float]:
        """Validation metrics over the whole validation set (exact under DDP; see ``reduce_validation``).

        The task gets the unwrapped model: its forward passes then involve no collective, so ranks
        with different numbers of validation batches (shards are not padded) never wait for each other,
        and a rank that fails reports it in the metrics exchange.
        """
        generator.manual_seed(epoch_seed(self.config.runtime.seed, 0, self.info.rank))
        broadcast_buffers(model, self.info)  # every rank validates rank 0's network
        wrapped.eval()
        metrics: dict[str, float] = {}
        error: Exception | None = None
        try:
            with torch.no_grad(), autocast_context(self.device, self.config.runtime.amp):
                returned = self.task.validate(model, loader, context)
            if not isinstance(returned, Mapping):
                raise TrainingError(f"{task_label(self.task)}.validate must return a dict of floats")
            metrics = {str(k): float(v) for k, v in returned.items()}
        except Exception as exc:
            error = exc
        samples = len(loader.sampler) if loader is not None else 0  # type: ignore[arg-type]  # samplers are sized
        return reduce_validation(metrics, samples, error, self.info, f"in validation after epoch {context.epoch + 1}")

    def _visualise(self, model: nn.Module, batch: Any, epoch: int, train_set: Any) -> None:
        model.eval()
        context = self._context(epoch, {"phase": "visualise", "train_set": train_set})
        with torch.no_grad(), autocast_context(self.device, self.config.runtime.amp):
            images = self.task.visualise(model, move_to_device(batch, self.device), context)
        if not images:
            return
        # One uint8 HWC array per picture: the PNG and the TensorBoard image are the same pixels.
        pictures = {name: as_rgb_uint8(image) for name, image in images.items()}
        for name, picture in pictures.items():
            save_png(self.run_dir / "vis" / f"{name}_e{epoch + 1:04d}.png", picture)
        self.log.log_images(pictures, epoch + 1)

    def _update_best(self, record: dict[str, Any], val_metrics: dict[str, float], epoch: int) -> bool:
        monitor = self.task.monitor
        if monitor is None:
            name, mode, value = "loss", "min", record.get("loss")
        else:
            name, mode = monitor
            if not val_metrics:  # the task skipped validation this epoch
                return False
            if name not in val_metrics:
                raise TrainingError(
                    f"{task_label(self.task)}.monitor is {name!r} but validate() returned "
                    f"{sorted(val_metrics) or 'no metrics'} at epoch {epoch + 1}"
                )
            value = val_metrics[name]
        if value is None or not math.isfinite(float(value)):
            return False
        value = float(value)
        best = self.best_metric
        better = best is None or (value < best if mode == "min" else value > best)
        if better:
            self.best_metric = value
        return better

    def _patience_stop(self, val_metrics: dict[str, float], epoch: int) -> str | None:
        """``optim.patience``: why to stop after this epoch, or None.

        Watches the task's monitored validation metric (``task.monitor``), else ``val_loss`` (lower is
        better), and stops once it has not improved for ``patience`` validated epochs in a row (as
        ModelsGenesis does). Epochs without validation metrics, or with a NaN value, do not count.
        """
        patience = self.patience
        if patience is None or not val_metrics:
            return None
        name, mode = self.task.monitor or ("val_loss", "min")
        if name not in val_metrics:
            raise TrainingError(
                f"optim.patience watches {name!r}, but {task_label(self.task)}.validate returned "
                f"{sorted(val_metrics)} at epoch {epoch + 1}"
            )
        value = float(val_metrics[name])
        if not math.isfinite(value):
            return None
        best = self.patience_best
        if best is None or (value < best if mode == "min" else value > best):
            self.patience_best, self.stale_epochs = value, 0
            return None
        self.stale_epochs += 1
        if self.stale_epochs < patience:
            return None
        return f"{name} has not improved on {best:.6g} for {patience} epochs (optim.patience)"

    def _payload(
        self, model: nn.Module, optimizer: Any, scheduler: Any, scaler: Any, epochs_done: int
    ) -> dict[str, Any]:
        # collective: every rank calls this
        states = gather_objects(ckpt.rng_state(), self.info, f"while writing checkpoints after epoch {epochs_done}")
        return {
            "format_version": checkpoint_file.FORMAT_VERSION,
            "radiossl_version": radiossl.__version__,
            "torch_version": str(torch.__version__),
            "kind": self.task.kind,
            "name": self.task.name,
            "config": json.loads(self.config.model_dump_json()),
            "model": checkpoint_file.portable_state_dict(model),
            "model_spec": self.model_spec,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "grad_scaler": scaler.state_dict(),
            "epoch": int(epochs_done),
            "global_step": int(self.global_step),
            "rng": {"world_size": self.info.world_size, "states": states},
            "scale": self.scale.as_dict(),
            "steps_per_epoch": int(self.steps_per_epoch),
            "best_metric": self.best_metric,
            "history": checkpoint_file.to_plain(self.history),
            "stopped_early": self.stopped_early,
            "early_stopping": {"best": self.patience_best, "stale": self.stale_epochs},
            "collapse_monitor": None if self.collapse is None else self.collapse.state_dict(),
        }


def _scale_comment(scale: BatchScale) -> str:
    """YAML comment lines for ``config.yaml``: what the settings amount to in this run (not settings themselves)."""
    fields = "\n".join(f"#   {key}: {value}" for key, value in scale.as_dict().items())
    return f"# this run (derived, not read back): {scale.describe()}\n{fields}\n"


def _ordered(values: dict[str, float]) -> dict[str, float]:
    """``loss`` first, then the other metrics alphabetically (stable column order in files)."""
    keys = sorted(values, key=lambda k: (k != "loss", k))
    return {k: values[k] for k in keys}


def _no_sync(model: nn.Module, skip: bool) -> contextlib.AbstractContextManager[Any]:
    """DDP's ``no_sync()`` (no gradient all-reduce) for the micro-batches inside an accumulation group."""
    if skip and isinstance(model, nn.parallel.DistributedDataParallel):
        return model.no_sync()
    return contextlib.nullcontext()


def _means(sums: dict[str, list[float]]) -> dict[str, float]:
    """Per-key means of ``{key: [sum, count]}``."""
    return {key: total / max(count, 1.0) for key, (total, count) in sums.items()}
