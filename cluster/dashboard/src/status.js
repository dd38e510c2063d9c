// status.js — the status bar in the header: as_of and how far behind the wall clock it
// is, records/s (from consecutive status rows over wall-clock time), lag, dead letters,
// and the state of the page's stream and its subscriptions. Fed by the `status`
// subscription.

import { subscribe, connectionStates, onConnectionChange, streamUrl } from './sse.js';
import { RowSet } from './rowset.js';
import { byId, setText, num, num1, clock, dateTime, duration } from './format.js';
import { coalesce } from './frame.js';

const RATE_SPAN_MS = 10000; // records/s averages over about this much wall-clock time

export function startStatus() {
  const rows = new RowSet();
  const samples = []; // {t: performance.now(), records}
  let asOf = null;
  let ended = null;

  const asofEl = byId('status-asof');
  const rateEl = byId('status-rate');
  const lagEl = byId('status-lag');
  const deadEl = byId('status-dead');
  const connEl = byId('status-conn');
  const extraEl = byId('status-extra');

  const current = () => rows.rows()[0] || null;

  const sample = () => {
    const row = current();
    if (!row || typeof row.records !== 'number') return;
    const t = performance.now();
    const last = samples[samples.length - 1];
    if (last && row.records < last.records) samples.length = 0; // a restart
    samples.push({ t, records: row.records });
    while (samples.length > 2 && t - samples[1].t >= RATE_SPAN_MS) samples.shift();
  };

  const rate = () => {
    if (samples.length < 2) return null;
    const first = samples[0];
    const last = samples[samples.length - 1];
    const seconds = (last.t - first.t) / 1000;
    return seconds >= 0.5 ? (last.records - first.records) / seconds : null;
  };

  const renderAsOf = () => {
    if (typeof asOf !== 'number') {
      setText(asofEl, '–');
      return;
    }
    const behind = Date.now() - asOf;
    setText(asofEl, clock(asOf) + ' · ' + (behind >= 0 ? duration(behind) + ' behind now' : 'ahead of this clock'));
    asofEl.title = 'as_of ' + dateTime(asOf) + ' (' + asOf + ' ms)';
  };

  const render = coalesce(() => {
    renderAsOf();
    const row = current() || {};
    const r = rate();
    setText(rateEl, r === null ? '–' : num1(r));
    setText(lagEl, typeof row.lag === 'number' ? num(row.lag) : 'n/a');
    lagEl.title = typeof row.lag === 'number'
      ? 'records the sources have not read yet, summed over partitions'
      : 'no partition reports a lag (e.g. the generator or a file)';
    setText(deadEl, num(row.dead_letters));
    const parts = [];
    if (typeof row.late_records === 'number') parts.push(num(row.late_records) + ' late');
    if (typeof row.workers === 'number') {
      parts.push(row.workers + ' worker' + (row.workers === 1 ? '' : 's')
        + (typeof row.processes === 'number' ? ' in ' + row.processes + ' process' + (row.processes === 1 ? '' : 'es') : ''));
    }
    if (row.catching_up === true) parts.push('catching up');
    if (ended) parts.push('status stream ended: ' + ended);
    setText(extraEl, parts.join(' · '));
    renderConnections();
  }, 200);

  function renderConnections() {
    // Every subscription shares one stream: they connect, go live and reconnect together;
    // one can also have ended on its own.
    const states = connectionStates();
    const live = states.filter((s) => s.state === 'live').length;
    const waiting = states.filter((s) => s.state === 'connecting');
    const broken = states.filter((s) => s.state === 'reconnecting' || s.state === 'retrying');
    const ended = states.filter((s) => s.state === 'ended').length;
    let text;
    let kind;
    if (broken.length) {
      text = 'reconnecting…';
      kind = 'bad';
    } else if (waiting.length) {
      text = 'connecting…';
      kind = 'wait';
    } else {
      text = 'live' + (states.length ? ' (' + live + ' view' + (live === 1 ? '' : 's') + (ended ? ', ' + ended + ' ended' : '') + ')' : '');
      kind = 'ok';
    }
    setText(connEl, text);
    connEl.className = 'conn ' + kind;
    const url = streamUrl();
    connEl.title = (url ? 'one stream: ' + decodeURIComponent(url) + '\n' : '')
      + states.map((s) => s.name + ': ' + s.state + (s.detail ? ' — ' + s.detail : '')).join('\n');
  }

  const onEvent = (data) => {
    if (typeof data.as_of === 'number') asOf = data.as_of;
    sample();
    render();
  };

  subscribe('status', 'status', {
    snapshot(data) {
      rows.reset(data.rows);
      ended = null;
      onEvent(data);
    },
    changes(data) {
      rows.apply(data.changes);
      onEvent(data);
    },
    progress: onEvent,
    overflow: onEvent,
    ended(error) {
      ended = error.message || error.code;
      render();
    },
  });

  onConnectionChange(render);
  setInterval(renderAsOf, 1000);
  render();
}
