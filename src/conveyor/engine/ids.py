"""Run ids, made without giving up the GIL.

``uuid.uuid4()`` reads ``os.urandom``, a system call that releases the GIL. With the
recorder's thread busy encoding a batch, the flow's thread then waits up to a switch
interval (5 ms) to get it back, once per task: a fifth of a sequential flow's time went
there. Ids only need to be unique, not secret, so a generator seeded from ``os.urandom``
serves; it is reseeded in a forked child, which would otherwise repeat the parent's ids.
"""

from __future__ import annotations

import os
import random
import uuid

_generator = random.Random()
os.register_at_fork(after_in_child=_generator.seed)


def new_id() -> uuid.UUID:
    """A random (version 4) UUID."""
    return uuid.UUID(int=_generator.getrandbits(128), version=4)
