//! The connection graph's views: a window's heaviest edges, one host's, and the busiest
//! hosts.

use std::net::IpAddr;

use flowsight_operators::Millis;
use flowsight_queries::graph::ranking::RankingReader;
use flowsight_queries::graph::{merge_busiest, merge_edges, merge_host, GraphReader};
use flowsight_queries::{EdgeFilter, EdgeRow, HostAnswer, HostSummary};
use serde::{Deserialize, Serialize};

use crate::peek::Views;
use crate::view::{Merging, Reading, View};

/// The heaviest edges of a window, filtered by source and destination.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Edges {
    /// The window's length, in ms.
    pub window: Millis,
    /// Which edges: by source, destination, both or neither.
    pub filter: EdgeFilter,
    /// The most edges answered.
    pub limit: usize,
}

impl View for Edges {
    const NAME: &'static str = "edges";
    type Part = Vec<EdgeRow>;
    type Rows = Vec<EdgeRow>;

    fn read(&self, views: &mut Views, at: &Reading<'_>) -> Vec<EdgeRow> {
        if self.filter == EdgeFilter::default() {
            // Every edge of the window: the ranking's first `limit` rows.
            return RankingReader::new(&mut views.rankings, at.time)
                .heaviest_edges(self.window, self.limit);
        }
        // By source or destination: that host's edges, read from the graph.
        GraphReader::new(&mut views.graph, at.time, at.window_start(self.window))
            .edges(self.filter, self.limit)
    }

    fn merge(&self, parts: Vec<Vec<EdgeRow>>, _: &Merging<'_>) -> Vec<EdgeRow> {
        merge_edges(parts, self.limit)
    }
}

/// One host in a window: its totals, and its `limit` heaviest edges each way.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Host {
    /// The host.
    pub ip: IpAddr,
    /// The window's length, in ms.
    pub window: Millis,
    /// The most edges answered each way (the totals cover every edge).
    pub limit: usize,
}

impl View for Host {
    const NAME: &'static str = "host";
    type Part = HostAnswer;
    type Rows = HostAnswer;

    fn read(&self, views: &mut Views, at: &Reading<'_>) -> HostAnswer {
        GraphReader::new(&mut views.graph, at.time, at.window_start(self.window))
            .host(self.ip, self.limit)
    }

    fn merge(&self, parts: Vec<HostAnswer>, _: &Merging<'_>) -> HostAnswer {
        merge_host(self.ip, parts)
    }
}

/// The busiest hosts of a window: most connections, then most bytes, each with its totals.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BusiestHosts {
    /// The window's length, in ms.
    pub window: Millis,
    /// The most hosts answered.
    pub limit: usize,
}

impl View for BusiestHosts {
    const NAME: &'static str = "busiest_hosts";
    type Part = Vec<HostSummary>;
    type Rows = Vec<HostSummary>;

    fn read(&self, views: &mut Views, at: &Reading<'_>) -> Vec<HostSummary> {
        RankingReader::new(&mut views.rankings, at.time).busiest_hosts(self.window, self.limit)
    }

    fn merge(&self, parts: Vec<Vec<HostSummary>>, _: &Merging<'_>) -> Vec<HostSummary> {
        merge_busiest(parts, self.limit)
    }
}
