// risks.js — the risk panel: the `risks?window=<w>&limit=10000` subscription (its full
// state also feeds the severity chart), the table of the top 100 hosts (critical first),
// and the selected host's factors with what each one means.

import { subscribe, viewSpec } from './sse.js';
import { RowSet, rowHandlers } from './rowset.js';
import { byId, el, setText, num, bytes, clock, compareIp, keepChildren } from './format.js';
import { coalesce } from './frame.js';

const SHOWN = 100;
const LIMIT = 10000;
const SEVERITIES = ['low', 'medium', 'critical'];

/** The five factors: their column title, how the points come about, how to show the value. */
export const FACTORS = [
  {
    key: 'fanout',
    title: 'fanout',
    rule: 'distinct destinations ÷ 4, at most 25 points',
    value: (v) => num(v) + ' destinations',
  },
  {
    key: 'ports',
    title: 'ports',
    rule: 'distinct destination ports ÷ 5, at most 20 points',
    value: (v) => num(v) + ' ports',
  },
  {
    key: 'failures',
    title: 'failures',
    rule: '20 × failed ÷ connections (only with 10 or more connections), at most 20 points',
    value: (v) => num(v) + ' failed',
  },
  {
    key: 'sensitive',
    title: 'sensitive',
    rule: '5 per distinct sensitive port reached (SSH, Telnet, SMB, RDP, VNC, databases…), at most 15 points',
    value: (v) => num(v) + ' sensitive ports',
  },
  {
    key: 'external',
    title: 'external',
    rule: '1 per 10 MB sent to non-private addresses, at most 20 points',
    value: (v) => bytes(v) + ' out',
  },
];

const factor = (row, key) => {
  const f = row && row.factors && row.factors[key];
  return f && typeof f === 'object' ? f : {};
};

const byScore = (a, b) => (Number(b.score) || 0) - (Number(a.score) || 0) || compareIp(a.ip, b.ip);

export function severityBadge(severity) {
  const badge = el('span');
  setBadge(badge, severity);
  return badge;
}

function setBadge(badge, severity) {
  const name = 'sev ' + (SEVERITIES.includes(severity) ? severity : 'unknown');
  if (badge.className !== name) badge.className = name;
  setText(badge, severity || '–');
}

/**
 * onTick(asOf): after every event of the subscription, once its rows are applied.
 * onSelect(ip): a row was clicked.
 */
export function createRisks({ onTick, onSelect }) {
  const byIp = new Map();
  const counts = { low: 0, medium: 0, critical: 0 };
  const rows = new RowSet({
    add(row) {
      if (!row || typeof row !== 'object') return;
      byIp.set(row.ip, row);
      if (row.severity in counts) counts[row.severity] += 1;
    },
    remove(row) {
      if (!row || typeof row !== 'object') return;
      if (byIp.get(row.ip) === row) byIp.delete(row.ip);
      if (row.severity in counts) counts[row.severity] -= 1;
    },
  });

  let windowName = null;
  let sub = null;
  let asOf = null;
  let note = '';
  let selected = null;
  let rendered = -1;

  const tbody = byId('risk-table').tBodies[0];
  const summaryEl = byId('risk-summary');
  const noteEl = byId('risk-note');
  const factorsEl = byId('risk-factors');

  const renderTable = () => {
    if (rendered === rows.version) return;
    rendered = rows.version;
    const sorted = [...byIp.values()].sort(byScore).slice(0, SHOWN);
    for (const stale of tbody.querySelectorAll('tr.empty')) stale.remove();
    const trs = keepChildren(tbody, sorted.length, () => el('tr', { tabindex: 0 },
      el('td', { class: 'ip' }), el('td', { class: 'n score' }), el('td', null, severityBadge('')),
      el('td', { class: 'n' }), FACTORS.map(() => el('td', { class: 'n' }))));
    sorted.forEach((r, i) => {
      const tr = trs[i];
      const cells = tr.children;
      if (tr.getAttribute('data-ip') !== String(r.ip)) tr.setAttribute('data-ip', r.ip);
      tr.classList.toggle('selected', r.ip === selected);
      setText(cells[0], String(r.ip));
      setText(cells[1], num(r.score));
      setBadge(cells[2].firstChild, r.severity);
      setText(cells[3], num(r.connections));
      FACTORS.forEach((f, j) => {
        const x = factor(r, f.key);
        const td = cells[4 + j];
        td.className = 'n' + (x.points ? '' : ' zero');
        setText(td, num(x.points));
        td.title = x.value === undefined ? '' : f.value(x.value);
      });
    });
    if (!sorted.length) {
      tbody.appendChild(el('tr', { class: 'empty' }, el('td', { colspan: 4 + FACTORS.length },
        sub && sub.state === 'live' ? 'no host has a score in this window yet' : 'waiting for the risk stream…')));
    }
  };

  const renderSummary = () => {
    const total = byIp.size;
    // Past the subscription's limit these are the riskiest hosts only; the severity chart
    // has the exact counts.
    const scored = total >= LIMIT ? 'the ' + num(total) + ' riskiest hosts' : num(total) + ' hosts scored';
    setText(summaryEl, total
      ? scored + ': ' + num(counts.critical) + ' critical, ' + num(counts.medium) + ' medium, '
        + num(counts.low) + ' low' + (total > SHOWN ? ' · top ' + SHOWN + ' shown' : '')
        + (asOf ? ' · as of ' + clock(asOf) : '')
      : '');
    setText(noteEl, note);
    noteEl.hidden = !note;
  };

  const renderFactors = () => {
    if (!selected) {
      factorsEl.replaceChildren(el('p', { class: 'muted' }, 'Click a host in the table for its factors.'));
      return;
    }
    const row = byIp.get(selected);
    const head = el('div', { class: 'factors-head' },
      el('b', { class: 'ip' }, selected), ' ',
      row ? [severityBadge(row.severity), ' score ', el('b', null, num(row.score)), ' · ', num(row.connections), ' connections']
        : el('span', { class: 'muted' }, 'no score in the ' + (windowName || '') + ' window now'));
    if (!row) {
      factorsEl.replaceChildren(head);
      return;
    }
    const table = el('table', { class: 'factors' },
      el('thead', null, el('tr', null, el('th', null, 'factor'), el('th', { class: 'n' }, 'points'),
        el('th', { class: 'n' }, 'raw value'))),
      el('tbody', null, FACTORS.map((f) => {
        const x = factor(row, f.key);
        return el('tr', null, el('td', null, el('b', null, f.title), el('div', { class: 'rule' }, f.rule)),
          el('td', { class: 'n' }, num(x.points)),
          el('td', { class: 'n' }, x.value === undefined ? '–' : f.value(x.value)));
      })));
    const foot = el('p', { class: 'muted small' },
      'score = 1 + the points, 1–100; medium from 40, critical from 70.');
    factorsEl.replaceChildren(head, table, foot);
  };

  const render = coalesce(() => {
    renderTable();
    renderSummary();
    renderFactors();
  });

  const tick = (data) => {
    if (typeof data.as_of === 'number') asOf = data.as_of;
    if (onTick) onTick(asOf);
    render();
  };

  function open(w) {
    if (sub) sub.close();
    rows.reset([]);
    asOf = null;
    note = '';
    rendered = -1;
    windowName = w;
    sub = subscribe('risks', viewSpec('risks', { window: w, limit: LIMIT }), {
      ...rowHandlers(rows, {
        label: 'risk',
        tick,
        note(text) {
          note = text;
          render();
        },
      }),
      state(state) {
        if (state === 'live' && note.startsWith('Risk stream ended')) note = '';
        rendered = -1;
        render();
      },
    });
    render();
  }

  function select(ip) {
    selected = ip || null;
    rendered = -1;
    render();
  }

  const clicked = (event) => {
    const tr = event.target.closest('tr[data-ip]');
    if (!tr) return;
    const ip = tr.getAttribute('data-ip');
    select(ip);
    if (onSelect) onSelect(ip);
  };
  tbody.addEventListener('click', clicked);
  tbody.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' || event.key === ' ') {
      event.preventDefault();
      clicked(event);
    }
  });

  render();
  return {
    setWindow: open,
    select,
    get window() {
      return windowName;
    },
    scoreOf: (ip) => byIp.get(ip) || null,
    counts: () => ({ ...counts }),
    hasData: () => asOf !== null,
  };
}
