//! Text folded for `contains`, which finds its operand whatever the case.
//!
//! Lower-casing alone is not enough: a Greek word's last Σ lower-cases to ς and any other
//! to σ, so an operand and a text that did not end a word at the same letter never met
//! (`contains: "Σ"` missed "ΟΔΟΣ"), and a few letters have a second lower-case form
//! (µ and μ, ſ and s). The lower-cased text has such second forms taken to the first:
//! Unicode's simple case folding, as a regex's `(?i)` matches, up to which member of a
//! class stands for it.

/// The text folded: equal for two texts that differ only in case.
pub fn fold(text: &str) -> String {
    let lower = text.to_lowercase(); // a word's last Σ as ς, which first_form takes back
    if lower.is_ascii() || lower.chars().all(|c| first_form(c) == c) {
        return lower;
    }
    lower.chars().map(first_form).collect()
}

/// A lower-case letter's first form among those its case class holds (CaseFolding.txt's
/// target): the lower-case letters `char::to_lowercase` leaves apart.
fn first_form(c: char) -> char {
    match c {
        '\u{b5}' => '\u{3bc}',                // micro sign: mu
        '\u{17f}' => 's',                     // long s
        '\u{1e9b}' => '\u{1e61}',             // long s with dot above
        '\u{345}' | '\u{1fbe}' => '\u{3b9}',  // ypogegrammeni, prosgegrammeni: iota
        '\u{3c2}' => '\u{3c3}',               // final sigma
        '\u{3d0}' => '\u{3b2}',               // beta symbol
        '\u{3d1}' => '\u{3b8}',               // theta symbol
        '\u{3d5}' => '\u{3c6}',               // phi symbol
        '\u{3d6}' => '\u{3c0}',               // pi symbol
        '\u{3f0}' => '\u{3ba}',               // kappa symbol
        '\u{3f1}' => '\u{3c1}',               // rho symbol
        '\u{3f5}' => '\u{3b5}',               // lunate epsilon
        '\u{1c80}' => '\u{432}',              // Cyrillic rounded ve
        '\u{1c81}' => '\u{434}',              // long-legged de
        '\u{1c82}' => '\u{43e}',              // narrow o
        '\u{1c83}' => '\u{441}',              // wide es
        '\u{1c84}' | '\u{1c85}' => '\u{442}', // tall te, three-legged te
        '\u{1c86}' => '\u{44a}',              // tall hard sign
        '\u{1c87}' => '\u{463}',              // tall yat
        '\u{1c88}' => '\u{a64b}',             // unblended uk: monograph uk
        '\u{1fd3}' => '\u{390}',              // iota with dialytika and oxia: and tonos
        '\u{1fe3}' => '\u{3b0}',              // upsilon with dialytika and oxia: and tonos
        '\u{fb05}' => '\u{fb06}',             // long s t ligature: s t ligature
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_forms_of_one_letter_fold_alike() {
        assert_eq!(fold("ΟΔΟΣ"), fold("οδοσ"));
        assert_eq!(fold("ΟΔΟΣ"), fold("οδος"));
        assert_eq!(fold("5 \u{b5}g"), fold("5 \u{39c}G"));
        assert_eq!(fold("pa\u{17f}sword"), "password");
        assert_eq!(fold("Reset"), "reset");
        assert_ne!(fold("ß"), fold("ss")); // full folding (one letter to two) is not done
    }
}
