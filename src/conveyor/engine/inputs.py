"""Wrappers that change how a task input is treated, and walking inputs for futures."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from conveyor.engine.futures import FutureList

T = TypeVar("T")


class _Annotation(Generic[T]):
    __slots__ = ("value",)

    def __init__(self, value: T) -> None:
        self.value = value

    def unwrap(self) -> T:
        return self.value

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.value!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.value,))


class unmapped(_Annotation[T]):
    """Pass the same value to every mapped call instead of iterating over it."""


class allow_failure(_Annotation[T]):
    """Run the downstream task even if this upstream future failed; it gets the exception."""


SCALARS = frozenset({int, float, str, bytes, bool, type(None), complex})
"""Types whose values are leaves with nothing inside: never a future."""
_COLLECTIONS = frozenset({list, tuple, set, frozenset, dict})


def _is_collection(value: Any) -> bool:
    # Exact builtins (and named tuples) only: subclasses may not rebuild from an iterable.
    # A FutureList (what Task.map returns) is entered too, and rebuilt as a plain list.
    kind = type(value)
    return (
        kind in _COLLECTIONS
        or kind is FutureList
        or (isinstance(value, tuple) and hasattr(kind, "_fields"))
    )


def walk(value: Any, visit: Callable[[Any, bool], Any], keep_wrappers: bool = False) -> Any:
    """Rebuild ``value`` with ``visit(leaf, allowed_to_fail)`` applied to non-collection leaves.

    Only plain lists, tuples, sets and dicts are entered; anything else is a leaf. Returns
    the very same object when nothing inside changed, so untouched inputs are not copied.
    ``allow_failure``/``unmapped`` wrappers are removed unless ``keep_wrappers``.
    """
    return _walk(value, visit, False, keep_wrappers)


def _walk(value: Any, visit: Callable[[Any, bool], Any], allowed: bool, keep: bool) -> Any:
    kind = type(value)
    if kind in SCALARS:
        return value
    if kind is allow_failure or kind is unmapped:
        inner = _walk(value.value, visit, allowed or kind is allow_failure, keep)
        if not keep:
            return inner
        return value if inner is value.value else kind(inner)
    if _is_collection(value):
        if kind is dict:
            changed = False
            items = []
            for k, v in value.items():
                nv = _walk(v, visit, allowed, keep)
                changed = changed or nv is not v
                items.append((k, nv))
            return dict(items) if changed else value
        new = [_walk(v, visit, allowed, keep) for v in value]
        if all(a is b for a, b in zip(new, value, strict=True)):
            return value
        if isinstance(value, tuple) and hasattr(value, "_fields"):
            return type(value)(*new)
        if isinstance(value, list):
            return new  # also turns a FutureList of futures into a list of values
        return type(value)(new)
    return visit(value, allowed)


def iter_leaves(value: Any) -> Iterator[tuple[Any, bool]]:
    """Yield ``(leaf, allowed_to_fail)`` for every non-scalar leaf inside ``value``."""
    kind = type(value)
    if kind in SCALARS:
        return
    if kind is allow_failure:
        for leaf, _ in iter_leaves(value.value):
            yield leaf, True
        return
    if kind is unmapped:
        yield from iter_leaves(value.value)
        return
    if kind is dict:
        items: Any = value.values()
    elif _is_collection(value):
        items = value
    else:
        yield value, False
        return
    for v in items:
        if type(v) not in SCALARS:  # most inputs are: no generator made for them
            yield from iter_leaves(v)


@dataclass(frozen=True)
class UpstreamPlaceholder:
    """Stands for the n-th upstream future while a call travels to a cluster."""

    index: int
