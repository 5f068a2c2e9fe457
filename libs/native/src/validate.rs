//! Ingest's field checks of an event, over its wire bytes: every set field by
//! kind (enums known, numbers finite and not negative, metadata text within
//! its limit, timestamps and durations in range, Struct numbers finite and
//! every Value in a Struct with its kind set), and
//! the rules of media and money. Each problem is named by its field path
//! (proto names, `[i]` for list items), in declaration order.

use std::collections::hash_map::{Entry, HashMap};

use sha2::{Digest, Sha256};

use crate::canonical::{decode, int, is_default, len, seconds_nanos, text, Decoded};
use crate::schema::{Field, Message, Schema, WellKnown};
use crate::wire::{self, Raw};
use crate::Error;

const SIGNED: &str = "aiaudit.common.v1.AttributeValue"; // the only place negative numbers make sense
const MEDIA: &str = "aiaudit.common.v1.Media";
const MONEY: &str = "aiaudit.common.v1.Money";
const MAX_DURATION: i64 = 315_576_000_000; // google.protobuf.Duration's own range

pub struct Checker<'s> {
    schema: &'s Schema,
    max_text: usize,
    path: String,
    pub violations: Vec<(String, String)>,
}

impl<'s> Checker<'s> {
    pub fn new(schema: &'s Schema, max_text: usize) -> Self {
        Checker {
            schema,
            max_text,
            path: String::new(),
            violations: Vec::new(),
        }
    }

    fn flag(&mut self, at: &str, what: impl Into<String>) {
        self.violations.push((at.to_owned(), what.into()));
    }

    /// Checks every set field of message type `mi` (bytes: `parts` concatenated).
    pub fn message(&mut self, mi: usize, parts: &[&[u8]]) -> Result<(), Error> {
        let schema = self.schema;
        let msg = &schema.messages[mi];
        let d = decode(msg, parts)?;
        let signed = msg.name == SIGNED;
        for &fi in &msg.declared {
            let (f, values) = (&msg.fields[fi], &d.values[fi]);
            let Some(last) = values.last() else { continue };
            if f.map {
                continue; // checked by the caller's own rules (attributes)
            }
            let depth = self.path.len();
            if !self.path.is_empty() {
                self.path.push('.');
            }
            self.path.push_str(&f.name);
            if f.repeated {
                let here = self.path.len();
                for (i, v) in values.iter().enumerate() {
                    self.path.push_str(&format!("[{i}]"));
                    self.one(f, &[len_or_empty(v)], v, signed)?;
                    self.path.truncate(here);
                }
            } else if f.ty == wire::TYPE_MESSAGE {
                let parts: Vec<&[u8]> = values.iter().map(len).collect();
                self.one(f, &parts, last, signed)?;
            } else if f.presence || !is_default(f, last) {
                self.one(f, &[], last, signed)?;
            }
            self.path.truncate(depth);
        }
        Ok(())
    }

    /// One value at the current path (`parts`: a message's bytes).
    fn one(&mut self, f: &Field, parts: &[&[u8]], raw: &Raw, signed: bool) -> Result<(), Error> {
        let at = self.path.clone();
        match f.ty {
            wire::TYPE_MESSAGE => {
                let mi = f.message.expect("checked by Schema::new");
                let target = &self.schema.messages[mi];
                match target.well_known {
                    WellKnown::Timestamp => {
                        let (s, n) = seconds_nanos(target, &decode(target, parts)?);
                        if !(-62_135_596_800..=253_402_300_799).contains(&s)
                            || !(0..=999_999_999).contains(&n)
                        {
                            self.flag(&at, "is not a valid timestamp: 0001-01-01 to 9999-12-31, nanos in [0, 999999999]");
                        }
                    }
                    WellKnown::Duration => {
                        let (s, n) = seconds_nanos(target, &decode(target, parts)?);
                        if !(0..=MAX_DURATION).contains(&s) || !(0..=999_999_999).contains(&n) {
                            self.flag(
                                &at,
                                format!("must be 0 to {MAX_DURATION} s, nanos in [0, 999999999]"),
                            );
                        }
                    }
                    WellKnown::Struct => {
                        let mut walk = StructWalk {
                            schema: self.schema,
                            path: at.clone(),
                            not_finite: false,
                            unset: Vec::new(),
                        };
                        walk.message(mi, parts)?;
                        if walk.not_finite {
                            self.flag(&at, "holds a number that is not finite");
                        }
                        for path in walk.unset {
                            self.flag(&path, UNSET_VALUE);
                        }
                    }
                    WellKnown::Value | WellKnown::ListValue => {}
                    WellKnown::None => {
                        if target.name == MEDIA {
                            self.media(target, &decode(target, parts)?, &at)?;
                        } else if target.name == MONEY {
                            self.money(target, &decode(target, parts)?, &at);
                        }
                        self.message(mi, parts)?;
                    }
                }
            }
            wire::TYPE_ENUM => {
                let v = int(raw) as i32;
                if !f.enum_names.contains_key(&v) {
                    self.flag(&at, format!("unknown {} value {v}", f.enum_type));
                }
            }
            wire::TYPE_DOUBLE | wire::TYPE_FLOAT => {
                let v = if f.ty == wire::TYPE_DOUBLE {
                    f64::from_bits(int(raw))
                } else {
                    f64::from(f32::from_bits(int(raw) as u32))
                };
                if !v.is_finite() {
                    self.flag(&at, "must be a finite number");
                } else if v < 0.0 && !signed {
                    self.flag(&at, "must not be negative");
                }
            }
            wire::TYPE_INT64 if !signed && (int(raw) as i64) < 0 => {
                self.flag(&at, "must not be negative");
            }
            wire::TYPE_STRING | wire::TYPE_BYTES if !f.sensitive => {
                let size = if f.ty == wire::TYPE_STRING {
                    text(raw)?.chars().count()
                } else {
                    len(raw).len()
                };
                if size > self.max_text {
                    self.flag(
                        &at,
                        format!("is {size} characters; the limit is {}", self.max_text),
                    );
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn media(&mut self, m: &Message, d: &Decoded, at: &str) -> Result<(), Error> {
        let field = |name: &str| m.by_name(name).and_then(|i| d.values[i].last().copied());
        let string = |name: &str| field(name).map_or(Ok(""), |r| text(&r));
        if string("mime_type")?.is_empty() {
            self.flag(&format!("{at}.mime_type"), "is required");
        }
        let sha = string("sha256")?;
        if !(sha.len() == 64
            && sha
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        {
            self.flag(
                &format!("{at}.sha256"),
                "is required: 64 lowercase hex digits",
            );
        }
        match (field("data"), field("uri")) {
            (None, None) => self.flag(at, "needs inline data or a uri"),
            (Some(data), _) => {
                let data = len(&data);
                let digest: String = Sha256::digest(data)
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                if digest != sha {
                    self.flag(
                        &format!("{at}.sha256"),
                        "does not match the SHA-256 of data",
                    );
                }
                let size = field("size_bytes").map_or(0, |r| int(&r) as i64);
                if size != data.len() as i64 {
                    self.flag(
                        &format!("{at}.size_bytes"),
                        format!("is {size} but data has {} bytes", data.len()),
                    );
                }
            }
            (None, Some(uri)) => {
                // A `data:` URI carries the bytes themselves outside the content: neither
                // sealed, masked nor erasable.
                let scheme = text(&uri)?.trim_start().get(..5).unwrap_or("");
                if scheme.eq_ignore_ascii_case("data:") {
                    self.flag(
                        &format!("{at}.uri"),
                        "is a data: URI: send the bytes as data, where they are content",
                    );
                }
            }
        }
        Ok(())
    }

    fn money(&mut self, m: &Message, d: &Decoded, at: &str) {
        let field = |name: &str| m.by_name(name).and_then(|i| d.values[i].last().copied());
        let currency = field("currency_code")
            .and_then(|r| text(&r).ok())
            .unwrap_or("");
        if !(currency.len() == 3 && currency.bytes().all(|b| b.is_ascii_uppercase())) {
            self.flag(
                &format!("{at}.currency_code"),
                "must be an ISO 4217 code such as USD",
            );
        }
        let units = field("units").map_or(0, |r| int(&r) as i64);
        let nanos = field("nanos").map_or(0, |r| int(&r) as i32);
        if !(-999_999_999..=999_999_999).contains(&nanos)
            || (units > 0 && nanos < 0)
            || (units < 0 && nanos > 0)
        {
            self.flag(
                &format!("{at}.nanos"),
                "must be in [-999999999, 999999999] with the sign of units",
            );
        }
    }
}

fn len_or_empty<'a>(raw: &Raw<'a>) -> &'a [u8] {
    match raw {
        Raw::Len(bytes) => bytes,
        _ => &[],
    }
}

const UNSET_VALUE: &str = "must have a kind: null_value, number_value, string_value, \
bool_value, struct_value or list_value (a Value with none set is not JSON null)";

/// What a Struct holds (at any depth) that has no JSON form: a number that is not
/// finite (JSON has no NaN or infinity), and a `google.protobuf.Value` with no kind set
/// (which the canonical form would write as null, a value the client never sent).
/// The Struct is read as protobuf parses it: a map key's last entry wins, the
/// occurrences of a singular message merge, a oneof keeps its last member.
struct StructWalk<'s> {
    schema: &'s Schema,
    /// The path of the value being walked (proto names: `fields['key']`, `values[i]`).
    path: String,
    not_finite: bool,
    /// The paths of the Values with no kind set, in the order met.
    unset: Vec<String>,
}

impl StructWalk<'_> {
    /// A Struct or a ListValue (message type `mi`, bytes: `parts` concatenated).
    fn message(&mut self, mi: usize, parts: &[&[u8]]) -> Result<(), Error> {
        let schema = self.schema;
        let msg = &schema.messages[mi];
        let Some(fi) = msg.index(1) else {
            return Ok(()); // `fields` of a Struct, `values` of a ListValue
        };
        let f = &msg.fields[fi];
        let d = decode(msg, parts)?;
        let vmi = f.message.expect("checked by Schema::new");
        let depth = self.path.len();
        match msg.well_known {
            WellKnown::Struct => {
                let entry = &schema.messages[vmi];
                let (ki, vi) = (
                    entry.index(1).expect("checked by Schema::new"),
                    entry.index(2).expect("checked by Schema::new"),
                );
                let vmi = entry.fields[vi]
                    .message
                    .expect("a Struct's values are Values");
                let mut items: Vec<(&str, Vec<&[u8]>)> = Vec::with_capacity(d.values[fi].len());
                let mut seen: HashMap<&str, usize> = HashMap::with_capacity(d.values[fi].len());
                for raw in d.values[fi].iter() {
                    let e = decode(entry, &[len(raw)])?;
                    let key = e.values[ki].last().map_or(Ok(""), text)?;
                    let value: Vec<&[u8]> = e.values[vi].iter().map(len).collect();
                    match seen.entry(key) {
                        Entry::Occupied(at) => items[*at.get()].1 = value, // the last one wins
                        Entry::Vacant(at) => {
                            at.insert(items.len());
                            items.push((key, value));
                        }
                    }
                }
                for (key, value) in items {
                    self.path.push_str(".fields[");
                    self.path.push_str(&quoted_key(key));
                    self.path.push(']');
                    self.value(vmi, &value)?; // no value in the entry: a Value with none set
                    self.path.truncate(depth);
                }
            }
            WellKnown::ListValue => {
                for (i, raw) in d.values[fi].iter().enumerate() {
                    self.path.push_str(&format!(".values[{i}]"));
                    self.value(vmi, &[len(raw)])?;
                    self.path.truncate(depth);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// A `google.protobuf.Value` (message type `mi`) at the current path.
    fn value(&mut self, mi: usize, parts: &[&[u8]]) -> Result<(), Error> {
        let msg = &self.schema.messages[mi];
        let d = decode(msg, parts)?;
        let Some((f, values)) = msg
            .fields
            .iter()
            .zip(&d.values)
            .find(|(_, values)| !values.is_empty())
        else {
            self.unset.push(self.path.clone());
            return Ok(());
        };
        match f.ty {
            wire::TYPE_DOUBLE => {
                let last = values.last().expect("not empty");
                self.not_finite |= !f64::from_bits(int(last)).is_finite();
            }
            wire::TYPE_MESSAGE => {
                let depth = self.path.len();
                self.path.push('.');
                self.path.push_str(&f.name);
                let parts: Vec<&[u8]> = values.iter().map(len).collect();
                self.message(f.message.expect("checked by Schema::new"), &parts)?;
                self.path.truncate(depth);
            }
            _ => {}
        }
        Ok(())
    }
}

/// A map key in a field path as Python's `repr` writes a printable one (as the
/// attributes' keys are named): in single quotes, or double ones if it holds a single
/// quote and no double one; the quote, backslash and control characters escaped.
fn quoted_key(key: &str) -> String {
    let quote = if key.contains('\'') && !key.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(key.len() + 2);
    out.push(quote);
    for c in key.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if c < ' ' || ('\u{7f}'..='\u{9f}').contains(&c) => {
                out.push_str(&format!("\\x{:02x}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}
