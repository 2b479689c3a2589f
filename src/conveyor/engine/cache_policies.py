"""Cache policies: how a task run's cache key is computed, named as in Prefect 3.

Policies combine with ``+``: ``INPUTS + TASK_SOURCE`` hashes both. A compound skips parts
that return no key and gives no key only when none does. Inputs or flow parameters that
cannot be hashed are different: the key would then silently ignore them, so the whole run
goes uncached (with a warning) instead.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import hashlib
import inspect
import json
import logging
import pathlib
import threading
import types
import uuid
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from conveyor.engine.serializers import to_json_compatible
from conveyor.exceptions import ConfigurationError

logger = logging.getLogger("conveyor.cache")


@dataclass(frozen=True)
class CacheKeyContext:
    """What a cache policy may look at besides the task's inputs."""

    task_key: str
    """Stable id of the task (module.qualname)."""
    task_fn: Callable[..., Any]
    flow_run_id: uuid.UUID | None
    flow_parameters: dict[str, Any]
    task_run_id: uuid.UUID


# -- hashing ---------------------------------------------------------------------------
_TAGGED = (
    datetime.datetime,
    datetime.date,
    datetime.time,
    datetime.timedelta,
    uuid.UUID,
    decimal.Decimal,
    pathlib.PurePath,
    enum.Enum,
    BaseModel,
)


def _canonical(value: Any) -> Any:
    # Tag each converted value with its type, so that date(2024, 1, 1) and "2024-01-01"
    # (or a set and a list) do not share a cache key.
    tag = f"{type(value).__module__}.{type(value).__qualname__}"
    if isinstance(value, (set, frozenset)):
        return {"__type__": tag, "items": sorted(_encode(item) for item in value)}
    if isinstance(value, bytes):
        return {"__type__": tag, "hex": value.hex()}
    if isinstance(value, _TAGGED) or dataclasses.is_dataclass(value):
        return {"__type__": tag, "value": to_json_compatible(value)}
    raise TypeError(f"no canonical JSON form for {tag}")


def _encode(value: Any) -> str:
    return json.dumps(value, default=_canonical, sort_keys=True, separators=(",", ":"))


def _hash_or_raise(*objs: Any) -> str:
    try:
        data = b"json:" + _encode(objs).encode()
    except (TypeError, ValueError, RecursionError):
        import cloudpickle  # deferred: `import conveyor` must stay fast

        data = b"pickle:" + cloudpickle.dumps(objs)
    return hashlib.sha256(data).hexdigest()


def hash_objects(*objs: Any) -> str | None:
    """A stable hex digest of ``objs``, or None if they cannot be hashed.

    Values with a canonical JSON form (plain data, datetimes, UUIDs, sets, pydantic
    models, dataclasses, ...) hash the same in every process; other values hash their
    cloudpickle bytes.
    """
    try:
        return _hash_or_raise(*objs)
    # cloudpickle runs arbitrary __reduce__ code; whatever it raises means "not hashable".
    except Exception:  # noqa: BLE001
        return None


class _Unhashable(Exception):
    """Values a key must depend on cannot be hashed, so no key is safe to use."""


def _hash_mapping(what: str, values: dict[str, Any]) -> str:
    items = sorted(values.items())
    key = hash_objects(items)
    if key is None:
        bad = [name for name, value in items if hash_objects(value) is None]
        names = ", ".join(map(repr, bad)) or "(together)"
        raise _Unhashable(f"{what} {names} cannot be hashed")
    return key


def _warn_uncacheable(context: CacheKeyContext, exc: _Unhashable) -> None:
    logger.warning(
        "Caching is disabled for task run %s of %r: its %s.",
        context.task_run_id,
        context.task_key,
        exc,
    )


# -- policies --------------------------------------------------------------------------
class CachePolicy:
    """Computes a cache key from a task run's context and inputs; None means "no key"."""

    def compute_key(self, context: CacheKeyContext, inputs: dict[str, Any]) -> str | None:
        try:
            return self._key(context, inputs)
        except _Unhashable as exc:
            _warn_uncacheable(context, exc)
            return None

    def _key(self, context: CacheKeyContext, inputs: dict[str, Any]) -> str | None:
        """Like ``compute_key``, but raises ``_Unhashable`` for a compound to see."""
        if type(self).compute_key is CachePolicy.compute_key:
            raise NotImplementedError(f"{type(self).__name__} must implement compute_key")
        return self.compute_key(context, inputs)  # a user subclass that overrides it

    def __add__(self, other: CachePolicy) -> CachePolicy:
        if not isinstance(other, CachePolicy):
            return NotImplemented
        return CompoundCachePolicy((self, other)).simplify()

    def __sub__(self, name: str) -> CachePolicy:
        """Ignore the input ``name``; a no-op for policies that do not read inputs."""
        if not isinstance(name, str):
            return NotImplemented
        return self


@dataclass(frozen=True, init=False)
class CompoundCachePolicy(CachePolicy):
    policies: tuple[CachePolicy, ...]

    def __init__(self, policies: Sequence[CachePolicy]) -> None:
        flat: list[CachePolicy] = []
        for policy in policies:
            parts = policy.policies if isinstance(policy, CompoundCachePolicy) else (policy,)
            flat.extend(p for p in parts if not isinstance(p, NoCache) and p not in flat)
        object.__setattr__(self, "policies", tuple(flat))

    def simplify(self) -> CachePolicy:
        if not self.policies:
            return NONE
        return self.policies[0] if len(self.policies) == 1 else self

    def _key(self, context: CacheKeyContext, inputs: dict[str, Any]) -> str | None:
        keys = [k for p in self.policies if (k := p._key(context, inputs)) is not None]
        return hash_objects(*keys) if keys else None

    def __sub__(self, name: str) -> CachePolicy:
        if not isinstance(name, str):
            return NotImplemented
        return CompoundCachePolicy([p - name for p in self.policies]).simplify()


@dataclass(frozen=True)
class Inputs(CachePolicy):
    """The task's inputs, except the parameters named in ``exclude``."""

    exclude: Sequence[str] = ()

    def __post_init__(self) -> None:
        names = (self.exclude,) if isinstance(self.exclude, str) else self.exclude
        object.__setattr__(self, "exclude", tuple(sorted(set(names))))

    def _key(self, context: CacheKeyContext, inputs: dict[str, Any]) -> str | None:
        kept = {k: v for k, v in inputs.items() if k not in self.exclude}
        return _hash_mapping("input", kept)

    def __sub__(self, name: str) -> Inputs:
        if not isinstance(name, str):
            return NotImplemented
        return Inputs(exclude=(*self.exclude, name))


_source_keys: weakref.WeakKeyDictionary[Callable[..., Any], str | None]
_source_keys = weakref.WeakKeyDictionary()
_source_lock = threading.Lock()


def _const_fingerprint(const: Any) -> Any:
    # Walked rather than repr'd: a code object's repr holds its address, and a frozenset's
    # order changes with the hash seed.
    if isinstance(const, types.CodeType):
        return [const.co_code.hex(), [_const_fingerprint(c) for c in const.co_consts]]
    if isinstance(const, tuple):
        return [_const_fingerprint(c) for c in const]
    if isinstance(const, frozenset):
        return sorted(repr(c) for c in const)
    return repr(const)


def _code_fingerprint(code: types.CodeType) -> list[Any]:
    return [_const_fingerprint(code), list(code.co_names)]


def _source_key(fn: Callable[..., Any]) -> str | None:
    try:
        return hash_objects(inspect.getsource(fn))
    except (OSError, TypeError):  # defined in a REPL or exec(), or not a Python function
        pass
    code = getattr(inspect.unwrap(fn), "__code__", None)
    if code is None and not inspect.isroutine(fn):  # a callable object
        code = getattr(type(fn).__call__, "__code__", None)
    return hash_objects(_code_fingerprint(code)) if isinstance(code, types.CodeType) else None


@dataclass(frozen=True)
class TaskSource(CachePolicy):
    """The task function's source code, so that editing the task invalidates its cache."""

    def _key(self, context: CacheKeyContext, inputs: dict[str, Any]) -> str | None:
        fn = context.task_fn
        # getsource reads and tokenizes the file: once per function, not once per run.
        try:
            with _source_lock:
                return _source_keys[fn]
        except KeyError:
            key = _source_key(fn)
            with _source_lock:
                _source_keys[fn] = key
            return key
        except TypeError:  # not weak-referenceable or not hashable
            return _source_key(fn)


@dataclass(frozen=True)
class FlowParameters(CachePolicy):
    """The parameters of the flow run the task runs in."""

    def _key(self, context: CacheKeyContext, inputs: dict[str, Any]) -> str | None:
        return _hash_mapping("flow parameter", context.flow_parameters)


@dataclass(frozen=True)
class RunId(CachePolicy):
    """The flow run id (the task run id outside a flow): cache only within one run."""

    def _key(self, context: CacheKeyContext, inputs: dict[str, Any]) -> str | None:
        return (context.flow_run_id or context.task_run_id).hex


@dataclass(frozen=True)
class NoCache(CachePolicy):
    """Never cache. ``NONE + policy`` is ``policy``."""

    def _key(self, context: CacheKeyContext, inputs: dict[str, Any]) -> str | None:
        return None


@dataclass(frozen=True)
class CacheKeyFnPolicy(CachePolicy):
    """A user function ``fn(context, inputs) -> str | None``; its key is used as is."""

    cache_key_fn: Callable[[CacheKeyContext, dict[str, Any]], str | None]

    def _key(self, context: CacheKeyContext, inputs: dict[str, Any]) -> str | None:
        key = self.cache_key_fn(context, inputs)
        if key is not None and not isinstance(key, str):
            raise ConfigurationError(
                f"cache_key_fn of task {context.task_key!r} must return a str or None, "
                f"got {type(key).__name__}."
            )
        return key


INPUTS = Inputs()
TASK_SOURCE = TaskSource()
FLOW_PARAMETERS = FlowParameters()
RUN_ID = RunId()
NONE = NoCache()
DEFAULT = INPUTS + TASK_SOURCE + RUN_ID
