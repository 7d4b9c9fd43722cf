"""radiossl: 3D self-supervised pretraining for radiology.

The public API mirrors the CLI stages; every function takes a Pydantic config (or plain
arguments) and returns a typed result. Submodules are imported on first use, so
``import radiossl`` is fast and does not import torch.

Example:
    >>> import radiossl
    >>> radiossl.__version__
    '0.1.0'
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY: dict[str, str] = {
    "synthesize": "radiossl.data.phantoms:synthesize",
    "preprocess": "radiossl.data.preprocess:preprocess",
    "kmeans_fit": "radiossl.clustering.fit:kmeans_fit",
    "kmeans_predict": "radiossl.clustering.predict:kmeans_predict",
    "pretrain": "radiossl.pretext.pretrain:pretrain",
    "finetune": "radiossl.downstream.finetune:finetune",
    "evaluate": "radiossl.downstream.evaluate:evaluate",
    "run_sweep": "radiossl.sweep.run:run_sweep",
    "write_sweep_report": "radiossl.sweep.report:write_report",
    "check_overlap": "radiossl.downstream.overlap:check_overlap",
    "demo": "radiossl.demo:run_demo",
    "load_config": "radiossl.run_configs:load_config",
    "load_pretrained": "radiossl.models.loading:load_pretrained",
    "register_pretext": "radiossl.registry:register_pretext",
    "read_image": "radiossl.io:read_image",
    "write_image": "radiossl.io:write_image",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'radiossl' has no attribute {name!r}")
    module_name, _, attribute = target.partition(":")
    value = getattr(importlib.import_module(module_name), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
