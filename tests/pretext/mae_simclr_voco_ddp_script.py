"""Run by tests/pretext/test_mae_simclr_voco_training.py under torchrun: pretrain METHOD from a JSON config.

Writes ``REPORT/rank<r>.json`` with the run folder and the last epoch's loss.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))

from conftest import register_checkout_pretext_methods  # the shared venv may predate the entry points

from radiossl.pretext.base import get_method, pretrain_config_class
from radiossl.pretext.pretrain import pretrain


def main(method: str, config_file: Path, report: Path) -> None:
    register_checkout_pretext_methods()
    config = pretrain_config_class(get_method(method)).model_validate_json(config_file.read_text())
    result = pretrain(config)
    report.mkdir(parents=True, exist_ok=True)
    rank = int(os.environ.get("RANK", "0"))
    payload = {"run_dir": str(result.run_dir), "loss": result.history[-1]["loss"]}
    (report / f"rank{rank}.json").write_text(json.dumps(payload))


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]))
