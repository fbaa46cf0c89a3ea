// What the page keeps and loads: one IndexedDB key-value store (bundles, a person's saved state,
// the Meta-train run) and the default bundle served next to the page.

const DB_NAME = 'metarec';
const STORE = 'kv';

let dbPromise = null;
function db() {
  if (!dbPromise) {
    dbPromise = new Promise((resolve, reject) => {
      const req = indexedDB.open(DB_NAME, 1);
      req.onupgradeneeded = () => req.result.createObjectStore(STORE);
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(new Error(`IndexedDB: ${req.error && req.error.message}`));
    });
  }
  return dbPromise;
}

async function kv(mode, fn) {
  const d = await db();
  return new Promise((resolve, reject) => {
    const tx = d.transaction(STORE, mode);
    const req = fn(tx.objectStore(STORE));
    tx.oncomplete = () => resolve(req ? req.result : undefined);
    tx.onerror = () => reject(new Error(`IndexedDB: ${tx.error && tx.error.message}`));
    tx.onabort = () => reject(new Error(`IndexedDB: ${tx.error && tx.error.message}`));
  });
}
const dbGet = (key) => kv('readonly', (s) => s.get(key));
const dbPut = (key, value) => kv('readwrite', (s) => s.put(value, key));
const dbDel = (key) => kv('readwrite', (s) => s.delete(key));
/** The page's key-value store: get / put / del. */
export const store = { get: dbGet, put: dbPut, del: dbDel };

// The default bundle that scripts/default-bundle.sh (run by scripts/demo.sh) builds natively
// and the server serves next to the page: www/default.json names it and the world it was
// meta-trained on. Null when there is none (the page then meta-trains one itself).
export async function defaultBundle() {
  const res = await fetch(new URL('www/default.json', window.location.href));
  if (!res.ok) return null;
  const meta = await res.json();
  const url = new URL(`www/${meta.bundle}`, window.location.href);
  const got = await fetch(url);
  if (!got.ok) throw new Error(`cannot load the default bundle ${url.pathname}: HTTP ${got.status}`);
  const bytes = new Uint8Array(await got.arrayBuffer());
  const w = meta.world;
  return {
    bytes,
    key: `default:${w.items}/${w.users}/${w.seed}/${fnv1a(bytes)}`,
    label: `synthetic catalog, ${w.items} items (meta-trained by scripts/demo.sh: ${meta.iterations} iterations of ${meta.algorithm})`,
    world: w,
  };
}

// 32-bit FNV-1a of the bytes: tells a rebuilt default bundle from the one a state was saved with.
function fnv1a(bytes) {
  let h = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i], 0x01000193) >>> 0;
  return h.toString(16);
}

