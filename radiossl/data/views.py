"""Former home of the view datasets; they now live with their views in :mod:`radiossl.views`.

Kept so that existing imports (``from radiossl.data.views import ClusterPairDataset``) keep working.
"""

from radiossl.views.base import ViewDataset
from radiossl.views.cluster import ClusterPairDataset, PairSample
from radiossl.views.genesis import GenesisCubeDataset
from radiossl.views.pcrlv2 import PCRLv2Sample, PCRLv2ViewDataset

__all__ = ["ClusterPairDataset", "GenesisCubeDataset", "PCRLv2Sample", "PCRLv2ViewDataset", "PairSample", "ViewDataset"]
