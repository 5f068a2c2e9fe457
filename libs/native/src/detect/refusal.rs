//! Refusals: the model declined. One is routine; many from one user is a signal.
//!
//! Matched near the start of the answer (the first [`HEAD`] characters), where
//! models put their refusal, so an answer that merely quotes a refusal later is
//! not one.
//!
//! The pattern is Python `re` syntax, matched case-insensitively with Unicode
//! semantics (not RE2). Rust's engine is made to agree with Python's: the
//! leading `\b` is Python's boundary (the character before is not a letter,
//! number or `_`), `\s` also takes U+001C..U+001F, and `İ` / `ı`, which Python
//! matches with `i` when ignoring case, are read as `i`.

use std::sync::LazyLock;

use regex::{Regex, RegexBuilder};

use super::{chars, Finding, Text};

/// The refusal phrasings (Python `re` syntax, case-insensitive).
const REFUSAL: &str = concat!(
    r"\b(?:i(?:'m| am)? (?:sorry|afraid),? (?:but )?i (?:can(?:no|')t|won'?t|am (?:not able|",
    r"unable)|must decline)|i (?:can(?:no|')t|won'?t|will not|am unable to|am not able to|",
    r"must decline to|have to decline to|(?:must|have to) refuse to|am not (?:allowed|",
    r"permitted) to)\s+(?:help|assist|provide|comply|do that|share|fulfil+|create|write|",
    r"generate|engage|support|give|answer|discuss|continue|reveal|disclose)|",
    r"as an ai(?: language model)?,? i (?:can(?:no|')t|don'?t|am not able)|",
    r"i(?:'m| am) not (?:able|going) to (?:help|assist|provide|do that)|",
    r"(?:this|that|your) request (?:violates|goes against|is against)|",
    r"i (?:can(?:no|')t|won'?t) (?:help|assist) with (?:that|this)|",
    r"(?:sorry|unfortunately),? (?:but )?(?:i|that'?s something i) can(?:no|')t)",
);

/// Only the first `HEAD` characters of an answer are read.
const HEAD: usize = 300;

/// Confidence of a refusal finding.
const SCORE: f64 = 0.9;

/// [`REFUSAL`] for Rust's engine; group 1 is the refusal (the match of Python's pattern).
static PATTERN: LazyLock<Regex> = LazyLock::new(|| {
    let body = REFUSAL
        .strip_prefix(r"\b")
        .expect("the pattern starts at a word boundary")
        .replace(r"\s", r"[\s\x1C-\x1F]");
    RegexBuilder::new(&format!(r"(?:^|(?-i:[^\p{{L}}\p{{N}}_]))({body})"))
        .case_insensitive(true)
        .build()
        .expect("the refusal pattern compiles")
});

/// The answer's head as matched: U+2019 read as an apostrophe, `İ` and `ı` as
/// `i` (character for character, so character offsets are the original's).
fn head(text: &str) -> String {
    text.chars()
        .take(HEAD)
        .map(|c| match c {
            '\u{2019}' => '\'',
            '\u{130}' | '\u{131}' => 'i',
            c => c,
        })
        .collect()
}

/// Character span of the first refusal in the head of a text.
pub fn find(text: &str) -> Option<(usize, usize)> {
    let head = head(text);
    let m = PATTERN.captures(&head)?.get(1)?;
    Some((chars(&head, m.start()), chars(&head, m.end())))
}

/// A finding per text that opens with a refusal.
pub fn detect(texts: &[Text]) -> Vec<Finding> {
    texts
        .iter()
        .filter_map(|t| {
            let (start, end) = find(&t.text)?;
            Some(Finding::quoting(
                "refusal".to_string(),
                SCORE,
                t,
                start,
                end,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Vec<Finding> {
        detect(&[Text {
            field: "output.messages[0].parts[0].text".into(),
            text: text.into(),
        }])
    }

    #[test]
    fn a_refusal_is_found() {
        let [f] = &one("I\u{2019}m sorry, but I can\u{2019}t comply with this request.")[..] else {
            panic!("one finding expected");
        };
        assert_eq!((f.detector.as_str(), f.score), ("refusal", 0.9));
        assert_eq!((f.start, f.end), (0, 22));
        assert_eq!(f.excerpt, "I\u{2019}m sorry, but I can\u{2019}t");
    }

    #[test]
    fn an_answer_is_not_a_refusal() {
        assert!(one("Sure! Here is a recipe for chocolate chip cookies.").is_empty());
        assert!(one("I cannot stress enough how useful backups are.").is_empty());
        let late = "x".repeat(HEAD) + " I can't help with that.";
        assert!(one(&late).is_empty());
    }

    #[test]
    fn offsets_are_characters_and_boundaries_are_pythons() {
        assert_eq!(find("Désolé — I cannot help you."), Some((9, 22)));
        assert_eq!(find("İ won't\x1chelp"), Some((0, 12)));
        assert_eq!(find("éI can't help"), None);
        assert_eq!(find("²I can't help"), None);
        assert_eq!(find("\u{301}I can't help"), Some((1, 13)));
    }
}
