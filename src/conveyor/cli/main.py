"""The ``conveyor`` command: ``conveyor version`` and ``conveyor config view``.

``conveyor --help`` must stay fast, so this module imports only typer at the top; each
command imports its own modules (rich, settings, ...) when it runs. Errors are one line on
stderr and exit code 1.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, NoReturn

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from conveyor.settings import Settings

app = typer.Typer(
    name="conveyor",
    help="Conveyor: workflow orchestration for Python.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)
config_app = typer.Typer(
    help="Show the settings Conveyor runs with.",
    no_args_is_help=True,
)
app.add_typer(config_app, name="config")


def _register_subcommands() -> None:
    # Each group's module imports only typer at the top, so --help stays fast.
    from conveyor.cli.artifacts import artifact_app
    from conveyor.cli.concurrency_limits import concurrency_limit_app
    from conveyor.cli.database import database_app
    from conveyor.cli.deploy import deploy
    from conveyor.cli.deployments import deployment_app
    from conveyor.cli.runs import flow_run_app, task_run_app
    from conveyor.cli.server import server_app
    from conveyor.cli.variables import variable_app
    from conveyor.cli.work_pools import work_pool_app, work_queue_app
    from conveyor.cli.workers import worker_app

    app.add_typer(server_app, name="server")
    app.add_typer(database_app, name="database")
    app.add_typer(flow_run_app, name="flow-run")
    app.add_typer(task_run_app, name="task-run")
    app.add_typer(variable_app, name="variable")
    app.add_typer(concurrency_limit_app, name="concurrency-limit")
    app.add_typer(artifact_app, name="artifact")
    app.add_typer(work_pool_app, name="work-pool")
    app.add_typer(work_queue_app, name="work-queue")
    app.add_typer(deployment_app, name="deployment")
    app.add_typer(worker_app, name="worker")
    app.command("deploy")(deploy)


_register_subcommands()

# Each setting, the environment variable it is read from (see conveyor.settings.Settings).
SETTING_ENV_VARS: dict[str, str] = {
    "home": "CONVEYOR_HOME",
    "api_url": "CONVEYOR_API_URL",
    "logging_level": "CONVEYOR_LOGGING_LEVEL",
    "result_storage": "CONVEYOR_RESULT_STORAGE",
    "persist_results": "CONVEYOR_PERSIST_RESULTS",
    "result_serializer": "CONVEYOR_RESULT_SERIALIZER",
    "database_url": "CONVEYOR_DATABASE_URL",
    "backend": "CONVEYOR_BACKEND",
}
"""One variable per setting; ``services`` has several (``ServicesSettings.env_values``)."""

_BUILTIN_SERIALIZERS = ("cloudpickle", "json", "pickle")


def _stdout() -> Console:
    from rich.console import Console

    return Console(highlight=False)


def _stderr() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def _print_error(message: str) -> None:
    from rich.markup import escape

    _stderr().print(f"[red]Error:[/red] {escape(message)}", soft_wrap=True)


def fail(message: str) -> NoReturn:
    """Print ``Error: message`` on stderr and exit with code 1."""
    _print_error(message)
    raise typer.Exit(1)


@app.command()
def version() -> None:
    """Show the Conveyor version, the Python running it and the platform."""
    import platform
    import sys

    from conveyor import __version__

    console = _stdout()
    console.print(f"Conveyor:  {__version__}")
    console.print(f"Python:    {platform.python_version()} ({sys.executable})")
    console.print(f"Platform:  {platform.platform()}")


def _problems(settings: Settings) -> tuple[list[str], list[str]]:
    """``(errors, warnings)`` about values the environment sets but Conveyor cannot use."""
    from conveyor.settings import env_errors

    errors = env_errors()
    warnings: list[str] = []
    if settings.result_serializer.strip().lower() not in _BUILTIN_SERIALIZERS:
        # Not an error: code can register_serializer() a custom one under this name.
        warnings.append(
            f"CONVEYOR_RESULT_SERIALIZER={settings.result_serializer!r} is not built in "
            f"({', '.join(_BUILTIN_SERIALIZERS)}); persisting results fails unless your "
            "code registers a serializer with that name."
        )
    # Not settings, but read by Conveyor: a worker's option and the run it launched.
    others = {"CONVEYOR_WORKER_CANCEL_GRACE_SECONDS", "CONVEYOR_FLOW_RUN_ID"}
    known = {*SETTING_ENV_VARS.values(), *settings.services.env_values(), *others}
    for name in sorted(os.environ):
        if name.startswith("CONVEYOR_") and name not in known:
            warnings.append(f"{name} is not a Conveyor setting; it is ignored.")
    return errors, warnings


@config_app.command("view")
def config_view() -> None:
    """Show the effective settings and where each comes from (environment or default)."""
    import dataclasses

    from rich.markup import escape
    from rich.table import Table

    from conveyor.settings import Settings

    settings = Settings.from_env(strict=False)
    table = Table(title="Conveyor settings")
    table.add_column("Setting", no_wrap=True)
    table.add_column("Value", overflow="fold")
    table.add_column("Source")
    rows: dict[str, object] = {}
    for item in dataclasses.fields(Settings):
        if item.name == "services":
            rows.update(settings.services.env_values())
            continue
        value = getattr(settings, item.name)
        if item.name == "result_storage" and value is None:
            value = settings.default_result_storage  # <CONVEYOR_HOME>/storage
        rows[SETTING_ENV_VARS[item.name]] = value
    for env_var, value in rows.items():
        # Settings.from_env() treats an empty variable as unset.
        source = "env" if os.environ.get(env_var) else "default"
        shown = "[dim]not set[/dim]" if value is None else escape(str(value))
        table.add_row(env_var, shown, source)
    console = _stdout()
    console.print(table)
    errors, warnings = _problems(settings)
    for warning in warnings:
        _stderr().print(f"[yellow]Warning:[/yellow] {escape(warning)}", soft_wrap=True)
    if errors:
        fail(" ".join(errors))


def main() -> None:
    """Entry point of the ``conveyor`` console script."""
    from conveyor.exceptions import ConveyorError

    try:
        app()
    except ConveyorError as exc:
        _print_error(str(exc))
        raise SystemExit(1) from None
