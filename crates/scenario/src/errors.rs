//! Diagnostics: every problem in a scenario file as `FILE:LINE:COLUMN: what was expected`.
//!
//! Parsing and validation work on byte offsets (TOML spans, positions inside a duration string);
//! this module is the one place that turns an offset into a line and a column, so that every
//! error class reports positions the same way (1-based, columns counted in characters, the
//! convention editors and compilers use). A [`Diagnostic`] always carries the file path, even
//! when the file could not be read, so the message can be clicked in an editor.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem found in a scenario file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file the problem is in (as given by the caller).
    pub file: PathBuf,
    /// 1-based line; 0 when the problem concerns the whole file (e.g. it cannot be read).
    pub line: usize,
    /// 1-based column in characters; 0 with `line == 0`.
    pub column: usize,
    /// What is wrong and what was expected.
    pub message: String,
}

impl Diagnostic {
    /// A problem about the whole file (missing, unreadable, too large).
    pub fn whole_file(file: &Path, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            file: file.to_path_buf(),
            line: 0,
            column: 0,
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file.display(),
                self.line,
                self.column,
                self.message
            )
        }
    }
}

impl std::error::Error for Diagnostic {}

/// A list of diagnostics, displayed one per line (what `cmksim validate` prints).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// Maps byte offsets of one source text to line and column.
#[derive(Clone, Debug)]
pub struct SourceMap<'a> {
    file: &'a Path,
    text: &'a str,
    /// Byte offset at which each line starts.
    line_starts: Vec<usize>,
}

impl<'a> SourceMap<'a> {
    /// Indexes `text`, which was read from `file`.
    pub fn new(file: &'a Path, text: &'a str) -> SourceMap<'a> {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        SourceMap {
            file,
            text,
            line_starts,
        }
    }

    /// The source text.
    pub fn text(&self) -> &'a str {
        self.text
    }

    /// The file path.
    pub fn file(&self) -> &'a Path {
        self.file
    }

    /// 1-based (line, column) of a byte offset (clamped to the text; columns in characters).
    pub fn line_column(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line_index = match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        let line_start = self.line_starts[line_index];
        // Count characters, not bytes; step back to a char boundary if the offset is inside one.
        let mut end = offset;
        while !self.text.is_char_boundary(end) {
            end -= 1;
        }
        let column = self.text[line_start..end].chars().count() + 1;
        (line_index + 1, column)
    }

    /// A diagnostic at a byte offset.
    pub fn at(&self, offset: usize, message: impl Into<String>) -> Diagnostic {
        let (line, column) = self.line_column(offset);
        Diagnostic {
            file: self.file.to_path_buf(),
            line,
            column,
            message: message.into(),
        }
    }

    /// A diagnostic at the start of a span.
    pub fn span(&self, span: &Range<usize>, message: impl Into<String>) -> Diagnostic {
        self.at(span.start, message)
    }

    /// The byte offset of character `position` (a byte offset into the string's value) inside a
    /// TOML string whose whole literal (quotes included) occupies `span`. Exact for strings
    /// without escapes (durations, names); falls back to the opening quote otherwise.
    pub fn offset_in_string(&self, span: &Range<usize>, value: &str, position: usize) -> usize {
        let literal = self.text.get(span.clone()).unwrap_or("");
        let quote_len = if literal.starts_with("\"\"\"") || literal.starts_with("'''") {
            3
        } else if literal.starts_with('"') || literal.starts_with('\'') {
            1
        } else {
            0
        };
        let inner = literal.get(quote_len..literal.len().saturating_sub(quote_len));
        if inner == Some(value) {
            span.start + quote_len + position.min(value.len())
        } else {
            span.start
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_map_to_lines_and_character_columns() {
        let text = "a = 1\nbé = \"x\"\n\nz";
        let map = SourceMap::new(Path::new("f.toml"), text);
        assert_eq!(map.line_column(0), (1, 1));
        assert_eq!(map.line_column(4), (1, 5));
        assert_eq!(map.line_column(6), (2, 1));
        // "bé = " : é is two bytes but one column.
        let quote = text.find('"').unwrap();
        assert_eq!(map.line_column(quote), (2, 6));
        assert_eq!(map.line_column(text.len()), (4, 2));
        assert_eq!(map.at(quote, "m").to_string(), "f.toml:2:6: m".to_string());
    }

    #[test]
    fn positions_inside_strings() {
        let text = "d = \"1h5x\"";
        let map = SourceMap::new(Path::new("f"), text);
        let span = 4..10;
        assert_eq!(map.offset_in_string(&span, "1h5x", 3), 8);
        assert_eq!(map.line_column(8), (1, 9));
        // An escaped string falls back to the opening quote.
        let text = "d = \"a\\tb\"";
        let map = SourceMap::new(Path::new("f"), text);
        assert_eq!(map.offset_in_string(&(4..10), "a\tb", 2), 4);
    }

    #[test]
    fn whole_file_diagnostics_have_no_position() {
        let d = Diagnostic::whole_file(Path::new("x.toml"), "cannot read: gone");
        assert_eq!(d.to_string(), "x.toml: cannot read: gone");
    }
}
