//! Stored events back to protobuf: canonical JSON, with its content put back,
//! to the event's wire bytes (which protobuf then parses in one native call).
//!
//! Strict by design: only what the canonical writer produces is accepted (JSON
//! names, 64-bit integers as strings, canonical timestamps and durations, no
//! nulls, one member per oneof, standard base64). Anything else is an error,
//! and the caller hands the row to the exact (`json_format`) parser, which
//! decides what it means or raises the error a damaged row deserves.

use std::collections::HashMap;
use std::fmt::Write as _;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::{Map, Value};

use crate::schema::{Field, Schema, WellKnown};
use crate::wire;
use crate::Error;

const MAX_DURATION_SECONDS: i64 = 315_576_000_000;

fn unexpected(what: &str) -> Error {
    Error::new(format!("not in the canonical form: {what}"))
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn tag(out: &mut Vec<u8>, number: u32, wire_type: u8) {
    varint(out, (u64::from(number) << 3) | u64::from(wire_type));
}

fn delimited(out: &mut Vec<u8>, number: u32, bytes: &[u8]) {
    tag(out, number, 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

pub struct Restorer<'s> {
    schema: &'s Schema,
    content: Option<&'s HashMap<String, String>>,
    path: String,
}

impl<'s> Restorer<'s> {
    pub fn new(schema: &'s Schema, content: Option<&'s HashMap<String, String>>) -> Self {
        Restorer {
            schema,
            content,
            path: String::new(),
        }
    }

    /// The wire bytes of message type `mi` from its JSON object.
    pub fn message(
        &mut self,
        mi: usize,
        obj: &Map<String, Value>,
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        let schema = self.schema;
        let msg = &schema.messages[mi];
        let mut oneof_set = vec![false; msg.oneofs];
        for (key, value) in obj {
            let f = &msg.fields[msg.by_json_name(key).ok_or_else(|| unexpected(key))?];
            if value.is_null() {
                return Err(unexpected("null"));
            }
            if let Some(o) = f.oneof {
                if std::mem::replace(&mut oneof_set[o], true) {
                    return Err(unexpected("two members of a oneof"));
                }
            }
            let depth = self.path.len();
            if !self.path.is_empty() {
                self.path.push('.');
            }
            self.path.push_str(key);
            if f.map {
                self.map(f, value, out)?;
            } else if f.repeated {
                let items = value.as_array().ok_or_else(|| unexpected(key))?;
                let here = self.path.len();
                for (i, item) in items.iter().enumerate() {
                    let _ = write!(self.path, "[{i}]");
                    if item.is_null() || (f.sensitive && f.ty != wire::TYPE_MESSAGE) {
                        return Err(unexpected("null or content in a list"));
                    }
                    self.single(f, item, out)?;
                    self.path.truncate(here);
                }
            } else {
                self.single(f, value, out)?;
            }
            self.path.truncate(depth);
        }
        Ok(())
    }

    /// A `map<string, V>`: one entry message per member; values keep the map's path.
    fn map(&mut self, f: &Field, value: &Value, out: &mut Vec<u8>) -> Result<(), Error> {
        let schema = self.schema;
        let entry = &schema.messages[f.message.expect("checked by Schema::new")];
        let value_field = &entry.fields[entry.index(2).expect("checked by Schema::new")];
        if value_field.sensitive || holds_content(schema, value_field) {
            return Err(unexpected("content in a map value")); // canonical.restore leaves it committed
        }
        let obj = value
            .as_object()
            .ok_or_else(|| unexpected("a map that is not an object"))?;
        let mut bytes = Vec::new();
        for (key, item) in obj {
            if item.is_null() {
                return Err(unexpected("null map value"));
            }
            bytes.clear();
            delimited(&mut bytes, 1, key.as_bytes());
            self.single(value_field, item, &mut bytes)?;
            delimited(out, f.number, &bytes);
        }
        Ok(())
    }

    /// One value of field `f` at the current path.
    fn single(&mut self, f: &Field, value: &Value, out: &mut Vec<u8>) -> Result<(), Error> {
        if f.sensitive {
            if f.ty == wire::TYPE_MESSAGE || !value.is_string() {
                return Err(unexpected("content that is not a commitment"));
            }
            if let Some(shown) = self.content.and_then(|c| c.get(&self.path)) {
                if f.ty == wire::TYPE_BYTES {
                    let raw = BASE64
                        .decode(shown)
                        .map_err(|_| unexpected("content base64"))?;
                    delimited(out, f.number, &raw);
                } else {
                    delimited(out, f.number, shown.as_bytes());
                }
            }
            return Ok(());
        }
        if f.ty == wire::TYPE_MESSAGE {
            let mi = f.message.expect("checked by Schema::new");
            let mut bytes = Vec::new();
            match self.schema.messages[mi].well_known {
                WellKnown::None => {
                    let obj = value
                        .as_object()
                        .ok_or_else(|| unexpected("a message that is not an object"))?;
                    self.message(mi, obj, &mut bytes)?;
                }
                WellKnown::Timestamp => {
                    let (s, n) = timestamp(value.as_str().ok_or_else(|| unexpected("timestamp"))?)?;
                    seconds_nanos(&mut bytes, s, n);
                }
                WellKnown::Duration => {
                    let (s, n) = duration(value.as_str().ok_or_else(|| unexpected("duration"))?)?;
                    seconds_nanos(&mut bytes, s, n);
                }
                WellKnown::Struct => {
                    structure(
                        value
                            .as_object()
                            .ok_or_else(|| unexpected("a Struct that is not an object"))?,
                        &mut bytes,
                    )?;
                }
                WellKnown::Value => any_value(value, &mut bytes)?,
                WellKnown::ListValue => list(
                    value.as_array().ok_or_else(|| unexpected("list"))?,
                    &mut bytes,
                )?,
            }
            delimited(out, f.number, &bytes);
            return Ok(());
        }
        scalar(f, value, out)
    }
}

/// Whether content can sit at or below a field (maps and foreign types excepted).
fn holds_content(schema: &Schema, f: &Field) -> bool {
    fn walk(schema: &Schema, f: &Field, seen: &mut Vec<usize>) -> bool {
        if f.sensitive {
            return true;
        }
        let Some(mi) = f.message.filter(|_| !f.map) else {
            return false;
        };
        if seen.contains(&mi) || schema.messages[mi].well_known != WellKnown::None {
            return false;
        }
        seen.push(mi);
        schema.messages[mi]
            .fields
            .iter()
            .any(|g| walk(schema, g, seen))
    }
    walk(schema, f, &mut Vec::new())
}

fn scalar(f: &Field, value: &Value, out: &mut Vec<u8>) -> Result<(), Error> {
    let n = f.number;
    match f.ty {
        wire::TYPE_STRING => delimited(
            out,
            n,
            value
                .as_str()
                .ok_or_else(|| unexpected("string"))?
                .as_bytes(),
        ),
        wire::TYPE_BYTES => {
            let text = value.as_str().ok_or_else(|| unexpected("bytes"))?;
            delimited(
                out,
                n,
                &BASE64.decode(text).map_err(|_| unexpected("base64"))?,
            );
        }
        wire::TYPE_BOOL => {
            tag(out, n, 0);
            varint(
                out,
                u64::from(value.as_bool().ok_or_else(|| unexpected("bool"))?),
            );
        }
        wire::TYPE_ENUM => {
            let number = match value {
                Value::String(name) => *f
                    .enum_numbers
                    .get(name)
                    .ok_or_else(|| unexpected("enum name"))?,
                _ => i32::try_from(value.as_i64().ok_or_else(|| unexpected("enum"))?)
                    .map_err(|_| unexpected("enum number"))?,
            };
            tag(out, n, 0);
            varint(out, number as i64 as u64);
        }
        wire::TYPE_DOUBLE => {
            let Value::Number(x) = value else {
                return Err(unexpected("double"));
            };
            tag(out, n, 1);
            out.extend_from_slice(
                &x.as_f64()
                    .ok_or_else(|| unexpected("double"))?
                    .to_le_bytes(),
            );
        }
        wire::TYPE_INT64 | wire::TYPE_SINT64 | wire::TYPE_SFIXED64 => {
            let v: i64 = match value {
                Value::String(s) if digits(s) => {
                    s.parse().map_err(|_| unexpected("int64 range"))?
                }
                _ => value.as_i64().ok_or_else(|| unexpected("int64"))?,
            };
            match f.ty {
                wire::TYPE_SFIXED64 => {
                    tag(out, n, 1);
                    out.extend_from_slice(&v.to_le_bytes());
                }
                wire::TYPE_SINT64 => {
                    tag(out, n, 0);
                    varint(out, ((v << 1) ^ (v >> 63)) as u64);
                }
                _ => {
                    tag(out, n, 0);
                    varint(out, v as u64);
                }
            }
        }
        wire::TYPE_UINT64 | wire::TYPE_FIXED64 => {
            let v: u64 = match value {
                Value::String(s) if digits(s) && !s.starts_with('-') => {
                    s.parse().map_err(|_| unexpected("uint64 range"))?
                }
                _ => value.as_u64().ok_or_else(|| unexpected("uint64"))?,
            };
            if f.ty == wire::TYPE_FIXED64 {
                tag(out, n, 1);
                out.extend_from_slice(&v.to_le_bytes());
            } else {
                tag(out, n, 0);
                varint(out, v);
            }
        }
        wire::TYPE_INT32 | wire::TYPE_SINT32 | wire::TYPE_SFIXED32 => {
            let v = i32::try_from(value.as_i64().ok_or_else(|| unexpected("int32"))?)
                .map_err(|_| unexpected("int32 range"))?;
            match f.ty {
                wire::TYPE_SFIXED32 => {
                    tag(out, n, 5);
                    out.extend_from_slice(&v.to_le_bytes());
                }
                wire::TYPE_SINT32 => {
                    tag(out, n, 0);
                    varint(out, ((v << 1) ^ (v >> 31)) as u32 as u64);
                }
                _ => {
                    tag(out, n, 0);
                    varint(out, v as i64 as u64);
                }
            }
        }
        wire::TYPE_UINT32 | wire::TYPE_FIXED32 => {
            let v = u32::try_from(value.as_u64().ok_or_else(|| unexpected("uint32"))?)
                .map_err(|_| unexpected("uint32 range"))?;
            if f.ty == wire::TYPE_FIXED32 {
                tag(out, n, 5);
                out.extend_from_slice(&v.to_le_bytes());
            } else {
                tag(out, n, 0);
                varint(out, u64::from(v));
            }
        }
        _ => return Err(unexpected("a float or an unsupported type")), // float32: range checks
    }
    Ok(())
}

/// `-?[0-9]+`: the decimal text of a 64-bit integer as the canonical form writes it.
fn digits(s: &str) -> bool {
    let body = s.strip_prefix('-').unwrap_or(s);
    !body.is_empty() && body.bytes().all(|b| b.is_ascii_digit())
}

fn seconds_nanos(out: &mut Vec<u8>, seconds: i64, nanos: i32) {
    if seconds != 0 {
        tag(out, 1, 0);
        varint(out, seconds as u64);
    }
    if nanos != 0 {
        tag(out, 2, 0);
        varint(out, nanos as i64 as u64);
    }
}

fn structure(obj: &Map<String, Value>, out: &mut Vec<u8>) -> Result<(), Error> {
    let (mut entry, mut item) = (Vec::new(), Vec::new());
    for (key, value) in obj {
        entry.clear();
        item.clear();
        delimited(&mut entry, 1, key.as_bytes());
        any_value(value, &mut item)?;
        delimited(&mut entry, 2, &item);
        delimited(out, 1, &entry);
    }
    Ok(())
}

fn list(items: &[Value], out: &mut Vec<u8>) -> Result<(), Error> {
    let mut item = Vec::new();
    for value in items {
        item.clear();
        any_value(value, &mut item)?;
        delimited(out, 1, &item);
    }
    Ok(())
}

/// The fields of a `google.protobuf.Value` holding a JSON value.
fn any_value(value: &Value, out: &mut Vec<u8>) -> Result<(), Error> {
    let mut inner = Vec::new();
    match value {
        Value::Null => {
            tag(out, 1, 0);
            varint(out, 0);
        }
        Value::Number(x) => {
            tag(out, 2, 1);
            out.extend_from_slice(
                &x.as_f64()
                    .ok_or_else(|| unexpected("number"))?
                    .to_le_bytes(),
            );
        }
        Value::String(s) => delimited(out, 3, s.as_bytes()),
        Value::Bool(b) => {
            tag(out, 4, 0);
            varint(out, u64::from(*b));
        }
        Value::Object(obj) => {
            structure(obj, &mut inner)?;
            delimited(out, 5, &inner);
        }
        Value::Array(items) => {
            list(items, &mut inner)?;
            delimited(out, 6, &inner);
        }
    }
    Ok(())
}

/// Nanoseconds in one unit of a fraction of 3, 6 or 9 digits.
fn fraction(text: &str) -> Result<i32, Error> {
    let unit = match text.len() {
        3 => 1_000_000,
        6 => 1_000,
        9 => 1,
        _ => return Err(unexpected("fraction digits")),
    };
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(unexpected("fraction"));
    }
    Ok(text.parse::<i32>().map_err(|_| unexpected("fraction"))? * unit)
}

/// `YYYY-MM-DDTHH:MM:SS[.fff|.ffffff|.fffffffff]Z` to (seconds, nanos) since the epoch.
fn timestamp(text: &str) -> Result<(i64, i32), Error> {
    let b = text.as_bytes();
    let shape = b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[b.len() - 1] == b'Z'
        && [0..4, 5..7, 8..10, 11..13, 14..16, 17..19]
            .iter()
            .all(|r| b[r.clone()].iter().all(u8::is_ascii_digit));
    if !shape {
        return Err(unexpected("timestamp"));
    }
    let num = |r: std::ops::Range<usize>| text[r].parse::<i64>().expect("digits checked");
    let (year, month, day) = (num(0..4), num(5..7), num(8..10));
    let (hour, minute, second) = (num(11..13), num(14..16), num(17..19));
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if year < 1
        || !(1..=12).contains(&month)
        || day < 1
        || day > month_days[(month - 1) as usize]
        || hour > 23
        || minute > 59
        || second > 59
    {
        return Err(unexpected("timestamp range"));
    }
    let nanos = match &text[19..text.len() - 1] {
        "" => 0,
        frac => fraction(
            frac.strip_prefix('.')
                .ok_or_else(|| unexpected("timestamp"))?,
        )?,
    };
    let days = days_from_civil(year, month, day);
    Ok((days * 86_400 + hour * 3600 + minute * 60 + second, nanos))
}

/// `-?S[.fff|.ffffff|.fffffffff]s` to (seconds, nanos), the sign on both.
fn duration(text: &str) -> Result<(i64, i32), Error> {
    let body = text
        .strip_suffix('s')
        .ok_or_else(|| unexpected("duration"))?;
    let (negative, body) = match body.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, body),
    };
    let (whole, frac) = body.split_once('.').unwrap_or((body, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return Err(unexpected("duration"));
    }
    let seconds: i64 = whole.parse().map_err(|_| unexpected("duration range"))?;
    let nanos = if body.contains('.') {
        fraction(frac)?
    } else {
        0
    };
    if seconds > MAX_DURATION_SECONDS {
        return Err(unexpected("duration range"));
    }
    Ok(if negative {
        (-seconds, -nanos)
    } else {
        (seconds, nanos)
    })
}

/// Days from 1970-01-01 to a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}
