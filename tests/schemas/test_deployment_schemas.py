"""Deployment bodies: what they refuse on their own, and how parameter errors are named."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from conveyor.schemas.deployments import DeploymentCreate, parameter_errors

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "n": {"type": "integer"},
        "rows": {"type": "array", "items": {"$ref": "#/$defs/Row"}},
    },
    "$defs": {"Row": {"type": "object", "required": ["id"]}},
    "required": ["n"],
    "additionalProperties": False,
}


def test_parameters_that_fit_have_no_errors() -> None:
    assert parameter_errors(SCHEMA, {"n": 1, "rows": [{"id": 1}]}) == []
    assert parameter_errors({}, {"anything": [1, "x"]}) == []


def test_each_bad_parameter_is_named_by_its_path() -> None:
    errors = parameter_errors(SCHEMA, {"rows": [{"id": 1}, {}], "n": "one", "extra": 1})
    assert errors == [
        ("", "Additional properties are not allowed ('extra' was unexpected)"),
        ("n", "'one' is not of type 'integer'"),
        ("rows[1].id", "is required"),
    ]
    assert parameter_errors(SCHEMA, {}) == [("n", "is required")]


def _create(**fields: Any) -> DeploymentCreate:
    return DeploymentCreate.model_validate(
        {"flow_name": "etl", "name": "daily", "entrypoint": "flows.py:etl", **fields}
    )


def test_a_parameter_schema_must_be_a_json_schema() -> None:
    with pytest.raises(ValidationError, match=r"parameter_schema\n.*not a valid JSON schema"):
        _create(parameter_schema={"type": "integr"})


def test_a_queue_needs_a_pool() -> None:
    with pytest.raises(ValidationError, match="work_queue_name: a queue needs a work_pool_name"):
        _create(work_queue_name="fast")
    assert _create(work_pool_name="local", work_queue_name="fast").work_queue_name == "fast"


def test_a_deployment_name_cannot_hold_a_slash() -> None:
    with pytest.raises(ValidationError, match="name"):
        _create(name="a/b")
