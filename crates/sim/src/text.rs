//! Bounded echoes of user input in messages.
//!
//! Error messages name what was wrong (a table, a column, a vault), and that name comes from the
//! caller. Echoed whole, a 1M-character name makes a 1 MB gRPC status that standard clients
//! refuse as `RESOURCE_EXHAUSTED`, hiding the real error. Every echo of user input in an error
//! goes through [`clip`]: at most [`ECHO_CHARS_MAX`] characters (counted as Unicode scalar
//! values, never cutting one in half), and when cut, an ellipsis and the original length, so the
//! reader knows the name was longer than what they see.

/// The most characters of user input an error message repeats (names in Azure are at most 260
/// characters; 100 shows any real name whole, or enough of it to recognise).
pub const ECHO_CHARS_MAX: usize = 100;

/// `text` unchanged when it has at most `max_chars` characters; otherwise its first `max_chars`
/// characters, an ellipsis and the original length: `abc… (1000000 characters)`.
pub fn clip(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        None => text.to_string(),
        Some((cut, _)) => format!("{}… ({} characters)", &text[..cut], text.chars().count()),
    }
}

/// [`clip`] at [`ECHO_CHARS_MAX`].
pub fn echo(text: &str) -> String {
    clip(text, ECHO_CHARS_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_unchanged_and_long_text_says_its_length() {
        assert_eq!(clip("abc", 3), "abc");
        assert_eq!(clip("", 0), "");
        assert_eq!(clip("abcd", 3), "abc… (4 characters)");
        assert_eq!(
            clip("ééé", 1),
            "é… (3 characters)",
            "never cuts a character"
        );
        let long = "x".repeat(1_000_000);
        let echoed = echo(&long);
        assert!(echoed.starts_with(&"x".repeat(ECHO_CHARS_MAX)));
        assert!(echoed.ends_with("… (1000000 characters)"));
        assert!(echoed.chars().count() < ECHO_CHARS_MAX + 30);
    }
}
