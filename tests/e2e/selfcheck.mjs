// End-to-end test of the demo page in headless Chromium (WebGPU through SwiftShader):
//   node tests/e2e/selfcheck.mjs
// Needs the wasm package in www/pkg (scripts/test.sh builds it: wasm-pack build --release --target
// web --out-dir www/pkg; a --dev build works too, but its GPU self-check took 68 s here instead of
// 40 s). Starts scripts/serve.mjs on a free port, loads the page with ?engine=gpu and ?engine=cpu
// (the latter at phone width; with ?view=selfcheck, since "For you" is the default view), waits for the self-check, and checks that every kernel check
// passed, that nothing was requested from another origin, that the CSP was never violated, and
// that the page did not throw. Screenshots go to out/.
//
// Environment: CHROMIUM (default /usr/bin/chromium); METAREC_E2E_ROOT serves another directory;
// METAREC_E2E_TIMEOUT_S (default 120) bounds each self-check.
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { REPO_ROOT, assert, launchChromium, runTests, startServer } from './lib/harness.mjs';

// How long one self-check may take; METAREC_E2E_TIMEOUT_S overrides (e.g. for a slow machine).
const READY_TIMEOUT_MS = 1000 * Number(process.env.METAREC_E2E_TIMEOUT_S || 120);
const OUT_DIR = path.join(REPO_ROOT, 'out');

// Loads `query` in a fresh context; returns what the page did and the result it exposed.
async function loadPage(browser, baseUrl, query, { viewport = { width: 1100, height: 900 }, screenshot, rerun = false } = {}) {
  const origin = new URL(baseUrl).origin;
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const requests = [];
  const foreign = [];
  const failedRequests = [];
  const pageErrors = [];
  const consoleErrors = [];
  const cspViolations = [];
  context.on('request', (req) => {
    const url = req.url();
    requests.push(url);
    // data: and blob: URLs never leave the page; everything else must be same-origin.
    if (!url.startsWith('data:') && !url.startsWith('blob:') && new URL(url).origin !== origin) foreign.push(url);
  });
  context.on('requestfailed', (req) => failedRequests.push(`${req.url()}: ${req.failure()?.errorText}`));
  page.on('websocket', (ws) => foreign.push(ws.url()));
  page.on('pageerror', (err) => pageErrors.push(String(err && err.stack ? err.stack : err)));
  page.on('console', (msg) => {
    const text = msg.text();
    if (/Content Security Policy|Content-Security-Policy/i.test(text)) cspViolations.push(text);
    if (msg.type() === 'error') consoleErrors.push(text);
  });
  try {
    const response = await page.goto(new URL(query, baseUrl).href, { waitUntil: 'load' });
    assert(response && response.status() === 200, `page answered ${response && response.status()}`);
    const csp = response.headers()['content-security-policy'] || '';
    assert(csp.includes("default-src 'self'") && csp.includes("'wasm-unsafe-eval'"), `unexpected CSP: ${csp}`);
    await page.waitForFunction(
      () => document.body.dataset.state === 'ready' || document.body.dataset.state === 'error',
      null,
      { timeout: READY_TIMEOUT_MS, polling: 250 },
    );
    if (rerun) {
      // The button runs the self-check again in the same page (same wasm instance).
      const first = await page.evaluate(() => document.body.dataset.state);
      if (first !== 'ready') {
        const why = await page.evaluate(() => window.metarecSelfCheckError);
        throw new Error(`first run ended in state ${first}: ${why}`);
      }
      const runs = await page.evaluate(() => Number(document.body.dataset.runs));
      await page.getByRole('button', { name: /run the self-check again/i }).click();
      await page.waitForFunction((n) => Number(document.body.dataset.runs) > n, runs, {
        timeout: READY_TIMEOUT_MS,
        polling: 250,
      });
    }
    const state = await page.evaluate(() => ({
      state: document.body.dataset.state,
      result: window.metarecSelfCheck ?? null,
      error: window.metarecSelfCheckError ?? null,
      errorPanelVisible: !document.getElementById('error-panel').hidden,
      errorText: document.getElementById('error-message').textContent,
      rows: document.querySelectorAll('#kernels tr.kernel').length,
      failRows: document.querySelectorAll('#kernels tr.kernel.fail').length,
      overflowX: document.documentElement.scrollWidth - document.documentElement.clientWidth,
      adapterText: document.getElementById('st-adapter').textContent,
      engineText: document.getElementById('st-engine').textContent,
    }));
    if (screenshot) {
      await mkdir(OUT_DIR, { recursive: true });
      await page.screenshot({ path: path.join(OUT_DIR, screenshot), fullPage: true });
    }
    return { ...state, requests, foreign, failedRequests, pageErrors, consoleErrors, cspViolations };
  } finally {
    await context.close();
  }
}

function commonChecks(r) {
  assert(r.foreign.length === 0, `requests left the origin: ${r.foreign.join(', ')}`);
  assert(r.cspViolations.length === 0, `CSP violations: ${r.cspViolations.join(' | ')}`);
  assert(r.pageErrors.length === 0, `uncaught page errors: ${r.pageErrors.join(' | ')}`);
  assert(r.failedRequests.length === 0, `failed requests: ${r.failedRequests.join(', ')}`);
}

function describe(r) {
  return JSON.stringify({ state: r.state, error: r.error, result: r.result, consoleErrors: r.consoleErrors }, null, 1);
}

function checkReady(r, wantEngine) {
  assert(r.state === 'ready', `page ended in state ${r.state}: ${r.error || r.errorText}\n${describe(r)}`);
  assert(!r.errorPanelVisible, `error panel is visible: ${r.errorText}`);
  const res = r.result;
  assert(res && typeof res === 'object', 'window.metarecSelfCheck is not set');
  assert(res.engine === wantEngine, `engine is ${res.engine}, expected ${wantEngine}; gpu_error: ${res.gpu_error}`);
  assert(Array.isArray(res.kernels), 'kernels is not an array');
  const bad = res.kernels.filter((k) => k.pass !== true);
  assert(bad.length === 0, `kernel checks failed: ${JSON.stringify(bad)}`);
  for (const k of res.kernels) {
    assert(
      typeof k.max_rel_err === 'number' && typeof k.tolerance === 'number' && k.max_rel_err <= k.tolerance,
      `kernel ${k.name}: max_rel_err ${k.max_rel_err} vs tolerance ${k.tolerance}`,
    );
  }
  assert(r.rows === res.kernels.length, `table shows ${r.rows} rows for ${res.kernels.length} kernels`);
  assert(r.failRows === 0, `table shows ${r.failRows} failed rows`);
  assert(typeof res.steps_per_s?.cpu === 'number' && res.steps_per_s.cpu > 0, `steps_per_s.cpu: ${res.steps_per_s?.cpu}`);
  return res;
}

const siteRoot = process.env.METAREC_E2E_ROOT || REPO_ROOT;
if (!existsSync(path.join(siteRoot, 'www', 'pkg', 'metarec.js'))) {
  console.log(`FAIL ${siteRoot}/www/pkg/metarec.js is missing: build it first (wasm-pack build --release --target web --out-dir www/pkg)`);
  console.log('e2e selfcheck: 0 passed, 1 failed');
  process.exit(1);
}

const server = await startServer();
const browser = await launchChromium();
console.log(`chromium ${browser.version()}, page ${server.url}`);

try {
  await runTests('e2e selfcheck', [
    {
      name: '?engine=gpu: every kernel check passes on the WebGPU adapter',
      fn: async () => {
        const r = await loadPage(browser, server.url, '?view=selfcheck&engine=gpu', { screenshot: 'selfcheck.png' });
        const res = checkReady(r, 'gpu');
        commonChecks(r);
        assert(res.adapter && typeof res.adapter.name === 'string', `no adapter: ${JSON.stringify(res.adapter)}`);
        assert(res.kernels.length > 0, 'the GPU engine ran no kernel checks');
        assert(typeof res.steps_per_s.gpu === 'number' && res.steps_per_s.gpu > 0, `steps_per_s.gpu: ${res.steps_per_s.gpu}`);
        console.log(
          `     adapter ${JSON.stringify(res.adapter)}; ${res.kernels.length} kernels; ` +
            `steps/s gpu ${res.steps_per_s.gpu} cpu ${res.steps_per_s.cpu}; dispatches/step ${res.dispatches_per_step}`,
        );
      },
    },
    {
      name: '?engine=cpu at phone width: CPU engine, no sideways scrolling, runs again on the button',
      fn: async () => {
        const r = await loadPage(browser, server.url, '?view=selfcheck&engine=cpu', {
          viewport: { width: 390, height: 844 },
          screenshot: 'selfcheck-cpu-phone.png',
          rerun: true,
        });
        const res = checkReady(r, 'cpu');
        commonChecks(r);
        assert(r.overflowX <= 0, `page is ${r.overflowX}px wider than a 390px screen`);
        console.log(`     ${res.kernels.length} kernels; steps/s cpu ${res.steps_per_s.cpu}`);
      },
    },
    {
      name: '?engine=bogus: the error panel explains, state is "error"',
      fn: async () => {
        const r = await loadPage(browser, server.url, '?view=selfcheck&engine=bogus');
        commonChecks(r);
        assert(r.state === 'error', `state is ${r.state}`);
        assert(r.errorPanelVisible, 'error panel is hidden');
        assert(/engine/.test(r.errorText), `error text: ${r.errorText}`);
      },
    },
  ]);
} finally {
  await browser.close();
  await server.stop();
}
