// segments.js — the segment map and the policy table: the `segments?limit=40&members=5`
// and `policy?order=count&limit=…` subscriptions drawn as an SVG (segments as circles sized by hosts,
// hubs as squares in a column of their own, cross-group flows as lines sized by
// connections), with a hover card of a group's members; click a group to filter the
// policy table (top 50 entries by connections) to it.

import { subscribe, viewSpec } from './sse.js';
import { RowSet, rowHandlers } from './rowset.js';
import { byId, el, svg, setText, num, compareIp } from './format.js';
import { coalesce } from './frame.js';

const SEGMENTS_SHOWN = 40;
const MEMBERS = 5;
const HUBS_SHOWN = 15;
const POLICY_LIMIT = 2000;
const POLICY_ROWS = 50;

const CELL_W = 92;
const CELL_H = 84;
const R_MAX = 26;
const R_MIN = 5;
const TOP = 26;
const HUB_GAP = 90;
const HUB_STEP = 26;
const HUB_SIDE = 13;
const HUB_LABEL_W = 150;

const short = (text, max = 14) => (text.length > max ? text.slice(0, max - 1) + '…' : text);

export function createSegments() {
  const groups = new RowSet();
  const policy = new RowSet();
  const mapEl = byId('segment-map');
  const wrapEl = byId('segment-map-wrap');
  const cardEl = byId('segment-card');
  const summaryEl = byId('segment-summary');
  const noteEl = byId('segment-note');
  const policyBody = byId('policy-table').tBodies[0];
  const policyCaption = byId('policy-caption');

  let notes = { segments: '', policy: '' };
  let hovered = null; // group id under the pointer
  let filter = null; // group id the policy table is filtered to
  let shown = new Map(); // id -> {row, x, y, r, hub, index}
  let drawn = '';

  const stream = (name, view, params, rows) => subscribe(name, viewSpec(view, params), rowHandlers(rows, {
    label: name,
    // A snapshot clears the note; progress changes nothing drawn here.
    tick(data, kind) {
      if (kind === 'snapshot') notes[name] = '';
      if (kind !== 'progress') render();
    },
    note(text) {
      notes[name] = text;
      render();
    },
  }));

  // ---- layout ---------------------------------------------------------------------

  function layout(segments, hubs) {
    const cols = Math.max(1, Math.min(8, Math.ceil(Math.sqrt(segments.length * 1.8))));
    const rows = Math.ceil(segments.length / cols);
    const gridW = Math.max(cols * CELL_W, 4 * CELL_W);
    const maxSize = Math.max(1, ...segments.map((s) => Number(s.size) || 0));
    const positions = new Map();
    segments.forEach((s, i) => {
      const r = R_MIN + (R_MAX - R_MIN) * Math.sqrt((Number(s.size) || 0) / maxSize);
      positions.set(s.id, {
        row: s, hub: false, index: i, r,
        x: (i % cols) * CELL_W + CELL_W / 2,
        y: TOP + Math.floor(i / cols) * CELL_H + R_MAX + 4,
      });
    });
    const hubX = gridW + HUB_GAP;
    hubs.forEach((h, i) => {
      positions.set(h.id, { row: h, hub: true, index: i, r: HUB_SIDE / 2, x: hubX, y: TOP + 14 + i * HUB_STEP });
    });
    const height = Math.max(TOP + rows * CELL_H, TOP + 14 + hubs.length * HUB_STEP) + 8;
    return { positions, width: hubX + HUB_SIDE + HUB_LABEL_W, height, gridW, hubX };
  }

  // A line between two shown groups: curved so that it clears the circles in between.
  function path(a, b) {
    if (a.hub && b.hub) {
      const bend = a.x - 24 - 6 * Math.abs(a.index - b.index);
      return `M${a.x - HUB_SIDE / 2},${a.y} Q${bend},${(a.y + b.y) / 2} ${b.x - HUB_SIDE / 2},${b.y}`;
    }
    if (a.hub || b.hub) {
      const [s, h] = a.hub ? [b, a] : [a, b];
      const x1 = s.x + s.r;
      const x2 = h.x - HUB_SIDE / 2;
      const mid = x1 + (x2 - x1) / 2;
      return `M${x1},${s.y} C${mid},${s.y} ${mid},${h.y} ${x2},${h.y}`;
    }
    const mx = (a.x + b.x) / 2;
    const my = (a.y + b.y) / 2;
    const dx = b.x - a.x;
    const dy = b.y - a.y;
    const bend = 0.18;
    return `M${a.x},${a.y} Q${mx - dy * bend},${my + dx * bend} ${b.x},${b.y}`;
  }

  function flows(positions) {
    const pairs = new Map();
    let hiddenEntries = 0;
    let hiddenConnections = 0;
    for (const p of policy.rows()) {
      if (!p || typeof p !== 'object') continue;
      const count = Number(p.count) || 0;
      if (!positions.has(p.from) || !positions.has(p.to) || p.from === p.to) {
        hiddenEntries += 1;
        hiddenConnections += count;
        continue;
      }
      const [a, b] = p.from < p.to ? [p.from, p.to] : [p.to, p.from];
      const key = a + '\u0000' + b;
      let pair = pairs.get(key);
      if (!pair) {
        pair = { a, b, count: 0, entries: 0, ports: new Set() };
        pairs.set(key, pair);
      }
      pair.count += count;
      pair.entries += 1;
      if (pair.ports.size < 12) pair.ports.add(p.dst_port + '/' + p.proto);
    }
    return { pairs: [...pairs.values()], hiddenEntries, hiddenConnections };
  }

  // ---- drawing --------------------------------------------------------------------

  function drawMap() {
    const all = groups.rows().filter((r) => r && typeof r === 'object');
    const segments = all.filter((r) => !r.hub && r.id !== undefined)
      .sort((a, b) => (Number(b.size) || 0) - (Number(a.size) || 0) || compareIp(a.id, b.id)).slice(0, SEGMENTS_SHOWN);
    const hubs = all.filter((r) => r.hub && r.id !== undefined)
      .sort((a, b) => (Number(b.peers) || 0) - (Number(a.peers) || 0) || compareIp(a.ip, b.ip)).slice(0, HUBS_SHOWN);
    const { positions, width, height, gridW, hubX } = layout(segments, hubs);
    shown = positions;
    const { pairs, hiddenEntries, hiddenConnections } = flows(positions);
    const maxCount = Math.max(1, ...pairs.map((p) => p.count));
    pairs.sort((x, y) => x.count - y.count);

    const lines = pairs.map((p) => {
      const a = positions.get(p.a);
      const b = positions.get(p.b);
      return svg('path', {
        class: 'flow',
        d: path(a, b),
        'stroke-width': (0.75 + 5.25 * Math.sqrt(p.count / maxCount)).toFixed(2),
        style: '--weight:' + (0.1 + 0.5 * Math.sqrt(p.count / maxCount)).toFixed(2),
        'data-a': p.a,
        'data-b': p.b,
      }, svg('title', null, p.a + ' ↔ ' + p.b + ': ' + num(p.count) + ' connections, '
        + p.entries + ' port' + (p.entries === 1 ? '' : 's') + ' (' + [...p.ports].join(', ')
        + (p.entries > p.ports.size ? ', …' : '') + ')'));
    });

    const nodes = [];
    for (const [id, g] of positions) {
      if (g.hub) {
        nodes.push(svg('g', { class: 'group hub' + (id === filter ? ' chosen' : ''), 'data-id': id, tabindex: 0 },
          svg('rect', { class: 'hit', x: g.x - HUB_SIDE / 2 - 2, y: g.y - HUB_STEP / 2, width: HUB_SIDE + HUB_LABEL_W - 20, height: HUB_STEP }),
          svg('rect', { class: 'box', x: g.x - HUB_SIDE / 2, y: g.y - HUB_SIDE / 2, width: HUB_SIDE, height: HUB_SIDE, rx: 2 }),
          svg('text', { x: g.x + HUB_SIDE / 2 + 6, y: g.y + 4, class: 'label' }, short(String(g.row.ip || id), 15)),
          svg('text', { x: g.x + HUB_SIDE / 2 + 6 + 136, y: g.y + 4, class: 'label muted', 'text-anchor': 'end' },
            num(g.row.peers))));
      } else {
        nodes.push(svg('g', { class: 'group segment' + (id === filter ? ' chosen' : ''), 'data-id': id, tabindex: 0 },
          svg('rect', { class: 'hit', x: g.x - CELL_W / 2 + 2, y: g.y - R_MAX - 2, width: CELL_W - 4, height: CELL_H - 4 }),
          svg('circle', { cx: g.x, cy: g.y, r: g.r.toFixed(1) }),
          svg('text', { x: g.x, y: g.y + R_MAX + 14, class: 'label', 'text-anchor': 'middle' }, short(String(id))),
          svg('text', { x: g.x, y: g.y + R_MAX + 26, class: 'label muted', 'text-anchor': 'middle' },
            num(g.row.size) + (g.row.size === 1 ? ' host' : ' hosts'))));
      }
    }
    const headings = [
      svg('text', { x: 0, y: 14, class: 'heading' }, segments.length
        ? 'largest ' + segments.length + ' segments (area ∝ hosts)' : 'no segment yet'),
      hubs.length ? svg('text', { x: hubX - HUB_SIDE / 2, y: 14, class: 'heading' }, 'hubs · peers') : null,
    ];
    mapEl.setAttribute('viewBox', `0 0 ${Math.max(width, gridW)} ${height}`);
    mapEl.replaceChildren(...headings, svg('g', { class: 'flows' }, lines), svg('g', { class: 'nodes' }, nodes));

    const segCount = all.filter((r) => !r.hub).length;
    const hubCount = all.filter((r) => r.hub).length;
    setText(summaryEl, segCount || hubCount
      ? num(segCount) + ' segments and ' + num(hubCount) + ' hubs received (24h window); '
        + num(pairs.length) + ' cross-group flows drawn'
      : '');
    const parts = [notes.segments, notes.policy].filter(Boolean);
    if (hiddenEntries) {
      parts.push(num(hiddenEntries) + ' policy entries (' + num(hiddenConnections)
        + ' connections) involve groups not drawn and are left out of the map.');
    }
    setText(noteEl, parts.join(' '));
    applyHover();
  }

  function drawPolicy() {
    const rows = policy.rows().filter((p) => p && typeof p === 'object'
      && (!filter || p.from === filter || p.to === filter));
    rows.sort((a, b) => (Number(b.count) || 0) - (Number(a.count) || 0)
      || String(a.from).localeCompare(String(b.from)) || String(a.to).localeCompare(String(b.to))
      || (Number(a.dst_port) || 0) - (Number(b.dst_port) || 0));
    const trs = rows.slice(0, POLICY_ROWS).map((p) => el('tr', null,
      el('td', { class: 'ip' }, p.from), el('td', { class: 'ip' }, p.to), el('td', { class: 'n' }, p.dst_port),
      el('td', null, p.proto), el('td', { class: 'n' }, num(p.count))));
    if (!trs.length) {
      trs.push(el('tr', { class: 'empty' }, el('td', { colspan: 5 }, policy.size ? 'no entry' : 'waiting for the policy stream…')));
    }
    policyBody.replaceChildren(...trs);
    setText(policyCaption, (filter ? 'entries from or to ' + filter + ' (click it again to show all) · ' : '')
      + 'top ' + Math.min(POLICY_ROWS, rows.length) + ' by connections of ' + num(rows.length)
      + (policy.size >= POLICY_LIMIT ? ' (the ' + num(POLICY_LIMIT) + ' busiest entries of the policy)' : ''));
  }

  // ---- hover card -----------------------------------------------------------------

  function card(id) {
    const g = shown.get(id);
    if (!g) return null;
    const r = g.row;
    const t = r.traffic && typeof r.traffic === 'object' ? r.traffic : {};
    if (g.hub) {
      return [el('b', null, 'hub ' + (r.ip || id)),
        el('div', null, num(r.peers) + ' distinct peers · ' + num(r.connections) + ' connections'),
        el('div', { class: 'muted small' }, 'a shared service: not clustered into a segment')];
    }
    const members = Array.isArray(r.members) ? r.members : [];
    return [el('b', null, 'segment ' + id),
      el('div', null, num(r.size) + ' hosts'),
      el('div', null, 'connections inside ' + num(t.inside) + ' · out ' + num(t.out) + ' · in ' + num(t.in)),
      members.length ? el('div', { class: 'muted small' }, 'busiest members') : null,
      members.length ? el('table', { class: 'members' }, el('tbody', null, members.map((m) => el('tr', null,
        el('td', { class: 'ip' }, m && m.ip), el('td', { class: 'n' }, num(m && m.connections)))))) : null,
      (Number(r.size) || 0) > members.length ? el('div', { class: 'muted small' }, '… and ' + num(r.size - members.length) + ' more') : null];
  }

  function applyHover() {
    const content = hovered ? card(hovered) : null;
    // The hovered group's flows stand out; without one, the chosen group's.
    const focus = content ? hovered : filter && shown.has(filter) ? filter : null;
    mapEl.classList.toggle('focus', focus !== null);
    for (const line of mapEl.querySelectorAll('.flow')) {
      const on = focus !== null && (line.getAttribute('data-a') === focus || line.getAttribute('data-b') === focus);
      line.classList.toggle('hi', on);
    }
    for (const node of mapEl.querySelectorAll('.group')) {
      node.classList.toggle('hover', node.getAttribute('data-id') === hovered);
    }
    if (!content) {
      cardEl.hidden = true;
      return;
    }
    cardEl.replaceChildren(...content.filter(Boolean));
    cardEl.hidden = false;
    const node = mapEl.querySelector('.group[data-id="' + CSS.escape(hovered) + '"]');
    if (!node) return;
    const box = node.getBoundingClientRect();
    const outer = wrapEl.getBoundingClientRect();
    const cardW = cardEl.offsetWidth || 220;
    let left = box.right - outer.left + 8;
    if (left + cardW > outer.width) left = Math.max(0, box.left - outer.left - cardW - 8);
    cardEl.style.left = left + 'px';
    cardEl.style.top = Math.max(0, box.top - outer.top) + 'px';
  }

  mapEl.addEventListener('mouseover', (event) => {
    const node = event.target.closest && event.target.closest('.group');
    const id = node ? node.getAttribute('data-id') : null;
    if (id !== hovered) {
      hovered = id;
      applyHover();
    }
  });
  mapEl.addEventListener('mouseleave', () => {
    hovered = null;
    applyHover();
    render();
  });
  const pick = (event) => {
    const node = event.target.closest && event.target.closest('.group');
    const id = node ? node.getAttribute('data-id') : null;
    filter = id && id !== filter ? id : null;
    drawn = '';
    render();
  };
  mapEl.addEventListener('click', pick);
  mapEl.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' || event.key === ' ') {
      event.preventDefault();
      pick(event);
    }
  });
  mapEl.addEventListener('focusin', (event) => {
    const node = event.target.closest && event.target.closest('.group');
    hovered = node ? node.getAttribute('data-id') : null;
    applyHover();
  });
  mapEl.addEventListener('focusout', () => {
    hovered = null;
    applyHover();
    render();
  });

  const render = coalesce(() => {
    const key = groups.version + ':' + policy.version + ':' + filter + ':' + notes.segments + ':' + notes.policy;
    if (key === drawn) return;
    // Hold the map still while the pointer is on a group: the card and a click stay put.
    if (hovered !== null && drawn !== '') {
      drawPolicy();
      return;
    }
    drawn = key;
    drawMap();
    drawPolicy();
  }, 1000);

  return {
    start() {
      stream('segments', 'segments', { limit: SEGMENTS_SHOWN, members: MEMBERS }, groups);
      stream('policy', 'policy', { order: 'count', limit: POLICY_LIMIT }, policy);
      render();
    },
  };
}
