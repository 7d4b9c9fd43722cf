"""Data: dataset adapters, splits, resampling and normalisation, preprocessing, and the view contract.

Submodules are imported on demand (this package imports nothing heavy):

* :mod:`radiossl.data.datasets` — ``Case``, ``DatasetAdapter``, ``get_adapter`` (brats18, lits17,
  luna16, nnunet);
* :mod:`radiossl.data.splits` — ``Splits``, ``save_splits``, ``load_splits``, ``ratio_subset``;
* :mod:`radiossl.data.labels` — ``LabelSet`` (the label values a dataset or task allows) and the
  check ``read_case`` runs on every label it reads;
* :mod:`radiossl.data.loading` — ``load_case_arrays`` for finetuning and evaluation;
* :mod:`radiossl.data.preprocess` — ``preprocess(PreprocessConfig) -> PreprocessResult``;
* :mod:`radiossl.data.processed` — ``ProcessedDataset`` and ``read_preprocess_record``: the one owner
  of the preprocessed folder (``preprocess.json``, the manifest); :mod:`radiossl.data.targets` — its
  k-means target sets;
* :mod:`radiossl.data.view_contract` — ``View``, ``ViewSamples``, ``Plan``, ``get_view``: what
  preprocessing asks of a view plugin, found through the registry. The views themselves, with their
  datasets (``ClusterPairDataset``, ``PCRLv2ViewDataset``, ``GenesisCubeDataset``), live in
  :mod:`radiossl.views`, which builds on this package; nothing here imports it.
"""
