"""Celery tasks survive kill -9 (run by tests/clients.rs in two phases around a kill -9 of the
server under appendfsync always):
  --phase enqueue --n N : send N tasks (each publish acknowledged), print their ids
  --phase work --n N    : a Celery worker process runs the queue until N results are stored
                          or nothing is left queued; print the ids whose result is right"""
import argparse
import os
import sys
import tempfile
import time

import redis

from _util import start_celery_worker, stop_celery_worker

ap = argparse.ArgumentParser()
ap.add_argument("--port", type=int, required=True)
ap.add_argument("--phase", choices=["enqueue", "work"], required=True)
ap.add_argument("--n", type=int, default=0)
a = ap.parse_args()

app_dir = tempfile.mkdtemp(prefix="sb-celery-")
with open(os.path.join(app_dir, "sbdurable.py"), "w") as f:
    f.write(f"""
from celery import Celery
app = Celery("sbdurable", broker="redis://127.0.0.1:{a.port}/0",
             backend="redis://127.0.0.1:{a.port}/1")
app.conf.broker_connection_retry_on_startup = True
app.conf.result_expires = 3600
@app.task
def size(i, pad):
    if pad != "x" * (i % 300):
        raise ValueError("payload damaged")
    return i
""")
sys.path.insert(0, app_dir)
from sbdurable import app, size  # noqa: E402

broker = redis.Redis(port=a.port, db=0)
if a.phase == "enqueue":
    redis.Redis(port=a.port).flushall()
    for i in range(a.n):
        size.apply_async((i, "x" * (i % 300)), task_id=f"job-{i}")
        print(f"job-{i}", flush=True)
    sys.exit(0)

worker = start_celery_worker(app_dir, "sbdurable")
try:
    # Until every result is stored, or the queue is empty and nothing more finished for 2 s
    # (tasks lost: the ids printed then fall short of those sent).
    backend = redis.Redis(port=a.port, db=1)
    last, since = -1, time.time()
    deadline = time.time() + 90
    while time.time() < deadline:
        done = sum(1 for _ in backend.scan_iter("celery-task-meta-*", count=1000))
        if done != last:
            last, since = done, time.time()
        if done >= a.n or (broker.llen("celery") == 0 and time.time() - since > 2):
            break
        time.sleep(0.1)
finally:
    stop_celery_worker(worker)
ok = []
for i in range(a.n):
    res = app.AsyncResult(f"job-{i}")
    if res.successful() and res.result == i:
        ok.append(f"job-{i}")
print("\n".join(sorted(ok)), flush=True)
