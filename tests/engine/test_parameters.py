"""Flow parameters: coerced from type hints, rejected with every bad field named."""

from __future__ import annotations

import datetime
import enum
from typing import Any, Literal

import pytest
from pydantic import BaseModel

from conveyor import Flow, flow
from conveyor.client import MemoryTransport
from conveyor.exceptions import ConveyorError, ParameterValidationError


def call(fn: Flow[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call a flow with arguments its annotations do not allow: the point of these tests."""
    return fn(*args, **kwargs)


class Point(BaseModel):
    x: int
    y: int = 0


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@flow
def typed(n: int, point: Point, ratio: float = 0.5, labels: list[str] | None = None) -> Any:
    return n, point, ratio, labels


# -- coercion --------------------------------------------------------------------------
def test_strings_are_coerced_to_the_annotated_type() -> None:
    n, point, ratio, labels = call(typed, "5", {"x": "3"}, ratio="0.25", labels=["a"])
    assert n == 5 and type(n) is int
    assert point == Point(x=3, y=0)
    assert isinstance(point, Point)
    assert ratio == 0.25
    assert labels == ["a"]


def test_defaults_fill_in_and_are_not_coerced_away() -> None:
    assert typed(1, Point(x=1)) == (1, Point(x=1), 0.5, None)


def test_model_instances_pass_through_unchanged() -> None:
    point = Point(x=1, y=2)
    _, got, _, _ = typed(1, point)
    assert got == point


def test_more_types_are_coerced() -> None:
    @flow
    def many(
        day: datetime.date,
        at: datetime.datetime,
        color: Color,
        mode: Literal["fast", "slow"],
        counts: dict[str, int],
        pair: tuple[int, int],
    ) -> Any:
        return day, at, color, mode, counts, pair

    day, at, color, mode, counts, pair = call(
        many, "2024-02-29", "2024-02-29T12:00:00+00:00", "blue", "fast", {"a": "1"}, ["1", "2"]
    )
    assert day == datetime.date(2024, 2, 29)
    assert at == datetime.datetime(2024, 2, 29, 12, tzinfo=datetime.timezone.utc)
    assert color is Color.BLUE
    assert mode == "fast"
    assert counts == {"a": 1}
    assert pair == (1, 2)


def test_unannotated_parameters_are_left_alone() -> None:
    @flow
    def loose(value, other=None):  # type: ignore[no-untyped-def]
        return value, other

    marker = object()
    assert loose(marker) == (marker, None)


def test_coerced_parameters_are_recorded_on_the_flow_run(transport: MemoryTransport) -> None:
    @flow
    def recorded(n: int, tags: list[str]) -> None:
        return None

    call(recorded, "7", ["a"])
    (flow_run,) = transport.flow_runs.values()
    assert flow_run.parameters == {"n": 7, "tags": ["a"]}


def test_var_positional_and_keyword_parameters() -> None:
    @flow
    def variadic(first: int, *rest: int, **options: str) -> Any:
        return first, rest, options

    assert call(variadic, "1", 2, 3, mode="x") == (1, (2, 3), {"mode": "x"})


# -- rejection -------------------------------------------------------------------------
def test_a_bad_call_names_every_bad_field(transport: MemoryTransport) -> None:
    with pytest.raises(ParameterValidationError) as info:
        call(typed, "five", {"x": "three", "y": []}, ratio="half")
    error = info.value
    fields = [field for field, _ in error.errors]
    assert fields == ["n", "point.x", "point.y", "ratio"]
    message = str(error)
    assert "flow 'typed'" in message
    for field in fields:
        assert f"{field}:" in message
    assert "'five'" in message  # the bad input is quoted back
    assert error.target == "flow 'typed'"


def test_no_flow_run_starts_on_bad_parameters(transport: MemoryTransport) -> None:
    ran: list[int] = []

    @flow
    def guarded(n: int) -> None:
        ran.append(n)

    with pytest.raises(ParameterValidationError):
        call(guarded, "not a number")
    assert ran == []
    assert transport.flow_runs == {}
    assert transport.flow_run_states == {}


def test_missing_required_model_fields_are_named() -> None:
    with pytest.raises(ParameterValidationError, match=r"point\.x: Field required"):
        call(typed, 1, {})


def test_parameter_validation_error_is_a_type_error_and_a_conveyor_error() -> None:
    assert issubclass(ParameterValidationError, TypeError)
    assert issubclass(ParameterValidationError, ConveyorError)


def test_validate_parameters_false_skips_validation() -> None:
    @flow(validate_parameters=False)
    def unchecked(n: int) -> Any:
        return n

    assert call(unchecked, "5") == "5"
    assert call(unchecked.with_options(validate_parameters=True), "5") == 5


# -- calls that do not fit the signature -------------------------------------------------
def test_missing_arguments_are_all_named(transport: MemoryTransport) -> None:
    @flow
    def needs(a: int, b: int, c: int = 0) -> None:
        return None

    with pytest.raises(ParameterValidationError) as info:
        call(needs)
    assert [field for field, _ in info.value.errors] == ["a", "b"]
    assert "missing" in str(info.value)
    assert transport.flow_runs == {}


def test_unexpected_keyword_arguments_are_named(transport: MemoryTransport) -> None:
    @flow
    def needs(a: int) -> None:
        return None

    with pytest.raises(ParameterValidationError, match="unexpected") as info:
        call(needs, 1, colour="red")
    assert [field for field, _ in info.value.errors] == ["colour"]
    assert transport.flow_runs == {}


def test_too_many_positional_arguments_is_a_clear_error() -> None:
    @flow
    def needs(a: int) -> None:
        return None

    with pytest.raises(ParameterValidationError, match="positional"):
        call(needs, 1, 2)


def test_an_argument_given_twice_is_a_clear_error() -> None:
    @flow
    def needs(a: int) -> None:
        return None

    with pytest.raises(ParameterValidationError, match="multiple values"):
        call(needs, 1, a=2)


def test_validation_is_skipped_but_binding_is_not_when_disabled() -> None:
    @flow(validate_parameters=False)
    def needs(a: int) -> None:
        return None

    with pytest.raises(ParameterValidationError, match="a: missing"):
        call(needs)
