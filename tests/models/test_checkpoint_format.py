"""radiossl.models.checkpoint: the one owner of the checkpoint format (safety, save/load, keys, recognisers)."""

from __future__ import annotations

import argparse
import ast
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import radiossl
from radiossl.errors import CheckpointError
from radiossl.models import checkpoint
from radiossl.models.checkpoint import (
    FORMAT_VERSION,
    Recognised,
    check_weights_only_safe,
    classify,
    clean_state_dict,
    load_checkpoint,
    read_checkpoint,
    register_recogniser,
    save_checkpoint,
    to_plain,
)

PACKAGE = Path(radiossl.__file__).parent


def test_unsafe_objects_are_refused_before_writing(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"history\[0\].x: a numpy.float32"):
        save_checkpoint(tmp_path / "c.pt", {"format_version": 1, "model": {}, "history": [{"x": np.float32(1)}]})
    with pytest.raises(CheckpointError, match="Path"):
        check_weights_only_safe({"out": Path("a")})
    assert not list(tmp_path.iterdir())  # nothing half-written
    check_weights_only_safe({"a": [1, 2.0, None, "s", True, (torch.zeros(1),)]})


def test_to_plain_converts_numpy_paths_and_tensors() -> None:
    plain = to_plain({"a": np.float32(1.5), "b": (Path("x"), np.arange(2)), "c": torch.tensor(2.0)})
    assert plain == {"a": 1.5, "b": ["x", [0, 1]], "c": 2.0}
    check_weights_only_safe(plain)


def test_to_plain_summary_describes_instead_of_copying() -> None:
    options = argparse.Namespace(lr=0.1, crop=(64, 64, 32), device=torch.device("cpu"))
    summary = to_plain({"opt": options, "w": torch.zeros(3, 2), "a": np.zeros(4), "n": np.int64(3)}, summary=True)
    assert summary == {
        "opt": {"lr": 0.1, "crop": [64, 64, 32], "device": "device(type='cpu')"},
        "w": "tensor[3, 2]",
        "a": "array[4]",
        "n": 3,
    }
    assert to_plain(list(range(100)), summary=True) == list(range(64))


def test_load_checkpoint_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"missing\.pt: checkpoint not found"):
        load_checkpoint(tmp_path / "missing.pt")
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match=r"broken\.pt: cannot read checkpoint"):
        load_checkpoint(broken)
    bare = tmp_path / "bare.pt"
    torch.save({"w": torch.zeros(1)}, bare)
    with pytest.raises(CheckpointError, match="not a radiossl training checkpoint"):
        load_checkpoint(bare)
    future = tmp_path / "future.pt"
    torch.save({"format_version": FORMAT_VERSION + 1, "model": {}}, future)
    with pytest.raises(CheckpointError, match="newer"):
        load_checkpoint(future)


def test_wrapper_prefixes_are_stripped_in_any_order_and_repeatedly() -> None:
    sd = {"module._orig_mod.a.weight": torch.zeros(1), "_orig_mod.module.b": torch.ones(1), "note": "x"}
    assert list(clean_state_dict(sd)) == ["a.weight", "b"]


@pytest.fixture
def extra_format() -> Iterator[None]:
    """Register a recogniser for a made-up layout for one test."""

    def recognise(obj: Mapping[str, Any], path: str) -> Recognised | None:
        return Recognised("made-up", "network_weights") if "made_up_version" in obj else None

    before = list(checkpoint._recognisers)
    register_recogniser(recognise)
    yield
    checkpoint._recognisers[:] = before


def test_a_registered_recogniser_names_its_layout(extra_format: None, tmp_path: Path) -> None:
    weights = {"down_tr64.ops.0.conv1.weight": torch.zeros(8, 1, 3, 3, 3)}
    family, state, meta = classify({"made_up_version": 2, "network_weights": weights})
    assert (family, list(state), meta["made_up_version"], meta["state_dict_entry"]) == (
        "made-up",
        list(weights),
        2,
        "network_weights",
    )
    # radiossl's own layouts are asked first, the generic container match last
    assert classify({"format_version": 1, "model": weights, "made_up_version": 1})[0] == "radiossl"
    path = tmp_path / "made_up.pt"
    torch.save({"made_up_version": 2, "network_weights": weights, "state_dict": weights}, path)
    assert read_checkpoint(path).family == "made-up"


def test_without_a_recogniser_an_unknown_layout_is_refused_with_its_keys() -> None:
    with pytest.raises(
        CheckpointError, match="no state dict found; top-level keys are made_up_version, network_weights"
    ):
        classify({"made_up_version": 2, "network_weights": {"w": torch.zeros(1)}})


def _calls(tree: ast.AST, module: str, name: str) -> bool:
    return any(
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == name
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == module
        for node in ast.walk(tree)
    )


def _assigned_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        targets = (
            node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        )
        names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


def test_checkpoint_files_are_written_by_one_module_that_defines_the_format_once() -> None:
    writers, definers, prefix_literals = [], [], []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source)
        relative = str(path.relative_to(PACKAGE.parent))
        if _calls(tree, "torch", "save"):
            writers.append(relative)
        if {"FORMAT_VERSION", "WRAPPER_PREFIXES", "STEM_KEY"} & _assigned_names(tree) and "data/" not in relative:
            definers.append(relative)  # data/processed.py's FORMAT_VERSION is preprocess.json's, not a checkpoint's
        if any(isinstance(n, ast.Constant) and n.value == "_orig_mod." for n in ast.walk(tree)):
            prefix_literals.append(relative)
    assert writers == ["radiossl/models/checkpoint.py"]
    assert definers == ["radiossl/models/checkpoint.py"]
    assert prefix_literals == ["radiossl/models/checkpoint.py"]


def test_a_nested_model_spec_is_read_whole(tmp_path: Path) -> None:
    """A backbone spec inside a method network's spec (ProbeNet on ResEnc-L) is deeper than a display summary."""
    spec = {"class": "ProbeNet", "kwargs": {"backbone": {"class": "B", "kwargs": {"arch": {"n": [1, 1, 1]}}}}}
    path = tmp_path / "probe.pt"
    torch.save({"format_version": 1, "model": {"w": torch.zeros(2)}, "model_spec": spec}, path)
    assert checkpoint.read_checkpoint(path).meta["model_spec"] == spec
