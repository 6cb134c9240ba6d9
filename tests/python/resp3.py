"""redis-py with protocol=3: HELLO 3 handshake, RESP3 maps/sets/doubles/nulls, push messages."""
import time
from _util import client

r = client(protocol=3)
assert r.ping() is True
r.flushall()
hello = r.execute_command("HELLO", "3")
assert hello[b"proto"] == 3, hello
r.hset("h", mapping={"a": "1", "b": "2"})
assert r.hgetall("h") == {b"a": b"1", b"b": b"2"}
r.sadd("s", "x", "y")
assert r.smembers("s") == {b"x", b"y"}
r.zadd("z", {"m": 1.5})
assert r.zscore("z", "m") == 1.5
assert r.zrange("z", 0, -1, withscores=True) == [[b"m", 1.5]] or r.zrange(
    "z", 0, -1, withscores=True
) == [(b"m", 1.5)]
assert r.get("nosuch") is None
assert r.incrbyfloat("f", 0.5) == 0.5

p = r.pubsub()
p.subscribe("c")
deadline = time.time() + 5
msgs = []
r.publish("c", "pushed")
while time.time() < deadline and len(msgs) < 2:
    m = p.get_message(timeout=0.1)
    if m:
        msgs.append(m)
assert [m["type"] for m in msgs] == ["subscribe", "message"], msgs
assert msgs[1]["data"] == b"pushed"
p.close()
print("ok: resp3")
