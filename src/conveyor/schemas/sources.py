"""Where a deployment's code comes from: a local directory, a git repository, an fsspec URL.

``source_from_string`` reads the short form users type (on the command line, in
``conveyor.yaml``); the grammar is in its docstring and in docs/concepts/code-sources.md.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import PurePosixPath, PureWindowsPath
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import ConfigDict, Field, ValidationError, field_validator

from conveyor.schemas.base import ConveyorModel

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_CONFIG = ConfigDict(frozen=True, extra="forbid", defer_build=True)


def mask_url(url: str) -> str:
    """``url`` with the password of its user info, if any, replaced by ``***``."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url
    if not password:
        return url
    netloc = parts.netloc.replace(f":{password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def _no_option(value: str, what: str) -> str:
    # The value is passed on a command line: one starting with "-" would read as an option.
    if not value or value != value.strip() or value.startswith("-"):
        raise ValueError(f"{what} must be non-empty, without surrounding spaces or a leading '-'")
    return value


class LocalSource(ConveyorModel):
    """A directory on the worker's machine, used in place."""

    model_config = _CONFIG

    kind: Literal["local"] = "local"
    path: str
    """An absolute directory path."""

    @field_validator("path")
    @classmethod
    def _absolute(cls, path: str) -> str:
        if not (PurePosixPath(path).is_absolute() or PureWindowsPath(path).is_absolute()):
            raise ValueError(f"the path of a local code source must be absolute, got {path!r}")
        return path


class GitSource(ConveyorModel):
    """A git repository, checked out at ``ref`` (the remote's default branch if None)."""

    model_config = _CONFIG

    kind: Literal["git"] = "git"
    url: str
    """Anything ``git fetch`` accepts: https://, ssh://, git://, file:// or an absolute path."""
    ref: str | None = None
    """A branch, a tag or a commit sha (full or abbreviated)."""
    subdirectory: str | None = None
    """The directory inside the repository that holds the code (a relative path)."""

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        return _no_option(url, "a git URL")

    @field_validator("ref")
    @classmethod
    def _ref(cls, ref: str | None) -> str | None:
        if ref is None:
            return None
        if re.search(r"\s", _no_option(ref, "a git ref")):
            raise ValueError(f"a git ref cannot contain spaces, got {ref!r}")
        return ref

    @field_validator("subdirectory")
    @classmethod
    def _subdirectory(cls, subdirectory: str | None) -> str | None:
        if subdirectory is None:
            return None
        path = PurePosixPath(subdirectory.replace("\\", "/"))
        if path.is_absolute() or ".." in path.parts or str(path) == ".":
            raise ValueError(
                f"a subdirectory must be a relative path inside the repository, "
                f"got {subdirectory!r}"
            )
        return str(path)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            yield name, mask_url(value) if name == "url" else value


class RemoteSource(ConveyorModel):
    """A directory behind an fsspec URL (``s3://bucket/prefix``), copied before each run."""

    model_config = _CONFIG

    kind: Literal["remote"] = "remote"
    url: str
    storage_options: dict[str, Any] = Field(default_factory=dict, repr=False)
    """Passed to the fsspec filesystem, e.g. ``{"client_kwargs": {"endpoint_url": ...}}``."""

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        if not _URL.match(url):
            raise ValueError(
                f"a remote code source needs a URL such as s3://bucket/dir, got {url!r}"
            )
        return url

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            yield name, mask_url(value) if name == "url" else value


CodeSource = Annotated[LocalSource | GitSource | RemoteSource, Field(discriminator="kind")]


def source_from_string(text: str) -> CodeSource:
    """Read a code source from its string form. Raises ValueError saying what is wrong.

    * ``git+URL[@REF][#subdirectory=DIR]``: a git repository, whatever the URL looks like.
    * ``SCHEME://.../NAME.git[@REF][#subdirectory=DIR]`` and any ``git://`` URL: the same.
      ``REF`` is everything after the last ``@`` in the URL's path.
    * ``SCHEME://...`` otherwise: an fsspec directory (``s3://``, ``gs://``, ``file://``,
      ``memory://``, ...), except http(s), which must be a git URL as above.
    * Anything else is a local directory; relative paths are made absolute from the
      current directory and ``~`` is expanded.
    """
    s = text.strip()
    if not s:
        raise ValueError("A code source cannot be empty; give a directory, a git URL or a URL.")
    shown = repr(mask_url(s))
    try:
        if s.startswith("git+"):
            return _git_source(s[len("git+") :], shown)
        if not _URL.match(s):
            return LocalSource(path=os.path.abspath(os.path.expanduser(s)))
        scheme = s.split(":", 1)[0].lower()
        url, _, _ = _split_ref(s.partition("#")[0])
        if scheme == "git" or url.rstrip("/").endswith(".git"):
            return _git_source(s, shown)
        if scheme in ("http", "https"):
            raise ValueError(
                f"{shown} is not a git repository URL (ending in .git) and HTTP directories "
                f"are not code sources; write git+{mask_url(s)} if it is a git repository."
            )
        return RemoteSource(url=s)
    except ValidationError as exc:
        message = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
        raise ValueError(f"Invalid code source {shown}: {message}.") from None


def _git_source(s: str, shown: str) -> GitSource:
    rest, _, fragment = s.partition("#")
    subdirectory = None
    if fragment:
        key, _, subdirectory = fragment.partition("=")
        if key != "subdirectory" or not subdirectory:
            raise ValueError(
                f"Invalid code source {shown}: the only thing allowed after '#' is "
                f"subdirectory=DIR."
            )
    if not _URL.match(rest):
        raise ValueError(
            f"Invalid code source {shown}: git+ must be followed by a URL such as "
            f"https://host/repo.git."
        )
    url, at, ref = _split_ref(rest)
    if at and not ref:
        raise ValueError(f"Invalid code source {shown}: the ref after '@' is empty.")
    return GitSource(url=url, ref=ref or None, subdirectory=subdirectory)


def _split_ref(url: str) -> tuple[str, str, str]:
    """``(url, "@", ref)`` for ``url@ref``; an ``@`` before the path is user info."""
    path_start = url.find("/", url.index("://") + 3)
    if path_start == -1 or "@" not in url[path_start:]:
        return url, "", ""
    head, _, ref = url.rpartition("@")
    return head, "@", ref
