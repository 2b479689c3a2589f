"""Entrypoints (``path/to/file.py:flow`` or ``package.module:flow``) and loading flows from them.

Loading imports the code, which runs its module-level statements, but never calls the
flow; ``parameter_schema`` reads only its signature.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import inspect
import keyword
import re
import sys
import types
import typing
import uuid
from pathlib import Path
from typing import Any

from conveyor.deployments.errors import EntrypointError
from conveyor.engine.flows import Flow

__all__ = ["Entrypoint", "EntrypointError", "load_flow", "parameter_schema", "parse_entrypoint"]

_FORMS = "write path/to/file.py:flow_function or package.module:flow_function"


@dataclasses.dataclass(frozen=True)
class Entrypoint:
    """Where a flow is: a ``.py`` file or an importable module, and the flow's name in it.

    ``attribute`` may be dotted (``Jobs.nightly``) to reach a flow stored on an object.
    """

    attribute: str
    path: str | None = None
    module: str | None = None

    def __post_init__(self) -> None:
        if (self.path is None) == (self.module is None):
            raise EntrypointError("An Entrypoint has a path or a module: one, not both.")

    @property
    def location(self) -> str:
        return self.path if self.path is not None else str(self.module)

    def __str__(self) -> str:
        return f"{self.location}:{self.attribute}"


def _is_dotted_name(s: str) -> bool:
    return all(part.isidentifier() and not keyword.iskeyword(part) for part in s.split("."))


def parse_entrypoint(text: str) -> Entrypoint:
    """Read ``path/to/file.py:name`` or ``package.module:name``; raises EntrypointError.

    The split is at the last ``:``, so Windows paths (``C:\\code\\flows.py:etl``) work. A
    left part ending in ``.py`` or holding a path separator is a file, else a module.
    """
    s = text.strip()
    location, colon, attribute = s.rpartition(":")
    if not colon:
        raise EntrypointError(f"Entrypoint {text!r} has no ':'; {_FORMS}.")
    if not location or not attribute:
        empty = "the flow's name after ':'" if location else "the file or module before ':'"
        raise EntrypointError(f"Entrypoint {text!r} lacks {empty}; {_FORMS}.")
    if not _is_dotted_name(attribute):
        raise EntrypointError(
            f"Entrypoint {text!r}: {attribute!r} is not a Python name such as my_flow or "
            f"obj.my_flow."
        )
    if location.endswith(".py") or re.search(r"[/\\]", location):
        if not location.endswith(".py"):
            raise EntrypointError(
                f"Entrypoint {text!r}: {location!r} looks like a path but is not a .py file."
            )
        return Entrypoint(attribute, path=location)
    if not _is_dotted_name(location):
        raise EntrypointError(
            f"Entrypoint {text!r}: {location!r} is neither a .py file nor a module name such "
            f"as package.module."
        )
    return Entrypoint(attribute, module=location)


def load_flow(entrypoint: str | Entrypoint, root: Path) -> Flow[..., Any]:
    """Import the flow ``entrypoint`` names from the code in ``root``; raises EntrypointError.

    ``root`` (and, for a file, the file's own directory) goes first on ``sys.path``, so the
    code imports its sibling modules as it does when run as a script. A file is imported
    afresh on each call; a module already imported in this process is not.
    """
    if isinstance(entrypoint, str):
        entrypoint = parse_entrypoint(entrypoint)
    root = Path(root).absolute()
    if entrypoint.path is not None:
        module = _import_file(entrypoint.path, root)
    else:
        module = _import_module(str(entrypoint.module), root)
    where = entrypoint.location
    value: Any = module
    parts = entrypoint.attribute.split(".")
    for i, part in enumerate(parts):
        try:
            value = getattr(value, part)
        except AttributeError:
            raise EntrypointError(_missing(module, where, parts, i)) from None
    if not isinstance(value, Flow):
        kind = type(value).__name__
        article = "an" if kind[0].lower() in "aeiou" else "a"
        raise EntrypointError(
            f"{entrypoint.attribute!r} in {where} is {article} {kind}, not a flow; "
            f"decorate the function with @flow, or point the entrypoint at a flow."
        )
    return value


def _prepend_to_path(directory: Path) -> None:
    entry = str(directory)
    if entry in sys.path:
        sys.path.remove(entry)
    sys.path.insert(0, entry)


def _import_file(path: str, root: Path) -> types.ModuleType:
    file = root / path  # an absolute path replaces root
    if not file.is_file():
        raise EntrypointError(
            f"Flow file {path} not found in {root}; the entrypoint's path is relative to "
            f"the root directory of the deployment's code."
        )
    _prepend_to_path(root)
    _prepend_to_path(file.parent)
    # A unique name: two loads of one file, or two files named flows.py, never collide.
    stem = re.sub(r"\W", "_", file.stem)
    name = f"conveyor_flow_{stem}_{uuid.uuid4().hex[:8]}"
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise EntrypointError(f"Flow file {path} cannot be imported as a Python module.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look their module up here
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:
        sys.modules.pop(name, None)
        raise EntrypointError(f"Importing {path} failed: {_explain(exc)}") from exc
    import cloudpickle  # deferred: `import conveyor` must stay fast

    # Process and Dask workers cannot import a module by this made-up name: ship the
    # file's functions (its tasks) by value instead of by reference.
    cloudpickle.register_pickle_by_value(module)
    return module


def _import_module(name: str, root: Path) -> types.ModuleType:
    _prepend_to_path(root)
    importlib.invalidate_caches()  # root may hold files newer than the finders' caches
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
            raise EntrypointError(
                f"Module {name!r} not found in {root} or on sys.path; check the entrypoint "
                f"and the root directory of the deployment's code."
            ) from exc
        raise EntrypointError(f"Importing module {name!r} failed: {_explain(exc)}") from exc
    except (Exception, SystemExit) as exc:
        raise EntrypointError(f"Importing module {name!r} failed: {_explain(exc)}") from exc


def _explain(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):
        return (
            "it called sys.exit() while being imported; put script code under "
            "if __name__ == '__main__':."
        )
    return f"{type(exc).__name__}: {exc} (the traceback above shows where)."


def _missing(module: types.ModuleType, where: str, parts: list[str], i: int) -> str:
    if i > 0:
        return f"In {where}, {'.'.join(parts[:i])!r} has no attribute {parts[i]!r}."
    flows = sorted(name for name, value in vars(module).items() if isinstance(value, Flow))
    if flows:
        return (
            f"{where} has no attribute {parts[0]!r}; the flows it defines are {', '.join(flows)}."
        )
    return (
        f"{where} has no attribute {parts[0]!r}, and it defines no flows; decorate one with @flow."
    )


def parameter_schema(flow: Flow[..., Any]) -> dict[str, Any]:
    """The JSON schema (Draft 2020-12) of ``flow``'s parameters, from its type hints.

    Unannotated parameters, and types pydantic cannot validate or give a JSON form to,
    accept any value. ``*args`` and ``**kwargs`` are left out, and extra properties are
    allowed only if ``**kwargs`` is there. Defaults without a JSON form are left out (the
    parameter stays optional).
    """
    from pydantic import ConfigDict, Field, create_model
    from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue, JsonSchemaWarningKind
    from pydantic_core import core_schema

    class _Generator(GenerateJsonSchema):
        # Pydantic drops a default it cannot put in JSON anyway; the warning is noise here.
        ignored_warning_kinds: set[JsonSchemaWarningKind] = {
            "skipped-choice",
            "non-serializable-default",
        }

        def handle_invalid_for_json_schema(
            self, schema: core_schema.CoreSchema, error_info: str
        ) -> JsonSchemaValue:
            return {}  # a type without a JSON form accepts any value

    signature = inspect.signature(flow.fn)
    hints = _type_hints(flow.fn)
    fields: dict[str, Any] = {}
    var_keyword = False
    for i, param in enumerate(signature.parameters.values()):
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            var_keyword = True
        if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            continue
        default = ... if param.default is inspect.Parameter.empty else param.default
        # Aliases let parameters be named like model attributes (json, _private, ...).
        fields[f"p{i}"] = (hints.get(param.name, Any), Field(default, alias=param.name))
    config = ConfigDict(arbitrary_types_allowed=True)
    try:
        model = create_model(flow.name, __config__=config, **fields)
    except Exception:  # noqa: BLE001 - found out below, parameter by parameter
        for name, (annotation, info) in fields.items():
            fields[name] = (annotation if _usable(annotation, config) else Any, info)
        model = create_model(flow.name, __config__=config, **fields)
    schema = model.model_json_schema(by_alias=True, schema_generator=_Generator)
    schema.setdefault("properties", {})
    if not var_keyword:
        schema["additionalProperties"] = False
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def _usable(annotation: Any, config: Any) -> bool:
    """Whether pydantic can validate ``annotation`` (it cannot, say, a plain Protocol)."""
    from pydantic import create_model

    try:
        create_model("probe", __config__=config, value=(annotation, ...))
    except Exception:  # noqa: BLE001 - such a parameter accepts any value
        return False
    return True


def _type_hints(fn: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn, include_extras=True)
    except Exception:  # noqa: BLE001 - one unresolvable hint must not cost the others
        pass
    globalns = getattr(inspect.unwrap(fn), "__globals__", {})
    hints: dict[str, Any] = {}
    for name, annotation in getattr(fn, "__annotations__", {}).items():
        holder = types.SimpleNamespace(__annotations__={name: annotation})
        try:
            hints.update(typing.get_type_hints(holder, globalns, include_extras=True))
        except Exception:  # noqa: BLE001 - such a parameter accepts any value
            continue
    return hints
