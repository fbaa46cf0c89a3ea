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
  // `metarec-gpu`, `metarec-cpu`, `tfjs-webgpu`, `tfjs-wasm`.
  async trainerCreate(name) {
    const [lib, kind] = name.split('-');
    if (lib === 'metarec') {
      const t = await BenchTrainer.create({ engine: kind });
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

  // Adaptation latency: up to `interactions` times (at least 5, then until `budgetMs` is
  // spent), one reaction then the new top-10 read back, on `items` random item vectors.
  // Per-interaction milliseconds as the page sees them and as the engine sees them, and the
  // engine's counters per interaction.
  async adaptation(engine, items, interactions, budgetMs) {
    const t0 = performance.now();
    const a = await BenchAdaptation.create({ engine, items, seed: 1 });
    const setup_ms = performance.now() - t0;
    const c0 = a.counters();
    const ms = [];
    const engine_ms = [];
    const start = performance.now();
    for (let k = 0; k < interactions && (k < 5 || performance.now() - start < budgetMs); k++) {
      const reward = k % 3 === 0 ? 1 : 0;
      const s = performance.now();
      const r = await a.interact(reward);
      ms.push(performance.now() - s);
      engine_ms.push(r.ms);
      if (r.top.length !== 10) throw new Error(`top-10 has ${r.top.length} items`);
    }
    const c1 = a.counters();
    const info = a.engineInfo();
    a.free();
    const per = (f) => (c1[f] - c0[f]) / ms.length;
    return {
      ms,
      engine_ms,
      setup_ms,
      info,
      dispatches: per('dispatches'),
      submits: per('submits'),
      bytes_read_back: per('bytes_read_back'),
    };
  },

  // TF.js inference only (the floor): the same MLP on one context vector, scores against the
  // item matrix, top-10, indices read back; same interaction count rule as `adaptation`.
  async tfInference(backend, items, interactions, budgetMs) {
    await useBackend(backend);
    const t0 = performance.now();
    // the adaptation benchmark's network: a 128-value context and the 130-value feedback summary
    const model = { input: 128 + 130, hidden: [256, 256], output: 64 };
    const vars = makeVariables(model, null);
    const e = tf.randomUniform([items, model.output], -0.3, 0.3);
    const x = tf.zeros([1, model.input]);
    const infer = async () => {
      const { indices, values } = tf.tidy(() => tf.topk(tf.matMul(mlp(model, vars, x), e, false, true), 10));
      const top = await indices.data();
      tf.dispose([indices, values]);
      return top;
    };
    await infer();
    const setup_ms = performance.now() - t0;
    const ms = [];
    const start = performance.now();
    for (let k = 0; k < interactions && (k < 5 || performance.now() - start < budgetMs); k++) {
      const s = performance.now();
      const top = await infer();
      ms.push(performance.now() - s);
      if (top.length !== 10) throw new Error(`top-10 has ${top.length} items`);
    }
    tf.dispose([e, x, ...vars.flatMap((v) => [v.w, v.b])]);
    return { ms, setup_ms, backend: tf.getBackend(), tensors_left: tf.memory().numTensors };
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
