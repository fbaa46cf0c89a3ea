#!/usr/bin/env node
// The GPU engine's interaction latency alone, in one headless Chromium session (bench/ page;
// build it first: wasm-pack build --release --target web --out-dir www/pkg -- --features bench):
//   node scripts/bench_gpu.mjs
// Per catalog, paired rounds (scripts/lib/paired.mjs) of metarec's GPU engine against TF.js
// WebGPU doing the same work, as scripts/bench.mjs's latency section does, for `interact` (a
// reaction and the next list: Session::react) and `recommend` (the list only:
// Session::recommend against TF.js inference); prints p50/p95 and the engine's counters per
// call and writes out/bench/gpu.json. No training, equivalence or native runs: the smallest
// command for the SwiftShader interaction figures.
// Environment: BENCH_ROUNDS [20], BENCH_PER_ROUND [5], BENCH_CATALOGS [1682],
// BENCH_MODES [interact,recommend], BENCH_OUT [out/bench].
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT, startServer } from '../tests/e2e/lib/harness.mjs';
import { openBenchPage } from '../tests/e2e/lib/benchpage.mjs';
import { medianWithCi, pairedRounds, quantile } from './lib/paired.mjs';

const env = (name, fallback) => process.env[name] ?? fallback;
const ROUNDS = Number(env('BENCH_ROUNDS', 20));
const PER_ROUND = Number(env('BENCH_PER_ROUND', 5));
const CATALOGS = env('BENCH_CATALOGS', '1682').split(',').map(Number);
const MODES = env('BENCH_MODES', 'interact,recommend').split(',');
const OUT = path.resolve(REPO_ROOT, env('BENCH_OUT', 'out/bench'));

const server = await startServer();
const { browser, page } = await openBenchPage(server.url);
const call = (fn, ...args) => page.evaluate(([f, a]) => window.metarecBench[f](...a), [fn, args]);
const results = { chromium: browser.version(), load_average_start: os.loadavg(), rounds: ROUNDS, per_round: PER_ROUND, figures: [] };
try {
  const [a, b] = ['metarec-gpu', 'tfjs-webgpu'];
  for (const items of CATALOGS) {
    for (const n of [a, b]) await call('sessionCreate', n, items);
    for (const mode of MODES) {
      const r = await pairedRounds(call, { a, b, mode, rounds: ROUNDS, perRound: PER_ROUND });
      const c = r[a].counters;
      const mean = (f) => c.reduce((t, x) => t + x[f], 0) / c.length;
      const fig = {
        items,
        mode,
        p50_ms: quantile(r[a].ms, 0.5),
        p95_ms: quantile(r[a].ms, 0.95),
        tfjs_p50_ms: quantile(r[b].ms, 0.5),
        tfjs_over_metarec: medianWithCi(r.ratios),
        dispatches: mean('dispatches'),
        submits: mean('submits'),
        bytes_read_back: mean('bytes_read_back'),
      };
      results.figures.push(fig);
      const ci = fig.tfjs_over_metarec;
      console.log(
        `${items} items, ${mode}: metarec GPU p50 ${fig.p50_ms.toFixed(2)} ms, p95 ${fig.p95_ms.toFixed(2)} ms ` +
          `(${fig.dispatches} dispatches, ${fig.submits} submits, ${fig.bytes_read_back} B read back); TF.js WebGPU p50 ` +
          `${fig.tfjs_p50_ms.toFixed(2)} ms; TF.js / metarec ${ci.median.toFixed(2)} (95% CI ${ci.low?.toFixed(2) ?? "n/a"}–${ci.high?.toFixed(2) ?? "n/a"})`,
      );
    }
    for (const n of [a, b]) await call('sessionFree', n);
  }
  results.load_average_end = os.loadavg();
  await mkdir(OUT, { recursive: true });
  await writeFile(path.join(OUT, 'gpu.json'), JSON.stringify(results, null, 2));
} finally {
  await browser.close();
  await server.stop();
}
