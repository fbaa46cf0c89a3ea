// Equivalence of metarec's training step and the TensorFlow.js implementation the benchmark
// compares it with (bench/bench.js), in headless Chromium:
//   node tests/e2e/tfjs.mjs
// From the same parameters, item vectors and batch, metarec's GPU engine (WebGPU) and CPU engine
// (wasm) and TF.js's WebGPU and wasm backends must compute the same loss, gradient and Adam
// update (tolerances in lib/benchpage.mjs). Needs www/pkg (wasm-pack build --release --target
// web --out-dir www/pkg) and the npm packages (scripts/setup.sh). No timings are checked.
import { assert, runTests, startServer } from './lib/harness.mjs';
import { checkEquivalence, openBenchPage } from './lib/benchpage.mjs';

const server = await startServer();
let session;
try {
  session = await openBenchPage(server.url);
  const tests = [];
  for (const engine of ['cpu', 'gpu']) {
    for (const backend of ['wasm', 'webgpu']) {
      tests.push({
        name: `metarec ${engine} engine and TF.js ${backend}: same loss, gradient and Adam update`,
        fn: async () => {
          const r = await session.page.evaluate(([e, b]) => window.metarecBench.equivalence(e, b), [engine, backend]);
          console.log(
            `     loss ${r.loss_metarec} vs ${r.loss_tfjs}; rel. errors: loss ${r.loss_rel_err.toExponential(1)}, ` +
              `gradient ${r.grad_rel_err.toExponential(1)}; update diff ${r.update_max_abs_diff_over_lr.toExponential(1)} × lr`,
          );
          checkEquivalence(r);
        },
      });
    }
  }
  tests.push({
    name: 'a wrong TF.js step is caught (entropy bonus dropped)',
    fn: async () => {
      const r = await session.page.evaluate(() => window.metarecBench.equivalence('cpu', 'wasm', { entropy: 0 }));
      let caught = false;
      try {
        checkEquivalence(r);
      } catch {
        caught = true;
      }
      assert(caught, `the check passed a step without the entropy bonus: ${JSON.stringify(r)}`);
    },
  });
  tests.push({
    name: 'no foreign requests, no CSP violations, no page errors',
    fn: async () => {
      const p = session.problems();
      assert(p.length === 0, p.join('\n'));
    },
  });
  await runTests('tfjs equivalence', tests);
} finally {
  await session?.browser.close();
  await server.stop();
}
