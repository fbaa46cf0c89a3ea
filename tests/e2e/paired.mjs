// Unit tests of the benchmark's paired statistics (scripts/lib/paired.mjs): node tests/e2e/paired.mjs
import { assert, runTests } from './lib/harness.mjs';
import { medianWithCi, pairedRounds } from '../../scripts/lib/paired.mjs';

await runTests('paired statistics', [
  {
    name: 'the median CI of 20 values is [x(6), x(15)] (P(Bin(20, 1/2) ≤ 5) = 0.0207)',
    fn: () => {
      const xs = Array.from({ length: 20 }, (_, k) => 20 - k); // 20, 19, …, 1
      const m = medianWithCi(xs);
      assert(m.median === 10 && m.low === 6 && m.high === 15 && m.n === 20, JSON.stringify(m));
    },
  },
  {
    name: 'no CI below 6 values; 6 values give [min, max] (2/64 = 0.031 coverage loss)',
    fn: () => {
      const five = medianWithCi([1, 2, 3, 4, 5]);
      assert(five.low === null && five.high === null && five.median === 3, JSON.stringify(five));
      const six = medianWithCi([6, 1, 5, 2, 4, 3]);
      assert(six.low === 1 && six.high === 6, JSON.stringify(six));
    },
  },
  {
    name: 'paired rounds alternate the order and take the ratio of medians (b over a)',
    fn: async () => {
      const calls = [];
      const ms = { a: [1, 2, 30], b: [4, 4, 4] };
      const call = async (fn, name, mode, count) => {
        calls.push(name);
        assert(fn === 'sessionRound' && mode === 'interact' && count === 3, `${fn} ${mode} ${count}`);
        return { ms: ms[name] };
      };
      const r = await pairedRounds(call, { a: 'a', b: 'b', mode: 'interact', rounds: 2, perRound: 3 });
      assert(calls.join('') === 'abba', calls.join(''));
      assert(r.ratios.length === 2 && r.ratios.every((x) => x === 2), JSON.stringify(r.ratios));
      assert(r.a.ms.length === 6, 'samples kept');
    },
  },
]);
