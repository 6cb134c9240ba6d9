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


def start_celery_worker(app_dir, app):
    """A Celery worker process for the app module `app` in `app_dir` (solo pool, quiet)."""
    import subprocess
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", app, "worker", "--pool=solo",
         "--concurrency=1", "--loglevel=WARNING", "--without-gossip", "--without-mingle",
         "--without-heartbeat"],
        cwd=app_dir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def stop_celery_worker(worker):
    """Stop a worker from start_celery_worker; fail if its output shows an error."""
    import subprocess
    worker.terminate()
    try:
        out, _ = worker.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        worker.kill()
        out, _ = worker.communicate()
    if b"unknown command" in out or b"Traceback" in out:
        raise AssertionError("celery worker failed:\n" + out.decode(errors="replace")[-3000:])
