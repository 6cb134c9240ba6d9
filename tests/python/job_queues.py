"""Real job-queue libraries against the server: a Celery worker (kombu's Redis transport,
which runs Lua scripts, and the Redis result backend) runs a task, and an RQ worker runs a
job with its scheduler (RQ's lock scripts). Both must be installed (scripts/test.sh does)."""
import os
import sys
import tempfile
import time

from _util import port, start_celery_worker, stop_celery_worker

P = port()
import redis  # noqa: E402

redis.Redis(port=P).flushall()

# --- Celery: a worker process with the solo pool; the client waits for the result.
app_dir = tempfile.mkdtemp(prefix="sb-celery-")
with open(os.path.join(app_dir, "sbtasks.py"), "w") as f:
    f.write(f"""
from celery import Celery
app = Celery("sbtasks", broker="redis://127.0.0.1:{P}/0", backend="redis://127.0.0.1:{P}/1")
app.conf.broker_connection_retry_on_startup = True
@app.task
def add(x, y):
    return x + y
""")
sys.path.insert(0, app_dir)
worker = start_celery_worker(app_dir, "sbtasks")
try:
    from sbtasks import add  # noqa: E402
    results = [add.delay(i, i) for i in range(5)]
    got = [res.get(timeout=30) for res in results]
    assert got == [0, 2, 4, 6, 8], got
finally:
    stop_celery_worker(worker)
print("ok: celery")

# --- RQ: enqueue, then a burst worker with its scheduler runs the job.
from rq import Queue, Worker  # noqa: E402

conn = redis.Redis(port=P)
q = Queue("default", connection=conn)
job = q.enqueue("builtins.len", "strongbox")
w = Worker([q], connection=conn)
deadline = time.time() + 30
w.work(burst=True, with_scheduler=True)
job.refresh()
assert job.get_status() == "finished", job.get_status()
assert job.return_value() == 9
print("ok: rq")
