"""Label-efficiency sweeps: ``radiossl sweep`` (a grid of finetune + evaluate cells) and ``radiossl sweep report``.

* :mod:`radiossl.sweep.plan` — the sweep's settings, its cells and their labelled subsets;
* :mod:`radiossl.sweep.run` — running a shard of the cells, each in its own process;
* :mod:`radiossl.sweep.cell` — one cell: finetune, then evaluate (``python -m radiossl.sweep.cell``);
* :mod:`radiossl.sweep.report` — ``sweep.csv``, ``summary.csv``, ``table.md``, ``label_efficiency.png``;
* :mod:`radiossl.sweep.stats` — bootstrap intervals and paired tests (pure functions).
"""
