"""In-memory caches of a vHSM: key records (short-lived) and key handles.

A key record (state, versions, owner) may be changed by any member of the
group, so it is trusted for ``ttl`` seconds only.  The material of one key
version never changes, so its unwrapped handle is kept until evicted (LRU);
whether it may be used is always decided from a fresh-enough record.
"""

import collections
import threading
import time
from collections.abc import Callable
from typing import Any


class RecordCache:
    """Key records by key id, each trusted for ``ttl`` seconds."""

    def __init__(self, ttl: float,
                 clock: Callable[[], float] = time.monotonic):
        self._ttl = ttl
        self._clock = clock
        self._items: dict[str, tuple[float, Any]] = {}

    def get(self, key_id: str):
        item = self._items.get(key_id)
        if item is None or self._clock() - item[0] > self._ttl:
            return None
        return item[1]

    def put(self, key_id: str, record) -> None:
        if self._ttl > 0:
            self._items[key_id] = (self._clock(), record)

    def drop(self, key_id: str) -> None:
        self._items.pop(key_id, None)


class HandleCache:
    """Unwrapped key handles by ``(key_id, version)``, least recently used
    evicted first."""

    def __init__(self, size: int):
        self._size = size
        self._items: collections.OrderedDict = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, key_id: str, version: int):
        with self._lock:
            handle = self._items.get((key_id, version))
            if handle is not None:
                self._items.move_to_end((key_id, version))
            return handle

    def put(self, key_id: str, version: int, handle) -> None:
        if self._size <= 0:
            return
        with self._lock:
            self._items[(key_id, version)] = handle
            self._items.move_to_end((key_id, version))
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def drop_key(self, key_id: str) -> None:
        with self._lock:
            for item in [k for k in self._items if k[0] == key_id]:
                del self._items[item]

    def __len__(self) -> int:
        return len(self._items)
