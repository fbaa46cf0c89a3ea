// metarec Meta-train view: meta-training on the synthetic world in this browser, one
// meta-iteration at a time in a Web Worker (MetaTrainer from www/pkg, see src/web/meta_trainer.rs,
// through www/remote-trainer.js: the page's main thread only renders), with progress, pause and
// resume and learning curves (uPlot); when it finishes, or when asked while paused, For you
// (www/foryou.js) switches to the new policy. A checkpoint is kept in IndexedDB after every
// iteration: a reload (or a crash) finds the run paused where it stood, and a lost GPU device
// is replaced and the run continues from its last checkpoint.
//
// For tests: <section id="view-metatrain" data-mt="idle|ready|running|paused|done|error">,
// data-iteration = meta-iterations run, data-recoveries = runs continued after an engine failure;
// window.metarecMetaTrain.history(), .speed() and .drill() (destroys the GPU device).
import { PALETTE, lineChart } from './charts.js';
import { $, announce, intField, message } from './dom.js';
import { RemoteTrainer } from './remote-trainer.js';
import { forYouReady, rewardAndLoss, stepLoop } from './steps.js';

const view = () => $('view-metatrain');

const st = {
  foryou: null,
  trainer: null,
  world: null,
  running: false,
  loop: null,
  history: [],
  last: null, // the last progress report
  charts: null,
  autoEngine: 'auto', // what "auto" means here (the CPU engine on a software adapter)
  opts: null, // the MetaTrainer options of the run
  recoveries: 0,
};

// IndexedDB key of the run in progress: { opts, world, checkpoint }.
const SAVED = 'metatrain:run';

async function save() {
  const checkpoint = await st.trainer.checkpoint();
  await st.foryou.store.put(SAVED, { opts: st.opts, world: st.world, checkpoint });
}

// A run from its saved checkpoint: the trainer, and the history it holds.
async function resumeFrom(saved) {
  const trainer = await RemoteTrainer.create(saved.opts, saved.checkpoint);
  if (st.trainer) st.trainer.free();
  st.trainer = trainer;
  st.opts = saved.opts;
  st.world = saved.world;
  st.history = trainer.history();
  view().dataset.iteration = String(st.history.length);
  $('mt-progress').max = saved.opts.iterations;
  $('mt-progress').value = st.history.length;
  drawCurves();
}

// After a failed step: continue from the last checkpoint on a new engine (the GPU device may be
// gone). False when there is nothing to continue from or that failed too.
async function recover(err) {
  const saved = await st.foryou.store.get(SAVED);
  if (!saved) return false;
  try {
    await resumeFrom(saved);
  } catch (again) {
    console.warn('metarec: meta-training could not continue from its checkpoint', again);
    return false;
  }
  st.recoveries += 1;
  view().dataset.recoveries = String(st.recoveries);
  status(`The engine failed (${message(err)}); continued from the checkpoint at iteration ${st.history.length}.`);
  return true;
}

function setPhase(phase) {
  view().dataset.mt = phase;
}

// The view's status line; `live` also announces it (every status but per-iteration progress).
function status(text, live = true) {
  $('mt-status').textContent = text;
  if (live) announce(text);
}

function setControls({ start, pause, pauseText, use }) {
  $('mt-start').disabled = !start;
  $('mt-pause').disabled = !pause;
  if (pauseText) $('mt-pause').textContent = pauseText;
  $('mt-use').disabled = !use;
}

function charts() {
  if (!st.charts) {
    st.charts = {
      reward: lineChart($('mt-reward-chart'), {
        xLabel: 'iteration',
        yLabel: 'mean reward',
        series: [{ label: 'mean reward', stroke: PALETTE[0] }],
      }),
      loss: lineChart($('mt-loss-chart'), { xLabel: 'iteration', yLabel: 'loss', series: [{ label: 'loss', stroke: PALETTE[1] }] }),
    };
  }
  return st.charts;
}

function drawCurves() {
  const x = st.history.map((p) => p.iteration + 1);
  charts().reward.setData([x, st.history.map((p) => p.mean_reward)]);
  charts().loss.setData([x, st.history.map((p) => p.loss)]);
}

function label() {
  const w = st.world;
  return `a policy meta-trained in the Meta-train tab (${st.history.length} of ${st.trainer.iterations} iterations; ${w.items} items, ${w.users} users, seed ${w.seed})`;
}

async function handOver() {
  const bytes = await st.trainer.bundle();
  await st.foryou.useTrained(bytes, st.world, label());
  $('mt-used').textContent = label();
}

async function run() {
  try {
    let failed = false;
    await stepLoop({
      more: () => st.running && !st.trainer.done,
      step: async () => {
        try {
          const p = await st.trainer.step();
          failed = false;
          return p;
        } catch (err) {
          // one recovery per failure: a second failure in a row is reported
          if (failed || !(await recover(err))) throw err;
          failed = true;
          return undefined;
        }
      },
      show: async (p) => {
        st.history.push(p);
        st.last = p;
        view().dataset.iteration = String(st.history.length);
        $('mt-progress').value = st.history.length;
        status(`Iteration ${p.iteration + 1} of ${p.iterations}: ${rewardAndLoss(p)}` + (p.skipped_total ? ` (${p.skipped_total} skipped steps)` : ''), false);
        $('mt-speed').textContent = `${p.iterations_per_s.toFixed(2)} iterations/s (the last took ${p.ms.toFixed(0)} ms)`;
        drawCurves();
        await save();
      },
    });
    if (st.trainer.done) {
      status(`Done: ${st.history.length} iterations. Handing the policy over to For you…`);
      setControls({ start: false, pause: false, use: false });
      await handOver();
      await st.foryou.store.del(SAVED);
      status(`Done: ${st.history.length} iterations; For you now recommends with this policy.`);
      setPhase('done');
      setControls({ start: true, pause: false, pauseText: 'Pause', use: false });
    } else {
      status(`Paused after ${st.history.length} of ${st.trainer.iterations} iterations.`);
      setPhase('paused');
      setControls({ start: true, pause: true, pauseText: 'Resume', use: st.history.length > 0 });
    }
  } catch (err) {
    status(`Meta-training failed: ${message(err)}`);
    setPhase('error');
    setControls({ start: true, pause: false, pauseText: 'Pause', use: false });
  }
}

async function stopLoop() {
  st.running = false;
  if (st.loop) await st.loop;
  st.loop = null;
}

async function startTraining() {
  await stopLoop();
  const opts = {
    items: intField('mt-items'),
    users: intField('mt-users'),
    iterations: intField('mt-iterations'),
    users_per_iteration: intField('mt-upi'),
    rounds: intField('mt-rounds'),
    seed: intField('mt-seed'),
    algorithm: $('mt-algorithm').value,
  };
  const chosen = $('mt-engine').value;
  opts.engine = chosen === 'auto' ? st.autoEngine : chosen;
  setControls({ start: false, pause: false, use: false });
  status('Generating the synthetic world…');
  const trainer = await RemoteTrainer.create(opts);
  if (st.trainer) st.trainer.free();
  st.trainer = trainer;
  st.opts = opts;
  st.world = { items: opts.items, users: opts.users, seed: opts.seed };
  st.history = [];
  drawCurves();
  const info = trainer.engineInfo();
  $('mt-engine-info').textContent =
    `${info.engine === 'gpu' ? 'GPU' : 'CPU'} (${info.adapter})` +
    (chosen === 'auto' && st.autoEngine === 'cpu' ? ': auto chose the CPU engine, faster than this software WebGPU adapter' : '') +
    (info.fallback_reason ? `: ${info.fallback_reason}` : '');
  $('mt-progress').max = opts.iterations;
  $('mt-progress').value = 0;
  st.running = true;
  setPhase('running');
  setControls({ start: true, pause: true, pauseText: 'Pause', use: false });
  st.loop = run();
}

function wire() {
  $('mt-form').addEventListener('submit', (event) => {
    event.preventDefault();
    startTraining().catch((err) => {
      status(`Meta-training could not start: ${message(err)}`);
      setPhase('error');
      setControls({ start: true, pause: false, use: false });
    });
  });
  $('mt-pause').addEventListener('click', () => {
    if (!st.trainer) return;
    if (st.running) {
      st.running = false; // stops after the iteration in flight
    } else if (!st.trainer.done) {
      st.running = true;
      setPhase('running');
      setControls({ start: true, pause: true, pauseText: 'Pause', use: false });
      st.loop = run();
    }
  });
  $('mt-use').addEventListener('click', async () => {
    if (!st.trainer || st.running) return;
    setControls({ start: false, pause: false, use: false });
    try {
      await handOver();
      status(`For you now recommends with the policy after ${st.history.length} iterations; Resume continues training.`);
    } catch (err) {
      status(`Could not hand the policy over: ${message(err)}`);
    }
    setControls({ start: true, pause: !st.trainer.done, pauseText: 'Resume', use: true });
  });
}

export async function start({ foryou }) {
  st.foryou = foryou;
  wire();
  charts();
  window.metarecMetaTrain = {
    history: () => [...st.history],
    speed: () => st.last && st.last.iterations_per_s,
    drill: () => st.trainer && st.trainer.simulateDeviceLoss(),
  };
  status('Waiting for the engine…');
  if (!(await forYouReady(foryou, { status, setPhase }))) return;
  const cur = foryou.current();
  st.autoEngine = cur.trainEngine || 'auto';
  if (cur.world) {
    $('mt-items').value = String(cur.world.items);
    $('mt-users').value = String(cur.world.users);
    $('mt-seed').value = String(cur.world.seed);
  }
  $('mt-used').textContent = cur.label;
  foryou.onBundleChange((c) => {
    $('mt-used').textContent = c.label;
  });
  const saved = await st.foryou.store.get(SAVED);
  if (saved) {
    try {
      await resumeFrom(saved);
      const o = saved.opts;
      for (const [id, v] of [['mt-items', o.items], ['mt-users', o.users], ['mt-iterations', o.iterations], ['mt-upi', o.users_per_iteration], ['mt-rounds', o.rounds], ['mt-seed', o.seed]]) $(id).value = String(v);
      $('mt-algorithm').value = o.algorithm;
      status(`Restored a run kept in this browser, paused after ${st.history.length} of ${o.iterations} iterations: Resume continues it.`);
      setPhase('paused');
      setControls({ start: true, pause: true, pauseText: 'Resume', use: st.history.length > 0 });
      return;
    } catch (err) {
      await st.foryou.store.del(SAVED);
      status(`A saved meta-training run could not be restored and was discarded (${message(err)}). Ready: press Start.`);
      setPhase('ready');
      setControls({ start: true, pause: false, use: false });
      return;
    }
  }
  status('Ready: set the world and the training, then press Start.');
  setPhase('ready');
  setControls({ start: true, pause: false, use: false });
}
