"""redis-py: non-transactional pipelines (many commands in one write) and errors inside them."""
from _util import client

r = client()
r.flushall()
with r.pipeline(transaction=False) as p:
    for i in range(1000):
        p.set(f"key:{i}", i)
    for i in range(1000):
        p.incr(f"key:{i}")
    results = p.execute()
assert results[:1000] == [True] * 1000
assert results[1000:] == list(range(1, 1001))
assert r.dbsize() == 1000
assert r.get("key:999") == b"1000"

with r.pipeline(transaction=False) as p:
    p.set("s", "str").lpush("s", "x").get("s")
    out = p.execute(raise_on_error=False)
assert out[0] is True
assert "WRONGTYPE" in str(out[1])
assert out[2] == b"str"
print("ok: pipeline")
