"""Concurrency limits from the engine's side: slots held by leases on the server.

* Tag limits: a task run whose tags include a limit's name holds one slot of it per
  attempt (``task_slots``, used by the task engine). Which tags have limits is asked of
  the server at most every ``NAMES_REFRESH_SECONDS`` per process.
* ``concurrency("db")``: hold slots of a named limit for the length of a block.
* ``rate_limit("api")``: take slots and never release them; each lease expires after
  ``ttl_seconds``, so a limit of N allows N occupations per ``ttl_seconds``.

A held lease is renewed every third of its TTL by a background thread, so a process that
dies frees its slots one TTL later. With ``CONVEYOR_BACKEND=none`` there are no limits:
nothing here makes a request or starts a thread.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref
from collections.abc import Iterable, Sequence
from functools import partial
from types import TracebackType
from typing import TYPE_CHECKING, Any

from conveyor.exceptions import ConfigurationError

if TYPE_CHECKING:
    from conveyor.client.api import ConveyorClient
    from conveyor.client.recorder import RunRecorder
    from conveyor.client.transport import ApiTransport
    from conveyor.schemas.api import ConcurrencyLeaseRead

logger = logging.getLogger("conveyor.concurrency")

DEFAULT_TTL_SECONDS = 30.0
NAMES_REFRESH_SECONDS = 5.0
LONG_POLL_SECONDS = 20.0
"""How long one acquire request waits server-side (below the client's HTTP timeout)."""

_names_lock = threading.Lock()
_names: weakref.WeakKeyDictionary[ApiTransport, tuple[float, frozenset[str]]] = (
    weakref.WeakKeyDictionary()
)


def transport_of(recorder: RunRecorder) -> ApiTransport | None:
    """The API transport runs are recorded through, or None (no backend, no limits)."""
    transport = getattr(recorder, "transport", None)
    if transport is None:
        return None
    from conveyor.client.transport import ApiTransport

    return transport if isinstance(transport, ApiTransport) else None


def limit_names(transport: ApiTransport) -> frozenset[str]:
    """Names of the server's limits, cached for ``NAMES_REFRESH_SECONDS``."""
    now = time.monotonic()
    with _names_lock:
        cached = _names.get(transport)
        if cached is not None and now - cached[0] < NAMES_REFRESH_SECONDS:
            return cached[1]
        names: set[str] = set()
        offset = 0
        while True:
            page = transport.call(
                lambda client, o=offset: client.list_concurrency_limits(200, o)  # type: ignore[misc]
            )
            names.update(limit.name for limit in page)
            if len(page) < 200:
                break
            offset += 200
        result = frozenset(names)
        _names[transport] = (now, result)
        return result


class Slots:
    """Leases held (and renewed in the background) until ``release``."""

    def __init__(self, transport: ApiTransport, ttl_seconds: float, *, renew: bool = True) -> None:
        self.transport = transport
        self.ttl_seconds = ttl_seconds
        self.leases: list[ConcurrencyLeaseRead] = []
        self._renew = renew
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def acquire(
        self,
        names: Iterable[str],
        occupy: int,
        holder: str | None,
        timeout: float | None,
        *,
        skip_unknown: bool = False,
    ) -> None:
        """Take ``occupy`` slots of each limit in sorted order (so two holders of the same
        limits cannot deadlock); on failure release what was taken and raise."""
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            for name in sorted(set(names)):
                lease = self._acquire_one(name, occupy, holder, deadline, skip_unknown)
                if lease is not None:
                    self.leases.append(lease)
        except BaseException:
            self.release()
            raise
        if self._renew and self.leases:
            self._renewer = threading.Thread(
                target=self._renew_until_released, name="conveyor-lease-renewer", daemon=True
            )
            self._renewer.start()

    def _acquire_one(
        self,
        name: str,
        occupy: int,
        holder: str | None,
        deadline: float | None,
        skip_unknown: bool,
    ) -> ConcurrencyLeaseRead | None:
        from conveyor.client.api import ApiError

        while True:
            wait = LONG_POLL_SECONDS
            if deadline is not None:
                wait = max(0.0, min(wait, deadline - time.monotonic()))
            try:
                return self.transport.call(
                    partial(
                        _acquire_request,
                        name=name,
                        occupy=occupy,
                        holder=holder,
                        ttl_seconds=self.ttl_seconds,
                        timeout_seconds=wait,
                    )
                )
            except ApiError as exc:
                if exc.status == 404 and skip_unknown:
                    return None
                if exc.status == 404:
                    raise ConfigurationError(
                        f"There is no concurrency limit named {name!r}; create it with "
                        f"`conveyor concurrency-limit create {name} N`."
                    ) from None
                if exc.status == 409:
                    raise ConfigurationError(exc.detail) from None
                if exc.status != 423:
                    raise
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(
                    f"No {occupy} slot(s) of concurrency limit {name!r} were free "
                    f"within {deadline - time.monotonic() + wait:.1f}s."
                )

    def _renew_until_released(self) -> None:
        from conveyor.client.api import ApiError

        while not self._stop.wait(self.ttl_seconds / 3):
            for lease in list(self.leases):
                try:
                    self.transport.call(
                        lambda client, i=lease.id: client.renew_concurrency_lease(  # type: ignore[misc]
                            i, self.ttl_seconds
                        )
                    )
                except ApiError as exc:
                    if exc.status == 404:
                        logger.warning(
                            "Concurrency lease %s expired or was reset; its slots are no "
                            "longer held.",
                            lease.id,
                        )
                        self.leases.remove(lease)
                except Exception as exc:  # noqa: BLE001 - retried at the next renewal
                    logger.warning("Could not renew concurrency lease %s: %s", lease.id, exc)

    def release(self) -> None:
        """Give the slots back. Never raises: a lease not released expires on its own."""
        self._stop.set()
        if self._renewer is not None and self._renewer is not threading.current_thread():
            self._renewer.join()
        leases, self.leases = self.leases, []
        for lease in leases:
            try:
                self.transport.call(
                    lambda client, i=lease.id: client.release_concurrency_lease(i)  # type: ignore[misc]
                )
            except Exception as exc:  # noqa: BLE001 - the lease expires by itself
                logger.debug("Could not release concurrency lease %s: %s", lease.id, exc)


async def _acquire_request(
    client: ConveyorClient,
    *,
    name: str,
    occupy: int,
    holder: str | None,
    ttl_seconds: float,
    timeout_seconds: float,
) -> ConcurrencyLeaseRead:
    return await client.acquire_concurrency_slots(
        name, occupy, holder=holder, ttl_seconds=ttl_seconds, timeout_seconds=timeout_seconds
    )


def limited_tags(recorder: RunRecorder, tags: Sequence[str]) -> list[str]:
    """The tags that have a concurrency limit (none without a backend: no request)."""
    if not tags:
        return []
    transport = transport_of(recorder)
    if transport is None:
        return []
    names = limit_names(transport)
    return sorted(tag for tag in tags if tag in names)


def task_slots(recorder: RunRecorder, tags: Sequence[str], holder: str) -> Slots | None:
    """One slot of each limited tag, waiting as long as it takes (blocks). A limit deleted
    since the names were cached is skipped."""
    transport = transport_of(recorder)
    if transport is None:
        return None
    slots = Slots(transport, DEFAULT_TTL_SECONDS)
    slots.acquire(tags, 1, holder, None, skip_unknown=True)
    return slots


def _current_transport() -> ApiTransport | None:
    from conveyor.engine import runtime

    return transport_of(runtime.get_recorder())


class ConcurrencySlots:
    """``with concurrency(...)``/``async with concurrency(...)``: slots held for a block."""

    def __init__(
        self,
        names: str | Sequence[str],
        occupy: int = 1,
        timeout_seconds: float | None = None,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
    ) -> None:
        if occupy < 1:
            raise ConfigurationError(f"concurrency(): occupy must be at least 1, not {occupy}.")
        self.names = [names] if isinstance(names, str) else list(names)
        self.occupy = occupy
        self.timeout_seconds = timeout_seconds
        self.ttl_seconds = ttl_seconds
        self._slots: Slots | None = None

    def __enter__(self) -> ConcurrencySlots:
        transport = _current_transport()
        if transport is not None:
            slots = Slots(transport, self.ttl_seconds)
            slots.acquire(self.names, self.occupy, _holder(), self.timeout_seconds)
            self._slots = slots
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        slots, self._slots = self._slots, None
        if slots is not None:
            slots.release()

    async def __aenter__(self) -> ConcurrencySlots:
        await asyncio.to_thread(self.__enter__)
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.__exit__, t, e, tb)


def concurrency(
    names: str | Sequence[str],
    occupy: int = 1,
    timeout_seconds: float | None = None,
    ttl_seconds: float = DEFAULT_TTL_SECONDS,
) -> ConcurrencySlots:
    """Hold ``occupy`` slots of each named limit for the block (``with`` or ``async with``),
    waiting for them up to ``timeout_seconds`` (forever when None; ``TimeoutError`` after).

    An unknown name is a ``ConfigurationError``; without a backend it does nothing."""
    return ConcurrencySlots(names, occupy, timeout_seconds, ttl_seconds)


def rate_limit(
    names: str | Sequence[str],
    occupy: int = 1,
    timeout_seconds: float | None = None,
    ttl_seconds: float = 1.0,
) -> None:
    """Take ``occupy`` slots of each named limit and keep them until their lease expires
    after ``ttl_seconds``: a limit of N allows N occupations per ``ttl_seconds``."""
    if occupy < 1:
        raise ConfigurationError(f"rate_limit(): occupy must be at least 1, not {occupy}.")
    transport = _current_transport()
    if transport is None:
        return
    names = [names] if isinstance(names, str) else list(names)
    Slots(transport, ttl_seconds, renew=False).acquire(names, occupy, _holder(), timeout_seconds)


def _holder() -> str | None:
    from conveyor.engine.context import task_run_context

    context: Any = task_run_context.get(None)
    return str(context.task_run.id) if context is not None else None
