"""redis-py: MULTI/EXEC pipelines, WATCH with a concurrent writer, the transaction() helper."""
import redis
from _util import client

r = client()
other = client()
r.flushall()

with r.pipeline() as p:  # transaction=True by default
    p.set("a", 1).incr("a").get("a")
    assert p.execute() == [True, 2, b"2"]

# WATCH + a write from another connection -> WatchError
r.set("w", 1)
with r.pipeline() as p:
    p.watch("w")
    assert p.get("w") == b"1"
    other.set("w", 2)
    p.multi()
    p.set("w", 3)
    try:
        p.execute()
        raise AssertionError("EXEC should have failed after the watched key changed")
    except redis.WatchError:
        pass
assert r.get("w") == b"2"

# transaction() retries until it succeeds
attempts = []


def bump(pipe):
    value = int(pipe.get("w"))
    if not attempts:
        other.set("w", value + 100)  # interfere once
    attempts.append(value)
    pipe.multi()
    pipe.set("w", value + 1)


r.transaction(bump, "w")
assert len(attempts) == 2, attempts
assert r.get("w") == b"103"

# Queue-time error aborts the whole transaction (EXECABORT)
with r.pipeline() as p:
    p.set("x", 1)
    p.execute_command("NOSUCHCOMMAND")
    try:
        p.execute()
        raise AssertionError("expected EXECABORT")
    except redis.ResponseError as e:
        assert "EXECABORT" in str(e) or "unknown command" in str(e), e
assert r.get("x") is None
print("ok: transactions")
