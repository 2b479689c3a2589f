"""Fetching code from a local directory and from fsspec URLs (memory://, file://)."""

from __future__ import annotations

import pathlib
import uuid
from collections.abc import Callable

import fsspec
import pytest

from conveyor.deployments.entrypoints import load_flow
from conveyor.deployments.sources import CodeSourceError, fetch
from conveyor.schemas.sources import LocalSource, RemoteSource

MakeTree = Callable[[dict[str, str]], pathlib.Path]

FILES = {
    "flows/etl.py": "from helpers import double\n",
    "flows/helpers.py": "def double(x: int) -> int:\n    return 2 * x\n",
    "README.md": "code\n",
}


def files_under(directory: pathlib.Path) -> dict[str, str]:
    return {
        path.relative_to(directory).as_posix(): path.read_text(encoding="utf-8")
        for path in directory.rglob("*")
        if path.is_file()
    }


def test_a_local_directory_is_used_in_place(make_tree: MakeTree, tmp_path: pathlib.Path) -> None:
    code = make_tree(FILES)
    assert fetch(LocalSource(path=str(code)), tmp_path / "unused") == code
    assert not (tmp_path / "unused").exists()


def test_a_missing_local_directory(tmp_path: pathlib.Path) -> None:
    with pytest.raises(CodeSourceError) as caught:
        fetch(LocalSource(path=str(tmp_path / "nope")), tmp_path / "code")
    assert str(caught.value) == (
        f"The code directory {tmp_path / 'nope'} does not exist on this machine; fix the "
        "deployment's source or run the worker where the code is."
    )
    (tmp_path / "file").write_text("x", encoding="utf-8")
    with pytest.raises(CodeSourceError, match="file is not a directory on this machine"):
        fetch(LocalSource(path=str(tmp_path / "file")), tmp_path / "code")


def test_a_file_url_is_copied(make_tree: MakeTree, tmp_path: pathlib.Path) -> None:
    code = make_tree(FILES)
    fetched = fetch(RemoteSource(url=code.as_uri()), tmp_path / "code")
    assert fetched == tmp_path / "code"
    assert files_under(fetched) == FILES


def test_a_memory_url_is_copied_into_an_existing_empty_directory(tmp_path: pathlib.Path) -> None:
    base = f"memory://code-{uuid.uuid4().hex}"
    fs = fsspec.filesystem("memory")
    for relative, text in FILES.items():
        fs.pipe(f"{base}/{relative}", text.encode())
    fs.pipe(f"{base}-sibling/other.py", b"not ours\n")  # shares the prefix, not the directory
    destination = tmp_path / "code"
    destination.mkdir()
    assert files_under(fetch(RemoteSource(url=f"{base}/"), destination)) == FILES


def test_code_fetched_from_a_url_loads(
    make_tree: MakeTree, tmp_path: pathlib.Path, clean_imports: None
) -> None:
    code = make_tree(
        {
            "flows/etl.py": """
                from conveyor import flow
                from helpers import double

                @flow
                def etl(x: int) -> int:
                    return double(x)
            """,
            "flows/helpers.py": FILES["flows/helpers.py"],
        }
    )
    fetched = fetch(RemoteSource(url=code.as_uri()), tmp_path / "code")
    assert load_flow("flows/etl.py:etl", fetched).name == "etl"


def test_an_empty_or_missing_prefix_is_an_error(tmp_path: pathlib.Path) -> None:
    url = f"memory://nothing-{uuid.uuid4().hex}"
    with pytest.raises(CodeSourceError) as caught:
        fetch(RemoteSource(url=url), tmp_path / "code")
    assert str(caught.value) == f"{url} holds no files; upload the flow's code there first."
    assert not (tmp_path / "code").exists()
    fsspec.filesystem("memory").pipe(f"{url}/file.py", b"")
    with pytest.raises(CodeSourceError) as caught:
        fetch(RemoteSource(url=f"{url}/file.py"), tmp_path / "code")
    assert str(caught.value) == (
        f"{url}/file.py is a file; give the URL of the directory that holds it."
    )


def test_an_unknown_protocol_is_an_error(tmp_path: pathlib.Path) -> None:
    with pytest.raises(CodeSourceError, match=r"^Cannot open nope://x: .*nope"):
        fetch(RemoteSource(url="nope://x"), tmp_path / "code")


def test_a_key_that_escapes_the_directory_is_refused(tmp_path: pathlib.Path) -> None:
    base = f"memory://evil-{uuid.uuid4().hex}"
    fs = fsspec.filesystem("memory")
    fs.pipe(f"{base}/ok.py", b"")
    fs.store[f"{base.removeprefix('memory:/')}/../../escaped.py"] = fs.store[
        f"{base.removeprefix('memory:/')}/ok.py"
    ]
    with pytest.raises(CodeSourceError, match="lists a file outside itself"):
        fetch(RemoteSource(url=base), tmp_path / "code")
    assert not (tmp_path / "escaped.py").exists()
    assert not (tmp_path / "code").exists()
