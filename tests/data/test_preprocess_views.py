"""``preprocess`` finds views through the registry: typed view sections, plugin views, resuming folders."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
import torch

from radiossl import registry
from radiossl.config import build_config, load_config_file_into
from radiossl.data.preprocess import PreprocessConfig, preprocess
from radiossl.data.preprocess.config import Plan
from radiossl.data.processed import ProcessedDataset
from radiossl.errors import ConfigError
from radiossl.views.base import View, ViewDataset, ViewDefaults, ViewSamples


def test_view_must_be_registered_and_the_error_lists_the_views() -> None:
    with pytest.raises(ConfigError, match=r"config: view: unknown views plugin 'cubes'; available: .*cluster.*genesis"):
        build_config(PreprocessConfig, [{"view": "cubes"}])


def test_view_sections_keep_their_yaml_keys_and_are_typed(tmp_path: Path) -> None:
    file = tmp_path / "pre.yaml"
    file.write_text("dataset: lits17\nview: pcrlv2\npcrlv2:\n  local_count: 4\ngenesis:\n  allow_partial: false\n")
    config = load_config_file_into(PreprocessConfig, file)
    assert config.view_options().local_count == 4  # type: ignore[union-attr]
    assert config.genesis.allow_partial is False  # another view's section: kept and typed
    dumped = config.model_dump(mode="json")
    assert dumped["pcrlv2"]["local_count"] == 4 and dumped["genesis"] == {"allow_partial": False}
    assert "pcrlv2" not in PreprocessConfig(view="genesis").model_dump()  # only the view's own section by default
    with pytest.raises(ConfigError) as err:
        load_config_file_into(PreprocessConfig, file, ["pcrlv2.local_count=0", "genesis.partial=1", "nonsense=2"])
    lines = str(err.value).splitlines()
    assert any(line.endswith("pcrlv2.local_count: Input should be greater than or equal to 1") for line in lines)
    assert any("genesis.partial: unknown field" in line for line in lines)
    assert any("nonsense: unknown field" in line for line in lines)


class Whole(View):
    """A test view registered in the process: each volume's first crop-size box, ``copies`` times."""

    name = "whole-test"
    defaults = ViewDefaults(None, (0, 0, 0), True, 2)
    dataset_class = ViewDataset

    def sample(
        self, volume: np.ndarray, group_id: str, plan: Plan, thresholds: Sequence[float], dtype: torch.dtype
    ) -> ViewSamples:
        x, y, z = plan.crop_size
        crop = torch.from_numpy(np.ascontiguousarray(volume[:, :x, :y, :z])).to(dtype)
        box = np.array([0, x, 0, y, 0, z])
        return ViewSamples(
            crop[None].repeat(plan.pairs, 1, 1, 1, 1),
            np.tile(box, (plan.pairs, 2, 1)),
            extra_arrays={".mean": np.full(plan.pairs, float(crop.float().mean()))},
        )


@pytest.fixture
def whole_view() -> Iterator[None]:
    registry.register("radiossl.views", Whole.name, Whole)
    yield
    registry.unregister("radiossl.views", Whole.name)


def test_a_view_registered_in_process_is_preprocessed_like_a_builtin(
    whole_view: None, small_config: Callable[..., PreprocessConfig], phantom_root: Callable[[str], Path], tmp_path: Path
) -> None:
    config = small_config(phantom_root("luna"), tmp_path / "p", dataset="luna16", view="whole-test", pairs=None)
    result = preprocess(config)
    assert result.failed == 0 and result.samples == 3 * 2  # the view's default pairs
    data = ProcessedDataset.open(tmp_path / "p")
    assert data.view == "whole-test" and data.record.spacing is None  # the view's native spacing default
    record = data.records(split=None)[0]
    assert data.load_crops(record).shape == (1, 16, 16, 8)
    assert data.load_array(record, ".mean").dtype == np.float64  # extra arrays are stored as given
    assert (record.box1, record.box2) == ((0, 16, 0, 16, 0, 8), (0, 16, 0, 16, 0, 8))


def test_sections_of_other_views_do_not_block_resuming(
    small_config: Callable[..., PreprocessConfig], phantom_root: Callable[[str], Path], tmp_path: Path
) -> None:
    out = tmp_path / "p"
    assert preprocess(small_config(phantom_root("brats"), out)).failed == 0
    again = small_config(phantom_root("brats"), out, genesis={"allow_partial": False})
    assert preprocess(again).skipped == 3  # a genesis setting changes no cluster sample
    # a folder of the previous release recorded every built-in view's section; it resumes too
    record = json.loads((out / "preprocess.json").read_text())
    record["settings"]["pcrlv2"] = {"local_count": 6}
    record["settings"]["genesis"] = {"allow_partial": True}
    (out / "preprocess.json").write_text(json.dumps(record))
    assert preprocess(small_config(phantom_root("brats"), out)).skipped == 3
    with pytest.raises(ConfigError, match=r"other settings \(seed: 1 -> 2\)"):
        preprocess(small_config(phantom_root("brats"), out, seed=2))


def test_a_view_section_absent_from_an_older_record_is_held_to_its_defaults(
    small_config: Callable[..., PreprocessConfig], phantom_root: Callable[[str], Path], tmp_path: Path
) -> None:
    out = tmp_path / "p"

    def genesis(**section: object) -> PreprocessConfig:
        rejection = {"max_background": None, "max_foreground": 0.6}
        return small_config(
            phantom_root("luna"), out, dataset="luna16", view="genesis", rejection=rejection, genesis=section
        )

    assert preprocess(genesis()).failed == 0
    # a folder written before the genesis view had options: the section is absent
    record = json.loads((out / "preprocess.json").read_text())
    assert record["settings"].pop("genesis") == {"allow_partial": True}
    (out / "preprocess.json").write_text(json.dumps(record))
    assert preprocess(genesis()).skipped == 3
    (out / "preprocess.json").write_text(json.dumps(record))
    with pytest.raises(ConfigError, match=r"other settings \(genesis\.allow_partial: \(absent\) -> false\)"):
        preprocess(genesis(allow_partial=False))
