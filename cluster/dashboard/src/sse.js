// sse.js — the subscription client: every panel's view subscriptions share ONE
// EventSource, the multiplexed stream GET /v1/subscribe?NAME=SPEC&NAME=SPEC… (a browser
// opens at most 6 HTTP/1.1 connections to a host, shared by all its tabs, and an
// EventSource holds one for as long as it is open). Each subscription has a name the page
// chooses and a spec, the view and its query string as after /v1/subscribe/ (e.g.
// 'risks?window=30m&limit=10000'). Events are decoded and handed to the subscription
// named by their `subscription` field; connection states are tracked for the status bar.
// Never logs to the console: reconnects and errors show in the page.
//
// Events (each with an SSE id `name=as_of,name=as_of,…`, which EventSource resends as
// Last-Event-ID when it reconnects by itself, so the server resumes every subscription):
//   snapshot {subscription, as_of, window?, columns?, rows}   replace the state
//   changes  {subscription, as_of, changes: [{row, diff}]}     apply
//   progress {subscription, as_of}                             time advanced, nothing changed
//   overflow {subscription, as_of, message}                    fell behind; a snapshot follows
//   error    {subscription, error: {code, message}}            that subscription ends
//
// Adding or closing a subscription reopens the stream with the new set (every
// subscription then starts again from a snapshot); changes made in one task are batched
// into one reopen. A subscription that ended stays out of the stream until its owner
// closes it and subscribes again.

const MAX_PER_STREAM = 16;
const NAME = /^[A-Za-z0-9_-]{1,32}$/;

const subscriptions = new Map(); // name -> subscription
const stateListeners = new Set();

const stream = {
  source: null,
  url: null,
  state: 'connecting', // connecting, live, reconnecting, retrying
  detail: '',
  failures: 0,
  timer: null,
  dirty: false,
  flushQueued: false,
  holds: 0,
  generation: 0, // bumped whenever the source closes; a subscription carries the one it is on
};

/** Connection states, one per subscription: connecting, live, reconnecting, retrying, ended. */
export function connectionStates() {
  return [...subscriptions.values()].map((s) => ({ name: s.name, state: s.state, detail: s.detail }));
}

/** The multiplexed stream's URL now (null while none is open). */
export function streamUrl() {
  return stream.url;
}

/** Calls listener() whenever any subscription's connection state changes. */
export function onConnectionChange(listener) {
  stateListeners.add(listener);
}

function notifyStates() {
  for (const listener of stateListeners) listener();
}

/** Builds a subscription's spec, 'view?a=1&b=2', leaving out empty parameters. */
export function viewSpec(view, params) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== '') query.set(key, String(value));
  }
  const text = query.toString();
  return view + (text ? '?' + text : '');
}

/** Builds '/v1/subscribe?name=spec&…' (each spec URL-encoded). */
export function streamUrlOf(entries) {
  return '/v1/subscribe?' + new URLSearchParams(entries).toString();
}

function parse(event) {
  if (typeof event.data !== 'string') return null;
  try {
    const data = JSON.parse(event.data);
    return data && typeof data === 'object' ? data : null;
  } catch {
    return null;
  }
}

function setSubState(sub, state, detail = '') {
  if (sub.state === state && sub.detail === detail) return false;
  sub.state = state;
  sub.detail = detail;
  if (sub.handlers.state) sub.handlers.state(state, detail);
  return true;
}

/** Sets the connection's state on every subscription it carries. */
function setStreamState(state, detail = '') {
  stream.state = state;
  stream.detail = detail;
  let changed = false;
  for (const sub of subscriptions.values()) {
    if (sub.generation === stream.generation && sub.state !== 'ended') changed = setSubState(sub, state, detail) || changed;
  }
  if (changed) notifyStates();
}

function endSub(sub, code, message) {
  if (sub.state === 'ended') return;
  setSubState(sub, 'ended', message || code || 'the subscription ended');
  if (sub.handlers.ended) sub.handlers.ended({ code: code || 'ended', message: message || '' });
  notifyStates();
}

/**
 * Opens a subscription on the page's stream. name: 1–32 of [A-Za-z0-9_-], unique among
 * the open ones (subscribing under a name in use closes the older one). spec: the view
 * and its query string, e.g. viewSpec('risks', {window: '30m'}). handlers (all optional):
 *   snapshot(data), changes(data), progress(data), overflow(data),
 *   ended({code, message}), state(state, detail)
 * Returns {name, spec, state, detail, close()}. It follows the stream's reconnects until
 * closed or ended by the server.
 */
export function subscribe(name, spec, handlers) {
  const old = subscriptions.get(name);
  if (old) old.close();
  const sub = {
    name,
    spec,
    handlers: handlers || {},
    state: 'connecting',
    detail: '',
    closed: false,
    close() {
      if (this.closed) return;
      this.closed = true;
      if (subscriptions.get(this.name) === this) subscriptions.delete(this.name);
      changed();
    },
  };
  if (!NAME.test(name)) {
    sub.closed = true;
    queueMicrotask(() => endSub(sub, 'bad_subscription_name', 'bad subscription name ' + JSON.stringify(name)));
    return sub;
  }
  subscriptions.set(name, sub);
  changed();
  return sub;
}

/**
 * Delays opening the stream (e.g. until a panel knows its subscriptions, so that the page
 * opens one stream rather than two in a row). Returns release(); also released after
 * maxMs.
 */
export function holdStream(maxMs = 3000) {
  stream.holds += 1;
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    clearTimeout(guard);
    stream.holds -= 1;
    if (stream.holds === 0 && stream.dirty) scheduleFlush();
  };
  const guard = setTimeout(release, maxMs);
  return release;
}

function changed() {
  stream.dirty = true;
  scheduleFlush();
  notifyStates();
}

function scheduleFlush() {
  if (stream.flushQueued || stream.holds > 0) return;
  stream.flushQueued = true;
  // One reopen for every change made in this task (a window switch closes and opens
  // two subscriptions).
  queueMicrotask(() => {
    stream.flushQueued = false;
    if (stream.holds === 0 && stream.dirty) reopen();
  });
}

function closeSource() {
  clearTimeout(stream.timer);
  stream.timer = null;
  if (stream.source) stream.source.close();
  stream.source = null;
  stream.generation += 1;
}

function reopen() {
  stream.dirty = false;
  stream.failures = 0;
  closeSource();
  open();
}

function open() {
  closeSource();
  // Every open subscription that has not ended.
  const subs = [...subscriptions.values()].filter((s) => s.state !== 'ended');
  for (const s of subs.splice(MAX_PER_STREAM)) {
    endSub(s, 'too_many_subscriptions', 'more than ' + MAX_PER_STREAM + ' subscriptions on one page');
  }
  const generation = stream.generation;
  for (const s of subs) s.generation = generation;
  if (!subs.length) {
    stream.url = null;
    notifyStates();
    return;
  }
  const url = streamUrlOf(subs.map((s) => [s.name, s.spec]));
  stream.url = url;
  let source;
  try {
    source = new EventSource(url);
  } catch (error) {
    for (const s of subs) endSub(s, 'bad_url', String(error && error.message));
    return;
  }
  stream.source = source;
  setStreamState(stream.failures > 0 ? 'retrying' : 'connecting', stream.failures > 0 ? stream.detail : '');
  const current = () => generation === stream.generation && stream.source === source;
  // The subscription an event names, if this source carries it.
  const target = (data) => {
    const sub = data && subscriptions.get(data.subscription);
    return sub && !sub.closed && sub.generation === generation && sub.state !== 'ended' ? sub : null;
  };

  source.addEventListener('open', () => {
    if (current()) setStreamState('live');
  });
  const onData = (kind) => (event) => {
    if (!current()) return;
    const data = parse(event);
    const sub = target(data);
    if (!sub) return;
    stream.failures = 0;
    if (setSubState(sub, 'live')) notifyStates();
    if (sub.handlers[kind]) sub.handlers[kind](data);
  };
  source.addEventListener('snapshot', onData('snapshot'));
  source.addEventListener('changes', onData('changes'));
  source.addEventListener('progress', onData('progress'));
  source.addEventListener('overflow', onData('overflow'));
  // 'error' is both the server's `event: error` (a MessageEvent with data, naming the one
  // subscription it ends) and the EventSource's own connection error (a plain Event).
  source.addEventListener('error', (event) => {
    if (!current()) return;
    if (typeof event.data === 'string') {
      const data = parse(event);
      const sub = target(data);
      if (!sub) return;
      const error = data.error || {};
      // Only that subscription ends; the stream goes on for the others (and is not
      // reopened for this: the subscription's owner decides what follows).
      endSub(sub, error.code || 'error', error.message || 'the subscription ended');
      return;
    }
    if (source.readyState === EventSource.CONNECTING) {
      // The browser reconnects by itself and resumes with Last-Event-ID.
      setStreamState('reconnecting', 'connection lost, reconnecting');
      return;
    }
    source.close();
    stream.source = null;
    setStreamState('retrying', 'connection refused');
    diagnose(url).then((verdict) => {
      if (generation !== stream.generation) return; // reopened meanwhile
      if (verdict.retry) {
        retryLater(verdict.detail);
        return;
      }
      // A lasting refusal names the subscription it is about: end that one and open the
      // stream for the others (each round ends one, so this stops).
      const named = /subscription "([A-Za-z0-9_-]+)"/.exec(verdict.detail || '');
      const sub = named && subscriptions.get(named[1]);
      if (sub && sub.generation === generation && sub.state !== 'ended') {
        endSub(sub, verdict.code, verdict.detail);
        open();
      } else {
        for (const s of subs) if (!s.closed) endSub(s, verdict.code, verdict.detail);
        stream.url = null;
      }
    });
  });
}

function retryLater(detail) {
  stream.failures += 1;
  const delay = Math.min(30000, 1000 * 2 ** Math.min(stream.failures - 1, 5));
  setStreamState('retrying', detail);
  clearTimeout(stream.timer);
  const generation = stream.generation;
  stream.timer = setTimeout(() => {
    if (generation === stream.generation) open();
  }, delay);
}

// The browser gave up on the EventSource (a response that is not an event stream, or a
// refused connection): ask the same URL with fetch to tell a lasting refusal (4xx, e.g. a
// view that is off, or a query dropped meanwhile) from a passing one (5xx, network).
async function diagnose(url) {
  const abort = new AbortController();
  const guard = setTimeout(() => abort.abort(), 10000);
  try {
    const response = await fetch(url, {
      signal: abort.signal,
      headers: { accept: 'text/event-stream' },
    });
    const type = response.headers.get('content-type') || '';
    if (response.ok && type.includes('text/event-stream')) {
      abort.abort();
      return { retry: true, detail: 'reconnecting' };
    }
    let code = 'http_' + response.status;
    let message = response.statusText;
    try {
      const body = await response.json();
      if (body && body.error) {
        code = body.error.code || code;
        message = body.error.message || message;
      }
    } catch {
      /* not JSON */
    }
    const lasting = response.status >= 400 && response.status < 500 && response.status !== 408 && response.status !== 429;
    return { retry: !lasting, code, detail: message || code };
  } catch {
    return { retry: true, detail: 'server unreachable' };
  } finally {
    clearTimeout(guard);
  }
}
