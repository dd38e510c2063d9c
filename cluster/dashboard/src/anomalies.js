// anomalies.js — the anomaly feed: the `anomalies?window=<w>&limit=200` subscription,
// newest detection first, each with its kind badge and a one-line summary of its evidence.

import { subscribe, viewSpec } from './sse.js';
import { RowSet, rowHandlers } from './rowset.js';
import { byId, el, setText, num, num1, dateTime, clock, compareIp, keepChildren } from './format.js';
import { coalesce } from './frame.js';

const LIMIT = 200;

const KINDS = {
  port_scan: 'port scan',
  fanout_spike: 'fanout spike',
  new_external_destination: 'new external',
  policy_violation: 'policy violation',
};

const n = (v) => (typeof v === 'number' ? v : null);

/** One line that says what was seen. */
export function evidenceSummary(kind, evidence) {
  const e = evidence && typeof evidence === 'object' ? evidence : {};
  switch (kind) {
    case 'port_scan': {
      const pct = n(e.connections) && n(e.failed) !== null ? ' (' + Math.round((100 * e.failed) / e.connections) + '%)' : '';
      return num(e.connections) + ' connections, ' + num(e.failed) + ' failed' + pct + ', '
        + num(e.distinct_ports) + ' ports, ' + num(e.distinct_hosts) + ' hosts';
    }
    case 'fanout_spike': {
      const mean = n(e.baseline_buckets) ? e.baseline_destinations / e.baseline_buckets : null;
      return num(e.destinations) + ' destinations against a mean of ' + num1(mean) + ' over '
        + num(e.baseline_buckets) + ' earlier window' + (e.baseline_buckets === 1 ? '' : 's');
    }
    case 'new_external_destination':
      return 'first contact with ' + (e.dst_ip || '–') + ' within 24h';
    case 'policy_violation':
      return (e.from || '?') + ' → ' + (e.to || '?') + ' on ' + (e.dst_ip ? e.dst_ip + ' ' : '')
        + (e.dst_port !== undefined ? e.dst_port : '?') + '/' + (e.proto || '?') + ', new between these segments';
    default:
      return Object.entries(e).map(([k, v]) => k + ' ' + (typeof v === 'object' ? JSON.stringify(v) : v)).join(', ');
  }
}

const newestFirst = (a, b) => (Number(b.first_detected) || 0) - (Number(a.first_detected) || 0)
  || compareIp(a.host, b.host) || String(a.kind).localeCompare(String(b.kind));

/** onHost(ip): a host address was clicked. */
export function createAnomalies({ onHost }) {
  const rows = new RowSet();
  const list = byId('anomaly-feed');
  const summaryEl = byId('anomaly-summary');
  const noteEl = byId('anomaly-note');
  let sub = null;
  let note = '';
  let asOf = null;
  let rendered = -1;

  const render = coalesce(() => {
    setText(noteEl, note);
    noteEl.hidden = !note;
    const all = rows.rows().filter((r) => r && typeof r === 'object');
    const byKind = {};
    for (const r of all) byKind[r.kind] = (byKind[r.kind] || 0) + 1;
    setText(summaryEl, all.length
      ? Object.entries(byKind).map(([k, c]) => num(c) + ' ' + (KINDS[k] || k)).join(' · ')
        + (asOf ? ' · as of ' + clock(asOf) : '')
      : '');
    if (rendered === rows.version) return;
    rendered = rows.version;
    const sorted = all.sort(newestFirst);
    for (const stale of list.querySelectorAll('li.empty')) stale.remove();
    const items = keepChildren(list, sorted.length, () => el('li', { class: 'anomaly' },
      el('span', { class: 'when' }), el('span', { class: 'kind' }),
      el('a', { class: 'ip host', href: '#' }), el('span', { class: 'evidence' })));
    sorted.forEach((a, i) => {
      const [when, kind, host, evidence] = items[i].children;
      setText(when, clock(a.first_detected));
      when.title = dateTime(a.first_detected);
      kind.className = 'kind ' + (KINDS[a.kind] ? a.kind : 'other');
      setText(kind, KINDS[a.kind] || a.kind || '?');
      host.setAttribute('data-ip', a.host || '');
      setText(host, a.host || '–');
      setText(evidence, evidenceSummary(a.kind, a.evidence));
    });
    if (!sorted.length) {
      list.appendChild(el('li', { class: 'empty muted' },
        sub && sub.state === 'live' ? 'no anomaly in this window' : 'waiting for the anomaly stream…'));
    }
  });

  const tick = (data) => {
    if (typeof data.as_of === 'number') asOf = data.as_of;
    render();
  };

  list.addEventListener('click', (event) => {
    const link = event.target.closest('a[data-ip]');
    if (!link) return;
    event.preventDefault();
    const ip = link.getAttribute('data-ip');
    if (ip && onHost) onHost(ip);
  });

  function open(w) {
    if (sub) sub.close();
    rows.reset([]);
    note = '';
    asOf = null;
    sub = subscribe('anomalies', viewSpec('anomalies', { window: w, limit: LIMIT }), {
      ...rowHandlers(rows, {
        label: 'anomaly',
        tick,
        note(text) {
          note = text;
          render();
        },
      }),
      state() {
        rendered = -1;
        render();
      },
    });
    render();
  }

  return { setWindow: open };
}
