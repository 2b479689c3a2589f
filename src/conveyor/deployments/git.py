"""Shallow checkouts of a git repository with the ``git`` command line."""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

from conveyor.deployments.errors import CodeSourceError
from conveyor.schemas.sources import GitSource, mask_url

logger = logging.getLogger("conveyor.deployments")

_SHA = re.compile(r"[0-9a-fA-F]{4,64}")
_ALL_REFS = ("+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*")
_REPOSITORY_ENV = frozenset(
    {
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_INDEX_FILE",
        "GIT_COMMON_DIR",
        "GIT_OBJECT_DIRECTORY",
        "GIT_ALTERNATE_OBJECT_DIRECTORIES",
        "GIT_PREFIX",
    }
)


class _GitFailed(Exception):
    def __init__(self, stderr_tail: str) -> None:
        super().__init__(stderr_tail)
        self.stderr_tail = stderr_tail


def checkout(source: GitSource, destination: Path, timeout_seconds: float | None) -> str:
    """Check ``source`` out into the empty ``destination``; returns the commit's sha.

    One path serves branches, tags and full shas alike: ``git fetch --depth 1 URL REF``
    accepts each of them, where ``git clone --branch`` takes no sha.
    """
    git = shutil.which("git")
    if git is None:
        raise CodeSourceError(
            "The git command is not installed on this machine; install git to fetch code "
            "from a git repository."
        )
    shown = mask_url(source.url)
    ref = source.ref or "HEAD"
    what = f"ref {source.ref!r}" if source.ref else "the default branch"

    def run(*args: str) -> str:
        return _run(git, destination, args, timeout_seconds, source.url)

    destination.mkdir(parents=True, exist_ok=True)
    try:
        run("init", "--quiet")
        run("remote", "add", "origin", source.url)
        try:
            run("fetch", "--quiet", "--depth", "1", "origin", ref)
            target = "FETCH_HEAD"
        except _GitFailed as not_a_ref:
            if not _SHA.fullmatch(ref):
                raise
            # Servers never resolve an abbreviated sha, and some refuse even a full one
            # that no branch or tag points at: look it up in the whole history.
            try:
                run("fetch", "--quiet", "origin", *_ALL_REFS)
                target = run("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").strip()
            except _GitFailed:
                raise not_a_ref from None
        run("checkout", "--quiet", f"{target}^{{commit}}")
        sha = run("rev-parse", "HEAD").strip()
    except _GitFailed as exc:
        raise CodeSourceError(
            f"Could not fetch {what} of git repository {shown}: {exc.stderr_tail}"
        ) from None
    logger.info("Checked out %s of %s (commit %s).", what, shown, sha)
    return sha


def _run(
    git: str,
    cwd: Path,
    args: tuple[str, ...],
    timeout_seconds: float | None,
    url: str,
) -> str:
    # The checkout is the repository in cwd, whatever repository the worker was started in.
    env = {name: value for name, value in os.environ.items() if name not in _REPOSITORY_ENV}
    # A repository that wants credentials must fail, not wait for a password forever.
    env["GIT_TERMINAL_PROMPT"] = "0"
    env["LC_ALL"] = "C"  # git's messages, which errors quote, in English
    if "GIT_SSH_COMMAND" not in env and "GIT_SSH" not in env:
        env["GIT_SSH_COMMAND"] = "ssh -o BatchMode=yes"
    try:
        proc = subprocess.run(
            [git, *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout_seconds,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise _GitFailed(f"git {args[0]} timed out after {timeout_seconds} s.") from None
    if proc.returncode != 0:
        raise _GitFailed(_tail(_redact(proc.stderr, url)))
    return proc.stdout


def _redact(text: str, url: str) -> str:
    try:
        password = urlsplit(url).password
    except ValueError:  # not a URL git would have reached anyway
        return text
    return text.replace(password, "***") if password else text


def _tail(stderr: str) -> str:
    """The last lines git wrote, which say why it failed, as one line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    # "fatal:" lines give the reason; what follows them is generic advice.
    lines = [line for line in lines if line.startswith(("fatal:", "error:"))] or lines
    tail = " / ".join(lines[-3:]) or "git exited with an error and printed nothing."
    tail = tail if len(tail) <= 500 else "..." + tail[-497:]
    return tail if tail.endswith(".") else tail + "."
