"""redis-py: basic commands of every family, binary safety, error mapping."""
from _util import client, expect_error

r = client()
assert r.ping() is True
assert r.flushall() is True
assert r.set("k", "v") is True
assert r.get("k") == b"v"
assert r.get("nosuch") is None
assert r.set("k", "w", nx=True) is None
assert r.set("k", "w", xx=True, get=True) == b"v"
assert r.set("bin", b"\x00\xff\r\n") and r.get("bin") == b"\x00\xff\r\n"
assert r.incr("n") == 1 and r.incrby("n", 41) == 42 and r.decr("n") == 41
assert r.incrbyfloat("f", 1.5) == 1.5
assert r.mset({"a": 1, "b": 2}) is True
assert r.mget("a", "b", "nosuch") == [b"1", b"2", None]
assert r.append("a", "x") == 2
assert r.expire("a", 100) is True and r.ttl("a") == 100
assert r.persist("a") is True and r.ttl("a") == -1
assert r.exists("a", "b", "nosuch") == 2
assert r.delete("a", "b") == 2
assert r.type("k") == b"string"
assert r.rpush("l", "a", "b", "c") == 3
assert r.lrange("l", 0, -1) == [b"a", b"b", b"c"]
assert r.lpop("l") == b"a" and r.rpop("l", 2) == [b"c", b"b"]
assert r.hset("h", mapping={"f1": "v1", "f2": "v2"}) == 2
assert r.hgetall("h") == {b"f1": b"v1", b"f2": b"v2"}
assert r.hincrby("h", "n", 5) == 5
assert r.sadd("s", "x", "y", "x") == 2
assert r.smembers("s") == {b"x", b"y"}
assert r.zadd("z", {"a": 1.5, "b": 0.5}) == 2
assert r.zrange("z", 0, -1, withscores=True) == [(b"b", 0.5), (b"a", 1.5)]
assert r.zscore("z", "a") == 1.5
assert r.zincrby("z", 1, "b") == 1.5
assert sorted(r.keys("*")) == sorted([b"k", b"bin", b"n", b"f", b"h", b"s", b"z"])
assert r.dbsize() == 7
expect_error(lambda: r.lpush("k", "x"), "WRONGTYPE")
expect_error(lambda: r.incr("k"), "not an integer")
expect_error(lambda: r.execute_command("NOSUCHCOMMAND"), "unknown command")
print("ok: basic")
