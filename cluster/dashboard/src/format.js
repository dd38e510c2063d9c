// format.js — how numbers, bytes, times and addresses are shown, and the small DOM
// helpers every panel uses to build elements without innerHTML.

const integer = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
const decimal = new Intl.NumberFormat('en-US', { maximumFractionDigits: 1 });

const isNumber = (v) => typeof v === 'number' && Number.isFinite(v);

/** A count with thousands separators; '–' for anything that is not a number. */
export function num(v) {
  return isNumber(v) ? integer.format(v) : '–';
}

/** A rate or mean with at most one decimal. */
export function num1(v) {
  return isNumber(v) ? decimal.format(v) : '–';
}

const UNITS = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];

/** Bytes in decimal units (the risk rules count external bytes in 10 MB steps). */
export function bytes(v) {
  if (!isNumber(v)) return '–';
  let value = Math.abs(v);
  let unit = 0;
  while (value >= 1000 && unit < UNITS.length - 1) {
    value /= 1000;
    unit += 1;
  }
  const digits = unit === 0 || value >= 100 ? 0 : 1;
  return (v < 0 ? '-' : '') + value.toFixed(digits) + ' ' + UNITS[unit];
}

const pad = (n) => String(n).padStart(2, '0');

/** A time of day (local, 24 h) from ms since the epoch. */
export function clock(ms) {
  if (!isNumber(ms)) return '–';
  const d = new Date(ms);
  return pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
}

/** Date and time (local) from ms since the epoch. */
export function dateTime(ms) {
  if (!isNumber(ms)) return '–';
  const d = new Date(ms);
  return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + ' ' + clock(ms);
}

/** A duration in ms, short: '850 ms', '12 s', '4 min 3 s', '2 h 5 min'. */
export function duration(ms) {
  if (!isNumber(ms)) return '–';
  const s = Math.round(ms / 1000);
  if (Math.abs(ms) < 1000) return Math.round(ms) + ' ms';
  if (Math.abs(s) < 60) return s + ' s';
  if (Math.abs(s) < 3600) return Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
  return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
}

/** Orders addresses numerically: IPv4 before IPv6, then by value; anything else last. */
export function compareIp(a, b) {
  const ka = ipKey(a);
  const kb = ipKey(b);
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}

const ipKeys = new Map();

function ipKey(ip) {
  let key = ipKeys.get(ip);
  if (key !== undefined) return key;
  key = computeIpKey(String(ip));
  if (ipKeys.size > 50000) ipKeys.clear();
  ipKeys.set(ip, key);
  return key;
}

function computeIpKey(ip) {
  const v4 = ip.match(/^(\d+)\.(\d+)\.(\d+)\.(\d+)$/);
  if (v4) return '4' + v4.slice(1).map((p) => p.padStart(3, '0')).join('');
  if (ip.includes(':')) {
    const [head, tail] = ip.split('::');
    const left = head ? head.split(':') : [];
    const right = tail !== undefined && tail ? tail.split(':') : [];
    const fill = tail !== undefined ? Array(Math.max(0, 8 - left.length - right.length)).fill('0') : [];
    return '6' + [...left, ...fill, ...right].map((g) => g.padStart(4, '0')).join('');
  }
  return '9' + ip;
}

/**
 * Builds an element: el('td', {class: 'n', title: 'x'}, 'text', child, ...).
 * Attributes that are null/undefined/false are left out; children may be strings,
 * numbers, nodes, arrays of those, or null.
 */
export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  setAttrs(node, attrs);
  append(node, children);
  return node;
}

const SVG_NS = 'http://www.w3.org/2000/svg';

/** The same for SVG elements. */
export function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  setAttrs(node, attrs);
  append(node, children);
  return node;
}

function setAttrs(node, attrs) {
  if (!attrs) return;
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    node.setAttribute(key, value === true ? '' : String(value));
  }
}

function append(node, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else if (typeof child === 'object') node.appendChild(child);
    else node.appendChild(document.createTextNode(String(child)));
  }
}

/** document.getElementById, tolerating a missing element (returns null). */
export const byId = (id) => document.getElementById(id);

/** Sets an element's text if it exists and the text changed. */
export function setText(node, text) {
  if (node && node.textContent !== text) node.textContent = text;
}

/**
 * Keeps exactly n element children in parent, reusing the ones there and adding new ones
 * made by make(): rows are updated in place, so a click is never lost to a re-render.
 */
export function keepChildren(parent, n, make) {
  while (parent.children.length > n) parent.lastElementChild.remove();
  while (parent.children.length < n) parent.appendChild(make());
  return [...parent.children];
}
