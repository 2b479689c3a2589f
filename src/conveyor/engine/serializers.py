"""Serializers: how a result becomes bytes in a result store, and how it comes back.

Three are built in, chosen by name: ``cloudpickle`` (the default: almost any Python
value, including lambdas and classes defined in ``__main__``), ``pickle`` (the standard
library; values must be importable by the reader) and ``json`` (readable by anything,
but lossy: see ``JSONSerializer``).
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import json
import pathlib
import pickle
import threading
import uuid
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel

from conveyor.exceptions import ConfigurationError, SerializationError


@runtime_checkable
class Serializer(Protocol):
    name: str
    """Recorded with every result, so a reader knows how to load it."""

    def dumps(self, value: Any) -> bytes: ...

    def loads(self, data: bytes) -> Any: ...


def _type_name(value: Any) -> str:
    cls = type(value)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def _dump_error(serializer: str, value: Any, exc: BaseException, hint: str) -> SerializationError:
    return SerializationError(
        f"Could not serialize a result of type {_type_name(value)!r} with the "
        f"{serializer!r} serializer: {exc}. {hint}"
    )


def _load_error(serializer: str, data: bytes, exc: BaseException) -> SerializationError:
    return SerializationError(
        f"Could not deserialize {len(data)} bytes with the {serializer!r} serializer: "
        f"{type(exc).__name__}: {exc}. The data may be corrupt, written by another "
        "serializer, or refer to code that is not importable here."
    )


class _BuiltinSerializer:
    """Stateless, so instances of one class are interchangeable (and compare equal)."""

    name: str

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self)

    def __hash__(self) -> int:
        return hash(type(self))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class PickleSerializer(_BuiltinSerializer):
    name = "pickle"

    def dumps(self, value: Any) -> bytes:
        try:
            return pickle.dumps(value)
        # Pickling runs arbitrary __reduce__ code, so any exception can come out of it.
        except Exception as exc:
            hint = "Use the cloudpickle serializer or return a serializable value."
            raise _dump_error(self.name, value, exc, hint) from exc

    def loads(self, data: bytes) -> Any:
        try:
            return pickle.loads(data)
        except Exception as exc:
            raise _load_error(self.name, data, exc) from exc


class CloudpickleSerializer(_BuiltinSerializer):
    name = "cloudpickle"

    def dumps(self, value: Any) -> bytes:
        import cloudpickle  # deferred: `import conveyor` must stay fast

        try:
            return bytes(cloudpickle.dumps(value))
        except Exception as exc:
            hint = "Return a serializable value (not a lock, open file, socket or generator)."
            raise _dump_error(self.name, value, exc, hint) from exc

    def loads(self, data: bytes) -> Any:
        # cloudpickle writes standard pickle streams; loading needs only the stdlib.
        try:
            return pickle.loads(data)
        except Exception as exc:
            raise _load_error(self.name, data, exc) from exc


def to_json_compatible(value: Any) -> Any:
    """Turn a common non-JSON value into JSON data; raise ``TypeError`` for anything else.

    Usable as ``json.dumps(..., default=to_json_compatible)``.
    """
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (uuid.UUID, decimal.Decimal, pathlib.PurePath)):
        # Decimal as a string keeps its exact digits, which a JSON float would not.
        return str(value)
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (set, frozenset)):
        try:
            return sorted(value)
        except TypeError:
            return list(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"Object of type {_type_name(value)} is not JSON serializable")


class JSONSerializer(_BuiltinSerializer):
    """JSON, readable by any tool; values come back as plain JSON data, not their types.

    On the way out, datetimes, dates and times become ISO 8601 strings, UUIDs, Decimals
    and paths become strings, timedeltas become seconds, enums their values, sets and
    tuples lists, dict keys strings, and pydantic models and dataclasses dicts.
    """

    name = "json"

    def dumps(self, value: Any) -> bytes:
        try:
            text = json.dumps(value, default=to_json_compatible, ensure_ascii=False)
        except (TypeError, ValueError, RecursionError) as exc:
            hint = "Use the cloudpickle serializer or return a JSON-serializable value."
            raise _dump_error(self.name, value, exc, hint) from exc
        return text.encode("utf-8")

    def loads(self, data: bytes) -> Any:
        try:
            return json.loads(data)
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
            raise _load_error(self.name, data, exc) from exc


_BUILTIN: dict[str, Serializer] = {
    s.name: s for s in (CloudpickleSerializer(), JSONSerializer(), PickleSerializer())
}
_registry: dict[str, Serializer] = dict(_BUILTIN)
_registry_lock = threading.Lock()


def register_serializer(serializer: Serializer) -> None:
    """Make a custom serializer resolvable by name, e.g. to read back its results."""
    if not isinstance(serializer, Serializer) or isinstance(serializer, type):
        raise ConfigurationError(f"Expected a serializer instance, got {serializer!r}.")
    if serializer.name in _BUILTIN and serializer != _BUILTIN[serializer.name]:
        raise ConfigurationError(
            f"The serializer name {serializer.name!r} is built in; choose another name."
        )
    with _registry_lock:
        _registry[serializer.name] = serializer


def resolve_serializer(value: str | Serializer | None, default: str = "cloudpickle") -> Serializer:
    """The serializer for a name or an instance; None means ``default``."""
    if value is None:
        value = default
    if isinstance(value, str):
        found = _registry.get(value.strip().lower()) or _registry.get(value)
        if found is None:
            names = ", ".join(sorted(_registry))
            raise ConfigurationError(f"Unknown result serializer {value!r}; use one of: {names}.")
        return found
    if isinstance(value, type):
        raise ConfigurationError(
            f"Pass a serializer instance, not the class: use {value.__name__}() "
            "or a name such as 'cloudpickle'."
        )
    if isinstance(value, Serializer) and isinstance(value.name, str):
        return value
    raise ConfigurationError(
        f"A result serializer must be a name or have `name`, `dumps` and `loads`; got {value!r}."
    )
