// MetaTrainer's interface, run in a Web Worker (www/trainer-worker.js): the page's main thread
// only sends requests and renders progress, so meta-training causes no long task there.
// `await RemoteTrainer.create(options, checkpoint?)` or `RemoteTrainer.overCatalog(bytes, name,
// options)`; then step(), checkpoint(), bundle(),
// simulateDeviceLoss() as Promises, done / iterations / history() / engineInfo() at once (as of
// the last answer), free() ends the worker.
export class RemoteTrainer {
  static create(options, checkpoint) {
    return RemoteTrainer.start('create', options, checkpoint);
  }

  // Meta-training over a site's own items: the bytes of a CSV or JSON file of items (its `name`
  // says which); `items` then holds how many it has.
  static overCatalog(bytes, name, options) {
    return RemoteTrainer.start('overCatalog', bytes, name, options);
  }

  static async start(op, ...args) {
    const t = new RemoteTrainer();
    try {
      const made = await t.call(op, ...args);
      t.iterations = made.iterations;
      t.ran = made.history;
      t.info = made.engineInfo;
      t.items = made.items;
      return t;
    } catch (err) {
      t.free();
      throw err;
    }
  }

  constructor() {
    this.worker = new Worker(new URL('./trainer-worker.js', import.meta.url), { type: 'module' });
    this.pending = new Map();
    this.next = 0;
    this.done = false;
    this.worker.onmessage = ({ data }) => {
      const p = this.pending.get(data.id);
      this.pending.delete(data.id);
      if (data.ok) {
        this.done = data.done;
        p.resolve(data.value);
      } else {
        p.reject(new Error(data.error));
      }
    };
    this.worker.onerror = (event) => {
      event.preventDefault();
      this.failAll(new Error(`the meta-training worker failed: ${event.message || 'it could not load'}`));
    };
  }

  call(op, ...args) {
    if (!this.worker) return Promise.reject(new Error('this meta-training run was freed'));
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, op, args });
    });
  }

  failAll(err) {
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }

  async step() {
    const p = await this.call('step');
    const { iteration, mean_reward, loss, skipped_total } = p;
    this.ran.push({ iteration, mean_reward, loss, skipped_total });
    return p;
  }

  checkpoint() {
    return this.call('checkpoint');
  }

  bundle() {
    return this.call('bundle');
  }

  simulateDeviceLoss() {
    return this.call('simulateDeviceLoss');
  }

  history() {
    return [...this.ran];
  }

  engineInfo() {
    return this.info;
  }

  free() {
    if (!this.worker) return;
    this.worker.terminate();
    this.worker = null;
    this.failAll(new Error('this meta-training run was freed'));
  }
}
