// Tests of scripts/serve.mjs, the demo's static server: node tests/e2e/server.mjs
// MIME types, the security headers, and refusal of traversal, dotfiles and other methods.
import http from 'node:http';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { REPO_ROOT, assert, runTests, startServer } from './lib/harness.mjs';

// Raw request (no URL normalisation on the client side, unlike fetch()).
function request(port, rawPath, method = 'GET') {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: rawPath, method }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  });
}

const server = await startServer({ root: REPO_ROOT });
try {
  await runTests('e2e server', [
    {
      name: 'serves the page files with their MIME types',
      fn: async () => {
        const want = {
          '/': 'text/html',
          '/index.html': 'text/html',
          '/www/app.js': 'text/javascript',
          '/www/style.css': 'text/css',
          '/www/favicon.svg': 'image/svg+xml',
          '/package.json': 'application/json',
        };
        if (existsSync(path.join(REPO_ROOT, 'www/pkg/metarec_bg.wasm'))) want['/www/pkg/metarec_bg.wasm'] = 'application/wasm';
        if (existsSync(path.join(REPO_ROOT, 'www/pkg/metarec.js'))) want['/www/pkg/metarec.js'] = 'text/javascript';
        for (const [p, type] of Object.entries(want)) {
          const r = await request(server.port, p);
          assert(r.status === 200, `${p}: status ${r.status}`);
          assert(r.headers['content-type'].startsWith(type), `${p}: content-type ${r.headers['content-type']}, want ${type}`);
        }
        const head = await request(server.port, '/index.html', 'HEAD');
        assert(head.status === 200 && head.body.length === 0, `HEAD: ${head.status}, ${head.body.length} bytes`);
      },
    },
    {
      name: 'sends a strict same-origin CSP and nosniff on every answer',
      fn: async () => {
        for (const p of ['/', '/www/app.js', '/nope', '/../etc/passwd']) {
          const r = await request(server.port, p);
          const csp = r.headers['content-security-policy'] || '';
          assert(csp.includes("default-src 'self'"), `${p}: CSP ${csp}`);
          assert(csp.includes("script-src 'self' 'wasm-unsafe-eval'"), `${p}: CSP ${csp}`);
          assert(!/https?:|\*|unsafe-inline|'unsafe-eval'/.test(csp), `${p}: CSP allows too much: ${csp}`);
          assert(r.headers['x-content-type-options'] === 'nosniff', `${p}: no nosniff`);
        }
      },
    },
    {
      name: 'refuses traversal, dotfiles and encoded separators',
      fn: async () => {
        for (const p of [
          '/../Cargo.toml',
          '/www/../../etc/passwd',
          '/%2e%2e/%2e%2e/etc/passwd',
          '/www/%2e%2e/%2e%2e/etc/passwd',
          '/www/..%2f..%2fetc%2fpasswd',
          '/www/..%5c..%5cetc%5cpasswd',
          '/.git/config',
          '/.ci/run',
          '/www/%00',
        ]) {
          const r = await request(server.port, p);
          assert(r.status === 403 || r.status === 400, `${p}: status ${r.status}`);
          assert(!r.body.toString().includes('root:'), `${p}: leaked a file`);
        }
        const missing = await request(server.port, '/no-such-file.html');
        assert(missing.status === 404, `missing file: ${missing.status}`);
        const dir = await request(server.port, '/scripts/');
        assert(dir.status === 404, `directory without index.html: ${dir.status} (no listings)`);
      },
    },
    {
      name: 'answers only GET and HEAD',
      fn: async () => {
        for (const m of ['POST', 'PUT', 'DELETE']) {
          const r = await request(server.port, '/index.html', m);
          assert(r.status === 405, `${m}: ${r.status}`);
        }
      },
    },
  ]);
} finally {
  await server.stop();
}
