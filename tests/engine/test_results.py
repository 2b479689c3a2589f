from __future__ import annotations

import datetime
import json
import logging
import pathlib
import re
import subprocess
import sys
import textwrap
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from conveyor.engine.results import (
    ResultStore,
    get_result_store,
    load_result,
    render_storage_key,
)
from conveyor.engine.serializers import (
    CloudpickleSerializer,
    JSONSerializer,
    PickleSerializer,
)
from conveyor.exceptions import ConfigurationError, ResultStorageError, SerializationError
from conveyor.schemas.results import ResultRef
from conveyor.schemas.states import Completed
from conveyor.settings import Settings

UTC = datetime.timezone.utc
NOW = datetime.datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["path", "file-url", "memory"])
def storage(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> str:
    """The same contract, against a plain folder, a file:// URL and fsspec's memory://."""
    if request.param == "path":
        return str(tmp_path / "results")
    if request.param == "file-url":
        return (tmp_path / "results").as_uri()
    return f"memory://conveyor-tests/{uuid.uuid4().hex}"


@pytest.fixture
def store(tmp_path: pathlib.Path) -> ResultStore:
    return ResultStore(str(tmp_path), CloudpickleSerializer())


def files_under(folder: pathlib.Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


# -- the contract, on every backend ----------------------------------------------------
def test_write_then_read(storage: str) -> None:
    store = ResultStore(storage, CloudpickleSerializer())
    ref = store.write("answer", {"value": 42})
    assert ref == ResultRef(storage=store.storage, key="answer", serializer="cloudpickle")
    assert store.read("answer") == {"value": 42}
    assert store.exists("answer")
    assert not store.exists("question")


def test_keys_with_folders(storage: str) -> None:
    store = ResultStore(storage, JSONSerializer())
    store.write("flow/2024-06-01/part-1", [1, 2])
    assert store.read("flow/2024-06-01/part-1") == [1, 2]
    assert not store.exists("flow/2024-06-01/part-2")


def test_overwrite_replaces(storage: str) -> None:
    store = ResultStore(storage, PickleSerializer())
    store.write("k", "old")
    store.write("k", "new")
    assert store.read("k") == "new"


def test_missing_key(storage: str) -> None:
    store = ResultStore(storage, PickleSerializer())
    with pytest.raises(ResultStorageError, match="No result 'nope'"):
        store.read("nope")
    assert store.read_cached("nope") == (False, None, None)


def test_load_result_needs_only_the_ref(storage: str) -> None:
    ref = ResultStore(storage, JSONSerializer()).write("r", {"a": 1})
    assert load_result(ref) == {"a": 1}
    assert load_result(ResultRef.model_validate_json(ref.model_dump_json())) == {"a": 1}


def test_state_result_reads_the_ref(storage: str) -> None:
    state = Completed()
    state.result_ref = ResultStore(storage, PickleSerializer()).write("s", [3])
    assert state.result() == [3]


@pytest.mark.parametrize(
    "key", ["../escape", "a/../../b", "..", "/etc/passwd", "", "folder/", "C:\\x", "a\\..\\b"]
)
def test_traversal_and_absolute_keys_are_rejected(storage: str, key: str) -> None:
    store = ResultStore(storage, PickleSerializer())
    with pytest.raises(ConfigurationError, match="Invalid result key"):
        store.write(key, 1)
    with pytest.raises(ConfigurationError):
        store.read(key)
    with pytest.raises(ConfigurationError):
        store.read_cached(key)


# -- expiration and cache reads --------------------------------------------------------
def test_read_cached_hit(store: ResultStore) -> None:
    store.write("k", "v", expiration=NOW + datetime.timedelta(seconds=1))
    assert store.read_cached("k", now=NOW) == (
        True,
        "v",
        ResultRef(storage=store.storage, key="k", serializer="cloudpickle"),
    )


def test_expired_entry_is_a_miss_but_still_readable(
    store: ResultStore, caplog: pytest.LogCaptureFixture
) -> None:
    store.write("k", "v", expiration=NOW)
    assert store.read_cached("k", now=NOW) == (False, None, None)
    assert store.read_cached("k", now=NOW - datetime.timedelta(seconds=1))[0]
    assert store.read("k") == "v"  # a ref to it stays valid
    assert not caplog.records


def test_no_expiration_never_expires(store: ResultStore) -> None:
    store.write("k", "v")
    assert store.read_cached("k", now=NOW + datetime.timedelta(days=10_000))[0]


def test_naive_datetimes_mean_local_time(store: ResultStore) -> None:
    later = datetime.datetime.now() + datetime.timedelta(hours=1)
    store.write("k", "v", expiration=later)
    assert store.read_cached("k")[0]
    assert not store.read_cached("k", now=later + datetime.timedelta(seconds=1))[0]


def test_record_is_self_describing(tmp_path: pathlib.Path) -> None:
    ResultStore(str(tmp_path), JSONSerializer()).write("k", [1], expiration=NOW)
    head, payload = (tmp_path / "k").read_bytes().split(b"\n", 1)
    header = json.loads(head)
    assert header["serializer"] == "json"
    assert header["expiration"] == "2024-06-01T12:00:00+00:00"
    assert datetime.datetime.fromisoformat(header["created"]).tzinfo is not None
    assert payload == b"[1]"


def test_records_are_read_with_the_serializer_that_wrote_them(tmp_path: pathlib.Path) -> None:
    ResultStore(str(tmp_path), PickleSerializer()).write("k", {1, 2})
    assert ResultStore(str(tmp_path), JSONSerializer()).read("k") == {1, 2}


# -- bad data --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"garbage without a header",
        b'{"serializer": "pickle"}\n\x80\x05truncated',
        b'{"serializer": "yaml"}\nx: 1',
        b'{"serializer": "json", "expiration": "not a date"}\n1',
        b"[1, 2]\n3",
    ],
)
def test_corrupt_records(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture, content: bytes
) -> None:
    store = ResultStore(str(tmp_path), PickleSerializer())
    (tmp_path / "bad").write_bytes(content)
    if b"not a date" not in content:  # read ignores expiration, so that one still loads
        with pytest.raises(ResultStorageError, match="'bad'"):
            store.read("bad")
    with caplog.at_level(logging.WARNING, logger="conveyor.results"):
        assert store.read_cached("bad") == (False, None, None)
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert "'bad'" in caplog.records[0].getMessage()


def test_unserializable_value_writes_nothing(tmp_path: pathlib.Path) -> None:
    store = ResultStore(str(tmp_path), PickleSerializer())
    with pytest.raises(SerializationError, match="'pickle' serializer"):
        store.write("gen", (n for n in range(3)))
    with pytest.raises(SerializationError, match="'json' serializer"):
        ResultStore(str(tmp_path), JSONSerializer()).write("obj", object())
    assert files_under(tmp_path) == []


def test_unwritable_storage(tmp_path: pathlib.Path) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    store = ResultStore(str(not_a_folder), PickleSerializer())
    with pytest.raises(ResultStorageError, match="Could not write result 'k'"):
        store.write("k", 1)
    with pytest.raises(ResultStorageError, match="Could not read result 'k'"):
        store.read("k")


def test_a_key_naming_a_folder_is_unreadable(store: ResultStore) -> None:
    store.write("folder/inner", 1)
    with pytest.raises(ResultStorageError, match="Could not read result 'folder'"):
        store.read("folder")
    assert not store.exists("folder")


def test_unknown_storage_protocol() -> None:
    store = ResultStore("nosuchproto://bucket", PickleSerializer())
    with pytest.raises(ConfigurationError, match="nosuchproto"):
        store.write("k", 1)


# -- stores, settings and refs ---------------------------------------------------------
def test_get_result_store_defaults_and_memoizes(tmp_path: pathlib.Path) -> None:
    settings = Settings(home=tmp_path, result_serializer="json")
    store = get_result_store(None, None, settings)
    assert store.storage == str(tmp_path / "storage")
    assert store.serializer == JSONSerializer()
    assert get_result_store(str(tmp_path / "storage"), "json", settings) is store
    assert get_result_store(None, JSONSerializer(), settings) is store
    other = get_result_store(None, "pickle", settings)
    assert other is not store and other.serializer == PickleSerializer()
    with pytest.raises(ConfigurationError, match="Unknown result serializer"):
        get_result_store(None, "yaml", settings)


def test_relative_storage_is_made_absolute(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    ref = ResultStore("results", PickleSerializer()).write("k", 1)
    assert ref.storage == str(tmp_path / "results")
    monkeypatch.chdir("/")
    assert load_result(ref) == 1


def test_store_can_be_pickled(store: ResultStore) -> None:
    store.write("k", 1)
    copy = CloudpickleSerializer().loads(CloudpickleSerializer().dumps(store))
    assert copy.read("k") == 1 and copy.storage == store.storage


def test_custom_serializer_refs_load_in_the_same_process(tmp_path: pathlib.Path) -> None:
    class Reversed:
        name = "reversed-json"

        def dumps(self, value: object) -> bytes:
            return JSONSerializer().dumps(value)[::-1]

        def loads(self, data: bytes) -> object:
            return JSONSerializer().loads(data[::-1])

    store = get_result_store(str(tmp_path), Reversed(), Settings(home=tmp_path))
    assert load_result(store.write("k", [1, "a"])) == [1, "a"]


# -- concurrency -----------------------------------------------------------------------
def test_concurrent_writes_from_threads(tmp_path: pathlib.Path) -> None:
    store = ResultStore(str(tmp_path), PickleSerializer())
    payloads = {i: bytes([i]) * 200_000 for i in range(8)}
    store.write("shared", payloads[0])
    stop = threading.Event()
    bad_reads: list[object] = []

    def read_loop() -> None:
        while not stop.is_set():
            try:
                value = store.read("shared")
            except ResultStorageError as exc:  # half a record
                value = exc
            if value not in payloads.values():
                bad_reads.append(value)

    def write(i: int) -> None:
        for n in range(10):
            store.write("shared", payloads[i])
            store.write(f"thread-{i}/{n}", (i, n))

    reader = threading.Thread(target=read_loop)
    reader.start()
    try:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(write, payloads))
    finally:
        stop.set()
        reader.join()
    assert not bad_reads
    assert store.read("shared") in payloads.values()
    assert all(store.read(f"thread-{i}/{n}") == (i, n) for i in range(8) for n in range(10))
    assert not [f for f in files_under(tmp_path) if f.endswith(".tmp")]


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        check=True,
        capture_output=True,
        text=True,
    )


def test_read_what_another_process_wrote(tmp_path: pathlib.Path) -> None:
    out = run_python(
        f"""
        import datetime
        from conveyor.engine.results import ResultStore
        from conveyor.engine.serializers import CloudpickleSerializer
        store = ResultStore({str(tmp_path)!r}, CloudpickleSerializer())
        later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
        print(store.write("from/child", {{"pid": 1, "fn": lambda x: x + 1}},
                          expiration=later).model_dump_json())
        """
    )
    ref = ResultRef.model_validate_json(out.stdout)
    value = load_result(ref)
    assert value["fn"](1) == 2
    hit, cached, cached_ref = ResultStore(str(tmp_path), PickleSerializer()).read_cached(ref.key)
    assert hit and cached["pid"] == 1 and cached_ref == ref


def test_reader_never_sees_a_partial_write_from_another_process(tmp_path: pathlib.Path) -> None:
    store = ResultStore(str(tmp_path), PickleSerializer())
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                from conveyor.engine.results import ResultStore
                from conveyor.engine.serializers import PickleSerializer
                store = ResultStore({str(tmp_path)!r}, PickleSerializer())
                for n in range(200):
                    store.write("hot", bytes([n % 2]) * 1_000_000)
                """
            ),
        ]
    )
    reads = 0
    while writer.poll() is None:
        if store.exists("hot"):
            assert store.read("hot") in (b"\0" * 1_000_000, b"\1" * 1_000_000)
            reads += 1
    assert writer.returncode == 0
    assert store.read("hot") == b"\1" * 1_000_000
    assert files_under(tmp_path) == ["hot"]
    assert reads > 0


def test_local_stores_do_not_import_fsspec(tmp_path: pathlib.Path) -> None:
    out = run_python(
        f"""
        import sys
        from conveyor.engine.results import ResultStore
        from conveyor.engine.serializers import PickleSerializer
        store = ResultStore({str(tmp_path)!r}, PickleSerializer())
        store.write("k", 1)
        assert store.read("k") == 1
        print("fsspec" in sys.modules)
        """
    )
    assert out.stdout.strip() == "False"


# -- storage keys ----------------------------------------------------------------------
RUN = uuid.UUID(int=7)
FLOW_RUN = uuid.UUID(int=9)


def render(template: str, flow_run_id: uuid.UUID | None = FLOW_RUN) -> str:
    return render_storage_key(
        template,
        {"day": "2024-06-01", "n": 3, "task_name": "shadowed"},
        task_name="load",
        task_run_id=RUN,
        flow_run_id=flow_run_id,
        flow_name="etl" if flow_run_id else None,
    )


def test_render_storage_key() -> None:
    assert render("{flow_name}/{parameters[day]}/{task_name}-{n:03d}.pkl") == (
        "etl/2024-06-01/load-003.pkl"
    )
    assert render("{flow_run_id}/{task_run_id}") == f"{FLOW_RUN}/{RUN}"
    assert render("{parameters[task_name]}") == "shadowed"
    assert render("plain") == "plain"


@pytest.mark.parametrize("template", ["{missing}", "{parameters[missing]}", "{0}", "{n.real.x}"])
def test_render_storage_key_missing_field(template: str) -> None:
    field = template.strip("{}")
    with pytest.raises(ConfigurationError, match=re.escape(f"uses {{{field}}},")) as info:
        render(template)
    assert "parameters[name]" in str(info.value)  # it says what is available


def test_render_storage_key_outside_a_flow() -> None:
    assert render("{task_name}", flow_run_id=None) == "load"
    with pytest.raises(ConfigurationError, match="outside of a flow run"):
        render("{flow_name}/x", flow_run_id=None)


def test_render_storage_key_malformed_template() -> None:
    with pytest.raises(ConfigurationError, match="not a valid template"):
        render("{unclosed")
