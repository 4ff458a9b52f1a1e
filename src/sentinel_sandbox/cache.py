"""The cart cache: a real Redis (``--redis-url``) or an in-memory stand-in.

Healthy entries are ``<prefix>session:NNNNN`` holding JSON carts; poisoning writes
``<prefix>session:pNNNNN`` holding bytes no JSON decoder accepts. The service that reads
the cache counts poisoned entries live (SCAN + MGET every tick), so deleting them —
``FLUSHDB``, or ``SCAN``/``UNLINK`` of the prefix, e.g. Sentinel's ``flush_redis_cache``
— heals it on the next tick.
"""

from __future__ import annotations

import json
from typing import Protocol

import redis

POISON = b"\x00\xff\x00POISONED-CART"


class CacheStore(Protocol):
    def seed(self, prefix: str, n: int) -> None: ...
    def poison(self, prefix: str, n: int) -> int: ...
    def count(self, prefix: str) -> tuple[int, int]: ...
    def clear(self, prefix: str) -> None: ...


def _healthy(i: int) -> bytes:
    return json.dumps(
        {"user": f"u{i:05d}", "items": [{"sku": f"SKU-{i % 17:03d}", "qty": 1 + i % 3}]}
    ).encode()


class MemoryCache:
    """In-process stand-in used when no Redis URL is given."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    def seed(self, prefix: str, n: int) -> None:
        for i in range(n):
            self.data[f"{prefix}session:{i:05d}"] = _healthy(i)

    def poison(self, prefix: str, n: int) -> int:
        for i in range(n):
            self.data[f"{prefix}session:p{i:05d}"] = POISON
        return n

    def count(self, prefix: str) -> tuple[int, int]:
        vals = [v for k, v in self.data.items() if k.startswith(prefix)]
        return sum(1 for v in vals if v.startswith(POISON[:3])), len(vals)

    def clear(self, prefix: str) -> None:
        for k in [k for k in self.data if k.startswith(prefix)]:
            del self.data[k]


class RedisCache:
    """A real Redis; every call times out after a second and never retries."""

    def __init__(self, url: str) -> None:
        self.r = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        self.url = url

    def seed(self, prefix: str, n: int) -> None:
        pipe = self.r.pipeline(transaction=False)
        for i in range(n):
            pipe.set(f"{prefix}session:{i:05d}", _healthy(i))
        pipe.execute()

    def poison(self, prefix: str, n: int) -> int:
        pipe = self.r.pipeline(transaction=False)
        for i in range(n):
            pipe.set(f"{prefix}session:p{i:05d}", POISON)
        pipe.execute()
        return n

    def _keys(self, prefix: str) -> list[bytes]:
        return list(self.r.scan_iter(match=f"{_escape(prefix)}*", count=1000))

    def count(self, prefix: str) -> tuple[int, int]:
        keys = self._keys(prefix)
        poisoned = 0
        for i in range(0, len(keys), 500):
            for v in self.r.mget(keys[i : i + 500]):
                if isinstance(v, bytes) and v.startswith(POISON[:3]):
                    poisoned += 1
        return poisoned, len(keys)

    def clear(self, prefix: str) -> None:
        keys = self._keys(prefix)
        for i in range(0, len(keys), 500):
            self.r.unlink(*keys[i : i + 500])


def _escape(prefix: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in prefix)
