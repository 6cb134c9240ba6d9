"""Shared bits for the redis-py client checks (plain python3, no pytest).

Each script takes `--port N`, connects to 127.0.0.1:N, asserts, prints "ok: <name>" and exits 0;
any failure raises (non-zero exit with a traceback)."""
import argparse
import sys

try:
    import redis  # noqa: F401
except ImportError:  # pragma: no cover
    sys.exit("redis-py is not installed: run `pip install redis` (scripts/test.sh does)")


def port():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    return ap.parse_args().port


def client(**kw):
    import redis
    return redis.Redis(host="127.0.0.1", port=port(), socket_timeout=10, **kw)


def expect_error(fn, fragment):
    import redis
    try:
        fn()
    except redis.ResponseError as e:
        assert fragment in str(e), f"error {e!r} lacks {fragment!r}"
        return
    raise AssertionError(f"expected an error containing {fragment!r}")
