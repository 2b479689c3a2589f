"""The @flow decorator and the Flow object it makes."""

from __future__ import annotations

import datetime
import inspect
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Generic, Literal, ParamSpec, TypeVar, overload

from conveyor.engine import options as opts
from conveyor.engine.parameters import ParameterValidator, Signature
from conveyor.exceptions import ConfigurationError

if TYPE_CHECKING:
    import uuid

    from conveyor.deployments.from_flow import FlowDeployment, ScheduleLike
    from conveyor.engine.serializers import Serializer
    from conveyor.schemas.states import State
    from conveyor.task_runners.base import TaskRunner

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


class Flow(Generic[P, R]):
    """A function whose every call is a tracked flow run. Calling it runs it."""

    def __init__(
        self,
        fn: Callable[P, R],
        *,
        name: str | None = None,
        version: str | None = None,
        description: str | None = None,
        flow_run_name: str | Callable[[], str] | None = None,
        retries: int = 0,
        retry_delay_seconds: float | int | None = None,
        timeout_seconds: float | datetime.timedelta | None = None,
        task_runner: TaskRunner | None = None,
        validate_parameters: bool = True,
        persist_result: bool | None = None,
        result_storage: str | None = None,
        result_serializer: str | Serializer | None = None,
        log_prints: bool | None = None,
        on_running: Any = None,
        on_completion: Any = None,
        on_failure: Any = None,
        on_crashed: Any = None,
        on_cancellation: Any = None,
    ) -> None:
        opts.check_callable(fn, "flow")
        self.fn = fn
        self.name: str = name or str(getattr(fn, "__name__", type(fn).__name__)).replace("_", "-")
        owner = f"flow {self.name!r}"
        self.version = version
        self.description = description or inspect.getdoc(fn)
        if flow_run_name is not None and not (
            isinstance(flow_run_name, str) or callable(flow_run_name)
        ):
            raise ConfigurationError(f"{owner}: flow_run_name must be a string or a callable.")
        self.flow_run_name = flow_run_name
        self.retries = opts.check_retries(retries, owner)
        self.retry_delay_seconds = retry_delay_seconds
        self.retry_delays = opts.retry_delays(retry_delay_seconds, self.retries, owner)
        self.timeout_seconds = opts.check_timeout(timeout_seconds, owner)
        from conveyor.task_runners.base import TaskRunner

        if task_runner is not None and not isinstance(task_runner, TaskRunner):
            if isinstance(task_runner, type) and issubclass(task_runner, TaskRunner):
                task_runner = task_runner()
            else:
                raise ConfigurationError(
                    f"{owner}: task_runner must be a task runner such as "
                    f"ThreadPoolTaskRunner(), got {task_runner!r}."
                )
        self.task_runner = task_runner
        if not isinstance(validate_parameters, bool):
            raise ConfigurationError(f"{owner}: validate_parameters must be True or False.")
        self.validate_parameters = validate_parameters
        self.persist_result = opts.check_optional_bool(persist_result, "persist_result", owner)
        if result_storage is not None and not isinstance(result_storage, str):
            raise ConfigurationError(f"{owner}: result_storage must be a URL or a path string.")
        self.result_storage = result_storage
        if result_serializer is not None:
            from conveyor.engine.serializers import resolve_serializer

            resolve_serializer(result_serializer)
        self.result_serializer = result_serializer
        self.log_prints = opts.check_optional_bool(log_prints, "log_prints", owner)
        self.hooks = opts.check_hooks(
            owner,
            on_running=on_running,
            on_completion=on_completion,
            on_failure=on_failure,
            on_crashed=on_crashed,
            on_cancellation=on_cancellation,
        )
        self.isasync = inspect.iscoroutinefunction(fn)
        self.signature = Signature(fn)
        self._accepts_return_state = "return_state" in self.signature.names
        self._validator = ParameterValidator(fn, owner)

    def _options(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "flow_run_name": self.flow_run_name,
            "retries": self.retries,
            "retry_delay_seconds": self.retry_delay_seconds,
            "timeout_seconds": self.timeout_seconds,
            "task_runner": self.task_runner,
            "validate_parameters": self.validate_parameters,
            "persist_result": self.persist_result,
            "result_storage": self.result_storage,
            "result_serializer": self.result_serializer,
            "log_prints": self.log_prints,
            **{hook: list(self.hooks.get(hook, ())) or None for hook in opts.HOOK_NAMES},
        }

    def with_options(self, **changes: Any) -> Flow[P, R]:
        """A copy of this flow with some options changed; the original is untouched."""
        options = self._options()
        unknown = set(changes) - set(options)
        if unknown:
            raise ConfigurationError(
                f"flow {self.name!r}: with_options() got unknown options: {sorted(unknown)}."
            )
        options.update(changes)
        return Flow(self.fn, **options)

    def validate(self, parameters: dict[str, Any]) -> dict[str, Any]:
        """Coerce parameters from the type hints; raises naming every bad field."""
        if not self.validate_parameters:
            return parameters
        return self._validator.validate(parameters)

    # mypy rejects a keyword after *args: P.args in a definition ([valid-type]) but types
    # calls through it correctly, which is what users of return_state=True need.
    @overload
    def __call__(  # type: ignore[valid-type]
        self: Flow[P, Coroutine[Any, Any, T]],
        *args: P.args,
        return_state: Literal[True],
        **kwargs: P.kwargs,
    ) -> Coroutine[Any, Any, State]: ...

    @overload
    def __call__(  # type: ignore[valid-type]
        self, *args: P.args, return_state: Literal[True], **kwargs: P.kwargs
    ) -> State: ...

    @overload
    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R: ...

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the flow and return its result (its final State with ``return_state=True``).

        An async flow returns an awaitable, except inside a sync flow or task, where it
        runs to completion like a sync one.
        """
        from conveyor.engine.flow_engine import run_flow

        return_state = False
        if not self._accepts_return_state:
            return_state = bool(kwargs.pop("return_state", False))
        try:
            parameters = self.signature.bind(args, kwargs)
        except TypeError as exc:
            from conveyor.exceptions import ParameterValidationError

            errors = self.signature.bind_errors(args, kwargs, exc)
            raise ParameterValidationError(f"flow {self.name!r}", errors) from None
        return run_flow(self, parameters, return_state=return_state)

    def deploy(
        self,
        name: str,
        *,
        work_pool_name: str,
        work_queue_name: str | None = None,
        source: Any = None,
        entrypoint: str | None = None,
        parameters: dict[str, Any] | None = None,
        schedules: list[ScheduleLike] | None = None,
        cron: str | None = None,
        interval: float | datetime.timedelta | None = None,
        rrule: str | None = None,
        job_variables: dict[str, Any] | None = None,
        tags: list[str] | None = None,
        version: str | None = None,
        description: str | None = None,
        paused: bool = False,
        concurrency_limit: int | None = None,
        collision_strategy: str = "ENQUEUE",
    ) -> uuid.UUID:
        """Create or replace the deployment ``flow-name/name`` in a work pool; returns its id.

        ``source`` (a string as in conveyor.yaml, or a code source) defaults to the
        directory of the flow's file, and ``entrypoint`` to that file and the function's
        name relative to the source's directory.
        """
        from conveyor.deployments import from_flow
        from conveyor.deployments.config import WorkPoolSpec

        pool = WorkPoolSpec(
            name=work_pool_name, queue=work_queue_name, job_variables=job_variables or {}
        )
        spec, base = from_flow.spec_for(
            self,
            name,
            source=source,
            entrypoint=entrypoint,
            work_pool=pool,
            parameters=parameters,
            schedules=from_flow.schedule_mappings(schedules, cron, interval, rrule),
            tags=tags,
            version=version,
            description=description,
            paused=paused,
            concurrency_limit=concurrency_limit,
            collision_strategy=collision_strategy,
        )
        deployment_id: uuid.UUID = from_flow.deploy_flow(self, spec, base)
        return deployment_id

    def to_deployment(
        self,
        name: str,
        *,
        parameters: dict[str, Any] | None = None,
        schedules: list[ScheduleLike] | None = None,
        cron: str | None = None,
        interval: float | datetime.timedelta | None = None,
        rrule: str | None = None,
        tags: list[str] | None = None,
        version: str | None = None,
        description: str | None = None,
        paused: bool = False,
        entrypoint: str | None = None,
    ) -> FlowDeployment:
        """A deployment of this flow without a work pool, for ``conveyor.serve``."""
        from conveyor.deployments import from_flow

        spec, _ = from_flow.spec_for(
            self,
            name,
            source=None,
            entrypoint=entrypoint,
            work_pool=None,
            parameters=parameters,
            schedules=from_flow.schedule_mappings(schedules, cron, interval, rrule),
            tags=tags,
            version=version,
            description=description,
            paused=paused,
        )
        return from_flow.FlowDeployment(self, spec)

    def serve(
        self,
        name: str,
        *,
        parameters: dict[str, Any] | None = None,
        schedules: list[ScheduleLike] | None = None,
        cron: str | None = None,
        interval: float | datetime.timedelta | None = None,
        rrule: str | None = None,
        limit: int | None = None,
    ) -> None:
        """Deploy this flow without a work pool and run its due runs in subprocesses of
        this process until SIGINT or SIGTERM."""
        from conveyor.deployments.serve import serve

        deployment = self.to_deployment(
            name,
            parameters=parameters,
            schedules=schedules,
            cron=cron,
            interval=interval,
            rrule=rrule,
        )
        serve(deployment, limit=limit)

    def __repr__(self) -> str:
        return f"Flow({self.name!r})"


@overload
def flow(fn: Callable[P, R], /) -> Flow[P, R]: ...


@overload
def flow(fn: None = None, /, **options: Any) -> Callable[[Callable[P, R]], Flow[P, R]]: ...


def flow(fn: Any = None, /, **options: Any) -> Any:
    """Make a function a flow: ``@flow`` or ``@flow(name=..., retries=..., ...)``."""
    if fn is None:
        return lambda f: Flow(f, **options)
    if options:
        raise TypeError("Use @flow or @flow(...options...), not flow(fn, options).")
    return Flow(fn)
