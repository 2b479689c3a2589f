"""Base job templates: defaults, layering, validation errors that name the field, rendering."""

from __future__ import annotations

import copy
import pickle
import subprocess
import sys
from typing import Any

import pytest
from pydantic import ValidationError

from conveyor.exceptions import ConveyorError
from conveyor.schemas.work_pools import (
    BaseJobTemplate,
    JobVariablesError,
    WorkPoolType,
    default_job_template,
    render_job_configuration,
    resolve_job_variables,
)


def template(job_configuration: dict[str, Any], **properties: Any) -> BaseJobTemplate:
    return BaseJobTemplate(
        job_configuration=job_configuration,
        variables={"type": "object", "properties": properties},
    )


def job_variables_error(tpl: BaseJobTemplate, *overrides: dict[str, Any]) -> JobVariablesError:
    with pytest.raises(JobVariablesError) as caught:
        resolve_job_variables(tpl, *overrides)
    return caught.value


STRING = {"type": "string"}
STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}, "default": {}}


# The default templates


@pytest.mark.parametrize("pool_type", list(WorkPoolType))
def test_each_default_template_resolves_and_renders_with_its_defaults(
    pool_type: WorkPoolType,
) -> None:
    tpl = default_job_template(pool_type)
    variables = resolve_job_variables(tpl)
    assert set(variables) == set(tpl.variables["properties"])
    configuration = render_job_configuration(tpl, variables)
    assert "{{" not in repr(configuration)
    assert configuration["env"] == {}
    assert configuration["labels"] == {}
    assert configuration["stream_output"] is True
    assert configuration["command"] is None


def test_the_process_template() -> None:
    tpl = default_job_template("process")
    assert set(tpl.variables["properties"]) == {
        "command",
        "env",
        "labels",
        "name",
        "stream_output",
        "working_dir",
    }
    variables = resolve_job_variables(tpl, {"command": "python flow.py", "working_dir": "/srv"})
    assert render_job_configuration(tpl, variables) == {
        "command": "python flow.py",
        "env": {},
        "labels": {},
        "name": None,
        "stream_output": True,
        "working_dir": "/srv",
    }


def test_the_docker_template() -> None:
    tpl = default_job_template(WorkPoolType.DOCKER)
    variables = resolve_job_variables(tpl, {"volumes": ["/data:/data:ro"], "networks": ["etl"]})
    configuration = render_job_configuration(tpl, variables)
    assert configuration["image"] == "python:3.12-slim"
    assert configuration["image_pull_policy"] == "IfNotPresent"
    assert configuration["volumes"] == ["/data:/data:ro"]
    assert configuration["networks"] == ["etl"]
    assert configuration["auto_remove"] is False
    error = job_variables_error(tpl, {"image_pull_policy": "Sometimes"})
    assert error.errors[0][0] == "image_pull_policy"


def test_the_kubernetes_template_renders_a_batch_job() -> None:
    tpl = default_job_template("kubernetes")
    variables = resolve_job_variables(
        tpl,
        {"image": "registry.example.com/etl:3", "namespace": "data", "finished_job_ttl": 600},
    )
    configuration = render_job_configuration(tpl, variables)
    manifest = configuration["job_manifest"]
    assert (manifest["apiVersion"], manifest["kind"]) == ("batch/v1", "Job")
    assert manifest["metadata"]["namespace"] == configuration["namespace"] == "data"
    assert manifest["spec"]["backoffLimit"] == 0
    assert manifest["spec"]["ttlSecondsAfterFinished"] == 600
    pod = manifest["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["serviceAccountName"] is None
    (container,) = pod["containers"]
    assert container["image"] == "registry.example.com/etl:3"
    assert container["resources"] == {"requests": {"cpu": "250m", "memory": "256Mi"}}
    assert configuration["pod_watch_timeout_seconds"] == 60


def test_default_templates_are_fresh_copies() -> None:
    first = default_job_template("kubernetes")
    first.job_configuration["job_manifest"]["kind"] = "Pod"
    first.variables["properties"]["env"]["default"]["X"] = "1"
    second = default_job_template("kubernetes")
    assert second.job_configuration["job_manifest"]["kind"] == "Job"
    assert second.variables["properties"]["env"]["default"] == {}


def test_an_unknown_pool_type_is_refused() -> None:
    with pytest.raises(ValueError, match="'ecs' is not a valid WorkPoolType"):
        default_job_template("ecs")


# Layering


def test_layers_override_in_order_later_wins() -> None:
    tpl = default_job_template("process")
    pool_default = resolve_job_variables(tpl)
    assert pool_default["stream_output"] is True
    deployment = {"command": "python a.py", "stream_output": False}
    run = {"command": "python b.py"}
    variables = resolve_job_variables(tpl, deployment, run)
    assert variables["command"] == "python b.py"
    assert variables["stream_output"] is False


def test_objects_merge_key_by_key_one_level_deep() -> None:
    tpl = template({"env": "{{ env }}", "opts": "{{ opts }}"}, env=STRING_MAP, opts={"default": {}})
    deployment = {"env": {"A": "1", "B": "1"}, "opts": {"nested": {"x": 1, "y": 1}}}
    run = {"env": {"B": "2", "C": "2"}, "opts": {"nested": {"x": 2}}}
    variables = resolve_job_variables(tpl, deployment, run)
    assert variables["env"] == {"A": "1", "B": "2", "C": "2"}
    assert variables["opts"] == {"nested": {"x": 2}}  # the nested object is replaced


def test_a_non_object_replaces_an_object() -> None:
    tpl = template({}, opts={"type": ["object", "null"], "default": {"a": 1}})
    assert resolve_job_variables(tpl, {"opts": None}) == {"opts": None}


def test_resolving_copies_defaults_and_overrides() -> None:
    tpl = default_job_template("docker")
    before = tpl.model_dump()
    run = {"env": {"A": "1"}, "volumes": ["/a:/a"]}
    variables = resolve_job_variables(tpl, run)
    variables["env"]["B"] = "2"
    variables["volumes"].append("/b:/b")
    assert tpl.model_dump() == before
    assert run == {"env": {"A": "1"}, "volumes": ["/a:/a"]}


# Errors name the field


def test_a_wrong_type_names_the_nested_field() -> None:
    error = job_variables_error(default_job_template("process"), {"env": {"FOO": 3}})
    assert str(error) == "job variable 'env.FOO': 3 is not of type 'string'"
    assert error.errors == [("env.FOO", "3 is not of type 'string'")]
    assert isinstance(error, ValueError)
    assert isinstance(error, ConveyorError)


def test_a_wrong_type_in_a_list_names_the_index() -> None:
    error = job_variables_error(default_job_template("docker"), {"volumes": ["/a:/a", 7]})
    assert error.errors == [("volumes[1]", "7 is not of type 'string'")]


def test_an_unknown_variable_is_named() -> None:
    error = job_variables_error(default_job_template("process"), {"imag": "python:3.12"})
    assert [field for field, _ in error.errors] == ["imag"]
    assert str(error).startswith("job variable 'imag': is not a variable of this job template")
    assert "known: command, env, labels, name, stream_output, working_dir" in str(error)


def test_every_bad_field_is_listed() -> None:
    tpl = default_job_template("kubernetes")
    error = job_variables_error(
        tpl, {"namespace": 1}, {"nope": True, "pod_watch_timeout_seconds": 0}
    )
    assert sorted(field for field, _ in error.errors) == [
        "namespace",
        "nope",
        "pod_watch_timeout_seconds",
    ]
    assert "job variable 'pod_watch_timeout_seconds': 0 is less than the minimum of 1" in str(error)


def test_a_missing_required_variable_is_named() -> None:
    tpl = BaseJobTemplate(
        job_configuration={"image": "{{ image }}", "resources": "{{ resources }}"},
        variables={
            "type": "object",
            "properties": {
                "image": STRING,
                "resources": {"type": "object", "required": ["cpu"], "default": {"cpu": "1"}},
            },
            "required": ["image"],
        },
    )
    error = job_variables_error(tpl)
    assert error.errors == [("image", "is required")]
    assert str(error) == "job variable 'image': is required"
    error = job_variables_error(tpl, {"image": "x", "resources": None})
    assert error.errors == [("resources", "None is not of type 'object'")]
    # A nested required property is named by its full path.
    nested = template({}, resources={"type": "object", "required": ["cpu", "memory"]})
    error = job_variables_error(nested, {"resources": {"cpu": "1"}})
    assert error.errors == [("resources.memory", "is required")]


def test_an_error_on_the_whole_object_has_no_field() -> None:
    tpl = BaseJobTemplate(
        job_configuration={},
        variables={"type": "object", "properties": {"a": {}, "b": {}}, "maxProperties": 1},
    )
    error = job_variables_error(tpl, {"a": 1, "b": 2})
    assert error.errors[0][0] == ""
    assert str(error).startswith("job variables: ")


def test_job_variables_error_survives_pickling() -> None:
    error = JobVariablesError([("env.FOO", "3 is not of type 'string'")])
    copied = pickle.loads(pickle.dumps(error))
    assert copied.errors == error.errors
    assert str(copied) == str(error)


# Template validation


def test_an_unknown_placeholder_is_named_with_its_place() -> None:
    with pytest.raises(ValidationError) as caught:
        template({"image": "{{ image }}", "spec": [{"env": "X={{ nope }}"}]}, image=STRING)
    message = str(caught.value)
    assert "job_configuration.spec[0].env: placeholder '{{ nope }}' is not a property" in message
    assert "(declared: image)" in message


def test_an_unknown_placeholder_at_the_top_level() -> None:
    with pytest.raises(ValidationError, match=r"job_configuration\.env: placeholder '\{\{foo\}\}'"):
        template({"env": "{{foo}}"})


def test_a_placeholder_in_a_key_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"job_configuration\.env: key '\{\{ name \}\}'"):
        template({"env": {"{{ name }}": "1"}}, name=STRING)


def test_a_bad_schema_is_named_with_its_place() -> None:
    with pytest.raises(ValidationError) as caught:
        template({}, env={"type": "strnig"})
    assert "variables.properties.env.type is not a valid JSON schema" in str(caught.value)
    assert caught.value.errors()[0]["loc"] == ("variables",)


def test_variables_must_describe_an_object() -> None:
    with pytest.raises(ValidationError, match='"type": "object"'):
        BaseJobTemplate(job_configuration={}, variables={"type": "array"})


def test_required_names_must_be_declared() -> None:
    with pytest.raises(ValidationError, match=r"variables\.required: 'image' is not in"):
        BaseJobTemplate(job_configuration={}, variables={"type": "object", "required": ["image"]})


def test_a_default_that_does_not_fit_its_schema_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"variables\.properties\.env\.default\.A: 1 is not"):
        template({}, env={**STRING_MAP, "default": {"A": 1}})


def test_local_references_resolve() -> None:
    tpl = BaseJobTemplate(
        job_configuration={"env": "{{ env }}"},
        variables={
            "type": "object",
            "properties": {"env": {"$ref": "#/$defs/string_map", "default": {}}},
            "$defs": {"string_map": {"type": "object", "additionalProperties": STRING}},
        },
    )
    error = job_variables_error(tpl, {"env": {"A": 1}})
    assert error.errors == [("env.A", "1 is not of type 'string'")]


@pytest.mark.parametrize("ref", ["#/$defs/missing", "https://127.0.0.1:9/schema.json"])
def test_a_reference_that_does_not_resolve_is_refused_without_fetching(ref: str) -> None:
    with pytest.raises(ValidationError) as caught:
        template({}, env={"$ref": ref})
    assert f"variables.properties.env.$ref: {ref!r} does not resolve" in str(caught.value)


def test_a_ref_inside_a_default_is_data() -> None:
    tpl = template({"x": "{{ x }}"}, x={"type": "object", "default": {"$ref": "elsewhere"}})
    assert resolve_job_variables(tpl) == {"x": {"$ref": "elsewhere"}}


def test_boolean_property_schemas_are_allowed() -> None:
    tpl = template({"x": "{{ x }}"}, x=True)
    assert resolve_job_variables(tpl, {"x": [1]}) == {"x": [1]}


def test_text_in_braces_that_is_not_an_identifier_is_not_a_placeholder() -> None:
    tpl = template({"format": "{{.State.Status}} {{ a-b }}"})
    assert render_job_configuration(tpl, {}) == {"format": "{{.State.Status}} {{ a-b }}"}


def test_unknown_fields_of_the_template_are_refused() -> None:
    with pytest.raises(ValidationError, match="job_configuraton"):
        BaseJobTemplate.model_validate(
            {"job_configuraton": {}, "job_configuration": {}, "variables": {"type": "object"}}
        )


# Rendering


def test_a_whole_string_placeholder_keeps_the_value_type() -> None:
    tpl = template(
        {"env": "{{ env }}", "n": "{{n}}", "flag": "{{ flag }}", "none": "{{ none }}"},
        env={},
        n={},
        flag={},
        none={},
    )
    env = {"A": "1"}
    rendered = render_job_configuration(tpl, {"env": env, "n": 3, "flag": False, "none": None})
    assert rendered == {"env": {"A": "1"}, "n": 3, "flag": False, "none": None}
    assert rendered["env"] is not env  # the configuration does not share the variables' objects


def test_an_embedded_placeholder_is_interpolated_with_str() -> None:
    tpl = template(
        {"cmd": "run --n {{ n }} --flag={{flag}} --x={{ none }}!", "pair": "{{ n }}{{ n }}"},
        n={},
        flag={},
        none={},
    )
    rendered = render_job_configuration(tpl, {"n": 3, "flag": True, "none": None})
    assert rendered == {"cmd": "run --n 3 --flag=True --x=!", "pair": "33"}


def test_missing_variables_render_as_none_or_empty() -> None:
    tpl = template({"whole": "{{ a }}", "embedded": "x{{ a }}y"}, a=STRING)
    assert render_job_configuration(tpl, {}) == {"whole": None, "embedded": "xy"}


def test_placeholders_render_inside_nested_dicts_and_lists() -> None:
    tpl = template(
        {
            "spec": {
                "containers": [{"image": "{{ image }}", "args": ["--tag", "v{{ tag }}", 5]}],
                "volumes": "{{ volumes }}",
            },
            "fixed": [1, None, True],
        },
        image=STRING,
        tag={},
        volumes={},
    )
    rendered = render_job_configuration(tpl, {"image": "py", "tag": 2, "volumes": [{"a": 1}]})
    assert rendered == {
        "spec": {
            "containers": [{"image": "py", "args": ["--tag", "v2", 5]}],
            "volumes": [{"a": 1}],
        },
        "fixed": [1, None, True],
    }


def test_values_are_not_rendered_again() -> None:
    tpl = template({"a": "{{ a }}", "b": "<{{ a }}>"}, a={}, b={})
    rendered = render_job_configuration(tpl, {"a": "{{ b }}", "b": "no"})
    assert rendered == {"a": "{{ b }}", "b": "<{{ b }}>"}


def test_rendering_does_not_change_the_template() -> None:
    tpl = default_job_template("kubernetes")
    before = copy.deepcopy(tpl.model_dump())
    variables = resolve_job_variables(tpl, {"env": {"A": "1"}, "labels": {"team": "data"}})
    rendered = render_job_configuration(tpl, variables)
    rendered["job_manifest"]["spec"]["template"]["spec"]["containers"][0]["image"] = "changed"
    rendered["job_manifest"]["metadata"]["labels"]["x"] = "y"
    assert tpl.model_dump() == before
    assert variables["labels"] == {"team": "data"}


# Serialization and import cost


@pytest.mark.parametrize("pool_type", list(WorkPoolType))
def test_a_template_round_trips_through_json(pool_type: WorkPoolType) -> None:
    tpl = default_job_template(pool_type)
    again = BaseJobTemplate.model_validate_json(tpl.model_dump_json())
    assert again == tpl
    variables = resolve_job_variables(again)
    assert render_job_configuration(again, variables) == render_job_configuration(tpl, variables)


def test_importing_the_module_does_not_import_jsonschema() -> None:
    code = "import sys, conveyor.schemas.work_pools; print('jsonschema' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"
