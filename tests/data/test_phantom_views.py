"""Every phantom, made with the defaults of ``radiossl synth``, passes the default rules of every view.

Nothing here is tuned: the phantoms have their default shape and the views their default crop size,
border, spacing, rejection rule and sample count, exactly as ``radiossl synth X`` followed by
``radiossl preprocess --views V`` run them. Only the number of cases is small.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from radiossl.data.phantoms import KINDS, synthesize
from radiossl.data.preprocess import PreprocessConfig, preprocess
from radiossl.data.preprocess.config import view_defaults

DATASETS = {"brats": "brats18", "lits": "lits17", "luna": "luna16", "nnunet": "nnunet", "nnssl": "nnssl"}
# LUNA's default is a whole chest (14 M voxels), so one case; nnunet adds a held-out case to its one;
# nnssl's three images are a T1w and a T2w of one session and a T1w of the other dataset (1.2 mm slices).
CASES = {"brats": 2, "lits": 2, "luna": 1, "nnunet": 1, "nnssl": 3}
# The genesis view's default on CT is ModelsGenesis' lung rule (at most 15 % of a cube at or above
# -150 HU): it is made for chest CT (LUNA16). LiTS is abdominal CT, with no lung to cut cubes from.
VIEWS = ("cluster", "pcrlv2", "genesis")  # the built-in views
VIEWS_OF = {kind: tuple(v for v in VIEWS if (kind, v) != ("lits", "genesis")) for kind in KINDS}


@pytest.fixture(scope="module")
def default_phantom(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``default_phantom(kind)``: a phantom dataset with every synth default but the case count."""
    made: dict[str, Path] = {}

    def get(kind: str) -> Path:
        if kind not in made:
            made[kind] = synthesize(kind, tmp_path_factory.mktemp(kind) / kind, cases=CASES[kind]).out
        return made[kind]

    return get


@pytest.mark.parametrize(("kind", "view"), [(kind, view) for kind in KINDS for view in VIEWS_OF[kind]])
def test_every_default_phantom_passes_the_default_rules_of_its_views(
    default_phantom: Callable[[str], Path], tmp_path: Path, kind: str, view: str
) -> None:
    out = tmp_path / "proc"
    result = preprocess(PreprocessConfig(dataset=DATASETS[kind], data=default_phantom(kind), out=out, view=view))
    assert result.failed == 0, [f"{f.case_id}: {f.reason}" for f in result.failures]
    cases = json.loads((out / "preprocess.json").read_text())["cases"]
    assert len(cases) == result.ok > 0
    per_group = view_defaults(view).pairs
    for case_id, entry in cases.items():  # every sample of every group found, none given up on
        assert entry["samples"] == per_group * len(entry["groups"]), (case_id, entry["samples"])
