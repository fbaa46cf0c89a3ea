// The benchmark page (bench/index.html) in headless Chromium, shared by scripts/bench.mjs and
// tests/e2e/tfjs.mjs: launch, load, watch that nothing leaves the origin and the CSP holds, and
// the equivalence check's tolerances.
import { assert, launchChromium } from './harness.mjs';

// Same step from the same parameters and batch: metarec's and TF.js's loss and gradient must
// agree to these relative errors (max |a - b| / max |b|, as the kernel checks measure), and the
// Adam update of every parameter whose gradient is not within 100 eps of 0 (in units of the
// learning rate, i.e. at most 1 per step) within UPDATE_TOL. Float32 sums in another order give
// ~1e-6; a wrong loss or layout gives ~1.
export const LOSS_TOL = 1e-4;
export const GRAD_TOL = 1e-3;
export const UPDATE_TOL = 1e-3;

// Throws unless one equivalence result (from metarecBench.equivalence) is within tolerance.
export function checkEquivalence(r) {
  const what = `metarec ${r.engine} vs TF.js ${r.backend}`;
  assert(Number.isFinite(r.loss_metarec) && Number.isFinite(r.loss_tfjs), `${what}: loss not finite`);
  assert(r.grad_norm_metarec > 0, `${what}: metarec's gradient is zero`);
  assert(r.loss_rel_err <= LOSS_TOL, `${what}: loss ${r.loss_metarec} vs ${r.loss_tfjs} (rel. error ${r.loss_rel_err})`);
  assert(r.grad_rel_err <= GRAD_TOL, `${what}: gradient rel. error ${r.grad_rel_err} > ${GRAD_TOL}`);
  assert(
    r.update_max_abs_diff_over_lr <= UPDATE_TOL,
    `${what}: Adam update differs by ${r.update_max_abs_diff_over_lr} × lr > ${UPDATE_TOL}`,
  );
}

// Launches Chromium and opens bench/ on `baseUrl`. Resolves to { browser, page, problems() }:
// problems() lists foreign requests, CSP violations and page errors seen so far.
export async function openBenchPage(baseUrl, { timeoutMs = 120_000 } = {}) {
  const browser = await launchChromium();
  const origin = new URL(baseUrl).origin;
  const page = await browser.newPage();
  const problems = [];
  page.on('request', (req) => {
    const url = req.url();
    if (!url.startsWith('data:') && !url.startsWith('blob:') && new URL(url).origin !== origin) {
      problems.push(`foreign request: ${url}`);
    }
  });
  page.on('pageerror', (err) => problems.push(`page error: ${err && err.stack ? err.stack : err}`));
  page.on('console', (msg) => {
    const text = msg.text();
    if (/Content Security Policy|Content-Security-Policy/i.test(text)) problems.push(`CSP: ${text}`);
  });
  const response = await page.goto(new URL('bench/', baseUrl).href, { waitUntil: 'load' });
  assert(response && response.status() === 200, `bench page answered ${response && response.status()}`);
  await page.waitForFunction(() => document.body.dataset.state === 'ready' || window.metarecBenchError, null, {
    timeout: timeoutMs,
    polling: 250,
  });
  const error = await page.evaluate(() => window.metarecBenchError);
  if (error) {
    await browser.close();
    throw new Error(`bench page failed to start: ${error}`);
  }
  return { browser, page, problems: () => problems.slice() };
}
