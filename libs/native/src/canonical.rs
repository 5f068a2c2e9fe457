//! The canonical form of an event: RFC 8785 text of its proto3 JSON mapping,
//! every sensitive content value replaced by its salted commitment.
//!
//! The same construction as the README's "canonical form" and the Python
//! reference in the tests (`rfc8785.dumps(json_format.MessageToDict(event))`
//! with the commitments substituted); property tests hold the two equal.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use std::fmt::Write as _;

use crate::jcs;
use crate::schema::{Field, Message, Schema, WellKnown};
use crate::wire::{self, Raw, Reader};
use crate::Error;

const COMMITMENT_PREFIX: &[u8] = b"\"hmac-sha256:";

/// Every occurrence of each field of one message (indexes as in `Message::fields`).
pub(crate) struct Decoded<'a> {
    pub values: Vec<Values<'a>>,
}

/// The occurrences of one field. Most fields occur once: that one is kept
/// inline, not in a vector of its own (an allocation per set field was a
/// tenth of the canonical commit's time).
#[derive(Clone, Default)]
pub(crate) enum Values<'a> {
    #[default]
    None,
    One(Raw<'a>),
    Many(Vec<Raw<'a>>),
}

impl<'a> Values<'a> {
    pub fn push(&mut self, raw: Raw<'a>) {
        match self {
            Values::None => *self = Values::One(raw),
            Values::One(first) => *self = Values::Many(vec![*first, raw]),
            Values::Many(all) => all.push(raw),
        }
    }

    pub fn clear(&mut self) {
        *self = Values::None;
    }
}

impl<'a> std::ops::Deref for Values<'a> {
    type Target = [Raw<'a>];

    fn deref(&self) -> &[Raw<'a>] {
        match self {
            Values::None => &[],
            Values::One(raw) => std::slice::from_ref(raw),
            Values::Many(all) => all,
        }
    }
}

/// Reads a message given as the concatenation of `parts` (how the wire merges
/// repeated occurrences of a singular message field).
pub(crate) fn decode<'a>(msg: &Message, parts: &[&'a [u8]]) -> Result<Decoded<'a>, Error> {
    let mut values: Vec<Values<'a>> = vec![Values::None; msg.fields.len()];
    let mut oneof_set: Vec<Option<usize>> = vec![None; msg.oneofs];
    for part in parts {
        let mut r = Reader::new(part);
        while !r.done() {
            let (number, wire, raw) = r.field()?;
            let Some(i) = msg.index(number) else { continue }; // unknown fields are not part of it
            let f = &msg.fields[i];
            if let Some(o) = f.oneof {
                // Setting one member of a oneof clears the others.
                if let Some(previous) = oneof_set[o].replace(i).filter(|&p| p != i) {
                    values[previous].clear();
                }
            }
            let expected = wire::wire_type(f.ty);
            match raw {
                Raw::Len(bytes) if f.repeated && expected != 2 => {
                    wire::unpack(bytes, f.ty, |raw| values[i].push(raw))?
                }
                _ if wire != expected => {
                    return Err(Error::new(format!(
                        "{}.{}: wire type {wire}, expected {expected}",
                        msg.name, f.json_name
                    )))
                }
                _ => values[i].push(raw),
            }
        }
    }
    Ok(Decoded { values })
}

pub(crate) fn len<'a>(raw: &Raw<'a>) -> &'a [u8] {
    match raw {
        Raw::Len(bytes) => bytes,
        _ => unreachable!("wire types are checked when decoding"),
    }
}

pub(crate) fn int(raw: &Raw) -> u64 {
    match *raw {
        Raw::Varint(v) | Raw::Fixed64(v) => v,
        Raw::Fixed32(v) => u64::from(v),
        Raw::Len(_) => unreachable!("wire types are checked when decoding"),
    }
}

pub(crate) fn text<'a>(raw: &Raw<'a>) -> Result<&'a str, Error> {
    std::str::from_utf8(len(raw)).map_err(|_| Error::new("a string field is not UTF-8"))
}

/// The default a field has when it is absent.
fn default_raw(ty: u8) -> Raw<'static> {
    match wire::wire_type(ty) {
        0 => Raw::Varint(0),
        1 => Raw::Fixed64(0),
        5 => Raw::Fixed32(0),
        _ => Raw::Len(&[]),
    }
}

/// Whether an implicit-presence scalar holds its default (then proto3 JSON omits it).
/// -0.0 is not the default: its bits are not zero.
pub(crate) fn is_default(f: &Field, raw: &Raw) -> bool {
    match f.ty {
        wire::TYPE_STRING | wire::TYPE_BYTES => len(raw).is_empty(),
        wire::TYPE_INT32
        | wire::TYPE_UINT32
        | wire::TYPE_SINT32
        | wire::TYPE_FIXED32
        | wire::TYPE_SFIXED32
        | wire::TYPE_ENUM
        | wire::TYPE_FLOAT => int(raw) as u32 == 0,
        _ => int(raw) == 0,
    }
}

pub struct Encoder<'s> {
    schema: &'s Schema,
    /// Whether content is replaced by its commitment (the canonical form) or written.
    commits: bool,
    inner: Sha256,
    outer: Sha256,
    pub out: Vec<u8>,
    /// Content values by JSON path (proto3 JSON form: base64 for bytes), in event order.
    pub content: Vec<(String, String)>,
    path: String,
}

impl<'s> Encoder<'s> {
    /// An encoder committing content with HMAC-SHA256 under `salt`.
    pub fn new(schema: &'s Schema, salt: &[u8]) -> Self {
        let mut key = [0u8; 64];
        if salt.len() > 64 {
            key[..32].copy_from_slice(&Sha256::digest(salt));
        } else {
            key[..salt.len()].copy_from_slice(salt);
        }
        let (mut inner, mut outer) = (Sha256::new(), Sha256::new());
        inner.update(key.map(|b| b ^ 0x36));
        outer.update(key.map(|b| b ^ 0x5c));
        Encoder {
            schema,
            commits: true,
            inner,
            outer,
            out: Vec::with_capacity(1024),
            content: Vec::new(),
            path: String::new(),
        }
    }

    /// An encoder writing content as it is: the event's proto3 JSON mapping, as RFC 8785
    /// text (what `rfc8785.dumps(json_format.MessageToDict(event))` writes).
    pub fn plain(schema: &'s Schema) -> Self {
        Encoder {
            commits: false,
            ..Encoder::new(schema, b"")
        }
    }

    /// Writes message type `mi`, whose bytes are `parts` concatenated.
    pub fn message(&mut self, mi: usize, parts: &[&[u8]]) -> Result<(), Error> {
        let schema = self.schema;
        let msg = &schema.messages[mi];
        let d = decode(msg, parts)?;
        match msg.well_known {
            WellKnown::None => {}
            WellKnown::Timestamp => {
                let (s, n) = seconds_nanos(msg, &d);
                return jcs::timestamp(&mut self.out, s, n);
            }
            WellKnown::Duration => {
                let (s, n) = seconds_nanos(msg, &d);
                jcs::duration(&mut self.out, s, n);
                return Ok(());
            }
            WellKnown::Struct => return self.map(&msg.fields[0], &d.values[0]),
            WellKnown::Value => return self.value(msg, &d),
            WellKnown::ListValue => return self.list(&msg.fields[0], &d.values[0]),
        }
        self.out.push(b'{');
        let mut first = true;
        for (f, values) in msg.fields.iter().zip(&d.values) {
            let Some(last) = values.last() else { continue };
            if !f.repeated && f.ty != wire::TYPE_MESSAGE && !f.presence && is_default(f, last) {
                continue;
            }
            if !first {
                self.out.push(b',');
            }
            first = false;
            self.out.extend_from_slice(&f.key);
            let depth = self.path.len();
            if !self.path.is_empty() {
                self.path.push('.');
            }
            self.path.push_str(&f.json_name);
            if f.map {
                self.map(f, values)?;
            } else if f.repeated {
                self.out.push(b'[');
                let here = self.path.len();
                for (i, v) in values.iter().enumerate() {
                    if i > 0 {
                        self.out.push(b',');
                    }
                    let _ = write!(self.path, "[{i}]");
                    self.one(f, v)?;
                    self.path.truncate(here);
                }
                self.out.push(b']');
            } else if f.ty == wire::TYPE_MESSAGE {
                let parts: Vec<&[u8]> = values.iter().map(len).collect();
                self.message(f.message.expect("checked by Schema::new"), &parts)?;
            } else {
                self.one(f, last)?;
            }
            self.path.truncate(depth);
        }
        self.out.push(b'}');
        Ok(())
    }

    /// One value of a field at the current path: a message, a commitment or a scalar.
    fn one(&mut self, f: &Field, raw: &Raw) -> Result<(), Error> {
        if f.ty == wire::TYPE_MESSAGE {
            return self.message(f.message.expect("checked by Schema::new"), &[len(raw)]);
        }
        if f.sensitive && self.commits {
            return self.commit(f, raw);
        }
        self.scalar(f, raw)
    }

    fn commit(&mut self, f: &Field, raw: &Raw) -> Result<(), Error> {
        let bytes = len(raw);
        let shown = if f.ty == wire::TYPE_BYTES {
            BASE64.encode(bytes)
        } else {
            text(raw)?.to_owned()
        };
        let mut inner = self.inner.clone();
        inner.update(self.path.as_bytes());
        inner.update([0u8]);
        inner.update(bytes);
        let mut outer = self.outer.clone();
        outer.update(inner.finalize());
        let mac = outer.finalize();
        const HEX: &[u8; 16] = b"0123456789abcdef";
        self.out.extend_from_slice(COMMITMENT_PREFIX);
        for b in mac {
            self.out.push(HEX[(b >> 4) as usize]);
            self.out.push(HEX[(b & 0xf) as usize]);
        }
        self.out.push(b'"');
        self.content.push((self.path.clone(), shown));
        Ok(())
    }

    fn scalar(&mut self, f: &Field, raw: &Raw) -> Result<(), Error> {
        let v = int_or_zero(raw);
        let out = &mut self.out;
        match f.ty {
            wire::TYPE_STRING => jcs::string(out, text(raw)?),
            wire::TYPE_BYTES => {
                out.push(b'"');
                out.extend_from_slice(BASE64.encode(len(raw)).as_bytes());
                out.push(b'"');
            }
            wire::TYPE_BOOL => out.extend_from_slice(if v != 0 { b"true" } else { b"false" }),
            wire::TYPE_ENUM => match f.enum_names.get(&(v as i32)) {
                Some(name) => out.extend_from_slice(name),
                None => out.extend_from_slice((v as i32).to_string().as_bytes()),
            },
            wire::TYPE_INT64 | wire::TYPE_SFIXED64 => quoted(out, (v as i64).to_string()),
            wire::TYPE_UINT64 | wire::TYPE_FIXED64 => quoted(out, v.to_string()),
            wire::TYPE_SINT64 => quoted(out, zigzag(v).to_string()),
            wire::TYPE_INT32 | wire::TYPE_SFIXED32 => {
                out.extend_from_slice((v as i32).to_string().as_bytes())
            }
            wire::TYPE_UINT32 | wire::TYPE_FIXED32 => {
                out.extend_from_slice((v as u32).to_string().as_bytes())
            }
            wire::TYPE_SINT32 => {
                out.extend_from_slice((zigzag(v as u32 as u64) as i32).to_string().as_bytes())
            }
            wire::TYPE_DOUBLE => jcs::number(out, f64::from_bits(v))?,
            wire::TYPE_FLOAT => jcs::number(out, f64::from(f32::from_bits(v as u32)))?,
            other => {
                return Err(Error::new(format!(
                    "field {}: type {other} not supported",
                    f.json_name
                )))
            }
        }
        Ok(())
    }

    /// A `map<string, V>` field (or a Struct's fields): an object in key order, the last
    /// entry of a key winning. Values keep the map field's path, as the reference does.
    fn map(&mut self, f: &Field, entries: &[Raw]) -> Result<(), Error> {
        let schema = self.schema;
        let entry = &schema.messages[f.message.expect("checked by Schema::new")];
        let (ki, vi) = (
            entry.index(1).expect("checked"),
            entry.index(2).expect("checked"),
        );
        let value_field = &entry.fields[vi];
        let mut items: Vec<(&str, Values)> = Vec::with_capacity(entries.len());
        for raw in entries {
            let mut d = decode(entry, &[len(raw)])?;
            let key = d.values[ki].last().map_or(Ok(""), text)?;
            items.push((key, std::mem::take(&mut d.values[vi])));
        }
        items.reverse(); // the stable sort keeps the last entry of a key first
        items.sort_by(|a, b| jcs::key_order(a.0, b.0));
        items.dedup_by(|later, kept| later.0 == kept.0);
        self.out.push(b'{');
        for (i, (key, values)) in items.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            jcs::string(&mut self.out, key);
            self.out.push(b':');
            if value_field.ty == wire::TYPE_MESSAGE {
                let parts: Vec<&[u8]> = values.iter().map(len).collect();
                self.message(value_field.message.expect("checked"), &parts)?;
            } else {
                let default = default_raw(value_field.ty);
                self.scalar(value_field, values.last().unwrap_or(&default))?;
            }
        }
        self.out.push(b'}');
        Ok(())
    }

    /// A `google.protobuf.Value`: the member of its `kind` that is set, else null.
    fn value(&mut self, msg: &Message, d: &Decoded) -> Result<(), Error> {
        for (f, values) in msg.fields.iter().zip(&d.values) {
            let Some(last) = values.last() else { continue };
            return match f.number {
                1 => {
                    self.out.extend_from_slice(b"null");
                    Ok(())
                }
                5 | 6 => {
                    let parts: Vec<&[u8]> = values.iter().map(len).collect();
                    self.message(f.message.expect("checked"), &parts)
                }
                _ => self.scalar(f, last),
            };
        }
        self.out.extend_from_slice(b"null");
        Ok(())
    }

    /// A `google.protobuf.ListValue`: its values as an array.
    fn list(&mut self, f: &Field, values: &[Raw]) -> Result<(), Error> {
        self.out.push(b'[');
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            self.message(f.message.expect("checked"), &[len(v)])?;
        }
        self.out.push(b']');
        Ok(())
    }
}

/// What [`content_texts`] finds: the content strings as (JSON path, text), and the
/// paths of the set content bytes (inline media), which only their owner can read.
#[derive(Default)]
pub struct ContentFound {
    pub texts: Vec<(String, String)>,
    pub bytes: Vec<String>,
}

/// Every set content field (a `sensitive_content` string or bytes field) of message type
/// `mi` (bytes: `parts` concatenated) and of the messages it holds: the paths of
/// [`Encoder`]'s content. Maps and well-known types hold none.
pub fn content_texts(
    schema: &Schema,
    mi: usize,
    parts: &[&[u8]],
    path: &mut String,
    out: &mut ContentFound,
) -> Result<(), Error> {
    let msg = &schema.messages[mi];
    if msg.well_known != WellKnown::None {
        return Ok(());
    }
    let d = decode(msg, parts)?;
    for (f, values) in msg.fields.iter().zip(&d.values) {
        let holds_content = f.sensitive && (f.ty == wire::TYPE_STRING || f.ty == wire::TYPE_BYTES);
        if values.is_empty() || f.map || !(holds_content || f.ty == wire::TYPE_MESSAGE) {
            continue;
        }
        let depth = path.len();
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(&f.json_name);
        if f.repeated {
            let here = path.len();
            for (i, v) in values.iter().enumerate() {
                let _ = write!(path, "[{i}]");
                one_content_text(schema, f, v, path, out)?;
                path.truncate(here);
            }
        } else if f.ty == wire::TYPE_MESSAGE {
            let parts: Vec<&[u8]> = values.iter().map(len).collect();
            let sub = f.message.expect("checked by Schema::new");
            content_texts(schema, sub, &parts, path, out)?;
        } else {
            one_content_text(schema, f, values.last().expect("not empty"), path, out)?;
        }
        path.truncate(depth);
    }
    Ok(())
}

fn one_content_text(
    schema: &Schema,
    f: &Field,
    raw: &Raw,
    path: &mut String,
    out: &mut ContentFound,
) -> Result<(), Error> {
    if f.ty == wire::TYPE_MESSAGE {
        let sub = f.message.expect("checked by Schema::new");
        return content_texts(schema, sub, &[len(raw)], path, out);
    }
    if f.ty == wire::TYPE_BYTES {
        if !len(raw).is_empty() {
            out.bytes.push(path.clone());
        }
        return Ok(());
    }
    let t = text(raw)?;
    if !t.is_empty() {
        out.texts.push((path.clone(), t.to_owned()));
    }
    Ok(())
}

/// Content values by path as one compact JSON object, in event order (the
/// `event_content.content` column). Strings are escaped as RFC 8785 escapes
/// them, which is also what orjson writes.
pub fn content_json(content: &[(String, String)]) -> Vec<u8> {
    let size: usize = content.iter().map(|(p, v)| p.len() + v.len() + 6).sum();
    let mut out = Vec::with_capacity(size + 2);
    out.push(b'{');
    for (i, (path, value)) in content.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        jcs::string(&mut out, path);
        out.push(b':');
        jcs::string(&mut out, value);
    }
    out.push(b'}');
    out
}

/// (seconds, nanos) of a decoded Timestamp or Duration.
pub(crate) fn seconds_nanos(msg: &Message, d: &Decoded) -> (i64, i32) {
    let last = |number: u32| {
        msg.index(number)
            .and_then(|i| d.values[i].last())
            .map_or(0, int)
    };
    (last(1) as i64, last(2) as i32)
}

fn int_or_zero(raw: &Raw) -> u64 {
    match raw {
        Raw::Len(_) => 0,
        _ => int(raw),
    }
}

fn zigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn quoted(out: &mut Vec<u8>, digits: String) {
    out.push(b'"');
    out.extend_from_slice(digits.as_bytes());
    out.push(b'"');
}
