//! The registered-query Plan: what a user's query means, independent of how it was written.
//!
//! Both forms of a query — SQL ([`crate::sql`]) and JSON (this type, deserialised) — end
//! up as a [`Plan`], and [`Plan::validate`] is the one place that checks it: window names,
//! types, where aggregates may appear, which columns may be selected. The renderer
//! ([`crate::registered`]) only ever sees a validated plan.
//!
//! Semantics are standard SQL over the window's records (docs/design.md §4,
//! docs/queries.md):
//!
//! * Columns are the event fields of docs/design.md §2. `ts`, the ports and the counters are
//!   integers, `src_ip` / `dst_ip` are addresses (compared with address literals such as
//!   `'10.0.0.1'`, ordered IPv4 before IPv6 and then numerically), `proto` and `status`
//!   are text (their lowercase names). `duration_ms` is the only column that can be NULL.
//! * WHERE and HAVING use three-valued logic: a comparison with NULL is unknown, and a row
//!   passes only when the condition is true.
//! * COUNT(col) and COUNT(DISTINCT col) skip NULLs; SUM, MIN, MAX and AVG of no non-NULL
//!   value are NULL; AVG is `SUM ÷ COUNT` as a 64-bit float.
//! * Without GROUP BY, a query with aggregates has exactly one row (also over no records);
//!   a query without aggregates has one row per record that passes the filter.
//! * ORDER BY sorts NULL after every value ascending and first descending (as PostgreSQL
//!   does); rows that tie on every ORDER BY term are ordered by their output columns, then
//!   their group key, ascending, so that a LIMIT always keeps the same rows.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;

use flowsight_events::Event;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::windows::Windows;

/// The prefix that turns a window name into a table name: `flows_30m`.
pub const TABLE_PREFIX: &str = "flows_";

/// A column of the windows' tables: a field of the event (docs/design.md §2).
pub use flowsight_events::Field as Column;

/// What a query knows of a column besides its name: its SQL type and its value in a record.
pub trait ColumnExt {
    /// The column's SQL type, against which validation checks comparisons and aggregates.
    fn ty(self) -> Type;
    /// This column's value in one record.
    fn value(self, event: &Event) -> Value;
}

impl ColumnExt for Column {
    fn ty(self) -> Type {
        match self {
            Column::SrcIp | Column::DstIp => Type::Ip,
            Column::Proto | Column::Status => Type::Text,
            _ => Type::Integer,
        }
    }

    fn value(self, event: &Event) -> Value {
        match self {
            Column::Ts => Value::Int(i128::from(event.ts)),
            Column::SrcIp => Value::Ip(event.src_ip),
            Column::DstIp => Value::Ip(event.dst_ip),
            Column::SrcPort => Value::Int(i128::from(event.src_port)),
            Column::DstPort => Value::Int(i128::from(event.dst_port)),
            Column::Proto => Value::Text(event.proto.as_str().to_string()),
            Column::BytesOut => Value::Int(i128::from(event.bytes_out)),
            Column::BytesIn => Value::Int(i128::from(event.bytes_in)),
            Column::Packets => Value::Int(i128::from(event.packets)),
            Column::DurationMs => event
                .duration_ms
                .map_or(Value::Null, |d| Value::Int(i128::from(d))),
            Column::Status => Value::Text(event.status.as_str().to_string()),
        }
    }
}

/// The column called `name`, compared case-insensitively as SQL does.
pub fn column_by_name(name: &str) -> Option<Column> {
    Column::ALL
        .into_iter()
        .find(|c| c.name().eq_ignore_ascii_case(name))
}

/// The type of a column or of a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Type {
    /// A whole number: `ts`, the ports, the counters, `duration_ms`, COUNT and SUM, and
    /// integer literals.
    Integer,
    /// A 64-bit float: AVG, and numeric literals not written as integers. Compares with
    /// integers as a number.
    Float,
    /// An IPv4 or IPv6 address: `src_ip`, `dst_ip`, and string literals that parse as one.
    Ip,
    /// Text: `proto` and `status` (lowercase names), and every other string literal.
    Text,
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Type::Integer => "an integer",
            Type::Float => "a number",
            Type::Ip => "an IP address",
            Type::Text => "text",
        })
    }
}

/// An integer against a float, exactly: `i128 as f64` rounds, so when the rounded integer
/// equals the float the float is integral and the integers decide.
fn int_float_cmp(a: i128, b: f64) -> std::cmp::Ordering {
    let rounded = a as f64;
    match rounded.partial_cmp(&b) {
        Some(std::cmp::Ordering::Equal) => a.cmp(&(b as i128)),
        Some(order) => order,
        None => rounded.total_cmp(&b),
    }
}

/// A value: of a column, an aggregate, or a literal. Integers are wide enough for every
/// counter and every sum of counters, and for negative literals.
///
/// In JSON a value is `null`, a number, or a string; a string that is an IPv4 or IPv6
/// address is an address, any other is text.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// SQL NULL: a record's missing `duration_ms`, SUM, MIN, MAX or AVG of no non-NULL
    /// value, or the literal `NULL`.
    Null,
    /// An integer: a column's value, a COUNT or SUM, or an integer literal.
    Int(i128),
    /// A 64-bit float: an AVG, or a numeric literal not written as an integer.
    Float(f64),
    /// An address: of `src_ip` or `dst_ip`, or a string literal that parses as one.
    Ip(IpAddr),
    /// Text: `proto` or `status` (lowercase names), or any other string literal.
    Text(String),
}

impl Value {
    /// The value's type, or `None` for NULL, which has none and so passes every type check.
    pub fn ty(&self) -> Option<Type> {
        match self {
            Value::Null => None,
            Value::Int(_) => Some(Type::Integer),
            Value::Float(_) => Some(Type::Float),
            Value::Ip(_) => Some(Type::Ip),
            Value::Text(_) => Some(Type::Text),
        }
    }

    /// SQL comparison: `None` when either side is NULL (unknown). Integers and floats
    /// compare as numbers; values of other different types never meet in a validated plan.
    pub fn sql_cmp(&self, other: &Value) -> Option<std::cmp::Ordering> {
        use Value::*;
        match (self, other) {
            (Null, _) | (_, Null) => None,
            (Int(a), Int(b)) => Some(a.cmp(b)),
            // -0.0 = 0.0 as in SQL; NaN never arises (no literal or aggregate makes one).
            (Float(a), Float(b)) => Some(a.partial_cmp(b).unwrap_or_else(|| a.total_cmp(b))),
            (Int(a), Float(b)) => Some(int_float_cmp(*a, *b)),
            (Float(a), Int(b)) => Some(int_float_cmp(*b, *a).reverse()),
            (Ip(a), Ip(b)) => Some(a.cmp(b)),
            (Text(a), Text(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }

    /// The order of ORDER BY and of tie-breaks: NULL after every value.
    pub fn sort_cmp(&self, other: &Value) -> std::cmp::Ordering {
        use std::cmp::Ordering;
        match (self, other) {
            (Value::Null, Value::Null) => Ordering::Equal,
            (Value::Null, _) => Ordering::Greater,
            (_, Value::Null) => Ordering::Less,
            _ => self.sql_cmp(other).unwrap_or(Ordering::Equal),
        }
    }
}

// By hand rather than `untagged`: serde's buffering of untagged input loses 128-bit
// integers (they come back as floats). Self-describing formats only (JSON): plans travel
// between processes as JSON text, since their optional fields do not suit bincode.
impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ValueVisitor;
        impl serde::de::Visitor<'_> for ValueVisitor {
            type Value = Value;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("null, a number or a string")
            }
            fn visit_unit<E>(self) -> Result<Value, E> {
                Ok(Value::Null)
            }
            fn visit_none<E>(self) -> Result<Value, E> {
                Ok(Value::Null)
            }
            fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
                Ok(Value::Int(i128::from(v)))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
                Ok(Value::Int(i128::from(v)))
            }
            fn visit_i128<E>(self, v: i128) -> Result<Value, E> {
                Ok(Value::Int(v))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
                Ok(Value::Float(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Value, E> {
                Ok(v.parse::<IpAddr>()
                    .map_or_else(|_| Value::Text(v.to_string()), Value::Ip))
            }
        }
        deserializer.deserialize_any(ValueVisitor)
    }
}

impl Serialize for Value {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => serializer.serialize_unit(),
            Value::Int(i) => serializer.serialize_i128(*i),
            Value::Float(x) => serializer.serialize_f64(*x),
            Value::Ip(ip) => ip.serialize(serializer),
            Value::Text(t) => serializer.serialize_str(t),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("NULL"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Ip(ip) => write!(f, "'{ip}'"),
            Value::Text(t) => write!(f, "'{}'", t.replace('\'', "''")),
        }
    }
}

/// An aggregate function over the rows of a group.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregate {
    /// `COUNT(*)`: the rows of the group.
    CountStar,
    /// `COUNT(col)`: the rows whose `col` is not NULL.
    Count(Column),
    /// `COUNT(DISTINCT col)`: the distinct non-NULL values of `col`.
    CountDistinct(Column),
    /// `SUM(col)`: the total of the non-NULL values of an integer column; NULL when there
    /// is none.
    Sum(Column),
    /// `MIN(col)`: the least non-NULL value of `col`; NULL when there is none.
    Min(Column),
    /// `MAX(col)`: the greatest non-NULL value of `col`; NULL when there is none.
    Max(Column),
    /// `AVG(col)`: the exact sum of the non-NULL values of an integer column divided by
    /// their count, as a 64-bit float; NULL when there is none.
    Avg(Column),
}

impl Aggregate {
    /// The column the aggregate reads, if any.
    pub fn column(&self) -> Option<Column> {
        match self {
            Aggregate::CountStar => None,
            Aggregate::Count(c)
            | Aggregate::CountDistinct(c)
            | Aggregate::Sum(c)
            | Aggregate::Min(c)
            | Aggregate::Max(c)
            | Aggregate::Avg(c) => Some(*c),
        }
    }

    /// The type of the aggregate's value.
    pub fn ty(&self) -> Type {
        match self {
            Aggregate::CountStar | Aggregate::Count(_) | Aggregate::CountDistinct(_) => {
                Type::Integer
            }
            Aggregate::Sum(_) => Type::Integer,
            Aggregate::Avg(_) => Type::Float,
            Aggregate::Min(c) | Aggregate::Max(c) => c.ty(),
        }
    }

    /// The name of an output column that has no alias.
    pub fn default_name(&self) -> String {
        match self {
            Aggregate::CountStar => "count".to_string(),
            Aggregate::Count(c) => format!("count_{c}"),
            Aggregate::CountDistinct(c) => format!("count_distinct_{c}"),
            Aggregate::Sum(c) => format!("sum_{c}"),
            Aggregate::Min(c) => format!("min_{c}"),
            Aggregate::Max(c) => format!("max_{c}"),
            Aggregate::Avg(c) => format!("avg_{c}"),
        }
    }
}

impl fmt::Display for Aggregate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Aggregate::CountStar => f.write_str("COUNT(*)"),
            Aggregate::Count(c) => write!(f, "COUNT({c})"),
            Aggregate::CountDistinct(c) => write!(f, "COUNT(DISTINCT {c})"),
            Aggregate::Sum(c) => write!(f, "SUM({c})"),
            Aggregate::Min(c) => write!(f, "MIN({c})"),
            Aggregate::Max(c) => write!(f, "MAX({c})"),
            Aggregate::Avg(c) => write!(f, "AVG({c})"),
        }
    }
}

/// What a HAVING condition or an ORDER BY key refers to: a grouped column or an aggregate.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Term {
    /// A column; in a query with aggregates, one of the GROUP BY columns.
    Column(Column),
    /// An aggregate over the group's records.
    Aggregate(Aggregate),
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Term::Column(c) => c.fmt(f),
            Term::Aggregate(a) => a.fmt(f),
        }
    }
}

/// One side of a comparison: a column (in WHERE) or term (in HAVING), or a literal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operand<T> {
    /// A value of the row: a record's column in WHERE, a grouped column or an aggregate in
    /// HAVING.
    Ref(T),
    /// A constant written in the query.
    Literal(Value),
}

/// The operator of a comparison in WHERE or HAVING; a comparison with NULL is unknown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompareOp {
    /// `=`.
    Eq,
    /// `<>`, also written `!=`.
    NotEq,
    /// `<`.
    Lt,
    /// `<=`.
    LtEq,
    /// `>`.
    Gt,
    /// `>=`.
    GtEq,
}

impl fmt::Display for CompareOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CompareOp::Eq => "=",
            CompareOp::NotEq => "<>",
            CompareOp::Lt => "<",
            CompareOp::LtEq => "<=",
            CompareOp::Gt => ">",
            CompareOp::GtEq => ">=",
        })
    }
}

/// A condition over the columns of a record (`T = Column`, WHERE) or the terms of a group
/// (`T = Term`, HAVING).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Predicate<T> {
    /// `left op right`: unknown when either side is NULL.
    Compare {
        /// The left-hand side; a valid plan never compares two literals.
        left: Operand<T>,
        /// The comparison (`eq`, `not_eq`, `lt`, `lt_eq`, `gt`, `gt_eq` in JSON).
        op: CompareOp,
        /// The right-hand side, of a type comparable with the left (numbers with numbers).
        right: Operand<T>,
    },
    /// `operand [NOT] IN (values…)`.
    In {
        /// The value looked for in the list.
        operand: Operand<T>,
        /// The list: at least one value and at most [`MAX_IN_VALUES`]. A NULL in the list
        /// turns a miss from false into unknown.
        values: Vec<Value>,
        /// `NOT IN`: true where IN is false and false where it is true (unknown stays
        /// unknown); false when absent from JSON.
        #[serde(default)]
        negated: bool,
    },
    /// `operand [NOT] BETWEEN low AND high` (both ends included).
    Between {
        /// The value tested.
        operand: Operand<T>,
        /// The lower bound, included.
        low: Value,
        /// The upper bound, included.
        high: Value,
        /// `NOT BETWEEN`; false when absent from JSON.
        #[serde(default)]
        negated: bool,
    },
    /// `operand [NOT] LIKE pattern`: `%` any run, `_` one character, `\` escapes the next.
    Like {
        /// The text tested; LIKE over a number or an address is a type mismatch.
        operand: Operand<T>,
        /// The pattern, matched against the whole text; it may not end in a lone `\`.
        /// Validation lowercases a pattern matched against `proto` or `status`.
        pattern: String,
        /// `NOT LIKE`; false when absent from JSON.
        #[serde(default)]
        negated: bool,
    },
    /// `operand IS [NOT] NULL`.
    IsNull {
        /// The value tested; the answer is never unknown.
        operand: Operand<T>,
        /// `IS NOT NULL`; false when absent from JSON.
        #[serde(default)]
        negated: bool,
    },
    /// `cidr_match(column, 'network/len')`: the address lies in the network.
    CidrMatch {
        /// The address tested: `src_ip` or `dst_ip`.
        operand: Operand<T>,
        /// The network as written, `addr/len` for IPv4 or IPv6 with no host bits set
        /// (checked by [`parse_network`]).
        network: String,
    },
    /// True when every part is true, false when any is false, else unknown. Holds at least
    /// one part.
    And(Vec<Predicate<T>>),
    /// True when any part is true, false when every part is false, else unknown. Holds at
    /// least one part.
    Or(Vec<Predicate<T>>),
    /// True when the inner condition is false and false when it is true; unknown stays
    /// unknown.
    Not(Box<Predicate<T>>),
}

/// Lowercases the text literals compared with a column that holds lowercase names.
fn fold_name_case<T>(predicate: &mut Predicate<T>, names: &impl Fn(&T) -> bool) {
    let is_names = |operand: &Operand<T>| matches!(operand, Operand::Ref(r) if names(r));
    let lower = |value: &mut Value| {
        if let Value::Text(text) = value {
            *text = text.to_lowercase();
        }
    };
    match predicate {
        Predicate::Compare { left, right, .. } if is_names(left) || is_names(right) => {
            for side in [left, right] {
                if let Operand::Literal(value) = side {
                    lower(value);
                }
            }
        }
        Predicate::In {
            operand, values, ..
        } if is_names(operand) => values.iter_mut().for_each(lower),
        Predicate::Between {
            operand, low, high, ..
        } if is_names(operand) => {
            lower(low);
            lower(high);
        }
        Predicate::Like {
            operand, pattern, ..
        } if is_names(operand) => *pattern = pattern.to_lowercase(),
        Predicate::And(parts) | Predicate::Or(parts) => {
            parts.iter_mut().for_each(|p| fold_name_case(p, names))
        }
        Predicate::Not(inner) => fold_name_case(inner, names),
        _ => {}
    }
}

/// One output column: a grouped column or an aggregate, with its name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SelectItem {
    /// What the column holds; in JSON `{"column": …}` or `{"aggregate": …}` beside `as`.
    #[serde(flatten)]
    pub term: Term,
    /// The output name; the column's name, or the aggregate's default name, when absent.
    #[serde(default, rename = "as", skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
}

impl SelectItem {
    /// The output column's name: the alias, else the column's name or the aggregate's
    /// default name (`count_distinct_dst_ip`).
    pub fn name(&self) -> String {
        match (&self.alias, &self.term) {
            (Some(alias), _) => alias.clone(),
            (None, Term::Column(c)) => c.name().to_string(),
            (None, Term::Aggregate(a)) => a.default_name(),
        }
    }
}

/// One ORDER BY key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderKey {
    /// What rows sort by: a column or an aggregate (SQL's output names and positions are
    /// resolved to one when parsed).
    pub term: Term,
    /// `DESC`: largest first, NULL first instead of last; ascending when absent from JSON.
    #[serde(default)]
    pub descending: bool,
}

/// A registered query, as a user wrote it (in SQL, or as this type's JSON form).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// `flows_<window>`, e.g. `flows_30m`.
    pub from: String,
    /// The output columns, in order (`SELECT *` lists every column): at least one and at
    /// most [`MAX_SELECT_ITEMS`].
    pub select: Vec<SelectItem>,
    /// WHERE, `where` in JSON: a record counts only when this is true of it.
    #[serde(default, rename = "where", skip_serializing_if = "Option::is_none")]
    pub filter: Option<Predicate<Column>>,
    /// GROUP BY: the columns whose values make a group, each listed once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub group_by: Vec<Column>,
    /// HAVING: a group is a row only when this is true of it; needs GROUP BY or an
    /// aggregate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub having: Option<Predicate<Term>>,
    /// ORDER BY, first key first; rows that tie on every key are ordered by their output
    /// columns, then their group key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub order_by: Vec<OrderKey>,
    /// LIMIT: the most rows the result keeps, the first in result order; validation
    /// refuses 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
}

/// Why a plan is not a valid query. Each message names the part of the query at fault.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PlanError {
    /// The kind of mistake; its [`as_str`](PlanErrorCode::as_str) is the stable code the
    /// HTTP API answers with.
    pub code: PlanErrorCode,
    /// What is wrong, in words for the user, naming the part of the query at fault.
    pub message: String,
}

/// The kinds of mistake a query can hold (docs/queries.md lists them with examples).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanErrorCode {
    /// GROUP BY names an aggregate, directly or by its alias or position.
    AggregateInGroupBy,
    /// An aggregate in WHERE, which sees single records; it belongs in HAVING.
    AggregateInWhere,
    /// An output name is empty.
    BadAlias,
    /// A function given the wrong arguments: `COUNT(a, b)`, `SUM(*)`, or a `cidr_match`
    /// network that is not a quoted string.
    BadArguments,
    /// A `cidr_match` network that is malformed or has host bits set (`10.0.0.1/8`).
    BadCidr,
    /// A LIMIT that is not a whole number of rows, or is 0.
    BadLimit,
    /// A numeric literal that is neither a 128-bit integer nor a finite float.
    BadNumber,
    /// A LIKE pattern that ends in a lone `\`.
    BadPattern,
    /// A JSON plan that does not have the plan's shape.
    BadPlan,
    /// `ORDER BY n` or `GROUP BY n` where fewer than n columns are selected.
    BadPosition,
    /// Two output columns with the same name; `AS` can tell them apart.
    DuplicateColumnName,
    /// A column listed twice in GROUP BY.
    DuplicateGroupBy,
    /// An AND or OR of no condition.
    EmptyCondition,
    /// `IN ()`: a list of no value.
    EmptyInList,
    /// A SELECT that lists no column.
    EmptySelect,
    /// HAVING in a query with neither GROUP BY nor an aggregate.
    HavingWithoutAggregate,
    /// An aggregate inside another: `MAX(COUNT(*))`.
    NestedAggregate,
    /// Not exactly one SELECT: another statement, several, or none.
    NotASelect,
    /// SQL that does not parse, or a SELECT without FROM.
    SyntaxError,
    /// Past the bounds on nesting, selected columns, condition parts or IN lists.
    TooComplex,
    /// Types that do not fit: comparing incompatible values, `SUM(proto)`, LIKE over an
    /// address (use `cidr_match`).
    TypeMismatch,
    /// A column in SELECT, HAVING or ORDER BY that is neither grouped nor aggregated.
    UngroupedColumn,
    /// A name that is not a column of the records, or a column of another table.
    UnknownColumn,
    /// A function that is neither an aggregate nor `cidr_match`.
    UnknownFunction,
    /// A FROM that is not `flows_<window>` for a configured window.
    UnknownTable,
    /// SQL outside the subset: joins, subqueries, CTEs, UNION, window functions, CASE,
    /// arithmetic, casts and the like.
    Unsupported,
}

impl PlanErrorCode {
    /// The stable snake_case code (`unknown_table`, `type_mismatch`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            PlanErrorCode::AggregateInGroupBy => "aggregate_in_group_by",
            PlanErrorCode::AggregateInWhere => "aggregate_in_where",
            PlanErrorCode::BadAlias => "bad_alias",
            PlanErrorCode::BadArguments => "bad_arguments",
            PlanErrorCode::BadCidr => "bad_cidr",
            PlanErrorCode::BadLimit => "bad_limit",
            PlanErrorCode::BadNumber => "bad_number",
            PlanErrorCode::BadPattern => "bad_pattern",
            PlanErrorCode::BadPlan => "bad_plan",
            PlanErrorCode::BadPosition => "bad_position",
            PlanErrorCode::DuplicateColumnName => "duplicate_column_name",
            PlanErrorCode::DuplicateGroupBy => "duplicate_group_by",
            PlanErrorCode::EmptyCondition => "empty_condition",
            PlanErrorCode::EmptyInList => "empty_in_list",
            PlanErrorCode::EmptySelect => "empty_select",
            PlanErrorCode::HavingWithoutAggregate => "having_without_aggregate",
            PlanErrorCode::NestedAggregate => "nested_aggregate",
            PlanErrorCode::NotASelect => "not_a_select",
            PlanErrorCode::SyntaxError => "syntax_error",
            PlanErrorCode::TooComplex => "too_complex",
            PlanErrorCode::TypeMismatch => "type_mismatch",
            PlanErrorCode::UngroupedColumn => "ungrouped_column",
            PlanErrorCode::UnknownColumn => "unknown_column",
            PlanErrorCode::UnknownFunction => "unknown_function",
            PlanErrorCode::UnknownTable => "unknown_table",
            PlanErrorCode::Unsupported => "unsupported",
        }
    }
}

impl fmt::Display for PlanErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PlanError {
    /// A mistake of kind `code`, explained to the user by `message`.
    pub fn new(code: PlanErrorCode, message: impl Into<String>) -> Self {
        PlanError {
            code,
            message: message.into(),
        }
    }
}

// Bounds that keep a hostile or careless plan from exhausting the validator or the engine;
// a plan past one is `too_complex`.

/// The most columns a SELECT may list, counting each column of `*`.
pub const MAX_SELECT_ITEMS: usize = 64;
/// The most parts a WHERE or a HAVING condition may have: comparisons, tests, AND, OR, NOT.
pub const MAX_PREDICATE_NODES: usize = 1_000;
/// The most values one IN list may hold.
pub const MAX_IN_VALUES: usize = 10_000;

/// A plan that [`Plan::validate`] accepted, with what the renderer needs derived from it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ValidPlan {
    /// The plan as validated, with the text literals and LIKE patterns matched against
    /// `proto` and `status` lowercased (those columns hold lowercase names).
    pub plan: Plan,
    /// The window's length, in ms.
    pub window: Millis,
    /// The window's name as configured (`30m`): the table name without `flows_`.
    pub window_name: String,
    /// The output column names, in SELECT order.
    pub columns: Vec<String>,
    /// Every aggregate the query computes (SELECT, HAVING, ORDER BY), each once, sorted.
    pub aggregates: Vec<Aggregate>,
    /// The key of a group: the GROUP BY columns, or, for a query without aggregates, the
    /// selected and ordered columns (each group then stands for `COUNT(*)` equal rows).
    pub key: Vec<Column>,
    /// Whether the query has aggregates (one row per group) or not (one row per record).
    pub aggregated: bool,
}

use flowsight_operators::Millis;

impl Plan {
    /// Checks the plan against the configured windows and derives what rendering needs.
    pub fn validate(mut self, windows: &Windows) -> Result<ValidPlan, PlanError> {
        // `proto` and `status` hold lowercase names: `proto = 'TCP'` means tcp, as it does
        // in the record formats, rather than silently matching nothing.
        let names = |c: &Column| matches!(c, Column::Proto | Column::Status);
        if let Some(filter) = &mut self.filter {
            fold_name_case(filter, &names);
        }
        if let Some(having) = &mut self.having {
            fold_name_case(having, &|t: &Term| matches!(t, Term::Column(c) if names(c)));
        }
        let window_name = self
            .from
            .strip_prefix(TABLE_PREFIX)
            .filter(|name| windows.get(name).is_some())
            .ok_or_else(|| {
                let tables: Vec<String> = windows
                    .names()
                    .iter()
                    .map(|n| format!("{TABLE_PREFIX}{n}"))
                    .collect();
                PlanError::new(
                    PlanErrorCode::UnknownTable,
                    format!(
                        "unknown table {:?}: the tables are {}",
                        self.from,
                        tables.join(", ")
                    ),
                )
            })?
            .to_string();
        let window = windows
            .get(&window_name)
            .map(|w| w.length)
            .unwrap_or_default();

        if self.select.is_empty() {
            return Err(PlanError::new(
                PlanErrorCode::EmptySelect,
                "SELECT lists no column",
            ));
        }
        if self.select.len() > MAX_SELECT_ITEMS {
            return Err(PlanError::new(
                PlanErrorCode::TooComplex,
                format!("SELECT lists more than {MAX_SELECT_ITEMS} columns"),
            ));
        }
        if self.limit == Some(0) {
            // LIMIT 0 is valid SQL, but a query that never has rows is surely a mistake.
            return Err(PlanError::new(
                PlanErrorCode::BadLimit,
                "LIMIT 0 would never return a row",
            ));
        }

        let mut aggregates = BTreeSet::new();
        for item in &self.select {
            if let Term::Aggregate(a) = &item.term {
                check_aggregate(a)?;
                aggregates.insert(a.clone());
            }
        }
        if let Some(having) = &self.having {
            let mut nodes = 0;
            check_predicate(having, &mut nodes, &mut |term| {
                if let Term::Aggregate(a) = term {
                    check_aggregate(a)?;
                    aggregates.insert(a.clone());
                }
                Ok(term_type(term))
            })?;
        }
        for key in &self.order_by {
            if let Term::Aggregate(a) = &key.term {
                check_aggregate(a)?;
                aggregates.insert(a.clone());
            }
        }
        let aggregated = !aggregates.is_empty() || !self.group_by.is_empty();

        if let Some(filter) = &self.filter {
            let mut nodes = 0;
            check_predicate(filter, &mut nodes, &mut |column| Ok(column.ty()))?;
        }
        if self.having.is_some() && !aggregated {
            return Err(PlanError::new(
                PlanErrorCode::HavingWithoutAggregate,
                "HAVING needs GROUP BY or an aggregate",
            ));
        }

        // Every column outside an aggregate must be grouped (or, without aggregates, it is
        // part of the row).
        let mut key: Vec<Column> = Vec::new();
        if aggregated {
            let mut seen = BTreeSet::new();
            for column in &self.group_by {
                if !seen.insert(*column) {
                    return Err(PlanError::new(
                        PlanErrorCode::DuplicateGroupBy,
                        format!("{column} appears twice in GROUP BY"),
                    ));
                }
            }
            key = self.group_by.clone();
            let ungrouped = |column: &Column, clause: &str| {
                PlanError::new(
                    PlanErrorCode::UngroupedColumn,
                    format!(
                        "column {column} in {clause} must appear in GROUP BY or be used in an aggregate"
                    ),
                )
            };
            for item in &self.select {
                if let Term::Column(c) = &item.term {
                    if !seen.contains(c) {
                        return Err(ungrouped(c, "SELECT"));
                    }
                }
            }
            if let Some(having) = &self.having {
                let mut result = Ok(());
                visit_refs(having, &mut |term| {
                    if let Term::Column(c) = term {
                        if !seen.contains(c) && result.is_ok() {
                            result = Err(ungrouped(c, "HAVING"));
                        }
                    }
                });
                result?;
            }
            for order in &self.order_by {
                if let Term::Column(c) = &order.term {
                    if !seen.contains(c) {
                        return Err(ungrouped(c, "ORDER BY"));
                    }
                }
            }
        } else {
            let ordered = self.order_by.iter().map(|order| &order.term);
            for term in self.select.iter().map(|item| &item.term).chain(ordered) {
                if let Term::Column(c) = term {
                    if !key.contains(c) {
                        key.push(*c);
                    }
                }
            }
        }

        let columns: Vec<String> = self.select.iter().map(SelectItem::name).collect();
        let mut names = BTreeSet::new();
        for name in &columns {
            if name.is_empty() {
                return Err(PlanError::new(
                    PlanErrorCode::BadAlias,
                    "an output name is empty",
                ));
            }
            if !names.insert(name.as_str()) {
                return Err(PlanError::new(
                    PlanErrorCode::DuplicateColumnName,
                    format!(
                        "two output columns are named {name:?}: give one a different name with AS"
                    ),
                ));
            }
        }

        Ok(ValidPlan {
            window,
            window_name,
            columns,
            aggregates: aggregates.into_iter().collect(),
            key,
            aggregated,
            plan: self,
        })
    }
}

fn term_type(term: &Term) -> Type {
    match term {
        Term::Column(c) => c.ty(),
        Term::Aggregate(a) => a.ty(),
    }
}

fn check_aggregate(aggregate: &Aggregate) -> Result<(), PlanError> {
    match aggregate {
        Aggregate::Sum(c) | Aggregate::Avg(c) if c.ty() != Type::Integer => Err(PlanError::new(
            PlanErrorCode::TypeMismatch,
            format!("{aggregate} needs a numeric column, but {c} is {}", c.ty()),
        )),
        _ => Ok(()),
    }
}

/// Calls `visit` on every column or term a predicate refers to.
fn visit_refs<T>(predicate: &Predicate<T>, visit: &mut impl FnMut(&T)) {
    let operand = |o: &Operand<T>, visit: &mut dyn FnMut(&T)| {
        if let Operand::Ref(r) = o {
            visit(r);
        }
    };
    match predicate {
        Predicate::Compare { left, right, .. } => {
            operand(left, visit);
            operand(right, visit);
        }
        Predicate::In { operand: o, .. }
        | Predicate::Between { operand: o, .. }
        | Predicate::Like { operand: o, .. }
        | Predicate::IsNull { operand: o, .. }
        | Predicate::CidrMatch { operand: o, .. } => operand(o, visit),
        Predicate::And(parts) | Predicate::Or(parts) => {
            for part in parts {
                visit_refs(part, visit);
            }
        }
        Predicate::Not(inner) => visit_refs(inner, visit),
    }
}

fn operand_type<T: fmt::Display>(
    operand: &Operand<T>,
    ty: &mut impl FnMut(&T) -> Result<Type, PlanError>,
) -> Result<Option<Type>, PlanError> {
    match operand {
        Operand::Ref(r) => ty(r).map(Some),
        Operand::Literal(v) => Ok(v.ty()),
    }
}

fn describe<T: fmt::Display>(operand: &Operand<T>) -> String {
    match operand {
        Operand::Ref(r) => r.to_string(),
        Operand::Literal(v) => v.to_string(),
    }
}

/// Whether values of types `a` and `b` can be compared.
fn comparable(a: Type, b: Type) -> bool {
    let numeric = |t| matches!(t, Type::Integer | Type::Float);
    a == b || (numeric(a) && numeric(b))
}

fn mismatch<T: fmt::Display>(
    left: &Operand<T>,
    lt: Type,
    right: &dyn fmt::Display,
    rt: Type,
) -> PlanError {
    let hint = if lt == Type::Ip && rt == Type::Text {
        " (an address literal must be a valid IPv4 or IPv6 address)"
    } else {
        ""
    };
    PlanError::new(
        PlanErrorCode::TypeMismatch,
        format!(
            "cannot compare {} ({lt}) with {right} ({rt}){hint}",
            describe(left)
        ),
    )
}

fn check_predicate<T: fmt::Display>(
    predicate: &Predicate<T>,
    nodes: &mut usize,
    ty: &mut impl FnMut(&T) -> Result<Type, PlanError>,
) -> Result<(), PlanError> {
    *nodes += 1;
    if *nodes > MAX_PREDICATE_NODES {
        return Err(PlanError::new(
            PlanErrorCode::TooComplex,
            format!("the condition has more than {MAX_PREDICATE_NODES} parts"),
        ));
    }
    let check_value = |operand: &Operand<T>, ot: Option<Type>, value: &Value| match (ot, value.ty())
    {
        (Some(a), Some(b)) if !comparable(a, b) => Err(mismatch(operand, a, value, b)),
        _ => Ok(()),
    };
    match predicate {
        Predicate::Compare { left, right, .. } => {
            let lt = operand_type(left, ty)?;
            let rt = operand_type(right, ty)?;
            if let (Some(a), Some(b)) = (lt, rt) {
                if !comparable(a, b) {
                    return Err(mismatch(left, a, &describe(right), b));
                }
            }
            if let (Operand::Literal(_), Operand::Literal(_)) = (left, right) {
                return Err(PlanError::new(
                    PlanErrorCode::Unsupported,
                    "a comparison of two literals; compare a column",
                ));
            }
            Ok(())
        }
        Predicate::In {
            operand, values, ..
        } => {
            if values.is_empty() {
                return Err(PlanError::new(
                    PlanErrorCode::EmptyInList,
                    "IN () lists no value",
                ));
            }
            if values.len() > MAX_IN_VALUES {
                return Err(PlanError::new(
                    PlanErrorCode::TooComplex,
                    format!("IN lists more than {MAX_IN_VALUES} values"),
                ));
            }
            let ot = operand_type(operand, ty)?;
            values.iter().try_for_each(|v| check_value(operand, ot, v))
        }
        Predicate::Between {
            operand, low, high, ..
        } => {
            let ot = operand_type(operand, ty)?;
            check_value(operand, ot, low)?;
            check_value(operand, ot, high)
        }
        Predicate::Like {
            operand, pattern, ..
        } => match operand_type(operand, ty)? {
            Some(Type::Text) | None => {
                // `\\` is an escaped backslash; an odd run at the end escapes nothing.
                let trailing = pattern.chars().rev().take_while(|&c| c == '\\').count();
                if trailing % 2 == 1 {
                    return Err(PlanError::new(
                        PlanErrorCode::BadPattern,
                        format!("LIKE pattern {pattern:?} ends with an escape character"),
                    ));
                }
                Ok(())
            }
            Some(Type::Ip) => Err(PlanError::new(
                PlanErrorCode::TypeMismatch,
                format!(
                    "LIKE needs text, but {} is an IP address: use cidr_match({}, 'network/len')",
                    describe(operand),
                    describe(operand)
                ),
            )),
            Some(other) => Err(PlanError::new(
                PlanErrorCode::TypeMismatch,
                format!("LIKE needs text, but {} is {other}", describe(operand)),
            )),
        },
        Predicate::IsNull { operand, .. } => operand_type(operand, ty).map(|_| ()),
        Predicate::CidrMatch { operand, network } => {
            match operand_type(operand, ty)? {
                Some(Type::Ip) => {}
                other => {
                    return Err(PlanError::new(
                        PlanErrorCode::TypeMismatch,
                        format!(
                            "cidr_match needs an IP address column, but {} is {}",
                            describe(operand),
                            other.map_or("NULL".to_string(), |t| t.to_string())
                        ),
                    ))
                }
            }
            parse_network(network).map(|_| ())
        }
        Predicate::And(parts) | Predicate::Or(parts) => {
            if parts.is_empty() {
                return Err(PlanError::new(
                    PlanErrorCode::EmptyCondition,
                    "AND / OR of no condition",
                ));
            }
            parts
                .iter()
                .try_for_each(|part| check_predicate(part, nodes, ty))
        }
        Predicate::Not(inner) => check_predicate(inner, nodes, ty),
    }
}

/// Parses the network of `cidr_match`: `addr/len` for IPv4 or IPv6. The address must be
/// the network's own (no host bits set), so that a typo is not silently widened.
pub fn parse_network(text: &str) -> Result<IpNet, PlanError> {
    let bad = |why: &str| {
        PlanError::new(
            PlanErrorCode::BadCidr,
            format!("bad CIDR {text:?} in cidr_match: {why}"),
        )
    };
    let network: IpNet = text.parse().map_err(|_| {
        bad("expected an address and a prefix length, as in '10.0.0.0/8' or 'fd00::/8'")
    })?;
    if network.trunc() != network {
        return Err(bad(&format!(
            "host bits are set; the network is {}",
            network.trunc()
        )));
    }
    Ok(network)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowsight_operators::TimeModel;

    fn windows() -> Windows {
        Windows::parse("30m,2h,24h", &TimeModel::new(1_000).unwrap()).unwrap()
    }

    fn plan(json: &str) -> Plan {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn integers_and_floats_compare_exactly() {
        use std::cmp::Ordering::*;
        let big = (1i128 << 60) + 1;
        // `big as f64` rounds down to 2^60: the float must not equal the integer.
        assert_eq!(
            Value::Int(big).sql_cmp(&Value::Float((1u64 << 60) as f64)),
            Some(Greater)
        );
        assert_eq!(
            Value::Float((1u64 << 60) as f64).sql_cmp(&Value::Int(big)),
            Some(Less)
        );
        assert_eq!(Value::Int(3).sql_cmp(&Value::Float(3.0)), Some(Equal));
        assert_eq!(Value::Int(3).sql_cmp(&Value::Float(2.5)), Some(Greater));
        assert_eq!(Value::Int(-1).sql_cmp(&Value::Float(-0.5)), Some(Less));
        assert_eq!(Value::Float(-0.0).sql_cmp(&Value::Float(0.0)), Some(Equal));
        assert_eq!(Value::Int(0).sql_cmp(&Value::Float(-0.0)), Some(Equal));
    }

    #[test]
    fn like_patterns_may_not_end_in_a_lone_escape() {
        let check = |pattern: &str| {
            let json = format!(
                r#"{{"from": "flows_2h", "select": [{{"column": "ts"}}], "where": {{"like": {{"operand": {{"ref": "proto"}}, "pattern": {}}}}}}}"#,
                serde_json::to_string(pattern).unwrap()
            );
            plan(&json)
                .validate(&windows())
                .map(|_| ())
                .map_err(|e| e.code.as_str())
        };
        assert_eq!(check("tc\\"), Err("bad_pattern"));
        assert_eq!(check("tc\\\\"), Ok(()));
        assert_eq!(check("tc\\\\\\"), Err("bad_pattern"));
        assert_eq!(check("t\\%p"), Ok(()));
    }

    #[test]
    fn the_json_form_round_trips_and_validates() {
        let text = r#"{
            "from": "flows_30m",
            "select": [
                {"column": "src_ip"},
                {"aggregate": "count_star", "as": "conns"},
                {"aggregate": {"count_distinct": "dst_ip"}, "as": "targets"},
                {"aggregate": {"sum": "bytes_out"}}
            ],
            "where": {"and": [
                {"in": {"operand": {"ref": "dst_port"}, "values": [22, 3389]}},
                {"not": {"cidr_match": {"operand": {"ref": "dst_ip"}, "network": "10.0.0.0/8"}}},
                {"compare": {"left": {"ref": "src_ip"}, "op": "not_eq", "right": {"literal": "10.1.2.3"}}},
                {"compare": {"left": {"ref": "proto"}, "op": "eq", "right": {"literal": "tcp"}}},
                {"compare": {"left": {"ref": "bytes_in"}, "op": "gt", "right": {"literal": -1}}}
            ]},
            "group_by": ["src_ip"],
            "having": {"compare": {"left": {"ref": {"aggregate": {"count_distinct": "dst_ip"}}}, "op": "gt", "right": {"literal": 5}}},
            "order_by": [{"term": {"aggregate": {"count_distinct": "dst_ip"}}, "descending": true}],
            "limit": 20
        }"#;
        let parsed = plan(text);
        let again: Plan = serde_json::from_str(&serde_json::to_string(&parsed).unwrap()).unwrap();
        assert_eq!(again, parsed);
        let Predicate::And(parts) = parsed.filter.as_ref().unwrap() else {
            panic!("not an AND");
        };
        let Predicate::Compare { right, .. } = &parts[2] else {
            panic!("not a comparison");
        };
        assert_eq!(
            right,
            &Operand::Literal(Value::Ip("10.1.2.3".parse().unwrap()))
        );
        let Predicate::Compare { right, .. } = &parts[4] else {
            panic!("not a comparison");
        };
        assert_eq!(right, &Operand::Literal(Value::Int(-1)));

        let valid = parsed.validate(&windows()).unwrap();
        assert_eq!(valid.window, 30 * 60 * 1_000);
        assert_eq!(
            valid.columns,
            ["src_ip", "conns", "targets", "sum_bytes_out"]
        );
        assert_eq!(valid.key, [Column::SrcIp]);
        assert!(valid.aggregated);
        assert_eq!(
            valid.aggregates,
            [
                Aggregate::CountStar,
                Aggregate::CountDistinct(Column::DstIp),
                Aggregate::Sum(Column::BytesOut)
            ]
        );
    }

    #[test]
    fn mistakes_are_named() {
        let code = |json: &str| plan(json).validate(&windows()).unwrap_err().code.as_str();
        assert_eq!(
            code(r#"{"from": "flows_1h", "select": [{"column": "ts"}]}"#),
            "unknown_table"
        );
        assert_eq!(
            code(
                r#"{"from": "flows_2h", "select": [{"column": "src_ip"}, {"aggregate": "count_star"}]}"#
            ),
            "ungrouped_column"
        );
        assert_eq!(
            code(r#"{"from": "flows_2h", "select": [{"aggregate": {"sum": "proto"}}]}"#),
            "type_mismatch"
        );
        assert_eq!(
            code(
                r#"{"from": "flows_2h", "select": [{"column": "ts"}], "where": {"like": {"operand": {"ref": "src_ip"}, "pattern": "10.%"}}}"#
            ),
            "type_mismatch"
        );
        assert_eq!(
            code(
                r#"{"from": "flows_2h", "select": [{"column": "ts"}], "where": {"compare": {"left": {"ref": "dst_ip"}, "op": "eq", "right": {"literal": "not-an-ip"}}}}"#
            ),
            "type_mismatch"
        );
        assert_eq!(
            code(
                r#"{"from": "flows_2h", "select": [{"column": "ts"}], "where": {"cidr_match": {"operand": {"ref": "dst_ip"}, "network": "10.0.0.1/8"}}}"#
            ),
            "bad_cidr"
        );
        assert_eq!(
            code(
                r#"{"from": "flows_2h", "select": [{"aggregate": "count_star"}, {"aggregate": "count_star"}]}"#
            ),
            "duplicate_column_name"
        );
    }

    #[test]
    fn a_query_without_aggregates_keys_by_its_selected_and_ordered_columns() {
        let valid = plan(
            r#"{"from": "flows_24h", "select": [{"column": "dst_ip"}, {"column": "src_ip"}, {"column": "dst_ip", "as": "again"}],
                "order_by": [{"term": {"column": "ts"}, "descending": true}], "limit": 5}"#,
        )
        .validate(&windows())
        .unwrap();
        assert!(!valid.aggregated);
        assert_eq!(valid.key, [Column::DstIp, Column::SrcIp, Column::Ts]);
    }
}
