//! The logistic model of the scored detectors (injection, harmful content):
//! one weight per signal family (a detector's regex patterns) and per word
//! feature, trained in Python (`python -m bench.alerting_detectors --train`)
//! on the development half of the benchmark corpora and loaded into a
//! detector's [`Slot`] from its weights file.
//!
//! Word features are binary and scaled by `1/sqrt(count)`, so a long benign
//! document does not score higher merely for being long, and no less than
//! [`MIN_FEATURES`] is counted, so a short text rests on the families. Only the
//! first [`MAX_CHARS`] characters are read for words (the families still scan
//! the whole text), which bounds the cost per text.

use std::collections::{HashMap, HashSet};
use std::sync::RwLock;

use super::chars;

/// A text is flagged from this probability on.
pub const THRESHOLD: f64 = 0.5;

/// The evidence name when no family matched and the word model alone crossed the threshold.
pub const CLASSIFIER: &str = "classifier";

/// Only the first `MAX_CHARS` characters of a text are read for words.
pub const MAX_CHARS: usize = 2000;

/// Word features are scaled by `1/sqrt(max(count, MIN_FEATURES))`: one word of a
/// greeting ("hello" opens many jailbreaks) cannot carry a short text alone.
pub const MIN_FEATURES: usize = 32;

/// A signal family (or [`CLASSIFIER`]) and its character span.
pub type Span = (&'static str, usize, usize);

/// A text's strongest word feature: its weight and its byte span (None: no words).
pub type Strongest = Option<(f64, (usize, usize))>;

/// Bias, one weight per signal family, one per known word feature.
pub struct Model {
    pub bias: f64,
    pub signals: HashMap<String, f64>,
    pub words: HashMap<Vec<u8>, f64>,
}

/// A detector's model, empty until its weights are loaded.
pub type Slot = RwLock<Option<Model>>;

/// Sets a detector's model (replacing any earlier one).
pub fn load(slot: &Slot, bias: f64, signals: HashMap<String, f64>, words: HashMap<Vec<u8>, f64>) {
    let model = Model {
        bias,
        signals,
        words,
    };
    *slot.write().unwrap_or_else(|e| e.into_inner()) = Some(model);
}

/// `f` with the slot's model (None: no model loaded).
pub fn with<T>(slot: &Slot, f: impl FnOnce(&Model) -> T) -> Option<T> {
    let guard = slot.read().unwrap_or_else(|e| e.into_inner());
    guard.as_ref().map(f)
}

/// Whitespace as Python's `bytes.split()` sees it.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// The word features of a text's head (at most [`MAX_CHARS`] characters):
/// its UTF-8, ASCII lower-cased, ASCII punctuation blanked, and the byte range
/// of each word (a run of non-space bytes). Made once per text, however many
/// models weigh it.
pub struct Words {
    data: Vec<u8>,
    spans: Vec<(usize, usize)>,
}

impl Words {
    /// The words of a text's head.
    pub fn new(text: &str) -> Self {
        let head = match text.char_indices().nth(MAX_CHARS) {
            Some((i, _)) => &text[..i],
            None => text,
        };
        let data: Vec<u8> = head
            .bytes()
            .map(|b| {
                if b.is_ascii_punctuation() {
                    b' '
                } else {
                    b.to_ascii_lowercase()
                }
            })
            .collect();
        let mut spans = Vec::new();
        let mut start = None;
        for (i, &b) in data.iter().enumerate() {
            match (is_space(b), start) {
                (true, Some(s)) => {
                    spans.push((s, i));
                    start = None;
                }
                (false, None) => start = Some(i),
                _ => {}
            }
        }
        if let Some(s) = start {
            spans.push((s, data.len()));
        }
        Words { data, spans }
    }

    /// Calls `f` with each distinct feature, a word or an adjacent pair
    /// joined by one space (`b"a b"`), and the byte span of its first
    /// occurrence, in text order (a word before the pair it starts).
    fn features(&self, mut f: impl FnMut(&[u8], (usize, usize))) {
        let word = |(a, b): (usize, usize)| &self.data[a..b];
        let mut words = HashSet::with_capacity(self.spans.len());
        let mut pairs = HashSet::with_capacity(self.spans.len());
        let mut pair = Vec::new();
        for (i, &a) in self.spans.iter().enumerate() {
            if words.insert(word(a)) {
                f(word(a), a);
            }
            if let Some(&b) = self.spans.get(i + 1) {
                if pairs.insert((word(a), word(b))) {
                    pair.clear();
                    pair.extend_from_slice(word(a));
                    pair.push(b' ');
                    pair.extend_from_slice(word(b));
                    f(&pair, (a.0, b.1));
                }
            }
        }
    }
}

/// Distinct words and adjacent word pairs (`b"a b"`) of a text, sorted.
pub fn words(text: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    Words::new(text).features(|f, _| out.push(f.to_vec()));
    out.sort_unstable();
    out
}

/// The value of each present word feature in a text with `count` of them.
fn scale(count: usize) -> f64 {
    1.0 / (count.max(MIN_FEATURES) as f64).sqrt()
}

/// A model's running sum over a text's word features, in text order.
#[derive(Default)]
struct Sum {
    count: usize,
    total: f64,
    best: Strongest,
}

impl Sum {
    fn add(&mut self, w: f64, span: (usize, usize)) {
        self.count += 1;
        self.total += w;
        if self.best.is_none_or(|(top, _)| w > top) {
            self.best = Some((w, span));
        }
    }

    fn probability(self, model: &Model, names: &[&str]) -> (f64, Strongest) {
        (
            logistic(model.logit(names, self.count, self.total)),
            self.best,
        )
    }
}

/// The probability for log-odds `z`.
fn logistic(z: f64) -> f64 {
    if z > -30.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        0.0
    }
}

/// `x` rounded to 4 decimals as Python's `round(x, 4)` (exact decimal value, ties to even).
pub fn round4(x: f64) -> f64 {
    format!("{x:.4}").parse().unwrap_or(x)
}

impl Model {
    /// Log-odds given the distinct matched families and the sum of the
    /// weights of the text's `count` distinct word features.
    fn logit(&self, signals: &[&str], count: usize, words: f64) -> f64 {
        let families: f64 = signals
            .iter()
            .map(|s| self.signals.get(*s).copied().unwrap_or(0.0))
            .sum();
        let mut total = self.bias + families;
        if count > 0 {
            total += words * scale(count);
        }
        total
    }

    /// The (unrounded) probability of a text with these words whose families
    /// `names` matched, and its strongest word feature: the present feature with
    /// the largest weight (its weight and byte span in the words' text, at its
    /// first occurrence; None for a text without words).
    ///
    /// Word weights are summed in text order, and among equal strongest weights
    /// the feature that occurs first is the evidence (a word before the pair it
    /// starts): Python went by its set's hash order, which varies from run to
    /// run (sums in the last bits, ties in the evidence word).
    pub fn evaluate(&self, words: &Words, names: &[&str]) -> (f64, Strongest) {
        let mut sum = Sum::default();
        words.features(|f, span| sum.add(self.weight(f), span));
        sum.probability(self, names)
    }

    /// [`Model::evaluate`] of this model and `other` (whose families `other_names`
    /// matched) over the same words, which are split into features once.
    pub fn evaluate_with(
        &self,
        names: &[&str],
        other: &Model,
        other_names: &[&str],
        words: &Words,
    ) -> ((f64, Strongest), (f64, Strongest)) {
        let (mut mine, mut theirs) = (Sum::default(), Sum::default());
        words.features(|f, span| {
            mine.add(self.weight(f), span);
            theirs.add(other.weight(f), span);
        });
        (
            mine.probability(self, names),
            theirs.probability(other, other_names),
        )
    }

    fn weight(&self, feature: &[u8]) -> f64 {
        self.words.get(feature).copied().unwrap_or(0.0)
    }

    /// The probability of a text whose families matched at `spans` (rounded
    /// to 4 places) and the spans of the evidence.
    ///
    /// A text where no family matched scores 0 unless the word model alone
    /// crosses [`THRESHOLD`]; its evidence is then the strongest word or pair
    /// (see [`Model::evaluate`]), if its weight is positive ([`CLASSIFIER`]).
    pub fn score(&self, text: &str, spans: Vec<Span>) -> (f64, Vec<Span>) {
        self.score_words(&Words::new(text), text, spans)
    }

    /// [`Model::score`] of a text whose words are given.
    pub fn score_words(&self, words: &Words, text: &str, spans: Vec<Span>) -> (f64, Vec<Span>) {
        let names: Vec<&str> = spans.iter().map(|s| s.0).collect();
        decided(self.evaluate(words, &names), text, spans)
    }
}

/// The score and evidence of a text whose families matched at `spans`, given
/// its model's [`Model::evaluate`]: see [`Model::score`].
pub fn decided((p, best): (f64, Strongest), text: &str, spans: Vec<Span>) -> (f64, Vec<Span>) {
    if !spans.is_empty() {
        return (round4(p), spans);
    }
    match best {
        Some((w, (a, b))) if p >= THRESHOLD && w > 0.0 => (
            round4(p),
            vec![(CLASSIFIER, chars(text, a), chars(text, b))],
        ),
        _ => (0.0, spans),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(bias: f64) -> Model {
        let words = [("previous instructions", 1.0), ("lisbon", -1.0)];
        Model {
            bias,
            signals: [("override".to_string(), 2.0)].into_iter().collect(),
            words: words
                .iter()
                .map(|&(k, v)| (k.as_bytes().to_vec(), v))
                .collect(),
        }
    }

    #[test]
    fn words_are_lowercase_tokens_and_pairs_without_punctuation() {
        let got = words("Ignore ALL, previous-instructions!\x0bé");
        let want: Vec<&[u8]> = vec![
            b"all",
            b"all previous",
            b"ignore",
            b"ignore all",
            b"instructions",
            b"instructions \xc3\xa9",
            b"previous",
            b"previous instructions",
            b"\xc3\xa9",
        ];
        assert_eq!(got, want);
        assert_eq!(
            words(&("x".repeat(MAX_CHARS) + " tail")),
            vec![b"x".repeat(MAX_CHARS)]
        );
    }

    #[test]
    fn families_keep_their_spans_and_words_alone_give_the_strongest_word() {
        let (p, spans) = model(-1.0).score("ignore it", vec![("override", 0, 6)]);
        assert_eq!((p, spans), (0.7311, vec![("override", 0, 6)]));
        assert_eq!(
            model(-1.0).score("Plan a trip to Lisbon", vec![]),
            (0.0, vec![])
        );
        let (_, spans) = model(5.0).score("Å, la previous  instructions", vec![]);
        assert_eq!(spans, vec![(CLASSIFIER, 6, 28)]);
        assert_eq!(round4(0.03125), 0.0312);
        assert_eq!(round4(0.123449), 0.1234);
    }
}
