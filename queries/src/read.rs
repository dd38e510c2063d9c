//! Reading a `(key, value)` arrangement at one `as_of`: the rows present then, with their
//! multiplicity, visited in key order from a starting key.

use differential_dataflow::operators::arrange::TraceAgent;
use differential_dataflow::trace::cursor::{cursor_list, Cursor};
use differential_dataflow::trace::implementations::ValSpine;
use differential_dataflow::trace::TraceReader;
use flowsight_operators::Millis;
use timely::progress::Antichain;

/// A trace of rows counted by `isize`, over event time.
pub type RowTrace<K, V> = TraceAgent<ValSpine<K, V, Millis, isize>>;

/// Every batch `trace` has completed, up to its frontier; `None` before it has any. A
/// cursor over them (`cursor_list`) reads every update the trace holds.
pub fn complete_batches<Tr: TraceReader>(trace: &mut Tr) -> Option<Vec<Tr::Batch>> {
    let mut upper = Antichain::new();
    trace.read_upper(&mut upper);
    trace.batches_through(upper.borrow())
}

/// Whether a visit goes on to the next key.
pub enum Next {
    /// Go on to the next key, if any.
    Continue,
    /// End the walk here: no further key is visited.
    Stop,
}

/// Visits, in key order from `from` (or from the start), every key and its values whose
/// count accumulated at `as_of` is positive. `visit` sees one key with all its present
/// values and decides whether to go on.
pub fn visit_rows<K, V>(
    trace: &mut RowTrace<K, V>,
    as_of: Millis,
    from: Option<&K>,
    mut visit: impl FnMut(&K, Vec<(V, isize)>) -> Next,
) where
    K: Ord + Clone + 'static,
    V: Ord + Clone + 'static,
{
    let Some(batches) = complete_batches(trace) else {
        return;
    };
    let (mut cursor, storage) = cursor_list(batches);
    if let Some(from) = from {
        cursor.seek_key(&storage, from);
    }
    while let Some(key) = cursor.get_key(&storage) {
        let key = key.clone();
        let mut values = Vec::new();
        while let Some(value) = cursor.get_val(&storage) {
            let mut count = 0isize;
            cursor.map_times(&storage, |time, diff| {
                if *time <= as_of {
                    count += *diff;
                }
            });
            if count > 0 {
                values.push((value.clone(), count));
            }
            cursor.step_val(&storage);
        }
        if !values.is_empty() {
            if let Next::Stop = visit(&key, values) {
                return;
            }
        }
        cursor.step_key(&storage);
    }
}

/// Visits every update of `key` — value, time, diff — up to `as_of`, in no particular order.
pub fn updates_of<K, V>(
    trace: &mut RowTrace<K, V>,
    as_of: Millis,
    key: &K,
    mut visit: impl FnMut(&V, Millis, isize),
) where
    K: Ord + Clone + 'static,
    V: Ord + Clone + 'static,
{
    let Some(batches) = complete_batches(trace) else {
        return;
    };
    let (mut cursor, storage) = cursor_list(batches);
    cursor.seek_key(&storage, key);
    if cursor.get_key(&storage) != Some(key) {
        return;
    }
    while let Some(value) = cursor.get_val(&storage) {
        cursor.map_times(&storage, |time, diff| {
            if *time <= as_of {
                visit(value, *time, *diff);
            }
        });
        cursor.step_val(&storage);
    }
}
