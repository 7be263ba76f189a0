// One pg-boss trial for `deneva bench engine --compare`, run by deneva.bench.peers:
//
//   node bench.mjs --dsn DSN --jobs N --batch-size B --workers W [--enqueue-batch E]
//
// As for the other peers: `jobs` no-op jobs are inserted first (`boss.insert`, E at a time, timed
// on their own), then `work` starts W workers that fetch B jobs at a time, and the clock runs
// until the database holds `jobs` completed jobs. stdout is one JSON object; an error is one
// line on stderr and exit status 1.

import { performance } from 'node:perf_hooks'
import { parseArgs } from 'node:util'

import { PgBoss } from 'pg-boss'

const QUEUE = 'deneva-bench-noop'
const POLLING_INTERVAL_S = 0.5 // pg-boss's minimum
const DONE_POLL_MS = 1 // once every job has reached a handler, how often completions are counted

function parseOptions() {
  const { values } = parseArgs({
    options: {
      dsn: { type: 'string' },
      jobs: { type: 'string' },
      'batch-size': { type: 'string' },
      workers: { type: 'string' },
      'enqueue-batch': { type: 'string', default: '5000' },
    },
  })
  if (!values.dsn) throw new Error('--dsn is required')
  const options = { dsn: values.dsn }
  for (const name of ['jobs', 'batch-size', 'workers', 'enqueue-batch']) {
    const value = Number(values[name])
    if (!Number.isInteger(value) || value < 1) throw new Error(`--${name}: expected a positive integer`)
    options[name.replace(/-(\w)/g, (_, c) => c.toUpperCase())] = value
  }
  return options
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

async function main() {
  const { dsn, jobs, batchSize, workers, enqueueBatch } = parseOptions()
  const limitMs = Math.max(120_000, jobs * 10)
  const boss = new PgBoss({
    connectionString: dsn,
    max: workers + 4, // each worker fetches and completes on a pool connection of its own
    schedule: false, // no cron, maintenance or registry loops beside the measured work
    supervise: false,
    registerInstance: false,
  })
  const errors = []
  boss.on('error', (error) => errors.push(error))
  const query = async (sql) => (await boss.getDb().executeSql(sql, [QUEUE])).rows

  await boss.start()
  await boss.deleteQueue(QUEUE) // left behind by a trial that was killed
  await boss.createQueue(QUEUE)

  const batches = []
  for (let start = 0; start < jobs; start += enqueueBatch) {
    batches.push(Array.from({ length: Math.min(enqueueBatch, jobs - start) }, () => ({ data: {} })))
  }
  let started = performance.now()
  for (const batch of batches) await boss.insert(QUEUE, batch)
  const enqueueMs = performance.now() - started

  let handled = 0
  let allHandled
  const handedOut = new Promise((resolve) => {
    allHandled = resolve
  })
  started = performance.now()
  await boss.work(
    QUEUE,
    {
      batchSize,
      localConcurrency: workers,
      pollingIntervalSeconds: POLLING_INTERVAL_S,
      burstWhenBatchFull: true, // fetch again at once while batches come back full
    },
    async (batch) => {
      handled += batch.length
      if (handled >= jobs) allHandled()
    },
  )
  const limit = setTimeout(allHandled, limitMs)
  await handedOut
  clearTimeout(limit)
  // A batch is completed after its handler returns: the last ones are counted in the database.
  const countCompleted = "SELECT count(*)::int AS n FROM pgboss.job WHERE name = $1 AND state = 'completed'"
  let completed = (await query(countCompleted))[0].n
  while (completed < jobs && performance.now() - started < limitMs) {
    await sleep(DONE_POLL_MS)
    completed = (await query(countCompleted))[0].n
  }
  const drainMs = performance.now() - started

  await boss.offWork(QUEUE)
  const rows = await query('SELECT state::text AS state, count(*)::int AS n FROM pgboss.job WHERE name = $1 GROUP BY state')
  const states = Object.fromEntries(rows.map((row) => [row.state, row.n]))
  await boss.deleteQueue(QUEUE)
  await boss.stop({ graceful: true, wait: true })

  if (errors.length) throw errors[0]
  if (states.completed !== jobs) throw new Error(`expected ${jobs} completed jobs, found ${JSON.stringify(states)}`)
  console.log(JSON.stringify({ jobs, enqueue_s: enqueueMs / 1000, seconds: drainMs / 1000, states }))
}

try {
  await main()
} catch (error) {
  // One line for deneva.bench.peers to pass on, not Node's stack and source excerpt.
  console.error(`error: ${error?.message ?? error}`)
  process.exit(1)
}
