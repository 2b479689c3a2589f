"""A deployment's "Run" form, made from its parameter schema, and reading it back.

Each top-level property of the schema becomes one input: a number box for integers and
numbers, a checkbox for booleans, a list for enums, a text box for strings, and a JSON
box for anything else. What a person types is read back by type first (``n: "abc" is
not a whole number``), then the whole set is checked against the schema as the API
checks it, and every message is shown next to its field.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from conveyor.schemas.deployments import parameter_errors
from conveyor.server.ui.forms import Form, first


@dataclasses.dataclass
class Field:
    name: str
    kind: str  # integer, number, boolean, string, enum, json
    title: str
    description: str | None
    required: bool
    value: str  # as shown in the input
    options: list[str] = dataclasses.field(default_factory=list)
    error: str | None = None


def _kind(spec: dict[str, Any]) -> str:
    if "enum" in spec:
        return "enum"
    kind = spec.get("type")
    if isinstance(kind, list):  # e.g. ["integer", "null"]: the first that is not null
        kind = next((k for k in kind if k != "null"), None)
    return kind if kind in ("integer", "number", "boolean", "string") else "json"


def _shown(kind: str, value: Any) -> str:
    if value is None:
        return ""
    if kind in ("string", "enum") and isinstance(value, str):
        return value
    if kind == "boolean":
        return "true" if value else ""
    return json.dumps(value)


def fields(schema: dict[str, Any], defaults: dict[str, Any]) -> list[Field]:
    """The inputs, filled with the deployment's defaults (or the schema's)."""
    properties: dict[str, Any] = schema.get("properties") or {}
    required = set(schema.get("required") or ())
    out = []
    for name, spec in properties.items():
        spec = spec if isinstance(spec, dict) else {}
        kind = _kind(spec)
        value = defaults.get(name, spec.get("default"))
        out.append(
            Field(
                name=name,
                kind=kind,
                title=str(spec.get("title") or name),
                description=spec.get("description"),
                required=name in required and name not in defaults,
                value=_shown(kind, value),
                options=[str(o) for o in spec.get("enum", [])],
            )
        )
    return out


def _read(field: Field, text: str) -> tuple[Any, str | None]:
    """The value typed into ``field``, or why it cannot be one."""
    if field.kind == "boolean":
        return text == "true", None
    if field.kind in ("string", "enum"):
        return text, None
    try:
        value = json.loads(text)
    except ValueError:
        what = {"integer": "a whole number", "number": "a number"}.get(field.kind, "valid JSON")
        return None, f"{text!r} is not {what}"
    if field.kind == "integer" and (isinstance(value, bool) or not isinstance(value, int)):
        return None, f"{text!r} is not a whole number"
    if field.kind == "number" and (isinstance(value, bool) or not isinstance(value, int | float)):
        return None, f"{text!r} is not a number"
    return value, None


def _owner(where: str) -> str:
    """The top-level parameter a schema error's path starts with (``rows[0].id``: rows)."""
    return where.split(".")[0].split("[")[0]


@dataclasses.dataclass
class Submitted:
    fields: list[Field]
    parameters: dict[str, Any] | None  # None: something needs fixing
    problems: list[str]  # errors that belong to no one field


def read(schema: dict[str, Any], defaults: dict[str, Any], form: Form) -> Submitted:
    """The fields as submitted, each with its error, and the parameters when all are good.

    An empty box leaves the parameter to the deployment's default."""
    shown = fields(schema, defaults)
    parameters: dict[str, Any] = {}
    for field in shown:
        text = first(form, field.name).strip()
        if field.kind == "boolean":  # a checkbox: sent when ticked, absent when not
            field.value = "true" if text else ""
            parameters[field.name] = bool(text)
            continue
        field.value = text
        if text == "":
            if field.required:
                field.error = "is required"
            continue
        value, error = _read(field, text)
        if error is not None:
            field.error = error
        else:
            parameters[field.name] = value
    if any(f.error for f in shown):
        return Submitted(shown, None, [])
    by_name = {f.name: f for f in shown}
    problems: list[str] = []
    for where, message in parameter_errors(schema, {**defaults, **parameters}) if schema else []:
        owner = by_name.get(_owner(where))
        if owner is None:
            problems.append(f"{where}: {message}" if where else message)
        elif owner.error is None:
            owner.error = message if where == owner.name else f"{where}: {message}"
    if problems or any(f.error for f in shown):
        return Submitted(shown, None, problems)
    return Submitted(shown, parameters, [])
