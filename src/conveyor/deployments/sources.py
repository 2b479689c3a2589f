"""Fetching a deployment's code into a directory its flow run can import it from."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from conveyor.deployments import git
from conveyor.deployments.errors import CodeSourceError
from conveyor.schemas.sources import CodeSource, LocalSource, RemoteSource, mask_url

__all__ = ["CodeSourceError", "fetch"]

logger = logging.getLogger("conveyor.deployments")


def fetch(source: CodeSource, destination: Path, *, timeout_seconds: float | None = None) -> Path:
    """Put the code of ``source`` on this machine; returns the directory that holds it.

    A local source is used in place and ``destination`` is left alone. Git and remote
    sources are fetched into ``destination``, which must be missing or empty, and which
    is left as it was if fetching fails. ``timeout_seconds`` bounds each git command.
    """
    if isinstance(source, LocalSource):
        return _local_directory(source)
    destination = Path(destination).absolute()
    if destination.exists() and (not destination.is_dir() or any(destination.iterdir())):
        raise CodeSourceError(
            f"Cannot fetch code into {destination}: it must be a missing or empty directory."
        )
    existed = destination.exists()
    try:
        if isinstance(source, RemoteSource):
            _copy_remote(source, destination)
            return destination
        git.checkout(source, destination, timeout_seconds)
        if source.subdirectory is None:
            return destination
        code = destination / source.subdirectory
        if not code.is_dir():
            raise CodeSourceError(
                f"Git repository {mask_url(source.url)} has no directory "
                f"{source.subdirectory!r} at {source.ref or 'its default branch'}."
            )
        return code
    except BaseException:
        _clear(destination, keep=existed)
        raise


def _local_directory(source: LocalSource) -> Path:
    path = Path(source.path)
    if not path.is_dir():
        problem = "is not a directory" if path.exists() else "does not exist"
        raise CodeSourceError(
            f"The code directory {path} {problem} on this machine; fix the deployment's "
            f"source or run the worker where the code is."
        )
    return path


def _copy_remote(source: RemoteSource, destination: Path) -> None:
    import fsspec.core  # deferred: it costs ~70 ms, and other sources do not need it

    shown = mask_url(source.url)
    try:
        fs, root = fsspec.core.url_to_fs(source.url, **source.storage_options)
    except (ImportError, ValueError, TypeError) as exc:  # unknown scheme, missing backend
        raise CodeSourceError(_sentence(f"Cannot open {shown}: {exc}")) from exc
    root = root.rstrip("/")
    # Filesystem instances, and the listings some of them cache, live as long as the
    # process: a worker must see the files of a redeploy, not those it listed first.
    fs.invalidate_cache()
    try:
        # Keys ending in "/" are the empty "folder" markers some S3 tools create.
        files: list[str] = [f for f in fs.find(root) if not f.endswith("/")]
    except OSError as exc:
        raise CodeSourceError(_sentence(f"Cannot list the files under {shown}: {exc}")) from exc
    if files == [root]:  # find() lists a file as itself
        raise CodeSourceError(f"{shown} is a file; give the URL of the directory that holds it.")
    if not files:
        raise CodeSourceError(f"{shown} holds no files; upload the flow's code there first.")
    targets = [_target(destination, root, f, shown) for f in files]
    for target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
    try:
        fs.get(files, [str(t) for t in targets])
    except OSError as exc:
        raise CodeSourceError(_sentence(f"Cannot copy the files under {shown}: {exc}")) from exc
    logger.info("Copied %d files from %s to %s.", len(files), shown, destination)


def _sentence(message: str) -> str:
    return message.rstrip(". ") + "."


def _target(destination: Path, root: str, remote: str, shown: str) -> Path:
    relative = remote[len(root) :].lstrip("/") if remote.startswith(root + "/") else ""
    target = (destination / relative).resolve()
    # Object stores allow keys such as "a/../../x", which must not escape destination.
    if not relative or not target.is_relative_to(destination.resolve()):
        raise CodeSourceError(f"{shown} lists a file outside itself: {remote!r}.")
    return target


def _clear(destination: Path, *, keep: bool) -> None:
    """Undo a failed fetch: remove ``destination``, or only its contents when ``keep``."""
    if not destination.exists():
        return
    if not keep:
        shutil.rmtree(destination, ignore_errors=True)
        return
    for child in destination.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
