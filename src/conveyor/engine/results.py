"""Result stores: persisted task and flow results, addressed by key under a storage URL.

Each record is self-describing, so a ``ResultRef`` alone is enough to read it back: a
one-line JSON header (``serializer``, ``expiration``, ``created``), a newline, then the
serialized payload. Storage is a local folder or any fsspec URL (``memory://``,
``s3://``, ...); fsspec is imported only when a URL store is first used.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import posixpath
import string
import threading
import uuid
from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

from conveyor.engine.serializers import Serializer, resolve_serializer
from conveyor.exceptions import ConfigurationError, ResultStorageError, SerializationError
from conveyor.schemas.results import ResultRef
from conveyor.schemas.states import register_result_loader
from conveyor.settings import Settings

logger = logging.getLogger("conveyor.results")


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _aware(moment: datetime.datetime) -> datetime.datetime:
    # A naive datetime means local time, as everywhere else in Python.
    return moment.astimezone(datetime.timezone.utc)


def _normalize_storage(storage: str) -> str:
    if not storage:
        raise ConfigurationError("Result storage must be a folder path or an fsspec URL.")
    if "://" in storage:
        return storage
    # Absolute, so a ref read by another process (another cwd) points at the same place.
    return os.path.abspath(os.path.expanduser(storage))


def _validate_key(key: str) -> str:
    segments = key.replace("\\", "/").split("/")
    if (
        not key
        or PurePosixPath(key).is_absolute()
        or PureWindowsPath(key).drive
        or PureWindowsPath(key).is_absolute()
        or ".." in segments
        or segments[-1] in ("", ".")
    ):
        raise ConfigurationError(
            f"Invalid result key {key!r}: use a relative name with '/' between folders "
            "and no '..' segments."
        )
    return key


class _LocalBackend:
    def __init__(self, root: str) -> None:
        self.root = root

    def _path(self, key: str) -> str:
        return os.path.join(self.root, *key.split("/"))

    def read(self, key: str) -> bytes:
        with open(self._path(key), "rb") as f:
            return f.read()

    def write(self, key: str, data: bytes) -> None:
        path = self._path(key)
        folder, name = os.path.split(path)
        os.makedirs(folder, exist_ok=True)
        # A unique temp name in the same folder, then an atomic rename: readers in any
        # process see the old record or the new one, never half of one. Opened with "x"
        # rather than mkstemp so the file gets the umask's permissions, not 0600.
        tmp = os.path.join(folder, f".{name}.{uuid.uuid4().hex}.tmp")
        try:
            with open(tmp, "xb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def exists(self, key: str) -> bool:
        return os.path.isfile(self._path(key))


class _FsspecBackend:
    def __init__(self, fs: Any, root: str) -> None:
        self.fs = fs
        self.root = root

    def _path(self, key: str) -> str:
        return posixpath.join(self.root, key)

    def read(self, key: str) -> bytes:
        return bytes(self.fs.cat_file(self._path(key)))

    def write(self, key: str, data: bytes) -> None:
        path = self._path(key)
        try:
            self.fs.pipe_file(path, data)
        except FileNotFoundError:
            # Object stores have no folders; make them only where the filesystem needs them,
            # which saves a round trip per write on S3 and friends.
            self.fs.makedirs(posixpath.dirname(path), exist_ok=True)
            self.fs.pipe_file(path, data)

    def exists(self, key: str) -> bool:
        return bool(self.fs.exists(self._path(key)))


def _open_backend(storage: str) -> _LocalBackend | _FsspecBackend:
    if "://" not in storage:
        return _LocalBackend(storage)
    import fsspec.core  # deferred: it costs ~70 ms, and local folders do not need it
    from fsspec.implementations.local import LocalFileSystem

    try:
        fs, root = fsspec.core.url_to_fs(storage)
    except (ImportError, ValueError) as exc:
        raise ConfigurationError(f"Cannot open result storage {storage!r}: {exc}") from exc
    if isinstance(fs, LocalFileSystem):
        return _LocalBackend(root)
    return _FsspecBackend(fs, root)


class _MissingResult(ResultStorageError):
    pass


class ResultStore:
    """Writes and reads results under one storage location with one serializer.

    Safe to share between threads, and between processes writing the same storage.
    """

    def __init__(self, storage: str, serializer: Serializer) -> None:
        self.storage = _normalize_storage(storage)
        self.serializer = serializer
        self._backend: _LocalBackend | _FsspecBackend | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ResultStore({self.storage!r}, {self.serializer!r})"

    def __reduce__(self) -> tuple[type[ResultStore], tuple[str, Serializer]]:
        # Task runners ship stores to other processes; the lock and open filesystem stay.
        return (ResultStore, (self.storage, self.serializer))

    def _get_backend(self) -> _LocalBackend | _FsspecBackend:
        with self._lock:
            if self._backend is None:
                self._backend = _open_backend(self.storage)
            return self._backend

    def write(
        self, key: str, value: Any, *, expiration: datetime.datetime | None = None
    ) -> ResultRef:
        _validate_key(key)
        header = {
            "serializer": self.serializer.name,
            "expiration": _aware(expiration).isoformat() if expiration is not None else None,
            "created": _utcnow().isoformat(),
        }
        payload = self.serializer.dumps(value)  # SerializationError before touching storage
        record = json.dumps(header).encode() + b"\n" + payload
        try:
            self._get_backend().write(key, record)
        except OSError as exc:
            raise ResultStorageError(
                f"Could not write result {key!r} to {self.storage!r}: {exc}"
            ) from exc
        return ResultRef(storage=self.storage, key=key, serializer=self.serializer.name)

    def _read_record(self, key: str) -> tuple[dict[str, Any], bytes]:
        try:
            record = self._get_backend().read(key)
        except FileNotFoundError as exc:
            raise _MissingResult(f"No result {key!r} in {self.storage!r}.") from exc
        except OSError as exc:
            raise ResultStorageError(
                f"Could not read result {key!r} from {self.storage!r}: {exc}"
            ) from exc
        head, sep, payload = record.partition(b"\n")
        try:
            header = json.loads(head) if sep else None
        except ValueError:
            header = None
        if not isinstance(header, dict) or not isinstance(header.get("serializer"), str):
            raise ResultStorageError(
                f"Result {key!r} in {self.storage!r} is not a Conveyor result record."
            )
        return header, payload

    def _decode(self, key: str, header: dict[str, Any], payload: bytes) -> Any:
        # The record names its own serializer; trust it over this store's setting.
        name = header["serializer"]
        try:
            serializer = self.serializer if name == self.serializer.name else None
            return (serializer or resolve_serializer(name)).loads(payload)
        except (ConfigurationError, SerializationError) as exc:
            raise ResultStorageError(
                f"Could not read result {key!r} from {self.storage!r}: {exc}"
            ) from exc

    def _expiration(self, key: str, header: dict[str, Any]) -> datetime.datetime:
        value = header.get("expiration")
        if value is None:
            return datetime.datetime.max.replace(tzinfo=datetime.timezone.utc)
        try:
            return _aware(datetime.datetime.fromisoformat(value))
        except (TypeError, ValueError) as exc:
            raise ResultStorageError(
                f"Result {key!r} in {self.storage!r} has a malformed expiration {value!r}."
            ) from exc

    def read(self, key: str) -> Any:
        """The value stored at ``key``, whether or not its cache expiration has passed."""
        _validate_key(key)
        header, payload = self._read_record(key)
        return self._decode(key, header, payload)

    def read_cached(
        self, key: str, now: datetime.datetime | None = None
    ) -> tuple[bool, Any, ResultRef | None]:
        """``(hit, value, ref)``; a missing, expired or unreadable record is a miss."""
        _validate_key(key)
        try:
            header, payload = self._read_record(key)
            if self._expiration(key, header) <= _aware(now or _utcnow()):
                return False, None, None
            value = self._decode(key, header, payload)
        except _MissingResult:
            return False, None, None
        except ResultStorageError as exc:
            logger.warning("Ignoring an unreadable cached result: %s", exc)
            return False, None, None
        ref = ResultRef(storage=self.storage, key=key, serializer=header["serializer"])
        return True, value, ref

    def exists(self, key: str) -> bool:
        _validate_key(key)
        try:
            return self._get_backend().exists(key)
        except OSError as exc:
            raise ResultStorageError(f"Could not reach {self.storage!r}: {exc}") from exc


_stores: dict[tuple[str, str], ResultStore] = {}
_stores_lock = threading.Lock()


def _memoized_store(storage: str, serializer: Serializer) -> ResultStore:
    key = (_normalize_storage(storage), serializer.name)
    with _stores_lock:
        store = _stores.get(key)
        if store is None:
            store = _stores[key] = ResultStore(storage, serializer)
        return store


def get_result_store(
    storage: str | None, serializer: str | Serializer | None, settings: Settings
) -> ResultStore:
    """The shared store for a storage and serializer, defaulting to the settings'."""
    resolved = resolve_serializer(
        serializer if serializer is not None else settings.result_serializer
    )
    return _memoized_store(storage or settings.default_result_storage, resolved)


def load_result(ref: ResultRef) -> Any:
    """Read a persisted result back from its reference."""
    with _stores_lock:
        store = _stores.get((_normalize_storage(ref.storage), ref.serializer))
    if store is None:
        store = _memoized_store(ref.storage, resolve_serializer(ref.serializer))
    return store.read(ref.key)


register_result_loader(load_result)


_KEY_FIELDS = ("task_name", "task_run_id", "flow_run_id", "flow_name")
_AVAILABLE = "{parameters[name]} or {name} for a parameter, " + ", ".join(
    f"{{{name}}}" for name in _KEY_FIELDS
)


class _KeyFormatter(string.Formatter):
    def __init__(self, template: str) -> None:
        self.template = template

    def _missing(self, field: str, why: str) -> ConfigurationError:
        return ConfigurationError(
            f"The result storage key {self.template!r} uses {{{field}}}, {why}. "
            f"Available: {_AVAILABLE}."
        )

    def get_field(self, field_name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        try:
            obj, first = super().get_field(field_name, args, kwargs)
        except (KeyError, IndexError, AttributeError) as exc:
            raise self._missing(
                field_name, "which is neither a parameter nor a field of this task run"
            ) from exc
        if obj is None and first in _KEY_FIELDS:
            raise self._missing(field_name, "which is not known outside of a flow run")
        return obj, first


def render_storage_key(
    template: str,
    parameters: dict[str, Any],
    *,
    task_name: str,
    task_run_id: uuid.UUID,
    flow_run_id: uuid.UUID | None,
    flow_name: str | None,
) -> str:
    """Fill a ``str.format`` template such as ``"{flow_name}/{parameters[day]}.pkl"``.

    A bare ``{x}`` names the parameter ``x``, except for the built-in fields, which win.
    """
    fields: dict[str, Any] = {
        **parameters,
        "parameters": parameters,
        "task_name": task_name,
        "task_run_id": task_run_id,
        "flow_run_id": flow_run_id,
        "flow_name": flow_name,
    }
    try:
        return _KeyFormatter(template).vformat(template, (), fields)
    except ConfigurationError:
        raise
    except ValueError as exc:  # a malformed template, such as an unclosed brace
        raise ConfigurationError(
            f"The result storage key {template!r} is not a valid template: {exc}"
        ) from exc
