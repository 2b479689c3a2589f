"""``conveyor work-pool ...`` and ``conveyor work-queue ...``: manage pools and their queues.

Talks to ``CONVEYOR_API_URL`` when it is set, otherwise to the local database (embedded).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from conveyor.cli.runs import _when, _with_client

if TYPE_CHECKING:
    from conveyor.schemas.deployments import WorkPoolRead, WorkQueueRead

work_pool_app = typer.Typer(
    help="Create, list, inspect, pause and delete work pools.", no_args_is_help=True
)
work_queue_app = typer.Typer(
    help="Create, list, inspect, pause and delete the queues of a work pool.",
    no_args_is_help=True,
)

PoolArg = Annotated[str, typer.Argument(help="The work pool's name.")]
QueueArg = Annotated[str, typer.Argument(help="The queue's name.")]
PoolOption = Annotated[str, typer.Option("--pool", "-p", help="The work pool of the queue.")]
LimitOption = Annotated[
    int | None,
    typer.Option("--concurrency-limit", min=0, help="At most this many runs at once."),
]
DescriptionOption = Annotated[str | None, typer.Option("--description", help="What it is for.")]


def _limit(value: int | None) -> str:
    return "unlimited" if value is None else str(value)


def print_detail(model: Any) -> None:
    """A resource as indented JSON (what ``inspect`` commands show)."""
    from rich.console import Console

    Console().print_json(model.model_dump_json())


def _print_pools(rows: list[WorkPoolRead]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="Work pools")
    for column in ("Name", "Type", "Paused", "Concurrency limit", "Updated"):
        table.add_column(column, overflow="fold")
    for pool in rows:
        table.add_row(
            escape(pool.name),
            pool.type.value,
            "yes" if pool.paused else "no",
            _limit(pool.concurrency_limit),
            _when(pool.updated),
        )
    Console().print(table)


def _print_queues(rows: list[WorkQueueRead], pool: str) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"Queues of work pool {escape(pool)}")
    for column in ("Name", "Priority", "Paused", "Concurrency limit", "Updated"):
        table.add_column(column, overflow="fold")
    for queue in rows:
        table.add_row(
            escape(queue.name),
            str(queue.priority),
            "yes" if queue.paused else "no",
            _limit(queue.concurrency_limit),
            _when(queue.updated),
        )
    Console().print(table)


def _update_pool(name: str, **changes: Any) -> None:
    from conveyor.schemas.deployments import WorkPoolUpdate

    body = WorkPoolUpdate(**changes)
    _with_client(lambda client: client.update_work_pool(name, body))


# -- work pools -------------------------------------------------------------------------
@work_pool_app.command("create")
def pool_create(
    name: PoolArg,
    pool_type: Annotated[
        str, typer.Option("--type", "-t", help="process, docker or kubernetes.")
    ] = "process",
    concurrency_limit: LimitOption = None,
    paused: Annotated[bool, typer.Option("--paused", help="Create it paused.")] = False,
    description: DescriptionOption = None,
) -> None:
    """Create a work pool, with the default job template of its type and a queue 'default'."""
    from conveyor.cli.main import fail
    from conveyor.schemas.deployments import WorkPoolCreate
    from conveyor.schemas.work_pools import WorkPoolType

    types = [t.value for t in WorkPoolType]
    if pool_type not in types:
        fail(f"Unknown work pool type {pool_type!r}; use one of {', '.join(types)}.")
    body = WorkPoolCreate(
        name=name,
        type=WorkPoolType(pool_type),
        concurrency_limit=concurrency_limit,
        paused=paused,
        description=description,
    )
    _with_client(lambda client: client.create_work_pool(body))
    typer.echo(f"Created work pool {name!r} ({pool_type}).")


@work_pool_app.command("ls")
def pool_ls(
    limit: Annotated[int, typer.Option(min=1, max=200, help="How many pools to show.")] = 50,
    offset: Annotated[int, typer.Option(min=0, help="How many to skip.")] = 0,
) -> None:
    """Work pools, sorted by name."""
    from conveyor.schemas.deployments import WorkPoolFilter

    flt = WorkPoolFilter(limit=limit, offset=offset)
    _print_pools(_with_client(lambda client: client.filter_work_pools(flt)))


@work_pool_app.command("inspect")
def pool_inspect(name: PoolArg) -> None:
    """A work pool in full, its base job template included."""
    print_detail(_with_client(lambda client: client.read_work_pool(name)))


@work_pool_app.command("pause")
def pool_pause(name: PoolArg) -> None:
    """Pause a pool: its workers take no new runs until it is resumed."""
    _update_pool(name, paused=True)
    typer.echo(f"Paused work pool {name!r}.")


@work_pool_app.command("resume")
def pool_resume(name: PoolArg) -> None:
    """Resume a paused pool."""
    _update_pool(name, paused=False)
    typer.echo(f"Resumed work pool {name!r}.")


@work_pool_app.command("set-concurrency-limit")
def pool_set_limit(
    name: PoolArg,
    limit: Annotated[int, typer.Argument(min=0, help="At most this many runs at once.")],
) -> None:
    """Limit how many of the pool's runs run at once."""
    _update_pool(name, concurrency_limit=limit)
    typer.echo(f"Set the concurrency limit of work pool {name!r} to {limit}.")


@work_pool_app.command("clear-concurrency-limit")
def pool_clear_limit(name: PoolArg) -> None:
    """Remove the pool's concurrency limit."""
    _update_pool(name, concurrency_limit=None)
    typer.echo(f"Cleared the concurrency limit of work pool {name!r}.")


@work_pool_app.command("delete")
def pool_delete(name: PoolArg) -> None:
    """Delete a pool with its queues and workers (refused while deployments use it)."""
    _with_client(lambda client: client.delete_work_pool(name))
    typer.echo(f"Deleted work pool {name!r}.")


# -- work queues ------------------------------------------------------------------------
@work_queue_app.command("create")
def queue_create(
    name: QueueArg,
    pool: PoolOption,
    priority: Annotated[
        int | None,
        typer.Option(min=1, help="1 is served first; by default after the pool's queues."),
    ] = None,
    concurrency_limit: LimitOption = None,
    description: DescriptionOption = None,
) -> None:
    """Create a queue in a work pool."""
    from conveyor.schemas.deployments import WorkQueueCreate

    body = WorkQueueCreate(
        name=name, priority=priority, concurrency_limit=concurrency_limit, description=description
    )
    queue = _with_client(lambda client: client.create_work_queue(pool, body))
    typer.echo(f"Created queue {name!r} in work pool {pool!r} (priority {queue.priority}).")


@work_queue_app.command("ls")
def queue_ls(pool: PoolOption) -> None:
    """A pool's queues, by priority (1 first)."""
    from conveyor.schemas.deployments import WorkQueueFilter

    flt = WorkQueueFilter(limit=200)
    _print_queues(_with_client(lambda client: client.filter_work_queues(pool, flt)), pool)


@work_queue_app.command("inspect")
def queue_inspect(name: QueueArg, pool: PoolOption) -> None:
    """A queue in full."""
    print_detail(_with_client(lambda client: client.read_work_queue(pool, name)))


def _update_queue(pool: str, name: str, **changes: Any) -> None:
    from conveyor.schemas.deployments import WorkQueueUpdate

    body = WorkQueueUpdate(**changes)
    _with_client(lambda client: client.update_work_queue(pool, name, body))


@work_queue_app.command("pause")
def queue_pause(name: QueueArg, pool: PoolOption) -> None:
    """Pause a queue: no new runs are taken from it until it is resumed."""
    _update_queue(pool, name, paused=True)
    typer.echo(f"Paused queue {name!r} of work pool {pool!r}.")


@work_queue_app.command("resume")
def queue_resume(name: QueueArg, pool: PoolOption) -> None:
    """Resume a paused queue."""
    _update_queue(pool, name, paused=False)
    typer.echo(f"Resumed queue {name!r} of work pool {pool!r}.")


@work_queue_app.command("delete")
def queue_delete(name: QueueArg, pool: PoolOption) -> None:
    """Delete a queue; its runs and deployments move to the pool's 'default' queue."""
    _with_client(lambda client: client.delete_work_queue(pool, name))
    typer.echo(f"Deleted queue {name!r} of work pool {pool!r}.")
