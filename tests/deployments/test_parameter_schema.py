"""The JSON schema of a flow's parameters, which the server validates run parameters with."""

from __future__ import annotations

import datetime
from typing import Any, Protocol

import pytest
from pydantic import BaseModel

from conveyor import flow
from conveyor.deployments.entrypoints import parameter_schema


class Item(BaseModel):
    name: str
    quantity: int = 1


class Opaque:
    """A type pydantic has no JSON form for."""


class Greeter(Protocol):
    """A type pydantic cannot even validate."""

    def greet(self) -> str: ...


@flow
def order(  # type: ignore[no-untyped-def]
    customer: int,
    note: str,
    items: list[Item],
    priority: str = "normal",
    discount: float | None = None,
    anything=3,  # unannotated on purpose
    *extra: int,
    **options: Any,
) -> None: ...


EXPECTED = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$defs": {
        "Item": {
            "properties": {
                "name": {"title": "Name", "type": "string"},
                "quantity": {"default": 1, "title": "Quantity", "type": "integer"},
            },
            "required": ["name"],
            "title": "Item",
            "type": "object",
        }
    },
    "properties": {
        "customer": {"title": "Customer", "type": "integer"},
        "note": {"title": "Note", "type": "string"},
        "items": {"items": {"$ref": "#/$defs/Item"}, "title": "Items", "type": "array"},
        "priority": {"default": "normal", "title": "Priority", "type": "string"},
        "discount": {
            "anyOf": [{"type": "number"}, {"type": "null"}],
            "default": None,
            "title": "Discount",
        },
        "anything": {"default": 3, "title": "Anything"},
    },
    "required": ["customer", "note", "items"],
    "title": "order",
    "type": "object",
}


def test_the_schema_of_a_flow() -> None:
    assert parameter_schema(order) == EXPECTED


def test_it_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = parameter_schema(order)
    validator = jsonschema.Draft202012Validator(schema)
    validator.check_schema(schema)
    assert validator.is_valid({"customer": 1, "note": "n", "items": [{"name": "a"}]})
    assert validator.is_valid({"customer": 1, "note": "n", "items": [], "anything": [1]})
    assert not validator.is_valid({"customer": "x", "note": "n", "items": []})
    assert not validator.is_valid({"customer": 1, "note": "n", "items": [{"quantity": 2}]})
    assert not validator.is_valid({"note": "n", "items": []})


def test_extra_parameters_are_refused_unless_the_flow_takes_kwargs() -> None:
    @flow
    def strict(x: int) -> None: ...

    assert parameter_schema(strict)["additionalProperties"] is False
    assert "additionalProperties" not in parameter_schema(order)


def test_defaults_and_types_without_a_json_form_are_left_out() -> None:
    @flow
    def odd(
        when: datetime.date = datetime.date(2024, 5, 1),
        thing: Opaque = Opaque(),  # noqa: B008
        fn: Any = print,
        greeter: Greeter | None = None,
    ) -> None: ...

    properties = parameter_schema(odd)["properties"]
    assert properties["when"] == {
        "default": "2024-05-01",
        "format": "date",
        "title": "When",
        "type": "string",
    }
    assert properties["thing"] == {"title": "Thing"}
    assert properties["fn"] == {"title": "Fn"}
    assert properties["greeter"] == {"default": None, "title": "Greeter"}
    assert "required" not in parameter_schema(odd)


def test_parameters_named_like_model_attributes() -> None:
    @flow
    def names(json: bool, _private: int = 0, model_config: str = "") -> None: ...

    schema = parameter_schema(names)
    assert list(schema["properties"]) == ["json", "_private", "model_config"]
    assert schema["required"] == ["json"]


def test_an_unresolvable_hint_costs_only_its_parameter() -> None:
    def fn(x: int, y: NotDefinedAnywhere) -> None: ...  # type: ignore[name-defined]  # noqa: F821

    schema = parameter_schema(flow(fn))
    assert schema["properties"] == {"x": {"title": "X", "type": "integer"}, "y": {"title": "Y"}}


def test_an_async_flow_and_a_flow_without_parameters() -> None:
    @flow(name="tidy up")
    async def tidy(days: int = 7) -> None: ...

    @flow
    def nothing() -> None: ...

    assert parameter_schema(tidy)["properties"] == {
        "days": {"default": 7, "title": "Days", "type": "integer"}
    }
    assert parameter_schema(tidy)["title"] == "tidy up"
    assert parameter_schema(nothing) == {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "additionalProperties": False,
        "properties": {},
        "title": "nothing",
        "type": "object",
    }
