"""``radiossl demo``: the whole pipeline on built-in phantom data."""

from __future__ import annotations

from pathlib import Path

import typer

from radiossl.commands.common import (
    ConfigOption,
    DeviceOption,
    SeedOption,
    SetOption,
    config_flags,
    given_options,
    handle_errors,
)

DEMO_FIELDS: dict[str, str] = {
    name: name for name in ("out", "method", "cases", "width", "pretrain_epochs", "finetune_epochs", "device", "seed")
}
"""Each ``demo`` option that sets a config field (the demo config is flat, named like the options)."""


def register(app: typer.Typer) -> None:
    @app.command("demo")
    @handle_errors
    def demo(
        ctx: typer.Context,
        out: Path = typer.Option(Path("radiossl-demo"), "--out", help="Folder for every artefact."),
        method: str = typer.Option("pixel-cluster", "--method", help="Pretext method to pretrain."),
        cases: int | None = typer.Option(None, "--cases", help="Phantom cases to generate."),
        width: float | None = typer.Option(None, "--width", help="U-Net width (1.0 = published network)."),
        pretrain_epochs: int | None = typer.Option(None, "--pretrain-epochs"),
        finetune_epochs: int | None = typer.Option(None, "--finetune-epochs"),
        device: DeviceOption = None,
        seed: SeedOption = None,
        config: ConfigOption = None,
        overrides: SetOption = None,
    ) -> None:
        """Phantom data → preprocess → k-means → pretrain → finetune (scratch vs pretrained) → evaluate.

        Defaults are tiny so it finishes in minutes on 2 CPU cores; every setting scales up
        (see `--set`, e.g. --set shape=[240,240,155] --set width=1.0).
        """
        from radiossl.commands.progress import console_progress
        from radiossl.config import load_config_file_into
        from radiossl.demo import DemoConfig, run_demo

        flags = config_flags(given_options(ctx), DEMO_FIELDS)
        settings = load_config_file_into(DemoConfig, config, overrides or [], flags=flags)
        with console_progress():
            run_demo(settings)
