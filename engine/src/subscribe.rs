//! Subscriptions: a view's changes, as `(row, diff)` between consecutive complete times,
//! fanned out to any number of clients.
//!
//! One [`Feed`] runs per distinct subscription (view and parameters) in a process, however
//! many clients watch it. Each time the views' frontier passes a new tick, the feed reads
//! the view at that as_of through an ordinary peek (so a subscription sees exactly what a
//! `GET` at that as_of sees: complete, never partial) and captures the difference from the
//! previous read as one event. Events are kept in a short log, encoded once and shared by
//! every client: a client is a cursor into the log, not a copy of it.
//!
//! - A client that falls more than `queue` events behind the newest is *overflowed*: it is
//!   told so and sent a fresh snapshot instead of the events it missed. The engine never
//!   waits for a client.
//! - A client that reconnects with the id (the as_of) of the last event it saw resumes
//!   from the log without a gap, as long as the log still holds the events after it;
//!   otherwise it gets a snapshot.
//! - A feed with no clients lingers a while (so reconnecting clients can resume), then
//!   stops reading.

use flowsight_events::lock;
use std::collections::hash_map::Entry as MapEntry;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flowsight_operators::Millis;
use serde_json::{Map, Value};
use tokio::sync::watch;

use crate::engine::Client;

/// How subscriptions behave.
#[derive(Clone, Debug)]
pub struct SubscriptionSettings {
    /// The most events a client may be behind before it is overflowed and re-sent a
    /// snapshot.
    pub queue: usize,
    /// How many events a feed keeps for clients that reconnect (`Last-Event-ID`).
    pub history: usize,
    /// How long a feed with no clients keeps reading, so that clients can resume.
    pub linger: Duration,
    /// How often a feed looks whether the frontier has passed a new tick.
    pub poll: Duration,
}

impl Default for SubscriptionSettings {
    fn default() -> Self {
        SubscriptionSettings {
            queue: 64,
            history: 600,
            linger: Duration::from_secs(30),
            poll: Duration::from_millis(50),
        }
    }
}

/// One consistent read of a view.
#[derive(Clone, Debug, PartialEq)]
pub struct ViewRows {
    /// The time the view was read at (the requested one or later).
    pub as_of: Millis,
    /// What a snapshot carries besides `as_of` and `rows` (the window, result columns).
    pub meta: Map<String, Value>,
    /// Each row as compact JSON text: rows are compared by their text.
    pub rows: Vec<String>,
}

/// Why a read gave no rows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadError {
    /// The views are not readable yet (catching up after a restart): try again later.
    NotYet,
    /// Something passing went wrong (a timeout): try again later.
    Retry(String),
    /// The view is gone for good (a dropped query, the engine stopping): the
    /// subscription ends with this error.
    Ended {
        /// The error's code, as the HTTP API names it.
        code: String,
        /// What happened, for users.
        message: String,
    },
}

/// Reads one view; a feed calls it at each new complete tick.
pub trait ViewReader: Send + Sync + 'static {
    /// Reads the view at `as_of`, a complete time, or later if the views have moved
    /// past it.
    fn read(&self, as_of: Millis) -> Result<ViewRows, ReadError>;
}

/// One server-sent event: its id is its as_of, which a client hands back to resume.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Where the client is once it has taken this event: an as_of (ms since the epoch),
    /// handed back as `Last-Event-ID` to resume.
    pub id: Millis,
    /// `snapshot`, `changes`, `progress`, `overflow` or `error`.
    pub kind: &'static str,
    /// JSON text.
    pub data: Arc<str>,
}

/// Counters of every feed of a process, for `/metrics`.
#[derive(Debug, Default)]
pub struct SubscriptionStats {
    /// Clients attached now, over every feed.
    pub clients: AtomicU64,
    /// Feeds running now: distinct subscriptions, each read at every tick.
    pub feeds: AtomicU64,
    /// Change and progress events published so far.
    pub events: AtomicU64,
    /// Times a client fell more than [`SubscriptionSettings::queue`] events behind and was
    /// sent a new snapshot.
    pub overflows: AtomicU64,
    /// Reconnecting clients that resumed from a feed's log rather than a snapshot.
    pub resumed: AtomicU64,
}

/// The process's subscriptions, by key (the view and its parameters).
pub struct Hub {
    client: Client,
    settings: SubscriptionSettings,
    feeds: Mutex<HashMap<String, Arc<Feed>>>,
    stats: Arc<SubscriptionStats>,
    next_client: AtomicU64,
    /// Set when the process stops serving: every stream ends, and no feed reads again.
    closed: AtomicBool,
}

impl Hub {
    /// The hub of a process: its feeds follow `client`'s complete times and end when its
    /// engine stops.
    pub fn new(client: Client, settings: SubscriptionSettings) -> Arc<Hub> {
        Arc::new(Hub {
            client,
            settings,
            feeds: Mutex::new(HashMap::new()),
            stats: Arc::new(SubscriptionStats::default()),
            next_client: AtomicU64::new(0),
            closed: AtomicBool::new(false),
        })
    }

    /// Ends every subscription with a `shutting_down` error, so that open streams (which
    /// never end by themselves) let the HTTP server stop.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let feeds: Vec<Arc<Feed>> = lock(&self.feeds).drain().map(|(_, f)| f).collect();
        for feed in feeds {
            feed.end("shutting_down", "this process is stopping");
        }
    }

    /// How this hub's subscriptions behave.
    pub fn settings(&self) -> &SubscriptionSettings {
        &self.settings
    }

    /// Counters of every feed of the process, for `/metrics`.
    pub fn stats(&self) -> &SubscriptionStats {
        &self.stats
    }

    /// Attaches a client to the feed of `key`, starting one with `reader` if none runs.
    /// `resume_after` is the id of the last event the client saw, if it reconnects.
    pub fn subscribe(
        self: &Arc<Self>,
        key: &str,
        reader: impl FnOnce() -> Box<dyn ViewReader>,
        resume_after: Option<Millis>,
    ) -> Subscription {
        let id = self.next_client.fetch_add(1, Ordering::Relaxed);
        if self.closed.load(Ordering::Acquire) {
            // A stream that ends at once, with the reason.
            let feed = Arc::new(Feed::new(self.settings.clone(), Arc::clone(&self.stats)));
            feed.end("shutting_down", "this process is stopping");
            return self.attached(feed, id, None);
        }
        let mut feeds = lock(&self.feeds);
        let feed = match feeds.entry(key.to_string()) {
            MapEntry::Occupied(entry) => Arc::clone(entry.get()),
            MapEntry::Vacant(entry) => {
                let feed = Arc::new(Feed::new(self.settings.clone(), Arc::clone(&self.stats)));
                entry.insert(Arc::clone(&feed));
                self.stats.feeds.fetch_add(1, Ordering::Relaxed);
                let hub = Arc::clone(self);
                let runner = Arc::clone(&feed);
                let reader = reader();
                let feed_key = key.to_string();
                let spawned = std::thread::Builder::new()
                    .name("subscription".into())
                    .spawn(move || hub.run_feed(&feed_key, &runner, reader.as_ref()));
                if let Err(error) = spawned {
                    feed.end(
                        "internal",
                        &format!("cannot start the subscription: {error}"),
                    );
                    // Not kept: the next subscriber to this view tries again.
                    feeds.remove(key);
                    self.stats.feeds.fetch_sub(1, Ordering::Relaxed);
                }
                feed
            }
        };
        // Attached under the hub's lock: the feed cannot retire in between.
        let subscription = self.attached(feed, id, resume_after);
        drop(feeds);
        subscription
    }

    fn attached(&self, feed: Arc<Feed>, id: u64, resume_after: Option<Millis>) -> Subscription {
        let resumed = feed.attach(id, resume_after);
        if resumed {
            self.stats.resumed.fetch_add(1, Ordering::Relaxed);
        }
        self.stats.clients.fetch_add(1, Ordering::Relaxed);
        Subscription {
            watch: feed.notify.subscribe(),
            feed,
            id,
            stats: Arc::clone(&self.stats),
            done: false,
        }
    }

    /// Reads the view at each new complete tick until the feed has had no client for the
    /// linger time, or the view is gone.
    fn run_feed(&self, key: &str, feed: &Arc<Feed>, reader: &dyn ViewReader) {
        let mut last_read: Option<Millis> = None;
        loop {
            if self.closed.load(Ordering::Acquire) || self.retire_if_idle(key, feed) {
                break;
            }
            if self.client.is_shutting_down() {
                let message = match self.client.failure() {
                    Some(failure) => format!("the engine failed: {failure}"),
                    None => "the engine is shutting down".to_string(),
                };
                self.end_feed(key, feed, "engine_stopped", &message);
                break;
            }
            let latest = self.client.latest_complete();
            let fresh = match (latest, last_read) {
                (Some(latest), Some(last)) => latest > last,
                (Some(_), None) => true,
                (None, _) => false,
            };
            if !fresh {
                std::thread::sleep(self.settings.poll);
                continue;
            }
            let Some(as_of) = latest else { continue };
            match reader.read(as_of) {
                Ok(read) => {
                    if last_read.is_none_or(|last| read.as_of > last) {
                        last_read = Some(read.as_of);
                        feed.publish(read);
                    } else {
                        std::thread::sleep(self.settings.poll);
                    }
                }
                Err(ReadError::NotYet) => std::thread::sleep(self.settings.poll),
                Err(ReadError::Retry(message)) => {
                    tracing::warn!("subscription {key}: {message}; reading again");
                    std::thread::sleep(Duration::from_secs(1));
                }
                Err(ReadError::Ended { code, message }) => {
                    self.end_feed(key, feed, &code, &message);
                    break;
                }
            }
        }
    }

    fn end_feed(&self, key: &str, feed: &Arc<Feed>, code: &str, message: &str) {
        // A new client gets a new feed (and, most likely, the same error at once).
        self.forget(key, feed);
        feed.end(code, message);
    }

    fn forget(&self, key: &str, feed: &Arc<Feed>) {
        let mut feeds = lock(&self.feeds);
        if feeds.get(key).is_some_and(|f| Arc::ptr_eq(f, feed)) {
            feeds.remove(key);
            self.stats.feeds.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Under the hub's lock, so that no client attaches to a feed that is stopping.
    fn retire_if_idle(&self, key: &str, feed: &Arc<Feed>) -> bool {
        let mut feeds = lock(&self.feeds);
        let idle = {
            let state = lock(&feed.state);
            state.clients.is_empty() && state.idle_since.elapsed() >= self.settings.linger
        };
        if idle && feeds.get(key).is_some_and(|f| Arc::ptr_eq(f, feed)) {
            feeds.remove(key);
            self.stats.feeds.fetch_sub(1, Ordering::Relaxed);
        }
        idle
    }
}

/// One logged event, and the as_of of the read before it: the log is gap-free from the
/// first entry's `previous` on.
struct LogEntry {
    previous: Millis,
    event: Event,
}

struct ClientSlot {
    /// The as_of of the last event the client took, once it has a snapshot.
    cursor: Option<Millis>,
    /// Fell behind by more than the queue: next, it gets an overflow notice and a snapshot.
    overflowed: bool,
}

struct FeedState {
    /// The latest read, once there is one.
    current: Option<ViewRows>,
    /// The latest read's rows, counted (a view may repeat a row).
    counts: HashMap<String, i64>,
    /// The snapshot of `current`, encoded once for every client that needs it.
    snapshot: Option<Event>,
    log: VecDeque<LogEntry>,
    clients: HashMap<u64, ClientSlot>,
    idle_since: Instant,
    /// The error that ended the feed.
    ended: Option<Event>,
}

/// The reads and change log of one subscription, shared by its clients.
pub struct Feed {
    settings: SubscriptionSettings,
    stats: Arc<SubscriptionStats>,
    state: Mutex<FeedState>,
    /// Bumped at each new event, waking the clients.
    notify: watch::Sender<u64>,
}

impl Feed {
    fn new(settings: SubscriptionSettings, stats: Arc<SubscriptionStats>) -> Feed {
        let (notify, _) = watch::channel(0);
        Feed {
            settings,
            stats,
            state: Mutex::new(FeedState {
                current: None,
                counts: HashMap::new(),
                snapshot: None,
                log: VecDeque::new(),
                clients: HashMap::new(),
                idle_since: Instant::now(),
                ended: None,
            }),
            notify,
        }
    }

    /// Adds a client; returns whether it resumes from the log (rather than a snapshot).
    fn attach(&self, id: u64, resume_after: Option<Millis>) -> bool {
        let mut state = lock(&self.state);
        let cursor = resume_after.filter(|after| state.can_resume_after(*after));
        state.clients.insert(
            id,
            ClientSlot {
                cursor,
                overflowed: false,
            },
        );
        cursor.is_some()
    }

    fn detach(&self, id: u64) {
        let mut state = lock(&self.state);
        state.clients.remove(&id);
        if state.clients.is_empty() {
            state.idle_since = Instant::now();
        }
    }

    /// Records a new read: the difference from the previous one becomes an event.
    fn publish(&self, read: ViewRows) {
        let mut state = lock(&self.state);
        let counts = count_rows(&read.rows);
        let previous = state.current.as_ref().map(|c| c.as_of);
        if let Some(previous) = previous {
            let event = change_event(&state.counts, &counts, &read);
            state.log.push_back(LogEntry { previous, event });
            while state.log.len() > self.settings.history.max(self.settings.queue) {
                state.log.pop_front();
            }
            self.stats.events.fetch_add(1, Ordering::Relaxed);
        }
        state.counts = counts;
        state.current = Some(read);
        state.snapshot = None;
        // A client that has not taken the newest `queue` events is overflowed now, while
        // the engine goes on: it is told, and gets a snapshot, when it next asks.
        let queue = self.settings.queue;
        let FeedState { log, clients, .. } = &mut *state;
        for slot in clients.values_mut() {
            if let (Some(cursor), false) = (slot.cursor, slot.overflowed) {
                let behind = log.len() - log.partition_point(|e| e.event.id <= cursor);
                if behind > queue {
                    slot.overflowed = true;
                    self.stats.overflows.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        drop(state);
        self.notify.send_modify(|n| *n += 1);
    }

    fn end(&self, code: &str, message: &str) {
        let mut state = lock(&self.state);
        let id = state.current.as_ref().map_or(0, |c| c.as_of);
        let data = serde_json::json!({ "error": { "code": code, "message": message } });
        state.ended = Some(Event {
            id,
            kind: "error",
            data: data.to_string().into(),
        });
        drop(state);
        self.notify.send_modify(|n| *n += 1);
    }

    /// The events a client has not had yet; `None` once the feed has ended for it.
    fn take(&self, id: u64) -> Option<Vec<Event>> {
        let mut state = lock(&self.state);
        let Some(current_as_of) = state.current.as_ref().map(|c| c.as_of) else {
            return match state.ended.clone() {
                Some(end) => Some(vec![end]),
                None => Some(Vec::new()),
            };
        };
        let (cursor, overflowed) = match state.clients.get(&id) {
            Some(slot) => (slot.cursor, slot.overflowed),
            None => return None,
        };
        let mut events = Vec::new();
        match cursor {
            Some(cursor) if !overflowed => {
                let start = state.log.partition_point(|e| e.event.id <= cursor);
                events.extend(state.log.iter().skip(start).map(|e| e.event.clone()));
            }
            _ => {
                if let (Some(cursor), true) = (cursor, overflowed) {
                    let data = serde_json::json!({
                        "as_of": cursor,
                        "message": format!(
                            "this client fell more than {} events behind; the events after \
                             as_of {cursor} were dropped for it and a new snapshot follows",
                            self.settings.queue
                        ),
                    });
                    events.push(Event {
                        id: cursor,
                        kind: "overflow",
                        data: data.to_string().into(),
                    });
                }
                events.push(state.snapshot_event());
            }
        }
        if let Some(slot) = state.clients.get_mut(&id) {
            slot.cursor = Some(current_as_of);
            slot.overflowed = false;
        }
        if events.is_empty() {
            if let Some(end) = state.ended.clone() {
                return Some(vec![end]);
            }
        }
        Some(events)
    }
}

impl FeedState {
    /// Whether the log holds every event after `after`: it is the as_of of the newest
    /// read, of a logged event, or of the read just before the first logged event.
    fn can_resume_after(&self, after: Millis) -> bool {
        let Some(current) = &self.current else {
            return false;
        };
        after == current.as_of
            || self
                .log
                .front()
                .is_some_and(|first| first.previous == after)
            || self
                .log
                .binary_search_by_key(&after, |e| e.event.id)
                .is_ok()
    }

    fn snapshot_event(&mut self) -> Event {
        if let Some(snapshot) = &self.snapshot {
            return snapshot.clone();
        }
        let current = self.current.as_ref().expect("a snapshot needs a read");
        let mut data =
            String::with_capacity(64 + current.rows.iter().map(|r| r.len() + 1).sum::<usize>());
        data.push_str(&format!("{{\"as_of\":{}", current.as_of));
        for (key, value) in &current.meta {
            data.push(',');
            data.push_str(&Value::String(key.clone()).to_string());
            data.push(':');
            data.push_str(&value.to_string());
        }
        data.push_str(",\"rows\":[");
        for (i, row) in current.rows.iter().enumerate() {
            if i > 0 {
                data.push(',');
            }
            data.push_str(row);
        }
        data.push_str("]}");
        let event = Event {
            id: current.as_of,
            kind: "snapshot",
            data: data.into(),
        };
        self.snapshot = Some(event.clone());
        event
    }
}

fn count_rows(rows: &[String]) -> HashMap<String, i64> {
    let mut counts = HashMap::with_capacity(rows.len());
    for row in rows {
        *counts.entry(row.clone()).or_insert(0) += 1;
    }
    counts
}

/// The event that takes a client from the `before` rows to the read's: rows that went
/// (diff < 0) ordered by their text, then rows that came, in the new read's order;
/// or a progress event when nothing changed.
fn change_event(
    before: &HashMap<String, i64>,
    after: &HashMap<String, i64>,
    read: &ViewRows,
) -> Event {
    let mut changes = String::new();
    let push = |changes: &mut String, row: &str, diff: i64| {
        if !changes.is_empty() {
            changes.push(',');
        }
        changes.push_str("{\"row\":");
        changes.push_str(row);
        changes.push_str(&format!(",\"diff\":{diff}}}"));
    };
    // Retractions in a stable order: by row text.
    let mut gone: Vec<(&String, i64)> = before
        .iter()
        .filter_map(|(row, count)| {
            let diff = after.get(row).copied().unwrap_or(0) - count;
            (diff < 0).then_some((row, diff))
        })
        .collect();
    gone.sort();
    for (row, diff) in gone {
        push(&mut changes, row, diff);
    }
    let mut done = std::collections::HashSet::new();
    for row in &read.rows {
        if !done.insert(row.as_str()) {
            continue;
        }
        let diff = after.get(row).copied().unwrap_or(0) - before.get(row).copied().unwrap_or(0);
        if diff > 0 {
            push(&mut changes, row, diff);
        }
    }
    if changes.is_empty() {
        return Event {
            id: read.as_of,
            kind: "progress",
            data: format!("{{\"as_of\":{}}}", read.as_of).into(),
        };
    }
    Event {
        id: read.as_of,
        kind: "changes",
        data: format!("{{\"as_of\":{},\"changes\":[{changes}]}}", read.as_of).into(),
    }
}

/// One client's place in a feed. Dropping it detaches the client.
pub struct Subscription {
    feed: Arc<Feed>,
    id: u64,
    watch: watch::Receiver<u64>,
    stats: Arc<SubscriptionStats>,
    done: bool,
}

impl Subscription {
    /// The next events for this client, waiting for them; `None` once the subscription
    /// has ended (after its `error` event).
    pub async fn next(&mut self) -> Option<Vec<Event>> {
        if self.done {
            return None;
        }
        loop {
            // Mark the current value seen before looking, so no event is missed between.
            self.watch.borrow_and_update();
            let events = self.feed.take(self.id)?;
            if !events.is_empty() {
                if events.iter().any(|e| e.kind == "error") {
                    self.done = true;
                }
                return Some(events);
            }
            if self.watch.changed().await.is_err() {
                return None;
            }
        }
    }

    /// The events available now, without waiting (for tests and polling clients).
    pub fn try_next(&mut self) -> Option<Vec<Event>> {
        if self.done {
            return None;
        }
        let events = self.feed.take(self.id)?;
        if events.iter().any(|e| e.kind == "error") {
            self.done = true;
        }
        Some(events)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.feed.detach(self.id);
        self.stats.clients.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(queue: usize, history: usize) -> SubscriptionSettings {
        SubscriptionSettings {
            queue,
            history,
            ..SubscriptionSettings::default()
        }
    }

    fn read(as_of: Millis, rows: &[&str]) -> ViewRows {
        ViewRows {
            as_of,
            meta: Map::new(),
            rows: rows.iter().map(|r| r.to_string()).collect(),
        }
    }

    fn feed(queue: usize, history: usize) -> Arc<Feed> {
        Arc::new(Feed::new(
            settings(queue, history),
            Arc::new(SubscriptionStats::default()),
        ))
    }

    fn kinds(events: &[Event]) -> Vec<(&'static str, Millis)> {
        events.iter().map(|e| (e.kind, e.id)).collect()
    }

    #[test]
    fn a_client_gets_a_snapshot_then_each_difference() {
        let feed = feed(8, 8);
        feed.attach(1, None);
        assert_eq!(feed.take(1), Some(vec![]), "nothing read yet");
        feed.publish(read(1000, &["1", "2"]));
        let events = feed.take(1).unwrap();
        assert_eq!(kinds(&events), vec![("snapshot", 1000)]);
        assert_eq!(&*events[0].data, r#"{"as_of":1000,"rows":[1,2]}"#);
        feed.publish(read(2000, &["2", "3", "3"]));
        feed.publish(read(3000, &["2", "3", "3"]));
        let events = feed.take(1).unwrap();
        assert_eq!(kinds(&events), vec![("changes", 2000), ("progress", 3000)]);
        assert_eq!(
            &*events[0].data,
            r#"{"as_of":2000,"changes":[{"row":1,"diff":-1},{"row":3,"diff":2}]}"#
        );
        assert_eq!(&*events[1].data, r#"{"as_of":3000}"#);
        assert_eq!(feed.take(1), Some(vec![]));
    }

    #[test]
    fn a_client_too_far_behind_is_told_and_sent_a_snapshot() {
        let feed = feed(2, 10);
        feed.attach(1, None);
        feed.publish(read(1000, &["1"]));
        assert_eq!(kinds(&feed.take(1).unwrap()), vec![("snapshot", 1000)]);
        feed.publish(read(2000, &["2"]));
        feed.publish(read(3000, &["3"]));
        assert!(
            !lock(&feed.state).clients[&1].overflowed,
            "2 behind is within the queue"
        );
        feed.publish(read(4000, &["4"]));
        assert_eq!(feed.stats.overflows.load(Ordering::Relaxed), 1);
        let events = feed.take(1).unwrap();
        assert_eq!(kinds(&events), vec![("overflow", 1000), ("snapshot", 4000)]);
        assert_eq!(&*events[1].data, r#"{"as_of":4000,"rows":[4]}"#);
        feed.publish(read(5000, &["5"]));
        assert_eq!(kinds(&feed.take(1).unwrap()), vec![("changes", 5000)]);
    }

    #[test]
    fn a_reconnecting_client_resumes_from_the_log_or_gets_a_snapshot() {
        let feed = feed(2, 3);
        feed.attach(1, None);
        for t in 1..=5 {
            feed.publish(read(t * 1000, &[&t.to_string()]));
        }
        // The log keeps the events of 3000, 4000 and 5000: after 2000 on is gap-free.
        assert!(feed.attach(2, Some(2000)));
        assert_eq!(
            kinds(&feed.take(2).unwrap()),
            vec![("changes", 3000), ("changes", 4000), ("changes", 5000)]
        );
        assert!(feed.attach(3, Some(4000)));
        assert_eq!(kinds(&feed.take(3).unwrap()), vec![("changes", 5000)]);
        assert!(feed.attach(4, Some(5000)));
        assert_eq!(feed.take(4), Some(vec![]));
        assert!(!feed.attach(5, Some(1000)), "the event of 2000 is gone");
        assert_eq!(kinds(&feed.take(5).unwrap()), vec![("snapshot", 5000)]);
        assert!(!feed.attach(6, Some(4500)), "not an event's id");
        assert_eq!(kinds(&feed.take(6).unwrap()), vec![("snapshot", 5000)]);
    }

    #[test]
    fn an_ended_feed_sends_its_error_last() {
        let feed = feed(10, 10);
        feed.attach(1, None);
        feed.publish(read(1000, &["1"]));
        feed.publish(read(2000, &["2"]));
        feed.end("unknown_query", "gone");
        let events = feed.take(1).unwrap();
        assert_eq!(kinds(&events), vec![("snapshot", 2000)]);
        let events = feed.take(1).unwrap();
        assert_eq!(kinds(&events), vec![("error", 2000)]);
        assert_eq!(
            &*events[0].data,
            r#"{"error":{"code":"unknown_query","message":"gone"}}"#
        );
    }
}
