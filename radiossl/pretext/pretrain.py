"""``radiossl.pretrain``: train a pretext method on a preprocessed folder.

Looks the method up in the ``radiossl.pretext`` registry, checks that the data folder was
preprocessed with the views the method trains on, and hands the method to
:func:`radiossl.engine.trainer.run_training`, which writes the resolved ``config.yaml``, metrics,
checkpoints and visualisations into the run folder.

Example::

    from radiossl import load_config, pretrain
    cfg = load_config("pretrain", "patch-cluster", overrides=["data.root=proc", "optim.epochs=2"])
    result = pretrain(cfg)                 # or pretrain(cfg, resume="auto")
    print(result.run_dir, result.final_checkpoint)
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, cast

from radiossl.data.processed import PreprocessRecord, read_preprocess_record
from radiossl.engine.trainer import TrainResult, run_training
from radiossl.errors import DataError
from radiossl.pretext.base import PretextMethod, PretrainConfig, get_method
from radiossl.pretext.probe_monitor import check_probe_settings

if TYPE_CHECKING:
    from radiossl.engine.protocol import TrainingTask


def check_view(record: PreprocessRecord, method: type[PretextMethod]) -> None:
    """DataError (one line naming both views) when the folder holds a view the method does not train on."""
    wanted = method.trains_on()
    if wanted and record.view not in wanted:
        folder = record.path.parent
        names = " or ".join(repr(v) for v in wanted)
        have = f"preprocessed with the {record.view!r} view" if record.view else f"{record.path.name} names no view"
        raise DataError(
            f"{folder}: {have} but method {method.name!r} trains on the "
            f"{names} view; run `radiossl preprocess ... --views {wanted[0]}` into another folder"
        )


def with_stored_crop_size(config: PretrainConfig, record: PreprocessRecord) -> PretrainConfig:
    """``config`` with ``data.crop_size`` set to the size of the crops stored in the folder of ``record``.

    The stored crops are trained on as they are, so the run's saved config must name their size; a
    different ``data.crop_size`` is replaced, with a warning that names both sizes.
    """
    root, stored = record.path.parent, record.crop_size
    if stored is None or tuple(config.data.crop_size) == stored:
        return config
    have, want = ",".join(map(str, stored)), ",".join(map(str, config.data.crop_size))
    warnings.warn(
        f"data.crop_size is [{want}] but {root} holds crops of [{have}]; training on the stored crops "
        f"(data.crop_size=[{have}] in the run's config)",
        UserWarning,
        stacklevel=2,
    )
    return config.model_copy(update={"data": config.data.model_copy(update={"crop_size": stored})})


def pretrain(config: PretrainConfig, resume: str | Path | None = None, extend_epochs: int | None = None) -> TrainResult:
    """Pretrain ``config.method.name`` on ``config.data.root``; return where the results are.

    Args:
        config: a resolved pretraining config (see :func:`radiossl.load_config`).
        resume: ``"auto"`` (continue the newest matching run under ``config.out``, or ``config.out``
            itself when it is a run folder) or a checkpoint file / run folder.
        extend_epochs: with ``resume``, train this many epochs beyond the resumed run's planned total
            (the learning-rate schedule is rebuilt for the new total).

    Raises:
        DataError: no data folder, one that is not a preprocessed folder, or one preprocessed for
            another view.
        PluginError: the method is unknown or fails to load.
        ConfigError: probe monitoring (``monitoring.probe_*``) names an unknown task or no dataset folder.
    """
    root = config.data.root
    if root is None:
        raise DataError("no data folder given: use --data PROC_DIR (or data.root in the config)")
    if not Path(root).is_dir():
        raise DataError(f"{root}: data folder not found")
    check_probe_settings(config.monitoring)  # one line before any training, not at the first probe
    method_cls = get_method(config.method.name)
    record = read_preprocess_record(root)
    check_view(record, method_cls)
    config = with_stored_crop_size(config, record)
    task = cast("TrainingTask", method_cls(config))  # PretextMethod implements the protocol
    return run_training(task, config, resume=resume, extend_epochs=extend_epochs, dataset_name=record.dataset or None)
