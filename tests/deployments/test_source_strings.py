"""The code source models and the string grammar of ``source_from_string``."""

from __future__ import annotations

import pathlib

import pytest
from pydantic import TypeAdapter, ValidationError

from conveyor.schemas.sources import (
    CodeSource,
    GitSource,
    LocalSource,
    RemoteSource,
    mask_url,
    source_from_string,
)


@pytest.mark.parametrize(
    "text,expected",
    [
        ("git+https://example.com/org/repo", GitSource(url="https://example.com/org/repo")),
        (
            "git+https://example.com/org/repo@v1.2",
            GitSource(url="https://example.com/org/repo", ref="v1.2"),
        ),
        (
            "git+ssh://git@example.com/org/repo.git@main",
            GitSource(url="ssh://git@example.com/org/repo.git", ref="main"),
        ),
        (
            "git+file:///srv/repo@feature/x#subdirectory=flows",
            GitSource(url="file:///srv/repo", ref="feature/x", subdirectory="flows"),
        ),
        ("https://example.com/org/repo.git", GitSource(url="https://example.com/org/repo.git")),
        (
            "https://example.com/org/repo.git@0123abcd",
            GitSource(url="https://example.com/org/repo.git", ref="0123abcd"),
        ),
        (
            "https://user@example.com/repo.git#subdirectory=a/b",
            GitSource(url="https://user@example.com/repo.git", subdirectory="a/b"),
        ),
        ("file:///srv/git/repo.git", GitSource(url="file:///srv/git/repo.git")),
        ("git://127.0.0.1:9418/repo", GitSource(url="git://127.0.0.1:9418/repo")),
        ("git://host/repo.git@v2", GitSource(url="git://host/repo.git", ref="v2")),
        ("s3://bucket/flows", RemoteSource(url="s3://bucket/flows")),
        ("memory://code", RemoteSource(url="memory://code")),
        ("file:///srv/code", RemoteSource(url="file:///srv/code")),
        ("  gs://bucket/a@b  ", RemoteSource(url="gs://bucket/a@b")),
        ("/srv/code", LocalSource(path="/srv/code")),
    ],
)
def test_the_grammar(text: str, expected: CodeSource) -> None:
    assert source_from_string(text) == expected


def test_relative_and_home_paths_become_absolute(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert source_from_string("code/flows") == LocalSource(path=str(tmp_path / "code/flows"))
    assert source_from_string(".") == LocalSource(path=str(tmp_path))
    assert source_from_string("~/code") == LocalSource(path=str(tmp_path / "home" / "code"))


@pytest.mark.parametrize(
    "text,message",
    [
        ("", "A code source cannot be empty; give a directory, a git URL or a URL."),
        (
            "https://example.com/org/repo",
            "'https://example.com/org/repo' is not a git repository URL (ending in .git) and "
            "HTTP directories are not code sources; write git+https://example.com/org/repo "
            "if it is a git repository.",
        ),
        (
            "git+repo.git",
            "Invalid code source 'git+repo.git': git+ must be followed by a URL such as "
            "https://host/repo.git.",
        ),
        (
            "git+https://h/repo.git@",
            "Invalid code source 'git+https://h/repo.git@': the ref after '@' is empty.",
        ),
        (
            "https://h/repo.git#egg=x",
            "Invalid code source 'https://h/repo.git#egg=x': the only thing allowed after "
            "'#' is subdirectory=DIR.",
        ),
        (
            "https://h/repo.git#subdirectory=../up",
            "Invalid code source 'https://h/repo.git#subdirectory=../up': a subdirectory must "
            "be a relative path inside the repository, got '../up'.",
        ),
        (
            "https://h/repo.git@-x",
            "Invalid code source 'https://h/repo.git@-x': a git ref must be non-empty, "
            "without surrounding spaces or a leading '-'.",
        ),
    ],
)
def test_errors_say_what_is_wrong_in_one_sentence(text: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        source_from_string(text)
    assert str(caught.value) == message


def test_passwords_never_appear_in_errors_or_reprs() -> None:
    with pytest.raises(ValueError) as caught:
        source_from_string("https://me:hunter2@example.com/repo")
    assert "hunter2" not in str(caught.value)
    assert "me:***@example.com" in str(caught.value)
    source = source_from_string("https://me:hunter2@example.com/repo.git@main")
    assert isinstance(source, GitSource)
    assert source.url == "https://me:hunter2@example.com/repo.git"
    assert "hunter2" not in repr(source) and "hunter2" not in str(source)
    remote = RemoteSource(url="s3://b/p", storage_options={"secret": "hunter2"})
    assert "hunter2" not in repr(remote)
    assert mask_url("https://me:pw@h:8443/x") == "https://me:***@h:8443/x"
    assert mask_url("https://me@h/x") == "https://me@h/x"
    assert mask_url("/no/url") == "/no/url"


def test_sources_round_trip_through_json_by_kind() -> None:
    adapter: TypeAdapter[CodeSource] = TypeAdapter(CodeSource)
    for source in (
        LocalSource(path="/srv/code"),
        GitSource(url="https://h/r.git", ref="v1", subdirectory="flows"),
        RemoteSource(url="s3://b/p", storage_options={"anon": True}),
    ):
        data = source.model_dump(mode="json")
        assert data["kind"] == source.kind
        assert adapter.validate_python(data) == source
        assert adapter.validate_json(source.model_dump_json()) == source


@pytest.mark.parametrize(
    "data,field",
    [
        ({"kind": "local", "path": "relative/dir"}, "path"),
        ({"kind": "git", "url": "--upload-pack=evil"}, "url"),
        ({"kind": "git", "url": "https://h/r.git", "ref": "has space"}, "ref"),
        ({"kind": "git", "url": "https://h/r.git", "subdirectory": "/abs"}, "subdirectory"),
        ({"kind": "remote", "url": "bucket/prefix"}, "url"),
        ({"kind": "remote", "url": "s3://b", "extra": 1}, "extra"),
        ({"kind": "ftp", "url": "ftp://h"}, "kind"),
    ],
)
def test_invalid_sources_are_refused_naming_the_field(data: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        TypeAdapter(CodeSource).validate_python(data)
    assert field in str(caught.value)


def test_a_windows_path_is_an_absolute_local_path() -> None:
    assert LocalSource(path="C:\\code").path == "C:\\code"
