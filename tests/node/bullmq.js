// BullMQ (npm) against the server: a queue, a worker, three jobs through BullMQ's Lua scripts
// (cmsgpack, cjson, many redis.call), completed with their return values; then a delayed job
// and a failing job with retries, as job-queue users run them.
// Usage: node bullmq.js --port N   (prints "ok: bullmq", exits 0; anything else fails)
const { Queue, Worker } = require('bullmq');

const port = parseInt(process.argv[process.argv.indexOf('--port') + 1], 10);
const connection = { host: '127.0.0.1', port, maxRetriesPerRequest: null };

function fail(msg) {
  console.error(msg);
  process.exit(1);
}

(async () => {
  const timer = setTimeout(() => fail('timeout'), 45000);
  const q = new Queue('sb', { connection });
  await q.obliterate({ force: true });
  const seen = new Map();
  let attempts = 0;
  const w = new Worker('sb', async (job) => {
    if (job.name === 'flaky') {
      attempts += 1;
      if (job.attemptsMade < 1) throw new Error('first attempt fails');
      return 'recovered';
    }
    return job.data.x * 2;
  }, { connection });
  w.on('error', (e) => fail('worker error: ' + e.message));
  const done = new Promise((resolve) => {
    w.on('completed', (job, rv) => {
      seen.set(job.name + ':' + job.id, rv);
      if (seen.size === 5) resolve();
    });
  });
  for (const x of [1, 2, 3]) await q.add('double', { x });
  await q.add('double', { x: 10 }, { delay: 300 });
  await q.add('flaky', {}, { attempts: 2, backoff: { type: 'fixed', delay: 50 } });
  await done;
  const values = [...seen.values()].map(String).sort();
  const expected = ['2', '20', '4', '6', 'recovered'];
  if (JSON.stringify(values) !== JSON.stringify(expected)) fail('results ' + JSON.stringify(values));
  if (attempts !== 2) fail('flaky job ran ' + attempts + ' times');
  const counts = await q.getJobCounts('completed', 'failed', 'waiting', 'delayed');
  if (counts.completed !== 5 || counts.failed !== 0) fail('counts ' + JSON.stringify(counts));
  clearTimeout(timer);
  await w.close();
  await q.close();
  console.log('ok: bullmq');
  process.exit(0);
})().catch((e) => fail('error: ' + (e && e.stack || e)));
