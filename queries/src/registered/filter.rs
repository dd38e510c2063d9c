//! Conditions of a registered query, compiled once: WHERE over a record's fields, HAVING
//! over a group's terms.
//!
//! Compiling parses each `cidr_match` network and splits each LIKE pattern ahead of time,
//! so that a condition evaluated for every record of the window does no parsing. Both use
//! SQL's three-valued logic: `None` is unknown, and a row passes only on `Some(true)`.

use std::cmp::Ordering;

use ipnet::IpNet;

use flowsight_events::Event;

use super::row::Datum;
use crate::plan::{Column, ColumnExt, CompareOp, Operand, PlanError, Predicate, Value};

/// A compiled condition over rows whose fields `T` are looked up by the caller.
#[derive(Clone, Debug)]
pub enum Condition<T> {
    /// `left op right`: unknown when either side is NULL.
    Compare(Operand<T>, CompareOp, Operand<T>),
    /// `operand IN (values…)`, or `NOT IN` when the flag is set: true on a match, else
    /// unknown if a comparison was unknown, else false.
    In(Operand<T>, Vec<Value>, bool),
    /// `operand BETWEEN low AND high`, both ends included, or `NOT BETWEEN` when the flag
    /// is set.
    Between(Operand<T>, Value, Value, bool),
    /// `operand LIKE pattern`, or `NOT LIKE` when the flag is set; unknown unless the
    /// operand is text.
    Like(Operand<T>, Pattern, bool),
    /// `operand IS NULL`, or `IS NOT NULL` when the flag is set; never unknown.
    IsNull(Operand<T>, bool),
    /// `cidr_match(operand, network)` with its network parsed; unknown unless the operand
    /// is an address.
    Cidr(Operand<T>, IpNet),
    /// True when every part is true, false when any is false, else unknown.
    And(Vec<Condition<T>>),
    /// True when any part is true, false when every part is false, else unknown.
    Or(Vec<Condition<T>>),
    /// The inner condition negated; unknown stays unknown.
    Not(Box<Condition<T>>),
}

impl<T: Clone> Condition<T> {
    /// Compiles a validated predicate.
    pub fn compile(predicate: &Predicate<T>) -> Result<Self, PlanError> {
        Ok(match predicate {
            Predicate::Compare { left, op, right } => {
                Condition::Compare(left.clone(), *op, right.clone())
            }
            Predicate::In {
                operand,
                values,
                negated,
            } => Condition::In(operand.clone(), values.clone(), *negated),
            Predicate::Between {
                operand,
                low,
                high,
                negated,
            } => Condition::Between(operand.clone(), low.clone(), high.clone(), *negated),
            Predicate::Like {
                operand,
                pattern,
                negated,
            } => Condition::Like(operand.clone(), Pattern::new(pattern), *negated),
            Predicate::IsNull { operand, negated } => Condition::IsNull(operand.clone(), *negated),
            Predicate::CidrMatch { operand, network } => {
                Condition::Cidr(operand.clone(), crate::plan::parse_network(network)?)
            }
            Predicate::And(parts) => Condition::And(
                parts
                    .iter()
                    .map(Condition::compile)
                    .collect::<Result<_, _>>()?,
            ),
            Predicate::Or(parts) => Condition::Or(
                parts
                    .iter()
                    .map(Condition::compile)
                    .collect::<Result<_, _>>()?,
            ),
            Predicate::Not(inner) => Condition::Not(Box::new(Condition::compile(inner)?)),
        })
    }

    /// Evaluates the condition, `lookup` giving the value of each field.
    pub fn eval(&self, lookup: &impl Fn(&T) -> Value) -> Option<bool> {
        self.eval_with(lookup, &|_| None)
    }

    /// [`Condition::eval`], where `shortcut` may answer a part of the condition (any
    /// level) without the generic evaluation: `Some(answer)`, or `None` to evaluate it.
    fn eval_with(
        &self,
        lookup: &impl Fn(&T) -> Value,
        shortcut: &impl Fn(&Condition<T>) -> Option<Option<bool>>,
    ) -> Option<bool> {
        if let Some(answer) = shortcut(self) {
            return answer;
        }
        let value = |operand: &Operand<T>| match operand {
            Operand::Ref(r) => lookup(r),
            Operand::Literal(v) => v.clone(),
        };
        let negate = |result: Option<bool>, negated: bool| result.map(|b| b != negated);
        match self {
            Condition::Compare(left, op, right) => {
                let order = value(left).sql_cmp(&value(right))?;
                Some(holds(*op, order))
            }
            Condition::In(operand, values, negated) => {
                let v = value(operand);
                // `x IN (a, b)` is `x = a OR x = b`: true on a match, else unknown if any
                // comparison was unknown.
                let mut result = Some(false);
                for candidate in values {
                    match v.sql_cmp(candidate) {
                        Some(Ordering::Equal) => {
                            result = Some(true);
                            break;
                        }
                        Some(_) => {}
                        None => result = None,
                    }
                }
                negate(result, *negated)
            }
            Condition::Between(operand, low, high, negated) => {
                let v = value(operand);
                let above = v.sql_cmp(low).map(|o| o != Ordering::Less);
                let below = v.sql_cmp(high).map(|o| o != Ordering::Greater);
                negate(and(above, below), *negated)
            }
            Condition::Like(operand, pattern, negated) => match value(operand) {
                Value::Text(text) => negate(Some(pattern.matches(&text)), *negated),
                _ => None,
            },
            Condition::IsNull(operand, negated) => {
                Some((value(operand) == Value::Null) != *negated)
            }
            Condition::Cidr(operand, network) => match value(operand) {
                Value::Ip(ip) => Some(network.contains(&ip)),
                _ => None,
            },
            Condition::And(parts) => {
                // Three-valued: one false decides, unknown only if nothing is false.
                let mut result = Some(true);
                for part in parts {
                    result = and(result, part.eval_with(lookup, shortcut));
                    if result == Some(false) {
                        break;
                    }
                }
                result
            }
            Condition::Or(parts) => {
                let mut result = Some(false);
                for part in parts {
                    match part.eval_with(lookup, shortcut) {
                        Some(true) => return Some(true),
                        Some(false) => {}
                        None => result = None,
                    }
                }
                result
            }
            Condition::Not(inner) => inner.eval_with(lookup, shortcut).map(|b| !b),
        }
    }
}

impl Condition<Column> {
    /// Evaluates a WHERE over a record, as [`Condition::eval`] does; a comparison of an
    /// integer column with an integer constant (the common metric filter, `dst_port = 22`,
    /// `bytes_in > 1000`) reads the field straight from the record, without building
    /// values. The query plane evaluates every distinct WHERE for every record.
    pub fn eval_record(&self, event: &Event) -> Option<bool> {
        self.eval_with(&|c: &Column| c.value(event), &|node| {
            int_comparison(node, event)
        })
    }
}

/// The answer of `column op constant` (or `constant op column`) for an integer column, or
/// `None` when `node` is anything else.
fn int_comparison(node: &Condition<Column>, event: &Event) -> Option<Option<bool>> {
    let (column, op, constant, flipped) = match node {
        Condition::Compare(Operand::Ref(c), op, Operand::Literal(Value::Int(k))) => {
            (*c, *op, *k, false)
        }
        Condition::Compare(Operand::Literal(Value::Int(k)), op, Operand::Ref(c)) => {
            (*c, *op, *k, true)
        }
        _ => return None,
    };
    let order = match Datum::of(column, event) {
        Datum::Int(value) => value.cmp(&constant),
        // NULL compares as unknown.
        Datum::Null => return Some(None),
        // Not an integer column: the generic comparison decides.
        _ => return None,
    };
    let order = if flipped { order.reverse() } else { order };
    Some(Some(holds(op, order)))
}

/// Whether `left op right` holds, given how `left` compares with `right`.
fn holds(op: CompareOp, order: Ordering) -> bool {
    match op {
        CompareOp::Eq => order == Ordering::Equal,
        CompareOp::NotEq => order != Ordering::Equal,
        CompareOp::Lt => order == Ordering::Less,
        CompareOp::LtEq => order != Ordering::Greater,
        CompareOp::Gt => order == Ordering::Greater,
        CompareOp::GtEq => order != Ordering::Less,
    }
}

fn and(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(false), _) | (_, Some(false)) => Some(false),
        (Some(true), Some(true)) => Some(true),
        _ => None,
    }
}

/// A LIKE pattern: `%` matches any run of characters, `_` exactly one, `\` makes the next
/// character literal. The whole text must match.
#[derive(Clone, Debug)]
pub struct Pattern(Vec<Piece>);

#[derive(Clone, Debug, PartialEq)]
enum Piece {
    Char(char),
    One,
    Any,
}

impl Pattern {
    /// Splits a LIKE pattern into its pieces. A trailing lone `\` (which validation
    /// refuses) stands for itself.
    pub fn new(pattern: &str) -> Self {
        let mut pieces = Vec::new();
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            pieces.push(match c {
                '%' => Piece::Any,
                '_' => Piece::One,
                '\\' => Piece::Char(chars.next().unwrap_or('\\')),
                c => Piece::Char(c),
            });
        }
        Pattern(pieces)
    }

    /// Whether the whole of `text` matches, character by character and case-sensitively.
    pub fn matches(&self, text: &str) -> bool {
        let text: Vec<char> = text.chars().collect();
        // Classic wildcard matching with backtracking to the last `%`: linear in practice.
        let (mut p, mut t) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while t < text.len() {
            match self.0.get(p) {
                Some(Piece::Any) => {
                    star = Some((p, t));
                    p += 1;
                }
                Some(Piece::One) => {
                    p += 1;
                    t += 1;
                }
                Some(Piece::Char(c)) if *c == text[t] => {
                    p += 1;
                    t += 1;
                }
                _ => match star {
                    Some((sp, st)) => {
                        p = sp + 1;
                        t = st + 1;
                        star = Some((sp, st + 1));
                    }
                    None => return false,
                },
            }
        }
        self.0[p..].iter().all(|piece| *piece == Piece::Any)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns() {
        let like = |p: &str, t: &str| Pattern::new(p).matches(t);
        assert!(like("tcp", "tcp"));
        assert!(!like("tcp", "tcpx"));
        assert!(like("t%", "tcp"));
        assert!(like("%c%", "tcp"));
        assert!(like("_c_", "tcp"));
        assert!(!like("_c", "tcp"));
        assert!(like("%", ""));
        assert!(!like("_", ""));
        assert!(like("a\\%b", "a%b"));
        assert!(!like("a\\%b", "axb"));
        assert!(like("%a%b%", "xxaxxbxx"));
        assert!(!like("%a%b", "xxbxxa"));
    }

    /// The record's shortcut for integer comparisons answers as the generic evaluation
    /// does: every operator, both sides, NULL, and a column that is not an integer.
    #[test]
    fn a_record_is_judged_as_the_generic_evaluation_judges_it() {
        use flowsight_events::{Proto, Status};
        let event = Event {
            ts: 1_000,
            src_ip: "10.0.0.1".parse().unwrap(),
            dst_ip: "10.0.0.2".parse().unwrap(),
            src_port: 40_000,
            dst_port: 22,
            proto: Proto::Tcp,
            bytes_out: 10,
            bytes_in: 500,
            packets: 2,
            duration_ms: None,
            status: Status::Established,
        };
        let ops = [
            CompareOp::Eq,
            CompareOp::NotEq,
            CompareOp::Lt,
            CompareOp::LtEq,
            CompareOp::Gt,
            CompareOp::GtEq,
        ];
        let columns = [
            Column::DstPort,
            Column::BytesIn,
            Column::DurationMs,
            Column::SrcIp,
        ];
        for column in columns {
            for op in ops {
                for constant in [21, 22, 23, 499, 500, 501] {
                    let k = Operand::Literal(Value::Int(constant));
                    let c = Operand::Ref(column);
                    for condition in [
                        Condition::Compare(c.clone(), op, k.clone()),
                        Condition::Compare(k.clone(), op, c.clone()),
                        Condition::Not(Box::new(Condition::Compare(c.clone(), op, k.clone()))),
                        Condition::And(vec![
                            Condition::Compare(c.clone(), op, k.clone()),
                            Condition::Compare(k, op, c),
                        ]),
                    ] {
                        assert_eq!(
                            condition.eval_record(&event),
                            condition.eval(&|c: &Column| c.value(&event)),
                            "{condition:?}"
                        );
                    }
                }
            }
        }
    }
}
