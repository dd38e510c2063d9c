//! The registered queries' view: a query's result rows.
//!
//! The query plane follows the views a little behind (it applies a time's records once the
//! families' changes have passed it), so a worker waits for the plane to pass the read
//! time ([`View::behind`]) besides the views' frontier.

use flowsight_operators::Millis;
use flowsight_queries::registered::{self, plane, QueryResult};
use serde::{Deserialize, Serialize};

use crate::peek::Views;
use crate::queries::{QueryError, QueryPartAnswer};
use crate::view::{Merging, Reading, View};

/// A registered query's result rows, at most `limit` of them. `generation` tells a query
/// from an earlier one of the same name that was dropped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryResults {
    /// The query's name.
    pub name: String,
    /// The registration to read ([`QueryInfo::generation`](crate::QueryInfo::generation)):
    /// another one of the name answers as unknown.
    pub generation: u64,
    /// The most result rows to answer with.
    pub limit: usize,
}

impl View for QueryResults {
    const NAME: &'static str = "query_results";
    type Part = QueryPartAnswer;
    type Rows = Result<QueryResult, QueryError>;

    fn read(&self, views: &mut Views, at: &Reading<'_>) -> QueryPartAnswer {
        let mut queries = views.queries.borrow_mut();
        let Some(query) = queries
            .entries
            .get_mut(&self.name)
            .filter(|q| q.generation == self.generation)
        else {
            return QueryPartAnswer::Unknown;
        };
        if let Some(reason) = &query.failed {
            return QueryPartAnswer::Failed(reason.clone());
        }
        let Some(reader) = query.running.clone() else {
            return QueryPartAnswer::Unknown;
        };
        let read_at = at.time.max(query.read_from);
        match queries
            .plane
            .as_mut()
            .and_then(|plane| plane.get_mut(&reader.member.window))
        {
            Some(window) => {
                QueryPartAnswer::Rows(plane::read_part(window, &reader, read_at, self.limit))
            }
            None => QueryPartAnswer::Unknown,
        }
    }

    fn merge(&self, parts: Vec<QueryPartAnswer>, at: &Merging<'_>) -> Self::Rows {
        let mut rows = Vec::new();
        let mut problem = None;
        for part in parts {
            match part {
                QueryPartAnswer::Rows(part) => rows.push(part),
                QueryPartAnswer::Failed(reason) => {
                    problem = Some(QueryError::Failed {
                        name: self.name.clone(),
                        reason,
                    })
                }
                QueryPartAnswer::Unknown => {
                    problem.get_or_insert(QueryError::Unknown(self.name.clone()));
                }
            }
        }
        if let Some(problem) = problem {
            return Err(problem);
        }
        match at.query_plan(&self.name, self.generation) {
            Some(plan) => Ok(registered::merge_parts(&plan, rows, self.limit)),
            // Dropped while the peek was on its way.
            None => Err(QueryError::Unknown(self.name.clone())),
        }
    }

    fn behind(&self, views: &Views, read_at: Millis) -> bool {
        let mut queries = views.queries.borrow_mut();
        let Some((window, read_from)) = queries
            .entries
            .get(&self.name)
            .filter(|q| q.generation == self.generation)
            .and_then(|q| Some((q.running.as_ref()?.member.window, q.read_from)))
        else {
            return false;
        };
        queries
            .plane
            .as_mut()
            .and_then(|plane| plane.get_mut(&window))
            .is_some_and(|traces| traces.behind(read_at.max(read_from)))
    }
}
