"""Fetching code from an S3-compatible store: moto's server on loopback, through s3fs."""

from __future__ import annotations

import pathlib
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from conveyor.deployments.entrypoints import load_flow
from conveyor.deployments.sources import CodeSourceError, fetch
from conveyor.schemas.sources import RemoteSource, source_from_string

moto_server = pytest.importorskip("moto.server")
s3fs = pytest.importorskip("s3fs")

FLOW = b"""\
from conveyor import flow
from helpers import greeting


@flow
def hello(name: str = "world") -> str:
    return greeting(name)
"""
HELPERS = b"def greeting(name: str) -> str:\n    return f'hello {name}'\n"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    """The URL of a moto S3 server on 127.0.0.1, with dummy credentials in the environment."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
            env.delenv(name, raising=False)
        env.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
        env.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.stop()
            s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture
def s3(endpoint: str) -> Any:
    return s3fs.S3FileSystem(client_kwargs={"endpoint_url": endpoint}, skip_instance_cache=True)


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"code-{uuid.uuid4().hex[:12]}"
    s3.mkdir(name)
    return name


def options(endpoint: str) -> dict[str, Any]:
    return {"client_kwargs": {"endpoint_url": endpoint}}


def test_fetch_a_prefix_with_storage_options(
    endpoint: str, s3: Any, bucket: str, tmp_path: pathlib.Path, clean_imports: None
) -> None:
    s3.pipe(
        {
            f"{bucket}/deploy/flows/hello.py": FLOW,
            f"{bucket}/deploy/flows/helpers.py": HELPERS,
            f"{bucket}/deploy/flows/empty-folder/": b"",  # a "folder" marker, not a file
            f"{bucket}/deploy-old/stale.py": b"",
        }
    )
    source = RemoteSource(url=f"s3://{bucket}/deploy", storage_options=options(endpoint))
    code = fetch(source, tmp_path / "code")
    assert sorted(p.relative_to(code).as_posix() for p in code.rglob("*") if p.is_file()) == [
        "flows/hello.py",
        "flows/helpers.py",
    ]
    assert load_flow("flows/hello.py:hello", code).name == "hello"


def test_the_endpoint_can_come_from_aws_endpoint_url(
    endpoint: str,
    s3: Any,
    bucket: str,
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s3.pipe(f"{bucket}/deploy/flow.py", FLOW)
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    s3fs.S3FileSystem.clear_instance_cache()  # the environment is read when one is made
    try:
        code = fetch(source_from_string(f"s3://{bucket}/deploy"), tmp_path / "code")
    finally:
        s3fs.S3FileSystem.clear_instance_cache()
    assert (code / "flow.py").read_bytes() == FLOW


def test_a_redeploy_is_seen_by_the_next_fetch(
    endpoint: str, s3: Any, bucket: str, tmp_path: pathlib.Path
) -> None:
    source = RemoteSource(url=f"s3://{bucket}/deploy", storage_options=options(endpoint))
    s3.pipe(f"{bucket}/deploy/a.py", b"1")
    assert [p.name for p in fetch(source, tmp_path / "first").iterdir()] == ["a.py"]
    s3.pipe(f"{bucket}/deploy/b.py", b"2")
    assert sorted(p.name for p in fetch(source, tmp_path / "second").iterdir()) == [
        "a.py",
        "b.py",
    ]


def test_an_empty_prefix_is_an_error(endpoint: str, bucket: str, tmp_path: pathlib.Path) -> None:
    source = RemoteSource(url=f"s3://{bucket}/nothing", storage_options=options(endpoint))
    with pytest.raises(CodeSourceError) as caught:
        fetch(source, tmp_path / "code")
    assert str(caught.value) == (
        f"s3://{bucket}/nothing holds no files; upload the flow's code there first."
    )
    assert not (tmp_path / "code").exists()


def test_a_missing_bucket_is_an_error(endpoint: str, tmp_path: pathlib.Path) -> None:
    source = RemoteSource(url="s3://no-such-bucket-here/x", storage_options=options(endpoint))
    with pytest.raises(CodeSourceError) as caught:
        fetch(source, tmp_path / "code")
    assert str(caught.value) == (
        "Cannot list the files under s3://no-such-bucket-here/x: "
        "The specified bucket does not exist."
    )
