"""What a query function raises when a request cannot be done; the API maps each to a status.

The message is one sentence for the caller, starting with the field at fault where there
is one. Raising rolls back the request's transaction, so nothing is half-written.
"""

from __future__ import annotations


class ModelError(Exception):
    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class NotFound(ModelError):
    """The resource the request names does not exist (404)."""


class Conflict(ModelError):
    """The request clashes with stored data: a duplicate name, a resource still in use (409)."""


class Invalid(ModelError):
    """A field's value cannot be used, for a reason only the database knows (422)."""
