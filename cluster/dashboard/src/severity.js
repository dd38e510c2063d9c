// severity.js — risk severity over time: how many hosts are low / medium / critical over
// the last hour, network-wide (the `severity?window=&span=1h&step=5s` subscription: exact
// counts the server keeps, from before the page opened), or one chosen host's score,
// started from GET /v1/risks/{ip}?window=&history=1 and continued from the risk stream.
// Keeps about an hour of points.

import { timeChart, pushPoint, trim, HOUR } from './chart.js';
import { getJson } from './api.js';
import { subscribe, viewSpec } from './sse.js';
import { RowSet, rowHandlers } from './rowset.js';
import { byId, el, setText, num } from './format.js';
import { coalesce } from './frame.js';

const MAX_HOSTS = 12;
const SPAN = '1h';
const STEP = '5s';
const COLORS = { low: '#5b7a3a', medium: '#c77700', critical: '#b3261e', score: '#2457c5' };

export function createSeverity(risks) {
  const container = byId('severity-chart');
  const picker = byId('severity-host');
  const noteEl = byId('severity-note');

  // The network's points: {as_of, low, medium, critical} rows of the subscription.
  const points = new RowSet();
  let network = [[], [], [], []];
  let latest = null; // the newest point
  let sub = null;
  let streamNote = '';
  const hosts = new Map(); // ip -> {data: [xs, ys], loadedAt: as_of of its history or null, error}
  let mode = ''; // '' = whole network, else an ip
  let chart = null;
  let chartMode = null;
  let generation = 0; // bumped at each window switch: late history answers are dropped

  const buildChart = () => {
    if (chart) chart.destroy();
    container.replaceChildren();
    if (mode === '') {
      chart = timeChart(container, {
        height: 200,
        series: [
          { label: 'low', stroke: COLORS.low },
          { label: 'medium', stroke: COLORS.medium },
          { label: 'critical', stroke: COLORS.critical, width: 2 },
        ],
        // asinh: linear near zero, logarithmic beyond, so a few critical hosts stay
        // visible beside thousands of low ones.
        scales: { y: { distr: 4, asinh: 1, range: (u, min, max) => [0, Math.max(10, max || 0)] } },
        axes: [{ stroke: '#4a5262', grid: { stroke: '#eef0f3', width: 1 }, ticks: { stroke: '#dde1e7', width: 1 }, size: 52,
          // Ticks at 0 and the powers of ten only: asinh's own splits fill every decade.
          splits: (u, axisIdx, min, max) => {
            const out = [0];
            for (let v = 1; v <= max; v *= 10) out.push(v);
            return out;
          },
          values: (u, splits) => splits.map((v) => num(v)) }],
      }, network);
    } else {
      const ip = mode;
      chart = timeChart(container, {
        height: 200,
        series: [{ label: 'score of ' + ip, stroke: COLORS.score, width: 2, stepped: true }],
        scales: { y: { range: [0, 100] } },
        hooks: { draw: [drawBands] },
      }, hosts.get(ip).data);
    }
    chartMode = mode;
  };

  // Dashed lines at the medium (40) and critical (70) thresholds of a host's score.
  function drawBands(u) {
    const ctx = u.ctx;
    const { left, width } = u.bbox;
    ctx.save();
    ctx.setLineDash([4, 4]);
    ctx.lineWidth = 1;
    for (const [value, color] of [[40, COLORS.medium], [70, COLORS.critical]]) {
      const y = Math.round(u.valToPos(value, 'y', true)) + 0.5;
      ctx.strokeStyle = color;
      ctx.beginPath();
      ctx.moveTo(left, y);
      ctx.lineTo(left + width, y);
      ctx.stroke();
    }
    ctx.restore();
  }

  const render = coalesce(() => {
    if (chartMode !== mode || !chart) buildChart();
    else chart.setData(mode === '' ? network : hosts.get(mode).data);
    let note = '';
    if (mode === '') {
      note = streamNote || (latest
        ? 'Hosts by severity in the ' + (risks.window || '') + ' window: ' + num(latest.critical) + ' critical, '
          + num(latest.medium) + ' medium, ' + num(latest.low) + ' low; the last hour every ' + STEP
          + ' (scale: linear near 0, logarithmic above).'
        : 'Waiting for the severity stream…');
    } else {
      const host = hosts.get(mode);
      const row = risks.scoreOf(mode);
      note = host.error
        ? 'History unavailable: ' + host.error + '. Showing the stream since it was chosen.'
        : host.loadedAt === null ? 'Loading the score history…'
          : 'Score of ' + mode + ' in the ' + (risks.window || '') + ' window'
            + (row ? ': ' + num(row.score) + ' (' + row.severity + ') now.' : ': no score now.')
            + ' Dashed: medium (40) and critical (70).';
    }
    setText(noteEl, note);
  }, 300);

  function renderPicker() {
    const options = [el('option', { value: '' }, 'whole network')];
    for (const ip of hosts.keys()) options.push(el('option', { value: ip }, ip));
    picker.replaceChildren(...options);
    picker.value = mode;
  }

  async function loadHistory(ip) {
    const host = hosts.get(ip);
    const w = risks.window;
    const gen = generation;
    if (!host || !w) return;
    try {
      const body = await getJson('/v1/risks/' + encodeURIComponent(ip) + '?window=' + encodeURIComponent(w) + '&history=1');
      if (gen !== generation || hosts.get(ip) !== host) return;
      const histories = Array.isArray(body.history) ? body.history : [];
      const entry = histories.find((h) => h && h.window === w) || histories[0];
      const changes = entry && Array.isArray(entry.changes) ? entry.changes : [];
      const answeredAt = typeof body.as_of === 'number' ? body.as_of / 1000 : null;
      const points = changes
        .filter((c) => c && typeof c.as_of === 'number')
        .map((c) => [c.as_of / 1000, typeof c.score === 'number' ? c.score : null])
        .sort((a, b) => a[0] - b[0]);
      if (answeredAt !== null && points.length && points[points.length - 1][0] < answeredAt) {
        points.push([answeredAt, points[points.length - 1][1]]);
      }
      // Merge: the history up to its as_of, the stream after it.
      const [xs, ys] = host.data;
      const after = answeredAt === null ? -Infinity : answeredAt;
      for (let i = 0; i < xs.length; i += 1) if (xs[i] > after) points.push([xs[i], ys[i]]);
      const newest = points.length ? points[points.length - 1][0] : 0;
      const cutoff = newest - HOUR;
      // Keep an hour, starting with the step in force at its start.
      let start = 0;
      while (start + 1 < points.length && points[start + 1][0] <= cutoff) start += 1;
      const kept = points.slice(start);
      if (kept.length && kept[0][0] < cutoff) kept[0] = [cutoff, kept[0][1]];
      host.data = [kept.map((p) => p[0]), kept.map((p) => p[1])];
      host.loadedAt = answeredAt;
      host.error = null;
    } catch (error) {
      if (gen !== generation || hosts.get(ip) !== host) return;
      host.error = error && error.message ? error.message : 'request failed';
      host.loadedAt = -1;
    }
    render();
  }

  /** Follows a host (adds it to the picker) and shows it. */
  function track(ip) {
    if (!ip) return;
    if (!hosts.has(ip)) {
      if (hosts.size >= MAX_HOSTS) {
        const oldest = [...hosts.keys()].find((k) => k !== mode);
        if (oldest !== undefined) hosts.delete(oldest);
      }
      hosts.set(ip, { data: [[], []], loadedAt: null, error: null });
      loadHistory(ip);
    }
    mode = ip;
    renderPicker();
    render();
  }

  // The network series from the subscription's rows, oldest first.
  function rebuildNetwork() {
    const rows = points.rows()
      .filter((p) => p && typeof p === 'object' && typeof p.as_of === 'number')
      .sort((a, b) => a.as_of - b.as_of);
    const count = (v) => (typeof v === 'number' ? v : null);
    network = [
      rows.map((p) => p.as_of / 1000),
      rows.map((p) => count(p.low)),
      rows.map((p) => count(p.medium)),
      rows.map((p) => count(p.critical)),
    ];
    latest = rows.length ? rows[rows.length - 1] : null;
  }

  function follow(w) {
    if (sub) sub.close();
    points.reset([]);
    rebuildNetwork();
    streamNote = '';
    if (!w) return;
    sub = subscribe('severity', viewSpec('severity', { window: w, span: SPAN, step: STEP }), {
      ...rowHandlers(points, {
        label: 'severity',
        tick() {
          rebuildNetwork();
          if (streamNote.startsWith('The page fell behind')) streamNote = '';
          render();
        },
        note(text) {
          streamNote = text;
          render();
        },
      }),
    });
  }

  picker.addEventListener('change', () => {
    mode = hosts.has(picker.value) ? picker.value : '';
    render();
  });

  return {
    track,
    /** After every risk event: one point per followed host at that as_of. */
    tick(asOf) {
      if (typeof asOf !== 'number') return;
      const x = asOf / 1000;
      for (const [ip, host] of hosts) {
        const row = risks.scoreOf(ip);
        pushPoint(host.data, x, [row && typeof row.score === 'number' ? row.score : null]);
        trim(host.data, HOUR);
      }
      render();
    },
    /** A new window: the old one's points no longer apply. */
    reset() {
      generation += 1;
      follow(risks.window);
      for (const [ip, host] of hosts) {
        host.data = [[], []];
        host.loadedAt = null;
        host.error = null;
        loadHistory(ip);
      }
      chartMode = null;
      render();
    },
    start() {
      renderPicker();
      render();
    },
  };
}
