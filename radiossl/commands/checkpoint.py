"""``radiossl checkpoint``: look inside checkpoint files and export their encoders.

``radiossl checkpoint inspect PATH`` prints the recognised layout (radiossl, ModelsGenesis, PCRLv2,
thesis runs, bare state dicts), the top-level entries, metadata (model spec, epoch, optimizer,
training arguments), tensor and element counts and a table per block (top-level key prefix: tensors,
elements, BatchNorm running statistics); ``--verbose`` adds every tensor with its shape and dtype.
``radiossl checkpoint export-encoder PATH --out FILE`` writes the encoder as a radiossl file;
``radiossl checkpoint export-nnssl RUN_OR_CKPT --out DIR`` writes an nnU-Net U-Net backbone as an nnssl
checkpoint (``checkpoint_final.pth`` + ``adaptation_plan.json``) for nnU-Net's pretrained finetuning.
nnssl checkpoints (``network_weights`` + ``nnssl_adaptation_plan``) are recognised by ``inspect``, which
then also prints the plan.

Files are read with PyTorch's safe (weights-only) unpickler, which radiossl lets build the
``argparse.Namespace`` that PCRLv2 releases and thesis runs store; files holding any other pickled
object are refused by name and need ``--allow-unsafe-pickle``; use it only for files you trust.
Torch is imported inside the commands so ``radiossl --help`` stays fast.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

if TYPE_CHECKING:
    from radiossl.models.checkpoint import RawCheckpoint

T = TypeVar("T")

UNSAFE_HELP = (
    "Allow any pickled Python object (PCRLv2's and the thesis' argparse.Namespace needs no flag). "
    "Runs code: trusted files only."
)


def register(app: typer.Typer) -> None:
    """Add the ``checkpoint`` command group to ``app``."""
    group = typer.Typer(help="Inspect checkpoints and export encoders.", no_args_is_help=True)

    @group.command("inspect")
    def inspect(
        path: Annotated[Path, typer.Argument(help="Checkpoint file (.pt/.pth/.tar).")],
        allow_unsafe_pickle: Annotated[bool, typer.Option("--allow-unsafe-pickle", help=UNSAFE_HELP)] = False,
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")] = False,
        verbose: Annotated[
            bool, typer.Option("--verbose", help="Also list every tensor (name, shape, dtype), not only the blocks.")
        ] = False,
    ) -> None:
        """Show a checkpoint's layout, metadata, counts and a table per block (every tensor with --verbose)."""
        from radiossl.models.checkpoint import read_checkpoint

        raw = _run(lambda: read_checkpoint(path, allow_unsafe=allow_unsafe_pickle))
        info = describe(raw, verbose=verbose)
        if as_json:
            typer.echo(json.dumps(info, indent=2, default=str))
        else:
            _print_description(info)

    @group.command("export-encoder")
    def export_encoder_command(
        path: Annotated[Path, typer.Argument(help="Checkpoint file to take the encoder from.")],
        out: Annotated[Path, typer.Option("--out", "-o", help="Encoder file to write.")],
        allow_unsafe_pickle: Annotated[bool, typer.Option("--allow-unsafe-pickle", help=UNSAFE_HELP)] = False,
    ) -> None:
        """Write the encoder (down_tr*) of a checkpoint as a radiossl encoder file."""
        from radiossl.models.checkpoint import export_encoder, read_checkpoint

        written = _run(lambda: export_encoder(path, out, allow_unsafe=allow_unsafe_pickle))
        raw = _run(lambda: read_checkpoint(written))
        typer.echo(
            f"wrote {written}: {len(raw.state_dict)} encoder tensors from {path} [{raw.meta['source']['family']}]"
        )

    @group.command("show-features")
    def show_features_command(
        path: Annotated[Path, typer.Argument(help="Checkpoint file (.pt) of any backbone.")],
        data: Annotated[Path, typer.Option("--data", help="Raw dataset folder or preprocessed folder.")],
        out: Annotated[Path, typer.Option("--out", "-o", help="PNG file to write.")],
        case: Annotated[
            str | None, typer.Option("--case", help="Case id to show (default: the first case or sample).")
        ] = None,
        dataset: Annotated[
            str | None, typer.Option("--dataset", help="Raw dataset layout (default: the first that lists cases).")
        ] = None,
        stage: Annotated[
            int, typer.Option("--stage", help="Encoder stage to show (0 = finest, -1 = bottleneck).")
        ] = -1,
        max_size: Annotated[int, typer.Option("--max-size", min=8, help="Crop every axis to at most this.")] = 128,
    ) -> None:
        """PCA of encoder features on three orthogonal slices beside the input (and the cluster map)."""
        from radiossl.pretext.show_features import show_features

        result = _run(lambda: show_features(path, data, out, case, dataset, stage, max_size))
        clusters = f", argmax of {result.clusters} clusters" if result.clusters else ""
        typer.echo(f"wrote {result.out}: case {result.case}, encoder stage {result.stage} of {result.stages}{clusters}")

    @group.command("export-nnssl")
    def export_nnssl_command(
        path: Annotated[Path, typer.Argument(help="Pretraining run folder or checkpoint (an nnU-Net U-Net backbone).")],
        out: Annotated[
            Path, typer.Option("--out", "-o", help="Folder for checkpoint_final.pth and adaptation_plan.json.")
        ],
        preprocessed: Annotated[
            Path | None,
            typer.Option(
                "--preprocessed",
                help="Preprocessed folder whose preprocess.json gives spacing and normalisation "
                "(default: the run's data.root).",
            ),
        ] = None,
        downstream_patch_size: Annotated[
            tuple[int, int, int] | None,
            typer.Option(
                "--downstream-patch-size",
                help="Recommended finetuning patch size, radiossl (i, j, k) order (default: the pretraining crop "
                "rounded up to the network's total stride).",
            ),
        ] = None,
    ) -> None:
        """Write a checkpoint as an nnssl checkpoint that nnU-Net's pretrained finetuning reads (docs: nnunet.md)."""
        from radiossl.models.nnssl_export import export_nnssl

        result = _run(lambda: export_nnssl(path, out, preprocessed, downstream_patch_size))
        typer.echo(
            f"wrote {result.checkpoint} and {result.plan}: {result.arch_class_name} from {result.source} "
            f"({result.encoder_tensors} encoder tensors, {result.decoder_tensors} decoder tensors)"
        )

    app.add_typer(group, name="checkpoint")


def _run(func: Callable[[], T]) -> T:
    """Call ``func``; turn radiossl errors into a one-line message and exit code 2."""
    from radiossl.errors import RadiosslError

    try:
        return func()
    except RadiosslError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(code=2) from err


def describe(raw: RawCheckpoint, verbose: bool = False) -> dict[str, Any]:
    """JSON-compatible description of a checkpoint (what ``inspect`` prints); ``verbose`` lists every tensor."""
    from radiossl.models.checkpoint import WRAPPER_PREFIXES, clean_state_dict, spec_of
    from radiossl.models.loading import is_running_statistic

    state = clean_state_dict(raw.state_dict)
    prefixes: dict[str, dict[str, int]] = {}
    buffers = 0
    for key, tensor in state.items():
        row = prefixes.setdefault(key.split(".", 1)[0], {"tensors": 0, "elements": 0, "running_statistics": 0})
        row["tensors"] += 1
        row["elements"] += tensor.numel()
        if is_running_statistic(key):
            row["running_statistics"] += 1
            buffers += tensor.numel()
    wrapped = sorted({p for p in WRAPPER_PREFIXES for k in raw.state_dict if k.startswith(p)})
    meta = dict(raw.meta)
    stored_spec = meta.pop("model_spec", None)
    spec = spec_of(raw)
    info: dict[str, Any] = {
        "path": raw.source,
        "family": raw.family,
        "architecture": meta.pop("architecture", "unknown"),
        "top_level_keys": meta.pop("top_level_keys", []),
        "model_spec": spec,
        "model_spec_source": meta.pop("model_spec_source", None)
        or ("stored" if stored_spec else ("inferred" if spec else "unknown")),
        "tensors": len(state),
        "elements": sum(row["elements"] for row in prefixes.values()),
        "buffer_elements": buffers,
        "wrapper_prefixes": wrapped,
        "prefixes": prefixes,
        "meta": meta,
    }
    if verbose:
        info["keys"] = [
            {"key": key, "shape": list(tensor.shape), "dtype": str(tensor.dtype).removeprefix("torch.")}
            for key, tensor in state.items()
        ]
    return info


def _print_description(info: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()

    def line(text: str) -> None:  # data may contain "[...]": no markup, and no wrapping inside JSON
        console.print(text, markup=False, highlight=False, soft_wrap=True)

    line(str(info["path"]))
    line(f"family: {info['family']}  architecture: {info['architecture']}")
    line(f"top-level keys: {', '.join(info['top_level_keys']) or '(bare state dict)'}")
    if info["wrapper_prefixes"]:
        line(f"key prefixes stripped when loading: {', '.join(info['wrapper_prefixes'])}")
    line(
        f"tensors: {info['tensors']}  elements: {info['elements']:,} "
        f"(parameters ≈ {info['elements'] - info['buffer_elements']:,}, "
        f"norm buffers {info['buffer_elements']:,})"
    )
    spec = info["model_spec"]
    line(f"model spec ({info['model_spec_source']}): {json.dumps(spec) if spec else 'unknown'}")
    meta = dict(info["meta"])
    if isinstance(meta.get("nnssl_adaptation_plan"), dict):
        from radiossl.models.nnssl_format import describe_plan

        for text in describe_plan(meta.pop("nnssl_adaptation_plan")):
            line(text)
    labels = {"optimizer": "optimizer", "args": "training arguments"}
    for key, value in meta.items():
        if key == "history" and isinstance(value, list) and value:
            last = {k: v for k, v in value[-1].items() if k in ("epoch", "step", "loss", "val_loss", "val_dice")}
            shown = f"{len(value)} epoch records; last: {json.dumps(last, default=str)} (full list: --json)"
        else:
            shown = str(value) if isinstance(value, (str, int, float)) else json.dumps(value, default=str)
        line(f"{labels.get(key, key)}: {shown}")
    table = Table(title="blocks (top-level key prefixes)", title_justify="left")
    table.add_column("block")
    table.add_column("tensors", justify="right")
    table.add_column("elements", justify="right")
    table.add_column("BN stats", justify="right")
    for prefix, row in info["prefixes"].items():
        table.add_row(escape(prefix), str(row["tensors"]), f"{row['elements']:,}", str(row["running_statistics"]))
    console.print(table)
    if "keys" in info:
        keys = Table(title="tensors", title_justify="left")
        keys.add_column("tensor")
        keys.add_column("shape")
        keys.add_column("dtype")
        for entry in info["keys"]:
            keys.add_row(escape(entry["key"]), str(entry["shape"]), entry["dtype"])
        console.print(keys)
