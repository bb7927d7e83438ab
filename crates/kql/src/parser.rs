//! The parser: tokens to the syntax tree, by recursive descent with one token of lookahead.
//!
//! The lexer ([`crate::lexer`], winnow) has already dealt with characters; what is left is a
//! small grammar (below) whose every error must say, at the offending token, what was expected.
//! A hand-written descent over the token vector does that most directly: each rule knows the
//! words that may come next and names them in its message. Nesting is counted as it descends and
//! refused past [`EXPR_DEPTH_MAX`], so no input can overflow the stack.
//!
//! ```text
//! query     := ('let' name '=' expr ';')* tabular ';'? EOF
//! tabular   := source ('|' operator)*
//! source    := 'union' leg (',' leg)* | leg
//! leg       := name | '(' tabular ')'
//! operator  := ('where' | 'filter') expr
//!            | 'project' named (',' named)*       | 'extend' named (',' named)*
//!            | 'project-away' name (',' name)*    | 'project-rename' name '=' name (',' ...)*
//!            | 'summarize' [agg (',' agg)*] ['by' named (',' named)*]
//!            | ('order' | 'sort') 'by' key (',' key)*
//!            | ('take' | 'limit') long            | 'top' long 'by' key
//!            | 'count'                            | 'distinct' ('*' | name (',' name)*)
//!            | 'union' leg (',' leg)*              | 'render' name ['with' '(' ... ')']
//! named     := [name '='] expr                    agg := [name '='] aggfn '(' args ')'
//!                                                 (arg_max/arg_min: '(' expr ',' ('*' | args) ')')
//! key       := expr ['asc' | 'desc'] ['nulls' ('first' | 'last')]
//! expr      := and ('or' and)*                    and := cmp ('and' cmp)*
//! cmp       := add [cmpop add | 'in' list | 'between' '(' add '..' add ')']
//! add       := mul (('+' | '-') mul)*             mul := unary (('*' | '/' | '%') unary)*
//! unary     := '-' unary | postfix                postfix := primary ('.' ident | '[' expr ']')*
//! primary   := literal | name | ident '(' args ')' | '(' expr ')'
//! name      := ident | '[' string ']'
//! ```

use std::collections::BTreeMap;

use crate::ast::{
    AggFn, Aggregate, BinOp, Expr, ExprKind, Name, NamedExpr, Op, Pos, Query, SortKey, Source,
    StrOp, Tabular,
};
use crate::lexer::{clip, tokenize, LineIndex, Tok, Token};
use crate::value::{ColumnType, Value};
use crate::{ParseError, EXPR_DEPTH_MAX, IN_LIST_ITEMS_MAX, QUERY_BYTES_MAX, UNION_LEGS_MAX};

/// The tabular operators, as the "expected an operator" message lists them.
const OPERATORS: &str = "where, project, project-away, project-rename, extend, summarize, \
                         order by, sort by, take, limit, top, count, distinct, union, render";

/// The aggregation functions, as the "expected an aggregation" message lists them.
const AGGREGATIONS: &str =
    "count, countif, sum, avg, min, max, dcount, arg_max, arg_min, percentile, make_set, make_list";

/// Words that end an expression and so can never be a column name where an expression starts.
const RESERVED: [&str; 8] = ["and", "or", "by", "asc", "desc", "nulls", "let", "with"];

/// An expression and the depth of its tree (a leaf is 1).
type Depthed = (Expr, usize);

/// The most expression nodes `let` references may copy into a query in all. Each reference
/// copies the let's expression, so `let b = a + a; let c = b + b; ...` doubles at every step;
/// this budget (about what a 64 KiB query can spell without lets) keeps that bounded.
const LET_EXPANSION_NODES_MAX: usize = 65_536;

/// The number of nodes of an expression tree (its depth is bounded, so the recursion is).
fn node_count(e: &Expr) -> usize {
    1 + match &e.kind {
        ExprKind::Literal(_) | ExprKind::TypedNull(_) | ExprKind::Column(_) => 0,
        ExprKind::Neg(x) | ExprKind::Member(x, _) => node_count(x),
        ExprKind::Binary(_, a, b) | ExprKind::Index(a, b) => node_count(a) + node_count(b),
        ExprKind::And(items) | ExprKind::Or(items) | ExprKind::Call(_, items) => {
            items.iter().map(node_count).sum()
        }
        ExprKind::In { lhs, list, .. } => {
            node_count(lhs) + list.iter().map(node_count).sum::<usize>()
        }
        ExprKind::Between { lhs, low, high, .. } => {
            node_count(lhs) + node_count(low) + node_count(high)
        }
    }
}

/// Parses a whole query.
pub(crate) fn parse_query(text: &str) -> Result<Query, ParseError> {
    if text.len() > QUERY_BYTES_MAX {
        return Err(ParseError {
            line: 1,
            column: 1,
            message: format!(
                "expected a query of at most {QUERY_BYTES_MAX} bytes, got {} bytes",
                text.len()
            ),
        });
    }
    let index = LineIndex::new(text);
    let toks = tokenize(text).map_err(|e| {
        let pos = index.pos(e.offset);
        ParseError {
            line: pos.line,
            column: pos.column,
            message: e.message,
        }
    })?;
    let mut p = Parser {
        toks,
        at: 0,
        index,
        depth: 0,
        lets: BTreeMap::new(),
        let_nodes: 0,
    };
    p.query()
}

struct Parser<'a> {
    toks: Vec<Token>,
    at: usize,
    index: LineIndex<'a>,
    /// The nesting depth of the rule being parsed (expressions and parenthesized tabulars).
    depth: usize,
    /// `let` names and their expressions (with depth and node count), inlined where referenced.
    lets: BTreeMap<String, (Expr, usize, usize)>,
    /// Nodes copied by `let` references so far (see [`LET_EXPANSION_NODES_MAX`]).
    let_nodes: usize,
}

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        // The vector always ends with Eof and `at` never passes it (see `bump`).
        &self.toks[self.at.min(self.toks.len() - 1)].tok
    }

    fn peek_at(&self, ahead: usize) -> &Tok {
        &self.toks[(self.at + ahead).min(self.toks.len() - 1)].tok
    }

    fn pos(&self) -> Pos {
        let offset = self.toks[self.at.min(self.toks.len() - 1)].offset;
        self.index.pos(offset)
    }

    fn bump(&mut self) -> Tok {
        let tok = self.peek().clone();
        if self.at < self.toks.len() - 1 {
            self.at += 1;
        }
        tok
    }

    /// An error at the current token: "expected {what}, found {token}".
    fn expected<T>(&self, what: &str) -> Result<T, ParseError> {
        self.error_at(
            self.pos(),
            format!("expected {what}, found {}", self.peek().describe()),
        )
    }

    fn error_at<T>(&self, pos: Pos, message: String) -> Result<T, ParseError> {
        Err(ParseError {
            line: pos.line,
            column: pos.column,
            message,
        })
    }

    fn is_sym(&self, s: &str) -> bool {
        matches!(self.peek(), Tok::Sym(t) if *t == s)
    }

    fn is_word(&self, w: &str) -> bool {
        matches!(self.peek(), Tok::Ident(t) if t == w)
    }

    fn eat_sym(&mut self, s: &str) -> bool {
        let hit = self.is_sym(s);
        if hit {
            self.bump();
        }
        hit
    }

    fn eat_word(&mut self, w: &str) -> bool {
        let hit = self.is_word(w);
        if hit {
            self.bump();
        }
        hit
    }

    fn expect_sym(&mut self, s: &str, what: &str) -> Result<(), ParseError> {
        if self.eat_sym(s) {
            Ok(())
        } else {
            self.expected(what)
        }
    }

    fn enter(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > EXPR_DEPTH_MAX {
            return self.error_at(
                self.pos(),
                format!("expected at most {EXPR_DEPTH_MAX} levels of nesting"),
            );
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    /// Refuses a tree deeper than the limit (long operator chains build deep trees too).
    fn check_depth(&self, depth: usize, pos: Pos) -> Result<(), ParseError> {
        if depth + self.depth > EXPR_DEPTH_MAX {
            return self.error_at(
                pos,
                format!("expected at most {EXPR_DEPTH_MAX} levels of nesting"),
            );
        }
        Ok(())
    }

    fn query(&mut self) -> Result<Query, ParseError> {
        while self.is_word("let") {
            self.bump();
            let name = self.name("a name after 'let'")?;
            self.expect_sym("=", "'=' after the let name")?;
            let (value, depth) = self.expr()?;
            self.expect_sym(";", "';' after the let statement")?;
            let nodes = node_count(&value);
            self.lets.insert(name.text, (value, depth, nodes));
        }
        let body = self.tabular()?;
        self.eat_sym(";");
        if !matches!(self.peek(), Tok::Eof) {
            return self.expected("'|' or the end of the query");
        }
        Ok(Query { body })
    }

    /// A column or table name: an identifier or `['name']`.
    fn name(&mut self, what: &str) -> Result<Name, ParseError> {
        let pos = self.pos();
        match self.peek().clone() {
            Tok::Ident(text) if !RESERVED.contains(&text.as_str()) => {
                self.bump();
                Ok(Name { text, pos })
            }
            Tok::Sym("[") => {
                if let Tok::Str(text) = self.peek_at(1).clone() {
                    self.bump();
                    self.bump();
                    self.expect_sym("]", "']' closing the bracketed name")?;
                    Ok(Name { text, pos })
                } else {
                    self.bump();
                    self.expected("a quoted name inside '[...]'")
                }
            }
            _ => self.expected(what),
        }
    }

    /// After `render`: a visualization and its optional `with (name = value, ...)`.
    fn render(&mut self) -> Result<crate::render::Visualization, ParseError> {
        use crate::render::{property, RenderValue, LIST_PROPERTIES, PROPERTIES, VISUALIZATIONS};
        let pos = self.pos();
        let kind = self.name("a visualization after 'render' (timechart, barchart, table, ...)")?;
        let visualization = kind.text.to_ascii_lowercase();
        if !VISUALIZATIONS.contains(&visualization.as_str()) {
            return self.error_at(
                pos,
                format!(
                    "expected a visualization after 'render' ({}), found '{}'",
                    VISUALIZATIONS.join(", "),
                    crate::lexer::clip(&kind.text)
                ),
            );
        }
        let mut properties = std::collections::BTreeMap::new();
        if self.eat_word("with") {
            self.expect_sym("(", "'(' after 'with'")?;
            loop {
                let at = self.pos();
                let name = self.name("a render property (title, xcolumn, ycolumns, ...)")?;
                let Some(canonical) = property(&name.text) else {
                    let known: Vec<&str> = PROPERTIES.iter().map(|(w, _)| *w).collect();
                    return self.error_at(
                        at,
                        format!(
                            "expected a render property ({}), found '{}'",
                            known.join(", "),
                            crate::lexer::clip(&name.text)
                        ),
                    );
                };
                self.expect_sym("=", "'=' after the render property")?;
                let value = if LIST_PROPERTIES.contains(&canonical) {
                    let mut names = vec![self.name("a column name")?.text];
                    // `ycolumns = a, b, title = "x"`: a comma continues the list unless the
                    // next word is itself followed by '='.
                    while self.is_sym(",")
                        && matches!(self.peek_at(1), Tok::Ident(_))
                        && !matches!(self.peek_at(2), Tok::Sym("="))
                    {
                        self.bump();
                        names.push(self.name("a column name")?.text);
                    }
                    RenderValue::Names(names)
                } else {
                    match self.bump() {
                        Tok::Str(s) => RenderValue::Text(s),
                        Tok::Long(n) => RenderValue::Number(n as f64),
                        Tok::Real(x) => RenderValue::Number(x),
                        Tok::Ident(w) if w == "true" => RenderValue::Bool(true),
                        Tok::Ident(w) if w == "false" => RenderValue::Bool(false),
                        Tok::Ident(w) => RenderValue::Text(w),
                        _ => {
                            return self.error_at(
                                at,
                                format!(
                                    "expected a value (a string, a number, true/false or a word) for '{canonical}'"
                                ),
                            )
                        }
                    }
                };
                if properties.insert(canonical.to_string(), value).is_some() {
                    return self.error_at(
                        at,
                        format!("the render property '{canonical}' is given twice"),
                    );
                }
                if self.eat_sym(")") {
                    break;
                }
                self.expect_sym(",", "',' or ')' after a render property")?;
            }
        }
        Ok(crate::render::Visualization {
            visualization,
            properties,
        })
    }

    fn tabular(&mut self) -> Result<Tabular, ParseError> {
        let source = if self.eat_word("union") {
            Source::Union(self.union_legs()?)
        } else {
            let leg = self.leg()?;
            match leg.source {
                Source::Table(name) if leg.ops.is_empty() => Source::Table(name),
                _ => Source::Union(vec![leg]),
            }
        };
        let mut ops = Vec::new();
        while self.eat_sym("|") {
            ops.push(self.operator()?);
        }
        Ok(Tabular { source, ops })
    }

    fn leg(&mut self) -> Result<Tabular, ParseError> {
        if self.is_sym("(") {
            self.bump();
            self.enter()?;
            let inner = self.tabular()?;
            self.leave();
            self.expect_sym(")", "')' closing the tabular expression")?;
            return Ok(inner);
        }
        let name = self.name("a table name")?;
        Ok(Tabular {
            source: Source::Table(name),
            ops: Vec::new(),
        })
    }

    fn union_legs(&mut self) -> Result<Vec<Tabular>, ParseError> {
        let mut legs = vec![self.leg()?];
        while self.eat_sym(",") {
            if legs.len() == UNION_LEGS_MAX {
                return self.error_at(
                    self.pos(),
                    format!("expected at most {UNION_LEGS_MAX} union legs"),
                );
            }
            legs.push(self.leg()?);
        }
        Ok(legs)
    }

    fn operator(&mut self) -> Result<Op, ParseError> {
        let word = match self.peek() {
            Tok::Ident(w) => w.clone(),
            _ => return self.expected(&format!("an operator after '|' ({OPERATORS})")),
        };
        let pos = self.pos();
        self.bump();
        match word.as_str() {
            "where" | "filter" => Ok(Op::Where(self.expr()?.0)),
            "project" => Ok(Op::Project(self.named_list()?)),
            "extend" => Ok(Op::Extend(self.named_list()?)),
            "project-away" => Ok(Op::ProjectAway(self.name_list()?)),
            "project-rename" => {
                let mut pairs = Vec::new();
                loop {
                    let new = self.name("a new column name")?;
                    self.expect_sym("=", "'=' after the new column name")?;
                    let old = self.name("the column to rename")?;
                    pairs.push((new, old));
                    if !self.eat_sym(",") {
                        break;
                    }
                }
                Ok(Op::ProjectRename(pairs))
            }
            "summarize" => self.summarize(),
            "order" | "sort" => {
                if !self.eat_word("by") {
                    return self.expected(&format!("'by' after '{word}'"));
                }
                let mut keys = vec![self.sort_key()?];
                while self.eat_sym(",") {
                    keys.push(self.sort_key()?);
                }
                Ok(Op::Sort(keys))
            }
            "take" | "limit" => Ok(Op::Take(self.row_count(&word)?)),
            "top" => {
                let count = self.row_count("top")?;
                if !self.eat_word("by") {
                    return self.expected("'by' after the row count of 'top'");
                }
                Ok(Op::Top {
                    count,
                    key: self.sort_key()?,
                })
            }
            "count" => Ok(Op::Count),
            "distinct" => {
                if self.eat_sym("*") {
                    Ok(Op::Distinct(Vec::new()))
                } else {
                    Ok(Op::Distinct(self.name_list()?))
                }
            }
            "union" => Ok(Op::Union(self.union_legs()?)),
            "render" => Ok(Op::Render(self.render()?)),
            _ => self.error_at(
                pos,
                format!(
                    "expected an operator after '|' ({OPERATORS}), found '{}'",
                    clip(&word)
                ),
            ),
        }
    }

    fn row_count(&mut self, op: &str) -> Result<u64, ParseError> {
        match self.peek() {
            Tok::Long(n) if *n >= 0 => {
                let n = n.unsigned_abs();
                self.bump();
                Ok(n)
            }
            _ => self.expected(&format!("a whole number of rows after '{op}'")),
        }
    }

    fn name_list(&mut self) -> Result<Vec<Name>, ParseError> {
        let mut names = vec![self.name("a column name")?];
        while self.eat_sym(",") {
            names.push(self.name("a column name")?);
        }
        Ok(names)
    }

    /// `name =` ahead (an identifier or bracketed name followed by a single `=`)?
    fn assignment_ahead(&self) -> bool {
        match self.peek() {
            Tok::Ident(_) => matches!(self.peek_at(1), Tok::Sym("=")),
            Tok::Sym("[") => {
                matches!(self.peek_at(1), Tok::Str(_))
                    && matches!(self.peek_at(2), Tok::Sym("]"))
                    && matches!(self.peek_at(3), Tok::Sym("="))
            }
            _ => false,
        }
    }

    fn named(&mut self) -> Result<NamedExpr, ParseError> {
        let name = if self.assignment_ahead() {
            let n = self.name("a column name")?;
            self.bump(); // the '=' checked by assignment_ahead
            Some(n)
        } else {
            None
        };
        Ok(NamedExpr {
            name,
            expr: self.expr()?.0,
        })
    }

    fn named_list(&mut self) -> Result<Vec<NamedExpr>, ParseError> {
        let mut list = vec![self.named()?];
        while self.eat_sym(",") {
            list.push(self.named()?);
        }
        Ok(list)
    }

    fn summarize(&mut self) -> Result<Op, ParseError> {
        let mut aggs = Vec::new();
        if !self.is_word("by") {
            loop {
                aggs.push(self.aggregate()?);
                if !self.eat_sym(",") {
                    break;
                }
            }
        }
        let mut by = Vec::new();
        if self.eat_word("by") {
            by = self.named_list()?;
        } else if aggs.is_empty() {
            return self.expected(&format!("an aggregation ({AGGREGATIONS}) or 'by'"));
        }
        Ok(Op::Summarize { aggs, by })
    }

    fn aggregate(&mut self) -> Result<Aggregate, ParseError> {
        let name = if self.assignment_ahead() {
            let n = self.name("a column name")?;
            self.bump();
            Some(n)
        } else {
            None
        };
        let pos = self.pos();
        let func = match self.peek() {
            Tok::Ident(w) if matches!(self.peek_at(1), Tok::Sym("(")) => AggFn::from_name(w),
            _ => None,
        };
        let Some(func) = func else {
            return self.expected(&format!("an aggregation function ({AGGREGATIONS})"));
        };
        self.bump();
        self.bump();
        let mut all_columns = false;
        let args = if matches!(func, AggFn::ArgMax | AggFn::ArgMin) {
            // arg_max(expr, * | expr [, expr ...])
            let mut args = vec![self.expr()?.0];
            self.expect_sym(
                ",",
                &format!(
                    "',' and the columns to return after the first argument of {}()",
                    func.name()
                ),
            )?;
            loop {
                if self.eat_sym("*") {
                    all_columns = true;
                } else {
                    args.push(self.expr()?.0);
                }
                if self.eat_sym(")") {
                    break;
                }
                self.expect_sym(",", "',' or ')' in the argument list")?;
            }
            args
        } else {
            self.call_args()?
        };
        if func == AggFn::Percentile {
            let ok = match args.get(1).map(|a| &a.kind) {
                Some(ExprKind::Literal(Value::Long(p))) => (0..=100).contains(p),
                Some(ExprKind::Literal(Value::Real(p))) => (0.0..=100.0).contains(p),
                _ => false,
            };
            if args.len() == 2 && !ok {
                return self.error_at(
                    args[1].pos,
                    "expected a percentile between 0 and 100 as a number literal".to_string(),
                );
            }
        }
        let (min, max) = match func {
            AggFn::Count => (0, 0),
            AggFn::DCount | AggFn::MakeSet | AggFn::MakeList => (1, 2),
            AggFn::ArgMax | AggFn::ArgMin => (1, 64),
            AggFn::Percentile => (2, 2),
            _ => (1, 1),
        };
        if args.len() < min || args.len() > max {
            let want = if min == max {
                format!("{min}")
            } else if max - min > 1 {
                format!("{min} to {max}")
            } else {
                format!("{min} or {max}")
            };
            return self.error_at(
                pos,
                format!(
                    "expected {want} argument(s) to {}(), found {}",
                    func.name(),
                    args.len()
                ),
            );
        }
        Ok(Aggregate {
            name,
            func,
            args,
            all_columns,
            pos,
        })
    }

    fn sort_key(&mut self) -> Result<SortKey, ParseError> {
        let expr = self.expr()?.0;
        let descending = if self.eat_word("asc") {
            false
        } else {
            self.eat_word("desc");
            true
        };
        let mut nulls_first = !descending;
        if self.eat_word("nulls") {
            if self.eat_word("first") {
                nulls_first = true;
            } else if self.eat_word("last") {
                nulls_first = false;
            } else {
                return self.expected("'first' or 'last' after 'nulls'");
            }
        }
        Ok(SortKey {
            expr,
            descending,
            nulls_first,
        })
    }

    /// Arguments after `(` up to and including `)`.
    fn call_args(&mut self) -> Result<Vec<Expr>, ParseError> {
        let mut args = Vec::new();
        if self.eat_sym(")") {
            return Ok(args);
        }
        loop {
            args.push(self.expr()?.0);
            if self.eat_sym(")") {
                return Ok(args);
            }
            self.expect_sym(",", "',' or ')' in the argument list")?;
        }
    }

    fn expr(&mut self) -> Result<Depthed, ParseError> {
        self.enter()?;
        let r = self.or_expr();
        self.leave();
        r
    }

    fn or_expr(&mut self) -> Result<Depthed, ParseError> {
        let pos = self.pos();
        let first = self.and_expr()?;
        if !self.is_word("or") {
            return Ok(first);
        }
        let mut depth = first.1;
        let mut items = vec![first.0];
        while self.eat_word("or") {
            let (e, d) = self.and_expr()?;
            depth = depth.max(d);
            items.push(e);
        }
        Ok((
            Expr {
                kind: ExprKind::Or(items),
                pos,
            },
            depth + 1,
        ))
    }

    fn and_expr(&mut self) -> Result<Depthed, ParseError> {
        let pos = self.pos();
        let first = self.cmp_expr()?;
        if !self.is_word("and") {
            return Ok(first);
        }
        let mut depth = first.1;
        let mut items = vec![first.0];
        while self.eat_word("and") {
            let (e, d) = self.cmp_expr()?;
            depth = depth.max(d);
            items.push(e);
        }
        Ok((
            Expr {
                kind: ExprKind::And(items),
                pos,
            },
            depth + 1,
        ))
    }

    /// The comparison or string operator at the current token, if any.
    fn cmp_op(&self) -> Option<BinOp> {
        let str_op = |w: &str| -> Option<StrOp> {
            Some(match w {
                "contains" => StrOp::Contains { cs: false },
                "contains_cs" => StrOp::Contains { cs: true },
                "has" => StrOp::Has { cs: false },
                "has_cs" => StrOp::Has { cs: true },
                "startswith" => StrOp::StartsWith { cs: false },
                "startswith_cs" => StrOp::StartsWith { cs: true },
                "endswith" => StrOp::EndsWith { cs: false },
                "endswith_cs" => StrOp::EndsWith { cs: true },
                _ => return None,
            })
        };
        match self.peek() {
            Tok::Sym("==") => Some(BinOp::Eq),
            Tok::Sym("!=") => Some(BinOp::Ne),
            Tok::Sym("<") => Some(BinOp::Lt),
            Tok::Sym("<=") => Some(BinOp::Le),
            Tok::Sym(">") => Some(BinOp::Gt),
            Tok::Sym(">=") => Some(BinOp::Ge),
            Tok::Sym("=~") => Some(BinOp::EqCi(false)),
            Tok::Sym("!~") => Some(BinOp::EqCi(true)),
            Tok::Ident(w) => str_op(w).map(|op| BinOp::Str(op, false)),
            Tok::Bang(w) => str_op(&w[1..]).map(|op| BinOp::Str(op, true)),
            _ => None,
        }
    }

    fn cmp_expr(&mut self) -> Result<Depthed, ParseError> {
        let (lhs, ld) = self.add_expr()?;
        let pos = self.pos();
        if let Some(op) = self.cmp_op() {
            self.bump();
            let (rhs, rd) = self.add_expr()?;
            let depth = ld.max(rd) + 1;
            self.check_depth(depth, pos)?;
            return Ok((
                Expr {
                    kind: ExprKind::Binary(op, Box::new(lhs), Box::new(rhs)),
                    pos,
                },
                depth,
            ));
        }
        let (negated, word) = match self.peek() {
            Tok::Ident(w) => (false, w.clone()),
            Tok::Bang(w) => (true, w[1..].to_string()),
            _ => return Ok((lhs, ld)),
        };
        match word.as_str() {
            "in" | "in~" => {
                self.bump();
                self.expect_sym(
                    "(",
                    &format!("'(' after '{}'", if negated { "!in" } else { "in" }),
                )?;
                let mut list = Vec::new();
                let mut depth = ld;
                loop {
                    if list.len() == IN_LIST_ITEMS_MAX {
                        return self.error_at(
                            self.pos(),
                            format!("expected at most {IN_LIST_ITEMS_MAX} items in the 'in' list"),
                        );
                    }
                    self.enter()?;
                    let item = self.add_expr();
                    self.leave();
                    let (e, d) = item?;
                    depth = depth.max(d);
                    list.push(e);
                    if self.eat_sym(")") {
                        break;
                    }
                    self.expect_sym(",", "',' or ')' in the 'in' list")?;
                }
                Ok((
                    Expr {
                        kind: ExprKind::In {
                            lhs: Box::new(lhs),
                            list,
                            negated,
                            case_insensitive: word == "in~",
                        },
                        pos,
                    },
                    depth + 1,
                ))
            }
            "between" => {
                self.bump();
                self.expect_sym("(", "'(' after 'between'")?;
                self.enter()?;
                let low = self.add_expr();
                self.leave();
                let (low, d1) = low?;
                self.expect_sym("..", "'..' between the bounds of 'between'")?;
                self.enter()?;
                let high = self.add_expr();
                self.leave();
                let (high, d2) = high?;
                self.expect_sym(")", "')' closing 'between'")?;
                Ok((
                    Expr {
                        kind: ExprKind::Between {
                            lhs: Box::new(lhs),
                            low: Box::new(low),
                            high: Box::new(high),
                            negated,
                        },
                        pos,
                    },
                    ld.max(d1).max(d2) + 1,
                ))
            }
            _ if negated => self.expected(
                "an operator such as !contains, !has, !startswith, !endswith, !in or !between",
            ),
            _ => Ok((lhs, ld)),
        }
    }

    fn add_expr(&mut self) -> Result<Depthed, ParseError> {
        let (mut lhs, mut depth) = self.mul_expr()?;
        loop {
            let op = match self.peek() {
                Tok::Sym("+") => BinOp::Add,
                Tok::Sym("-") => BinOp::Sub,
                _ => return Ok((lhs, depth)),
            };
            let pos = self.pos();
            self.bump();
            let (rhs, rd) = self.mul_expr()?;
            depth = depth.max(rd) + 1;
            self.check_depth(depth, pos)?;
            lhs = Expr {
                kind: ExprKind::Binary(op, Box::new(lhs), Box::new(rhs)),
                pos,
            };
        }
    }

    fn mul_expr(&mut self) -> Result<Depthed, ParseError> {
        let (mut lhs, mut depth) = self.unary()?;
        loop {
            let op = match self.peek() {
                Tok::Sym("*") => BinOp::Mul,
                Tok::Sym("/") => BinOp::Div,
                Tok::Sym("%") => BinOp::Mod,
                _ => return Ok((lhs, depth)),
            };
            let pos = self.pos();
            self.bump();
            let (rhs, rd) = self.unary()?;
            depth = depth.max(rd) + 1;
            self.check_depth(depth, pos)?;
            lhs = Expr {
                kind: ExprKind::Binary(op, Box::new(lhs), Box::new(rhs)),
                pos,
            };
        }
    }

    fn unary(&mut self) -> Result<Depthed, ParseError> {
        let pos = self.pos();
        if self.is_sym("-") || self.is_sym("+") {
            let minus = self.is_sym("-");
            self.bump();
            self.enter()?;
            let inner = self.unary();
            self.leave();
            let (inner, d) = inner?;
            if !minus {
                return Ok((inner, d));
            }
            // Fold a negative literal so that `-5` and `-1h` stay literals.
            let kind = match inner.kind {
                ExprKind::Literal(Value::Long(n)) => {
                    ExprKind::Literal(Value::Long(n.wrapping_neg()))
                }
                ExprKind::Literal(Value::Real(x)) => ExprKind::Literal(Value::Real(-x)),
                ExprKind::Literal(Value::TimeSpan(n)) => {
                    ExprKind::Literal(Value::TimeSpan(n.wrapping_neg()))
                }
                other => ExprKind::Neg(Box::new(Expr {
                    kind: other,
                    pos: inner.pos,
                })),
            };
            return Ok((Expr { kind, pos }, d + 1));
        }
        self.postfix()
    }

    fn postfix(&mut self) -> Result<Depthed, ParseError> {
        let (mut e, mut depth) = self.primary()?;
        loop {
            let pos = self.pos();
            if self.eat_sym(".") {
                let field = match self.peek().clone() {
                    Tok::Ident(w) => {
                        self.bump();
                        w
                    }
                    Tok::Sym("[") => self.name("a property name after '.'")?.text,
                    _ => return self.expected("a property name after '.'"),
                };
                e = Expr {
                    kind: ExprKind::Member(Box::new(e), field),
                    pos,
                };
            } else if self.eat_sym("[") {
                let (index, d) = self.expr()?;
                self.expect_sym("]", "']' closing the index")?;
                depth = depth.max(d);
                e = Expr {
                    kind: ExprKind::Index(Box::new(e), Box::new(index)),
                    pos,
                };
            } else {
                return Ok((e, depth));
            }
            depth += 1;
            self.check_depth(depth, pos)?;
        }
    }

    fn primary(&mut self) -> Result<Depthed, ParseError> {
        let pos = self.pos();
        let lit = |v: Value| {
            Ok((
                Expr {
                    kind: ExprKind::Literal(v),
                    pos,
                },
                1,
            ))
        };
        match self.peek().clone() {
            Tok::Str(s) => {
                self.bump();
                lit(Value::String(s))
            }
            Tok::Long(n) => {
                self.bump();
                lit(Value::Long(n))
            }
            Tok::Real(x) => {
                self.bump();
                lit(Value::Real(x))
            }
            Tok::TimeSpan(ms) => {
                self.bump();
                lit(Value::TimeSpan(ms))
            }
            Tok::DateTime(Some(ms)) => {
                self.bump();
                lit(Value::DateTime(ms))
            }
            Tok::DateTime(None) => {
                self.bump();
                Ok((
                    Expr {
                        kind: ExprKind::TypedNull(ColumnType::DateTime),
                        pos,
                    },
                    1,
                ))
            }
            Tok::Dynamic(j) => {
                self.bump();
                lit(Value::Dynamic(j))
            }
            Tok::Sym("(") => {
                self.bump();
                let inner = self.expr()?;
                self.expect_sym(")", "')' closing the parenthesis")?;
                Ok(inner)
            }
            Tok::Sym("[") => {
                let name = self.name("a bracketed column name such as ['name']")?;
                self.column(name)
            }
            Tok::Ident(w) if w == "true" || w == "false" => {
                self.bump();
                lit(Value::Bool(w == "true"))
            }
            Tok::Ident(w) if !RESERVED.contains(&w.as_str()) => {
                self.bump();
                if !self.eat_sym("(") {
                    return self.column(Name { text: w, pos });
                }
                if let Some(t) = type_name_literal(&w) {
                    return self.typed_literal(t, &w, pos);
                }
                self.enter()?;
                let args = self.call_args();
                self.leave();
                Ok((
                    Expr {
                        kind: ExprKind::Call(w, args?),
                        pos,
                    },
                    2,
                ))
            }
            _ => self.expected("an expression (a column, a literal, a function call or '(')"),
        }
    }

    /// A column reference, or the expression of a `let` of that name.
    fn column(&mut self, name: Name) -> Result<Depthed, ParseError> {
        match self.lets.get(&name.text) {
            Some((e, d, nodes)) => {
                self.let_nodes += nodes;
                if self.let_nodes > LET_EXPANSION_NODES_MAX {
                    return self.error_at(
                        name.pos,
                        format!(
                            "expected let references to expand to at most {LET_EXPANSION_NODES_MAX} expression nodes"
                        ),
                    );
                }
                self.check_depth(*d, name.pos)?;
                Ok((e.clone(), *d))
            }
            None => Ok((
                Expr {
                    kind: ExprKind::Column(name.text),
                    pos: name.pos,
                },
                1,
            )),
        }
    }

    /// `long(null)`, `long(5)`, `timespan(1h)`, `bool(true)`...: `(` already consumed.
    fn typed_literal(
        &mut self,
        t: ColumnType,
        word: &str,
        pos: Pos,
    ) -> Result<Depthed, ParseError> {
        let value = match (self.peek().clone(), t) {
            (Tok::Ident(n), _) if n == "null" => None,
            (Tok::Long(n), ColumnType::Long) => Some(Value::Long(n)),
            (Tok::Long(n), ColumnType::Real) => Some(Value::Real(n as f64)),
            (Tok::Real(x), ColumnType::Real) => Some(Value::Real(x)),
            (Tok::TimeSpan(ms), ColumnType::TimeSpan) => Some(Value::TimeSpan(ms)),
            (Tok::Ident(b), ColumnType::Bool) if b == "true" || b == "false" => {
                Some(Value::Bool(b == "true"))
            }
            (Tok::Str(s), ColumnType::String) => Some(Value::String(s)),
            _ => return self.expected(&format!("a {} literal or null inside {word}()", t.name())),
        };
        self.bump();
        self.expect_sym(")", &format!("')' closing {word}()"))?;
        let kind = match value {
            Some(v) => ExprKind::Literal(v),
            None => ExprKind::TypedNull(t),
        };
        Ok((Expr { kind, pos }, 1))
    }
}

/// The type a typed-literal function names (`long(null)`, `timespan(1h)`).
fn type_name_literal(word: &str) -> Option<ColumnType> {
    match word {
        "long" | "int" | "real" | "double" | "bool" | "string" | "timespan" => {
            ColumnType::from_name(word)
        }
        _ => None,
    }
}
