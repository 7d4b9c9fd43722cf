"""``radiossl synth``: write a synthetic data set (phantoms) in a real data set's layout."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from radiossl.commands.common import console, handle_errors


class PhantomKind(str, Enum):
    """The data-set layouts ``radiossl synth`` can write."""

    brats = "brats"
    lits = "lits"
    luna = "luna"
    nnunet = "nnunet"
    nnssl = "nnssl"


def register(app: typer.Typer) -> None:
    """Add the ``synth`` command to ``app``."""

    @app.command("synth")
    @handle_errors
    def synth(
        kind: PhantomKind = typer.Argument(
            ..., help="Layout to write: brats, lits, luna, nnunet or nnssl (a pretrain_data.json collection)."
        ),
        out: Path = typer.Option(..., "--out", "-o", help="Folder to create (must be new or empty)."),
        cases: int = typer.Option(
            4, "--cases", "-n", min=1, help="Number of cases (nnunet: training cases; nnssl: images)."
        ),
        seed: int = typer.Option(1, "--seed", min=0, help="Random seed; the same seed gives identical files."),
        shape: tuple[int, int, int] | None = typer.Option(
            None,
            "--shape",
            help="Volume size X Y Z in voxels (e.g. 240 240 155 for real-size BraTS).",
            show_default=False,
        ),
        preview: bool = typer.Option(False, "--preview", help="Also save <out>/preview.png (mid slices)."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Allow writing into a non-empty folder."),
    ) -> None:
        """Write synthetic BraTS-, LiTS-, LUNA16-, nnU-Net- or nnssl-style volumes to try radiossl without data.

        nnssl writes an OpenMind-like pretraining collection: T1w/T2w head MRI of subjects in two
        datasets, one or two sessions each, with anatomy masks, listed in <out>/pretrain_data.json.

        Example: radiossl synth brats --out data/brats --cases 8 --preview

        Example: radiossl synth nnssl --out data/collection --cases 12
        then:    radiossl preprocess --dataset nnssl --data data/collection --out data/collection_proc
        """
        from rich.table import Table

        from radiossl.data.phantoms import synthesize

        with console().status(f"writing {cases} {kind.value} phantom case(s) ..."):
            result = synthesize(
                kind.value, out, cases=cases, shape=shape, seed=seed, preview=preview, overwrite=overwrite
            )
        groups: dict[str, int] = {}
        for group in result.groups.values():
            groups[group] = groups.get(group, 0) + 1
        table = Table(title=f"radiossl synth {result.kind}", show_header=False)
        table.add_column("field", style="bold")
        table.add_column("value")
        table.add_row("folder", str(result.out))
        table.add_row("cases", f"{len(result.case_ids)} (" + ", ".join(f"{g}: {n}" for g, n in groups.items()) + ")")
        table.add_row("files", str(len(result.files)))
        table.add_row("shape", " x ".join(str(s) for s in result.shape))
        table.add_row("seed", str(result.seed))
        table.add_row("time", f"{result.seconds:.1f} s")
        if result.preview is not None:
            table.add_row("preview", str(result.preview))
        console().print(table)
