//! The segmentation views: the largest segments, one segment, a host's segment, and the
//! proposed allow-list.
//!
//! Without the segmentation views (`--no-segment-views`) the parts are empty; the HTTP
//! layer answers `view_disabled` before asking.

use std::net::IpAddr;

use flowsight_queries::segments::{
    self, merge_lists, merge_policy, Label, PolicyFilter, PolicyOrder, PolicyRow, SegmentDetail,
    SegmentList,
};
use flowsight_queries::SegmentReader;
use serde::{Deserialize, Serialize};

use crate::peek::Views;
use crate::view::{Merging, Reading, View};

/// The largest segments, each with its `members` busiest members, and the hubs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segments {
    /// The most segments to list, largest first, and the most hubs, most peers first.
    pub limit: usize,
    /// The most members shown of each segment, busiest first.
    pub members: usize,
}

impl View for Segments {
    const NAME: &'static str = "segments";
    type Part = SegmentList;
    type Rows = SegmentList;

    fn read(&self, views: &mut Views, at: &Reading<'_>) -> SegmentList {
        let Some(traces) = views.segments.as_mut() else {
            return SegmentList::default();
        };
        SegmentReader::new(traces, at.time).list(self.limit, self.members)
    }

    fn merge(&self, parts: Vec<SegmentList>, _: &Merging<'_>) -> SegmentList {
        merge_lists(parts, self.limit)
    }
}

/// One segment or hub, with at most `limit` members.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    /// The segment's id: its smallest member's address, or the hub's (`hub:<address>`).
    pub id: Label,
    /// The most members to answer with.
    pub limit: usize,
}

impl View for Segment {
    const NAME: &'static str = "segment";
    type Part = Option<SegmentDetail>;
    type Rows = Option<SegmentDetail>;

    fn read(&self, views: &mut Views, at: &Reading<'_>) -> Option<SegmentDetail> {
        let traces = views.segments.as_mut()?;
        SegmentReader::new(traces, at.time).segment(&self.id, self.limit)
    }

    /// A segment lives on exactly one worker.
    fn merge(&self, parts: Vec<Option<SegmentDetail>>, _: &Merging<'_>) -> Option<SegmentDetail> {
        parts.into_iter().flatten().next()
    }
}

/// Which segment a host is in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostSegment {
    /// The host asked about; only the worker that holds its label answers.
    pub ip: IpAddr,
}

impl View for HostSegment {
    const NAME: &'static str = "host_segment";
    type Part = Option<segments::HostSegment>;
    type Rows = Option<segments::HostSegment>;

    fn read(&self, views: &mut Views, at: &Reading<'_>) -> Option<segments::HostSegment> {
        let traces = views.segments.as_mut()?;
        SegmentReader::new(traces, at.time).host(self.ip)
    }

    /// A host's label lives on exactly one worker.
    fn merge(
        &self,
        parts: Vec<Option<segments::HostSegment>>,
        _: &Merging<'_>,
    ) -> Option<segments::HostSegment> {
        parts.into_iter().flatten().next()
    }
}

/// The proposed allow-list, filtered, in the order asked for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// Only the entries from or to these segments.
    pub filter: PolicyFilter,
    /// By key (from, to, port, protocol), or most connections first.
    pub order: PolicyOrder,
    /// The most entries to answer with.
    pub limit: usize,
}

impl View for Policy {
    const NAME: &'static str = "policy";
    type Part = Vec<PolicyRow>;
    type Rows = Vec<PolicyRow>;

    fn read(&self, views: &mut Views, at: &Reading<'_>) -> Vec<PolicyRow> {
        let Some(traces) = views.segments.as_mut() else {
            return Vec::new();
        };
        SegmentReader::new(traces, at.time).policy(self.filter, self.order, self.limit)
    }

    fn merge(&self, parts: Vec<Vec<PolicyRow>>, _: &Merging<'_>) -> Vec<PolicyRow> {
        merge_policy(parts, self.order, self.limit)
    }
}
