"""A small preprocessed phantom folder for the benchmark scripts that run real pretraining.

``gpu_check.py`` and ``scaling.py`` train patch-level clustering through radiossl's own engine, which
needs a preprocessed folder. This module makes one from phantom BraTS cases (``radiossl synth``),
quietly, and reuses it when it is already there.

Example::

    from phantom_data import PhantomSpec, phantom_pretrain_folder
    proc = phantom_pretrain_folder(Path("work"), PhantomSpec(cases=6, shape=(48, 48, 32), crop=(16, 16, 16)))
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PhantomSpec:
    """How many phantom cases of which size, and the crop pairs cut from each (one per modality)."""

    cases: int = 6
    shape: tuple[int, int, int] = (48, 48, 32)
    crop: tuple[int, int, int] = (16, 16, 16)
    pairs: int = 1
    seed: int = 1

    @property
    def folder_name(self) -> str:
        """A name that changes whenever a setting does, so differently sized folders never mix."""
        shape = "x".join(map(str, self.shape))
        crop = "x".join(map(str, self.crop))
        return f"phantom-c{self.cases}-s{shape}-crop{crop}-p{self.pairs}-seed{self.seed}"


def phantom_pretrain_folder(root: Path, spec: PhantomSpec) -> Path:
    """The preprocessed folder (cluster view) of ``spec`` under ``root``, made on the first call.

    Raises:
        RuntimeError: a phantom case failed to preprocess (names the folder).
    """
    from radiossl.data.phantoms import synthesize
    from radiossl.data.preprocess import PreprocessConfig, preprocess
    from radiossl.engine.progress import NullReporter, reporting_to

    base = root / spec.folder_name
    proc = base / "proc"
    done = base / ".complete"
    if done.is_file():
        return proc
    scaled = [(round(spec.crop[0] * f), round(spec.crop[1] * f), spec.crop[2]) for f in (1.0, 1.25)]
    with reporting_to(NullReporter()):
        synthesize("brats", base / "raw", cases=spec.cases, shape=spec.shape, seed=spec.seed, overwrite=True)
        result = preprocess(
            PreprocessConfig(
                dataset="brats18",
                data=base / "raw",
                out=proc,
                view="cluster",
                pairs=spec.pairs,
                seed=spec.seed,
                crop_size=spec.crop,
                candidate_sizes=scaled,
                workers=0,
                progress=False,
            )
        )
    if result.failed:
        raise RuntimeError(f"{proc}: {result.failed} phantom case(s) failed to preprocess; see preprocess.json")
    done.write_text("complete\n")
    return proc
