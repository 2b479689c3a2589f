"""Run ids: time-ordered version 7 UUIDs, and a forked child does not repeat its parent's."""

from __future__ import annotations

import os
import pickle
import time
import uuid

from conveyor.engine.ids import new_id


def test_ids_are_unique_version_7_uuids() -> None:
    ids = {new_id() for _ in range(10_000)}
    assert len(ids) == 10_000
    assert all(i.version == 7 and i.variant == uuid.RFC_4122 for i in ids)


def test_an_id_is_a_uuid_like_any_other() -> None:
    # Made without UUID's constructor: equal, hashed, printed and pickled as one made with it.
    made = new_id()
    same = uuid.UUID(int=made.int)
    assert (made, hash(made), str(made), made.is_safe) == (
        same,
        hash(same),
        str(same),
        same.is_safe,
    )
    assert pickle.loads(pickle.dumps(made)) == same
    assert uuid.UUID(str(made)) == made


def test_ids_start_with_the_millisecond_they_were_made() -> None:
    before = time.time_ns() // 1_000_000
    first = new_id()
    time.sleep(0.002)
    second = new_id()
    after = time.time_ns() // 1_000_000
    assert before <= first.int >> 80 < second.int >> 80 <= after
    assert first < second  # ids made later sort later (index locality)


def test_a_forked_child_makes_other_ids_than_its_parent() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next id, then leave without cleanup
        os.write(write, new_id().bytes)
        os._exit(0)
    os.close(write)
    child_id = uuid.UUID(bytes=os.read(read, 16))
    os.close(read)
    os.waitpid(pid, 0)
    assert child_id != new_id()
