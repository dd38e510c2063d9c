// rowset.js — a subscription's current rows: a multiset keyed by each row's JSON text,
// replaced by a snapshot and updated by changes ({row, diff}). Optional hooks see every
// row that comes or goes, so a panel can keep running totals without rescanning.
// rowHandlers() gives the subscribe() handlers (sse.js) that keep a RowSet in step with
// its subscription and put an overflow or the subscription's end in the panel's note.

export class RowSet {
  /** hooks: {add(row), remove(row)}, both optional; called once per copy. */
  constructor(hooks) {
    this.hooks = hooks || {};
    this.entries = new Map(); // JSON text -> {row, count}
    this.version = 0;
  }

  get size() {
    return this.entries.size;
  }

  clear() {
    if (this.hooks.remove) {
      for (const { row, count } of this.entries.values()) {
        for (let i = 0; i < count; i += 1) this.hooks.remove(row);
      }
    }
    this.entries.clear();
    this.version += 1;
  }

  /** Replaces every row (a snapshot). */
  reset(rows) {
    this.clear();
    if (Array.isArray(rows)) {
      for (const row of rows) this.change(row, 1);
    }
    this.version += 1;
  }

  /** Applies a changes event's list; a retraction of a row not held is ignored. */
  apply(changes) {
    if (!Array.isArray(changes)) return;
    for (const change of changes) {
      if (!change || typeof change !== 'object') continue;
      const diff = Number.isInteger(change.diff) ? change.diff : 0;
      if (diff !== 0) this.change(change.row, diff);
    }
    this.version += 1;
  }

  change(row, diff) {
    if (row === undefined) return;
    const key = JSON.stringify(row);
    const entry = this.entries.get(key);
    if (diff > 0) {
      if (entry) entry.count += diff;
      else this.entries.set(key, { row, count: diff });
      if (this.hooks.add) for (let i = 0; i < diff; i += 1) this.hooks.add(row);
      return;
    }
    if (!entry) return;
    const removed = Math.min(entry.count, -diff);
    entry.count -= removed;
    if (entry.count === 0) this.entries.delete(key);
    if (this.hooks.remove) for (let i = 0; i < removed; i += 1) this.hooks.remove(entry.row);
  }

  /** Every row, each copy once (views rarely repeat a row). */
  rows() {
    const out = [];
    for (const { row, count } of this.entries.values()) {
      for (let i = 0; i < count; i += 1) out.push(row);
    }
    return out;
  }
}

/**
 * The handlers for subscribe() (sse.js) that keep rows in step with a subscription:
 * snapshot → rows.reset, changes → rows.apply, each then tick(data, kind); progress →
 * tick(data, 'progress'). overflow and ended → note(text), a sentence about the `label`
 * stream (e.g. 'risk'). Other handlers (e.g. state) can be added beside them.
 */
export function rowHandlers(rows, { label, tick, note }) {
  const Label = label.charAt(0).toUpperCase() + label.slice(1);
  return {
    snapshot(data) {
      rows.reset(data.rows);
      tick(data, 'snapshot');
    },
    changes(data) {
      rows.apply(data.changes);
      tick(data, 'changes');
    },
    progress(data) {
      tick(data, 'progress');
    },
    overflow(data) {
      note('The page fell behind the ' + label + ' stream; a fresh snapshot follows. ' + (data.message || ''));
    },
    ended(error) {
      note(Label + ' stream ended: ' + (error.message || error.code));
    },
  };
}
