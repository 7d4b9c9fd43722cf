"""Dataset adapters (plugins of the ``radiossl.datasets`` entry-point group).

Built-ins: ``brats18`` (:class:`~radiossl.data.datasets.brats18.BraTS18`), ``lits17``
(:class:`~radiossl.data.datasets.lits17.LiTS17`), ``luna16``
(:class:`~radiossl.data.datasets.luna16.LUNA16`), ``nnunet``
(:class:`~radiossl.data.datasets.nnunet.NnUNetRaw`) and ``nnssl``
(:class:`~radiossl.data.datasets.nnssl.NnSSL`, an nnssl ``pretrain_data.json`` collection).
"""

from radiossl.data.datasets.base import Case, DatasetAdapter, get_adapter

__all__ = ["Case", "DatasetAdapter", "get_adapter"]
