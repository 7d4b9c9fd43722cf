"""``radiossl plugins list``."""

from __future__ import annotations

import typer

from radiossl.commands.common import EXIT_FAILURES, console, handle_errors


def register(app: typer.Typer) -> None:
    plugins_app = typer.Typer(help="Inspect installed plugins.", no_args_is_help=True)
    app.add_typer(plugins_app, name="plugins")

    @plugins_app.command("list")
    @handle_errors
    def list_command(
        strict: bool = typer.Option(False, "--strict", help="Exit with code 1 if any plugin is broken."),
    ) -> None:
        """List every plugin of every group, loading each so that broken ones show their error."""
        from rich.table import Table

        from radiossl import registry

        table = Table(title="radiossl plugins")
        for column in ("group", "name", "target", "distribution"):
            table.add_column(column, no_wrap=column in ("group", "name"))
        table.add_column("status", overflow="fold")
        broken = 0
        for info in registry.list_plugins(load=True):
            if info.clash:
                status = "[red]name clash: " + "; ".join(ep.value for ep in info.entry_points) + "[/]"
                broken += 1
            elif info.error:
                status = f"[red]error: {info.error}[/]"
                broken += 1
            else:
                status = "[green]ok[/]"
            table.add_row(info.group.removeprefix("radiossl."), info.name, info.target, info.distribution, status)
        console().print(table)
        if broken and strict:
            raise typer.Exit(EXIT_FAILURES)
