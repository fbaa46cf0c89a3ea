// Shared helpers for the end-to-end tests: a tiny sequential test runner, the static server and
// headless Chromium with WebGPU.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

// Debian's Chromium unless CHROMIUM names another binary.
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--enable-unsafe-webgpu',
  '--no-sandbox',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

// Headless Chromium with WebGPU enabled (SwiftShader when there is no GPU).
export function launchChromium() {
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
}

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

// Runs `tests` ([{ name, fn }]) one after another, prints one line per test and a summary line
// `<suite>: N passed, M failed`, and sets the exit code. Returns the number of failures.
export async function runTests(suite, tests) {
  let passed = 0;
  let failed = 0;
  for (const { name, fn } of tests) {
    const t0 = Date.now();
    try {
      await fn();
      passed += 1;
      console.log(`ok   ${name} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
    } catch (err) {
      failed += 1;
      console.log(`FAIL ${name} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
      console.log(String(err && err.stack ? err.stack : err).replace(/^/gm, '     '));
    }
  }
  console.log(`${suite}: ${passed} passed, ${failed} failed`);
  if (failed) process.exitCode = 1;
  return failed;
}

// Starts scripts/serve.mjs on a free port. Resolves to { url, stop() }.
// METAREC_E2E_ROOT serves another directory (for trying the page against a fake engine).
export function startServer({ root = process.env.METAREC_E2E_ROOT } = {}) {
  const args = [path.join(REPO_ROOT, 'scripts', 'serve.mjs')];
  if (root) args.push('--root', root);
  const child = spawn(process.execPath, args, {
    cwd: REPO_ROOT,
    env: { ...process.env, PORT: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => {
      child.kill();
      reject(new Error(`serve.mjs did not start within 10 s\n${out}${stderr}`));
    }, 10_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`serve.mjs exited early (code ${code})\n${out}${stderr}`));
    });
    child.stdout.on('data', (d) => {
      out += d;
      const m = /^serving (http:\/\/127\.0\.0\.1:(\d+)\/)$/m.exec(out);
      if (m) {
        clearTimeout(timer);
        child.removeAllListeners('exit');
        resolve({
          url: m[1],
          port: Number(m[2]),
          stop: () =>
            new Promise((done) => {
              if (child.exitCode !== null) return done();
              child.once('exit', () => done());
              child.kill('SIGTERM');
            }),
        });
      }
    });
  });
}

export function assert(cond, message) {
  if (!cond) throw new Error(message);
}
