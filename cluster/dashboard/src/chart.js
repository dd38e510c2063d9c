// chart.js — the uPlot time charts of the page: one helper that builds a chart sized to
// its container (and follows its width), with the page's axis and legend style; the time
// axis ticks on whole seconds, minutes or hours, each label once.

import uPlot from 'uplot';
import { num } from './format.js';

const AXIS = { stroke: '#4a5262', grid: { stroke: '#eef0f3', width: 1 }, ticks: { stroke: '#dde1e7', width: 1 } };

/**
 * A time chart in container. spec:
 *   series: [{label, stroke, fill?, scale?, stepped?, value?(v) -> text}]
 *   height, title?, syncKey?, xAxis (default true), xRange?() -> [min, max] | null,
 *   scales? (extra y scales), axes? (y axes, default one on the left)
 * data: [xs (seconds), ys…]
 */
export function timeChart(container, spec, data) {
  const width = () => Math.max(220, Math.floor(container.clientWidth || 0));
  const xAxis = spec.xAxis !== false;
  const options = {
    width: width(),
    height: spec.height || 180,
    title: spec.title,
    cursor: spec.syncKey ? { sync: { key: spec.syncKey } } : {},
    legend: { live: true },
    scales: {
      x: {
        time: true,
        // uPlot pads a single point's range by the order of magnitude of its value
        // (years, for epoch seconds): show a minute around it instead.
        range: (u, min, max) => {
          const shared = spec.xRange ? spec.xRange() : null;
          const [lo, hi] = shared || [min, max];
          if (lo === null || hi === null || !Number.isFinite(lo) || !Number.isFinite(hi)) return [0, 1];
          return lo === hi ? [lo - 60, hi + 5] : [lo, hi];
        },
      },
      ...(spec.scales || {}),
    },
    axes: [
      { ...AXIS, show: xAxis, size: xAxis ? 28 : 0, space: 70, incrs: TIME_INCRS, splits: timeSplits, values: timeLabels },
      ...(spec.axes || [{ ...AXIS, size: 52, values: (u, splits) => splits.map((v) => num(v)) }]),
    ],
    series: [
      { label: 'time', value: (u, v) => (v == null ? '–' : new Date(v * 1000).toLocaleTimeString('en-GB')) },
      ...spec.series.map((s) => ({
        label: s.label,
        stroke: s.stroke,
        fill: s.fill,
        width: s.width || 1.5,
        scale: s.scale || 'y',
        spanGaps: false,
        paths: s.stepped ? uPlot.paths.stepped({ align: 1 }) : undefined,
        value: (u, v) => (v == null ? '–' : s.value ? s.value(v) : num(v)),
      })),
    ],
    hooks: spec.hooks || {},
  };
  const plot = new uPlot(options, data, container);

  let frame = 0;
  const observer = new ResizeObserver(() => {
    cancelAnimationFrame(frame);
    frame = requestAnimationFrame(() => {
      const w = width();
      if (w !== plot.width) plot.setSize({ width: w, height: plot.height });
    });
  });
  observer.observe(container);

  return {
    plot,
    setData(next) {
      plot.setData(next);
    },
    destroy() {
      cancelAnimationFrame(frame);
      observer.disconnect();
      plot.destroy();
    },
  };
}

// The time axis steps, in seconds: whole seconds, minutes and hours only (uPlot's own
// list goes down to milliseconds, whose ticks would repeat the same HH:MM:SS label when a
// few seconds are shown). The charts keep about an hour, so 12 h is more than enough.
const TIME_INCRS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200];

// The ticks: every whole multiple of incr (local time) within [min, max]. uPlot's own
// splits can put the first tick past max when the range is shorter than one step.
function timeSplits(u, axisIdx, min, max, incr) {
  const splits = [];
  if (!(incr > 0) || !Number.isFinite(min) || !Number.isFinite(max)) return splits;
  const offset = -new Date(min * 1000).getTimezoneOffset() * 60; // local time - UTC, in s
  for (let v = Math.ceil((min + offset) / incr) * incr - offset; v <= max; v += incr) splits.push(v);
  return splits;
}

// One line per tick, local 24 h time: HH:MM, or HH:MM:SS when ticks are under a minute
// apart (every tick is on a whole second, so no two read the same).
function timeLabels(u, splits, axisIdx, space, incr) {
  const seconds = incr < 60;
  return splits.map((v) => {
    const d = new Date(v * 1000);
    const hm = String(d.getHours()).padStart(2, '0') + ':' + String(d.getMinutes()).padStart(2, '0');
    return seconds ? hm + ':' + String(d.getSeconds()).padStart(2, '0') : hm;
  });
}

/** Drops the points older than keepSeconds before the newest from columnar data. */
export function trim(columns, keepSeconds) {
  const xs = columns[0];
  if (!xs.length) return;
  const cutoff = xs[xs.length - 1] - keepSeconds;
  let drop = 0;
  while (drop < xs.length && xs[drop] < cutoff) drop += 1;
  if (drop > 0) for (const column of columns) column.splice(0, drop);
}

/**
 * Adds a point at x (seconds) to columnar data: replaces the newest point when x equals
 * its x (a snapshot at the same as_of), ignores an x older than the newest.
 */
export function pushPoint(columns, x, values) {
  const xs = columns[0];
  const last = xs.length ? xs[xs.length - 1] : -Infinity;
  if (x < last) return false;
  if (x === last) {
    values.forEach((v, i) => { columns[i + 1][xs.length - 1] = v; });
    return true;
  }
  xs.push(x);
  values.forEach((v, i) => columns[i + 1].push(v));
  return true;
}

export const HOUR = 3600;
