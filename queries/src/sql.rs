//! The SQL form of a registered query: parsing with the `sqlparser` crate into a [`Plan`],
//! and rendering a plan back as SQL.
//!
//! Only syntax is decided here: which constructs the subset has (docs/queries.md) and which
//! column, function or aggregate each name is. Types, windows and grouping are checked by
//! [`Plan::validate`], the one validation both forms go through.
//!
//! The PostgreSQL dialect is used: it is what users of Materialize and most SQL tools
//! write, its strings take backslashes literally (so LIKE's `\` escape reaches the
//! pattern), and it quotes identifiers with double quotes.

use std::fmt::Write as _;

use sqlparser::ast::{
    self, BinaryOperator, Distinct, DuplicateTreatment, Expr, FunctionArg, FunctionArgExpr,
    FunctionArguments, GroupByExpr, LimitClause, OrderByKind, OrderBySort, SelectItem as SqlItem,
    SetExpr, Statement, TableFactor, UnaryOperator,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::{Parser, ParserError};

use crate::plan::{
    column_by_name, Aggregate, Column, CompareOp, Operand, OrderKey, Plan, PlanError,
    PlanErrorCode, Predicate, SelectItem, Term, ValidPlan, Value,
};
use crate::windows::Windows;

/// How deeply expressions may nest before the parser gives up (rather than the stack).
const RECURSION_LIMIT: usize = 64;

/// Parses one `SELECT` into a plan, not yet validated.
pub fn parse(sql: &str) -> Result<Plan, PlanError> {
    let statements = Parser::new(&PostgreSqlDialect {})
        .with_recursion_limit(RECURSION_LIMIT)
        .try_with_sql(sql)
        .and_then(|mut parser| parser.parse_statements())
        .map_err(|e| match e {
            ParserError::RecursionLimitExceeded => PlanError::new(
                PlanErrorCode::TooComplex,
                format!("the query nests more than {RECURSION_LIMIT} levels deep"),
            ),
            ParserError::ParserError(message) | ParserError::TokenizerError(message) => {
                PlanError::new(
                    PlanErrorCode::SyntaxError,
                    format!("syntax error: {message}"),
                )
            }
        })?;
    let statement = match statements.as_slice() {
        [one] => one,
        [] => {
            return Err(PlanError::new(
                PlanErrorCode::NotASelect,
                "the query is empty",
            ))
        }
        _ => {
            return Err(PlanError::new(
                PlanErrorCode::NotASelect,
                format!("a query is one SELECT statement, not {}", statements.len()),
            ))
        }
    };
    let Statement::Query(query) = statement else {
        return Err(PlanError::new(
            PlanErrorCode::NotASelect,
            format!(
                "only SELECT queries can be registered, not {}",
                first_words(statement)
            ),
        ));
    };
    query_plan(query)
}

/// Parses and validates against the configured windows.
pub fn parse_and_validate(sql: &str, windows: &Windows) -> Result<ValidPlan, PlanError> {
    parse(sql)?.validate(windows)
}

fn first_words(statement: &Statement) -> String {
    let text = statement.to_string();
    text.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

fn unsupported(what: impl std::fmt::Display) -> PlanError {
    PlanError::new(
        PlanErrorCode::Unsupported,
        format!("{what} is not supported in registered queries (see docs/queries.md)"),
    )
}

fn query_plan(query: &ast::Query) -> Result<Plan, PlanError> {
    if query.with.is_some() {
        return Err(unsupported("WITH (a common table expression)"));
    }
    if query.fetch.is_some() {
        return Err(unsupported("FETCH"));
    }
    if !query.locks.is_empty() || query.for_clause.is_some() {
        return Err(unsupported("FOR …"));
    }
    if query.settings.is_some() || query.format_clause.is_some() || !query.pipe_operators.is_empty()
    {
        return Err(unsupported("this clause"));
    }
    let select = match query.body.as_ref() {
        SetExpr::Select(select) => select,
        SetExpr::SetOperation { op, .. } => return Err(unsupported(format!("{op}"))),
        SetExpr::Query(_) => return Err(unsupported("a parenthesised subquery")),
        other => return Err(unsupported(first_line(&other.to_string()))),
    };
    let from = table(select)?;
    check_select_clauses(select)?;

    let mut items = Vec::new();
    for item in &select.projection {
        match item {
            SqlItem::Wildcard(options) => {
                if options.to_string().trim() != "" {
                    return Err(unsupported(format!("* {options}")));
                }
                items.extend(Column::ALL.iter().map(|c| SelectItem {
                    term: Term::Column(*c),
                    alias: None,
                }));
            }
            SqlItem::UnnamedExpr(expr) => items.push(SelectItem {
                term: term(expr, &from)?,
                alias: None,
            }),
            SqlItem::ExprWithAlias { expr, alias } => items.push(SelectItem {
                term: term(expr, &from)?,
                alias: Some(alias.value.clone()),
            }),
            other => return Err(unsupported(format!("the select item {other}"))),
        }
    }

    let filter = select
        .selection
        .as_ref()
        .map(|expr| predicate(expr, &Clause::Where, &from))
        .transpose()?;

    let group_by = match &select.group_by {
        GroupByExpr::Expressions(exprs, modifiers) => {
            if !modifiers.is_empty() {
                return Err(unsupported("GROUP BY … WITH"));
            }
            exprs
                .iter()
                .map(|expr| group_column(expr, &items, &from))
                .collect::<Result<Vec<_>, _>>()?
        }
        GroupByExpr::All(_) => return Err(unsupported("GROUP BY ALL")),
    };

    let having = select
        .having
        .as_ref()
        .map(|expr| predicate(expr, &Clause::Having, &from))
        .transpose()?;

    let mut order_by = Vec::new();
    if let Some(order) = &query.order_by {
        if order.interpolate.is_some() {
            return Err(unsupported("INTERPOLATE"));
        }
        let OrderByKind::Expressions(keys) = &order.kind else {
            return Err(unsupported("ORDER BY ALL"));
        };
        for key in keys {
            if key.with_fill.is_some() {
                return Err(unsupported("WITH FILL"));
            }
            if key.options.nulls_first.is_some() {
                return Err(unsupported(
                    "NULLS FIRST / LAST (NULL sorts after every value ascending, first descending)",
                ));
            }
            let descending = match &key.options.sort {
                None | Some(OrderBySort::Asc) => false,
                Some(OrderBySort::Desc) => true,
                Some(_) => return Err(unsupported("ORDER BY … USING")),
            };
            order_by.push(OrderKey {
                term: order_term(&key.expr, &items, &from)?,
                descending,
            });
        }
    }

    let limit = match &query.limit_clause {
        None => None,
        Some(LimitClause::LimitOffset {
            limit,
            offset,
            limit_by,
        }) => {
            if offset.is_some() {
                return Err(unsupported("OFFSET"));
            }
            if !limit_by.is_empty() {
                return Err(unsupported("LIMIT BY"));
            }
            limit.as_ref().map(limit_value).transpose()?
        }
        Some(LimitClause::OffsetCommaLimit { .. }) => return Err(unsupported("LIMIT offset, n")),
    };

    Ok(Plan {
        from,
        select: items,
        filter,
        group_by,
        having,
        order_by,
        limit,
    })
}

fn first_line(text: &str) -> String {
    text.lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(60)
        .collect()
}

/// The one table of FROM.
fn table(select: &ast::Select) -> Result<String, PlanError> {
    let [from] = select.from.as_slice() else {
        return Err(if select.from.is_empty() {
            PlanError::new(
                PlanErrorCode::SyntaxError,
                "the query needs FROM flows_<window>",
            )
        } else {
            unsupported("reading several tables")
        });
    };
    if !from.joins.is_empty() {
        return Err(unsupported("JOIN"));
    }
    match &from.relation {
        TableFactor::Table {
            name, args: None, ..
        } => Ok(name.to_string()),
        TableFactor::Derived { .. } => Err(unsupported("a subquery in FROM")),
        TableFactor::Table { .. } => Err(unsupported("a table function")),
        other => Err(unsupported(format!(
            "FROM {}",
            first_line(&other.to_string())
        ))),
    }
}

fn check_select_clauses(select: &ast::Select) -> Result<(), PlanError> {
    match &select.distinct {
        None | Some(Distinct::All) => {}
        Some(Distinct::Distinct) => {
            return Err(unsupported(
                "SELECT DISTINCT (GROUP BY the same columns gives the distinct rows)",
            ))
        }
        Some(_) => return Err(unsupported("DISTINCT ON")),
    }
    let unsupported_clause = [
        (select.top.is_some(), "TOP"),
        (select.into.is_some(), "SELECT INTO"),
        (!select.lateral_views.is_empty(), "LATERAL VIEW"),
        (select.prewhere.is_some(), "PREWHERE"),
        (!select.connect_by.is_empty(), "CONNECT BY"),
        (!select.cluster_by.is_empty(), "CLUSTER BY"),
        (!select.distribute_by.is_empty(), "DISTRIBUTE BY"),
        (!select.sort_by.is_empty(), "SORT BY"),
        (!select.named_window.is_empty(), "WINDOW (window functions)"),
        (select.qualify.is_some(), "QUALIFY"),
        (select.exclude.is_some(), "EXCLUDE"),
    ];
    match unsupported_clause.iter().find(|(present, _)| *present) {
        Some((_, what)) => Err(unsupported(what)),
        None => Ok(()),
    }
}

/// Where an expression appears, which decides what it may refer to.
enum Clause {
    Where,
    Having,
}

/// A column name, with a suggestion when it is close to one.
fn column_named(name: &str) -> Result<Column, PlanError> {
    column_by_name(name).ok_or_else(|| {
        let suggestion = Column::ALL
            .iter()
            .map(|c| (edit_distance(&name.to_lowercase(), c.name()), c.name()))
            .min()
            .filter(|(distance, _)| *distance <= 2)
            .map(|(_, c)| format!(" (did you mean {c}?)"))
            .unwrap_or_default();
        let columns: Vec<&str> = Column::ALL.iter().map(|c| c.name()).collect();
        PlanError::new(
            PlanErrorCode::UnknownColumn,
            format!(
                "unknown column {name:?}{suggestion}; the columns are {}",
                columns.join(", ")
            ),
        )
    })
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let current = row[j + 1];
            row[j + 1] = (previous + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(current + 1);
            previous = current;
        }
    }
    row[b.len()]
}

/// The column an identifier names (`col`, or `table.col` with the query's table).
fn column_ref(expr: &Expr, table: &str) -> Result<Option<Column>, PlanError> {
    match expr {
        Expr::Identifier(ident) => column_named(&ident.value).map(Some),
        Expr::CompoundIdentifier(parts) => match parts.as_slice() {
            [qualifier, ident] if qualifier.value.eq_ignore_ascii_case(table) => {
                column_named(&ident.value).map(Some)
            }
            _ => Err(PlanError::new(
                PlanErrorCode::UnknownColumn,
                format!("unknown column {expr}: the query reads only {table}"),
            )),
        },
        Expr::Nested(inner) => column_ref(inner, table),
        _ => Ok(None),
    }
}

const AGGREGATES: [&str; 5] = ["count", "sum", "min", "max", "avg"];

fn function_name(function: &ast::Function) -> String {
    function.name.to_string().to_lowercase()
}

fn is_aggregate_call(expr: &Expr) -> bool {
    matches!(expr, Expr::Function(f) if AGGREGATES.contains(&function_name(f).as_str()))
}

/// A function argument's expression, when it is a plain one (not named, not `*`).
fn unnamed_expr(arg: &FunctionArg) -> Option<&Expr> {
    match arg {
        FunctionArg::Unnamed(FunctionArgExpr::Expr(expr)) => Some(expr),
        _ => None,
    }
}

/// Whether an aggregate call hides anywhere inside an expression (for WHERE and GROUP BY).
fn contains_aggregate(expr: &Expr) -> bool {
    match expr {
        Expr::Function(_) if is_aggregate_call(expr) => true,
        Expr::BinaryOp { left, right, .. } => contains_aggregate(left) || contains_aggregate(right),
        Expr::UnaryOp { expr, .. }
        | Expr::Nested(expr)
        | Expr::IsNull(expr)
        | Expr::IsNotNull(expr) => contains_aggregate(expr),
        Expr::InList { expr, list, .. } => {
            contains_aggregate(expr) || list.iter().any(contains_aggregate)
        }
        Expr::Between {
            expr, low, high, ..
        } => contains_aggregate(expr) || contains_aggregate(low) || contains_aggregate(high),
        Expr::Like { expr, pattern, .. } => contains_aggregate(expr) || contains_aggregate(pattern),
        Expr::Function(f) => function_args(f)
            .map(|args| {
                args.iter()
                    .any(|a| unnamed_expr(a).is_some_and(contains_aggregate))
            })
            .unwrap_or(false),
        _ => false,
    }
}

fn function_args(function: &ast::Function) -> Option<&Vec<FunctionArg>> {
    match &function.args {
        FunctionArguments::List(list) => Some(&list.args),
        _ => None,
    }
}

/// A SELECT, HAVING or ORDER BY term: a column or an aggregate call.
fn term(expr: &Expr, table: &str) -> Result<Term, PlanError> {
    if let Some(column) = column_ref(expr, table)? {
        return Ok(Term::Column(column));
    }
    match expr {
        Expr::Function(function) => aggregate(function, table).map(Term::Aggregate),
        Expr::Nested(inner) => term(inner, table),
        other => Err(not_a_term(other)),
    }
}

fn not_a_term(expr: &Expr) -> PlanError {
    match expr {
        Expr::BinaryOp { .. } | Expr::UnaryOp { .. } => unsupported(format!(
            "the expression {expr} (arithmetic and operators in SELECT)"
        )),
        Expr::Value(_) => unsupported(format!("the constant {expr} as a column")),
        Expr::Case { .. } => unsupported("CASE"),
        Expr::Cast { .. } => unsupported("CAST"),
        Expr::Subquery(_) | Expr::Exists { .. } => unsupported("a subquery"),
        other => unsupported(format!("the expression {other}")),
    }
}

fn aggregate(function: &ast::Function, table: &str) -> Result<Aggregate, PlanError> {
    let name = function_name(function);
    // A window function is refused as one, whatever its name (ROW_NUMBER, RANK, …).
    if function.over.is_some() {
        return Err(unsupported("a window function (OVER)"));
    }
    if !AGGREGATES.contains(&name.as_str()) {
        return Err(if name == "cidr_match" {
            PlanError::new(
                PlanErrorCode::BadArguments,
                "cidr_match(column, 'network/len') is a condition, for WHERE or HAVING",
            )
        } else {
            PlanError::new(
                PlanErrorCode::UnknownFunction,
                format!(
                    "unknown function {name}(); the aggregates are COUNT, SUM, MIN, MAX and AVG, and cidr_match(column, 'network/len') is a condition"
                ),
            )
        });
    }
    if function.filter.is_some() {
        return Err(unsupported("FILTER on an aggregate"));
    }
    if !function.within_group.is_empty() || function.null_treatment.is_some() {
        return Err(unsupported(format!("{function}")));
    }
    let FunctionArguments::List(list) = &function.args else {
        return Err(PlanError::new(
            PlanErrorCode::BadArguments,
            format!("{name} needs an argument: {}(column)", name.to_uppercase()),
        ));
    };
    if !list.clauses.is_empty() {
        return Err(unsupported(format!("{function}")));
    }
    let distinct = match list.duplicate_treatment {
        None | Some(DuplicateTreatment::All) => false,
        Some(DuplicateTreatment::Distinct) => true,
    };
    let [argument] = list.args.as_slice() else {
        return Err(PlanError::new(
            PlanErrorCode::BadArguments,
            format!("{function}: {} takes one argument", name.to_uppercase()),
        ));
    };
    let column = match argument {
        FunctionArg::Unnamed(FunctionArgExpr::Wildcard) => {
            return if name == "count" && !distinct {
                Ok(Aggregate::CountStar)
            } else {
                Err(PlanError::new(
                    PlanErrorCode::BadArguments,
                    format!("{function}: only COUNT(*) takes *"),
                ))
            };
        }
        FunctionArg::Unnamed(FunctionArgExpr::Expr(expr)) => {
            if contains_aggregate(expr) {
                return Err(PlanError::new(
                    PlanErrorCode::NestedAggregate,
                    format!("{function}: an aggregate cannot contain another"),
                ));
            }
            column_ref(expr, table)?.ok_or_else(|| {
                unsupported(format!(
                    "{function}: aggregates take a column, not an expression"
                ))
            })?
        }
        _ => {
            return Err(PlanError::new(
                PlanErrorCode::BadArguments,
                format!("{function}: aggregates take a column"),
            ))
        }
    };
    match (name.as_str(), distinct) {
        ("count", false) => Ok(Aggregate::Count(column)),
        ("count", true) => Ok(Aggregate::CountDistinct(column)),
        (_, true) => Err(unsupported(format!(
            "{} over DISTINCT values (only COUNT(DISTINCT …))",
            name.to_uppercase()
        ))),
        ("sum", false) => Ok(Aggregate::Sum(column)),
        ("min", false) => Ok(Aggregate::Min(column)),
        ("max", false) => Ok(Aggregate::Max(column)),
        _ => Ok(Aggregate::Avg(column)),
    }
}

/// A GROUP BY item: a column, the position of a selected column, or the alias of one.
fn group_column(expr: &Expr, items: &[SelectItem], table: &str) -> Result<Column, PlanError> {
    if contains_aggregate(expr) {
        return Err(PlanError::new(
            PlanErrorCode::AggregateInGroupBy,
            format!("GROUP BY {expr}: aggregates cannot be grouped by"),
        ));
    }
    let selected = match selected_item(expr, items)? {
        Some(item) => match &item.term {
            Term::Column(c) => return Ok(*c),
            Term::Aggregate(a) => {
                return Err(PlanError::new(
                    PlanErrorCode::AggregateInGroupBy,
                    format!("GROUP BY {expr} refers to the aggregate {a}"),
                ))
            }
        },
        None => column_ref(expr, table)?,
    };
    selected.ok_or_else(|| unsupported(format!("GROUP BY {expr} (group by columns)")))
}

/// The select item an ORDER BY or GROUP BY expression names by position or by alias.
fn selected_item<'a>(
    expr: &Expr,
    items: &'a [SelectItem],
) -> Result<Option<&'a SelectItem>, PlanError> {
    match expr {
        Expr::Value(value) => match &value.value {
            ast::Value::Number(text, _) => {
                let position: usize = text.parse().map_err(|_| {
                    PlanError::new(
                        PlanErrorCode::BadPosition,
                        format!("{text} is not a column position"),
                    )
                })?;
                items
                    .get(position.wrapping_sub(1))
                    .map(Some)
                    .ok_or_else(|| {
                        PlanError::new(
                            PlanErrorCode::BadPosition,
                            format!(
                                "position {position} is not one of the {} selected columns",
                                items.len()
                            ),
                        )
                    })
            }
            _ => Ok(None),
        },
        Expr::Identifier(ident) => Ok(items
            .iter()
            .find(|item| item.alias.as_deref() == Some(ident.value.as_str()))),
        _ => Ok(None),
    }
}

fn order_term(expr: &Expr, items: &[SelectItem], table: &str) -> Result<Term, PlanError> {
    match selected_item(expr, items)? {
        Some(item) => Ok(item.term.clone()),
        None => term(expr, table),
    }
}

fn limit_value(expr: &Expr) -> Result<u64, PlanError> {
    let bad = || {
        PlanError::new(
            PlanErrorCode::BadLimit,
            format!("LIMIT {expr}: the limit is a whole number of rows"),
        )
    };
    match expr {
        Expr::Value(value) => match &value.value {
            ast::Value::Number(text, _) => text.parse().map_err(|_| bad()),
            _ => Err(bad()),
        },
        _ => Err(bad()),
    }
}

/// A literal value.
fn literal(expr: &Expr) -> Result<Option<Value>, PlanError> {
    Ok(Some(match expr {
        Expr::Value(value) => match &value.value {
            ast::Value::Number(text, _) => number(text, false)?,
            ast::Value::SingleQuotedString(text) => text
                .parse()
                .map_or_else(|_| Value::Text(text.clone()), Value::Ip),
            ast::Value::Null => Value::Null,
            ast::Value::Boolean(_) => return Err(unsupported(format!("the constant {expr}"))),
            _ => return Err(unsupported(format!("the literal {expr}"))),
        },
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr: inner,
        } => match inner.as_ref() {
            Expr::Value(value) => match &value.value {
                ast::Value::Number(text, _) => number(text, true)?,
                _ => return Err(unsupported(format!("the expression {expr}"))),
            },
            _ => return Ok(None),
        },
        Expr::UnaryOp {
            op: UnaryOperator::Plus,
            expr: inner,
        } => return literal(inner),
        Expr::Nested(inner) => return literal(inner),
        _ => return Ok(None),
    }))
}

fn number(text: &str, negative: bool) -> Result<Value, PlanError> {
    let signed = if negative {
        format!("-{text}")
    } else {
        text.to_string()
    };
    if let Ok(int) = signed.parse::<i128>() {
        return Ok(Value::Int(int));
    }
    signed
        .parse::<f64>()
        .ok()
        .filter(|x| x.is_finite())
        .map(Value::Float)
        .ok_or_else(|| {
            PlanError::new(
                PlanErrorCode::BadNumber,
                format!("{signed} is not a number we can use"),
            )
        })
}

/// What a WHERE or HAVING operand refers to.
trait Reference: Sized {
    fn from_expr(expr: &Expr, clause: &Clause, table: &str) -> Result<Self, PlanError>;
}

impl Reference for Column {
    fn from_expr(expr: &Expr, _clause: &Clause, table: &str) -> Result<Self, PlanError> {
        if is_aggregate_call(expr) {
            return Err(PlanError::new(
                PlanErrorCode::AggregateInWhere,
                format!("{expr}: aggregates are not allowed in WHERE; use HAVING"),
            ));
        }
        match column_ref(expr, table)? {
            Some(column) => Ok(column),
            None => match expr {
                Expr::Function(function) => Err(aggregate(function, table)
                    .err()
                    .unwrap_or_else(|| unsupported(format!("{expr}")))),
                other => Err(not_a_term(other)),
            },
        }
    }
}

impl Reference for Term {
    fn from_expr(expr: &Expr, _clause: &Clause, table: &str) -> Result<Self, PlanError> {
        term(expr, table)
    }
}

fn operand<T: Reference>(
    expr: &Expr,
    clause: &Clause,
    table: &str,
) -> Result<Operand<T>, PlanError> {
    match literal(expr)? {
        Some(value) => Ok(Operand::Literal(value)),
        None => T::from_expr(expr, clause, table).map(Operand::Ref),
    }
}

fn literal_value(expr: &Expr) -> Result<Value, PlanError> {
    literal(expr)?.ok_or_else(|| {
        unsupported(format!(
            "{expr} in a list or range (values there are constants)"
        ))
    })
}

fn string_literal(expr: &Expr, what: &str) -> Result<String, PlanError> {
    match expr {
        Expr::Value(value) => match &value.value {
            ast::Value::SingleQuotedString(text) => Ok(text.clone()),
            _ => Err(PlanError::new(
                PlanErrorCode::BadArguments,
                format!("{what} must be a quoted string, not {expr}"),
            )),
        },
        _ => Err(PlanError::new(
            PlanErrorCode::BadArguments,
            format!("{what} must be a quoted string, not {expr}"),
        )),
    }
}

fn predicate<T: Reference>(
    expr: &Expr,
    clause: &Clause,
    table: &str,
) -> Result<Predicate<T>, PlanError> {
    Ok(match expr {
        Expr::Nested(inner) => predicate(inner, clause, table)?,
        Expr::BinaryOp { left, op, right } => {
            let compare = |op| -> Result<Predicate<T>, PlanError> {
                Ok(Predicate::Compare {
                    left: operand(left, clause, table)?,
                    op,
                    right: operand(right, clause, table)?,
                })
            };
            match op {
                BinaryOperator::And | BinaryOperator::Or => {
                    // `a AND b AND c` is one AND of three (parentheses keep their own).
                    let mut parts = Vec::new();
                    flatten(expr, op, &mut parts);
                    let parts = parts
                        .into_iter()
                        .map(|part| predicate(part, clause, table))
                        .collect::<Result<Vec<_>, _>>()?;
                    if *op == BinaryOperator::And {
                        Predicate::And(parts)
                    } else {
                        Predicate::Or(parts)
                    }
                }
                BinaryOperator::Eq => compare(CompareOp::Eq)?,
                BinaryOperator::NotEq => compare(CompareOp::NotEq)?,
                BinaryOperator::Lt => compare(CompareOp::Lt)?,
                BinaryOperator::LtEq => compare(CompareOp::LtEq)?,
                BinaryOperator::Gt => compare(CompareOp::Gt)?,
                BinaryOperator::GtEq => compare(CompareOp::GtEq)?,
                other => return Err(unsupported(format!("the operator {other}"))),
            }
        }
        Expr::UnaryOp {
            op: UnaryOperator::Not,
            expr: inner,
        } => Predicate::Not(Box::new(predicate(inner, clause, table)?)),
        Expr::InList {
            expr: inner,
            list,
            negated,
        } => Predicate::In {
            operand: operand(inner, clause, table)?,
            values: list.iter().map(literal_value).collect::<Result<_, _>>()?,
            negated: *negated,
        },
        Expr::InSubquery { .. }
        | Expr::InUnnest { .. }
        | Expr::Exists { .. }
        | Expr::Subquery(_) => return Err(unsupported("a subquery")),
        Expr::Between {
            expr: inner,
            negated,
            low,
            high,
        } => Predicate::Between {
            operand: operand(inner, clause, table)?,
            low: literal_value(low)?,
            high: literal_value(high)?,
            negated: *negated,
        },
        Expr::Like {
            negated,
            any,
            expr: inner,
            pattern,
            escape_char,
        } => {
            if *any {
                return Err(unsupported("LIKE ANY"));
            }
            if escape_char.is_some() {
                return Err(unsupported("LIKE … ESCAPE (the escape character is \\)"));
            }
            Predicate::Like {
                operand: operand(inner, clause, table)?,
                pattern: string_literal(pattern, "a LIKE pattern")?,
                negated: *negated,
            }
        }
        Expr::ILike { .. } => return Err(unsupported("ILIKE")),
        Expr::SimilarTo { .. } | Expr::RLike { .. } => {
            return Err(unsupported("regular expressions"))
        }
        Expr::IsNull(inner) => Predicate::IsNull {
            operand: operand(inner, clause, table)?,
            negated: false,
        },
        Expr::IsNotNull(inner) => Predicate::IsNull {
            operand: operand(inner, clause, table)?,
            negated: true,
        },
        Expr::Function(function) if function_name(function) == "cidr_match" => {
            let args = function_args(function).ok_or_else(|| {
                PlanError::new(
                    PlanErrorCode::BadArguments,
                    "cidr_match(column, 'network/len')",
                )
            })?;
            let exprs: Vec<Option<&Expr>> = args.iter().map(unnamed_expr).collect();
            let [Some(column), Some(network)] = exprs[..] else {
                return Err(PlanError::new(
                    PlanErrorCode::BadArguments,
                    format!(
                        "{function}: cidr_match takes a column and a network, as in \
                         cidr_match(dst_ip, '10.0.0.0/8')"
                    ),
                ));
            };
            Predicate::CidrMatch {
                operand: Operand::Ref(T::from_expr(column, clause, table)?),
                network: string_literal(network, "the network of cidr_match")?,
            }
        }
        Expr::Function(function) => {
            if let (Clause::Where, true) = (clause, is_aggregate_call(expr)) {
                return Err(PlanError::new(
                    PlanErrorCode::AggregateInWhere,
                    format!("{expr}: aggregates are not allowed in WHERE; use HAVING"),
                ));
            }
            return Err(match aggregate(function, table) {
                Err(error) => error,
                Ok(_) => unsupported(format!("{expr} alone as a condition; compare it")),
            });
        }
        Expr::Value(_) => return Err(unsupported(format!("the constant condition {expr}"))),
        Expr::Identifier(_) | Expr::CompoundIdentifier(_) => {
            return Err(unsupported(format!(
                "the column {expr} alone as a condition; compare it"
            )))
        }
        Expr::Case { .. } => return Err(unsupported("CASE")),
        Expr::Cast { .. } => return Err(unsupported("CAST")),
        other => return Err(unsupported(format!("the condition {other}"))),
    })
}

/// Collects the operands of a chain of one operator, without looking into parentheses.
fn flatten<'a>(expr: &'a Expr, operator: &BinaryOperator, parts: &mut Vec<&'a Expr>) {
    match expr {
        Expr::BinaryOp { left, op, right } if op == operator => {
            flatten(left, operator, parts);
            flatten(right, operator, parts);
        }
        other => parts.push(other),
    }
}

// ---------------------------------------------------------------------------------------------
// Back to SQL
// ---------------------------------------------------------------------------------------------

/// Renders a plan as SQL that [`parse`] reads back as the same plan.
pub fn to_sql(plan: &Plan) -> String {
    let mut sql = String::from("SELECT ");
    let items: Vec<String> = plan
        .select
        .iter()
        .map(|item| {
            let mut text = term_sql(&item.term);
            if let Some(alias) = &item.alias {
                let _ = write!(text, " AS {}", identifier(alias));
            }
            text
        })
        .collect();
    sql.push_str(&items.join(", "));
    let _ = write!(sql, " FROM {}", identifier(&plan.from));
    if let Some(filter) = &plan.filter {
        let _ = write!(
            sql,
            " WHERE {}",
            predicate_sql(filter, &|c: &Column| c.name().to_string())
        );
    }
    if !plan.group_by.is_empty() {
        let columns: Vec<&str> = plan.group_by.iter().map(|c| c.name()).collect();
        let _ = write!(sql, " GROUP BY {}", columns.join(", "));
    }
    if let Some(having) = &plan.having {
        let _ = write!(sql, " HAVING {}", predicate_sql(having, &term_sql));
    }
    if !plan.order_by.is_empty() {
        let keys: Vec<String> = plan
            .order_by
            .iter()
            .map(|k| {
                format!(
                    "{}{}",
                    term_sql(&k.term),
                    if k.descending { " DESC" } else { "" }
                )
            })
            .collect();
        let _ = write!(sql, " ORDER BY {}", keys.join(", "));
    }
    if let Some(limit) = plan.limit {
        let _ = write!(sql, " LIMIT {limit}");
    }
    sql
}

/// An identifier, quoted unless it is a plain lowercase name that is not a keyword.
fn identifier(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !is_keyword(name);
    if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

fn is_keyword(name: &str) -> bool {
    let upper = name.to_uppercase();
    sqlparser::keywords::ALL_KEYWORDS
        .binary_search(&upper.as_str())
        .is_ok()
}

fn term_sql(term: &Term) -> String {
    match term {
        Term::Column(c) => c.name().to_string(),
        Term::Aggregate(a) => a.to_string(),
    }
}

fn value_sql(value: &Value) -> String {
    match value {
        Value::Float(x) => format!("{x:?}"),
        other => other.to_string(),
    }
}

fn operand_sql<T>(operand: &Operand<T>, name: &dyn Fn(&T) -> String) -> String {
    match operand {
        Operand::Ref(r) => name(r),
        Operand::Literal(v) => value_sql(v),
    }
}

fn predicate_sql<T>(predicate: &Predicate<T>, name: &dyn Fn(&T) -> String) -> String {
    let not = |negated: &bool| if *negated { "NOT " } else { "" };
    // Every nested AND, OR and NOT is parenthesised, so that the plan's shape comes back.
    let part = |p: &Predicate<T>| match p {
        Predicate::And(_) | Predicate::Or(_) | Predicate::Not(_) => {
            format!("({})", predicate_sql(p, name))
        }
        _ => predicate_sql(p, name),
    };
    match predicate {
        Predicate::Compare { left, op, right } => format!(
            "{} {op} {}",
            operand_sql(left, name),
            operand_sql(right, name)
        ),
        Predicate::In {
            operand,
            values,
            negated,
        } => format!(
            "{} {}IN ({})",
            operand_sql(operand, name),
            not(negated),
            values.iter().map(value_sql).collect::<Vec<_>>().join(", ")
        ),
        Predicate::Between {
            operand,
            low,
            high,
            negated,
        } => format!(
            "{} {}BETWEEN {} AND {}",
            operand_sql(operand, name),
            not(negated),
            value_sql(low),
            value_sql(high)
        ),
        Predicate::Like {
            operand,
            pattern,
            negated,
        } => format!(
            "{} {}LIKE {}",
            operand_sql(operand, name),
            not(negated),
            Value::Text(pattern.clone())
        ),
        Predicate::IsNull { operand, negated } => {
            format!("{} IS {}NULL", operand_sql(operand, name), not(negated))
        }
        Predicate::CidrMatch { operand, network } => format!(
            "cidr_match({}, {})",
            operand_sql(operand, name),
            Value::Text(network.clone())
        ),
        Predicate::And(parts) => parts.iter().map(part).collect::<Vec<_>>().join(" AND "),
        Predicate::Or(parts) => parts.iter().map(part).collect::<Vec<_>>().join(" OR "),
        Predicate::Not(inner) => format!("NOT {}", part(inner)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::ColumnExt;
    use flowsight_operators::TimeModel;

    fn windows() -> Windows {
        Windows::parse("30m,2h,24h", &TimeModel::new(1_000).unwrap()).unwrap()
    }

    /// Regression: `proto = 'TCP'` was accepted and matched nothing, records holding
    /// lowercase names.
    #[test]
    fn protocol_and_status_names_ignore_case() {
        use crate::registered::filter::Condition;
        use flowsight_events::{Event, Proto, Status};
        let event = Event {
            ts: 1,
            src_ip: "10.0.0.1".parse().unwrap(),
            dst_ip: "10.0.0.2".parse().unwrap(),
            src_port: 1,
            dst_port: 2,
            proto: Proto::Tcp,
            bytes_out: 0,
            bytes_in: 0,
            packets: 0,
            duration_ms: None,
            status: Status::Reset,
        };
        for condition in [
            "proto = 'TCP'",
            "'Tcp' = proto",
            "proto IN ('UDP', 'TCP')",
            "proto LIKE 'T%'",
            "status = 'RESET' AND NOT status = 'Established'",
            "proto BETWEEN 'T' AND 'TCP'",
        ] {
            let sql = format!("SELECT COUNT(*) FROM flows_30m WHERE {condition}");
            let valid = parse_and_validate(&sql, &windows()).unwrap();
            let filter = Condition::compile(valid.plan.filter.as_ref().unwrap()).unwrap();
            assert_eq!(
                filter.eval(&|column: &Column| column.value(&event)),
                Some(true),
                "{condition}"
            );
        }
    }

    const EXAMPLE: &str = "SELECT src_ip, COUNT(*) AS conns, COUNT(DISTINCT dst_ip) AS targets, \
        SUM(bytes_out) AS bytes FROM flows_30m WHERE dst_port IN (22, 3389) AND NOT \
        cidr_match(dst_ip, '10.0.0.0/8') GROUP BY src_ip HAVING COUNT(DISTINCT dst_ip) > 5 \
        ORDER BY targets DESC LIMIT 20";

    #[test]
    fn the_issue_example_parses_into_its_plan_and_back() {
        let plan = parse(EXAMPLE).unwrap();
        let expected: Plan = serde_json::from_str(
            r#"{
            "from": "flows_30m",
            "select": [
                {"column": "src_ip"},
                {"aggregate": "count_star", "as": "conns"},
                {"aggregate": {"count_distinct": "dst_ip"}, "as": "targets"},
                {"aggregate": {"sum": "bytes_out"}, "as": "bytes"}
            ],
            "where": {"and": [
                {"in": {"operand": {"ref": "dst_port"}, "values": [22, 3389]}},
                {"not": {"cidr_match": {"operand": {"ref": "dst_ip"}, "network": "10.0.0.0/8"}}}
            ]},
            "group_by": ["src_ip"],
            "having": {"compare": {"left": {"ref": {"aggregate": {"count_distinct": "dst_ip"}}}, "op": "gt", "right": {"literal": 5}}},
            "order_by": [{"term": {"aggregate": {"count_distinct": "dst_ip"}}, "descending": true}],
            "limit": 20
        }"#,
        )
        .unwrap();
        assert_eq!(plan, expected);
        assert_eq!(parse(&to_sql(&plan)).unwrap(), plan, "{}", to_sql(&plan));
        plan.validate(&windows()).unwrap();
    }

    #[test]
    fn mistakes_get_their_codes() {
        let code = |sql: &str| {
            parse_and_validate(sql, &windows())
                .unwrap_err()
                .code
                .as_str()
        };
        for (sql, expected) in [
            ("SELECT srcip FROM flows_30m", "unknown_column"),
            (
                "SELECT median(bytes_out) FROM flows_30m",
                "unknown_function",
            ),
            (
                "SELECT COUNT(*) FROM flows_30m WHERE COUNT(*) > 2",
                "aggregate_in_where",
            ),
            ("SELECT src_ip, COUNT(*) FROM flows_30m", "ungrouped_column"),
            (
                "SELECT * FROM flows_30m a JOIN flows_2h b ON a.ts = b.ts",
                "unsupported",
            ),
            (
                "SELECT COUNT(*) FROM (SELECT * FROM flows_30m)",
                "unsupported",
            ),
            ("SELECT COUNT(*) OVER () FROM flows_30m", "unsupported"),
            ("SELECT bytes_out + bytes_in FROM flows_30m", "unsupported"),
            (
                "WITH x AS (SELECT * FROM flows_30m) SELECT * FROM x",
                "unsupported",
            ),
            (
                "SELECT COUNT(*) FROM flows_30m WHERE dst_port IN (SELECT 1)",
                "unsupported",
            ),
            (
                "SELECT COUNT(*) FROM flows_30m WHERE cidr_match(dst_ip, '10.0.0.1/8')",
                "bad_cidr",
            ),
            (
                "SELECT COUNT(*) FROM flows_30m WHERE cidr_match(dst_ip, '10.0.0.0/33')",
                "bad_cidr",
            ),
            ("SELECT SUM(proto) FROM flows_30m", "type_mismatch"),
            (
                "SELECT COUNT(*) FROM flows_30m WHERE dst_port = 'x'",
                "type_mismatch",
            ),
            ("SELECT COUNT(*) FROM flows_1h", "unknown_table"),
            ("SELEC 1", "syntax_error"),
            ("SELECT COUNT(*) FROM flows_30m LIMIT -1", "bad_limit"),
            ("SELECT 1; SELECT 2", "not_a_select"),
            ("DELETE FROM flows_30m", "not_a_select"),
        ] {
            assert_eq!(code(sql), expected, "{sql}");
        }
        let deep = format!(
            "SELECT COUNT(*) FROM flows_30m WHERE {}dst_port = 1{}",
            "(".repeat(10_000),
            ")".repeat(10_000)
        );
        assert_eq!(code(&deep), "too_complex");
        let nots = format!(
            "SELECT COUNT(*) FROM flows_30m WHERE {}dst_port = 1",
            "NOT ".repeat(10_000)
        );
        let error = parse(&nots).unwrap_err();
        assert!(
            matches!(error.code.as_str(), "too_complex" | "syntax_error"),
            "{error:?}"
        );
    }

    #[test]
    fn positions_aliases_star_and_literals() {
        let plan = parse("SELECT dst_port AS port, COUNT(*) n FROM flows_2h WHERE bytes_out BETWEEN -5 AND 2.5 AND duration_ms IS NOT NULL AND proto LIKE 't%' AND src_ip <> '10.0.0.1' GROUP BY 1 ORDER BY 2 DESC, port").unwrap();
        assert_eq!(plan.group_by, [Column::DstPort]);
        assert_eq!(
            plan.order_by,
            [
                OrderKey {
                    term: Term::Aggregate(Aggregate::CountStar),
                    descending: true
                },
                OrderKey {
                    term: Term::Column(Column::DstPort),
                    descending: false
                }
            ]
        );
        assert_eq!(parse(&to_sql(&plan)).unwrap(), plan, "{}", to_sql(&plan));
        let star = parse("SELECT * FROM flows_24h ORDER BY ts DESC LIMIT 3").unwrap();
        assert_eq!(star.select.len(), 11);
        assert_eq!(parse(&to_sql(&star)).unwrap(), star);
    }
}
