'use strict';
// The admin UI's charts, drawn with uPlot (vendor/uPlot.iife.min.js) from the proxy's usage
// history. Turns its sparse points into one value per step, stacks groups, keeps one chart per
// id (updated in place while its series stay the same, resized with its box), and records what
// each chart was given in `window.__charts[id]`, so that what is drawn can be checked. Knows
// nothing of the API or the page: app.js gives it numbers, labels and formatters.

window.GatewayCharts = (() => {
  const live = new Map(); // id → { plot, el, signature, spec, observer }
  const received = {};
  window.__charts = received;

  const PALETTE = ['#2457d6', '#1a9e77', '#d95f02', '#7570b3', '#e7298a', '#66a61e', '#e6ab02', '#a6761d'];
  const OTHERS = '#98a2b3';
  const MUTED = '#657084';
  const GRID = '#e2e5eb';
  // Tick spacings of an axis of counts: whole numbers only.
  const WHOLE_STEPS = [];
  for (let e = 0; e <= 15; e++) for (const m of [1, 2, 5]) WHOLE_STEPS.push(m * 10 ** e);

  function color(i) { return PALETTE[i % PALETTE.length]; }

  // The start of every step of [from, to), aligned to multiples of `step` since the epoch, as
  // the proxy aligns its buckets (UTC).
  function steps(from, to, step) {
    const xs = [];
    if (!(step > 0) || !(to > from)) return xs;
    for (let t = Math.floor(from / step) * step; t < to && xs.length < 20000; t += step) xs.push(t);
    return xs;
  }

  // One value per step: `pick(point)` of the point that starts at it, `empty` where there is none.
  function column(xs, points, pick, empty) {
    const at = new Map((points || []).map((p) => [p.t, p]));
    return xs.map((t) => (at.has(t) ? pick(at.get(t)) : empty));
  }

  const withAlpha = (hex, alpha) => hex + alpha;

  // Each series summed with those before it: the top of its band in a stacked chart.
  function cumulative(series) {
    const sums = series.length ? series[0].values.map(() => 0) : [];
    return series.map((s) => s.values.map((v, i) => (sums[i] += v || 0)));
  }

  function signature(spec) {
    return JSON.stringify([spec.series.map((s) => [s.label, s.color, s.kind, s.scale]), !!spec.stacked, !!spec.utc, spec.height]);
  }

  function plotData(spec) {
    const ys = spec.stacked ? cumulative(spec.series) : spec.series.map((s) => s.values);
    return [spec.x, ...ys];
  }

  function options(entry, width) {
    const spec = entry.spec;
    const read = (fn) => (...args) => entry.spec[fn](...args);
    // The legend shows the values under the cursor, and nothing while there is none.
    const rawValue = (i) => (u, v, si, di) => {
      if (di === null || di === undefined) return '';
      const raw = entry.spec.series[i] ? entry.spec.series[i].values[di] : null;
      if (raw === null || raw === undefined) return '—';
      return entry.spec.series[i].scale === 'y2' ? entry.spec.format2(raw) : entry.spec.format(raw);
    };
    const series = [{ label: spec.timeLabel, value: (u, v) => (v === null || v === undefined ? '' : entry.spec.legendTime(v)) }];
    spec.series.forEach((s, i) => {
      const bars = s.kind === 'bars';
      series.push({
        label: s.label,
        scale: s.scale || 'y',
        stroke: s.color,
        width: bars ? 1 : 2,
        fill: s.kind === 'line' ? undefined : withAlpha(s.color, bars ? 'cc' : '59'),
        // A bar stands on its step: from its start towards the next.
        paths: bars ? uPlot.paths.bars({ size: [0.8, 48], gap: 1, align: 1 }) : undefined,
        points: { show: !bars && (s.points || spec.x.length <= 60), size: 5 },
        spanGaps: false,
        value: rawValue(i),
      });
    });
    const bands = [];
    if (spec.stacked) for (let i = 2; i <= spec.series.length; i++) bands.push({ series: [i, i - 1] });
    const fromZero = (u, min, max) => [0, max > 0 ? max * 1.08 : 1];
    const axes = [
      { stroke: MUTED, grid: { stroke: GRID, width: 1 }, ticks: { stroke: GRID, width: 1 }, space: 70,
        values: (u, splits) => splits.map((v) => entry.spec.axisTime(v)) },
      { scale: 'y', stroke: MUTED, grid: { stroke: GRID, width: 1 }, ticks: { show: false }, size: 52,
        incrs: spec.whole === false ? undefined : WHOLE_STEPS, values: (u, splits) => splits.map(read('axisFormat')) },
    ];
    const scales = { x: { time: true, range: xRange(entry) }, y: { range: fromZero } };
    if (spec.series.some((s) => s.scale === 'y2')) {
      axes.push({ scale: 'y2', side: 1, stroke: MUTED, grid: { show: false }, ticks: { show: false }, size: 46,
        incrs: WHOLE_STEPS, values: (u, splits) => splits.map(read('axisFormat2')) });
      scales.y2 = { range: fromZero };
    }
    return {
      width, height: spec.height || 200, ms: 1,
      tzDate: spec.utc ? (ts) => uPlot.tzDate(new Date(ts), 'Etc/UTC') : undefined,
      series, bands, axes, scales,
      cursor: { drag: { x: false, y: false }, points: { size: 6 } },
      legend: { live: true },
    };
  }

  function sparkOptions(entry, width) {
    const s = entry.spec.series[0];
    return {
      width, height: entry.spec.height || 36, ms: 1,
      padding: [3, 0, 2, 0],
      series: [{}, { stroke: s.color, width: 1.5, fill: withAlpha(s.color, '2e'), points: { show: !!s.points, size: 4, fill: s.color }, spanGaps: false }],
      axes: [{ show: false }, { show: false }],
      scales: { x: { time: true, range: xRange(entry) }, y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] } },
      cursor: { show: false },
      legend: { show: false },
    };
  }

  // The x axis spans the whole range, the last step to its end, not only the steps' starts.
  function xRange(entry) {
    return (u, min, max) => entry.spec.xRange || [min, max];
  }

  function widthOf(el) { return Math.max(120, Math.floor(el.clientWidth || 0) || 600); }

  // Draws `spec` in `el` as chart `id`, or updates the chart already there.
  // spec: { x: [ms], series: [{ key, label, values, color, kind: 'line' | 'area' | 'bars',
  // scale: 'y' | 'y2', points }], xRange: [from, to], stacked, utc, height, whole (false: the y axis is not a
  // count), format, format2, axisFormat, axisFormat2, axisTime, legendTime, timeLabel, meta }.
  // Values are numbers, or null where there is nothing to draw.
  function draw(el, id, spec, sparkline) {
    prune();
    received[id] = {
      x: spec.x.slice(),
      series: spec.series.map((s) => ({ key: s.key, label: s.label, values: s.values.slice() })),
      stacked: !!spec.stacked,
      meta: spec.meta || {},
    };
    el.dataset.chart = id;
    el.dataset.points = String(spec.x.length);
    const sig = (sparkline ? 'spark:' : '') + signature(spec);
    const current = live.get(id);
    if (current && current.el === el && current.signature === sig) {
      current.spec = spec;
      current.plot.setData(plotData(spec));
      return current.plot;
    }
    destroy(id);
    const entry = { el, signature: sig, spec };
    const width = widthOf(el);
    el.replaceChildren();
    entry.plot = new uPlot(sparkline ? sparkOptions(entry, width) : options(entry, width), plotData(spec), el);
    entry.width = width;
    entry.observer = new ResizeObserver(() => {
      const w = widthOf(el);
      if (w === entry.width || !el.isConnected) return;
      entry.width = w;
      entry.plot.setSize({ width: w, height: spec.height || (sparkline ? 36 : 200) });
    });
    entry.observer.observe(el);
    live.set(id, entry);
    return entry.plot;
  }

  function sparkline(el, id, spec) { return draw(el, id, spec, true); }

  function destroy(id) {
    const entry = live.get(id);
    if (!entry) return;
    entry.observer.disconnect();
    entry.plot.destroy();
    live.delete(id);
  }

  // Charts whose box left the page (a re-rendered list) are let go.
  function prune() {
    for (const [id, entry] of live) if (!entry.el.isConnected) destroy(id);
  }

  // Removes chart `id` and what it was given (no data to show any more).
  function remove(id) {
    destroy(id);
    delete received[id];
  }

  return { steps, column, draw, sparkline, remove, color, OTHERS };
})();
