"""Run ids: time-ordered, and made without giving up the GIL.

``uuid.uuid4()`` reads ``os.urandom``, a system call that releases the GIL. With the
recorder's thread busy encoding a batch, the flow's thread then waits up to a switch
interval (5 ms) to get it back, once per task: a fifth of a sequential flow's time went
there. Ids only need to be unique, not secret, so a generator seeded from ``os.urandom``
serves; it is reseeded in a forked child, which would otherwise repeat the parent's ids.

The ids are UUIDv7 (RFC 9562): the millisecond comes first, so the runs recorded
together sit together in the database's primary-key index and a batch of inserts
touches a few pages at its right edge, not a random page per run. Random ids made each
batch dirty more of the index the larger the table grew.
"""

from __future__ import annotations

import os
import random
import time
import uuid

_generator = random.Random()
os.register_at_fork(after_in_child=_generator.seed)

_VERSION_7 = 0x7 << 76
_VARIANT_RFC = 0b10 << 62
_RAND_A = ((1 << 12) - 1) << 64
_RAND_B = (1 << 62) - 1

# ``uuid.UUID(int=...)`` checks which of its five ways of being called this is: half of
# making an id. A UUID is its two slots; set them as its own constructor does.
_allocate = object.__new__
_set_slot = object.__setattr__
_UNKNOWN_SAFETY = uuid.SafeUUID.unknown


def new_id() -> uuid.UUID:
    """A time-ordered (version 7) UUID: 48 bits of Unix milliseconds, 74 random."""
    millis = time.time_ns() // 1_000_000
    bits = _generator.getrandbits(74)
    rand_a = (bits >> 62) << 64  # the top 12 random bits
    value = (millis << 80) | _VERSION_7 | rand_a | _VARIANT_RFC | (bits & _RAND_B)
    made: uuid.UUID = _allocate(uuid.UUID)
    _set_slot(made, "int", value)
    _set_slot(made, "is_safe", _UNKNOWN_SAFETY)
    return made
