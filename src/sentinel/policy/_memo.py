"""A per-instance cache of derived lookup tables for the frozen policy models.

`Facts`, `Inventory` and `PolicyDocument` are frozen pydantic models that callers treat
as plain data. The engine still wants lookup tables derived from them (pods by key,
history timestamps by target, ...), built on first use and kept for the next decision
on the same object. A `Memo` carries those tables as a private attribute without being
seen: every Memo equals every other (model equality ignores it), copies and pickles
start empty, and each table remembers the list it was built from (`derived`), so a
`model_copy(update=...)`, which shares the Memo with its original, never reads a table
built from the original's list.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

from pydantic import BaseModel

__all__ = ["Memo", "derived", "derived_on_reuse", "memo_of"]

_V = TypeVar("_V")


class Memo:
    """Derived tables by name, each with the source list it was built from."""

    __slots__ = ("tables",)

    def __init__(self) -> None:
        self.tables: dict[str, tuple[list[Any], int, object]] = {}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Memo)

    def __hash__(self) -> int:
        return 0

    def __copy__(self) -> Memo:
        return Memo()

    def __deepcopy__(self, memo: dict[int, Any]) -> Memo:
        return Memo()

    def __reduce__(self) -> tuple[type[Memo], tuple[()]]:
        return (Memo, ())

    def __repr__(self) -> str:
        return "Memo()"


def memo_of(model: BaseModel) -> Memo:
    """The Memo in a model's private attribute `_memo`.

    Read straight from the private dict: `model._memo` goes through pydantic's
    `__getattr__` fallback, which costs more than the lookup the memo saves.
    """
    private = model.__pydantic_private__
    assert private is not None
    return cast(Memo, private["_memo"])


def derived(memo: Memo, name: str, source: list[Any], build: Callable[[list[Any]], _V]) -> _V:
    """The table `name` built from `source` by `build`, built now if not yet (or stale).

    A table is reused only for the very same list object at the same length: the models
    are frozen, so a different list means a different model (a copy with an update).
    """
    hit = memo.tables.get(name)
    if hit is not None and hit[0] is source and hit[1] == len(source) and hit[2] is not _UNBUILT:
        return cast(_V, hit[2])
    table = build(source)
    memo.tables[name] = (source, len(source), table)
    return table


def derived_on_reuse(
    memo: Memo, name: str, source: list[Any], build: Callable[[list[Any]], _V]
) -> _V | None:
    """Like `derived`, but None on the first use: the caller scans `source` that once.

    Building a table costs several scans, so it pays only for a second lookup. Facts
    built for a single decision (as the workflow does) never build it; facts kept for
    several decisions build it on the second lookup.
    """
    hit = memo.tables.get(name)
    if hit is not None and hit[0] is source and hit[1] == len(source):
        if hit[2] is not _UNBUILT:
            return cast(_V, hit[2])
        table = build(source)
        memo.tables[name] = (source, len(source), table)
        return table
    memo.tables[name] = (source, len(source), _UNBUILT)
    return None


_UNBUILT = object()
