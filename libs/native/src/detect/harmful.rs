//! Harmful-content categories, in input (requests) and output (completions).
//!
//! A lexicon per category of phrases that are specific to the harm (how to make a
//! weapon, self-harm methods, malware, ...), not single alarming words, so news
//! and ordinary questions stay quiet; it finds a quarter of harmful requests.
//! The score is the probability of a logistic model ([`super::linear`]) over
//! the categories that matched and the text's words and word pairs (weights
//! in `harmful_model.json`, loaded with [`load_model`]), which also flags
//! requests no category matched; a category's match scores at least [`FLOOR`]
//! whatever the model says. Findings are named `harmful.<category>`,
//! one per category that matched, with the category's span as evidence, or
//! `harmful.classifier` (the strongest word) when the words alone cross the
//! threshold. Until a model is loaded the detector finds nothing.
//!
//! Patterns are RE2 syntax (case-insensitive, `.` matching newlines), searched
//! together by a [`PatternSet`].

use std::collections::HashMap;
use std::sync::{LazyLock, RwLock};

use super::injection::PatternSet;
use super::linear::{self, Model, Slot, Span};
use super::{Finding, Text};

/// Asking for or giving instructions: prefixed to the categories that are harmful as a how-to.
const HOWTO: &str = concat!(
    r"(?:how (?:to|do i|can i|would (?:i|one|someone))|instructions?|steps?|step-by-step|",
    r"guide|tutorial|recipe|ways? to|write|create|give|explain|describe|detail|list|",
    r"tips|help me|teach me|make|build|generate|develop|design)",
);

/// The categories: (name, RE2 pattern, whether [`HOWTO`] is prefixed), in the
/// order they are reported.
const CATEGORIES: [(&str, &str, bool); 9] = [
    (
        "weapons",
        concat!(
            r"(?:\W+\w+){0,8}?\W+(?:bombs?|explosives?|pipe bombs?|ied|detonators?|",
            r"nerve agents?|sarin|vx|ricin|anthrax|mustard gas|chemical weapons?|",
            r"biological (?:weapons?|warfare)|bioweapons?|(?:chemical|biological) warfare agents?|",
            r"dirty bombs?|ghost guns?|untraceable (?:gun|firearm)s?|",
            r"(?:fully )?automatic (?:rifle|weapon)s?|silencers?|napalm|thermite|molotov|",
            r"dimethylmercury|tetrodotoxin|botulinum|nitroglycerin|tatp|semtex)\b",
        ),
        true,
    ),
    (
        "self_harm",
        concat!(
            r"\b(?:how (?:to|can i|do i)|best way to|easiest way to|painless(?:ly)? ways? to)",
            r"(?:\W+\w+){0,4}?\W+(?:kill myself|end my life|commit suicide|hang myself|",
            r"overdose|cut myself|self[- ]harm)\b|\b(?:i want to|going to) (?:kill myself|",
            r"end (?:it all|my life)|die)\b",
        ),
        false,
    ),
    (
        "violence",
        concat!(
            r"(?:\W+\w+){0,8}?\W+(?:kill|murder|assassinate|poison|torture|kidnap|",
            r"strangle|stab|shoot)\w*\b(?:\W+\w+){0,3}?\W+(?:someone|a person|people|him|her|",
            r"them|my|the|an?|children|civilians)\b|\b(?:mass shooting|school shooting|",
            r"terror(?:ist)? attack)\b",
        ),
        true,
    ),
    (
        "cyber",
        concat!(
            r"(?:\W+\w+){0,8}?\W+(?:ransomware|keylogger|malware|botnet|rootkit|",
            r"trojan|spyware|computer virus|worm|exploit|sql injection|ddos|phishing|",
            r"credential stuffing|zero[- ]day)\w*\b|\b(?:hack|break) into\b(?:\W+\w+){0,4}?\W+",
            r"(?:accounts?|systems?|networks?|servers?|databases?|emails?|phones?|computers?)\b",
        ),
        true,
    ),
    (
        "drugs",
        concat!(
            r"(?:\W+\w+){0,8}?\W+(?:synthesi[sz]\w*|cook|manufactur\w*|produce|",
            r"extract)\b(?:\W+\w+){0,4}?\W+(?:meth(?:amphetamine)?|fentanyl|heroin|cocaine|lsd|",
            r"mdma|crack|ghb|carfentanil|parathion)\b|\b(?:synthesi[sz]\w*|cook\w*|",
            r"manufactur\w*)\b(?:\W+\w+){0,3}?\W+(?:meth(?:amphetamine)?|fentanyl|heroin|",
            r"cocaine|lsd|mdma|carfentanil|parathion)\b",
        ),
        true,
    ),
    (
        "hate",
        concat!(
            r"\b(?:why|explain why|prove that|essay (?:on|about) why|argue that)\b(?:\W+\w+){0,6}?",
            r"\W+(?:are|is) (?:inferior|subhuman|vermin|animals|evil|criminals)\b|",
            r"\b(?:ethnic cleansing|racial purity|white power|gas the)\b|\b(?:inherently|genetically|",
            r"naturally) (?:less|more) (?:intelligent|capable|violent|criminal)\b",
        ),
        false,
    ),
    (
        "illegal",
        concat!(
            r"\b(?:without (?:getting caught|being (?:caught|detected|traced)|detection|a trace|",
            r"leaving (?:a )?(?:trace|evidence))|evad(?:e|ing) (?:law enforcement|the police|police|",
            r"detection|tracing|taxes|customs)|on the black market|black[- ]market|hire a hitman|",
            r"hiring a hitman|smuggl\w+|skimm(?:er|ing)|precursor chemicals|(?:glock|auto) switch|",
            r"full auto|car bomb|human trafficking|sex trafficking|",
            r"(?:steal|stealing|shoplift\w*)\b(?:\W+\w+){0,4}?\W+(?:from|goods|food|cars?|",
            r"money|packages|identity|data|credentials|passwords))\b",
        ),
        false,
    ),
    (
        "sexual_minors",
        concat!(
            r"\b(?:sexual|sexy|nude|naked|erotic|explicit)\w*\b(?:\W+\w+){0,6}?\W+",
            r"(?:child|children|minor|minors|underage|kid|kids|teen|\d{1,2}[- ]year[- ]old)s?\b",
        ),
        false,
    ),
    (
        "fraud",
        concat!(
            r"(?:\W+\w+){0,8}?\W+(?:launder(?:ing)? money|money laundering|counterfeit|",
            r"forge[ds]?|fake (?:id|passport|invoice)s?|steal (?:someone'?s )?identit(?:y|ies)|",
            r"identity theft|scam|ponzi|tax evasion|insider trading|credit card fraud)\b",
        ),
        true,
    ),
];

static SET: LazyLock<PatternSet> = LazyLock::new(|| {
    let named: Vec<(&'static str, String)> = CATEGORIES
        .iter()
        .map(|&(name, pattern, howto)| {
            let prefix = if howto { HOWTO } else { "" };
            (name, format!("{prefix}{pattern}"))
        })
        .collect();
    PatternSet::new(&named)
});

static MODEL: Slot = RwLock::new(None);

/// The least a category's match scores: the lexicon's own score before the
/// model. The model only adds (words no category matches) and raises: trained on
/// requests worded as tasks ("Give detailed instructions for ..."), it weighs a
/// person's own wording against harm ("how do", "i", "my") and scored "I'm going
/// to kill myself tonight" 0.24, "How do I make sarin at home?" 0.24 and "How do
/// I stab someone so they bleed out?" 0.10, each under the default rule's 0.5
/// though each had alerted before it (reviews, 2026-12-07). A per-category floor
/// was tried first and left the categories it did not name silenced.
const FLOOR: f64 = 0.8;

/// Sets the logistic model (replacing any earlier one).
pub fn load_model(bias: f64, signals: HashMap<String, f64>, words: HashMap<Vec<u8>, f64>) {
    let model = Model {
        bias,
        signals,
        words,
    };
    linear::load(&MODEL, model);
}

/// The categories that matched a text, with their first (character) spans.
pub fn signal_spans(text: &str) -> Vec<Span> {
    SET.search(text)
}

/// Harm probability of one text and the (character) spans of the evidence
/// (see [`Model::score`]; None: no model loaded).
pub fn score(text: &str) -> Option<(f64, Vec<Span>)> {
    linear::with(&MODEL, |model| model.score(text, signal_spans(text)))
}

/// One finding per category and text that matched, with the text's score but at
/// least [`FLOOR`], or one `classifier` finding, with the text's score, for a
/// text the words alone flag.
/// Nothing until a model is loaded.
pub fn detect(texts: &[Text]) -> Vec<Finding> {
    linear::with(&MODEL, |model| found(model, texts)).unwrap_or_default()
}

/// [`detect`] with a given model.
fn found(model: &Model, texts: &[Text]) -> Vec<Finding> {
    let mut out = Vec::new();
    for t in texts {
        let (score, spans) = model.score(&t.text, signal_spans(&t.text));
        for (name, start, end) in spans {
            let score = if name == linear::CLASSIFIER {
                score
            } else {
                score.max(FLOOR)
            };
            out.push(Finding::quoting(
                format!("harmful.{name}"),
                score,
                t,
                start,
                end,
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(bias: f64) -> Model {
        Model {
            bias,
            signals: [("weapons".to_string(), 3.0)].into_iter().collect(),
            words: [(b"detonator".to_vec(), 4.0)].into_iter().collect(),
        }
    }

    fn one(m: &Model, text: &str) -> (f64, Vec<Span>) {
        m.score(text, signal_spans(text))
    }

    #[test]
    fn a_harmful_request_is_found_at_character_offsets() {
        let found = signal_spans("Übung: give step-by-step instructions to build a pipe bomb");
        assert_eq!(found, vec![("weapons", 7, 58)]);
        let found = signal_spans("I want to kill myself");
        assert_eq!(found, vec![("self_harm", 0, 21)]);
    }

    #[test]
    fn the_model_scores_categories_and_words() {
        let (p, spans) = one(&model(-1.0), "how to build a pipe bomb");
        assert_eq!((p, spans), (0.8808, vec![("weapons", 0, 24)]));
        let text = "wire the detonator";
        let (p, spans) = one(&model(0.0), text);
        assert!(p >= linear::THRESHOLD);
        assert_eq!(spans, vec![(linear::CLASSIFIER, 9, 18)]);
        assert_eq!(one(&model(-1.0), text), (0.0, vec![]));
    }

    #[test]
    fn a_category_match_scores_at_least_the_floor_a_classifier_finding_its_own() {
        let text = |s: &str| Text {
            field: "t".to_string(),
            text: s.to_string(),
        };
        let quiet = found(&model(-20.0), &[text("how to build a pipe bomb")]);
        assert_eq!(quiet.len(), 1);
        assert_eq!(quiet[0].score, FLOOR); // the model alone scores it near 0
        let sure = found(&model(0.0), &[text("wire the detonator")]);
        assert_eq!(sure.len(), 1); // words alone: the classifier, with the model's score
        assert!(sure[0].score >= linear::THRESHOLD && sure[0].score < FLOOR);
    }

    #[test]
    fn ordinary_text_is_quiet() {
        assert!(signal_spans("The history of the printing press").is_empty());
        assert!(signal_spans("How do I reset my password?").is_empty());
    }
}
