"""redis-py with ACL users: username/password in the connection (AUTH user pass, and
HELLO 3 AUTH user pass with protocol=3), NOPERM errors, ACL commands through the client API."""
import redis

from _util import client, expect_error, port

admin = client(decode_responses=True)
assert admin.acl_setuser(
    "pyuser", enabled=True, passwords=["+pypass"], keys=["py:*"],
    commands=["+@all", "-@dangerous"], channels=["news"]) is True
assert "pyuser" in admin.acl_users()
info = admin.acl_getuser("pyuser")
assert "on" in info["flags"], info
assert info["keys"] in (["~py:*"], "~py:*"), info

for proto in (2, 3):
    u = redis.Redis(host="127.0.0.1", port=port(), username="pyuser", password="pypass",
                    protocol=proto, decode_responses=True, socket_timeout=10)
    assert u.acl_whoami() == "pyuser"
    assert u.set("py:k", "v") is True
    assert u.get("py:k") == "v"
    expect_error(lambda: u.get("other"),
                 "this user has no permissions to access one of the keys used as arguments")
    expect_error(lambda: u.flushall(),
                 "this user has no permissions to run the 'flushall' command")
    expect_error(lambda: u.publish("sports", "x"),
                 "this user has no permissions to access one of the channels used as arguments")
    assert u.publish("news", "x") == 0
    u.close()

bad = redis.Redis(host="127.0.0.1", port=port(), username="pyuser", password="wrong",
                  socket_timeout=10)
try:
    bad.ping()
    raise AssertionError("a wrong password was accepted")
except redis.AuthenticationError as e:
    assert "invalid username-password pair" in str(e), e

log = admin.acl_log()
reasons = {e["reason"] for e in log}
assert {"key", "command", "channel", "auth"} <= reasons, log
assert admin.acl_deluser("pyuser") == 1
print("ok: acl")
