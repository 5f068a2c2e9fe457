//! Built-in detectors: pure functions from an event's texts to findings (score
//! plus evidence span), run once per event however many rules use them.
//!
//! Each family looks where its risk lives: injection in what goes *into* the
//! model (user messages, retrieved RAG chunks, tool results), PII and secrets,
//! harmful content, refusals and system-prompt leakage in what comes *out*.
//! Spans are character offsets (as Python counts them), excerpts one line.

pub mod harmful;
pub mod injection;
pub mod leakage;
pub mod linear;
pub mod pii;
pub mod refusal;

/// A piece of event text and the field path it came from.
#[derive(Clone, Debug)]
pub struct Text {
    pub field: String,
    pub text: String,
}

/// One match: which detector, how sure, where, and a (masked) excerpt.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    pub detector: String,
    pub score: f64,
    pub field: String,
    pub start: usize,
    pub end: usize,
    pub excerpt: String,
}

/// Excerpt width of a finding that quotes its text, in characters.
const WIDTH: usize = 120;

impl Finding {
    /// A finding at a (character) span of a text, quoting the span as its excerpt.
    pub fn quoting(detector: String, score: f64, t: &Text, start: usize, end: usize) -> Self {
        Finding {
            detector,
            score,
            field: t.field.clone(),
            start,
            end,
            excerpt: excerpt(&t.text, start, end, WIDTH),
        }
    }
}

/// The texts of one event each family scans.
pub struct Texts<'a> {
    /// Untrusted input: user and tool messages, RAG chunks, tool results (not system).
    pub inputs: &'a [Text],
    /// Output messages, reasoning, tool-call arguments.
    pub outputs: &'a [Text],
    /// The system prompt (instructions and system-role messages).
    pub system: &'a [String],
}

/// The families by name; findings are named `family` or `family.kind`.
pub const FAMILIES: [&str; 6] = [
    "prompt_injection",
    "pii",
    "secrets",
    "harmful",
    "refusal",
    "system_prompt_leak",
];

/// Refusals are looked for in what the model said, not in reasoning or tool arguments.
const MESSAGES: &str = "output.messages";

/// Findings of one family (None: no such family).
pub fn family(name: &str, t: &Texts<'_>) -> Option<Vec<Finding>> {
    Some(match name {
        "prompt_injection" => injection::detect(t.inputs),
        "pii" => pii::detect_pii(t.outputs),
        "secrets" => pii::detect_secrets(t.outputs),
        "harmful" => harmful::detect(t.inputs, t.outputs),
        "refusal" => {
            let said: Vec<Text> = t
                .outputs
                .iter()
                .filter(|x| x.field.starts_with(MESSAGES))
                .cloned()
                .collect();
            refusal::detect(&said)
        }
        "system_prompt_leak" => leakage::detect(t.system, t.outputs),
        _ => return None,
    })
}

/// The character offset (Python's string index) of a byte offset of `text`.
pub fn chars(text: &str, byte: usize) -> usize {
    text[..byte].chars().count()
}

/// Whitespace as Python's `str.split()` sees it.
fn is_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// The matched span (character offsets), cut to `width` characters, on one line.
pub fn excerpt(text: &str, start: usize, end: usize, width: usize) -> String {
    let span: String = text
        .chars()
        .skip(start)
        .take(end.saturating_sub(start).min(width))
        .collect();
    span.split(is_space)
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Keeps the first and last 2 characters of a secret or PII match.
pub fn mask(text: &str) -> String {
    let n = text.chars().count();
    if n <= 6 {
        return "*".repeat(n);
    }
    let head: String = text.chars().take(2).collect();
    let tail: String = text.chars().skip(n - 2).collect();
    format!("{head}{}{tail}", "*".repeat(n - 4))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_and_masks_count_characters() {
        assert_eq!(excerpt("héllo  wide\nworld", 1, 17, 120), "éllo wide world");
        assert_eq!(excerpt("abcdef", 0, 6, 3), "abc");
        assert_eq!(mask("4111111111111111"), "41************11");
        assert_eq!(mask("ab"), "**");
        assert_eq!(chars("été", 5), 3);
    }
}
