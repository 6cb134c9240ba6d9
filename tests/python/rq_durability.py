"""RQ jobs survive kill -9 (run by tests/clients.rs in two phases around a kill -9 of the
server under appendfsync always):
  --phase enqueue --n N : enqueue N jobs, print their ids (each enqueue acknowledged)
  --phase work          : a burst worker runs every queued job; print finished ids"""
import argparse
import sys

import redis
from rq import Queue, Worker
from rq.job import Job

ap = argparse.ArgumentParser()
ap.add_argument("--port", type=int, required=True)
ap.add_argument("--phase", choices=["enqueue", "work"], required=True)
ap.add_argument("--n", type=int, default=0)
a = ap.parse_args()
conn = redis.Redis(port=a.port)
q = Queue("durable", connection=conn)
if a.phase == "enqueue":
    for i in range(a.n):
        job = q.enqueue("builtins.len", "x" * i, job_id=f"job-{i}", result_ttl=3600)
        print(job.id, flush=True)
else:
    Worker([q], connection=conn).work(burst=True, with_scheduler=False)
    done = []
    for jid in q.finished_job_registry.get_job_ids():
        job = Job.fetch(jid, connection=conn)
        if job.return_value() == int(jid.split("-")[1]):
            done.append(jid)
    print("\n".join(sorted(done)), flush=True)
    sys.exit(0)
