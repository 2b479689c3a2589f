"""Work pool types and base job templates.

A base job template is a job configuration with ``{{ name }}`` placeholders plus a JSON
schema (``variables``) declaring each name, its type and its default. For one run, a
worker resolves the job variables (pool defaults < deployment < run, validated against
the schema) and renders the job configuration with them.

jsonschema is imported inside the functions that use it, so importing this module costs
no more than pydantic does.
"""

from __future__ import annotations

import copy
import enum
import json
import re
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import ConfigDict, field_validator, model_validator

from conveyor.exceptions import JobVariablesError
from conveyor.schemas.base import ConveyorModel

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError
    from jsonschema.protocols import Validator

__all__ = [
    "BaseJobTemplate",
    "JobVariablesError",
    "WorkPoolType",
    "default_job_template",
    "render_job_configuration",
    "resolve_job_variables",
]

# Only an identifier in double braces is a placeholder; any other text in braces (a Go
# template in a docker command, say) is left alone.
_PLACEHOLDER = re.compile(r"\{\{ *([A-Za-z_][A-Za-z0-9_]*) *\}\}")

# Keywords whose values are instances, not schemas: a "$ref" inside them is data.
_DATA_KEYWORDS = frozenset({"default", "const", "enum", "examples"})

_GOOD_VARIABLES: set[str] = set()
_GOOD_VARIABLES_MAX = 256


class WorkPoolType(str, enum.Enum):
    PROCESS = "process"
    DOCKER = "docker"
    KUBERNETES = "kubernetes"


class BaseJobTemplate(ConveyorModel):
    """A job configuration with ``{{ name }}`` placeholders and the JSON schema of the names.

    Construction checks that ``variables`` is a Draft 2020-12 schema of an object whose
    declared defaults fit it, and that every placeholder names one of its properties.
    """

    model_config = ConfigDict(extra="forbid")

    job_configuration: dict[str, Any]
    variables: dict[str, Any]

    @field_validator("variables")
    @classmethod
    def _check_variables(cls, variables: dict[str, Any]) -> dict[str, Any]:
        # Checking a schema costs tens of milliseconds, and a pool's template is validated
        # again for every run claimed from it (by the server, then by the worker): a
        # schema that passed is remembered.
        key = json.dumps(variables, sort_keys=True, default=repr)
        if key not in _GOOD_VARIABLES:
            _check_variables_schema(variables)
            if len(_GOOD_VARIABLES) >= _GOOD_VARIABLES_MAX:
                _GOOD_VARIABLES.clear()
            _GOOD_VARIABLES.add(key)
        return variables

    @model_validator(mode="after")
    def _check_placeholders(self) -> BaseJobTemplate:
        declared = self.variables.get("properties", {})
        problems = _placeholder_problems(self.job_configuration, ["job_configuration"], declared)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def defaults(self) -> dict[str, Any]:
        """The default of every variable that declares one (a fresh copy)."""
        return copy.deepcopy(_defaults(self.variables))


def _defaults(variables: dict[str, Any]) -> dict[str, Any]:
    return {
        name: prop["default"]
        for name, prop in variables.get("properties", {}).items()
        if isinstance(prop, dict) and "default" in prop  # `true` is a schema too
    }


def _check_variables_schema(variables: dict[str, Any]) -> None:
    """Raise ValueError unless ``variables`` is a usable schema of job variables."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError
    from referencing import Registry
    from referencing.exceptions import Unresolvable
    from referencing.jsonschema import DRAFT202012

    try:
        Draft202012Validator.check_schema(variables)
    except SchemaError as exc:
        where = _dotted(["variables", *exc.absolute_path])
        raise ValueError(f"{where} is not a valid JSON schema: {exc.message}") from None
    if variables.get("type") != "object":
        raise ValueError('variables must be the schema of an object ("type": "object")')
    properties = variables.get("properties", {})
    for name in variables.get("required", []):
        if name not in properties:
            raise ValueError(f"variables.required: {name!r} is not in variables.properties")
    # An unresolvable $ref would otherwise fail every run that reaches it, not the template.
    resolver = Registry().with_resource("", DRAFT202012.create_resource(variables)).resolver()
    for path, ref in _refs(variables, ["variables"]):
        try:
            resolver.lookup(ref)
        except Unresolvable:
            raise ValueError(
                f"{_dotted(path)}: {ref!r} does not resolve within variables"
                " (references to other documents are not fetched)"
            ) from None
    # A bad default would otherwise surface only when the first run is launched.
    problems = []
    validator = _validator({**variables, "required": []})
    for error in validator.iter_errors(_defaults(variables)):
        name, *rest = error.absolute_path or ["?"]
        where = _dotted(["variables", "properties", name, "default", *rest])
        problems.append(f"{where}: {error.message}")
    if problems:
        raise ValueError("; ".join(problems))


def _validator(schema: dict[str, Any]) -> Validator:
    from jsonschema import Draft202012Validator
    from referencing import Registry

    # An empty registry: jsonschema's default would fetch any URL a schema's $ref names,
    # and templates come from API clients.
    return Draft202012Validator(schema, registry=Registry())


def _refs(schema: Any, path: list[str | int]) -> Iterator[tuple[list[str | int], str]]:
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key == "$ref" and isinstance(value, str):
                yield [*path, key], value
            elif key not in _DATA_KEYWORDS:
                yield from _refs(value, [*path, key])
    elif isinstance(schema, list):
        for index, item in enumerate(schema):
            yield from _refs(item, [*path, index])


def _placeholder_problems(value: Any, path: list[str | int], declared: dict[str, Any]) -> list[str]:
    if isinstance(value, str):
        return [
            f"{_dotted(path)}: placeholder {match[0]!r} is not a property of variables"
            f" (declared: {', '.join(declared) or 'none'})"
            for match in _PLACEHOLDER.finditer(value)
            if match[1] not in declared
        ]
    problems = []
    if isinstance(value, dict):
        for key, item in value.items():
            if _PLACEHOLDER.search(str(key)):
                # Keys are never rendered; say so rather than ship the braces to the infrastructure.
                problems.append(f"{_dotted(path)}: key {key!r} has a placeholder; only values may")
            problems += _placeholder_problems(item, [*path, str(key)], declared)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            problems += _placeholder_problems(item, [*path, index], declared)
    return problems


def resolve_job_variables(template: BaseJobTemplate, *overrides: dict[str, Any]) -> dict[str, Any]:
    """The job variables for one run: the template's defaults, then each override in order.

    A later layer replaces a variable's value, except that when both values are objects
    (``env``, ``labels``) they merge key by key, the later layer winning for a key both set.
    The merge is one level deep. The result is validated against ``template.variables``;
    unknown names, wrong types and missing required variables raise ``JobVariablesError``
    listing every bad field.
    """
    declared = template.variables.get("properties", {})
    values = template.defaults()
    errors: list[tuple[str, str]] = []
    for layer in overrides:
        for name, value in layer.items():
            if name not in declared:
                known = ", ".join(declared) or "none"
                errors.append((name, f"is not a variable of this job template (known: {known})"))
            elif isinstance(value, dict) and isinstance(values.get(name), dict):
                values[name] = {**values[name], **copy.deepcopy(value)}
            else:
                values[name] = copy.deepcopy(value)
    for error in _validator(template.variables).iter_errors(values):
        errors += _field_errors(error)
    if errors:
        raise JobVariablesError(list(dict.fromkeys(errors)))
    return values


def _field_errors(error: ValidationError) -> list[tuple[str, str]]:
    path = list(error.absolute_path)
    missing = error.validator_value if error.validator == "required" else None
    if isinstance(missing, list) and isinstance(error.instance, dict):
        # jsonschema reports a missing property at its parent; name the property itself.
        return [
            (_dotted([*path, name]), "is required")
            for name in missing
            if name not in error.instance
        ]
    return [(_dotted(path), error.message)]


def render_job_configuration(
    template: BaseJobTemplate, variables: dict[str, Any]
) -> dict[str, Any]:
    """The job configuration with every placeholder replaced; the template is not changed.

    A string that is exactly one placeholder becomes the variable's value as it is (an
    object stays an object, ``None`` stays ``None``); a placeholder inside a longer string
    is replaced by ``str(value)``, ``None`` by ``""``. A variable missing from ``variables``
    counts as ``None``. Values are not rendered again, so a value containing braces is kept.
    """
    rendered: dict[str, Any] = _render(template.job_configuration, variables)
    return rendered


def _render(value: Any, variables: dict[str, Any]) -> Any:
    if isinstance(value, str):
        whole = _PLACEHOLDER.fullmatch(value)
        if whole:
            return copy.deepcopy(variables.get(whole[1]))
        return _PLACEHOLDER.sub(lambda match: _text(variables.get(match[1])), value)
    if isinstance(value, dict):
        return {key: _render(item, variables) for key, item in value.items()}
    if isinstance(value, list):
        return [_render(item, variables) for item in value]
    return value


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _dotted(path: Sequence[str | int]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else part
    return text


def default_job_template(pool_type: WorkPoolType | str) -> BaseJobTemplate:
    """A fresh copy of the base job template a new pool of this type starts with."""
    configuration, variables = _DEFAULTS[WorkPoolType(pool_type)]
    return BaseJobTemplate(
        job_configuration=copy.deepcopy(configuration), variables=copy.deepcopy(variables)
    )


def _string_map(title: str, description: str) -> dict[str, Any]:
    return {
        "title": title,
        "description": description,
        "type": "object",
        "additionalProperties": {"type": "string"},
        "default": {},
    }


def _optional_string(title: str, description: str) -> dict[str, Any]:
    return {"title": title, "description": description, "type": ["string", "null"], "default": None}


_COMMON_VARIABLES: dict[str, Any] = {
    "command": _optional_string(
        "Command", "The command that starts the flow run; unset, the worker's own command."
    ),
    "env": _string_map("Environment variables", "Set in the job's environment."),
    "labels": _string_map("Labels", "Attached to the job, for finding it in the infrastructure."),
    "name": _optional_string("Name", "The job's name; unset, the worker names it after the run."),
    "stream_output": {
        "title": "Stream output",
        "description": "Copy the job's stdout and stderr into the worker's output.",
        "type": "boolean",
        "default": True,
    },
}

_IMAGE_PULL_POLICY: dict[str, Any] = {
    "title": "Image pull policy",
    "type": "string",
    "enum": ["IfNotPresent", "Always", "Never"],
    "default": "IfNotPresent",
}

_IMAGE: dict[str, Any] = {
    "title": "Image",
    "description": "The image to run; it must have conveyor and the flow's dependencies.",
    "type": "string",
    "default": "python:3.12-slim",
}

_COMMON_CONFIGURATION = {
    "command": "{{ command }}",
    "env": "{{ env }}",
    "labels": "{{ labels }}",
    "name": "{{ name }}",
    "stream_output": "{{ stream_output }}",
}


def _schema(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": {**_COMMON_VARIABLES, **properties}}


_PROCESS = (
    {**_COMMON_CONFIGURATION, "working_dir": "{{ working_dir }}"},
    _schema(
        {
            "working_dir": _optional_string(
                "Working directory",
                "Where the process starts; unset, a fresh temporary directory.",
            )
        }
    ),
)

_DOCKER = (
    {
        **_COMMON_CONFIGURATION,
        "image": "{{ image }}",
        "image_pull_policy": "{{ image_pull_policy }}",
        "networks": "{{ networks }}",
        "volumes": "{{ volumes }}",
        "auto_remove": "{{ auto_remove }}",
    },
    _schema(
        {
            "image": _IMAGE,
            "image_pull_policy": _IMAGE_PULL_POLICY,
            "networks": {
                "title": "Networks",
                "description": "Docker networks to connect the container to.",
                "type": "array",
                "items": {"type": "string"},
                "default": [],
            },
            "volumes": {
                "title": "Volumes",
                "description": 'Mounts as "host_path:container_path[:ro]".',
                "type": "array",
                "items": {"type": "string"},
                "default": [],
            },
            "auto_remove": {
                "title": "Auto remove",
                "description": "Remove the container when it exits.",
                "type": "boolean",
                "default": False,
            },
        }
    ),
)

_KUBERNETES = (
    {
        **_COMMON_CONFIGURATION,
        "namespace": "{{ namespace }}",
        "pod_watch_timeout_seconds": "{{ pod_watch_timeout_seconds }}",
        # The worker adds the command, the environment and the job's name to the container
        # and metadata when it creates the Job: Kubernetes wants lists where these are a
        # string and a mapping, and it must add the run's own variables anyway.
        "job_manifest": {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"namespace": "{{ namespace }}", "labels": "{{ labels }}"},
            "spec": {
                # Conveyor retries runs itself; a Kubernetes retry would run the flow again
                # behind the server's back.
                "backoffLimit": 0,
                "ttlSecondsAfterFinished": "{{ finished_job_ttl }}",
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "serviceAccountName": "{{ service_account_name }}",
                        "containers": [
                            {
                                "name": "conveyor-job",
                                "image": "{{ image }}",
                                "imagePullPolicy": "{{ image_pull_policy }}",
                                "resources": {
                                    "requests": {
                                        "cpu": "{{ cpu_request }}",
                                        "memory": "{{ memory_request }}",
                                    }
                                },
                            }
                        ],
                    }
                },
            },
        },
    },
    _schema(
        {
            "image": _IMAGE,
            "image_pull_policy": _IMAGE_PULL_POLICY,
            "namespace": {
                "title": "Namespace",
                "type": "string",
                "default": "default",
            },
            "service_account_name": _optional_string(
                "Service account", "Runs the pod as this service account; unset, the default."
            ),
            "cpu_request": {
                "title": "CPU request",
                "description": 'A Kubernetes quantity, such as "500m" or "2".',
                "type": "string",
                "default": "250m",
            },
            "memory_request": {
                "title": "Memory request",
                "description": 'A Kubernetes quantity, such as "512Mi" or "2Gi".',
                "type": "string",
                "default": "256Mi",
            },
            "finished_job_ttl": {
                "title": "Finished job TTL",
                "description": "Seconds Kubernetes keeps a finished Job; unset, until deleted.",
                "type": ["integer", "null"],
                "minimum": 0,
                "default": None,
            },
            "pod_watch_timeout_seconds": {
                "title": "Pod watch timeout",
                "description": "Seconds to wait for the pod to start before the run crashes.",
                "type": "integer",
                "minimum": 1,
                "default": 60,
            },
        }
    ),
)

_DEFAULTS: dict[WorkPoolType, tuple[dict[str, Any], dict[str, Any]]] = {
    WorkPoolType.PROCESS: _PROCESS,
    WorkPoolType.DOCKER: _DOCKER,
    WorkPoolType.KUBERNETES: _KUBERNETES,
}
