// metarec Simulate view: simulated held-out users of the synthetic world against the meta-trained
// policy (adapting, and fixed) and baselines, one round at a time (Simulation from www/pkg, see
// src/web/simulation.rs and src/simulate.rs), with live curves (uPlot). It simulates the bundle For you uses
// (www/foryou.js), when that bundle was meta-trained on the synthetic world.
//
// For tests: <section id="view-simulate" data-sim="idle|unavailable|ready|running|paused|done|error">,
// data-slates = slates shown per method so far; window.metarecSimulate.curves() gives the curves,
// .engineInfo() the engine (with its recoveries after a lost GPU device), .drill() destroys the
// GPU device (the next round rebuilds the engine and is played again).
import { PALETTE, lineChart } from './charts.js';
import { $, announce, el, intField, message } from './dom.js';
import { forYouReady, stepLoop } from './steps.js';

const HELD_OUT = 50;
const LABELS = {
  'meta-rl': 'meta-RL, adapting',
  'no-adaptation': 'meta-RL, no adaptation',
  popularity: 'popularity',
  linucb: 'LinUCB',
  random: 'random',
};

const view = () => $('view-simulate');

const st = {
  foryou: null,
  bundle: null, // what For you used when the simulation was made
  sim: null,
  users: [], // held-out users, as Simulation.users() lists them
  running: false,
  loop: null, // the promise of the running loop
  charts: null,
  lastDraw: 0,
  rounds: 0,
};

function setPhase(phase) {
  view().dataset.sim = phase;
}

// The view's status line; `live` also announces it (every status but per-round progress).
function status(text, live = true) {
  $('sim-status').textContent = text;
  if (live) announce(text);
}

function setControls({ start, pause, pauseText }) {
  $('sim-start').disabled = !start;
  $('sim-users').disabled = !start;
  $('sim-pause').disabled = !pause;
  if (pauseText) $('sim-pause').textContent = pauseText;
}

function charts() {
  if (!st.charts) {
    const series = Object.values(LABELS).map((label, i) => ({ label, stroke: PALETTE[i] }));
    st.charts = {
      reward: lineChart($('sim-reward-chart'), { xLabel: 'round', yLabel: 'clicks per slate', range: [0, 1], series }),
      cumulative: lineChart($('sim-cum-chart'), { xLabel: 'round', yLabel: 'hit rate', range: [0, 1], series }),
    };
  }
  return st.charts;
}

function drawCurves() {
  const c = st.sim.curves();
  charts().reward.setData([c.rounds, ...c.reward]);
  charts().cumulative.setData([c.rounds, ...c.cumulative]);
  $('sim-done').textContent = `${c.users_done} of ${c.users}`;
  st.lastDraw = performance.now();
  return c;
}

function userLabel(u) {
  return `user #${u.world_user + 1}${u.favourite_genres.length ? ` (likes ${u.favourite_genres.join(', ')})` : ''}`;
}

function renderStep(step, curves) {
  // every round, not only when the curves are drawn: the state a pause takes effect on
  view().dataset.slates = String(curves.slates);
  const u = st.users[step.user];
  status(`Playing ${userLabel(u)}, ${step.position + 1} of ${curves.users}: round ${step.round} of ${st.rounds}.`, false);
  const rows = step.lanes.map((lane, m) => {
    const tr = el('tr');
    const name = el('th');
    name.scope = 'row';
    const swatch = el('span', '■ ', 'swatch');
    swatch.style.color = PALETTE[m];
    swatch.setAttribute('aria-hidden', 'true');
    name.append(swatch, el('span', LABELS[lane.method] || lane.method));
    const clicked = lane.items.find((i) => i.item === lane.clicked);
    const rate = curves.cumulative[m][curves.cumulative[m].length - 1];
    tr.append(
      name,
      el('td', lane.items.map((i) => i.title).join('; ')),
      el('td', clicked ? `✓ ${clicked.title}` : '—'),
      el('td', rate === undefined ? '—' : rate.toFixed(3), 'num'),
    );
    return tr;
  });
  $('sim-rows').replaceChildren(...rows);
}

async function stopLoop() {
  st.running = false;
  if (st.loop) await st.loop;
  st.loop = null;
}

async function run() {
  try {
    await stepLoop({
      more: () => st.running && !st.sim.done,
      step: () => st.sim.step(),
      show: (step) => {
        // Curves at most every 100 ms (and at the end): drawing is what costs here.
        const c = performance.now() - st.lastDraw > 100 || step.done ? drawCurves() : st.sim.curves();
        renderStep(step, c);
      },
    });
    const c = drawCurves();
    if (st.sim.done) {
      const rates = c.methods.map((m, i) => `${LABELS[m]} ${c.cumulative[i][c.cumulative[i].length - 1].toFixed(3)}`);
      status(`Done: ${c.users} user${c.users === 1 ? '' : 's'}, ${c.rounds.length} rounds each. Hit rate: ${rates.join(', ')}.`);
      setPhase('done');
      setControls({ start: true, pause: false, pauseText: 'Pause' });
    } else {
      status(`Paused after ${c.slates} rounds.`);
      setPhase('paused');
      setControls({ start: true, pause: true, pauseText: 'Resume' });
    }
  } catch (err) {
    status(`The simulation failed: ${message(err)}`);
    setPhase('error');
    setControls({ start: true, pause: false, pauseText: 'Pause' });
  }
}

async function startSimulation() {
  await stopLoop();
  const cur = st.bundle;
  const rounds = intField('sim-rounds');
  const slate = intField('sim-slate');
  const choice = $('sim-users').value;
  const users = choice === 'all' ? [] : choice === 'first10' ? [...Array(Math.min(10, st.users.length)).keys()] : [Number(choice)];
  status('Preparing the simulated users…');
  setControls({ start: false, pause: false });
  const sim = await cur.mod.Simulation.create(cur.bytes, { ...cur.world, engine: cur.engine, held_out: HELD_OUT, rounds, slate });
  sim.select(users);
  st.rounds = rounds;
  if (st.sim) st.sim.free();
  st.sim = sim;
  const info = sim.engineInfo();
  $('sim-engine').textContent = `${info.engine === 'gpu' ? 'GPU' : 'CPU'} (${info.adapter})`;
  st.running = true;
  setPhase('running');
  setControls({ start: true, pause: true, pauseText: 'Pause' });
  st.loop = run();
}

// (Re)reads For you's bundle: a new world means new held-out users.
async function prepare(cur) {
  await stopLoop();
  if (st.sim) st.sim.free();
  st.sim = null;
  st.bundle = cur;
  $('sim-rows').replaceChildren();
  if (!cur.world) {
    status(`Simulate needs a bundle meta-trained on the synthetic world; For you uses ${cur.label}. Use the built-in catalog, or meta-train one in the Meta-train tab.`);
    $('sim-world').textContent = '—';
    setPhase('unavailable');
    setControls({ start: false, pause: false });
    return;
  }
  const w = cur.world;
  $('sim-world').textContent = `${w.items} items, ${w.users} training users, seed ${w.seed}; held-out users #${w.users + 1} to #${w.users + HELD_OUT}`;
  try {
    const probe = await cur.mod.Simulation.create(cur.bytes, { ...w, engine: 'cpu', held_out: HELD_OUT, rounds: 1 });
    st.users = probe.users();
    probe.free();
  } catch (err) {
    status(`Simulate cannot use this bundle: ${message(err)}`);
    setPhase('error');
    setControls({ start: false, pause: false });
    return;
  }
  const select = $('sim-users');
  select.replaceChildren(
    el('option', `All ${st.users.length} held-out users`),
    el('option', 'The first 10 held-out users'),
    ...st.users.map((u) => el('option', userLabel(u))),
  );
  select.options[0].value = 'all';
  select.options[1].value = 'first10';
  st.users.forEach((u, i) => {
    select.options[i + 2].value = String(u.index);
  });
  select.value = 'first10';
  status('Ready: choose the users and press Start.');
  setPhase('ready');
  setControls({ start: true, pause: false, pauseText: 'Pause' });
}

function wire() {
  $('sim-form').addEventListener('submit', (event) => {
    event.preventDefault();
    startSimulation().catch((err) => {
      status(`The simulation could not start: ${message(err)}`);
      setPhase('error');
      setControls({ start: true, pause: false });
    });
  });
  $('sim-pause').addEventListener('click', () => {
    if (!st.sim) return;
    if (st.running) {
      st.running = false; // the loop stops after the round in flight
    } else if (!st.sim.done) {
      st.running = true;
      setPhase('running');
      setControls({ start: true, pause: true, pauseText: 'Pause' });
      st.loop = run();
    }
  });
}

export async function start({ foryou }) {
  st.foryou = foryou;
  wire();
  charts();
  window.metarecSimulate = {
    curves: () => (st.sim ? st.sim.curves() : null),
    engineInfo: () => (st.sim ? st.sim.engineInfo() : null),
    drill: () => st.sim && st.sim.simulateDeviceLoss(),
  };
  status('Waiting for the recommender (For you)…');
  if (!(await forYouReady(foryou, { status, setPhase }))) return;
  foryou.onBundleChange((cur) => {
    prepare(cur);
  });
  await prepare(foryou.current());
}
