"""Parsing entrypoints and loading flows from files and modules."""

from __future__ import annotations

import pathlib
import sys
import textwrap
from collections.abc import Callable

import pytest

from conveyor import ProcessPoolTaskRunner
from conveyor.deployments.entrypoints import (
    Entrypoint,
    EntrypointError,
    load_flow,
    parse_entrypoint,
)

MakeTree = Callable[[dict[str, str]], pathlib.Path]

pytestmark = pytest.mark.usefixtures("clean_imports", "conveyor_home")

ETL = textwrap.dedent(
    """
    from conveyor import flow, task

    @task
    def helper() -> int:
        return 1

    @flow
    def etl(x: int = 1) -> int:
        return x

    @flow(name="nightly-report")
    def report() -> str:
        return "ok"

    class Jobs:
        nightly = etl

    def plain() -> None: ...
    """
)


@pytest.mark.parametrize(
    "text,expected",
    [
        ("flows/etl.py:etl", Entrypoint("etl", path="flows/etl.py")),
        ("etl.py:etl", Entrypoint("etl", path="etl.py")),
        (" flows/etl.py:Jobs.nightly ", Entrypoint("Jobs.nightly", path="flows/etl.py")),
        ("C:\\code\\etl.py:etl", Entrypoint("etl", path="C:\\code\\etl.py")),
        ("/abs/etl.py:etl", Entrypoint("etl", path="/abs/etl.py")),
        ("pkg.flows:etl", Entrypoint("etl", module="pkg.flows")),
        ("etl:main", Entrypoint("main", module="etl")),
    ],
)
def test_parse(text: str, expected: Entrypoint) -> None:
    assert parse_entrypoint(text) == expected
    assert str(expected) == text.strip()


FORMS = "write path/to/file.py:flow_function or package.module:flow_function"


@pytest.mark.parametrize(
    "text,message",
    [
        ("flows/etl.py", f"Entrypoint 'flows/etl.py' has no ':'; {FORMS}."),
        (":etl", f"Entrypoint ':etl' lacks the file or module before ':'; {FORMS}."),
        ("etl.py:", f"Entrypoint 'etl.py:' lacks the flow's name after ':'; {FORMS}."),
        (
            "etl.py:my-flow",
            "Entrypoint 'etl.py:my-flow': 'my-flow' is not a Python name such as my_flow or "
            "obj.my_flow.",
        ),
        (
            "etl.py:class",
            "Entrypoint 'etl.py:class': 'class' is not a Python name such as my_flow or "
            "obj.my_flow.",
        ),
        (
            "flows/etl:etl",
            "Entrypoint 'flows/etl:etl': 'flows/etl' looks like a path but is not a .py file.",
        ),
        (
            "my-pkg.flows:etl",
            "Entrypoint 'my-pkg.flows:etl': 'my-pkg.flows' is neither a .py file nor a module "
            "name such as package.module.",
        ),
    ],
)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(EntrypointError) as caught:
        parse_entrypoint(text)
    assert str(caught.value) == message
    assert isinstance(caught.value, ValueError)


def test_an_entrypoint_has_a_path_or_a_module() -> None:
    with pytest.raises(ValueError):
        Entrypoint("etl")
    with pytest.raises(ValueError):
        Entrypoint("etl", path="a.py", module="a")


def test_load_from_a_file(make_tree: MakeTree) -> None:
    root = make_tree({"flows/etl.py": ETL})
    etl = load_flow("flows/etl.py:etl", root)
    assert etl.name == "etl"
    assert etl(x=3) == 3
    assert load_flow(Entrypoint("report", path="flows/etl.py"), root).name == "nightly-report"
    assert load_flow("flows/etl.py:Jobs.nightly", root).name == "etl"
    assert load_flow(f"{root / 'flows' / 'etl.py'}:etl", pathlib.Path("/elsewhere")).name == "etl"


def test_each_load_of_a_file_is_a_fresh_module(make_tree: MakeTree) -> None:
    root = make_tree({"flows/etl.py": ETL})
    first = load_flow("flows/etl.py:etl", root)
    (root / "flows" / "etl.py").write_text(ETL.replace("return x", "return -x"), "utf-8")
    second = load_flow("flows/etl.py:etl", root)
    assert first.fn.__module__ != second.fn.__module__
    assert (first(x=2), second(x=2)) == (2, -2)


def test_loading_does_not_run_the_script_part(make_tree: MakeTree) -> None:
    root = make_tree(
        {
            "flows/etl.py": ETL + "\n\nif __name__ == '__main__':\n    raise SystemExit('ran')\n",
        }
    )
    assert load_flow("flows/etl.py:etl", root).name == "etl"


def test_a_file_imports_its_siblings_and_modules_at_the_root(make_tree: MakeTree) -> None:
    root = make_tree(
        {
            "shared/__init__.py": "",
            "shared/numbers.py": "BASE = 100\n",
            "flows/helpers.py": "def double(x: int) -> int:\n    return 2 * x\n",
            "flows/etl.py": """
                from conveyor import flow
                from helpers import double
                from shared.numbers import BASE

                @flow
                def etl(x: int) -> int:
                    return BASE + double(x)
            """,
        }
    )
    assert load_flow("flows/etl.py:etl", root)(x=1) == 102


def test_load_from_a_module(make_tree: MakeTree) -> None:
    root = make_tree(
        {
            "pipelines_pkg/__init__.py": "",
            "pipelines_pkg/util.py": "FACTOR = 10\n",
            "pipelines_pkg/flows.py": """
                from conveyor import flow
                from .util import FACTOR

                @flow
                def scaled(x: int) -> int:
                    return FACTOR * x
            """,
        }
    )
    scaled = load_flow("pipelines_pkg.flows:scaled", root)
    assert scaled(x=2) == 20
    assert scaled.fn.__module__ == "pipelines_pkg.flows"


def test_a_flow_from_a_file_runs_its_tasks_in_worker_processes(make_tree: MakeTree) -> None:
    """Workers cannot import the loaded file by its made-up module name."""
    root = make_tree(
        {
            "flows/cpu.py": """
                from conveyor import flow, task

                def times(x: int, y: int) -> int:
                    return x * y

                @task
                def square(x: int) -> int:
                    return times(x, x)

                @flow
                def squares(n: int) -> list[int]:
                    return square.map(range(n)).result()
            """
        }
    )
    squares = load_flow("flows/cpu.py:squares", root)
    assert squares.with_options(task_runner=ProcessPoolTaskRunner(1))(n=3) == [0, 1, 4]


def test_a_missing_file(make_tree: MakeTree) -> None:
    root = make_tree({})
    with pytest.raises(EntrypointError) as caught:
        load_flow("flows/nope.py:etl", root)
    assert str(caught.value) == (
        f"Flow file flows/nope.py not found in {root}; the entrypoint's path is relative to "
        "the root directory of the deployment's code."
    )


def test_a_syntax_error_in_the_file(make_tree: MakeTree) -> None:
    root = make_tree({"flows/etl.py": "def broken(:\n"})
    with pytest.raises(EntrypointError) as caught:
        load_flow("flows/etl.py:etl", root)
    assert str(caught.value).startswith("Importing flows/etl.py failed: SyntaxError: ")
    assert str(caught.value).endswith("(the traceback above shows where).")
    assert isinstance(caught.value.__cause__, SyntaxError)
    assert not any(name.startswith("conveyor_flow_etl") for name in sys.modules)


def test_an_import_error_in_the_file(make_tree: MakeTree) -> None:
    root = make_tree({"flows/etl.py": "import not_installed_anywhere\n"})
    with pytest.raises(EntrypointError) as caught:
        load_flow("flows/etl.py:etl", root)
    assert str(caught.value) == (
        "Importing flows/etl.py failed: ModuleNotFoundError: No module named "
        "'not_installed_anywhere' (the traceback above shows where)."
    )
    assert isinstance(caught.value.__cause__, ModuleNotFoundError)


def test_a_file_that_exits_while_imported(make_tree: MakeTree) -> None:
    root = make_tree({"flows/etl.py": "import sys\nsys.exit(2)\n"})
    with pytest.raises(EntrypointError) as caught:
        load_flow("flows/etl.py:etl", root)
    assert str(caught.value) == (
        "Importing flows/etl.py failed: it called sys.exit() while being imported; put "
        "script code under if __name__ == '__main__':."
    )


def test_a_missing_attribute_lists_the_flows_there_are(make_tree: MakeTree) -> None:
    root = make_tree({"flows/etl.py": ETL, "flows/empty.py": "X = 1\n"})
    with pytest.raises(EntrypointError) as caught:
        load_flow("flows/etl.py:elt", root)
    assert str(caught.value) == (
        "flows/etl.py has no attribute 'elt'; the flows it defines are etl, report."
    )
    with pytest.raises(EntrypointError) as caught:
        load_flow("flows/empty.py:etl", root)
    assert str(caught.value) == (
        "flows/empty.py has no attribute 'etl', and it defines no flows; decorate one with @flow."
    )
    with pytest.raises(EntrypointError) as caught:
        load_flow("flows/etl.py:Jobs.weekly", root)
    assert str(caught.value) == "In flows/etl.py, 'Jobs' has no attribute 'weekly'."


@pytest.mark.parametrize("name,kind", [("plain", "function"), ("helper", "Task")])
def test_an_attribute_that_is_not_a_flow(make_tree: MakeTree, name: str, kind: str) -> None:
    root = make_tree({"flows/etl.py": ETL})
    with pytest.raises(EntrypointError) as caught:
        load_flow(f"flows/etl.py:{name}", root)
    assert str(caught.value) == (
        f"'{name}' in flows/etl.py is a {kind}, not a flow; decorate the function with @flow, "
        "or point the entrypoint at a flow."
    )


def test_a_missing_module(make_tree: MakeTree) -> None:
    root = make_tree({"present_pkg/__init__.py": ""})
    for name in ("absent_pkg_xyz.flows", "present_pkg.absent"):
        with pytest.raises(EntrypointError) as caught:
            load_flow(f"{name}:etl", root)
        assert str(caught.value) == (
            f"Module {name!r} not found in {root} or on sys.path; check the entrypoint and "
            "the root directory of the deployment's code."
        )


def test_a_module_that_fails_to_import(make_tree: MakeTree) -> None:
    root = make_tree({"broken_mod_xyz.py": "import not_installed_anywhere\n"})
    with pytest.raises(EntrypointError) as caught:
        load_flow("broken_mod_xyz:etl", root)
    assert str(caught.value) == (
        "Importing module 'broken_mod_xyz' failed: ModuleNotFoundError: No module named "
        "'not_installed_anywhere' (the traceback above shows where)."
    )
