"""``conveyor server start``: the API (and later the UI) over the configured database."""

from __future__ import annotations

import typer

server_app = typer.Typer(help="Run the Conveyor server.", no_args_is_help=True)


@server_app.command("start")
def start(
    host: str = typer.Option("127.0.0.1", help="Interface to bind; loopback unless told."),
    port: int = typer.Option(4200, min=1, max=65535, help="Port to listen on."),
    log_level: str = typer.Option("info", help="uvicorn log level."),
) -> None:
    """Start the server: the web UI at /, the API under /api, its docs at /docs, and the
    background services (see CONVEYOR_SERVER_SERVICES_*). Ctrl+C stops it."""
    import socket

    import uvicorn
    from rich.console import Console

    from conveyor.cli.main import fail
    from conveyor.server.app import create_app
    from conveyor.settings import Settings

    settings = Settings.from_env()
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            fail(f"Cannot listen on {host}:{port} ({exc.strerror}); pick another --port.")
    url = f"http://{host}:{port}"
    console = Console(stderr=True, highlight=False)
    console.print(f"Conveyor web UI on [bold]{url}[/bold]  (API {url}/api, docs {url}/docs)")
    console.print(f"Database: {_masked(settings.effective_database_url)}")
    console.print(f"Point flows at it with: export CONVEYOR_API_URL={url}/api")
    app = create_app(settings, services=True, warm_up=True)
    _tune_garbage_collection()
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level.lower(),
        access_log=False,
    )


def _tune_garbage_collection() -> None:
    """Collect less often, and never re-scan what start-up loaded.

    A record batch allocates tens of thousands of short-lived objects; with the default
    thresholds each batch set off collections that walked every module, schema and
    table object of the server, up to a fifth of its time. The objects in question die
    young either way; what changes is how often the long-lived ones are re-examined.
    """
    import gc

    gc.collect()
    gc.freeze()  # everything loaded so far is permanent: no collection re-scans it
    gc.set_threshold(50_000, 20, 100)


def _masked(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
