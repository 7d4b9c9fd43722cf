"""Options and error handling shared by every CLI command.

Every option that several commands share is declared once here, as an ``Annotated`` type alias
(``EpochsOption``...). A command maps its options onto config fields with one dict (parameter name ->
dotted field, e.g. ``TRAINING_FIELDS``); :func:`given_options` and :func:`config_flags` turn the
options given on the command line into the nested ``flags`` dict that overrides the config file and
``--set`` (precedence: defaults < file < ``--set`` < flags).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from radiossl.errors import ConfigError, PluginError, RadiosslError

if TYPE_CHECKING:
    from radiossl.utils.sharding import Shard

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK = 0
EXIT_FAILURES = 1
EXIT_USAGE = 2

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Config file (YAML or TOML), or the name of a config shipped with radiossl "
        "(`radiossl config list`); an existing file wins over a name.",
        show_default=False,
    ),
]
SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="Override a field: section.field=value (repeatable).", show_default=False),
]
SeedOption = Annotated[int | None, typer.Option("--seed", help="Random seed.", show_default=False)]
DeviceOption = Annotated[str | None, typer.Option("--device", help="auto, cpu, cuda or mps.", show_default=False)]
WorkersOption = Annotated[int | None, typer.Option("--workers", help="Worker processes.", show_default=False)]
RatioOption = Annotated[
    float | None, typer.Option("--ratio", help="Fraction of training cases (nested, seeded subsets).")
]
SegmentationVisOption = Annotated[
    bool | None, typer.Option("--vis/--no-vis", help="Write PNG overlays of predictions to <run>/vis.")
]
TaskOption = Annotated[
    str | None,
    typer.Option("--task", "-t", help="Task: brats, lits, nnunet (see `radiossl plugins list`).", show_default=False),
]
RawDataOption = Annotated[Path | None, typer.Option("--data", help="Raw dataset folder.", show_default=False)]
ProcessedDataOption = Annotated[Path | None, typer.Option("--data", help="Preprocessed folder.", show_default=False)]
RunsOutOption = Annotated[
    Path | None, typer.Option("--out", help="Folder under which the run folder is made.", show_default=False)
]
EpochsOption = Annotated[int | None, typer.Option("--epochs", help="Training epochs.", show_default=False)]
BatchSizeOption = Annotated[
    int | None, typer.Option("--batch-size", help="Batch size per process.", show_default=False)
]
LrOption = Annotated[float | None, typer.Option("--lr", help="Base learning rate.", show_default=False)]
WidthOption = Annotated[
    float | None, typer.Option("--width", help="Network width multiplier (1.0 = published).", show_default=False)
]
AmpOption = Annotated[
    str | None,
    typer.Option(
        "--amp",
        help="Mixed precision: none, bf16, fp16 or auto (bf16 where the device has it natively).",
        show_default=False,
    ),
]
ResumeOption = Annotated[
    str | None,
    typer.Option(
        "--resume",
        help="Continue a run: 'auto' (the newest run under --out with the same name prefix, or --out itself "
        "when it is a run folder; a new run if none) or a checkpoint file / run folder.",
        show_default=False,
    ),
]
ExtendEpochsOption = Annotated[
    int | None,
    typer.Option(
        "--extend-epochs",
        min=1,
        help="With --resume: train N epochs beyond the resumed run's planned total (the schedule is rebuilt).",
        show_default=False,
    ),
]
VerboseOption = Annotated[
    bool | None,
    typer.Option(
        "--verbose/--no-verbose",
        help="Console: every epoch's full metric line and every tensor of the --weights report "
        "(default: headline metrics and a report per block; train.log and metrics.jsonl have everything).",
        show_default=False,
    ),
]
AllowUnsafePickleOption = Annotated[
    bool | None,
    typer.Option(
        "--allow-unsafe-pickle",
        help="Load weights files holding any pickled object; argparse.Namespace needs no flag (trusted files only).",
    ),
]


def shard_option(items: str) -> Any:
    """The ``--shard`` option of a stage that splits its ``items`` (e.g. "cases") across processes."""
    return typer.Option(
        None,
        "--shard",
        help=f"I/N, counted from 1 (1/4 ... 4/4): only the {items} at positions p with p % N == I - 1; "
        "'slurm': the shard of this Slurm array task (--array=0-3 or 1-4 both give 1/4 ... 4/4). "
        "Run all shards into the same output: each writes its own part, the last to finish merges.",
        show_default=False,
    )


def merge_only_option(merged: str) -> Any:
    """The ``--merge-only`` option: join what the shards wrote into ``merged`` (e.g. "manifest.csv")."""
    return typer.Option(False, "--merge-only", help=f"Compute nothing; only join the shards' parts into {merged}.")


def parse_shard_option(text: str | None) -> Shard | None:
    """The shard named by ``--shard`` (None when not given); ConfigError (exit 2) when it names no shard."""
    from radiossl.utils.sharding import ShardError, parse_shard

    if text is None:
        return None
    try:
        return parse_shard(text)
    except ShardError as exc:
        raise ConfigError(f"--shard {exc}") from None


RUNTIME_FIELDS: dict[str, str] = {"seed": "runtime.seed", "device": "runtime.device", "amp": "runtime.amp"}
"""Options of the ``runtime`` section (the same fields in every stage config)."""

TRAINING_FIELDS: dict[str, str] = {
    "data": "data.root",
    "workers": "data.workers",
    "out": "out",
    "epochs": "optim.epochs",
    "batch_size": "optim.batch_size",
    "lr": "optim.lr",
    "width": "model.width",
    "vis": "logging.vis",
    "verbose": "logging.verbose",
    **RUNTIME_FIELDS,
}
"""The options ``pretrain`` and ``finetune`` share, and the config field each one sets."""


def given_options(ctx: typer.Context) -> dict[str, Any]:
    """The options given on the command line (or by environment variable), by parameter name.

    Options left at their default are not given, whatever the default, so they never override a
    config file or ``--set``.
    """
    given = {}
    for name, value in ctx.params.items():
        source = ctx.get_parameter_source(name)
        if source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP") and value is not None:
            given[name] = value
    return given


def config_flags(given: Mapping[str, Any], fields: Mapping[str, str]) -> dict[str, Any]:
    """The nested config dict of ``given`` options (None values left out); ``fields``: option -> dotted field.

    Paths become strings, as in a config file. Options without a field (``--resume``, ``--shard``...)
    are not config fields and are left out.

    Example:
        >>> config_flags({"epochs": 3, "lr": None, "resume": "auto"}, {"epochs": "optim.epochs", "lr": "optim.lr"})
        {'optim': {'epochs': 3}}
    """
    flags: dict[str, Any] = {}
    for name, field in fields.items():
        value = given.get(name)
        if value is None:
            continue
        *sections, key = field.split(".")
        target = flags
        for section in sections:
            target = target.setdefault(section, {})
        target[key] = str(value) if isinstance(value, Path) else value
    return flags


def error(message: str) -> None:
    """Print an error line to stderr (red when a terminal)."""
    from rich.console import Console

    Console(stderr=True, highlight=False, soft_wrap=True).print(f"[bold red]error:[/] {message}")


def handle_errors(func: F) -> F:
    """Turn radiossl errors into a short message and the documented exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (ConfigError, PluginError) as exc:
            for line in str(exc).splitlines():
                error(line)
            raise typer.Exit(EXIT_USAGE) from None
        except RadiosslError as exc:
            for line in str(exc).splitlines():
                error(line)
            raise typer.Exit(EXIT_FAILURES) from None
        except KeyboardInterrupt:
            error("interrupted; rerun the same command (with --resume auto for training) to continue")
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


def console() -> Any:
    """A rich console for normal output (wide when the output is piped or captured, so tables stay readable)."""
    from rich.console import Console

    width = None if sys.stdout.isatty() else 160
    return Console(highlight=False, width=width)
