//! Top-k selection, used by views on each worker and again when answers are gathered.

use std::cmp::Ordering;

/// Keeps the `k` first items of `items` in the order given by `cmp`, sorted.
///
/// ```
/// let top = flowsight_operators::topk::top_k(vec![5, 1, 4, 2, 3], 2, |a, b| b.cmp(a));
/// assert_eq!(top, vec![5, 4]);
/// ```
pub fn top_k<T, F>(mut items: Vec<T>, k: usize, mut cmp: F) -> Vec<T>
where
    F: FnMut(&T, &T) -> Ordering,
{
    if k == 0 {
        return Vec::new();
    }
    if items.len() > k {
        items.select_nth_unstable_by(k - 1, &mut cmp);
        items.truncate(k);
    }
    items.sort_unstable_by(cmp);
    items
}
