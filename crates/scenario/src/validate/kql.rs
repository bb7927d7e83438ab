//! Validation of `kql = "..."` (on a `query` step or a `query` expectation): the text is parsed
//! with `cmksim_kql::parse`, and a syntax error is reported at the character it names, inside the
//! TOML string.
//!
//! The KQL parser reports a 1-based line and a column counted in characters of the query's
//! *value*; the diagnostic needs a byte offset in the *file*. The two differ by the opening
//! delimiter and by everything TOML rewrites while reading the string, so the literal is decoded
//! again here, character by character, remembering where in the file each value character came
//! from:
//!
//! - a single-line string without escapes: the error's column is the string's start column + 1
//!   (the quote) + the KQL column - 1, on the string's line;
//! - an escape (`\"`, `\\`, `\t`, `\u00e9`, ...) is one value character written as several file
//!   characters: the position is that of its backslash, and later columns shift accordingly;
//! - a multi-line string (`"""` or `'''`): the newline right after the opening delimiter is not
//!   part of the value (TOML trims it), so KQL line 1 starts on the next file line; KQL line n is
//!   file line (first content line + n - 1) unless a line-ending backslash (`\` at the end of a
//!   line in a `"""` string) joins lines, which the decoding follows too; `\r\n` is one value
//!   character (`\n`), as TOML reads it;
//! - a position just past the last character (an error at the end of the query) is the closing
//!   delimiter.
//!
//! When the decoding does not reproduce the value the TOML reader produced (a TOML feature this
//! decoder does not know), the diagnostic falls back to the opening delimiter, which is still on
//! the right line for single-line strings; it never points at a wrong character inside.

use std::ops::Range;

use super::Ctx;
use crate::model::KqlQuery;
use crate::raw::S;

/// Parses `s` as KQL; a syntax error becomes a diagnostic at the offending character.
pub(super) fn query(ctx: &mut Ctx<'_>, s: &S<String>) -> Option<KqlQuery> {
    let text = s.get_ref();
    if text.trim().is_empty() {
        ctx.err(
            s.span(),
            "kql must not be empty: write a query, e.g. \"Heartbeat | count\"",
        );
        return None;
    }
    match cmksim_kql::parse(text) {
        Ok(parsed) => Some(KqlQuery {
            text: text.clone(),
            tables: parsed.tables(),
        }),
        Err(e) => {
            let offset = offset_of(ctx.map.text(), &s.span(), text, e.line, e.column);
            ctx.err(offset..offset, format!("kql: {}", e.message));
            None
        }
    }
}

/// The byte offset in `source` of the KQL position (`line`, `column`: 1-based, columns in
/// characters) inside the TOML string literal at `span` whose value is `value`.
fn offset_of(source: &str, span: &Range<usize>, value: &str, line: u32, column: u32) -> usize {
    let Some(literal) = source.get(span.clone()) else {
        return span.start;
    };
    let Some(decoded) = decode(literal) else {
        return span.start;
    };
    if !decoded.chars.iter().map(|(c, _)| *c).eq(value.chars()) {
        return span.start;
    }
    let (mut at_line, mut at_column) = (1u32, 1u32);
    for (c, offset) in &decoded.chars {
        if (at_line, at_column) == (line, column) {
            return span.start + offset;
        }
        if *c == '\n' {
            at_line += 1;
            at_column = 1;
        } else {
            at_column += 1;
        }
    }
    span.start + decoded.closing
}

/// A string literal's value characters, each with the byte offset (in the literal) of the text
/// that produced it, and the offset of the closing delimiter.
struct Decoded {
    chars: Vec<(char, usize)>,
    closing: usize,
}

/// Decodes a TOML string literal (TOML 1.0: basic, multi-line basic, literal, multi-line
/// literal); `None` for anything else.
fn decode(literal: &str) -> Option<Decoded> {
    let (delimiter, multi_line, escapes) = if literal.starts_with("\"\"\"") {
        ("\"\"\"", true, true)
    } else if literal.starts_with("'''") {
        ("'''", true, false)
    } else if literal.starts_with('"') {
        ("\"", false, true)
    } else if literal.starts_with('\'') {
        ("'", false, false)
    } else {
        return None;
    };
    if literal.len() < 2 * delimiter.len() || !literal.ends_with(delimiter) {
        return None;
    }
    let closing = literal.len() - delimiter.len();
    let mut start = delimiter.len();
    if multi_line {
        // TOML trims a newline immediately after the opening delimiter.
        if literal[start..].starts_with("\r\n") {
            start += 2;
        } else if literal[start..].starts_with('\n') {
            start += 1;
        }
    }
    let body = &literal[start..closing];
    let mut chars = Vec::with_capacity(body.len());
    let mut iter = body.char_indices().peekable();
    while let Some((i, c)) = iter.next() {
        let offset = start + i;
        match c {
            '\r' if multi_line && iter.peek().map(|(_, n)| *n) == Some('\n') => {
                iter.next();
                chars.push(('\n', offset));
            }
            '\\' if escapes => {
                let (_, e) = iter.next()?;
                let decoded = match e {
                    'b' => '\u{8}',
                    't' => '\t',
                    'n' => '\n',
                    'f' => '\u{c}',
                    'r' => '\r',
                    '"' => '"',
                    '\\' => '\\',
                    'u' | 'U' => {
                        let digits = if e == 'u' { 4 } else { 8 };
                        let mut code = 0u32;
                        for _ in 0..digits {
                            let (_, d) = iter.next()?;
                            code = code * 16 + d.to_digit(16)?;
                        }
                        char::from_u32(code)?
                    }
                    ' ' | '\t' | '\r' | '\n' if multi_line => {
                        // A line-ending backslash: it and every following space, tab and newline
                        // are not part of the value.
                        let mut saw_newline = e == '\n';
                        while let Some((_, n)) =
                            iter.next_if(|(_, n)| matches!(n, ' ' | '\t' | '\r' | '\n'))
                        {
                            saw_newline |= n == '\n';
                        }
                        if !saw_newline {
                            return None;
                        }
                        continue;
                    }
                    _ => return None,
                };
                chars.push((decoded, offset));
            }
            _ => chars.push((c, offset)),
        }
    }
    Some(Decoded { chars, closing })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The source offset of (line, column) inside the first string literal of `source`.
    fn at(source: &str, literal: &str, value: &str, line: u32, column: u32) -> usize {
        let start = source.find(literal).expect("literal in source");
        offset_of(source, &(start..start + literal.len()), value, line, column)
    }

    #[test]
    fn single_line_basic_string_without_escapes() {
        let source = "kql = \"Heartbeat | wher x\"";
        // KQL column 13 (`wher`) is file column 7 (the quote) + 13.
        let offset = at(
            source,
            "\"Heartbeat | wher x\"",
            "Heartbeat | wher x",
            1,
            13,
        );
        assert_eq!(&source[offset..offset + 4], "wher");
        assert_eq!(offset, 6 + 1 + 13 - 1);
        // Past the end: the closing quote.
        let end = at(
            source,
            "\"Heartbeat | wher x\"",
            "Heartbeat | wher x",
            1,
            19,
        );
        assert_eq!(end, source.len() - 1);
    }

    #[test]
    fn escapes_shift_later_columns() {
        let source = r#"kql = "T | where C == \"a\" | x""#;
        let literal = r#""T | where C == \"a\" | x""#;
        let value = "T | where C == \"a\" | x";
        let column = value.find('x').unwrap() as u32 + 1;
        let offset = at(source, literal, value, 1, column);
        assert_eq!(&source[offset..], "x\"");
        // A unicode escape is one value character.
        let source = r#"kql = "é\u00e9 | ?""#;
        let offset = at(source, r#""é\u00e9 | ?""#, "éé | ?", 1, 6);
        assert_eq!(&source[offset..offset + 1], "?");
    }

    #[test]
    fn multi_line_strings() {
        let source = "kql = \"\"\"\nHeartbeat\n| summarize ?\n\"\"\"";
        let literal = &source[6..];
        let value = "Heartbeat\n| summarize ?\n";
        let offset = at(source, literal, value, 2, 13);
        assert_eq!(&source[offset..offset + 1], "?");
        let source = "kql = '''\r\nHeartbeat\r\n| take ?'''";
        let offset = at(source, &source[6..], "Heartbeat\n| take ?", 2, 8);
        assert_eq!(&source[offset..offset + 1], "?");
        // A line-ending backslash joins lines.
        let source = "kql = \"\"\"Heartbeat \\\n    | take ?\"\"\"";
        let offset = at(source, &source[6..], "Heartbeat | take ?", 1, 18);
        assert_eq!(&source[offset..offset + 1], "?");
    }

    #[test]
    fn an_unknown_shape_falls_back_to_the_opening_delimiter() {
        let source = "kql = \"abc\"";
        assert_eq!(at(source, "\"abc\"", "not the value", 1, 2), 6);
    }
}
