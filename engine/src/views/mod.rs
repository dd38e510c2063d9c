//! Every view a peek can read, one module per area, and [`LIST`], the one list that
//! registers them.
//!
//! Each view is a type implementing [`View`](crate::view::View): the question's fields,
//! how a worker reads its part from the arrangements in [`Views`](crate::peek::Views), and
//! how the parts merge. The domain rules they read with (the graph's, risk's and
//! segmentation's readers and merges) live with their dataflows in `flowsight-queries`.

pub mod counters;
pub mod graph;
pub mod registered;
pub mod risk;
pub mod segments;

use crate::view::Entry;

/// Every view a worker answers peeks of. A worker refuses a question of a view that is not
/// here, so a new view is added here as well as in its module.
pub static LIST: &[Entry] = &[
    Entry::of::<graph::Edges>(),
    Entry::of::<graph::Host>(),
    Entry::of::<graph::BusiestHosts>(),
    Entry::of::<risk::Risks>(),
    Entry::of::<risk::RiskHost>(),
    Entry::of::<risk::SeverityOverTime>(),
    Entry::of::<risk::Anomalies>(),
    Entry::of::<segments::Segments>(),
    Entry::of::<segments::Segment>(),
    Entry::of::<segments::HostSegment>(),
    Entry::of::<segments::Policy>(),
    Entry::of::<registered::QueryResults>(),
    Entry::of::<counters::Status>(),
    Entry::of::<counters::DeadLetters>(),
];

/// The entry of the view called `name`.
pub(crate) fn find(name: &str) -> Option<&'static Entry> {
    LIST.iter().find(|entry| entry.name == name)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::graph::Edges;
    use crate::view::{encode, View};

    #[test]
    fn a_question_is_decoded_by_its_own_views_entry_only() {
        let question = encode(&Edges {
            window: 1_800_000,
            filter: Default::default(),
            limit: 3,
        })
        .unwrap();
        let entry = super::find(Edges::NAME).expect("edges is listed");
        assert!((entry.decode)(&question).is_ok());
        assert!(
            (entry.decode)(&question[..question.len() - 1]).is_err(),
            "cut short"
        );
        assert!(super::find("no_such_view").is_none());
    }

    #[test]
    fn every_view_has_its_own_name() {
        let names: BTreeSet<&str> = super::LIST.iter().map(|entry| entry.name).collect();
        assert_eq!(names.len(), super::LIST.len(), "two views share a name");
    }
}
