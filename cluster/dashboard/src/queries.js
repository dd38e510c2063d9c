// queries.js — registered queries over time: lists them (GET /v1/queries, every 10 s),
// lets the reader choose up to 6, follows each chosen one's results (a subscription
// `q_<slot>` → `queries/<name>?limit=10000` on the page's one stream) and draws one small
// chart per query (own y scale, shared time axis, synced cursor). Each point is the sum
// of the query's first numeric result column over its result rows at that as_of.

import { subscribe, viewSpec, holdStream } from './sse.js';
import { getJson } from './api.js';
import { RowSet } from './rowset.js';
import { timeChart, pushPoint, trim, HOUR } from './chart.js';
import { byId, el, setText, num, clock } from './format.js';
import { coalesce } from './frame.js';

const MAX_CHOSEN = 6;
const LIST_EVERY_MS = 10000;
const ROW_LIMIT = 10000;
const NOTICE_MS = 60000; // how long the page says that a charted query ended
const PALETTE = ['#2457c5', '#b3261e', '#2e8b57', '#8e44ad', '#c77700', '#0f7c8c'];

const CURL = 'curl -X POST localhost:8080/v1/queries -H \'content-type: application/json\' '
  + '-d \'{"name":"ssh","sql":"SELECT COUNT(*) AS n FROM flows_30m WHERE dst_port = 22"}\'';

/**
 * The rule of every series: the first column (in result order) holding a number in some
 * row, summed over the rows. No rows sum to 0; rows without any number give null.
 */
export function sumFirstNumeric(columns, rows) {
  if (!Array.isArray(rows) || rows.length === 0) return { column: null, value: 0 };
  const names = columnNames(columns, rows);
  const column = names.find((c) => rows.some((r) => r && typeof r[c] === 'number'));
  if (column === undefined) return { column: null, value: null };
  let sum = 0;
  for (const r of rows) if (r && typeof r[column] === 'number') sum += r[column];
  return { column, value: sum };
}

function columnNames(columns, rows) {
  if (Array.isArray(columns) && columns.length) {
    return columns.map((c) => (c && typeof c === 'object' ? c.name : c)).filter((c) => typeof c === 'string');
  }
  const first = rows.find((r) => r && typeof r === 'object');
  return first ? Object.keys(first) : [];
}

export function createQueries() {
  const listEl = byId('queries-list');
  const chartsEl = byId('queries-chart');
  const hintEl = byId('queries-hint');
  const noteEl = byId('queries-note');

  const queries = new Map(); // name -> query state
  const declined = new Set(); // names the reader unchecked: not chosen again by default
  const notices = new Map(); // name -> {text, at}: charted queries that ended (e.g. dropped)
  let listed = false;
  let listError = '';
  let disabled = false;
  let charts = []; // {name, chart}
  let chartKey = '';

  const chosen = () => [...queries.values()].filter((q) => q.chosen).sort((a, b) => a.name.localeCompare(b.name));
  // Chosen and followable: not failed, and its subscription has not ended.
  const charted = () => chosen().filter((q) => q.state !== 'failed' && !q.ended);

  const xRange = () => {
    let min = Infinity;
    let max = -Infinity;
    for (const q of charted()) {
      const xs = q.data[0];
      if (xs.length) {
        min = Math.min(min, xs[0]);
        max = Math.max(max, xs[xs.length - 1]);
      }
    }
    if (min === Infinity) return null;
    return [min, max];
  };

  const record = (q, asOf, columns, rows) => {
    if (typeof asOf !== 'number') return;
    const { column, value } = sumFirstNumeric(columns || q.columns, rows);
    if (column) q.column = column;
    q.noNumber = value === null;
    q.rows = Array.isArray(rows) ? rows.length : 0;
    q.asOf = asOf;
    pushPoint(q.data, asOf / 1000, [value]);
    trim(q.data, HOUR);
    render();
  };

  let listKey = '';
  const renderList = () => {
    const key = disabled ? '' : [...queries.values()].map((q) => [q.name, q.chosen, q.state, q.reason, q.error, q.window, q.sql].join('\u0000')).sort().join('\u0001');
    if (key === listKey) return; // rebuilt only when it changes, so no click is lost
    listKey = key;
    if (disabled) {
      listEl.replaceChildren();
      return;
    }
    const count = chosen().length;
    const items = [...queries.values()].sort((a, b) => a.name.localeCompare(b.name)).map((q) => {
      const failed = q.state === 'failed';
      const box = el('input', {
        type: 'checkbox',
        value: q.name,
        checked: q.chosen,
        disabled: failed || (!q.chosen && count >= MAX_CHOSEN),
      });
      return el('label', { class: 'query-choice' + (failed ? ' failed' : ''), title: q.sql || '' },
        box, ' ', el('b', null, q.name),
        q.window ? el('span', { class: 'muted' }, ' ' + q.window) : null,
        failed ? el('span', { class: 'err' }, ' failed' + (q.reason ? ': ' + q.reason : '')) : null,
        q.error ? el('span', { class: 'err' }, ' ' + q.error) : null);
    });
    if (queries.size > MAX_CHOSEN) items.push(el('span', { class: 'muted small' }, 'at most ' + MAX_CHOSEN + ' at once'));
    listEl.replaceChildren(...items);
  };

  const labelOf = (q) => q.name + (q.column ? ' · Σ ' + q.column : '');

  const renderCharts = () => {
    const list = charted();
    const key = list.map((q) => q.name + '\u0000' + (q.column || '')).join('\u0001');
    if (key !== chartKey) {
      for (const c of charts) c.chart.destroy();
      chartsEl.replaceChildren();
      charts = list.map((q, i) => {
        const box = el('div', { class: 'multiple', 'data-query': q.name });
        chartsEl.appendChild(box);
        const last = i === list.length - 1;
        const color = PALETTE[i % PALETTE.length];
        return {
          name: q.name,
          chart: timeChart(box, {
            height: last ? 110 : 80,
            syncKey: 'flowsight-queries',
            xAxis: last,
            xRange,
            series: [{ label: labelOf(q), stroke: color, fill: color + '18', stepped: true }],
            axes: [{ stroke: '#4a5262', grid: { stroke: '#eef0f3', width: 1 }, ticks: { show: false }, size: 60,
              values: (u, splits) => splits.map((v) => num(v)) }],
          }, q.data),
        };
      });
      chartKey = key;
    } else {
      for (const c of charts) {
        const q = queries.get(c.name);
        if (q) c.chart.setData(q.data);
      }
    }
  };

  const render = coalesce(() => {
    renderList();
    renderCharts();
    const none = listed && queries.size === 0 && !disabled;
    hintEl.hidden = !none;
    const notes = [];
    if (disabled) notes.push('Registered queries are off on this server (--no-queries).');
    if (listError) notes.push('Listing the queries failed: ' + listError);
    if (!none && !disabled && listed && chosen().length === 0 && queries.size) notes.push('Choose a query to chart it.');
    const now = Date.now();
    for (const [name, notice] of notices) {
      if (now - notice.at > NOTICE_MS) notices.delete(name);
      else notes.push(notice.text);
    }
    for (const q of charted()) {
      if (q.noNumber) notes.push(q.name + ': no numeric column in its results.');
      if (q.rows >= ROW_LIMIT) notes.push(q.name + ': sums the first ' + num(ROW_LIMIT) + ' rows only.');
    }
    const newest = Math.max(...charted().map((q) => q.asOf || 0), 0);
    if (newest) notes.push('as of ' + clock(newest));
    setText(noteEl, notes.join(' '));
  }, 300);

  // ---- subscriptions ---------------------------------------------------------------

  // Each followed query has a slot 0–5 while it is followed: its subscription is q_<slot>.
  const freeSlot = () => {
    const used = new Set([...queries.values()].filter((q) => q.sub).map((q) => q.slot));
    for (let i = 0; i < MAX_CHOSEN; i += 1) if (!used.has(i)) return i;
    return null;
  };

  function follow(q) {
    if (q.sub) return;
    const slot = freeSlot();
    if (slot === null) return;
    const rows = new RowSet();
    q.slot = slot;
    q.sub = subscribe('q_' + slot, viewSpec('queries/' + encodeURIComponent(q.name), { limit: ROW_LIMIT }), {
      snapshot(data) {
        if (Array.isArray(data.columns)) q.columns = data.columns;
        rows.reset(data.rows);
        q.error = '';
        record(q, data.as_of, q.columns, rows.rows());
      },
      changes(data) {
        rows.apply(data.changes);
        record(q, data.as_of, q.columns, rows.rows());
      },
      progress(data) {
        record(q, data.as_of, q.columns, rows.rows());
      },
      ended(error) {
        // Dropped (unknown_query), failed, or refused: stop charting it and say so. The
        // stream goes on for the others; the listing, read again now, tells what became
        // of the query, and the next reconcile takes it off the stream (once).
        const message = error.message || error.code;
        q.ended = true;
        q.endedFor = q.registeredAt;
        q.error = error.code === 'unknown_query' ? 'dropped' : message;
        if (error.code === 'query_failed') q.state = 'failed';
        notices.set(q.name, {
          text: q.name + (error.code === 'unknown_query' ? ' was dropped: ' : ' stopped: ') + message + '.',
          at: Date.now(),
        });
        render();
        relistSoon();
      },
    });
  }

  function unfollow(q) {
    if (q.sub) q.sub.close();
    q.sub = null;
    q.slot = null;
  }

  /**
   * Subscribes to every charted query and unsubscribes from the others. Every change made
   * in one call reopens the page's stream once.
   */
  function reconcile() {
    const want = new Set(charted());
    for (const q of queries.values()) if (q.sub && !want.has(q)) unfollow(q);
    for (const q of want) follow(q);
  }

  // ---- the list of registered queries ---------------------------------------------

  function choose(q, on) {
    q.chosen = on;
    if (on) {
      declined.delete(q.name);
      // Chosen again by the reader: try its subscription again.
      if (q.ended) {
        q.ended = false;
        q.error = '';
        notices.delete(q.name);
      }
    }
  }

  let listTimer = null;
  function relistSoon() {
    clearTimeout(listTimer);
    listTimer = setTimeout(refreshList, 200);
  }

  async function refreshList() {
    clearTimeout(listTimer);
    try {
      const body = await getJson('/v1/queries');
      const rows = Array.isArray(body.rows) ? body.rows : [];
      const seen = new Set();
      for (const info of rows) {
        if (!info || typeof info.name !== 'string') continue;
        seen.add(info.name);
        let q = queries.get(info.name);
        if (!q) {
          q = {
            name: info.name, chosen: false, data: [[], []], column: null, asOf: null,
            sub: null, slot: null, error: '', ended: false, endedFor: null, registeredAt: null,
          };
          queries.set(info.name, q);
        }
        q.registeredAt = info.registered_at === undefined ? null : info.registered_at;
        if (q.ended && q.registeredAt !== q.endedFor) {
          // Registered again under the same name since its subscription ended: a new query.
          q.ended = false;
          q.error = '';
          q.data = [[], []];
          q.column = null;
          q.asOf = null;
          notices.delete(q.name);
        }
        q.sql = info.sql;
        q.window = info.window;
        q.state = info.state;
        q.reason = info.reason;
        if (Array.isArray(info.columns)) q.columns = info.columns;
      }
      for (const [name, q] of queries) {
        if (!seen.has(name)) {
          unfollow(q);
          queries.delete(name);
          declined.delete(name);
        }
      }
      // Chosen by default: the first ones by name, up to the limit, unless unchecked.
      let count = chosen().length;
      for (const q of [...queries.values()].sort((a, b) => a.name.localeCompare(b.name))) {
        if (count >= MAX_CHOSEN) break;
        if (!q.chosen && q.state !== 'failed' && !declined.has(q.name)) {
          choose(q, true);
          count += 1;
        }
      }
      for (const q of chosen()) if (q.state === 'failed') choose(q, false);
      listed = true;
      listError = '';
      disabled = false;
    } catch (error) {
      if (error.code === 'view_disabled') {
        disabled = true;
        for (const q of queries.values()) unfollow(q);
        queries.clear();
      } else {
        listError = error.message || 'request failed';
      }
    }
    reconcile();
    render();
    clearTimeout(listTimer); // a listing asked for meanwhile (relistSoon) is this one
    listTimer = setTimeout(refreshList, disabled ? 6 * LIST_EVERY_MS : LIST_EVERY_MS);
  }

  listEl.addEventListener('change', (event) => {
    const box = event.target;
    if (!box || box.type !== 'checkbox') return;
    const q = queries.get(box.value);
    if (!q) return;
    if (box.checked && chosen().length >= MAX_CHOSEN) {
      box.checked = false;
      return;
    }
    if (!box.checked) declined.add(q.name);
    choose(q, box.checked);
    reconcile();
    render();
  });

  hintEl.replaceChildren(
    el('p', null, 'No query is registered. Register one and it appears here within 10 s, for example:'),
    el('pre', null, el('code', null, CURL)));
  hintEl.hidden = true;

  return {
    start() {
      // The page's stream waits for the first listing, so that it opens once with the
      // queries rather than twice in a row.
      const release = holdStream(3000);
      refreshList().finally(release);
      render();
    },
  };
}
