// Paired latency rounds for scripts/bench.mjs: metarec and TF.js doing the same interaction in
// one page, alternately, and the statistics of the paired ratio.

// Nearest-rank quantile.
export function quantile(xs, q) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))];
}

export const median = (xs) => quantile(xs, 0.5);

// The median of `xs` with a distribution-free 95% confidence interval from order statistics:
// [x(r), x(n+1-r)] with the largest r such that P(Binomial(n, 1/2) ≤ r - 1) ≤ 0.025 (coverage
// ≥ 95%; for n = 20, r = 6). `low`/`high` are null below 6 values, where no such r exists.
export function medianWithCi(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  let cdf = 0;
  let term = 0.5 ** n; // C(n, 0) / 2^n
  let r = 0;
  for (let k = 0; k < n; k++) {
    cdf += term;
    if (cdf > 0.025) break;
    r = k + 1;
    term = (term * (n - k)) / (k + 1);
  }
  return { median: median(s), low: r > 0 ? s[r - 1] : null, high: r > 0 ? s[n - r] : null, n };
}

// `rounds` paired rounds of `a` against `b` (names of window.metarecBench sessions) in `mode`:
// each round times `perRound` calls of each side, the order alternating between rounds, and
// keeps each side's median; the ratio of a round is b's median over a's (above 1: a is faster).
// `call(fn, ...args)` calls window.metarecBench in the page.
export async function pairedRounds(call, { a, b, mode, rounds, perRound, onRound }) {
  const out = { [a]: { ms: [], counters: [] }, [b]: { ms: [], counters: [] }, ratios: [] };
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? [a, b] : [b, a];
    const med = {};
    for (const name of order) {
      const r = await call('sessionRound', name, mode, perRound);
      out[name].ms.push(...r.ms);
      if (r.submits != null) out[name].counters.push(r);
      med[name] = median(r.ms);
    }
    out.ratios.push(med[b] / med[a]);
    if (onRound) onRound(round, med);
  }
  return out;
}
