// Line charts drawn with uPlot (an npm dependency served from node_modules/ on the same origin),
// shared by the For you, Simulate and Meta-train views.

const UPLOT_URL = new URL('../node_modules/uplot/dist/uPlot.esm.js', import.meta.url);
const UPLOT_CSS = new URL('../node_modules/uplot/dist/uPlot.min.css', import.meta.url);
let uplotPromise = null;

function loadUplot() {
  if (!uplotPromise) {
    const link = document.createElement('link');
    link.rel = 'stylesheet';
    link.href = UPLOT_CSS.href;
    document.head.append(link);
    uplotPromise = import(UPLOT_URL.href).then((m) => m.default);
  }
  return uplotPromise;
}

// Okabe–Ito colours: told apart with the common colour-vision deficiencies.
export const PALETTE = ['#0072b2', '#d55e00', '#009e73', '#cc79a7', '#e69f00', '#56b4e9'];

export function cssColor(name, fallback) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;
}

// A chart in `box` with `series` ([{ label, stroke, width? }]) over x; `setData([x, ...ys])`
// redraws it and sets box.dataset.points to the number of x values. When uPlot cannot be loaded
// the box says so (the rest of the page works).
export function lineChart(box, { xLabel, yLabel, series, range, height = 200 }) {
  let chart = null;
  let pending = null;
  const width = () => Math.max(240, box.clientWidth);
  const ready = loadUplot()
    .then((UPlot) => {
      const muted = cssColor('--muted', '#666');
      chart = new UPlot(
        {
          width: width(),
          height,
          scales: { x: { time: false }, y: range ? { range } : {} },
          // whole-number ticks on x (rounds, iterations, reactions)
          axes: [{ label: xLabel, stroke: muted, incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000] }, { label: yLabel, stroke: muted }],
          series: [{ label: xLabel }, ...series.map((s) => ({ width: 2, ...s }))],
        },
        pending || [[], ...series.map(() => [])],
        box,
      );
      new ResizeObserver(() => chart.setSize({ width: width(), height })).observe(box);
    })
    .catch((err) => {
      box.textContent = `The chart is not available (${err && err.message ? err.message : err}); run npm ci to install uPlot.`;
    });
  return {
    ready,
    setData(data) {
      box.dataset.points = String(data[0].length);
      if (chart) chart.setData(data);
      else pending = data;
    },
  };
}
