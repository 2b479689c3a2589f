"""Runs submitted tasks on a Dask cluster (``pip install 'conveyor[dask]'``).

With ``address`` the runner connects to an existing scheduler; otherwise it starts a
temporary cluster (``cluster_class``, default ``distributed.LocalCluster``) for the flow
run and closes it afterwards. Upstream futures become Dask dependencies, so upstream
results move between Dask workers without passing through the flow's process.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from conveyor.engine.futures import ConveyorFuture
from conveyor.exceptions import ConfigurationError, SerializationError, TaskRunnerError
from conveyor.task_runners import remote
from conveyor.task_runners.base import TaskRunner

if TYPE_CHECKING:
    from conveyor.client.recorder import RunRecorder
    from conveyor.engine.task_call import TaskCall


def _import_distributed() -> Any:
    try:
        return importlib.import_module("distributed")
    except ImportError as exc:
        raise TaskRunnerError(
            "DaskTaskRunner needs dask.distributed; install it with: pip install 'conveyor[dask]'"
        ) from exc


class DaskTaskRunner(TaskRunner):
    def __init__(
        self,
        address: str | None = None,
        cluster_class: str | Callable[..., Any] | None = None,
        cluster_kwargs: dict[str, Any] | None = None,
        adapt_kwargs: dict[str, Any] | None = None,
        client_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if address is not None and not isinstance(address, str):
            raise ConfigurationError(f"DaskTaskRunner: address must be a string, got {address!r}.")
        if address is not None and (cluster_class is not None or cluster_kwargs):
            raise ConfigurationError(
                "DaskTaskRunner: pass either address (an existing cluster) or "
                "cluster_class/cluster_kwargs (a temporary one), not both."
            )
        if cluster_class is not None and not (
            isinstance(cluster_class, str) or callable(cluster_class)
        ):
            raise ConfigurationError(
                "DaskTaskRunner: cluster_class must be a class or an import path string."
            )
        for name, value in (
            ("cluster_kwargs", cluster_kwargs),
            ("adapt_kwargs", adapt_kwargs),
            ("client_kwargs", client_kwargs),
        ):
            if value is not None and not isinstance(value, dict):
                raise ConfigurationError(f"DaskTaskRunner: {name} must be a dict, got {value!r}.")
        self.address = address
        self.cluster_class = cluster_class
        self.cluster_kwargs = dict(cluster_kwargs or {})
        self.adapt_kwargs = dict(adapt_kwargs or {}) if adapt_kwargs is not None else None
        self.client_kwargs = dict(client_kwargs or {})
        self._client: Any = None
        self._cluster: Any = None
        self._lock = threading.Lock()
        self._pending = remote.PendingRuns()

    def duplicate(self) -> DaskTaskRunner:
        return DaskTaskRunner(
            self.address,
            self.cluster_class,
            self.cluster_kwargs,
            self.adapt_kwargs,
            self.client_kwargs,
        )

    def __repr__(self) -> str:
        where = self.address or "temporary cluster"
        return f"DaskTaskRunner({where})"

    @property
    def client(self) -> Any:
        """The ``distributed.Client``, connected on first use."""
        with self._lock:
            if self._client is None:
                self._connect()
            return self._client

    def _connect(self) -> None:
        distributed = _import_distributed()
        kwargs = {"set_as_default": False, **self.client_kwargs}
        if self.address is not None:
            kwargs.setdefault("timeout", "10s")
            try:
                self._client = distributed.Client(self.address, **kwargs)
            except (OSError, TimeoutError) as exc:
                raise TaskRunnerError(
                    f"Could not connect to the Dask scheduler at {self.address!r} ({exc}); "
                    "check that it is running, or leave address unset to start a "
                    "temporary local cluster."
                ) from exc
            return
        cluster_class = self.cluster_class or distributed.LocalCluster
        if isinstance(cluster_class, str):
            module, _, name = cluster_class.rpartition(".")
            try:
                cluster_class = getattr(importlib.import_module(module), name)
            except (ImportError, AttributeError, ValueError) as exc:
                raise ConfigurationError(
                    f"DaskTaskRunner: cannot import cluster_class {self.cluster_class!r}."
                ) from exc
        cluster_kwargs = dict(self.cluster_kwargs)
        if cluster_class is distributed.LocalCluster:
            # The dashboard on loopback and a free port: the fixed port 8787 would be
            # taken by a second cluster (another flow run, a test).
            cluster_kwargs.setdefault("dashboard_address", "127.0.0.1:0")
        self._cluster = cluster_class(**cluster_kwargs)
        if self.adapt_kwargs is not None:
            self._cluster.adapt(**self.adapt_kwargs)
        self._client = distributed.Client(self._cluster, **kwargs)

    def start(self, recorder: RunRecorder) -> None:
        super().start(recorder)
        _ = self.client  # connect now so a bad address fails before any task runs
        remote.record_the_run_first(recorder)

    def submit(self, call: TaskCall) -> ConveyorFuture[Any]:
        future = self._pending.new_future(call)
        recorder = self.recorder
        shipped, upstream = call.with_placeholders()
        local = [f for f in upstream if f.native is None]
        try:
            if local:  # futures from another runner: resolve them here, then ship
                for upstream_future in local:
                    upstream_future.wait()
                shipped, upstream = call.with_upstream_states().with_placeholders()
            payload = remote.pack_call(shipped)
            dependencies = {i: f.native for i, f in enumerate(upstream)}
            native = self.client.submit(
                remote.run_packed_call,
                payload,
                dependencies,
                pure=False,
                key=f"{call.task.name}-{call.task_run_id}",
            )
        except SerializationError as exc:
            remote.settle(call, recorder, future, None, exc)
            return future

        def done(f: Any) -> None:
            try:
                packed = f.result()
            except BaseException as exc:  # noqa: BLE001 - reported as a Crashed run
                remote.settle(call, recorder, future, None, exc)
            else:
                remote.settle(call, recorder, future, packed, None)

        future.native = native
        native.add_done_callback(done)
        return future

    def shutdown(self, wait: bool = True) -> None:
        if wait:
            self._pending.wait_all()
        with self._lock:
            client, cluster = self._client, self._cluster
            self._client = self._cluster = None
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
        super().shutdown(wait)
