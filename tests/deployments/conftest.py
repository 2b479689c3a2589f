"""Fixtures for the deployment tests: code trees on disk, and imports that do not leak."""

from __future__ import annotations

import os
import pathlib
import sys
import textwrap
from collections.abc import Callable, Iterator

import pytest

from conveyor.engine import runtime
from conveyor.settings import Settings


@pytest.fixture
def make_tree(tmp_path_factory: pytest.TempPathFactory) -> Callable[[dict[str, str]], pathlib.Path]:
    """Writes ``{relative path: source}`` (dedented) into a new directory; returns it."""

    def make(files: dict[str, str]) -> pathlib.Path:
        root = tmp_path_factory.mktemp("code")
        for relative, text in files.items():
            path = root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text), encoding="utf-8")
        return root

    return make


@pytest.fixture
def clean_imports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Undo what loading flows does to sys.path, and forget the modules it imported.

    Only modules of the tests' code trees are forgotten: a second copy of a library
    module (conveyor's own) would make its classes differ from those already in use.
    """
    path = list(sys.path)
    modules = set(sys.modules)
    temp = tmp_path_factory.getbasetemp().resolve()
    try:
        yield
    finally:
        sys.path[:] = path
        for name in set(sys.modules) - modules:
            file = getattr(sys.modules[name], "__file__", None)
            if file is not None and pathlib.Path(file).resolve().is_relative_to(temp):
                del sys.modules[name]


@pytest.fixture
def conveyor_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[pathlib.Path]:
    """An isolated CONVEYOR_HOME and no backend, for tests that run a loaded flow."""
    home = tmp_path_factory.mktemp("conveyor-home")
    for name in list(os.environ):
        if name.startswith("CONVEYOR_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("CONVEYOR_HOME", str(home))
    monkeypatch.setenv("CONVEYOR_BACKEND", "none")
    with runtime.use_settings(Settings(home=home, backend="none")):
        yield home
