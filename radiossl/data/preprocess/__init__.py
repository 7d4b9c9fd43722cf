"""``radiossl preprocess``: crop pairs (clustering), PCRLv2 views and ModelsGenesis cubes from raw data.

Example::

    from radiossl.data.preprocess import PreprocessConfig, preprocess
    result = preprocess(PreprocessConfig(dataset="lits17", data="LiTS", out="lits_proc", view="cluster"))
    assert result.failed == 0
"""

from radiossl.data.preprocess.config import PreprocessConfig
from radiossl.data.preprocess.runner import CaseFailure, PreprocessResult, preprocess
from radiossl.data.view_contract import RejectionConfig

__all__ = ["CaseFailure", "PreprocessConfig", "PreprocessResult", "RejectionConfig", "preprocess"]
