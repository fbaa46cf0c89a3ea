#!/usr/bin/env node
// Minimal, dependency-free static file server for the metarec demo page and the browser tests.
//
//   node scripts/serve.mjs                 serve the repository root on http://127.0.0.1:$PORT/ (default 8080)
//   PORT=0 node scripts/serve.mjs          pick a free port; the chosen one is printed
//   node scripts/serve.mjs --root DIR      serve DIR instead of the repository root
//
// On start it prints exactly one line `serving http://127.0.0.1:PORT/` to stdout (tests parse it).
// Every response carries a strict Content-Security-Policy: same-origin resources only, plus
// 'wasm-unsafe-eval' so the page may compile its WebAssembly module. The page is also made
// cross-origin isolated (COOP/COEP), which gives performance.now() its full resolution.
// Only GET and HEAD; no directory listings; dotfiles (.git, ...) and anything outside the root,
// including through symlinks, are refused.

import { createServer } from 'node:http';
import { createReadStream } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HOST = '127.0.0.1';

const MIME = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.wasm': 'application/wasm',
  '.json': 'application/json; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.ts': 'text/plain; charset=utf-8',
};

export const CSP = [
  "default-src 'self'",
  "script-src 'self' 'wasm-unsafe-eval'",
  "style-src 'self'",
  "img-src 'self'",
  "font-src 'self'",
  "connect-src 'self'",
  "worker-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

const SECURITY_HEADERS = {
  'Content-Security-Policy': CSP,
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
  'Cross-Origin-Resource-Policy': 'same-origin',
  'Cache-Control': 'no-cache',
};

function parseArgs(argv) {
  const here = path.dirname(fileURLToPath(import.meta.url));
  let root = path.resolve(here, '..');
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--root' && i + 1 < argv.length) {
      root = path.resolve(argv[++i]);
    } else if (argv[i] === '-h' || argv[i] === '--help') {
      console.log('usage: [PORT=8080] node scripts/serve.mjs [--root DIR]');
      process.exit(0);
    } else {
      console.error(`serve.mjs: unknown argument ${JSON.stringify(argv[i])}`);
      process.exit(2);
    }
  }
  const portText = process.env.PORT ?? '8080';
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port > 65535) {
    console.error(`serve.mjs: PORT must be an integer 0..65535, got ${JSON.stringify(portText)}`);
    process.exit(2);
  }
  return { root, port };
}

function send(res, status, text, extra = {}) {
  const body = Buffer.from(`${status} ${text}\n`);
  res.writeHead(status, {
    ...SECURITY_HEADERS,
    'Content-Type': 'text/plain; charset=utf-8',
    'Content-Length': body.length,
    ...extra,
  });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

// Maps a request path to a file under root, or returns an HTTP status to answer with.
async function resolveFile(root, rawUrl) {
  // Traversal attempts are refused before the URL parser gets to normalise them away.
  const rawPath = rawUrl.split(/[?#]/, 1)[0];
  if (/(^|\/|\\)(\.|%2e){2}(\/|\\|$)/i.test(rawPath)) return { status: 403 };
  let pathname;
  try {
    // Base URL only for parsing; never used for anything else.
    pathname = new URL(rawUrl, 'http://localhost').pathname;
  } catch {
    return { status: 400 };
  }
  // Raw encoded traversal or separators are refused outright, before decoding.
  if (/%2e%2e|%2f|%5c|%00/i.test(pathname)) return { status: 403 };
  let decoded;
  try {
    decoded = decodeURIComponent(pathname);
  } catch {
    return { status: 400 };
  }
  if (decoded.includes('\0') || decoded.includes('\\')) return { status: 403 };
  const segments = decoded.split('/').filter((s) => s.length > 0);
  // No "..", no "." and no dotfiles (.git, .ci, .env, ...).
  if (segments.some((s) => s.startsWith('.'))) return { status: 403 };
  let file = path.resolve(root, ...segments);
  if (file !== root && !file.startsWith(root + path.sep)) return { status: 403 };
  let info;
  try {
    info = await stat(file);
    if (info.isDirectory()) {
      file = path.join(file, 'index.html');
      info = await stat(file);
    }
  } catch {
    return { status: 404 };
  }
  if (!info.isFile()) return { status: 404 };
  // Symlinks must not lead out of the root either.
  const real = await realpath(file);
  if (!real.startsWith(root + path.sep)) return { status: 403 };
  return { file: real, size: info.size };
}

export async function startServer({ root, port, host = HOST }) {
  const realRoot = await realpath(root);
  const server = createServer(async (req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(res, 405, 'Method Not Allowed', { Allow: 'GET, HEAD' });
      return;
    }
    let found;
    try {
      found = await resolveFile(realRoot, req.url ?? '/');
    } catch {
      found = { status: 500 };
    }
    if (found.status) {
      const text = { 400: 'Bad Request', 403: 'Forbidden', 404: 'Not Found', 500: 'Internal Server Error' };
      send(res, found.status, text[found.status] ?? 'Error');
      return;
    }
    const type = MIME[path.extname(found.file).toLowerCase()] ?? 'application/octet-stream';
    res.writeHead(200, { ...SECURITY_HEADERS, 'Content-Type': type, 'Content-Length': found.size });
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    const stream = createReadStream(found.file);
    stream.on('error', () => res.destroy());
    stream.pipe(res);
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server;
}

async function main() {
  const { root, port } = parseArgs(process.argv.slice(2));
  let server;
  try {
    server = await startServer({ root, port });
  } catch (err) {
    if (err && err.code === 'EADDRINUSE') {
      console.error(
        `serve.mjs: port ${port} on ${HOST} is already in use; stop whatever uses it or pick another, e.g. PORT=8081 ./scripts/demo.sh`,
      );
    } else {
      console.error(`serve.mjs: cannot listen on ${HOST}:${port}: ${err && err.message}`);
    }
    process.exit(1);
  }
  const { port: actual } = server.address();
  console.log(`serving http://${HOST}:${actual}/`);
  console.error(`serve.mjs: root ${root}; press Ctrl+C to stop`);
  const stop = () => {
    server.close(() => process.exit(0));
    server.closeAllConnections?.();
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await main();
}
