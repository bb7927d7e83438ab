//! The syntax tree the parser builds and the evaluator reads.
//!
//! Every expression and name keeps the 1-based line and column where it starts, so that errors
//! found after parsing (an unknown column, a type mismatch) still point into the query text.
//! `and`/`or` chains are n-ary nodes rather than nested binary ones, so that a long list of
//! alternatives (`x == 1 or x == 2 or ...`) does not count against the nesting limit.

use crate::value::{ColumnType, Value};

/// A 1-based line and column (in characters) in the query text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Pos {
    /// The line, from 1.
    pub line: u32,
    /// The column in characters, from 1.
    pub column: u32,
}

/// A name as written (a column, a table, an output column), with where it was written.
#[derive(Clone, Debug, PartialEq)]
pub struct Name {
    /// The name, unbracketed.
    pub text: String,
    /// Where it starts.
    pub pos: Pos,
}

/// A parsed query (from [`crate::parse`]): one tabular expression, `let`s already inlined.
/// Run it with [`crate::execute`]; ask it what it reads with [`Query::tables`] and
/// [`Query::time_bounds`].
#[derive(Clone, Debug, PartialEq)]
pub struct Query {
    pub(crate) body: Tabular,
}

/// A source and the operators piped after it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Tabular {
    pub source: Source,
    pub ops: Vec<Op>,
}

/// Where rows come from.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Source {
    /// A table by name.
    Table(Name),
    /// `union L1, L2, ...`: each leg a table name or a parenthesized tabular expression.
    Union(Vec<Tabular>),
}

/// A sort key of `order by` / `top`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct SortKey {
    pub expr: Expr,
    pub descending: bool,
    /// Whether nulls sort first; Kusto's default is nulls first ascending, last descending.
    pub nulls_first: bool,
}

/// `[name =] expr` in `project`, `extend` and `summarize ... by`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct NamedExpr {
    pub name: Option<Name>,
    pub expr: Expr,
}

/// The aggregation functions of `summarize`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AggFn {
    Count,
    CountIf,
    Sum,
    Avg,
    Min,
    Max,
    DCount,
    ArgMax,
    ArgMin,
    Percentile,
    MakeSet,
    MakeList,
}

impl AggFn {
    pub fn name(self) -> &'static str {
        match self {
            AggFn::Count => "count",
            AggFn::CountIf => "countif",
            AggFn::Sum => "sum",
            AggFn::Avg => "avg",
            AggFn::Min => "min",
            AggFn::Max => "max",
            AggFn::DCount => "dcount",
            AggFn::ArgMax => "arg_max",
            AggFn::ArgMin => "arg_min",
            AggFn::Percentile => "percentile",
            AggFn::MakeSet => "make_set",
            AggFn::MakeList => "make_list",
        }
    }

    pub fn from_name(name: &str) -> Option<AggFn> {
        Some(match name {
            "count" => AggFn::Count,
            "countif" => AggFn::CountIf,
            "sum" => AggFn::Sum,
            "avg" => AggFn::Avg,
            "min" => AggFn::Min,
            "max" => AggFn::Max,
            "dcount" => AggFn::DCount,
            "arg_max" => AggFn::ArgMax,
            "arg_min" => AggFn::ArgMin,
            "percentile" => AggFn::Percentile,
            "make_set" => AggFn::MakeSet,
            "make_list" => AggFn::MakeList,
            _ => return None,
        })
    }
}

/// `[name =] aggfn(args)` in `summarize`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Aggregate {
    pub name: Option<Name>,
    pub func: AggFn,
    pub args: Vec<Expr>,
    /// `arg_max(x, *)` / `arg_min(x, *)`: return every column.
    pub all_columns: bool,
    pub pos: Pos,
}

/// A tabular operator after `|`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Op {
    Where(Expr),
    Project(Vec<NamedExpr>),
    ProjectAway(Vec<Name>),
    ProjectRename(Vec<(Name, Name)>),
    Extend(Vec<NamedExpr>),
    Summarize {
        aggs: Vec<Aggregate>,
        by: Vec<NamedExpr>,
    },
    Sort(Vec<SortKey>),
    Take(u64),
    Top {
        count: u64,
        key: SortKey,
    },
    Count,
    Distinct(Vec<Name>),
    Union(Vec<Tabular>),
    /// `render ...`: a chart hint for the client; the rows pass unchanged.
    Render(crate::render::Visualization),
}

/// Binary operators, by family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// `=~` / `!~` (case-insensitive equality), negated when the flag is set.
    EqCi(bool),
    /// A string operator (`contains`, `has`, ...), negated when the flag is set.
    Str(StrOp, bool),
}

/// The string predicates, each case-insensitive unless `cs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StrOp {
    Contains { cs: bool },
    Has { cs: bool },
    StartsWith { cs: bool },
    EndsWith { cs: bool },
}

impl BinOp {
    /// The operator that holds for `b op' a` exactly when `op` holds for `a op b`: a comparison
    /// turned round (`<` and `>`, `<=` and `>=`); equality and the others are their own.
    pub(crate) fn flipped(self) -> BinOp {
        match self {
            BinOp::Lt => BinOp::Gt,
            BinOp::Le => BinOp::Ge,
            BinOp::Gt => BinOp::Lt,
            BinOp::Ge => BinOp::Le,
            other => other,
        }
    }

    /// The operator as written, for error messages.
    pub fn symbol(self) -> String {
        let neg = |n: bool| if n { "!" } else { "" };
        let cs = |c: bool| if c { "_cs" } else { "" };
        match self {
            BinOp::Add => "+".into(),
            BinOp::Sub => "-".into(),
            BinOp::Mul => "*".into(),
            BinOp::Div => "/".into(),
            BinOp::Mod => "%".into(),
            BinOp::Eq => "==".into(),
            BinOp::Ne => "!=".into(),
            BinOp::Lt => "<".into(),
            BinOp::Le => "<=".into(),
            BinOp::Gt => ">".into(),
            BinOp::Ge => ">=".into(),
            BinOp::EqCi(false) => "=~".into(),
            BinOp::EqCi(true) => "!~".into(),
            BinOp::Str(op, n) => {
                let (word, c) = match op {
                    StrOp::Contains { cs: c } => ("contains", c),
                    StrOp::Has { cs: c } => ("has", c),
                    StrOp::StartsWith { cs: c } => ("startswith", c),
                    StrOp::EndsWith { cs: c } => ("endswith", c),
                };
                format!("{}{}{}", neg(n), word, cs(c))
            }
        }
    }
}

/// An expression with where it starts (for a binary operator: where the operator is).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Expr {
    pub kind: ExprKind,
    pub pos: Pos,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum ExprKind {
    Literal(Value),
    /// A null of a stated type (`datetime(null)`, `long(null)`).
    TypedNull(ColumnType),
    Column(String),
    Neg(Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    And(Vec<Expr>),
    Or(Vec<Expr>),
    /// A scalar function call by name (resolved when the query runs).
    Call(String, Vec<Expr>),
    /// `d.field`.
    Member(Box<Expr>, String),
    /// `d["field"]` or `d[0]`.
    Index(Box<Expr>, Box<Expr>),
    In {
        lhs: Box<Expr>,
        list: Vec<Expr>,
        negated: bool,
        case_insensitive: bool,
    },
    Between {
        lhs: Box<Expr>,
        low: Box<Expr>,
        high: Box<Expr>,
        negated: bool,
    },
}
