"""redis-py: SUBSCRIBE/PSUBSCRIBE, message delivery, PUBSUB NUMSUB, unsubscribe."""
import time
from _util import client

r = client()
p = r.pubsub()


def next_message(timeout=5.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        m = p.get_message(timeout=0.1)
        if m is not None:
            return m
    raise AssertionError("no pub/sub message within timeout")


p.subscribe("news")
assert next_message() == {"type": "subscribe", "pattern": None, "channel": b"news", "data": 1}
p.psubscribe("n*")
assert next_message()["type"] == "psubscribe"
assert r.pubsub_numsub("news") == [(b"news", 1)]
assert r.pubsub_numpat() == 1
assert r.publish("news", "hello") == 2
got = [next_message(), next_message()]
kinds = sorted(m["type"] for m in got)
assert kinds == ["message", "pmessage"], got
assert all(m["data"] == b"hello" for m in got)
p.unsubscribe("news")
assert next_message()["type"] == "unsubscribe"
p.punsubscribe("n*")
assert next_message()["type"] == "punsubscribe"
assert r.publish("news", "nobody") == 0
p.close()
print("ok: pubsub")
