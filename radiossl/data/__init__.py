"""Data: dataset adapters, splits, resampling and normalisation, preprocessing, and view datasets.

Submodules are imported on demand (this package imports nothing heavy):

* :mod:`radiossl.data.datasets` — ``Case``, ``DatasetAdapter``, ``get_adapter`` (brats18, lits17,
  luna16, nnunet);
* :mod:`radiossl.data.splits` — ``Splits``, ``save_splits``, ``load_splits``, ``ratio_subset``;
* :mod:`radiossl.data.labels` — ``LabelSet`` (the label values a dataset or task allows) and the
  check ``read_case`` runs on every label it reads;
* :mod:`radiossl.data.loading` — ``load_case_arrays`` for finetuning and evaluation;
* :mod:`radiossl.data.preprocess` — ``preprocess(PreprocessConfig) -> PreprocessResult``;
* :mod:`radiossl.data.processed` — ``ProcessedDataset`` (the preprocessed folder);
* :mod:`radiossl.data.views` — torch datasets ``ClusterPairDataset``, ``PCRLv2ViewDataset``,
  ``GenesisCubeDataset``.
"""
