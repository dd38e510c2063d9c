//! Microsegmentation of a host graph (docs/design.md §4): hubs by degree, strong edges by
//! weight, and segments as the connected components of the strong edges, each labelled by
//! its smallest member.
//!
//! Everything is a differential collection, so a contact entering or leaving the window
//! changes only what it touches: a new strong edge merges two segments (the larger label
//! gives way to the smaller), an expiring one splits a segment (the part without the
//! smallest member takes its own smallest member as its label), a host crossing the hub
//! degree leaves its segment and becomes a shared service. The components come from
//! differential's label propagation ([`propagate_core`]), which keeps per-node labels
//! across iterations and times, so none of this recomputes from scratch.

use std::fmt;
use std::hash::Hash;
use std::str::FromStr;

use differential_dataflow::algorithms::graphs::propagate::propagate_core;
use differential_dataflow::lattice::Lattice;
use differential_dataflow::{ExchangeData, VecCollection};
use serde::{Deserialize, Serialize};
use timely::progress::Timestamp;

/// The thresholds of the segmentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SegmentRules {
    /// A host with at least this many distinct peers is a hub (a shared service).
    pub hub_degree: u64,
    /// Two non-hub hosts are strongly connected with at least this many records between them.
    pub min_edge_connections: u64,
}

impl Default for SegmentRules {
    fn default() -> Self {
        SegmentRules {
            hub_degree: 50,
            min_edge_connections: 3,
        }
    }
}

/// Where a host belongs: a segment, named by its smallest member, or its own hub.
///
/// Ordered segments first, then hubs, each by address, which is the order listings use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SegmentId<N> {
    /// A segment: a connected component of strong edges, named by its smallest member.
    Segment(N),
    /// A hub (a shared service), named by its own address and never clustered.
    Hub(N),
}

impl<N> SegmentId<N> {
    /// Whether this is a hub rather than a segment.
    pub fn is_hub(&self) -> bool {
        matches!(self, SegmentId::Hub(_))
    }

    /// The address the id is named after.
    pub fn address(&self) -> &N {
        match self {
            SegmentId::Segment(n) | SegmentId::Hub(n) => n,
        }
    }
}

/// `10.0.0.1` for a segment, `hub:10.0.0.1` for a hub, as docs/design.md §4 names them.
impl<N: fmt::Display> fmt::Display for SegmentId<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SegmentId::Segment(n) => write!(f, "{n}"),
            SegmentId::Hub(n) => write!(f, "hub:{n}"),
        }
    }
}

impl<N: FromStr> FromStr for SegmentId<N> {
    type Err = N::Err;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.strip_prefix("hub:") {
            Some(hub) => hub.parse().map(SegmentId::Hub),
            None => s.parse().map(SegmentId::Segment),
        }
    }
}

/// What [`segment`] builds.
pub struct Segmentation<'scope, T: Timestamp, N: 'static> {
    /// Every host seen, with where it belongs.
    pub labels: VecCollection<'scope, T, (N, SegmentId<N>), isize>,
    /// Each hub with its number of distinct peers.
    pub hubs: VecCollection<'scope, T, (N, u64), isize>,
}

/// Segments the graph of `contacts`: `(a, b)` once per record between `a` and `b`, in
/// whichever direction (a record of a host with itself makes it seen but joins nothing).
///
/// ```
/// use differential_dataflow::input::Input;
/// use flowsight_queries::segments::propagation::{segment, SegmentId, SegmentRules};
///
/// timely::example(|scope| {
///     let rules = SegmentRules { hub_degree: 3, min_edge_connections: 2 };
///     // 1–2 talk twice (strong), 3–4 once (weak); 9 talks to 1, 3 and 4: a hub.
///     let contacts = vec![(1u32, 2), (2, 1), (3, 4), (9, 1), (9, 3), (4, 9), (5, 5)];
///     let (_, contacts) = scope.new_collection_from(contacts);
///     let expected = vec![
///         (1, SegmentId::Segment(1)),
///         (2, SegmentId::Segment(1)),
///         (3, SegmentId::Segment(3)),
///         (4, SegmentId::Segment(4)),
///         (5, SegmentId::Segment(5)),
///         (9, SegmentId::Hub(9)),
///     ];
///     let (_, expected) = scope.new_collection_from(expected);
///     segment(contacts, rules).labels.assert_eq(expected);
/// });
/// ```
pub fn segment<'scope, T, N>(
    contacts: VecCollection<'scope, T, (N, N), isize>,
    rules: SegmentRules,
) -> Segmentation<'scope, T, N>
where
    T: Timestamp + Lattice + Hash,
    N: ExchangeData + Hash + Copy,
{
    // Each unordered pair once, smaller end first, counted by its records.
    let pairs = contacts
        .clone()
        .flat_map(|(a, b)| (a != b).then(|| if a < b { (a, b) } else { (b, a) }));
    let hosts = contacts
        .flat_map(|(a, b)| if a == b { vec![a] } else { vec![a, b] })
        .distinct();

    let degrees = pairs.clone().distinct().flat_map(|(a, b)| [a, b]).count();
    let hub_degree = isize::try_from(rules.hub_degree).unwrap_or(isize::MAX);
    let hubs = degrees
        .filter(move |(_, degree)| *degree >= hub_degree)
        .map(|(hub, degree)| (hub, degree.unsigned_abs() as u64));
    let hub_set = hubs.clone().map(|(hub, _)| hub);

    let min_weight = isize::try_from(rules.min_edge_connections).unwrap_or(isize::MAX);
    let strong = pairs
        .threshold_named("StrongEdges", move |_, weight| {
            isize::from(*weight >= min_weight)
        })
        .antijoin(hub_set.clone())
        .map(|(a, b)| (b, a))
        .antijoin(hub_set.clone())
        .flat_map(|(b, a)| [(a, b), (b, a)]);

    let members = hosts
        .map(|host| (host, ()))
        .antijoin(hub_set)
        .map(|(host, ())| (host, host));
    let components = propagate_core(strong.arrange_by_key_named("StrongEdges"), members, |_| 0);

    let labels = components
        .map(|(host, smallest)| (host, SegmentId::Segment(smallest)))
        .concat(hubs.clone().map(|(hub, _)| (hub, SegmentId::Hub(hub))));
    Segmentation { labels, hubs }
}
