//! PII and secrets in model output, with checksums where the format has one.
//!
//! Candidates are found by pattern, then confirmed: card numbers by Luhn and a
//! known issuer prefix, IBANs by ISO 13616 mod-97 and the country's length, US
//! SSNs by the issuing rules, UK NINOs by their prefix rules, Spanish DNI/NIE by
//! their check letter. Secrets by provider prefixes (AWS, GitHub, Slack, Stripe,
//! OpenAI, Google), PEM private key headers, and JWTs whose header decodes to
//! JSON with `alg`. Excerpts are masked: evidence must not leak what it reports.
//!
//! # Patterns
//!
//! Each pattern of the lexicon is kept as Python's `re` reads it ([`Pattern::python`]):
//! Unicode `\d` (decimal digits), `\w` (letters, numbers and `_`), `\s`, `\b`,
//! and lookarounds. It runs on `regex`, in linear time, as [`Pattern::linear`]:
//! the same pattern with `\w` and `\s` spelled as Python's classes and without
//! lookaround. The assertion at its start (`\b`, a lookbehind) is checked on the
//! characters around each candidate; a candidate that fails it is dropped and the
//! search goes on one character later, as Python's scan does. The assertion at its
//! end (`\b`, a lookahead) is matched as one more character, in a group named
//! `ahead*`, or the end of the text: it is not part of the match, and the next
//! search starts where the match ends. Tests check both forms against each other.
//!
//! Before the patterns run, a text must hold a candidate of one of them with
//! their lookarounds dropped and ASCII classes (the RE2 prefilter the detectors
//! had in Python). For PII a text is first read with every space separator as a
//! space, every dash as `-` and every decimal digit as its ASCII digit (one
//! character for one, so offsets hold): a card, phone or SSN written with
//! U+00A0 between its groups (as text copied from a web page or a PDF often
//! is), fullwidth or Arabic-Indic digits used to pass unreported.

use std::collections::HashSet;
use std::sync::LazyLock;

use base64::alphabet;
use base64::engine::general_purpose::GeneralPurpose;
use base64::engine::{DecodePaddingMode, GeneralPurposeConfig};
use base64::Engine;
use regex::{Captures, Regex};

use super::{mask, Finding, Text};

/// What must hold where a match starts: the pattern's leading assertion.
#[derive(Clone, Copy, Debug)]
enum Start {
    Anywhere,
    /// `\b`: exactly one of the characters around the start is a word character.
    Boundary,
    /// `(?<!\d)`
    NotAfterDigit,
    /// `(?<![\w+])`
    NotAfterWordOrPlus,
}

/// One pattern of the lexicon (see the module doc).
struct Pattern {
    /// As Python's `re` reads it; the prefilter is made from it.
    python: &'static str,
    /// The same for `regex`, without its leading assertion (`start`) and with its
    /// trailing one as a group named `ahead*`.
    linear: &'static str,
    start: Start,
}

/// E-mail addresses.
const EMAIL: Pattern = Pattern {
    python: r"\b[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9-]{1,63}\.){1,8}[A-Za-z]{2,24}\b",
    linear: r"[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9-]{1,63}\.){1,8}[A-Za-z]{2,24}(?:(?P<ahead>\W)|\z)",
    start: Start::Boundary,
};

/// Phone numbers: grouped (optional country code, area code in brackets or not),
/// or `+` and 8 to 14 digits.
const PHONE: Pattern = Pattern {
    python: r"(?<![\w+])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{2,4}\)[\s.-]?|\d{2,4}[\s.-])\d{3,4}[\s.-]\d{3,4}\b|(?<![\w+])\+\d{8,14}\b",
    linear: r"(?:(?:\+\d{1,3}[\s.-]?)?(?:\(\d{2,4}\)[\s.-]?|\d{2,4}[\s.-])\d{3,4}[\s.-]\d{3,4}|\+\d{8,14})(?:(?P<ahead>\W)|\z)",
    start: Start::NotAfterWordOrPlus,
};

/// Card numbers: 13 to 19 digits, spaced or dashed anywhere.
const CARD: Pattern = Pattern {
    python: r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)",
    linear: r"(?:\d[ -]?){12,18}\d(?:(?P<ahead>\D)|\z)",
    start: Start::NotAfterDigit,
};

/// IBANs, grouped by 4 or not.
const IBAN: Pattern = Pattern {
    python: r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b",
    linear: r"[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?(?:(?P<ahead>\W)|\z)",
    start: Start::Boundary,
};

/// US social security numbers: area, group, serial.
const SSN: Pattern = Pattern {
    python: r"(?<!\d)(\d{3})-(\d{2})-(\d{4})(?!\d)",
    linear: r"(\d{3})-(\d{2})-(\d{4})(?:(?P<ahead>\D)|\z)",
    start: Start::NotAfterDigit,
};

/// UK national insurance numbers (the prefix letters that are issued).
const NINO: Pattern = Pattern {
    python: r"\b([A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]) ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b",
    linear: r"([A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]) ?\d{2} ?\d{2} ?\d{2} ?[A-D](?:(?P<ahead>\W)|\z)",
    start: Start::Boundary,
};

/// Spanish DNI (8 digits) and NIE (X, Y or Z and 7 digits), then the check letter.
const DNI: Pattern = Pattern {
    python: r"\b([XYZ]?)(\d{7,8})-?([A-Z])\b",
    linear: r"([XYZ]?)(\d{7,8})-?([A-Z])(?:(?P<ahead>\W)|\z)",
    start: Start::Boundary,
};

/// Provider secrets by name; `generic_api_key` is the value (group 1) assigned to
/// a key-like name.
const SECRETS: [(&str, Pattern); 7] = [
    (
        "aws_access_key",
        Pattern {
            python: r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA)[A-Z0-9]{16}\b",
            linear: r"(?:AKIA|ASIA|AGPA|AIDA|AROA)[A-Z0-9]{16}(?:(?P<ahead>\W)|\z)",
            start: Start::Boundary,
        },
    ),
    (
        "github_token",
        Pattern {
            python: r"\b(?:gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{82})\b",
            linear: r"(?:gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{82})(?:(?P<ahead>\W)|\z)",
            start: Start::Boundary,
        },
    ),
    (
        "slack_token",
        Pattern {
            python: r"\bxox[abposr]-[A-Za-z0-9-]{10,72}\b",
            // The last character decides what `\b` needs next: a non-word character
            // after a letter or digit, a word character after `-`.
            linear: r"xox[abposr]-[A-Za-z0-9-]{9,71}(?:[A-Za-z0-9](?:(?P<ahead>\W)|\z)|-(?P<ahead_word>\w))",
            start: Start::Boundary,
        },
    ),
    (
        "stripe_key",
        Pattern {
            python: r"\b(?:sk|rk)_live_[A-Za-z0-9]{20,99}\b",
            linear: r"(?:sk|rk)_live_[A-Za-z0-9]{20,99}(?:(?P<ahead>\W)|\z)",
            start: Start::Boundary,
        },
    ),
    (
        "openai_key",
        Pattern {
            python: r"\bsk-(?:proj-|svcacct-|ant-)?[A-Za-z0-9_-]{32,164}\b",
            linear: r"sk-(?:proj-|svcacct-|ant-)?[A-Za-z0-9_-]{31,163}(?:[A-Za-z0-9_](?:(?P<ahead>\W)|\z)|-(?P<ahead_word>\w))",
            start: Start::Boundary,
        },
    ),
    (
        "google_api_key",
        Pattern {
            python: r"\bAIza[A-Za-z0-9_-]{35}\b",
            linear: r"AIza[A-Za-z0-9_-]{34}(?:[A-Za-z0-9_](?:(?P<ahead>\W)|\z)|-(?P<ahead_word>\w))",
            start: Start::Boundary,
        },
    ),
    (
        "generic_api_key",
        Pattern {
            python: r#"\b(?:api[_-]?key|secret|token|password|passwd)\b\s*[:=]\s*['\"]?([A-Za-z0-9_\-/+=]{20,128})"#,
            // The `\b` after the name always holds: `\s` or `:`/`=` follows it.
            linear: r#"(?:api[_-]?key|secret|token|password|passwd)\s*[:=]\s*['"]?([A-Za-z0-9_\-/+=]{20,128})"#,
            start: Start::Boundary,
        },
    ),
];

/// PEM private key headers.
const PRIVATE_KEY: Pattern = Pattern {
    python: r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?-----",
    linear: r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?-----",
    start: Start::Anywhere,
};

/// JWTs: header and payload that start as JSON objects (`eyJ` is `{"`), signature.
///
/// `.` is not in the segments' class, so the header and payload are whole runs of
/// it: `linear` leaves their lengths open (small states for the lazy DFA) and
/// [`jwts`] checks them.
const JWT: Pattern = Pattern {
    python: r"\beyJ[A-Za-z0-9_-]{8,2048}\.eyJ[A-Za-z0-9_-]{8,8192}\.[A-Za-z0-9_-]{0,1024}",
    linear: r"eyJ([A-Za-z0-9_-]{8,})\.eyJ([A-Za-z0-9_-]{8,})\.[A-Za-z0-9_-]{0,1024}",
    start: Start::Boundary,
};
const JWT_HEADER_MAX: usize = 2048;
const JWT_PAYLOAD_MAX: usize = 8192;

/// ISO 13616 IBAN length per country.
#[rustfmt::skip]
fn iban_length(country: &str) -> Option<usize> {
    Some(match country {
        "AD" => 24, "AT" => 20, "BE" => 16, "BG" => 22, "CH" => 21, "CY" => 28, "CZ" => 24,
        "DE" => 22, "DK" => 18, "EE" => 20, "ES" => 24, "FI" => 18, "FR" => 27, "GB" => 22,
        "GR" => 27, "HR" => 21, "HU" => 28, "IE" => 22, "IS" => 26, "IT" => 27, "LI" => 21,
        "LT" => 20, "LU" => 20, "LV" => 21, "MC" => 27, "MT" => 31, "NL" => 18, "NO" => 15,
        "PL" => 28, "PT" => 25, "RO" => 24, "SE" => 24, "SI" => 19, "SK" => 24, "SM" => 27,
        "TR" => 26, "AE" => 23, "SA" => 24, "IL" => 23, "BR" => 29,
        _ => return None,
    })
}

/// Python's `\w` (`str.isalnum()` or `_`), inside a class.
pub(super) const WORD: &str = r"\p{L}\p{N}_";
/// Python's `\s`: Unicode white space and the separators U+001C..U+001F.
pub(super) const SPACE: &str = r"\s\x1C-\x1F";

/// A pattern written as Python's `re` reads it, for `regex`: `\w`, `\W` and `\s`
/// spelled as Python's classes (`\d` is the same: decimal digits). Panics on `\b`
/// and on lookarounds, which `regex` has not.
pub(super) fn for_regex(pattern: &str) -> String {
    translate(pattern, false)
}

/// [`for_regex`]; with `lookaround`, for `fancy_regex`: lookarounds kept and `\b`
/// spelled with them.
fn translate(pattern: &str, lookaround: bool) -> String {
    let mut out = String::with_capacity(pattern.len() + 32);
    let mut chars = pattern.chars();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let e = chars.next().expect("a complete escape");
                match (e, in_class) {
                    ('w', false) => out.push_str(&format!("[{WORD}]")),
                    ('w', true) => out.push_str(WORD),
                    ('W', false) => out.push_str(&format!("[^{WORD}]")),
                    ('s', false) => out.push_str(&format!("[{SPACE}]")),
                    ('s', true) => out.push_str(SPACE),
                    ('b', false) if lookaround => out.push_str(&format!(
                        "(?:(?<=[{WORD}])(?![{WORD}])|(?<![{WORD}])(?=[{WORD}]))"
                    )),
                    ('W' | 'S' | 'b' | 'B', _) => panic!("\\{e} in {pattern:?}"),
                    _ => {
                        out.push('\\');
                        out.push(e);
                    }
                }
            }
            '[' if !in_class => {
                in_class = true;
                out.push(c);
            }
            ']' if in_class => {
                in_class = false;
                out.push(c);
            }
            '(' if !lookaround
                && (chars.as_str().starts_with("?=")
                    || chars.as_str().starts_with("?!")
                    || chars.as_str().starts_with("?<=")
                    || chars.as_str().starts_with("?<!")) =>
            {
                panic!("lookaround in {pattern:?}")
            }
            _ => out.push(c),
        }
    }
    out
}

/// The prefilter pattern of a lexicon pattern, as Python made it for RE2:
/// lookarounds dropped, repeat bounds above 1000 (RE2's cap) opened; then RE2's
/// ASCII classes and word boundaries.
fn prefilter(python: &str) -> String {
    static LOOKAROUND: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"\(\?<?[!=][^()]*\)").expect("valid"));
    static LONG_REPEAT: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"\{([0-9]+),([0-9]{4,})\}").expect("valid"));
    let dropped = LOOKAROUND.replace_all(python, "");
    crate::re2::translate(&LONG_REPEAT.replace_all(&dropped, "{${1},}"))
}

/// The prefilter of patterns: one pattern, matching where one of theirs does.
fn gate(patterns: &[&Pattern]) -> Regex {
    let each: Vec<String> = patterns
        .iter()
        .map(|p| format!("(?:{})", prefilter(p.python)))
        .collect();
    Regex::new(&each.join("|")).expect("valid prefilter")
}

/// What every PII prefilter pattern needs: an `@`, or two ASCII digits with at most
/// a space or `-` between them (most prose has neither; the prefilter is slower).
fn maybe_pii(text: &str) -> bool {
    let b = text.as_bytes();
    text.contains('@')
        || (0..b.len()).any(|i| {
            b[i].is_ascii_digit()
                && (b.get(i + 1).is_some_and(u8::is_ascii_digit)
                    || (matches!(b.get(i + 1), Some(b' ' | b'-'))
                        && b.get(i + 2).is_some_and(u8::is_ascii_digit)))
        })
}

/// The text as the PII patterns and checksums read it: every space separator
/// (U+00A0, U+2009, U+3000, ...) a space, every dash (U+2010-U+2015, U+2212,
/// fullwidth) a `-`, every decimal digit of any script its ASCII digit. One
/// character for one, so character offsets are those of the original.
fn normalized(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            _ if c.is_ascii() => c,
            '\u{a0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200a}'
            | '\u{202f}'
            | '\u{205f}'
            | '\u{3000}' => ' ',
            '\u{2010}'..='\u{2015}' | '\u{2212}' | '\u{fe58}' | '\u{fe63}' | '\u{ff0d}' => '-',
            // `is_numeric` is a table lookup; the digit check behind it a regex match per character.
            _ if c.is_numeric() => digit_value(c)
                .and_then(|v| char::from_digit(v, 10))
                .unwrap_or(c),
            _ => c,
        })
        .collect()
}

/// A compiled [`Pattern`].
struct Linear {
    re: Regex,
    start: Start,
    /// The groups that hold the character after the match.
    ahead: Vec<usize>,
}

impl Linear {
    fn new(p: &Pattern) -> Self {
        let re = Regex::new(&for_regex(p.linear)).expect("valid pattern");
        let ahead = re
            .capture_names()
            .enumerate()
            .filter(|(_, n)| n.is_some_and(|n| n.starts_with("ahead")))
            .map(|(i, _)| i)
            .collect();
        Linear {
            re,
            start: p.start,
            ahead,
        }
    }

    /// Python's `finditer`: each match (its groups, start and end), leftmost
    /// first, the next search starting where the last match ended.
    fn each<'t>(&self, text: &'t str, mut found: impl FnMut(&Captures<'t>, usize, usize)) {
        let mut pos = 0;
        while let Some(c) = self.re.captures_at(text, pos) {
            let whole = c.get(0).expect("group 0");
            let start = whole.start();
            if !self.start.holds(text, start) {
                pos = start + text[start..].chars().next().map_or(1, char::len_utf8);
                continue;
            }
            let end = self
                .ahead
                .iter()
                .find_map(|&i| c.get(i))
                .map_or(whole.end(), |m| m.start());
            found(&c, start, end);
            pos = end;
        }
    }
}

impl Start {
    /// Whether the assertion holds at byte `at` of `text`.
    fn holds(self, text: &str, at: usize) -> bool {
        let before = text[..at].chars().next_back();
        match self {
            Start::Anywhere => true,
            Start::Boundary => {
                before.is_some_and(is_word) != text[at..].chars().next().is_some_and(is_word)
            }
            Start::NotAfterDigit => !before.is_some_and(is_digit),
            Start::NotAfterWordOrPlus => !before.is_some_and(|c| c == '+' || is_word(c)),
        }
    }
}

/// Python's `\w`.
fn is_word(c: char) -> bool {
    static WORD_CHAR: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(&format!(r"\A[{WORD}]\z")).expect("valid"));
    c.is_ascii_alphanumeric()
        || c == '_'
        || (!c.is_ascii() && WORD_CHAR.is_match(c.encode_utf8(&mut [0; 4])))
}

/// Python's `\d`: a decimal digit of any script.
fn is_digit(c: char) -> bool {
    static DIGIT: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\A\d\z").expect("valid"));
    c.is_ascii_digit() || (!c.is_ascii() && DIGIT.is_match(c.encode_utf8(&mut [0; 4])))
}

/// The value of a decimal digit of any script, as Python's `int()` reads it.
///
/// Unicode encodes each script's digits as a run 0 to 9 (some runs follow each
/// other, such as the mathematical digits): the value is the distance to the run's
/// start, modulo 10.
fn digit_value(c: char) -> Option<u32> {
    if c.is_ascii_digit() {
        return Some(c as u32 - '0' as u32);
    }
    if !is_digit(c) {
        return None;
    }
    let mut zero = c as u32;
    while let Some(before) = char::from_u32(zero - 1) {
        if !is_digit(before) {
            break;
        }
        zero -= 1;
    }
    Some((c as u32 - zero) % 10)
}

/// Python's `int()` of a run of decimal digits (None: not only digits).
fn number(digits: &[char]) -> Option<u64> {
    digits
        .iter()
        .try_fold(0u64, |n, &c| Some(n * 10 + u64::from(digit_value(c)?)))
}

fn distinct(chars: &[char]) -> usize {
    chars.iter().collect::<HashSet<_>>().len()
}

/// The Luhn (mod 10) check of a card number. False for a string that is not all
/// digits (Python's version raised ValueError).
pub fn luhn(digits: &str) -> bool {
    let mut total = 0;
    for (i, c) in digits.chars().rev().enumerate() {
        let Some(mut d) = digit_value(c) else {
            return false;
        };
        if i % 2 == 1 {
            d = if d > 4 { d * 2 - 9 } else { d * 2 };
        }
        total += d;
    }
    total % 10 == 0
}

fn card_issuer(digits: &[char]) -> bool {
    let len = digits.len();
    if digits[0] == '4' {
        return matches!(len, 13 | 16 | 19);
    }
    let (Some(two), Some(three), Some(four), Some(six)) = (
        number(&digits[..2]),
        number(&digits[..3]),
        number(&digits[..4]),
        number(&digits[..6]),
    ) else {
        return false;
    };
    if (51..=55).contains(&two) || (222100..=272099).contains(&six) {
        return len == 16;
    }
    if two == 34 || two == 37 {
        return len == 15;
    }
    if four == 6011 || two == 65 || (644..=649).contains(&three) || two == 62 {
        return (16..=19).contains(&len);
    }
    if (3528..=3589).contains(&four) {
        return (16..=19).contains(&len);
    }
    matches!(two, 36 | 38 | 39) || (300..=305).contains(&three)
}

/// Luhn plus a known issuer prefix and length; rejects repeated digits. Spaces and
/// dashes are ignored; false for anything else that is not a digit (Python's
/// version raised ValueError or returned False).
pub fn valid_card(candidate: &str) -> bool {
    let digits: String = candidate
        .chars()
        .filter(|&c| c != ' ' && c != '-')
        .collect();
    let each: Vec<char> = digits.chars().collect();
    (13..=19).contains(&each.len()) && distinct(&each) > 1 && card_issuer(&each) && luhn(&digits)
}

/// ISO 13616: length of the country, then mod-97 of the rearranged number equals 1.
///
/// Spaces are ignored; false for a character that is not a base-36 digit (Python's
/// version raised ValueError).
pub fn valid_iban(candidate: &str) -> bool {
    let iban: Vec<char> = candidate.chars().filter(|&c| c != ' ').collect();
    let country: String = iban.iter().take(2).collect();
    if iban_length(&country) != Some(iban.len()) {
        return false;
    }
    let mut rest = 0u32;
    for &c in iban[4..].iter().chain(&iban[..4]) {
        // Python's int(c, 36): ASCII letters either case, decimal digits of any script.
        let Some(v) = c
            .to_digit(36)
            .filter(|_| c.is_ascii())
            .or_else(|| digit_value(c))
        else {
            return false;
        };
        rest = (rest * if v >= 10 { 100 } else { 10 } + v) % 97;
    }
    rest == 1
}

/// US SSN issuing rules: no area 000, 666 or 9xx, no group 00, no serial 0000.
fn valid_ssn(c: &Captures<'_>) -> bool {
    let (area, group, serial) = (&c[1], &c[2], &c[3]);
    area != "000" && area != "666" && !area.starts_with('9') && group != "00" && serial != "0000"
}

/// Spanish DNI/NIE: the letter is `TRWAGMYFPDXBNJZSQVHLCKE[number % 23]`.
fn valid_dni(c: &Captures<'_>) -> bool {
    let (prefix, letter) = (&c[1], &c[3]);
    let number: Vec<char> = c[2].chars().collect();
    let value = match prefix {
        "" if number.len() == 8 => self::number(&number),
        "X" | "Y" | "Z" if number.len() == 7 => {
            let first = u64::from(prefix.as_bytes()[0] - b'X');
            self::number(&number).map(|n| first * 10_000_000 + n)
        }
        _ => return false,
    };
    value.is_some_and(|n| {
        let i = usize::try_from(n % 23).expect("small");
        letter == &"TRWAGMYFPDXBNJZSQVHLCKE"[i..=i]
    })
}

/// 8 to 15 digits, at least 3 different ones.
fn valid_phone(candidate: &str) -> bool {
    let digits: Vec<char> = candidate.chars().filter(|&c| is_digit(c)).collect();
    (8..=15).contains(&digits.len()) && distinct(&digits) > 2
}

/// The header decodes to a JSON object naming `alg` (Python's `json.loads`).
fn valid_jwt(token: &str) -> bool {
    static BASE64URL: GeneralPurpose = GeneralPurpose::new(
        &alphabet::URL_SAFE,
        GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let head = token.split('.').next().unwrap_or_default();
    let Ok(bytes) = BASE64URL.decode(head) else {
        return false;
    };
    // The header starts with `{"`: Python reads such bytes as UTF-8, with surrogates.
    utf8_surrogatepass(&bytes).is_some_and(|s| json::object_with_alg(&s))
}

/// Python's `bytes.decode("utf-8", "surrogatepass")`, as code points.
fn utf8_surrogatepass(bytes: &[u8]) -> Option<Vec<u32>> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let (n, min, first) = match b {
            0x00..=0x7F => (1, 0, b),
            0xC2..=0xDF => (2, 0x80, b & 0x1F),
            0xE0..=0xEF => (3, 0x800, b & 0x0F),
            0xF0..=0xF4 => (4, 0x1_0000, b & 0x07),
            _ => return None,
        };
        let tail = bytes.get(i + 1..i + n)?;
        let mut c = u32::from(first);
        for &t in tail {
            if t & 0xC0 != 0x80 {
                return None;
            }
            c = (c << 6) | u32::from(t & 0x3F);
        }
        if c < min || c > 0x10_FFFF {
            return None;
        }
        out.push(c);
        i += n;
    }
    Some(out)
}

/// Python's JSON decoder (`json.loads` of a `str`, its C scanner), as a check.
mod json {
    const fn at(s: &[u32], i: usize) -> u32 {
        if i < s.len() {
            s[i]
        } else {
            u32::MAX
        }
    }

    fn is(s: &[u32], i: usize, c: char) -> bool {
        at(s, i) == c as u32
    }

    fn skip_space(s: &[u32], mut i: usize) -> usize {
        while matches!(at(s, i), 0x20 | 0x09 | 0x0A | 0x0D) {
            i += 1;
        }
        i
    }

    fn digit(s: &[u32], i: usize) -> bool {
        (0x30..=0x39).contains(&at(s, i))
    }

    fn literal(s: &[u32], i: usize, word: &str) -> bool {
        word.chars().enumerate().all(|(k, c)| is(s, i + k, c))
    }

    /// Four hex digits at `i`.
    fn hex4(s: &[u32], i: usize) -> Option<u32> {
        (i..i + 4).try_fold(0, |v, k| {
            Some(v << 4 | char::from_u32(at(s, k))?.to_digit(16)?)
        })
    }

    /// A string whose opening quote is before `end`: the index after its closing
    /// quote; its value into `out` if given.
    fn string(s: &[u32], mut end: usize, mut out: Option<&mut Vec<u32>>) -> Option<usize> {
        let len = s.len();
        loop {
            let mut next = end;
            while next < len && !is(s, next, '"') && !is(s, next, '\\') {
                if s[next] <= 0x1F {
                    return None;
                }
                next += 1;
            }
            if next >= len {
                return None;
            }
            if let Some(out) = out.as_deref_mut() {
                out.extend_from_slice(&s[end..next]);
            }
            if is(s, next, '"') {
                return Some(next + 1);
            }
            next += 1;
            let c = *s.get(next)?;
            let c = if c != 'u' as u32 {
                end = next + 1;
                match char::from_u32(c)? {
                    '"' | '\\' | '/' => c,
                    'b' => 0x08,
                    'f' => 0x0C,
                    'n' => 0x0A,
                    'r' => 0x0D,
                    't' => 0x09,
                    _ => return None,
                }
            } else {
                next += 1;
                end = next + 4;
                if end >= len {
                    return None;
                }
                let mut c = hex4(s, next)?;
                if (0xD800..0xDC00).contains(&c)
                    && end + 6 < len
                    && is(s, end, '\\')
                    && is(s, end + 1, 'u')
                {
                    let low = hex4(s, end + 2)?;
                    if (0xDC00..0xE000).contains(&low) {
                        c = 0x1_0000 + ((c - 0xD800) << 10) + (low - 0xDC00);
                        end += 6;
                    }
                }
                c
            };
            if let Some(out) = out.as_deref_mut() {
                out.push(c);
            }
        }
    }

    /// A number at `i`: the index after it.
    fn number(s: &[u32], start: usize) -> Option<usize> {
        let last = s.len() - 1;
        let mut i = start;
        if is(s, i, '-') {
            i += 1;
            if i > last {
                return None;
            }
        }
        if (0x31..=0x39).contains(&s[i]) {
            i += 1;
            while digit(s, i) {
                i += 1;
            }
        } else if is(s, i, '0') {
            i += 1;
        } else {
            return None;
        }
        if i < last && is(s, i, '.') && digit(s, i + 1) {
            i += 2;
            while digit(s, i) {
                i += 1;
            }
        }
        if i < last && (is(s, i, 'e') || is(s, i, 'E')) {
            let e = i;
            i += 1;
            if i < last && (is(s, i, '-') || is(s, i, '+')) {
                i += 1;
            }
            while digit(s, i) {
                i += 1;
            }
            if !digit(s, i - 1) {
                i = e;
            }
        }
        Some(i)
    }

    /// An object member's name and `:` at `i`: the index of its value.
    fn name(s: &[u32], i: usize, alg: Option<&mut bool>) -> Option<usize> {
        if !is(s, i, '"') {
            return None;
        }
        let mut key = Vec::new();
        let i = string(s, i + 1, alg.is_some().then_some(&mut key))?;
        if let Some(alg) = alg {
            *alg |= key == ['a' as u32, 'l' as u32, 'g' as u32];
        }
        let i = skip_space(s, i);
        is(s, i, ':').then(|| skip_space(s, i + 1))
    }

    /// Whether `s` is one JSON document (Python's dialect: `NaN`, `Infinity` and
    /// `-Infinity` too) that is an object with a member named `alg`.
    ///
    /// Iterative: Python's scanner recursed and raised RecursionError (not caught)
    /// beyond about a thousand levels of nesting.
    pub fn object_with_alg(s: &[u32]) -> bool {
        let mut open: Vec<bool> = Vec::new(); // true: an object, false: an array
        let mut i = skip_space(s, 0);
        let top_object = is(s, i, '{');
        let mut alg = false;
        'value: loop {
            // One value at `i`.
            if i >= s.len() {
                return false;
            }
            match char::from_u32(s[i]) {
                Some('"') => match string(s, i + 1, None) {
                    Some(next) => i = next,
                    None => return false,
                },
                Some('{') => {
                    i = skip_space(s, i + 1);
                    if is(s, i, '}') {
                        i += 1;
                    } else {
                        open.push(true);
                        let top = top_object && open.len() == 1;
                        match name(s, i, top.then_some(&mut alg)) {
                            Some(next) => i = next,
                            None => return false,
                        }
                        continue 'value;
                    }
                }
                Some('[') => {
                    i = skip_space(s, i + 1);
                    if is(s, i, ']') {
                        i += 1;
                    } else {
                        open.push(false);
                        continue 'value;
                    }
                }
                Some('n') if literal(s, i, "null") => i += 4,
                Some('t') if literal(s, i, "true") => i += 4,
                Some('f') if literal(s, i, "false") => i += 5,
                Some('N') if literal(s, i, "NaN") => i += 3,
                Some('I') if literal(s, i, "Infinity") => i += 8,
                Some('-') if literal(s, i, "-Infinity") => i += 9,
                _ => match number(s, i) {
                    Some(next) => i = next,
                    None => return false,
                },
            }
            // The value ended: close what it ended, or go on to the next member.
            while let Some(&object) = open.last() {
                i = skip_space(s, i);
                if is(s, i, if object { '}' } else { ']' }) {
                    open.pop();
                    i += 1;
                    continue;
                }
                if !is(s, i, ',') {
                    return false;
                }
                i = skip_space(s, i + 1);
                if object {
                    let top = top_object && open.len() == 1;
                    match name(s, i, top.then_some(&mut alg)) {
                        Some(next) => i = next,
                        None => return false,
                    }
                }
                continue 'value;
            }
            break;
        }
        skip_space(s, i) == s.len() && top_object && alg
    }
}

fn finding(name: &str, score: f64, t: &Text, start: usize, end: usize) -> Finding {
    Finding {
        detector: name.to_owned(),
        score,
        field: t.field.clone(),
        start,
        end,
        excerpt: mask(&t.text[start..end]),
    }
}

/// Byte offsets of findings in `text` to character offsets.
fn to_chars(text: &str, found: &mut [Finding]) {
    if found.is_empty() || text.is_ascii() {
        return;
    }
    let mut offsets: Vec<usize> = found.iter().flat_map(|f| [f.start, f.end]).collect();
    offsets.sort_unstable();
    offsets.dedup();
    let (mut last, mut count) = (0, 0);
    let counts: Vec<usize> = offsets
        .iter()
        .map(|&b| {
            count += text[last..b].chars().count();
            last = b;
            count
        })
        .collect();
    let char_at = |b: usize| counts[offsets.binary_search(&b).expect("an offset")];
    for f in found {
        (f.start, f.end) = (char_at(f.start), char_at(f.end));
    }
}

struct PiiPatterns {
    gate: Regex,
    email: Linear,
    card: Linear,
    iban: Linear,
    ssn: Linear,
    nino: Linear,
    dni: Linear,
    phone: Linear,
}

static PII: LazyLock<PiiPatterns> = LazyLock::new(|| PiiPatterns {
    gate: gate(&[&EMAIL, &CARD, &IBAN, &SSN, &NINO, &DNI, &PHONE]),
    email: Linear::new(&EMAIL),
    card: Linear::new(&CARD),
    iban: Linear::new(&IBAN),
    ssn: Linear::new(&SSN),
    nino: Linear::new(&NINO),
    dni: Linear::new(&DNI),
    phone: Linear::new(&PHONE),
});

struct SecretPatterns {
    gate: Regex,
    named: Vec<(&'static str, Linear)>,
    private_key: Linear,
    jwt: Linear,
}

static SECRET: LazyLock<SecretPatterns> = LazyLock::new(|| {
    let mut all: Vec<&Pattern> = SECRETS.iter().map(|(_, p)| p).collect();
    all.extend([&PRIVATE_KEY, &JWT]);
    SecretPatterns {
        gate: gate(&all),
        named: SECRETS.iter().map(|(n, p)| (*n, Linear::new(p))).collect(),
        private_key: Linear::new(&PRIVATE_KEY),
        jwt: Linear::new(&JWT),
    }
});

fn pii(original: &Text, out: &mut Vec<Finding>) {
    let read;
    let t = if original.text.is_ascii() {
        original
    } else {
        read = Text {
            field: original.field.clone(),
            text: normalized(&original.text),
        };
        &read
    };
    let (p, text) = (&*PII, t.text.as_str());
    if !maybe_pii(text) || !p.gate.is_match(text) {
        return;
    }
    let mut found = Vec::new();
    p.email.each(text, |_, s, e| {
        found.push(finding("pii.email", 0.9, t, s, e))
    });
    p.card.each(text, |_, s, e| {
        if valid_card(&text[s..e]) {
            found.push(finding("pii.credit_card", 0.99, t, s, e));
        }
    });
    p.iban.each(text, |_, s, e| {
        if valid_iban(&text[s..e]) {
            found.push(finding("pii.iban", 0.99, t, s, e));
        }
    });
    p.ssn.each(text, |c, s, e| {
        if valid_ssn(c) {
            found.push(finding("pii.national_id", 0.8, t, s, e));
        }
    });
    p.nino.each(text, |_, s, e| {
        found.push(finding("pii.national_id", 0.8, t, s, e))
    });
    p.dni.each(text, |c, s, e| {
        if valid_dni(c) {
            found.push(finding("pii.national_id", 0.95, t, s, e));
        }
    });
    // A digit run inside a card, IBAN or id already reported is not also a phone. The
    // spans by start, with the furthest end reached so far: one binary search a
    // candidate (scanning them all was quadratic: 40 s for 4 MiB of SSNs).
    let mut taken: Vec<(usize, usize)> = found.iter().map(|f| (f.start, f.end)).collect();
    taken.sort_unstable();
    let reach: Vec<usize> = taken
        .iter()
        .scan(0, |furthest, &(_, b)| {
            *furthest = b.max(*furthest);
            Some(*furthest)
        })
        .collect();
    let overlaps_taken = |s: usize, e: usize| {
        let before = taken.partition_point(|&(a, _)| a < e);
        before > 0 && reach[before - 1] > s
    };
    p.phone.each(text, |_, s, e| {
        if valid_phone(&text[s..e]) && !overlaps_taken(s, e) {
            found.push(finding("pii.phone", 0.7, t, s, e));
        }
    });
    to_chars(text, &mut found);
    out.append(&mut found);
}

/// The matches of [`JWT`] as Python's `finditer` finds them: (start, end).
fn jwts(jwt: &Linear, text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(c) = jwt.re.captures_at(text, pos) {
        let whole = c.get(0).expect("group 0");
        let (header, payload) = (c.get(1).expect("header"), c.get(2).expect("payload"));
        let start = whole.start();
        // A too long run fails every start inside it too, except the last 2051
        // bytes (ASCII) of a run, where an `eyJ` would start a header short enough.
        pos = if header.len() > JWT_HEADER_MAX {
            (start + 1).max(header.end() - JWT_HEADER_MAX - 3)
        } else if payload.len() > JWT_PAYLOAD_MAX {
            (start + 1).max(payload.end() - JWT_HEADER_MAX - 3)
        } else if !jwt.start.holds(text, start) {
            start + 1
        } else {
            out.push((start, whole.end()));
            whole.end()
        };
    }
    out
}

/// Mixed letters and digits: a value, not a word such as `placeholder_value`.
/// (The value is ASCII: Python's `str.isdigit`/`str.isalpha` agree on it.)
fn looks_random(value: &str) -> bool {
    value.chars().any(|c| c.is_ascii_digit()) && value.chars().any(|c| c.is_ascii_alphabetic())
}

fn secrets(t: &Text, out: &mut Vec<Finding>) {
    let (p, text) = (&*SECRET, t.text.as_str());
    if !p.gate.is_match(text) {
        return;
    }
    let mut found = Vec::new();
    for (name, pattern) in &p.named {
        let generic = *name == "generic_api_key";
        pattern.each(text, |c, s, e| {
            if !generic {
                found.push(finding(&format!("secret.{name}"), 0.95, t, s, e));
                return;
            }
            let value = c.get(1).expect("group 1");
            if looks_random(value.as_str()) {
                found.push(finding(
                    "secret.generic_api_key",
                    0.7,
                    t,
                    value.start(),
                    value.end(),
                ));
            }
        });
    }
    p.private_key.each(text, |_, s, e| {
        found.push(finding("secret.private_key", 1.0, t, s, e))
    });
    for (s, e) in jwts(&p.jwt, text) {
        if valid_jwt(&text[s..e]) {
            found.push(finding("secret.jwt", 0.95, t, s, e));
        }
    }
    to_chars(text, &mut found);
    out.append(&mut found);
}

/// PII findings in the given texts.
pub fn detect_pii(texts: &[Text]) -> Vec<Finding> {
    let mut out = Vec::new();
    for t in texts {
        pii(t, &mut out);
    }
    out
}

/// Secret findings in the given texts.
pub fn detect_secrets(texts: &[Text]) -> Vec<Finding> {
    let mut out = Vec::new();
    for t in texts {
        secrets(t, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Vec<Text> {
        vec![Text {
            field: "f".into(),
            text: s.into(),
        }]
    }

    /// (detector, start, end, excerpt) of the PII and secret findings.
    fn found(s: &str) -> Vec<(String, usize, usize, String)> {
        let t = text(s);
        detect_pii(&t)
            .into_iter()
            .chain(detect_secrets(&t))
            .map(|f| (f.detector, f.start, f.end, f.excerpt))
            .collect()
    }

    fn kinds(s: &str) -> Vec<String> {
        found(s).into_iter().map(|f| f.0).collect()
    }

    #[test]
    fn numbers_in_other_spaces_dashes_and_digits() {
        let card = "card 4111\u{a0}1111\u{a0}1111\u{a0}1111 ok";
        // Character offsets into the original text; the excerpt is masked as ever.
        assert_eq!(
            found(card),
            [(
                "pii.credit_card".into(),
                5,
                24,
                "41***************11".into()
            )]
        );
        assert_eq!(
            kinds("carte ４１１１ １１１１ １１１１ １１１１"),
            ["pii.credit_card"]
        );
        assert_eq!(kinds("SSN 123\u{2011}45\u{2011}6789"), ["pii.national_id"]);
        assert_eq!(normalized("a\u{3000}b\u{2212}c９é"), "a b-c9é");
    }

    #[test]
    fn checksums() {
        assert!(luhn("4111111111111111") && !luhn("4111111111111112"));
        assert!(!luhn("41111x1111111111"));
        assert!(valid_card("4111 1111 1111 1111") && !valid_card("1234 5678 9012 3456"));
        assert!(valid_card("5500-0000-0000-0004") && valid_card("340000000000009"));
        assert!(!valid_card("4444 4444 4444 4444") && !valid_card("4111 1111 1111"));
        // Python's int() reads digits of any script; '4' itself is compared as a character.
        assert!(luhn("٤١١١١١١١١١١١١١١١"));
        assert!(!valid_card("٤١١١١١١١١١١١١١١١"));
        assert!(valid_iban("GB82 WEST 1234 5698 7654 32"));
        assert!(!valid_iban("GB82 WEST 1234 5698 7654 33"));
        assert!(valid_iban("DE89370400440532013000") && valid_iban("DE٨٩370400440532013000"));
        assert!(!valid_iban("XX89370400440532013000") && !valid_iban("DE8937040044053201300"));
        assert!(!valid_iban("DE89!70400440532013000") && !valid_iban(""));
    }

    #[test]
    fn pii_is_found_masked_and_ordered() {
        let s =
            "Card 4111 1111 1111 1111, IBAN DE89 3704 0044 0532 0130 00, mail a.b@example.org, \
                 SSN 123-45-6789, key AKIAIOSFODNN7EXAMPLE and -----BEGIN RSA PRIVATE KEY-----";
        let f = found(s);
        let names: Vec<&str> = f.iter().map(|x| x.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "pii.email",
                "pii.credit_card",
                "pii.iban",
                "pii.national_id",
                "secret.aws_access_key",
                "secret.private_key"
            ]
        );
        assert_eq!(
            f[1],
            (
                "pii.credit_card".into(),
                5,
                24,
                "41***************11".into()
            )
        );
        assert_eq!(&s[f[0].1..f[0].2], "a.b@example.org");
    }

    #[test]
    fn national_ids() {
        assert_eq!(kinds("SSN 123-45-6789"), ["pii.national_id"]);
        for bad in [
            "000-45-6789",
            "666-45-6789",
            "912-45-6789",
            "123-00-6789",
            "123-45-0000",
        ] {
            assert!(kinds(&format!("SSN {bad}")).is_empty(), "{bad}");
        }
        assert!(kinds("SSN 1123-45-6789").is_empty());
        assert_eq!(kinds("NINO AB 12 34 56 C"), ["pii.national_id"]);
        assert!(kinds("NINO DA123456C").is_empty()); // D is not a first letter
        assert_eq!(kinds("DNI 12345678Z"), ["pii.national_id"]);
        assert_eq!(kinds("NIE X1234567-L"), ["pii.national_id"]);
        assert!(kinds("DNI 12345678A").is_empty() && kinds("NIE X12345678Z").is_empty());
    }

    #[test]
    fn phones() {
        assert_eq!(kinds("call +44 20 7946 0958 now"), ["pii.phone"]);
        assert_eq!(kinds("call (555) 123-4567"), ["pii.phone"]);
        assert_eq!(kinds("call +4915123456789"), ["pii.phone"]);
        assert!(kinds("call 111 111 1111").is_empty()); // two different digits only
        assert!(kinds("id x555 123 4567").is_empty()); // a word character before
                                                       // Inside an IBAN: not also a phone.
        assert_eq!(kinds("IBAN DE89 3704 0044 0532 0130 00"), ["pii.iban"]);
        // Other spaces, dashes and digits read as ASCII ones.
        assert_eq!(kinds("call 555\u{a0}123\u{a0}4567"), ["pii.phone"]);
        assert_eq!(kinds("call 555\u{2009}123\u{2011}4567"), ["pii.phone"]);
        assert_eq!(kinds("call ５５５-１２３-４５６７"), ["pii.phone"]); // fullwidth digits
        assert!(kinds("naïve prose, 1 number").is_empty());
        assert_eq!(
            kinds("call 555\u{a0}123\u{a0}4567 or a@example.org"),
            ["pii.email", "pii.phone"]
        );
    }

    #[test]
    fn secrets_of_each_kind() {
        let jwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.\
                   dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
        let cases = [
            ("key AKIAIOSFODNN7EXAMPLE", "secret.aws_access_key"),
            (
                "ghp_0123456789abcdefghijABCDEFGHIJ012345",
                "secret.github_token",
            ),
            ("xoxb-1234567890-abcdefghij", "secret.slack_token"),
            ("sk_live_0123456789abcdefghijABCD", "secret.stripe_key"),
            (
                "sk-proj-0123456789abcdefghijABCDEFGHIJ0123",
                "secret.openai_key",
            ),
            (
                "AIzaSyA0123456789abcdefghijklmnopqrstuv",
                "secret.google_api_key",
            ),
            (
                "api_key = 'a1b2c3d4e5f6g7h8i9j0k1'",
                "secret.generic_api_key",
            ),
            ("-----BEGIN OPENSSH PRIVATE KEY-----", "secret.private_key"),
            (jwt, "secret.jwt"),
        ];
        for (s, kind) in cases {
            assert_eq!(kinds(s), [kind], "{s}");
        }
        let generic = found("password: \"hunter2hunter2hunter2x\"");
        assert_eq!(generic[0].1..generic[0].2, 11..33);
        assert!(kinds("token = placeholder_value_for_docs").is_empty());
        assert!(kinds("the word AKIALONGWORD is not a key").is_empty());
        assert!(kinds("eyJub3QiOiJqd3QifQ.eyJ4IjoxfQ.abc is not a JWT header").is_empty());
        assert!(kinds("-----BEGIN PUBLIC KEY-----").is_empty());
    }

    #[test]
    fn jwt_headers_are_python_json() {
        let ok = |json: &str| {
            let s: Vec<u32> = json.chars().map(u32::from).collect();
            json::object_with_alg(&s)
        };
        assert!(ok(r#"{"alg":"HS256"}"#) && ok(" {\"x\": [1, 2.5e-3, {}], \"alg\" : null }\n"));
        assert!(ok(r#"{"\u0061lg":NaN}"#) && ok(r#"{"alg":-Infinity,"a":"\ud800"}"#));
        assert!(ok(r#"{"alg":[[[[[[[[[[]]]]]]]]]]}"#));
        for bad in [
            r#"{"alg":1,}"#,
            r#"{"alg":01}"#,
            r#"{"alg":1.}"#,
            r#"{"alg":"\x"}"#,
            "{\"alg\":\"\t\"}",
            r#"{"alg":1} x"#,
            r#"["alg"]"#,
            r#"{"ALG":1}"#,
            r#"{"alg":nul}"#,
            r#"{'alg':1}"#,
        ] {
            assert!(!ok(bad), "{bad}");
        }
        assert_eq!(utf8_surrogatepass(b"\xed\xa0\x80"), Some(vec![0xD800]));
        assert_eq!(utf8_surrogatepass(b"\xc0\x80"), None);
        assert!(!valid_jwt("eyJhbGciOiJIUzI1NiJ9x.eyJ")); // 1 more than a multiple of 4
        assert!(valid_jwt("eyJhbGciOiJIUzI1NiJ9.x"));
    }

    #[test]
    fn offsets_are_characters() {
        let f = found("Café ☕ — écrivez à a.b@example.org ou 4111-1111-1111-1111");
        assert_eq!(f[0], ("pii.email".into(), 19, 34, "a.***********rg".into()));
        assert_eq!(f[1].1..f[1].2, 38..57);
        let f = found("𝟘 key AKIAIOSFODNN7EXAMPLE");
        assert_eq!(f[0].1..f[0].2, 6..26);
    }

    /// A small deterministic generator of texts dense in the patterns' characters.
    fn corpus(n: usize) -> Vec<String> {
        const PARTS: &[&str] = &[
            "0",
            "1",
            "4",
            "5",
            "9",
            "12",
            "4111",
            "٣",
            "٤",
            "𝟗",
            "²",
            " ",
            " ",
            "-",
            "-",
            ".",
            "+",
            "(",
            ")",
            "@",
            "_",
            "=",
            ":",
            "'",
            "\"",
            "/",
            "\u{a0}",
            "\u{1c}",
            "\u{301}",
            "é",
            "ß",
            "x",
            "A",
            "B",
            "C",
            "D",
            "X",
            "Y",
            "Z",
            "L",
            "GB",
            "DE89",
            "AB",
            "a.b",
            "example",
            ".org",
            "co",
            "AKIA",
            "ghp_",
            "github_pat_",
            "xoxb-",
            "sk-",
            "sk-proj-",
            "sk_live_",
            "rk_live_",
            "AIza",
            "eyJ",
            "api_key",
            "token",
            "secret",
            "password",
            "passwd",
            "-----BEGIN ",
            "RSA ",
            "PRIVATE KEY",
            "-----",
            "abcdefghij",
            "ABCDEFGHIJ",
            "0123456789",
            "\n",
            "\t",
            "中",
            "Ⅻ",
            "①",
            "‿",
            // Whole values, for the characters around them to vary.
            "4111 1111 1111 1111",
            "123-45-6789",
            "AB 12 34 56 C",
            "12345678Z",
            "X1234567L",
            "+44 20 7946 0958",
            "(555) 123-4567",
            "GB82 WEST 1234 5698 7654 32",
            "a.b@example.org",
            "AKIAIOSFODNN7EXAMPLE",
            "xoxb-1234567890-abcdefghij",
            "AIzaSyA0123456789abcdefghij",
            "sk-proj-0123456789abcdefghijABCDEFGHIJ",
            "ghp_0123456789abcdefghijABCDEFGHIJ012345",
            "sk_live_0123456789abcdefghij",
            "token: a1b2c3d4e5f6g7h8i9j0",
        ];
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        (0..n)
            .map(|_| {
                let len = 1 + next() % 40;
                (0..len)
                    .map(|_| {
                        let part = PARTS[(next() % PARTS.len() as u64) as usize];
                        part.repeat(if next() % 5 == 0 {
                            1 + (next() % 12) as usize
                        } else {
                            1
                        })
                    })
                    .collect()
            })
            .collect()
    }

    type Spans = Vec<Vec<Option<(usize, usize)>>>;

    fn oracle(p: &Pattern) -> fancy_regex::Regex {
        fancy_regex::Regex::new(&translate(p.python, true)).expect("oracle")
    }

    fn python_matches(re: &fancy_regex::Regex, s: &str) -> Spans {
        re.captures_iter(s)
            .map(|c| {
                let c = c.expect("no backtrack limit");
                (0..c.len())
                    .map(|i| c.get(i).map(|m| (m.start(), m.end())))
                    .collect()
            })
            .collect()
    }

    fn linear_matches(p: &Linear, groups: usize, s: &str) -> Spans {
        let mut out = Vec::new();
        p.each(s, |c, start, end| {
            let mut spans = vec![Some((start, end))];
            spans.extend((1..groups).map(|i| c.get(i).map(|m| (m.start(), m.end()))));
            out.push(spans);
        });
        out
    }

    /// The linear form of each pattern finds what Python's form finds.
    #[test]
    fn linear_patterns_match_as_python() {
        let texts = corpus(4000);
        let mut all: Vec<&Pattern> = vec![&EMAIL, &PHONE, &CARD, &IBAN, &SSN, &NINO, &DNI];
        all.extend(SECRETS.iter().map(|(_, p)| p));
        all.push(&PRIVATE_KEY);
        let mut matched = 0;
        for p in all {
            let (python, linear) = (oracle(p), Linear::new(p));
            for s in &texts {
                let want = python_matches(&python, s);
                matched += want.len();
                let got = linear_matches(&linear, python.captures_len(), s);
                assert_eq!(got, want, "{} on {s:?}", p.python);
            }
        }
        assert!(matched > 5000, "{matched} matches");
    }

    #[test]
    fn jwt_runs_as_python() {
        let run = |n: usize| "a".repeat(n);
        let mut texts = corpus(1500);
        for (h, p, sig) in [
            (8, 8, 0),
            (2048, 8, 1024),
            (2049, 8, 3),
            (8, 8192, 1030),
            (9, 8193, 5),
        ] {
            let jwt = format!("eyJ{}.eyJ{}.{}", run(h), run(p), run(sig));
            texts.push(jwt.clone());
            texts.push(format!("-{jwt}-eyJ{}.eyJ{}.x", run(10), run(10)));
            texts.push(format!("x{jwt} {jwt}"));
            texts.push(format!("eyJ{}-eyJ{}.eyJ{}.", run(3000), run(100), run(9)));
            texts.push(format!(
                "eyJ{}.eyJ{}-eyJ{}.eyJ{}.",
                run(9),
                run(9000),
                run(30),
                run(9)
            ));
        }
        let (python, linear) = (oracle(&JWT), Linear::new(&JWT));
        for s in &texts {
            let want: Vec<(usize, usize)> = python_matches(&python, s)
                .into_iter()
                .map(|m| m[0].expect("group 0"))
                .collect();
            assert_eq!(jwts(&linear, s), want, "{s:?}");
        }
    }

    /// The prefilter is RE2's reading of the lexicon: ASCII classes.
    #[test]
    fn prefilter_classes_are_ascii() {
        assert_eq!(
            prefilter(JWT.python),
            r"(?-u:\b)eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{0,}"
        );
        assert_eq!(prefilter(CARD.python), r"(?:[0-9][ -]?){12,18}[0-9]");
        let pii = &PII.gate;
        assert!(pii.is_match("card 4111 1111 1111 1111, mail a.b@example.org"));
        assert!(!pii.is_match("see you at noon") && !SECRET.gate.is_match("see you at noon"));
        assert!(!pii.is_match("SSN ١٢٣-٤٥-٦٧٨٩"));
        // Detection reads it normalized: the prefilter sees ASCII digits.
        assert_eq!(kinds("SSN ١٢٣-٤٥-٦٧٨٩"), ["pii.national_id"]);
        assert_eq!(normalized("SSN ١٢٣-٤٥-٦٧٨٩"), "SSN 123-45-6789");
        assert!(SECRET.gate.is_match("key AKIAIOSFODNN7EXAMPLE here"));
    }
}
