// The JS API inside a Web Worker, in headless Chromium: node tests/e2e/worker.mjs
// Needs the wasm package in www/pkg (scripts/test.sh builds it). A same-origin fixture page
// starts tests/e2e/fixtures/api-worker.js as a module worker, which meta-trains a 20-item
// synthetic catalog, reacts 10 times, meta-trains again with rec.metaTrain (it yields to the
// event loop between iterations, which once waited for a `window` a worker does not have and
// never finished) and recommends; on the CPU engine and on WebGPU (SwiftShader).
import { assert, launchChromium, runTests, startServer } from './lib/harness.mjs';

const TIMEOUT_MS = 1000 * Number(process.env.METAREC_E2E_TIMEOUT_S || 120);

async function inWorker(browser, url, engine) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (err) => problems.push(String(err)));
  page.on('console', (msg) => {
    if (/Content Security Policy/i.test(msg.text())) problems.push(msg.text());
  });
  try {
    const response = await page.goto(new URL('tests/e2e/fixtures/worker.html', url).href, { waitUntil: 'load' });
    assert(response && response.status() === 200, `fixture page answered ${response && response.status()}`);
    const result = await page.evaluate(
      ({ engine, timeout }) =>
        new Promise((resolve) => {
          const worker = new Worker('/tests/e2e/fixtures/api-worker.js', { type: 'module' });
          const timer = setTimeout(() => resolve({ ok: false, error: `no answer within ${timeout} ms` }), timeout);
          worker.onmessage = ({ data }) => {
            clearTimeout(timer);
            worker.terminate();
            resolve(data);
          };
          worker.onerror = (e) => {
            clearTimeout(timer);
            resolve({ ok: false, error: `worker error: ${e.message}` });
          };
          worker.postMessage({ engine });
        }),
      { engine, timeout: TIMEOUT_MS },
    );
    assert(result.ok, `the worker failed: ${result.error}`);
    assert(result.reactions.length === 10, `reactions: ${result.reactions.length}`);
    assert(JSON.stringify(result.progress) === '[0,1]', `metaTrain progress: ${JSON.stringify(result.progress)}`);
    assert(result.bundleBytes > 0, 'metaTrain returned an empty bundle');
    assert(result.slate.length === 5 && new Set(result.slate).size === 5, `slate: ${result.slate}`);
    assert(result.used === engine, `engine ${result.used}, asked for ${engine}`);
    assert(problems.length === 0, `page problems: ${problems.join('\n')}`);
    return result;
  } finally {
    await context.close();
  }
}

const server = await startServer();
const browser = await launchChromium();
try {
  await runTests('e2e worker', [
    {
      name: 'the JS API in a Web Worker on the CPU engine: meta-train, 10 reactions, metaTrain, recommend',
      fn: () => inWorker(browser, server.url, 'cpu'),
    },
    {
      name: 'the JS API in a Web Worker on WebGPU: meta-train, 10 reactions, metaTrain, recommend',
      fn: () => inWorker(browser, server.url, 'gpu'),
    },
  ]);
} finally {
  await browser.close();
  await server.stop();
}
