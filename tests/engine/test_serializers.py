from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import pathlib
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel

from conveyor.engine import serializers
from conveyor.engine.serializers import (
    CloudpickleSerializer,
    JSONSerializer,
    PickleSerializer,
    Serializer,
    register_serializer,
    resolve_serializer,
)
from conveyor.exceptions import ConfigurationError, SerializationError

ALL = [PickleSerializer(), CloudpickleSerializer(), JSONSerializer()]


class Color(enum.Enum):
    RED = "red"


class Point(BaseModel):
    x: int
    when: datetime.date


@dataclasses.dataclass
class Box:
    size: int


def numbers() -> Iterator[int]:
    yield 1


@pytest.mark.parametrize("serializer", ALL, ids=lambda s: s.name)
def test_plain_values_round_trip(serializer: Serializer) -> None:
    value = {"a": [1, 2.5, None, True], "b": "ünïcode", "c": {"nested": []}}
    assert serializer.loads(serializer.dumps(value)) == value
    assert isinstance(serializer, Serializer)


def test_names() -> None:
    assert [s.name for s in ALL] == ["pickle", "cloudpickle", "json"]


def test_cloudpickle_handles_lambdas_and_pickle_does_not() -> None:
    def square(n: int) -> int:
        return n * n

    fn = CloudpickleSerializer().loads(CloudpickleSerializer().dumps(square))
    assert fn(4) == 16
    with pytest.raises(SerializationError, match="'pickle' serializer"):
        PickleSerializer().dumps(square)


def test_pickle_error_names_type_serializer_cause_and_fix() -> None:
    with pytest.raises(SerializationError) as info:
        PickleSerializer().dumps(numbers())
    assert str(info.value) == (
        "Could not serialize a result of type 'generator' with the 'pickle' serializer: "
        "cannot pickle 'generator' object. "
        "Use the cloudpickle serializer or return a serializable value."
    )
    assert isinstance(info.value.__cause__, TypeError)


def test_cloudpickle_error_for_a_lock() -> None:
    with pytest.raises(SerializationError, match=r"type '_thread.lock'.*'cloudpickle'"):
        CloudpickleSerializer().dumps(threading.Lock())


def test_json_rejects_non_json_values() -> None:
    with pytest.raises(SerializationError) as info:
        JSONSerializer().dumps({"x": object()})
    message = str(info.value)
    assert "type 'dict' with the 'json' serializer" in message
    assert "Object of type object is not JSON serializable" in message
    assert "cloudpickle" in message


def test_json_rejects_circular_values() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(SerializationError, match="Circular reference"):
        JSONSerializer().dumps(loop)


def test_json_turns_common_types_into_strings_and_lists() -> None:
    value = {
        "at": datetime.datetime(2024, 5, 1, 12, 30, tzinfo=datetime.timezone.utc),
        "day": datetime.date(2024, 5, 1),
        "id": uuid.UUID(int=1),
        "price": decimal.Decimal("1.10"),
        "path": pathlib.PurePosixPath("/data/x.csv"),
        "tags": {"b", "a"},
        "pair": (1, 2),
        "color": Color.RED,
        "wait": datetime.timedelta(minutes=1),
        "point": Point(x=1, when=datetime.date(2024, 1, 2)),
        "box": Box(size=3),
    }
    assert JSONSerializer().loads(JSONSerializer().dumps(value)) == {
        "at": "2024-05-01T12:30:00+00:00",
        "day": "2024-05-01",
        "id": "00000000-0000-0000-0000-000000000001",
        "price": "1.10",
        "path": "/data/x.csv",
        "tags": ["a", "b"],
        "pair": [1, 2],
        "color": "red",
        "wait": 60.0,
        "point": {"x": 1, "when": "2024-01-02"},
        "box": {"size": 3},
    }


def test_json_model_at_top_level() -> None:
    data = JSONSerializer().dumps(Point(x=2, when=datetime.date(2024, 1, 1)))
    assert JSONSerializer().loads(data) == {"x": 2, "when": "2024-01-01"}


@pytest.mark.parametrize("serializer", ALL, ids=lambda s: s.name)
def test_corrupt_bytes_fail_to_load(serializer: Serializer) -> None:
    with pytest.raises(SerializationError, match=f"with the '{serializer.name}' serializer"):
        serializer.loads(b"\x80\x05not really anything")


def test_pickle_referring_to_missing_code_fails_to_load() -> None:
    data = PickleSerializer().dumps(Box(size=1)).replace(b"test_serializers", b"gone_module_xyzq")
    with pytest.raises(SerializationError, match="gone_module_xyzq"):
        PickleSerializer().loads(data)


def test_resolve_by_name_default_and_instance() -> None:
    assert resolve_serializer(None) == CloudpickleSerializer()
    assert resolve_serializer(None, default="json") == JSONSerializer()
    assert resolve_serializer("pickle") == PickleSerializer()
    assert resolve_serializer(" JSON ") == JSONSerializer()
    custom = JSONSerializer()
    assert resolve_serializer(custom) is custom


def test_resolve_unknown_name() -> None:
    with pytest.raises(ConfigurationError) as info:
        resolve_serializer("yaml")
    assert str(info.value) == (
        "Unknown result serializer 'yaml'; use one of: cloudpickle, json, pickle."
    )


@pytest.mark.parametrize("bad", [42, object(), b"json", PickleSerializer])
def test_resolve_rejects_non_serializers(bad: Any) -> None:
    with pytest.raises(ConfigurationError):
        resolve_serializer(bad)


class Upper:
    """A custom serializer: anything with a name, dumps and loads."""

    name = "upper-text"

    def dumps(self, value: Any) -> bytes:
        return str(value).upper().encode()

    def loads(self, data: bytes) -> Any:
        return data.decode()


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep registrations from leaking into other tests."""
    monkeypatch.setattr(serializers, "_registry", dict(serializers._registry))


@pytest.mark.usefixtures("registry")
def test_custom_serializer_is_accepted_and_can_be_registered() -> None:
    custom = Upper()
    assert resolve_serializer(custom) is custom
    with pytest.raises(ConfigurationError):
        resolve_serializer("upper-text")
    register_serializer(custom)
    assert resolve_serializer("upper-text") is custom


@pytest.mark.usefixtures("registry")
def test_builtin_names_cannot_be_taken() -> None:
    impostor = Upper()
    impostor.name = "pickle"
    with pytest.raises(ConfigurationError, match="built in"):
        register_serializer(impostor)


def test_import_does_not_load_cloudpickle() -> None:
    code = (
        "import sys, conveyor.engine.serializers as s\n"
        "assert 'cloudpickle' not in sys.modules\n"
        "s.PickleSerializer().dumps(1)\n"
        "assert 'cloudpickle' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
