"""Lua scripting through redis-py: EVAL / EVALSHA / SCRIPT as client libraries use them
(`register_script` sends EVALSHA and falls back to EVAL on NOSCRIPT), reply conversions,
errors, and a script's writes applied as one unit."""
import redis

from _util import client, expect_error

r = client()
r.flushall()

# register_script: EVALSHA first, EVAL on NOSCRIPT, EVALSHA afterwards.
r.script_flush()
incr_by = r.register_script("return redis.call('INCRBY', KEYS[1], ARGV[1])")
assert incr_by(keys=["ctr"], args=[5]) == 5
assert incr_by(keys=["ctr"], args=[2]) == 7
assert r.script_exists(incr_by.sha) == [True]

# Conversions (RESP2): numbers truncate, tables stop at nil, status and error tables.
assert r.eval("return 3.99", 0) == 3
assert r.eval("return {1, 'two', {3}, nil, 5}", 0) == [1, b"two", [3]]
assert r.eval("return redis.status_reply('FINE')", 0) == b"FINE"
assert r.eval("return redis.call('GET', 'missing')", 0) is None
assert r.eval("return redis.call('GET', 'missing') == false and 1 or 0", 0) == 1
r.hset("h", mapping={"a": "1"})
assert r.eval("return redis.call('HGETALL', KEYS[1])", 1, "h") == [b"a", b"1"]
assert r.eval("return redis.sha1hex('')", 0) == b"da39a3ee5e6b4b0d3255bfef95601890afd80709"

# Errors, worded as Redis 7 words them.
r.set("s", "text")
expect_error(lambda: r.eval("return redis.call('INCR', 's')", 0),
             "value is not an integer or out of range script:")
# pcall hands the error to the script as a table; returned, it is the reply (no position).
caught = r.eval("local e = redis.pcall('INCR', 's'); return {type(e), e.err}", 0)
assert caught == [b"table", b"ERR value is not an integer or out of range"], caught
try:
    r.eval("return redis.pcall('INCR', 's')", 0)
    raise AssertionError("no error")
except redis.ResponseError as e:
    assert "out of range" in str(e) and "script:" not in str(e), e
expect_error(lambda: r.eval("return missing_global", 0),
             "Script attempted to access nonexistent global variable 'missing_global'")
expect_error(lambda: r.evalsha("0" * 40, 0), "No matching script")
expect_error(lambda: r.eval("return (", 0), "Error compiling script")
expect_error(lambda: r.eval_ro("return redis.call('SET', 'k', 'v')", 1, "k"),
             "Write commands are not allowed from read-only scripts")

# A queue-style script: move a job between lists and record it, all or nothing.
r.rpush("queue", "job1", "job2")
move = r.register_script("""
local job = redis.call('LPOP', KEYS[1])
if not job then return false end
redis.call('RPUSH', KEYS[2], job)
redis.call('HSET', KEYS[3], job, ARGV[1])
return job
""")
assert move(keys=["queue", "active", "started"], args=["t1"]) == b"job1"
assert r.lrange("active", 0, -1) == [b"job1"]
assert r.hget("started", "job1") == b"t1"
assert r.llen("queue") == 1

# A SELECT inside a script does not change the caller's database.
r.eval("redis.call('SELECT', 1); redis.call('SET', 'in1', 'x')", 0)
assert r.get("in1") is None
assert r.execute_command("SELECT", 1) and r.get("in1") == b"x"
r.execute_command("SELECT", 0)

print("ok: scripting")
