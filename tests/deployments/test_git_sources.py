"""Fetching code from git repositories: by branch, tag and sha, over file:// and git://."""

from __future__ import annotations

import os
import pathlib
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest

from conveyor.deployments.entrypoints import load_flow
from conveyor.deployments.sources import CodeSourceError, fetch
from conveyor.schemas.sources import GitSource

pytestmark = pytest.mark.skipif(
    shutil.which("git") is None, reason="the git command is not installed"
)

# Commits made by the tests must not depend on the user's git configuration.
GIT_ENV = {
    **os.environ,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
}

FLOW = """\
from conveyor import flow


@flow
def hello() -> str:
    return "{version}"
"""


def git(cwd: pathlib.Path, *args: str) -> str:
    proc = subprocess.run(
        ["git", *args], cwd=cwd, env=GIT_ENV, capture_output=True, text=True, check=True
    )
    return proc.stdout.strip()


def commit(work: pathlib.Path, version: str) -> str:
    (work / "VERSION").write_text(version, encoding="utf-8")
    (work / "flows").mkdir(exist_ok=True)
    (work / "flows" / "hello.py").write_text(FLOW.format(version=version), encoding="utf-8")
    git(work, "add", "-A")
    git(work, "commit", "--quiet", "-m", version)
    return git(work, "rev-parse", "HEAD")


class Repo:
    """A bare repository: main (v1 -> main), a tag v1, and a branch feature off v1."""

    def __init__(self, base: pathlib.Path) -> None:
        work = base / "work"
        work.mkdir()
        git(work, "init", "--quiet", "--initial-branch=main")
        self.v1 = commit(work, "v1")
        git(work, "tag", "--annotate", "v1", "-m", "release 1")
        self.main = commit(work, "main")
        git(work, "checkout", "--quiet", "-b", "feature", self.v1)
        self.feature = commit(work, "feature")
        git(work, "checkout", "--quiet", "main")
        self.path = base / "repo.git"
        git(base, "clone", "--quiet", "--bare", str(work), str(self.path))
        self.url = self.path.as_uri()


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    return Repo(tmp_path_factory.mktemp("git"))


def version(code: pathlib.Path) -> str:
    return (code / "VERSION").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "ref,expected",
    [(None, "main"), ("main", "main"), ("feature", "feature"), ("v1", "v1")],
)
def test_fetch_by_branch_or_tag(
    repo: Repo, tmp_path: pathlib.Path, ref: str | None, expected: str
) -> None:
    code = fetch(GitSource(url=repo.url, ref=ref), tmp_path / "code")
    assert code == tmp_path / "code"
    assert version(code) == expected


def test_fetch_by_commit_sha_full_or_abbreviated(repo: Repo, tmp_path: pathlib.Path) -> None:
    assert version(fetch(GitSource(url=repo.url, ref=repo.v1), tmp_path / "full")) == "v1"
    short = GitSource(url=repo.url, ref=repo.feature[:10])
    assert version(fetch(short, tmp_path / "short")) == "feature"


def test_the_checkout_is_shallow(repo: Repo, tmp_path: pathlib.Path) -> None:
    code = fetch(GitSource(url=repo.url, ref="main"), tmp_path / "code")
    assert git(code, "rev-list", "--count", "HEAD") == "1"
    assert git(code, "rev-parse", "HEAD") == repo.main


def test_fetch_from_a_plain_path(repo: Repo, tmp_path: pathlib.Path) -> None:
    code = fetch(GitSource(url=str(repo.path), ref="feature"), tmp_path / "code")
    assert version(code) == "feature"


def test_a_worker_started_inside_another_repository(
    repo: Repo, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_DIR", str(repo.path))  # as in a git hook
    monkeypatch.setenv("GIT_WORK_TREE", str(tmp_path))
    assert version(fetch(GitSource(url=repo.url, ref="v1"), tmp_path / "code")) == "v1"


def test_a_subdirectory_of_the_repository(repo: Repo, tmp_path: pathlib.Path) -> None:
    code = fetch(GitSource(url=repo.url, subdirectory="flows"), tmp_path / "code")
    assert code == tmp_path / "code" / "flows"
    assert (code / "hello.py").is_file()
    with pytest.raises(CodeSourceError) as caught:
        fetch(GitSource(url=repo.url, ref="v1", subdirectory="nope"), tmp_path / "other")
    assert str(caught.value) == f"Git repository {repo.url} has no directory 'nope' at v1."
    assert not (tmp_path / "other").exists()


def test_a_flow_loads_from_the_checkout(
    repo: Repo, tmp_path: pathlib.Path, clean_imports: None, conveyor_home: pathlib.Path
) -> None:
    code = fetch(GitSource(url=repo.url, ref="feature"), tmp_path / "code")
    hello = load_flow("flows/hello.py:hello", code)
    assert hello() == "feature"


def test_an_unknown_ref_fails_with_gits_reason(repo: Repo, tmp_path: pathlib.Path) -> None:
    destination = tmp_path / "code"
    destination.mkdir()
    with pytest.raises(CodeSourceError) as caught:
        fetch(GitSource(url=repo.url, ref="nope"), destination)
    assert str(caught.value) == (
        f"Could not fetch ref 'nope' of git repository {repo.url}: "
        "fatal: couldn't find remote ref nope."
    )
    assert destination.is_dir() and not any(destination.iterdir())  # left as it was


def test_an_unknown_abbreviated_sha_fails(repo: Repo, tmp_path: pathlib.Path) -> None:
    with pytest.raises(CodeSourceError) as caught:
        fetch(GitSource(url=repo.url, ref="abcdef12"), tmp_path / "code")
    assert str(caught.value) == (
        f"Could not fetch ref 'abcdef12' of git repository {repo.url}: "
        "fatal: couldn't find remote ref abcdef12."
    )
    assert not (tmp_path / "code").exists()


def test_a_missing_repository_fails(tmp_path: pathlib.Path) -> None:
    url = (tmp_path / "missing.git").as_uri()
    with pytest.raises(CodeSourceError) as caught:
        fetch(GitSource(url=url), tmp_path / "code")
    message = str(caught.value)
    assert message.startswith(f"Could not fetch the default branch of git repository {url}: ")
    assert message.endswith(
        "does not appear to be a git repository / fatal: Could not read from remote repository."
    )


def test_a_password_in_the_url_is_masked(tmp_path: pathlib.Path) -> None:
    with socket.socket() as sock:  # a port nothing listens on: refused at once
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://me:hunter2@127.0.0.1:{port}/repo.git"
    with pytest.raises(CodeSourceError) as caught:
        fetch(GitSource(url=url), tmp_path / "code")
    assert "hunter2" not in str(caught.value)
    assert f"http://me:***@127.0.0.1:{port}/repo.git" in str(caught.value)


def test_the_destination_must_be_empty(repo: Repo, tmp_path: pathlib.Path) -> None:
    (tmp_path / "file").write_text("x", encoding="utf-8")
    with pytest.raises(CodeSourceError) as caught:
        fetch(GitSource(url=repo.url), tmp_path)
    assert str(caught.value) == (
        f"Cannot fetch code into {tmp_path}: it must be a missing or empty directory."
    )


def test_a_missing_git_command_is_explained(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(CodeSourceError, match="The git command is not installed"):
        fetch(GitSource(url="https://example.com/r.git"), tmp_path / "code")


@pytest.fixture(scope="module")
def git_daemon(repo: Repo) -> Iterator[str]:
    """``git daemon`` serving the test repository on loopback; yields its base URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base = repo.path.parent
    daemon = subprocess.Popen(
        [
            "git",
            "daemon",
            "--reuseaddr",
            "--export-all",
            "--informative-errors",
            f"--base-path={base}",
            f"--port={port}",
            "--listen=127.0.0.1",
            str(base),
        ],
        env=GIT_ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if daemon.poll() is not None or time.monotonic() > deadline:
                    pytest.skip("git daemon did not start")
                time.sleep(0.05)
        yield f"git://127.0.0.1:{port}"
    finally:
        daemon.terminate()
        daemon.wait(timeout=10)


def test_fetch_over_the_git_protocol(git_daemon: str, repo: Repo, tmp_path: pathlib.Path) -> None:
    url = f"{git_daemon}/repo.git"
    assert version(fetch(GitSource(url=url), tmp_path / "default")) == "main"
    assert version(fetch(GitSource(url=url, ref="feature"), tmp_path / "branch")) == "feature"
    assert version(fetch(GitSource(url=url, ref="v1"), tmp_path / "tag")) == "v1"
    assert version(fetch(GitSource(url=url, ref=repo.v1), tmp_path / "sha")) == "v1"


def test_a_repository_the_daemon_does_not_serve(git_daemon: str, tmp_path: pathlib.Path) -> None:
    with pytest.raises(CodeSourceError) as caught:
        fetch(GitSource(url=f"{git_daemon}/missing.git"), tmp_path / "code")
    assert str(caught.value) == (
        f"Could not fetch the default branch of git repository {git_daemon}/missing.git: "
        "fatal: remote error: no such repository: /missing.git."
    )


def test_a_server_that_never_answers_times_out(tmp_path: pathlib.Path) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        accepted: list[socket.socket] = []
        thread = threading.Thread(target=lambda: accepted.append(server.accept()[0]))
        thread.start()
        source = GitSource(url=f"git://127.0.0.1:{port}/repo.git")
        with pytest.raises(CodeSourceError) as caught:
            fetch(source, tmp_path / "code", timeout_seconds=0.5)
        thread.join(timeout=5)
        for conn in accepted:
            conn.close()
    assert str(caught.value).endswith("git fetch timed out after 0.5 s.")
