"""``radiossl config show|schema|validate|list|cat``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import typer

from radiossl.commands.common import console, handle_errors
from radiossl.errors import ConfigError


def _config_class(method: str | None, task: str | None, stage: str) -> Any:
    if (method is None) == (task is None):
        raise ConfigError("give exactly one of --method NAME (pretraining) or --task NAME (finetune/evaluate)")
    if method is not None:
        from radiossl.pretext.base import get_method, pretrain_config_class

        method_cls = get_method(method)
        return pretrain_config_class(method_cls), {**method_cls.default_settings(), "method": {"name": method}}
    from radiossl.downstream.config import task_config_class

    return task_config_class(task, stage)  # type: ignore[arg-type]


def _apply_task_channels(config: Any, data: Path | None) -> None:
    """Set ``model.in_channels`` as finetuning does at run time: the number of the dataset's channels.

    Adapters with fixed channels (BraTS, LiTS) need no folder; those that read them from the data
    (nnU-Net) need ``data``, and without it the value is left as is with a note on stderr.
    """
    from radiossl.data.datasets import get_adapter
    from radiossl.errors import RadiosslError

    adapter = get_adapter(config.task.dataset)
    # An adapter that reads its channels from the folder fails on a missing one (None -> os.devnull).
    root = data if data is not None else Path(os.devnull)
    try:
        channels = adapter.channel_names(root)
    except (RadiosslError, OSError):
        if data is not None:
            raise
        typer.echo(
            f"note: model.in_channels is set from the {adapter.name} dataset's channels at run time; "
            "pass --data RAW_DIR to show it",
            err=True,
        )
        return
    config.model.in_channels = len(channels)


def register(app: typer.Typer) -> None:
    config_app = typer.Typer(help="Show, export and validate configurations.", no_args_is_help=True)
    app.add_typer(config_app, name="config")

    method_option = typer.Option(None, "--method", "-m", help="Pretext method name.")
    task_option = typer.Option(None, "--task", "-t", help="Downstream task name.")
    stage_option = typer.Option("finetune", "--stage", help="finetune or evaluate (with --task).")

    @config_app.command("show")
    @handle_errors
    def show(
        method: str | None = method_option,
        task: str | None = task_option,
        stage: str = stage_option,
        data: Path | None = typer.Option(
            None,
            "--data",
            help="Raw dataset folder (with --task): read the input channels from it (needed for nnunet).",
            show_default=False,
        ),
    ) -> None:
        """Print the default configuration as commented YAML, with the values the run will use."""
        from radiossl.config import build_config, commented_yaml

        config_class, defaults = _config_class(method, task, stage)
        config = build_config(config_class, [defaults])
        if task is not None and hasattr(config, "model"):
            _apply_task_channels(config, data)
        typer.echo(commented_yaml(config), nl=False)
        if hasattr(config, "model"):
            from radiossl.models.backbone import backbone_summaries

            typer.echo("# backbones for model.name (radiossl.models plugins):")
            for name, summary in backbone_summaries():
                typer.echo(f"#   {name}: {summary}")

    @config_app.command("schema")
    @handle_errors
    def schema(method: str | None = method_option, task: str | None = task_option, stage: str = stage_option) -> None:
        """Print the JSON Schema of a configuration."""
        from radiossl.config import json_schema

        config_class, _ = _config_class(method, task, stage)
        typer.echo(json.dumps(json_schema(config_class), indent=2))

    @config_app.command("validate")
    @handle_errors
    def validate(
        file: Path = typer.Argument(
            ...,
            metavar="FILE_OR_NAME",
            help="Config file to check, or a shipped config's name (an existing file wins).",
        ),
        stage: str = stage_option,
    ) -> None:
        """Check a pretrain, finetune/evaluate, preprocess or kmeans config: exit 0 if valid, 2 with the problems."""
        from radiossl.config import read_config_file

        data = read_config_file(file)
        if isinstance(data.get("method"), dict):
            from radiossl.pretext.base import load_pretrain_config

            config: Any = load_pretrain_config(file=file)
            what = f"pretraining config for method {config.method.name!r}"
        elif isinstance(data.get("task"), dict) and isinstance(data.get("sweep"), dict):
            from radiossl.sweep.plan import load_sweep_config

            config = load_sweep_config(file=file)
            what = f"sweep config for task {config.task.name!r}"
        elif isinstance(data.get("task"), dict):
            from radiossl.downstream.config import load_task_config

            config = load_task_config(stage=stage, file=file)  # type: ignore[arg-type]
            what = f"{stage} config for task {config.task.name!r}"
        elif isinstance(data.get("kmeans"), dict):
            from radiossl.clustering.config import KMeansConfig, load_kmeans_config

            config = load_kmeans_config(KMeansConfig, file)
            what = f"kmeans fit config (k = {config.kmeans.k}{', legacy' if config.kmeans.legacy else ''})"
        elif {"centroids", "tag", "legacy"} & set(data):
            from radiossl.clustering.config import KMeansPredictConfig, load_kmeans_config

            config = load_kmeans_config(KMeansPredictConfig, file)
            what = f"kmeans predict config{' (legacy)' if config.legacy else ''}"
        elif "dataset" in data:
            from radiossl.config import load_config_file_into
            from radiossl.data.preprocess.config import PreprocessConfig

            config = load_config_file_into(PreprocessConfig, file)
            what = f"preprocess config for dataset {config.dataset!r} ({config.view} view)"
        else:
            raise ConfigError(
                f"{file}: needs a `method` section (pretraining), a `task` section (downstream; with "
                "`sweep`: a sweep), a `dataset` field (preprocess), a `kmeans` section (kmeans fit) or a "
                "`centroids`, `tag` or `legacy` field (kmeans predict)"
            )
        source = str(file) if file.is_file() else f"{file} (shipped config)"
        console().print(f"[green]valid[/]: {source} is a {what}")

    @config_app.command("list")
    @handle_errors
    def list_configs(
        folder: str | None = typer.Argument(
            None, help="Only the configs under this folder, e.g. thesis or thesis/pretrain.", show_default=False
        ),
    ) -> None:
        """Print the names of the configs shipped with radiossl, one per line (use them as --config NAME)."""
        from radiossl.shipped_configs import shipped_configs

        names = list(shipped_configs())
        if folder is not None:
            prefix = folder.strip().replace("\\", "/").strip("/") + "/"
            names = [name for name in names if name.startswith(prefix)]
            if not names:
                families = sorted({name.split("/", 1)[0] for name in shipped_configs()})
                raise ConfigError(f"no shipped config under {folder!r}; the shipped families are {', '.join(families)}")
        # One write: `radiossl config list | head` then ends cleanly instead of on a broken pipe.
        typer.echo("\n".join(names))

    @config_app.command("cat")
    @handle_errors
    def cat(
        file: Path = typer.Argument(..., metavar="FILE_OR_NAME", help="Shipped config's name (or a config file)."),
    ) -> None:
        """Print a config exactly as shipped, e.g. to start your own: radiossl config cat NAME > mine.yaml."""
        from radiossl.config import read_config_text

        text, _ = read_config_text(file)
        typer.echo(text, nl=not text.endswith("\n"))
