//! The lexer: query text to tokens with positions, written with winnow combinators.
//!
//! KQL's lexical layer is where a parser library pays most: string literals with escapes and
//! verbatim (`@'...'`) and obfuscated (`h'...'`) forms, numbers that become timespans when a
//! unit follows (`5m`, `1.5h`, `100ms`), the raw bodies of `datetime(...)` and `dynamic(...)`
//! literals, `//` comments, and operator words glued to `!` (`!contains`, `!in`) or `~` (`in~`).
//! Each token keeps the byte offset where it starts; [`LineIndex`] turns offsets into the
//! 1-based line and column (in characters) that errors report.
//!
//! Every lexer error is reported at the start of the token being read (an unterminated string
//! at its opening quote), with what was expected there.

use winnow::combinator::{alt, cut_err, opt, preceded};
use winnow::error::{ContextError, ErrMode};
use winnow::prelude::*;
use winnow::token::{any, one_of, take_while};

use crate::ast::Pos;
use crate::time::{parse_datetime, timespan_unit_ms};

/// Nesting of brackets a `dynamic(...)` literal may have (it is parsed by serde_json, whose own
/// recursion limit is 128; ours is lower and reported as a parse error).
const DYNAMIC_DEPTH_MAX: usize = 64;

/// A token.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Tok {
    /// An identifier or keyword (`where`, `Computer`, `project-away`, `in~`).
    Ident(String),
    /// A word glued to `!`: `!contains`, `!in`, `!in~`, `!has_cs`, `!between`.
    Bang(String),
    /// A string literal, unescaped.
    Str(String),
    /// A whole number.
    Long(i64),
    /// A number with a fraction or an exponent.
    Real(f64),
    /// A timespan literal, in milliseconds.
    TimeSpan(i64),
    /// `datetime(...)`: Unix milliseconds, or `None` for `datetime(null)`.
    DateTime(Option<i64>),
    /// `dynamic(...)`: its JSON.
    Dynamic(serde_json::Value),
    /// Punctuation and operators: `| , ( ) [ ] . .. = == != <> =~ !~ < <= > >= + - * / % ;`.
    Sym(&'static str),
    /// The end of the text.
    Eof,
}

impl Tok {
    /// The token as a reader would name it in "found ..." messages.
    pub fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("'{}'", clip(s)),
            Tok::Bang(s) => format!("'{}'", clip(s)),
            Tok::Str(_) => "a string literal".into(),
            Tok::Long(_) | Tok::Real(_) => "a number".into(),
            Tok::TimeSpan(_) => "a timespan literal".into(),
            Tok::DateTime(_) => "a datetime literal".into(),
            Tok::Dynamic(_) => "a dynamic literal".into(),
            Tok::Sym(s) => format!("'{s}'"),
            Tok::Eof => "the end of the query".into(),
        }
    }
}

/// The most characters of user input echoed into an error message: the same bound and the same
/// spelling as `cmksim_sim::text` (100 characters, then `… (N characters)`). This crate keeps
/// its own copy rather than depend on `cmksim-sim`, whose runtime dependencies (tokio, tonic,
/// turmoil) a pure parser should not pull in.
pub(crate) const ECHO_CHARS_MAX: usize = 100;

/// `s` unchanged when it has at most [`ECHO_CHARS_MAX`] characters; otherwise its first
/// [`ECHO_CHARS_MAX`] characters, an ellipsis and the original length.
pub(crate) fn clip(s: &str) -> String {
    match s.char_indices().nth(ECHO_CHARS_MAX) {
        None => s.to_string(),
        Some((cut, _)) => format!("{}… ({} characters)", &s[..cut], s.chars().count()),
    }
}

/// A token and the byte offset where it starts.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Token {
    pub tok: Tok,
    pub offset: usize,
}

/// Byte offsets to 1-based line and character column.
pub(crate) struct LineIndex<'a> {
    text: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub fn new(text: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { text, line_starts }
    }

    pub fn pos(&self, offset: usize) -> Pos {
        let line = self.line_starts.partition_point(|&s| s <= offset).max(1);
        let start = self.line_starts[line - 1];
        let end = offset.min(self.text.len());
        let column = self
            .text
            .get(start..end)
            .map_or(end.saturating_sub(start), |s| s.chars().count());
        Pos {
            line: u32::try_from(line).unwrap_or(u32::MAX),
            column: u32::try_from(column + 1).unwrap_or(u32::MAX),
        }
    }
}

/// A lexer failure: the offset of the token it is in, and what was expected.
#[derive(Debug)]
pub(crate) struct LexError {
    pub offset: usize,
    pub message: String,
}

type Err = ErrMode<ContextError<String>>;

/// A committed failure with a message (no backtracking into other token kinds).
fn cut(message: impl Into<String>) -> Err {
    let mut e = ContextError::new();
    e.push(message.into());
    ErrMode::Cut(e)
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn ident<'a>(i: &mut &'a str) -> ModalResult<&'a str, ContextError<String>> {
    (one_of(is_ident_start), take_while(0.., is_ident_char))
        .take()
        .parse_next(i)
}

/// Whitespace and `//` comments.
fn trivia(i: &mut &str) -> ModalResult<(), ContextError<String>> {
    loop {
        let before = i.len();
        let _: &str = take_while(0.., char::is_whitespace).parse_next(i)?;
        if i.starts_with("//") {
            let _: &str = take_while(0.., |c| c != '\n').parse_next(i)?;
        }
        if i.len() == before {
            return Ok(());
        }
    }
}

/// The body of a quoted string after its opening quote `q`, with backslash escapes.
fn escaped_body(q: char) -> impl FnMut(&mut &str) -> ModalResult<String, ContextError<String>> {
    move |i: &mut &str| {
        let mut out = String::new();
        loop {
            let c = cut_err(any)
                .context(format!("expected the closing {q} of the string"))
                .parse_next(i)?;
            match c {
                c if c == q => return Ok(out),
                '\n' => return Err(cut(format!("expected the closing {q} of the string"))),
                '\\' => {
                    let e = cut_err(any)
                        .context("expected an escape after '\\'".to_string())
                        .parse_next(i)?;
                    out.push(match e {
                        'n' => '\n',
                        't' => '\t',
                        'r' => '\r',
                        '0' => '\0',
                        '\\' | '\'' | '"' => e,
                        _ => {
                            return Err(cut(
                                "expected an escape \\n, \\t, \\r, \\0, \\\\, \\' or \\\" in the string",
                            ))
                        }
                    });
                }
                c => out.push(c),
            }
        }
    }
}

/// The body of a verbatim string (`@'...'`): no escapes; the quote doubled stands for itself.
fn verbatim_body(q: char) -> impl FnMut(&mut &str) -> ModalResult<String, ContextError<String>> {
    move |i: &mut &str| {
        let mut out = String::new();
        loop {
            let c = cut_err(any)
                .context(format!("expected the closing {q} of the string"))
                .parse_next(i)?;
            if c == q {
                if i.starts_with(q) {
                    i.next_token();
                    out.push(q);
                } else {
                    return Ok(out);
                }
            } else if c == '\n' {
                return Err(cut(format!("expected the closing {q} of the string")));
            } else {
                out.push(c);
            }
        }
    }
}

/// A string literal: `'..'`, `".."`, `@'..'`, `@".."`, each optionally prefixed by `h`
/// (Kusto's obfuscated strings: the same value, hidden from logs).
fn string(i: &mut &str) -> ModalResult<Tok, ContextError<String>> {
    let _ = opt(one_of(['h', 'H'])).parse_next(i)?;
    let verbatim = opt('@').parse_next(i)?.is_some();
    let q = one_of(['\'', '"']).parse_next(i)?;
    let s = if verbatim {
        verbatim_body(q).parse_next(i)?
    } else {
        escaped_body(q).parse_next(i)?
    };
    Ok(Tok::Str(s))
}

/// A number, and the timespan it becomes when a unit follows it.
fn number(i: &mut &str) -> ModalResult<Tok, ContextError<String>> {
    let digits = |i: &mut &str| -> ModalResult<(), ContextError<String>> {
        let _: &str = take_while(1.., |c: char| c.is_ascii_digit()).parse_next(i)?;
        Ok(())
    };
    let text: &str = (
        digits,
        opt(preceded('.', digits)),
        opt((one_of(['e', 'E']), opt(one_of(['+', '-'])), digits)),
    )
        .take()
        .parse_next(i)?;
    let is_real = text.contains(['.', 'e', 'E']);
    let unit: Option<&str> = opt(take_while(1.., is_ident_char)).parse_next(i)?;
    if let Some(unit) = unit {
        let per_unit = timespan_unit_ms(unit).ok_or_else(|| {
            cut(format!(
                "expected a timespan unit (d, h, m, s, ms, microsecond, tick) after the number, found '{}'",
                clip(unit)
            ))
        })?;
        let n: f64 = text
            .parse()
            .map_err(|_| cut("expected a number before the timespan unit"))?;
        let ms = (n * per_unit).round();
        if !ms.is_finite() || ms.abs() > i64::MAX as f64 / 2.0 {
            return Err(cut("expected a timespan within range"));
        }
        // In range by the check above, so the conversion cannot saturate.
        return Ok(Tok::TimeSpan(ms as i64));
    }
    if is_real {
        let x: f64 = text.parse().map_err(|_| cut("expected a real number"))?;
        Ok(Tok::Real(x))
    } else {
        let n: i64 = text
            .parse()
            .map_err(|_| cut("expected a number that fits a long (64 bits)"))?;
        Ok(Tok::Long(n))
    }
}

/// The raw text between the parentheses of a literal, `(` already consumed; parentheses and
/// brackets nest, strings are skipped whole.
fn raw_parenthesized<'a>(i: &mut &'a str) -> ModalResult<&'a str, ContextError<String>> {
    let start = *i;
    let mut depth = 0usize;
    loop {
        let c = cut_err(any)
            .context("expected ')' closing the literal".to_string())
            .parse_next(i)?;
        match c {
            '(' | '[' | '{' => {
                depth += 1;
                if depth > DYNAMIC_DEPTH_MAX {
                    return Err(cut(format!(
                        "expected at most {DYNAMIC_DEPTH_MAX} nested brackets in the literal"
                    )));
                }
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            ')' if depth == 0 => {
                let len = start.len() - i.len() - 1;
                return Ok(&start[..len]);
            }
            ')' => depth -= 1,
            '"' | '\'' => {
                let _ = escaped_body(c).parse_next(i)?;
            }
            _ => {}
        }
    }
}

/// `datetime(...)` / `dynamic(...)` after the word; `None` when no `(` follows.
fn literal_body(word: &str, i: &mut &str) -> ModalResult<Option<Tok>, ContextError<String>> {
    let mut look = *i;
    trivia(&mut look)?;
    if !look.starts_with('(') {
        return Ok(None);
    }
    *i = &look[1..];
    let raw = raw_parenthesized(i)?.trim();
    if word == "datetime" {
        // `datetime("2020-07-05")` is accepted as well as the bare form.
        let raw = raw
            .strip_prefix(['"', '\''])
            .and_then(|r| r.strip_suffix(['"', '\'']))
            .unwrap_or(raw);
        if raw == "null" {
            return Ok(Some(Tok::DateTime(None)));
        }
        let ms = parse_datetime(raw).ok_or_else(|| {
            cut(format!(
                "expected a datetime such as 2020-07-05 or 2020-07-05T12:00:00Z inside datetime(), found '{}'",
                clip(raw)
            ))
        })?;
        Ok(Some(Tok::DateTime(Some(ms))))
    } else {
        let json: serde_json::Value = serde_json::from_str(raw).map_err(|_| {
            cut(format!(
                "expected JSON inside dynamic(), found '{}'",
                clip(raw)
            ))
        })?;
        Ok(Some(Tok::Dynamic(json)))
    }
}

/// Operator names written with a hyphen.
const HYPHENATED: [&str; 3] = ["project-away", "project-rename", "project-keep"];

/// An identifier, a keyword, or a `datetime(...)`/`dynamic(...)` literal.
fn word(i: &mut &str) -> ModalResult<Tok, ContextError<String>> {
    let w = ident.parse_next(i)?;
    if w == "datetime" || w == "dynamic" {
        if let Some(tok) = literal_body(w, i)? {
            return Ok(tok);
        }
    }
    if w == "project" {
        for h in HYPHENATED {
            let rest = &h["project".len()..];
            if i.starts_with(rest) && !i[rest.len()..].starts_with(is_ident_char) {
                *i = &i[rest.len()..];
                return Ok(Tok::Ident(h.to_string()));
            }
        }
    }
    if w == "in" && i.starts_with('~') {
        *i = &i[1..];
        return Ok(Tok::Ident("in~".into()));
    }
    Ok(Tok::Ident(w.to_string()))
}

/// `!word` (`!contains`, `!in~`), `!=` or `!~`.
fn bang(i: &mut &str) -> ModalResult<Tok, ContextError<String>> {
    '!'.parse_next(i)?;
    if let Some(w) = opt(ident).parse_next(i)? {
        let mut w = format!("!{w}");
        if w == "!in" && i.starts_with('~') {
            *i = &i[1..];
            w.push('~');
        }
        return Ok(Tok::Bang(w));
    }
    if opt('=').parse_next(i)?.is_some() {
        return Ok(Tok::Sym("!="));
    }
    if opt('~').parse_next(i)?.is_some() {
        return Ok(Tok::Sym("!~"));
    }
    Err(cut(
        "expected '=', '~' or an operator word (contains, has, in, startswith, ...) after '!'",
    ))
}

fn symbol(i: &mut &str) -> ModalResult<Tok, ContextError<String>> {
    alt((
        alt(("==", "=~", "<>", "<=", ">=", "..")),
        alt(("|", ",", "(", ")", "[", "]", ".", "=", "<", ">")),
        alt(("+", "-", "*", "/", "%", ";")),
    ))
    .map(|s: &str| {
        Tok::Sym(match s {
            "==" => "==",
            "=~" => "=~",
            "<>" => "!=",
            "<=" => "<=",
            ">=" => ">=",
            ".." => "..",
            "|" => "|",
            "," => ",",
            "(" => "(",
            ")" => ")",
            "[" => "[",
            "]" => "]",
            "." => ".",
            "=" => "=",
            "<" => "<",
            ">" => ">",
            "+" => "+",
            "-" => "-",
            "*" => "*",
            "/" => "/",
            "%" => "%",
            _ => ";",
        })
    })
    .parse_next(i)
}

fn token(i: &mut &str) -> ModalResult<Tok, ContextError<String>> {
    alt((string, number, word, bang, symbol)).parse_next(i)
}

/// Splits `text` into tokens, ending with [`Tok::Eof`].
pub(crate) fn tokenize(text: &str) -> Result<Vec<Token>, LexError> {
    let mut input = text;
    let mut out = Vec::new();
    loop {
        let offset_of = |rest: &str| text.len() - rest.len();
        if trivia(&mut input).is_err() {
            return Err(LexError {
                offset: offset_of(input),
                message: "unreadable whitespace".into(),
            });
        }
        let offset = offset_of(input);
        if input.is_empty() {
            out.push(Token {
                tok: Tok::Eof,
                offset,
            });
            return Ok(out);
        }
        match token.parse_next(&mut input) {
            Ok(tok) => out.push(Token { tok, offset }),
            Err(e) => {
                let message = match e {
                    ErrMode::Cut(ctx) | ErrMode::Backtrack(ctx) => ctx.context().next().cloned(),
                    ErrMode::Incomplete(_) => None,
                };
                let found = text[offset..].chars().next().unwrap_or(' ');
                return Err(LexError {
                    offset,
                    message: message.unwrap_or_else(|| format!("unexpected character '{found}'")),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(text: &str) -> Vec<Tok> {
        tokenize(text)
            .expect("lexes")
            .into_iter()
            .map(|t| t.tok)
            .collect()
    }

    #[test]
    fn lexes_the_literal_forms() {
        assert_eq!(
            toks("5m 1.5h 100ms 2d 3 2.5 'a\\'b' @'c:\\x' h\"s\""),
            vec![
                Tok::TimeSpan(300_000),
                Tok::TimeSpan(5_400_000),
                Tok::TimeSpan(100),
                Tok::TimeSpan(172_800_000),
                Tok::Long(3),
                Tok::Real(2.5),
                Tok::Str("a'b".into()),
                Tok::Str("c:\\x".into()),
                Tok::Str("s".into()),
                Tok::Eof
            ]
        );
        assert_eq!(
            toks("x !contains y !in~ (1..2) // c\n project-away"),
            vec![
                Tok::Ident("x".into()),
                Tok::Bang("!contains".into()),
                Tok::Ident("y".into()),
                Tok::Bang("!in~".into()),
                Tok::Sym("("),
                Tok::Long(1),
                Tok::Sym(".."),
                Tok::Long(2),
                Tok::Sym(")"),
                Tok::Ident("project-away".into()),
                Tok::Eof
            ]
        );
        assert_eq!(
            toks("datetime(2020-07-05) dynamic({\"a\": [1, \")\"]})"),
            vec![
                Tok::DateTime(Some(1_593_907_200_000)),
                Tok::Dynamic(serde_json::json!({"a": [1, ")"]})),
                Tok::Eof
            ]
        );
    }

    #[test]
    fn positions_are_one_based_characters() {
        let idx = LineIndex::new("ab\nçd e");
        assert_eq!(idx.pos(0), Pos { line: 1, column: 1 });
        assert_eq!(idx.pos(3), Pos { line: 2, column: 1 });
        assert_eq!(idx.pos(7), Pos { line: 2, column: 4 });
    }
}
