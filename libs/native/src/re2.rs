//! RE2 patterns on Rust's regex engine, with RE2's meaning kept.
//!
//! Rules and detectors are written (and validated) as RE2 patterns. Both
//! engines run in linear time, but in RE2 `\w`, `\d`, `\s` and `\b` are ASCII
//! while Rust's are Unicode: the pattern is rewritten so that they stay ASCII.

use regex::{Regex, RegexBuilder};

use crate::Error;

/// The pattern with RE2's ASCII classes and word boundaries spelled for Rust.
pub fn translate(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut chars = pattern.chars().peekable();
    // Inside a bracketed class: `[` is literal there in RE2 but opens a nested class in Rust.
    let mut in_class = false;
    let mut class_start = false;
    while let Some(c) = chars.next() {
        let starting = std::mem::take(&mut class_start);
        match c {
            '\\' => {
                let Some(e) = chars.next() else {
                    out.push('\\');
                    break;
                };
                let (outside, inside) = match e {
                    'w' => ("[0-9A-Za-z_]", "0-9A-Za-z_"),
                    'W' => ("[^0-9A-Za-z_]", "[:^word:]"),
                    'd' => ("[0-9]", "0-9"),
                    'D' => ("[^0-9]", "[:^digit:]"),
                    's' => ("[\\t\\n\\f\\r ]", "\\t\\n\\f\\r "),
                    'S' => ("[^\\t\\n\\f\\r ]", "[:^space:]"),
                    'b' if !in_class => ("(?-u:\\b)", ""),
                    'B' if !in_class => ("(?-u:\\B)", ""),
                    _ => {
                        out.push('\\');
                        out.push(e);
                        continue;
                    }
                };
                out.push_str(if in_class { inside } else { outside });
            }
            '[' if !in_class => {
                out.push('[');
                in_class = true;
                class_start = true;
                if chars.peek() == Some(&'^') {
                    out.push('^');
                    chars.next();
                }
            }
            '[' if chars.peek() == Some(&':') => {
                // A POSIX class such as [:alpha:], copied through its closing `:]`.
                out.push('[');
                for p in chars.by_ref() {
                    out.push(p);
                    if p == ']' {
                        break;
                    }
                }
            }
            '[' | '&' | '~' => {
                out.push('\\');
                out.push(c);
            }
            '-' if in_class && chars.peek() == Some(&'-') => out.push_str("\\-"),
            ']' if in_class && !starting => {
                out.push(']');
                in_class = false;
            }
            _ => out.push(c),
        }
    }
    out
}

/// Bytes a pattern compiles to, at most, once it runs (the detectors', a stored rule's).
pub const COMPILED_BYTES: usize = 32 << 20;

/// Bytes a new rule's pattern may compile to: a tenant holds up to 128 text scans,
/// and at 32 MiB each (`\pL{300}` is about 30) a `rules.write` key could make one
/// tenant's rules hold gigabytes of every alerting process.
pub const NEW_RULE_BYTES: usize = 2 << 20;

/// A compiled RE2 pattern: `case_insensitive` and `dot_nl` as RE2's options of those names.
pub fn compile(pattern: &str, case_insensitive: bool, dot_nl: bool) -> Result<Regex, Error> {
    compile_within(pattern, case_insensitive, dot_nl, COMPILED_BYTES)
}

/// :func:`compile`, refusing a pattern that compiles to more than `limit` bytes.
pub fn compile_within(
    pattern: &str,
    case_insensitive: bool,
    dot_nl: bool,
    limit: usize,
) -> Result<Regex, Error> {
    RegexBuilder::new(&translate(pattern))
        .case_insensitive(case_insensitive)
        .dot_matches_new_line(dot_nl)
        .size_limit(limit)
        .build()
        .map_err(|e| Error::new(format!("pattern {pattern:?}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(pattern: &str, text: &str) -> Option<(usize, usize)> {
        compile(pattern, false, false)
            .expect("compiles")
            .find(text)
            .map(|m| (m.start(), m.end()))
    }

    #[test]
    fn classes_and_boundaries_stay_ascii() {
        assert_eq!(find(r"\w+", "éé x"), Some((5, 6)));
        assert_eq!(find(r"\bfoo\b", "éfooé"), Some((2, 5)));
        assert_eq!(find(r"\d+", "٣ 42"), Some((3, 5)));
        assert_eq!(find(r"[\w-]+", "é a-b"), Some((3, 6)));
        assert_eq!(find(r"[^\w]", "a é"), Some((1, 2)));
        assert_eq!(find(r"\W+", "aé b"), Some((1, 4)));
    }

    #[test]
    fn brackets_inside_classes_are_literal() {
        assert_eq!(find(r"[[]x", "a[x"), Some((1, 3)));
        assert_eq!(find(r"[]a]+", "b]a"), Some((1, 3)));
        assert_eq!(find(r"[[:digit:]x]+", "a1x"), Some((1, 3)));
        assert_eq!(find(r"[a&&b]+", "&&"), Some((0, 2)));
    }
}
