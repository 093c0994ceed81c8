"""What the report computes from a results table, kept once per table for as long as it lives.

Every figure, table and claim reads the same prepared table (`views.prepare`) and selects the
same experiment's rows, the same curves, the same learning-rate choices, over and over; doing
that work again at every call was most of the report's time. A prepared table is never modified
(the report only derives new frames from it), so a result computed from it can be kept with it.

The key is the table object itself: its identity, checked through a weak reference (so a new
table that reuses a collected one's address is never taken for it), and every entry is dropped
when the table is garbage-collected. The values are shared: callers must not modify a frame
they get from here (none does: they derive new frames from it).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")

_TABLES: dict[int, tuple[weakref.ref[Any], dict[Hashable, Any]]] = {}
"""Per live table (by ``id``): a weak reference to it and its computed values by key."""


def _forget(table_id: int, tables: dict[int, Any] = _TABLES) -> Callable[[weakref.ref[Any]], None]:
    # ``tables`` bound now: at interpreter exit the module's globals may already be gone
    def forget(ref: weakref.ref[Any]) -> None:
        entry = tables.get(table_id)
        if entry is not None and entry[0] is ref:  # not a newer table at the same address
            del tables[table_id]

    return forget


def once(table: Any, key: Hashable, compute: Callable[[], T]) -> T:
    """``compute()``, computed on the first call for this ``table`` object and ``key``, then
    the same value for as long as ``table`` lives."""
    entry = _TABLES.get(id(table))
    if entry is None or entry[0]() is not table:
        entry = (weakref.ref(table, _forget(id(table))), {})
        _TABLES[id(table)] = entry
    values = entry[1]
    if key not in values:
        values[key] = compute()
    return values[key]
