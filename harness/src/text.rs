//! User text shown back on a terminal or in a one-line message: control
//! characters (ANSI escapes, newlines in a variant name or a policy) are
//! shown escaped, so what a user typed or a file held can neither repaint
//! the terminal nor break "one line per error".

/// `s` with every control character written as its Rust escape (`\n`,
/// `\u{1b}`).
pub fn printable(s: &str) -> String {
    escape(s, |_| true)
}

/// As [`printable`], keeping line breaks: for a message that quotes
/// several lines on purpose (a guest's console tail), where only escape
/// sequences must not reach the terminal.
pub fn printable_lines(s: &str) -> String {
    escape(s, |c| c != '\n')
}

fn escape(s: &str, escaped: impl Fn(char) -> bool) -> String {
    if !s.chars().any(|c| c.is_control() && escaped(c)) {
        return s.to_string();
    }
    s.chars()
        .flat_map(|c| {
            if c.is_control() && escaped(c) {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert_eq!(super::printable("fast+balancing µ"), "fast+balancing µ");
        assert_eq!(super::printable("a\nb\u{1b}[31m"), "a\\nb\\u{1b}[31m");
        assert_eq!(super::printable_lines("a\nb\u{1b}[31m"), "a\nb\\u{1b}[31m");
    }
}
