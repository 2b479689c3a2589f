"""The @task decorator and the Task object it makes."""

from __future__ import annotations

import datetime
import functools
import inspect
import types
from collections.abc import Callable, Coroutine, Iterable
from typing import TYPE_CHECKING, Any, Generic, Literal, ParamSpec, TypeVar, overload

from conveyor.engine import options as opts
from conveyor.engine.inputs import unmapped
from conveyor.engine.parameters import Signature
from conveyor.exceptions import ConfigurationError

if TYPE_CHECKING:
    from conveyor.engine.cache_policies import CachePolicy
    from conveyor.engine.futures import ConveyorFuture, FutureList
    from conveyor.engine.serializers import Serializer
    from conveyor.schemas.states import State

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

_NOT_SET: Any = object()


@functools.cache
def _submission() -> types.ModuleType:
    """``engine.task_submission``, loaded by the first task call: ``from conveyor import
    task`` must not load the engine. Not an import statement in each call: on Python 3.11
    one costs ~1 µs even for a loaded module, a sizeable share of a trivial task's run."""
    from conveyor.engine import task_submission

    return task_submission


class Task(Generic[P, R]):
    """A function that runs as a tracked task run: retried, cached, timed out, logged."""

    def __init__(
        self,
        fn: Callable[P, R],
        *,
        name: str | None = None,
        description: str | None = None,
        tags: Iterable[str] | None = None,
        version: str | None = None,
        task_run_name: str | Callable[[], str] | None = None,
        retries: int = 0,
        retry_delay_seconds: opts.RetryDelay | None = None,
        retry_jitter_factor: float | None = None,
        retry_condition_fn: Callable[[Task[..., Any], Any, State], bool] | None = None,
        timeout_seconds: float | datetime.timedelta | None = None,
        cache_policy: CachePolicy | None = _NOT_SET,
        cache_key_fn: Callable[[Any, dict[str, Any]], str | None] | None = None,
        cache_expiration: datetime.timedelta | None = None,
        refresh_cache: bool | None = None,
        persist_result: bool | None = None,
        result_storage: str | None = None,
        result_serializer: str | Serializer | None = None,
        result_storage_key: str | None = None,
        log_prints: bool | None = None,
        on_running: Any = None,
        on_completion: Any = None,
        on_failure: Any = None,
        on_crashed: Any = None,
        on_cancellation: Any = None,
    ) -> None:
        opts.check_callable(fn, "task")
        self.fn = fn
        self.name: str = name or str(getattr(fn, "__name__", type(fn).__name__))
        owner = f"task {self.name!r}"
        self.description = description or inspect.getdoc(fn)
        if isinstance(tags, str):
            raise ConfigurationError(f"{owner}: tags must be a list of strings, got {tags!r}.")
        self.tags = frozenset(tags or ())
        self.version = version
        if task_run_name is not None and not (
            isinstance(task_run_name, str) or callable(task_run_name)
        ):
            raise ConfigurationError(f"{owner}: task_run_name must be a string or a callable.")
        self.task_run_name = task_run_name
        self.retries = opts.check_retries(retries, owner)
        self.retry_delay_seconds = retry_delay_seconds
        self.retry_delays = opts.retry_delays(retry_delay_seconds, self.retries, owner)
        self.retry_jitter_factor = opts.check_jitter(retry_jitter_factor, owner)
        if retry_condition_fn is not None and not callable(retry_condition_fn):
            raise ConfigurationError(f"{owner}: retry_condition_fn must be callable.")
        self.retry_condition_fn = retry_condition_fn
        self.timeout_seconds = opts.check_timeout(timeout_seconds, owner)
        self.cache_policy = _resolve_cache_policy(cache_policy, cache_key_fn, owner)
        self._cache_policy_arg = cache_policy
        self.cache_key_fn = cache_key_fn
        if cache_expiration is not None and not isinstance(cache_expiration, datetime.timedelta):
            raise ConfigurationError(
                f"{owner}: cache_expiration must be a datetime.timedelta, got {cache_expiration!r}."
            )
        self.cache_expiration = cache_expiration
        self.refresh_cache = bool(opts.check_optional_bool(refresh_cache, "refresh_cache", owner))
        self.persist_result = opts.check_optional_bool(persist_result, "persist_result", owner)
        if self.cache_policy is not None and persist_result is False:
            raise ConfigurationError(
                f"{owner}: caching reads results back from storage, so it needs persisted "
                "results; drop persist_result=False or the cache policy."
            )
        if result_storage_key is not None and persist_result is False:
            raise ConfigurationError(
                f"{owner}: result_storage_key needs persisted results; drop persist_result=False."
            )
        if result_storage is not None and not isinstance(result_storage, str):
            raise ConfigurationError(f"{owner}: result_storage must be a URL or a path string.")
        self.result_storage = result_storage
        if result_serializer is not None:
            from conveyor.engine.serializers import resolve_serializer

            resolve_serializer(result_serializer)  # fail at decoration, not at run time
        self.result_serializer = result_serializer
        self.result_storage_key = result_storage_key
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
        module = getattr(fn, "__module__", None) or "__main__"
        self.task_key = f"{module}.{getattr(fn, '__qualname__', self.name)}"

    # -- configuration ----------------------------------------------------------------
    def _options(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "tags": self.tags,
            "version": self.version,
            "task_run_name": self.task_run_name,
            "retries": self.retries,
            "retry_delay_seconds": self.retry_delay_seconds,
            "retry_jitter_factor": self.retry_jitter_factor,
            "retry_condition_fn": self.retry_condition_fn,
            "timeout_seconds": self.timeout_seconds,
            "cache_policy": self._cache_policy_arg,
            "cache_key_fn": self.cache_key_fn,
            "cache_expiration": self.cache_expiration,
            "refresh_cache": self.refresh_cache,
            "persist_result": self.persist_result,
            "result_storage": self.result_storage,
            "result_serializer": self.result_serializer,
            "result_storage_key": self.result_storage_key,
            "log_prints": self.log_prints,
            **{hook: list(self.hooks.get(hook, ())) or None for hook in opts.HOOK_NAMES},
        }

    def with_options(self, **changes: Any) -> Task[P, R]:
        """A copy of this task with some options changed; the original is untouched."""
        options = self._options()
        unknown = set(changes) - set(options)
        if unknown:
            raise ConfigurationError(
                f"task {self.name!r}: with_options() got unknown options: {sorted(unknown)}."
            )
        if "cache_key_fn" in changes and "cache_policy" not in changes:
            options["cache_policy"] = _NOT_SET
        options.update(changes)
        return Task(self.fn, **options)

    # -- calling ----------------------------------------------------------------------
    def _split_return_state(self, kwargs: dict[str, Any]) -> bool:
        if self._accepts_return_state:
            return False
        return bool(kwargs.pop("return_state", False))

    # See Flow.__call__ for why the first two overloads need [valid-type] ignored.
    @overload
    def __call__(  # type: ignore[valid-type]
        self: Task[P, Coroutine[Any, Any, T]],
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
        """Run the task now and return its result (or its final State with
        ``return_state=True``). Inside a running event loop an async task returns an
        awaitable instead."""
        return_state = self._split_return_state(kwargs)
        wait_for = kwargs.pop("wait_for", None) if "wait_for" not in self.signature.names else None
        parameters = self.signature.bind(args, kwargs)
        return _submission().run_task(
            self, parameters, wait_for=wait_for, return_state=return_state
        )

    @overload
    def submit(
        self: Task[P, Coroutine[Any, Any, T]], *args: Any, **kwargs: Any
    ) -> ConveyorFuture[T]: ...

    @overload
    def submit(self, *args: Any, **kwargs: Any) -> ConveyorFuture[R]: ...

    def submit(self, *args: Any, **kwargs: Any) -> ConveyorFuture[Any]:
        """Submit the task to the flow's task runner; returns a future at once."""
        wait_for = kwargs.pop("wait_for", None) if "wait_for" not in self.signature.names else None
        parameters = self.signature.bind(args, kwargs)
        return _submission().submit_task(self, parameters, wait_for=wait_for)  # type: ignore[no-any-return]

    @overload
    def map(self: Task[P, Coroutine[Any, Any, T]], *args: Any, **kwargs: Any) -> FutureList[T]: ...

    @overload
    def map(self, *args: Any, **kwargs: Any) -> FutureList[R]: ...

    def map(self, *args: Any, **kwargs: Any) -> FutureList[Any]:
        """Submit one task run per element of the iterable arguments.

        Arguments wrapped in ``unmapped(...)`` (and non-iterable ones such as numbers)
        are passed whole to every run. All iterables must have the same length.
        """
        wait_for = kwargs.pop("wait_for", None) if "wait_for" not in self.signature.names else None
        return _submission().map_task(self, args, kwargs, wait_for=wait_for)  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return f"Task({self.name!r})"

    # Mapping helpers kept here so the engine stays about running a single task.
    @staticmethod
    def _is_mapped(value: Any) -> bool:
        if isinstance(value, unmapped | str | bytes | dict):
            return False
        return isinstance(value, Iterable)


def _resolve_cache_policy(policy: Any, cache_key_fn: Any, owner: str) -> CachePolicy | None:
    if cache_key_fn is None and (policy is _NOT_SET or policy is None):
        return None  # the common case: no caching, and no import of the hashing machinery
    from conveyor.engine import cache_policies

    if cache_key_fn is not None:
        if policy is not _NOT_SET and policy is not None:
            raise ConfigurationError(
                f"{owner}: pass either cache_policy or cache_key_fn, not both."
            )
        if not callable(cache_key_fn):
            raise ConfigurationError(f"{owner}: cache_key_fn must be callable.")
        return cache_policies.CacheKeyFnPolicy(cache_key_fn)
    if policy is _NOT_SET or policy is None:
        return None
    if not isinstance(policy, cache_policies.CachePolicy):
        raise ConfigurationError(
            f"{owner}: cache_policy must be a cache policy such as INPUTS or "
            f"INPUTS + TASK_SOURCE, got {policy!r}."
        )
    if isinstance(policy, cache_policies.NoCache):
        return None
    return policy


@overload
def task(fn: Callable[P, R], /) -> Task[P, R]: ...


@overload
def task(
    fn: None = None,
    /,
    **options: Any,
) -> Callable[[Callable[P, R]], Task[P, R]]: ...


def task(fn: Any = None, /, **options: Any) -> Any:
    """Make a function a task: ``@task`` or ``@task(retries=3, ...)``.

    See ``Task`` for the options.
    """
    if fn is None:
        return lambda f: Task(f, **options)
    if options:
        raise TypeError("Use @task or @task(...options...), not task(fn, options).")
    return Task(fn)
