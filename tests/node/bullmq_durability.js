// BullMQ jobs survive kill -9 (run by tests/clients.rs in two phases around a kill -9 of the
// server under appendfsync always):
//   node bullmq_durability.js --port N --phase enqueue --n N  add N jobs (each add awaited,
//                                                             i.e. acknowledged), print ids
//   node bullmq_durability.js --port N --phase work --n N     a worker runs the queue until N
//                                                             jobs completed or it runs dry;
//                                                             print the ids completed
const { Queue, Worker } = require('bullmq');

const arg = (name, dflt) => {
  const i = process.argv.indexOf('--' + name);
  return i >= 0 ? process.argv[i + 1] : dflt;
};
const port = parseInt(arg('port'), 10);
const phase = arg('phase');
const n = parseInt(arg('n', '0'), 10);
const connection = { host: '127.0.0.1', port, maxRetriesPerRequest: null };

function fail(msg) {
  console.error(msg);
  process.exit(1);
}

(async () => {
  const timer = setTimeout(() => fail('timeout'), 90000);
  const q = new Queue('durable', { connection });
  if (phase === 'enqueue') {
    await q.obliterate({ force: true });
    for (let i = 0; i < n; i++) {
      // A payload whose size varies, checked by the worker; jobId names the job.
      await q.add('j', { i, pad: 'x'.repeat(i % 300) }, { jobId: 'job-' + i });
      console.log('job-' + i);
    }
  } else if (phase === 'work') {
    const done = new Set();
    const w = new Worker('durable', async (job) => {
      if (job.data.pad !== 'x'.repeat(job.data.i % 300)) throw new Error('payload damaged');
      return job.data.i;
    }, { connection, concurrency: 4 });
    w.on('error', (e) => fail('worker error: ' + e.message));
    w.on('completed', (job) => done.add(job.id));
    // Until every job completed, or nothing is left waiting or active (jobs lost: the ids
    // printed then fall short of those enqueued).
    for (;;) {
      if (done.size >= n) break;
      const c = await q.getJobCounts('waiting', 'active', 'delayed');
      if (c.waiting + c.active + c.delayed === 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    await w.close();
    const failed = await q.getJobCounts('failed');
    if (failed.failed !== 0) fail(failed.failed + ' jobs failed');
    // From the server, not the events: the last completion's event may come after the
    // counts above already showed the queue dry.
    const completed = await q.getCompleted(0, -1);
    const ids = completed.filter((j) => j.returnvalue === j.data.i).map((j) => j.id);
    for (const id of ids.sort()) console.log(id);
  } else {
    fail('--phase enqueue|work');
  }
  clearTimeout(timer);
  await q.close();
  process.exit(0);
})().catch((e) => fail('error: ' + (e && e.stack || e)));
