// bullmq_throughput.mjs: BullMQ's side of bench/compare.sh.
//
// Each round adds --jobs no-op jobs to a fresh queue (addBulk, 1000 at a
// time), then starts one Worker with --concurrency (default 100) and times
// until every job has completed.  Completed jobs are kept in Redis (BullMQ's
// default), which is where BullMQ records results.  Prints one line per
// round and "median N jobs/s".  REDIS_URL names the server.
import { Queue, Worker } from 'bullmq';

const opt = { jobs: 100000, rounds: 3, concurrency: 100 };
for (let i = 2; i < process.argv.length; i += 2) {
  const key = process.argv[i].replace(/^--/, '');
  if (!(key in opt)) {
    console.error(`usage: node bullmq_throughput.mjs [--jobs N] [--rounds R] [--concurrency C]`);
    process.exit(2);
  }
  opt[key] = Number(process.argv[i + 1]);
}
const url = new URL(process.env.REDIS_URL || 'redis://127.0.0.1:6379/0');
const connection = {
  host: url.hostname, port: Number(url.port || 6379),
  db: Number((url.pathname || '/0').slice(1) || 0), maxRetriesPerRequest: null,
};

const rates = [];
for (let round = 0; round < opt.rounds; round++) {
  const name = `bullbench-${process.pid}-${round}`;
  const queue = new Queue(name, { connection });
  for (let i = 0; i < opt.jobs; i += 1000) {
    const n = Math.min(1000, opt.jobs - i);
    await queue.addBulk(Array.from({ length: n }, () => ({ name: 'noop', data: {} })));
  }
  let done = 0;
  const t0 = process.hrtime.bigint();
  const finished = new Promise((resolve) => {
    const worker = new Worker(name, async () => {}, { connection, concurrency: opt.concurrency });
    worker.on('completed', () => {
      if (++done === opt.jobs) resolve(worker);
    });
  });
  const worker = await finished;
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  rates.push(opt.jobs / secs);
  console.log(`round ${round + 1}: ${opt.jobs} jobs in ${secs.toFixed(3)} s = ${(opt.jobs / secs).toFixed(0)} jobs/s`);
  await worker.close();
  await queue.obliterate({ force: true });
  await queue.close();
}
rates.sort((a, b) => a - b);
const mid = rates.length % 2 ? rates[(rates.length - 1) / 2]
  : (rates[rates.length / 2 - 1] + rates[rates.length / 2]) / 2;
console.log(`median ${mid.toFixed(0)} jobs/s`);
