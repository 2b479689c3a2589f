"""Running one task run: the state machine, and the sync and async drivers around it.

``TaskRunEngine`` holds every decision (inputs, caching, retries, results, hooks);
``task_run_steps`` strings them together once, and ``effects.perform_sync`` or
``perform_async`` drives it from sync or async code.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import uuid
from collections.abc import Generator
from functools import partial
from typing import TYPE_CHECKING, Any

from conveyor.client.recorder import RunRecorder
from conveyor.engine.concurrency import Slots, limited_tags, task_slots
from conveyor.engine.context import TaskRunContext, _log_prints, task_run_context
from conveyor.engine.effects import Blocking, Call, Effect, RunHooks, Sleep, Steps, WaitFor
from conveyor.engine.futures import ConveyorFuture
from conveyor.engine.inputs import SCALARS, UpstreamPlaceholder, iter_leaves, walk
from conveyor.engine.options import delay_for_attempt
from conveyor.engine.run_logging import run_log_extra
from conveyor.exceptions import ConfigurationError, TaskRunTimeoutError, UpstreamTaskError
from conveyor.schemas.runs import TaskRun, TaskRunInput, TaskRunStateRecord
from conveyor.schemas.states import (
    AwaitingRetry,
    Cached,
    Cancelled,
    Completed,
    Crashed,
    Failed,
    Pending,
    Retrying,
    Running,
    State,
    StateType,
    TimedOut,
)

if TYPE_CHECKING:
    from conveyor.engine.results import ResultStore
    from conveyor.engine.task_call import TaskCall


logger = logging.getLogger("conveyor.task_runs")

# What ``engine.state`` holds until the run records its first state (nothing reads it
# before then): shared, since a state is never changed once it is replaced.
_NOT_STARTED = Pending(name="NotStarted")


class TaskRunEngine:
    """One task run's decisions. Drivers call: prepare, then attempts, then finish."""

    def __init__(self, call: TaskCall, recorder: RunRecorder) -> None:
        self.call = call
        self.task = call.task
        self.env = call.environment
        self.recorder = recorder
        self.task_run_id = call.task_run_id
        self.seq = 0
        self.run_count = 0
        self.state: State = _NOT_STARTED
        self.inputs: dict[str, Any] = call.parameters
        self.cache_key: str | None = None
        self.result_store: ResultStore | None = None
        self.name = self._render_name()
        self.task_run = TaskRun(
            id=self.task_run_id,
            name=self.name,
            task_key=self.task.task_key,
            flow_run_id=self.env.flow_run_id,
            task_version=self.task.version,
            tags=sorted(call.tags),
            dynamic_key=str(call.dynamic_key),
            map_index=call.map_index,
            task_inputs=[],
            cache_key=None,
            created=datetime.datetime.now(datetime.timezone.utc),
        )
        self.context = TaskRunContext(
            task=self.task,
            task_run=self.task_run,
            environment=self.env,
            recorder=recorder,
            run_count=0,
        )

    def _render_name(self) -> str:
        template = self.task.task_run_name
        if template is None:
            return f"{self.task.name}-{self.call.dynamic_key}"
        try:
            if callable(template):
                return str(template())
            return template.format(**self.call.parameters)
        except (KeyError, IndexError, AttributeError) as exc:
            raise ConfigurationError(
                f"task {self.task.name!r}: task_run_name {template!r} names {exc} "
                "which is not a parameter of the task."
            ) from None

    # -- states -----------------------------------------------------------------------
    def set_state(self, state: State) -> State:
        self.seq += 1
        state.state_details.task_run_id = self.task_run_id
        state.state_details.flow_run_id = self.env.flow_run_id
        self.state = state
        if self.recorder.enabled:
            if self.seq == 1:
                self.recorder.emit(self.task_run)
            self.recorder.emit(
                TaskRunStateRecord(task_run_id=self.task_run_id, seq=self.seq, state=state)
            )
        return state

    # -- before running ---------------------------------------------------------------
    def prepare(self) -> State | None:
        """Record Pending, resolve inputs and look up the cache (upstream runs are done).

        Returns the final state when the function must not run: an upstream failed, or
        the result came from the cache.
        """
        self.task_run.task_inputs = self._dependencies()
        self.set_state(Pending())
        failures: list[str] = []
        self.inputs = self._resolve_inputs(failures)
        if failures:
            error = UpstreamTaskError(
                f"Upstream task run {', '.join(failures)} did not complete; "
                f"{self.name!r} did not run. Wrap the input in allow_failure(...) to run anyway."
            )
            return self.set_state(Failed(data=error, name="UpstreamFailed", message=str(error)))
        return self._lookup_cache()

    def _dependencies(self) -> list[TaskRunInput]:
        deps: list[TaskRunInput] = []
        for name, value in self.call.parameters.items():
            if type(value) in SCALARS:
                continue
            for leaf, _ in iter_leaves(value):
                run_id = _run_id_of(leaf)
                if run_id is not None:
                    deps.append(TaskRunInput(task_run_id=run_id, parameter=name))
        for leaf, _ in iter_leaves(self.call.wait_for) if self.call.wait_for else ():
            run_id = _run_id_of(leaf)
            if run_id is not None:
                deps.append(TaskRunInput(task_run_id=run_id, parameter=None))
        return deps

    def _resolve_inputs(self, failures: list[str]) -> dict[str, Any]:
        def resolve(value: Any, allowed: bool) -> Any:
            if type(value) is ConveyorFuture:
                value.mark_observed()
                name = value.task_name
                state = value.final_state()
            elif type(value) is UpstreamPlaceholder:
                raise RuntimeError("an upstream placeholder reached the engine unfilled")
            elif isinstance(value, State):
                name = str(value.state_details.task_run_id or "state")
                state = value
            else:
                return value
            if state.type is StateType.COMPLETED:
                return state.result()
            if allowed:
                return state.result(raise_on_failure=False)
            failures.append(f"{name!r} ({state.name})")
            return None

        for leaf, allowed in iter_leaves(self.call.wait_for or ()):
            resolve(leaf, allowed)
        return {k: walk(v, resolve) for k, v in self.call.parameters.items()}

    def _lookup_cache(self) -> State | None:
        policy = self.task.cache_policy
        if policy is None:
            return None
        from conveyor.engine.cache_policies import CacheKeyContext, CacheKeyFnPolicy, hash_objects

        key_context = CacheKeyContext(
            task_key=self.task.task_key,
            task_fn=self.task.fn,
            flow_run_id=self.env.flow_run_id,
            flow_parameters=self.env.flow_parameters,
            task_run_id=self.task_run_id,
        )
        key = policy.compute_key(key_context, self.inputs)
        if key is None:
            return None
        if not isinstance(policy, CacheKeyFnPolicy):
            # Policy keys say nothing of which task ran: a(1) and b(1) must not share a
            # result. A cache_key_fn key is the user's own and is used as given.
            key = hash_objects(self.task.task_key, key) or key
        self.cache_key = key
        self.task_run.cache_key = self.cache_key
        if self.task.refresh_cache:
            return None
        hit, value, ref = self._store().read_cached(self.cache_key)
        if not hit:
            return None
        state = Cached(data=value)
        state.result_ref = ref
        state.state_details.cache_key = self.cache_key
        logger.debug("Task run %r loaded its result from the cache.", self.name)
        return self.set_state(state)

    def _store(self) -> ResultStore:
        if self.result_store is None:
            from conveyor.engine.results import get_result_store

            self.result_store = get_result_store(
                self.task.result_storage or self.env.result_storage,
                self.task.result_serializer or self.env.result_serializer,
                self.env.settings,
            )
            self.context.result_store = self.result_store
        return self.result_store

    # -- attempts ---------------------------------------------------------------------
    def begin_attempt(self) -> None:
        self.run_count += 1
        self.context.run_count = self.run_count
        self.set_state(Running() if self.run_count == 1 else Retrying())

    def call_args(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        return self.task.signature.call_args(self.inputs)

    def enter(self) -> tuple[Any, Any]:
        log_prints = self.task.log_prints
        if log_prints is None:
            log_prints = self.env.log_prints
        return task_run_context.set(self.context), _log_prints.set(log_prints)

    @staticmethod
    def exit(tokens: tuple[Any, Any]) -> None:
        task_run_context.reset(tokens[0])
        _log_prints.reset(tokens[1])

    def succeed(self, value: Any) -> State:
        if isinstance(value, State):
            return self.set_state(value)
        state = Completed(data=value)
        if self.cache_key is not None:
            state.state_details.cache_key = self.cache_key
        if self._should_persist():
            try:
                state.result_ref = self._persist(value, state)
            except Exception as exc:  # noqa: BLE001 - a result that cannot be stored fails the run
                return self.set_state(
                    Failed(data=exc, message=f"Result could not be persisted: {exc}")
                )
        return self.set_state(state)

    def _should_persist(self) -> bool:
        if self.cache_key is not None or self.task.result_storage_key is not None:
            return True
        persist = self.task.persist_result
        if persist is None:
            persist = self.env.persist_result
        if persist is None:
            persist = self.env.settings.persist_results
        return persist

    def _persist(self, value: Any, state: State) -> Any:
        store = self._store()
        expiration = None
        if self.cache_key is not None and self.task.cache_expiration is not None:
            expiration = datetime.datetime.now(datetime.timezone.utc) + self.task.cache_expiration
            state.state_details.cache_expiration = expiration
        if self.task.result_storage_key is not None:
            from conveyor.engine.results import render_storage_key

            key = render_storage_key(
                self.task.result_storage_key,
                self.inputs,
                task_name=self.task.name,
                task_run_id=self.task_run_id,
                flow_run_id=self.env.flow_run_id,
                flow_name=self.env.flow_name,
            )
            ref = store.write(key, value, expiration=expiration)
            if self.cache_key is not None and self.cache_key != key:
                # The cache is looked up by cache key: keep a record there too, or a task
                # with both a cache policy and a storage key would never hit its cache.
                store.write(self.cache_key, value, expiration=expiration)
            return ref
        key = self.cache_key or str(self.task_run_id)
        return store.write(key, value, expiration=expiration)

    def fail(self, exc: BaseException) -> float | None:
        """Record a failed attempt; returns the delay before a retry, or None if final."""
        if isinstance(exc, TaskRunTimeoutError):
            state = TimedOut(data=exc, message=str(exc))
        elif isinstance(exc, asyncio.CancelledError):
            self.set_state(Cancelled(data=exc, message="Task run was cancelled."))
            return None
        elif not isinstance(exc, Exception):
            self.set_state(Crashed(data=exc, message=f"Task run crashed: {exc!r}"))
            return None
        else:
            state = Failed(data=exc, message=f"Task run failed: {type(exc).__name__}: {exc}")
        if self.run_count <= self.task.retries and self._retry_allowed(state):
            delay = delay_for_attempt(
                self.task.retry_delays, self.run_count, self.task.retry_jitter_factor
            )
            logger.warning(
                "Failed (%s: %s); retry %d of %d in %.3gs.",
                type(exc).__name__,
                exc,
                self.run_count,
                self.task.retries,
                delay,
                extra=self.log_extra(),
            )
            when = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=delay)
            self.set_state(AwaitingRetry(scheduled_time=when, message=state.message))
            return delay
        self.set_state(state)
        return None

    def _retry_allowed(self, state: State) -> bool:
        condition = self.task.retry_condition_fn
        if condition is None:
            return True
        try:
            return bool(condition(self.task, self.task_run, state))
        except Exception:
            logger.exception(
                "retry_condition_fn of task %r raised; not retrying.",
                self.task.name,
                extra=self.log_extra(),
            )
            return False

    # -- after running ----------------------------------------------------------------
    def hooks_to_run(self) -> tuple[Any, ...]:
        state = self.state
        if state.type is StateType.COMPLETED:
            name = "on_completion"
        elif state.type is StateType.FAILED:
            name = "on_failure"
        elif state.type is StateType.CRASHED:
            name = "on_crashed"
        elif state.type is StateType.CANCELLED:
            name = "on_cancellation"
        else:
            return ()
        return self.task.hooks.get(name, ())

    def log_final(self) -> None:
        state = self.state
        if state.type is StateType.COMPLETED:
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug("Finished in state %r", state, extra=self.log_extra())
        else:
            exc = state.data if isinstance(state.data, BaseException) else None
            logger.error(
                "Finished in state %r",
                state,
                exc_info=exc if state.name not in ("UpstreamFailed", "TimedOut") else None,
                extra=self.log_extra(),
            )

    def log_extra(self) -> dict[str, Any]:
        return run_log_extra(
            self.env.flow_run_id, self.env.flow_run_name, self.task_run_id, self.name
        )


def _run_id_of(value: Any) -> uuid.UUID | None:
    if type(value) is ConveyorFuture:
        return value.task_run_id
    if isinstance(value, State):
        return value.state_details.task_run_id
    return None


# -- the run, once, as steps for either driver (see effects.py) ----------------------------
def task_run_steps(engine: TaskRunEngine) -> Steps:
    task = engine.task
    upstream = engine.call.upstream_futures()
    if upstream:
        yield WaitFor(upstream)
    state = engine.prepare()
    while state is None:
        engine.begin_attempt()
        if "on_running" in task.hooks:
            hook_args = (task, engine.task_run, engine.state)
            yield RunHooks(task.hooks["on_running"], hook_args, engine.log_extra())
        error: BaseException | None = None
        slots: Slots | None = None
        tokens = engine.enter()
        try:
            limited = limited_tags(engine.recorder, engine.task_run.tags)
            if limited:
                holder = str(engine.task_run_id)
                slots = yield Blocking(partial(task_slots, engine.recorder, limited, holder))
            args, kwargs = engine.call_args()
            value = yield Call(
                task.fn,
                args,
                kwargs,
                task.timeout_seconds,
                engine.name,
                TaskRunTimeoutError,
                task.isasync,
            )
        except BaseException as exc:  # noqa: BLE001 - every outcome is recorded as a state
            error = exc
        finally:
            engine.exit(tokens)
        if slots is not None:
            yield Blocking(slots.release)
        if error is None:
            state = engine.succeed(value)
            continue
        delay = engine.fail(error)
        if delay is None:
            state = engine.state
            if not isinstance(error, Exception):
                yield from _finish(engine)
                raise error
        elif delay > 0:
            yield Sleep(delay)
    yield from _finish(engine)
    return state


def _finish(engine: TaskRunEngine) -> Generator[Effect, Any, None]:
    hooks = engine.hooks_to_run()
    if hooks:
        yield RunHooks(hooks, (engine.task, engine.task_run, engine.state), engine.log_extra())
    engine.log_final()
