"""Downstream segmentation: finetuning a 3D U-Net and evaluating it (``radiossl finetune`` / ``evaluate``).

* :mod:`.config` — :class:`FinetuneConfig`, :class:`EvaluateConfig`, :func:`load_task_config`;
* :mod:`.tasks` — the task plugins (``brats``, ``lits``, ``nnunet``) and their base class;
* :mod:`.finetune` — :func:`finetune` and the engine-facing :class:`FinetuneTask`;
* :mod:`.evaluate` — :func:`evaluate` (``full`` and ``thesis-crops`` protocols);
* :mod:`.inference`, :mod:`.metrics`, :mod:`.losses`, :mod:`.freezing`, :mod:`.datasets` — the parts.

Submodules are imported on use; this package itself imports nothing heavy.
"""
