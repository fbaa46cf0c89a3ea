// The browser benchmark: metarec (GPU engine on WebGPU, CPU engine in wasm) and the same
// reference policy implemented a second time with TensorFlow.js (WebGPU and wasm backends), in
// one page. scripts/bench.mjs calls the functions on window.metarecBench in turn (alternating
// implementations, several repetitions) and writes the tables; tests/e2e/tfjs.mjs runs the
// equivalence check. Nothing here times itself into a pass/fail: only `equivalence` checks.
import init, {
  BenchAdaptation,
  BenchTrainer,
  benchReferenceStep,
} from '../www/pkg/metarec.js';

const tf = globalThis.tf;
const log = (s) => {
  document.getElementById('log').textContent += `${s}\n`;
};

// The TF.js wasm backend loads its .wasm files from node_modules on this origin. Its threaded
// build needs a worker made from a blob: URL, which the page's CSP forbids, so it runs
// single-threaded with SIMD, as metarec's CPU engine does.
tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
tf.wasm.setWasmPaths(new URL('../node_modules/@tensorflow/tfjs-backend-wasm/dist/', import.meta.url).href);

async function useBackend(name) {
  if (tf.getBackend() !== name) {
    const ok = await tf.setBackend(name);
    if (!ok) throw new Error(`TF.js backend ${name} could not be initialised`);
  }
  await tf.ready();
}

// ---- the reference policy in TensorFlow.js ---------------------------------------------------

// Layer shapes of a metarec ModelConfig, with each layer's offset in the flat parameter layout
// (W row-major inputs × outputs, then the bias row).
function layersOf(model) {
  const widths = [model.input, ...model.hidden, model.output];
  const layers = [];
  let off = 0;
  for (let l = 0; l + 1 < widths.length; l++) {
    const [i, o] = [widths[l], widths[l + 1]];
    layers.push({ i, o, off, relu: l + 2 < widths.length });
    off += (i + 1) * o;
  }
  return layers;
}

// The MLP's variables, initialised from metarec's flat parameters (or randomly, He, when none).
function makeVariables(model, params) {
  return layersOf(model).map(({ i, o, off }) => {
    const bound = Math.sqrt(6 / i);
    const w = params
      ? tf.tensor2d(params.slice(off, off + i * o), [i, o])
      : tf.randomUniform([i, o], -bound, bound);
    const b = params ? tf.tensor1d(params.slice(off + i * o, off + (i + 1) * o)) : tf.fill([o], 0.1);
    return { w: tf.variable(w), b: tf.variable(b) };
  });
}

function mlp(model, vars, x) {
  const layers = layersOf(model);
  let h = x;
  vars.forEach((v, l) => {
    h = tf.add(tf.matMul(h, v.w), v.b);
    if (layers[l].relu) h = tf.relu(h);
  });
  return h;
}

// One REINFORCE step with an entropy bonus and Adam, as metarec's engines take it:
// loss = mean over rows of -(r - b) log π(a|x) - β H(π(·|x)), π = softmax(MLP(x) · Eᵀ / T).
class TfPolicy {
  constructor(ref) {
    this.model = ref.model;
    this.vars = makeVariables(ref.model, ref.params);
    this.varList = this.vars.flatMap((v) => [v.w, v.b]);
    const items = ref.model.head.items;
    this.items = ref.item_vectors
      ? tf.tensor2d(ref.item_vectors, [items, ref.model.output])
      : tf.randomUniform([items, ref.model.output], -0.3, 0.3);
    this.x = tf.tensor2d(ref.inputs, [ref.actions.length, ref.model.input]);
    this.onehot = tf.oneHot(tf.tensor1d(ref.actions, 'int32'), items);
    this.adv = tf.tensor1d(ref.rewards.map((r, k) => r - ref.baselines[k]));
    this.entropy = ref.loss_fn.entropy;
    this.temperature = ref.loss_fn.temperature;
    const a = ref.adam;
    this.optimizer = tf.train.adam(a.lr, a.beta1, a.beta2, a.eps);
  }

  loss() {
    const logits = tf.div(tf.matMul(mlp(this.model, this.vars, this.x), this.items, false, true), this.temperature);
    const logp = tf.logSoftmax(logits);
    const logpA = tf.sum(tf.mul(logp, this.onehot), 1);
    const h = tf.neg(tf.sum(tf.mul(tf.exp(logp), logp), 1));
    return tf.mean(tf.sub(tf.neg(tf.mul(this.adv, logpA)), tf.mul(this.entropy, h)));
  }

  // Loss and gradient in metarec's flat layout.
  async gradients() {
    const { value, grads } = tf.variableGrads(() => this.loss(), this.varList);
    const flat = [];
    for (const v of this.varList) flat.push(...(await grads[v.name].data()));
    const loss = (await value.data())[0];
    tf.dispose([value, ...Object.values(grads)]);
    return { loss, grads: Float32Array.from(flat) };
  }

  step() {
    this.optimizer.minimize(() => this.loss(), false, this.varList);
  }

  async params() {
    const flat = [];
    for (const v of this.varList) flat.push(...(await v.data()));
    return Float32Array.from(flat);
  }

  // `steps` steps, then one small readback so the device's work is inside the timing.
  async round(steps) {
    const t0 = performance.now();
    for (let s = 0; s < steps; s++) this.step();
    await this.vars[this.vars.length - 1].b.data();
    return { steps, ms: performance.now() - t0 };
  }

  // Kernels TF.js runs for one step (tf.profile), its analogue of dispatches per step.
  async kernelsPerStep() {
    const info = await tf.profile(() => this.step());
    return info.kernels.length;
  }

  dispose() {
    tf.dispose([...this.varList, this.items, this.x, this.onehot, this.adv]);
    this.optimizer.dispose();
  }
}

// One person's interaction in TF.js, the same work as metarec's (`BenchAdaptation`): a reaction
// to the first item of the list is one REINFORCE step on the person's context (loss
// -(r - b) log π(a|x) over the items not shown yet, running baseline b, Adam on the context only,
// the network fixed), the item's vector goes into the feedback summary, the item is masked;
// then the next list: a Gumbel-top-10 draw (metarec samples its lists too), indices and scores
// read back. `recommend()` alone is plain inference: scores, tf.topk 10, indices read back.
// Network: the adaptation benchmark's (a 128-value context and the 130-value feedback summary,
// hidden 256-256, item vectors of 64), random item vectors; AdaptConfig's defaults (Adam lr 0.1,
// temperature 1, no entropy bonus, baseline decay 0.8).
const ADAPT = { context: 128, summary: 130, lr: 0.1, decay: 0.8, k: 10 };
class TfInteraction {
  constructor(items) {
    this.model = { input: ADAPT.context + ADAPT.summary, hidden: [256, 256], output: 64 };
    this.vars = makeVariables(this.model, null);
    this.items = tf.randomUniform([items, this.model.output], -0.3, 0.3);
    this.n = items;
    this.context = tf.variable(tf.zeros([1, ADAPT.context]));
    this.summary = tf.variable(tf.zeros([1, ADAPT.summary]));
    this.mask = tf.variable(tf.zeros([1, items]));
    this.optimizer = tf.train.adam(ADAPT.lr, 0.9, 0.999, 1e-8);
    this.baseline = 0;
    this.reactions = 0;
    this.top = [];
  }

  logits() {
    const x = tf.concat([this.context, tf.div(this.summary, this.reactions + 1)], 1);
    return tf.add(tf.matMul(mlp(this.model, this.vars, x), this.items, false, true), this.mask);
  }

  async next() {
    const { indices, values } = tf.tidy(() => {
      const u = tf.randomUniform([1, this.n], 1e-7, 1);
      return tf.topk(tf.sub(this.logits(), tf.log(tf.neg(tf.log(u)))), ADAPT.k);
    });
    const [top] = await Promise.all([indices.data(), values.data()]);
    tf.dispose([indices, values]);
    this.top = Array.from(top);
    return this.top;
  }

  async interact(reward) {
    const a = this.top[0];
    const adv = reward - this.baseline;
    // (log π(a) as a sum against a one-hot row: the gradient of `gather` needs a kernel that the
    // wasm backend lacks)
    const onehot = tf.oneHot(tf.tensor1d([a], 'int32'), this.n);
    this.optimizer.minimize(() => tf.mul(-adv, tf.sum(tf.mul(tf.logSoftmax(this.logits()), onehot))), false, [this.context]);
    tf.tidy(() => {
      const e = this.items.gather([a]);
      const delta = tf.concat([tf.mul(e, reward), tf.mul(e, 1 - reward), tf.tensor2d([[reward, 1 - reward]])], 1);
      this.summary.assign(tf.add(this.summary, delta));
      this.mask.assign(tf.add(this.mask, tf.mul(onehot, -1e9)));
    });
    onehot.dispose();
    this.baseline = ADAPT.decay * this.baseline + (1 - ADAPT.decay) * reward;
    this.reactions += 1;
    return this.next();
  }

  async recommend() {
    const { indices, values } = tf.tidy(() => tf.topk(this.logits(), ADAPT.k));
    const top = await indices.data();
    tf.dispose([indices, values]);
    return Array.from(top);
  }

  dispose() {
    tf.dispose([this.items, this.context, this.summary, this.mask, ...this.vars.flatMap((v) => [v.w, v.b])]);
    this.optimizer.dispose();
  }
}

// Max |a - b| over max |b|: the relative error the kernel checks use.
function relErr(a, b) {
  let diff = 0;
  let mag = 0;
  for (let k = 0; k < b.length; k++) {
    diff = Math.max(diff, Math.abs(a[k] - b[k]));
    mag = Math.max(mag, Math.abs(b[k]));
  }
  return diff / Math.max(mag, 1e-30);
}

// ---- what scripts/bench.mjs and tests/e2e/tfjs.mjs call ---------------------------------------

const trainers = {};
const sessions = {};

const api = {
  async info() {
    const adapter = navigator.gpu ? await navigator.gpu.requestAdapter() : null;
    const i = adapter?.info ?? {};
    return {
      userAgent: navigator.userAgent,
      tfjs: tf.version.tfjs,
      adapter: adapter
        ? { vendor: i.vendor, architecture: i.architecture, device: i.device, description: i.description, isFallbackAdapter: adapter.isFallbackAdapter ?? i.isFallbackAdapter }
        : null,
      crossOriginIsolated: globalThis.crossOriginIsolated,
    };
  },

  // metarec's reference step on `engine` against TF.js's on `backend`, from the same
  // parameters, item vectors and batch: loss, gradient and the Adam update (params after one
  // step minus before, over the learning rate).
  // `tamper` (for the test that the check can fail) overrides fields of the loss in TF.js.
  async equivalence(engine, backend, tamper = {}) {
    const ref = await benchReferenceStep({ engine });
    ref.loss_fn = { ...ref.loss_fn, ...tamper };
    await useBackend(backend);
    const policy = new TfPolicy(ref);
    const { loss, grads } = await policy.gradients();
    policy.step();
    const after = await policy.params();
    policy.dispose();
    const lr = ref.adam.lr;
    const update = (p1, p0) => p1.map((v, k) => (v - p0[k]) / lr);
    const mrUpdate = update(Float32Array.from(ref.params_after), ref.params);
    const tfUpdate = update(after, ref.params);
    // Adam's first step is lr · g / (|g| + eps): where |g| is within a few eps of 0 it depends on
    // the gradient's last bits, so the update is compared where |g| ≥ 100 eps.
    let updateDiff = 0;
    mrUpdate.forEach((v, k) => {
      if (Math.abs(ref.grads[k]) >= 100 * ref.adam.eps) updateDiff = Math.max(updateDiff, Math.abs(v - tfUpdate[k]));
    });
    return {
      engine,
      backend,
      params: ref.params.length,
      loss_metarec: ref.loss,
      loss_tfjs: loss,
      loss_rel_err: Math.abs(loss - ref.loss) / Math.abs(ref.loss),
      grad_rel_err: relErr(grads, ref.grads),
      grad_norm_metarec: Math.hypot(...ref.grads),
      update_max_abs_diff_over_lr: updateDiff,
      update_max_abs_diff_over_lr_all: mrUpdate.reduce((m, v, k) => Math.max(m, Math.abs(v - tfUpdate[k])), 0),
    };
  },

  // Creates (and warms up) one implementation of the training step:
  // `metarec-gpu`, `metarec-cpu`, `metarec-cpu-reference` (the CPU engine's reference kernels),
  // `tfjs-webgpu`, `tfjs-wasm`.
  async trainerCreate(name) {
    const [lib, kind, kernels = 'blocked'] = name.split('-');
    if (lib === 'metarec') {
      const t = await BenchTrainer.create({ engine: kind, ...(kind === 'cpu' ? { kernels } : {}) });
      trainers[name] = { round: (steps) => t.round(steps), info: t.engineInfo(), free: () => t.free() };
      return trainers[name].info;
    }
    await useBackend(kind);
    const ref = await benchReferenceStep({ engine: 'cpu' });
    const p = new TfPolicy(ref);
    await p.round(1);
    trainers[name] = {
      backend: kind,
      round: async (steps) => {
        await useBackend(kind);
        return p.round(steps);
      },
      kernels: await p.kernelsPerStep(),
      free: () => p.dispose(),
    };
    return { backend: tf.getBackend(), kernels_per_step: trainers[name].kernels };
  },

  async trainerRound(name, steps) {
    return trainers[name].round(steps);
  },

  async trainerFree(name) {
    const t = trainers[name];
    if (t.backend) await useBackend(t.backend);
    t.free();
    delete trainers[name];
  },

  // A person's interaction loop on `items` random item vectors, for the paired latency rounds
  // of scripts/bench.mjs and scripts/bench_cpu.mjs: `metarec-gpu`, `metarec-cpu`,
  // `metarec-cpu-reference` (the CPU engine's reference kernels) (BenchAdaptation),
  // `tfjs-webgpu`, `tfjs-wasm` (TfInteraction). Answers the setup time and the engine or backend.
  async sessionCreate(name, items) {
    const [lib, kind, kernels = 'blocked'] = name.split('-');
    const t0 = performance.now();
    if (lib === 'metarec') {
      const a = await BenchAdaptation.create({ engine: kind, items, seed: 1, ...(kind === 'cpu' ? { kernels } : {}) });
      let k = 0;
      sessions[name] = {
        interact: async () => (await a.interact(k++ % 3 === 0 ? 1 : 0)).top,
        recommend: () => a.recommend(),
        counters: () => a.counters(),
        free: () => a.free(),
      };
      return { setup_ms: performance.now() - t0, info: a.engineInfo() };
    }
    await useBackend(kind);
    const t = new TfInteraction(items);
    await t.next();
    let k = 0;
    sessions[name] = {
      interact: () => t.interact(k++ % 3 === 0 ? 1 : 0),
      recommend: () => t.recommend(),
      free: () => t.dispose(),
    };
    return { setup_ms: performance.now() - t0, info: { backend: tf.getBackend() } };
  },

  // `count` interactions (`mode` "interact": a reaction and the next list; "recommend": the
  // list only), each timed from here: milliseconds, and metarec's engine counters per call.
  async sessionRound(name, mode, count) {
    const s = sessions[name];
    const c0 = s.counters ? s.counters() : null;
    const ms = [];
    for (let k = 0; k < count; k++) {
      const t = performance.now();
      const top = await s[mode]();
      ms.push(performance.now() - t);
      if (top.length !== 10) throw new Error(`${name}: the list has ${top.length} items`);
    }
    if (!c0) return { ms };
    const c1 = s.counters();
    const per = (f) => (c1[f] - c0[f]) / count;
    return { ms, dispatches: per('dispatches'), submits: per('submits'), bytes_read_back: per('bytes_read_back') };
  },

  async sessionFree(name) {
    sessions[name].free();
    delete sessions[name];
    return { tensors_left: tf.memory().numTensors };
  },
};

try {
  await init();
  window.metarecBench = api;
  document.body.dataset.state = 'ready';
  log('ready');
} catch (err) {
  window.metarecBenchError = String(err && err.stack ? err.stack : err);
  document.body.dataset.state = 'error';
  log(`error: ${window.metarecBenchError}`);
}
