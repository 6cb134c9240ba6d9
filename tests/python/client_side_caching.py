"""redis-py client-side caching (redis-py >= 5.1, RESP3): CLIENT TRACKING ON at connect, reads
served from the local cache, and the server's invalidation pushes evicting entries when another
client writes, deletes, expires or flushes."""
import sys
import time

from _util import client

try:
    from redis.cache import CacheConfig
except ImportError:  # redis-py < 5.1 has no client-side caching
    print("skip: client_side_caching (redis-py without redis.cache)")
    sys.exit(0)

# redis-py enables its cache only for servers announcing 7.4 or later (a compatibility policy:
# what it uses — CLIENT TRACKING ON and RESP3 `invalidate` pushes — is Redis 6's protocol), and
# Strongbox announces 7.0.15 like the redis-server it follows; lower the gate for this check.
from redis.connection import CacheProxyConnection  # noqa: E402

CacheProxyConnection.MIN_ALLOWED_VERSION = "7.0.0"

cached = client(protocol=3, cache_config=CacheConfig(max_size=100))
other = client()
other.flushall()
cache = cached.get_cache()

info = cached.client_trackinginfo()
flags = info.get(b"flags", info.get("flags"))
assert b"on" in flags or "on" in flags, info


def entries():
    return len(cache.collection)


def wait_until(cond, what):
    """The invalidation is read when the connection is used next: poke it with PING."""
    deadline = time.time() + 5
    while time.time() < deadline:
        cached.ping()
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}; cache: {dict(cache.collection)!r}")


other.set("k", "v1")
assert cached.get("k") == b"v1"
assert entries() == 1, dict(cache.collection)
# Served from the cache: the server is not asked (its value changes behind a disabled client's
# back only through commands that invalidate, so equal answers prove nothing; count instead).
calls_before = int(other.info("commandstats").get("cmdstat_get", {}).get("calls", 0))
for _ in range(5):
    assert cached.get("k") == b"v1"
calls_after = int(other.info("commandstats").get("cmdstat_get", {}).get("calls", 0))
assert calls_after == calls_before, (calls_before, calls_after)

# Another client's write evicts the entry; the next read sees the new value.
other.set("k", "v2")
wait_until(lambda: entries() == 0, "the invalidation of k after SET")
assert cached.get("k") == b"v2"

# DEL, a hash field change, an expiry.
other.hset("h", "f", "1")
assert cached.hget("h", "f") == b"1"
other.delete("k")
other.hset("h", "f", "2")
wait_until(lambda: entries() == 0, "the invalidations of k (DEL) and h (HSET)")
assert cached.get("k") is None
assert cached.hget("h", "f") == b"2"
other.set("e", "x", px=100)
assert cached.get("e") == b"x"
wait_until(lambda: cached.get("e") is None, "the expiry of e")

# FLUSHALL: every entry goes.
other.mset({"a": "1", "b": "2"})
assert cached.get("a") == b"1" and cached.get("b") == b"2"
assert entries() >= 2
other.flushall()
wait_until(lambda: entries() == 0, "the FLUSHALL invalidation")
assert cached.get("a") is None

cached.close()
other.close()
print("ok: client_side_caching")
