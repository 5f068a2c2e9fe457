//! Field paths read straight from an event's wire bytes, with the values the
//! Python field paths (`aiaudit.alerting.fields`) give: enums by full name,
//! durations in milliseconds, timestamps in seconds, `attributes.<key>` and
//! `model.parameters.<key>`, and the derived `usage.total_tokens` / `usage.cost`.
//!
//! Paths are checked (with errors for rule authors) on the Python side when a
//! rule compiles; here they are resolved against the same schema.

use std::collections::HashMap;

use crate::rules::value::Value;
use crate::schema::{Schema, WellKnown};
use crate::wire::{self, Raw, Reader};
use crate::Error;

/// A message on the wire: its type and its occurrences (several merge, in order).
#[derive(Clone)]
pub struct Node<'a> {
    pub parts: Vec<&'a [u8]>,
}

impl<'a> Node<'a> {
    pub fn root(bytes: &'a [u8]) -> Self {
        Node { parts: vec![bytes] }
    }

    /// Every occurrence of a field number, in wire order.
    pub fn raw(&self, number: u32) -> Result<Vec<Raw<'a>>, Error> {
        let mut out = Vec::new();
        for part in &self.parts {
            let mut r = Reader::new(part);
            while !r.done() {
                let (n, _, raw) = r.field()?;
                if n == number {
                    out.push(raw);
                }
            }
        }
        Ok(out)
    }

    /// The elements of a repeated message field.
    pub fn each(&self, number: u32) -> Result<Vec<Node<'a>>, Error> {
        Ok(self
            .raw(number)?
            .into_iter()
            .filter_map(|r| match r {
                Raw::Len(b) => Some(Node::root(b)),
                _ => None,
            })
            .collect())
    }

    /// A singular message field, its occurrences merged (None: not set).
    pub fn one(&self, number: u32) -> Result<Option<Node<'a>>, Error> {
        let parts: Vec<&[u8]> = self
            .raw(number)?
            .into_iter()
            .filter_map(|r| match r {
                Raw::Len(b) => Some(b),
                _ => None,
            })
            .collect();
        Ok((!parts.is_empty()).then_some(Node { parts }))
    }
}

/// How a leaf's raw values become rule values.
#[derive(Clone)]
struct Scalar {
    ty: u8,
    enums: Option<HashMap<i32, String>>,
}

impl Scalar {
    fn decode(&self, raw: Raw<'_>) -> Option<Value> {
        use wire::*;
        Some(match (raw, self.ty) {
            (Raw::Varint(v), TYPE_INT32) => Value::Int(i64::from(v as i32)),
            (Raw::Varint(v), TYPE_INT64) => Value::Int(v as i64),
            (Raw::Varint(v), TYPE_UINT32) => Value::Int(i64::from(v as u32)),
            (Raw::Varint(v), TYPE_UINT64) => {
                i64::try_from(v).map_or(Value::Float(v as f64), Value::Int)
            }
            (Raw::Varint(v), TYPE_SINT32) => {
                let u = v as u32;
                Value::Int(i64::from((u >> 1) as i32 ^ -((u & 1) as i32)))
            }
            (Raw::Varint(v), TYPE_SINT64) => Value::Int((v >> 1) as i64 ^ -((v & 1) as i64)),
            (Raw::Varint(v), TYPE_BOOL) => Value::Bool(v != 0),
            (Raw::Varint(v), TYPE_ENUM) => {
                let n = v as i32;
                match self.enums.as_ref().and_then(|e| e.get(&n)) {
                    Some(name) => Value::Str(name.clone()),
                    None => Value::Int(i64::from(n)),
                }
            }
            (Raw::Fixed64(v), TYPE_DOUBLE) => Value::Float(f64::from_bits(v)),
            (Raw::Fixed64(v), TYPE_FIXED64) => {
                i64::try_from(v).map_or(Value::Float(v as f64), Value::Int)
            }
            (Raw::Fixed64(v), TYPE_SFIXED64) => Value::Int(v as i64),
            (Raw::Fixed32(v), TYPE_FLOAT) => Value::Float(f64::from(f32::from_bits(v))),
            (Raw::Fixed32(v), TYPE_FIXED32) => Value::Int(i64::from(v)),
            (Raw::Fixed32(v), TYPE_SFIXED32) => Value::Int(i64::from(v as i32)),
            (Raw::Len(b), TYPE_STRING) => Value::Str(String::from_utf8_lossy(b).into_owned()),
            (Raw::Len(b), TYPE_BYTES) => Value::Str(b.iter().map(|x| format!("{x:02x}")).collect()),
            _ => return None,
        })
    }

    /// The proto3 default, for a field without presence that is not on the wire.
    fn default(&self) -> Value {
        use wire::*;
        match self.ty {
            TYPE_STRING | TYPE_BYTES => Value::Str(String::new()),
            TYPE_BOOL => Value::Bool(false),
            TYPE_DOUBLE | TYPE_FLOAT => Value::Float(0.0),
            TYPE_ENUM => match self.enums.as_ref().and_then(|e| e.get(&0)) {
                Some(name) => Value::Str(name.clone()),
                None => Value::Int(0),
            },
            _ => Value::Int(0),
        }
    }

    /// Every value of the field in a message (`repeated`: all, packed or not; else the last).
    fn read(&self, raws: Vec<Raw<'_>>, repeated: bool, out: &mut Vec<Value>) -> Result<(), Error> {
        if !repeated {
            if let Some(v) = raws.into_iter().last().and_then(|r| self.decode(r)) {
                out.push(v);
            }
            return Ok(());
        }
        let packable = !matches!(self.ty, wire::TYPE_STRING | wire::TYPE_BYTES);
        for raw in raws {
            match raw {
                Raw::Len(b) if packable => {
                    let mut items = Vec::new();
                    wire::unpack(b, self.ty, |raw| items.push(raw))?;
                    out.extend(items.into_iter().filter_map(|r| self.decode(r)));
                }
                r => out.extend(self.decode(r)),
            }
        }
        Ok(())
    }
}

#[derive(Clone)]
enum Leaf {
    Plain {
        number: u32,
        repeated: bool,
        presence: bool,
        scalar: Scalar,
    },
    Time {
        number: u32,
        repeated: bool,
        duration: bool,
    },
    Map {
        number: u32,
        key: String,
        entry: usize,
    },
    Struct {
        number: u32,
        rest: Vec<String>,
    },
    TotalTokens(Box<FieldPath>, Box<FieldPath>),
    Cost(Box<FieldPath>, Box<FieldPath>),
}

/// The units of `usage.cost`, one of the two fields it is derived from.
const COST_UNITS: &str = "usage.cost.units";

/// A compiled path: the message steps from the event, then the leaf.
#[derive(Clone)]
pub struct FieldPath {
    /// (field number, repeated) of each message on the way.
    steps: Vec<(u32, bool)>,
    leaf: Leaf,
}

fn scalar_of(f: &crate::schema::Field) -> Scalar {
    Scalar {
        ty: f.ty,
        enums: (f.ty == wire::TYPE_ENUM).then(|| {
            f.enum_numbers
                .iter()
                .map(|(name, &n)| (n, name.clone()))
                .collect()
        }),
    }
}

impl FieldPath {
    /// Resolves a dotted path of proto field names from the message type `root`.
    pub fn resolve(schema: &Schema, root: usize, path: &str) -> Result<FieldPath, Error> {
        let derived = |a: &str, b: &str| -> Result<(Box<FieldPath>, Box<FieldPath>), Error> {
            Ok((
                Box::new(FieldPath::resolve(schema, root, a)?),
                Box::new(FieldPath::resolve(schema, root, b)?),
            ))
        };
        if path == "usage.total_tokens" {
            let (a, b) = derived("usage.input_tokens", "usage.output_tokens")?;
            return Ok(FieldPath {
                steps: vec![],
                leaf: Leaf::TotalTokens(a, b),
            });
        }
        if path == "usage.cost" {
            let (a, b) = derived(COST_UNITS, "usage.cost.nanos")?;
            return Ok(FieldPath {
                steps: vec![],
                leaf: Leaf::Cost(a, b),
            });
        }
        let parts: Vec<&str> = path.split('.').collect();
        let mut ty = root;
        let mut steps = Vec::new();
        for (i, part) in parts.iter().enumerate() {
            let msg = &schema.messages[ty];
            let f = msg
                .by_name(part)
                .map(|k| &msg.fields[k])
                .ok_or_else(|| Error::new(format!("{path}: no field {part:?}")))?;
            let rest: Vec<String> = parts[i + 1..].iter().map(|s| s.to_string()).collect();
            let Some(sub) = f.message else {
                if !rest.is_empty() {
                    return Err(Error::new(format!("{path}: {part} is a value")));
                }
                return Ok(FieldPath {
                    steps,
                    leaf: Leaf::Plain {
                        number: f.number,
                        repeated: f.repeated,
                        presence: f.presence,
                        scalar: scalar_of(f),
                    },
                });
            };
            let leaf = if f.map {
                // The key is all that follows, dots and all (the suite's own: access.outcome).
                if rest.is_empty() {
                    return Err(Error::new(format!("{path}: name one key after the map")));
                }
                Some(Leaf::Map {
                    number: f.number,
                    key: rest.join("."),
                    entry: sub,
                })
            } else {
                match schema.messages[sub].well_known {
                    WellKnown::Struct => Some(Leaf::Struct {
                        number: f.number,
                        rest,
                    }),
                    WellKnown::Timestamp | WellKnown::Duration => Some(Leaf::Time {
                        number: f.number,
                        repeated: f.repeated,
                        duration: schema.messages[sub].well_known == WellKnown::Duration,
                    }),
                    _ => None,
                }
            };
            if let Some(leaf) = leaf {
                return Ok(FieldPath { steps, leaf });
            }
            steps.push((f.number, f.repeated));
            ty = sub;
        }
        Err(Error::new(format!("{path} names a message")))
    }

    /// Whether an event tells a value equal to the default from none: a proto3 `optional`
    /// or oneof scalar, a message (a Duration, a Timestamp), a map entry, a Struct value.
    /// `exists` asks such a path whether a value is there (`model.temperature: 0`,
    /// `attributes.retries: 0`, a 0 ms latency are), others whether it differs from the
    /// default (proto3 cannot tell an unset string from an empty one).
    pub fn tracks_presence(&self) -> bool {
        match &self.leaf {
            Leaf::Plain {
                repeated, presence, ..
            } => *presence && !*repeated,
            Leaf::Time { .. } | Leaf::Map { .. } | Leaf::Struct { .. } => true,
            Leaf::TotalTokens(..) | Leaf::Cost(..) => false,
        }
    }

    /// A path that reads a value exactly when the message a derived path reads is set:
    /// `usage.cost` reads $0 without a cost (a window counts it so), but a cost of $0 is
    /// there, as search's `usage.cost:*` finds it, and `exists` asks this path.
    pub fn presence(&self) -> Option<&'static str> {
        matches!(self.leaf, Leaf::Cost(..)).then_some(COST_UNITS) // a default once set
    }

    /// Every value of the path in an event (its wire bytes, of type `root`).
    pub fn get(&self, schema: &Schema, event: &Node<'_>) -> Result<Vec<Value>, Error> {
        let mut current = vec![event.clone()];
        for &(number, repeated) in &self.steps {
            let mut next = Vec::new();
            for node in &current {
                if repeated {
                    next.extend(node.each(number)?);
                } else {
                    next.extend(node.one(number)?);
                }
            }
            current = next;
        }
        let mut out = Vec::new();
        for node in &current {
            self.read(schema, node, &mut out)?;
        }
        Ok(out)
    }

    fn read(&self, schema: &Schema, node: &Node<'_>, out: &mut Vec<Value>) -> Result<(), Error> {
        match &self.leaf {
            Leaf::Plain {
                number,
                repeated,
                presence,
                scalar,
            } => {
                let raws = node.raw(*number)?;
                if raws.is_empty() && !repeated && !presence {
                    out.push(scalar.default());
                } else {
                    scalar.read(raws, *repeated, out)?;
                }
            }
            Leaf::Time {
                number,
                repeated,
                duration,
            } => {
                let values: Vec<Node<'_>> = if *repeated {
                    node.each(*number)?
                } else {
                    node.one(*number)?.into_iter().collect()
                };
                for v in values {
                    let seconds = last_varint(&v, 1)? as i64;
                    let nanos = f64::from(last_varint(&v, 2)? as i32);
                    out.push(Value::Float(if *duration {
                        (seconds * 1000) as f64 + nanos / 1e6
                    } else {
                        seconds as f64 + nanos / 1e9
                    }));
                }
            }
            Leaf::Map { number, key, entry } => map_value(schema, node, *number, key, *entry, out)?,
            Leaf::Struct { number, rest } => {
                if let Some(s) = node.one(*number)? {
                    struct_value(&s, rest, out)?;
                }
            }
            Leaf::TotalTokens(a, b) => {
                let (x, y) = (first_int(schema, a, node)?, first_int(schema, b, node)?);
                out.push(Value::Int(x.saturating_add(y))); // ingest takes each up to i64::MAX
            }
            Leaf::Cost(units, nanos) => {
                let (u, n) = (
                    first_int(schema, units, node)?,
                    first_int(schema, nanos, node)?,
                );
                out.push(Value::Float(money(u, n)));
            }
        }
        Ok(())
    }
}

/// A `google.type.Money` amount as the double nearest its decimal value, as search
/// indexes it: `u + n / 1e9` rounds twice, and $1.14 became 1.1400000000000001,
/// which a rule's `usage.cost lte: 1.14` did not match. Units and nanos share their sign.
fn money(units: i64, nanos: i64) -> f64 {
    let sign = if units < 0 || nanos < 0 { "-" } else { "" };
    let text = format!("{sign}{}.{:09}", units.unsigned_abs(), nanos.unsigned_abs());
    text.parse().unwrap_or(f64::NAN) // digits only: always parses
}

/// The first integer value of a path, 0 when it has none (an unset message reads as defaults).
fn first_int(schema: &Schema, path: &FieldPath, node: &Node<'_>) -> Result<i64, Error> {
    Ok(match path.get(schema, node)?.first() {
        Some(Value::Int(i)) => *i,
        _ => 0,
    })
}

fn last_varint(node: &Node<'_>, number: u32) -> Result<u64, Error> {
    Ok(node
        .raw(number)?
        .into_iter()
        .rev()
        .find_map(|r| match r {
            Raw::Varint(v) => Some(v),
            _ => None,
        })
        .unwrap_or(0))
}

/// `attributes.<key>`: the entry's value; a message value gives its set oneof member.
fn map_value(
    schema: &Schema,
    node: &Node<'_>,
    number: u32,
    key: &str,
    entry: usize,
    out: &mut Vec<Value>,
) -> Result<(), Error> {
    let entry_type = &schema.messages[entry];
    let value_field = entry_type
        .index(2)
        .map(|i| &entry_type.fields[i])
        .ok_or_else(|| Error::new("map entry without a value"))?;
    let mut found = None;
    for e in node.each(number)? {
        let k = e.raw(1)?.into_iter().last();
        let k = match k {
            Some(Raw::Len(b)) => b,
            _ => &[][..],
        };
        if k == key.as_bytes() {
            found = Some(e);
        }
    }
    let Some(e) = found else {
        return Ok(());
    };
    let Some(sub) = value_field.message else {
        let raws = e.raw(2)?;
        let scalar = scalar_of(value_field);
        if raws.is_empty() {
            out.push(scalar.default());
        } else {
            scalar.read(raws, false, out)?;
        }
        return Ok(());
    };
    let Some(item) = e.one(2)? else {
        return Ok(());
    };
    // The set member of the value's oneof: the last one on the wire.
    let msg = &schema.messages[sub];
    let mut set = None;
    for part in &item.parts {
        let mut r = Reader::new(part);
        while !r.done() {
            let (n, _, raw) = r.field()?;
            if let Some(f) = msg.index(n).map(|i| &msg.fields[i]) {
                if f.oneof.is_some() {
                    set = Some((scalar_of(f), raw));
                }
            }
        }
    }
    if let Some((scalar, raw)) = set {
        out.extend(scalar.decode(raw));
    }
    Ok(())
}

// google.protobuf.Struct / Value / ListValue field numbers.
const STRUCT_FIELDS: u32 = 1;
const VALUE_NUMBER: u32 = 2;
const VALUE_STRING: u32 = 3;
const VALUE_BOOL: u32 = 4;
const VALUE_STRUCT: u32 = 5;
const VALUE_LIST: u32 = 6;
const LIST_VALUES: u32 = 1;

/// The kind and raw value of a google.protobuf.Value (its last set member).
fn value_kind<'a>(v: &Node<'a>) -> Result<Option<(u32, Raw<'a>)>, Error> {
    let mut kind = None;
    for part in &v.parts {
        let mut r = Reader::new(part);
        while !r.done() {
            let (n, _, raw) = r.field()?;
            if (1..=6).contains(&n) {
                kind = Some((n, raw));
            }
        }
    }
    Ok(kind)
}

/// A scalar google.protobuf.Value as JSON gives it (numbers as floats; null: none).
fn json_scalar(kind: Option<(u32, Raw<'_>)>) -> Option<Value> {
    match kind? {
        (VALUE_NUMBER, Raw::Fixed64(b)) => Some(Value::Float(f64::from_bits(b))),
        (VALUE_STRING, Raw::Len(b)) => Some(Value::Str(String::from_utf8_lossy(b).into_owned())),
        (VALUE_BOOL, Raw::Varint(b)) => Some(Value::Bool(b != 0)),
        _ => None,
    }
}

/// `model.parameters.<key>...`: the value at the keys, or each scalar of a list there.
fn struct_value(s: &Node<'_>, rest: &[String], out: &mut Vec<Value>) -> Result<(), Error> {
    let mut dict = s.clone();
    let mut value: Option<Node<'_>> = None;
    for (i, key) in rest.iter().enumerate() {
        if i > 0 {
            // The previous value must itself be an object.
            let v = value.take().expect("set in the previous step");
            match value_kind(&v)? {
                Some((VALUE_STRUCT, Raw::Len(b))) => dict = Node::root(b),
                _ => return Ok(()),
            }
        }
        let mut found = None;
        for e in dict.each(STRUCT_FIELDS)? {
            if let Some(Raw::Len(k)) = e.raw(1)?.into_iter().last() {
                if k == key.as_bytes() {
                    found = Some(e);
                }
            }
        }
        let Some(e) = found else {
            return Ok(());
        };
        value = Some(e.one(2)?.unwrap_or_else(|| Node::root(&[])));
    }
    let Some(v) = value else {
        return Ok(()); // the Struct itself: an object, not a value
    };
    match value_kind(&v)? {
        Some((VALUE_LIST, Raw::Len(b))) => {
            for item in Node::root(b).each(LIST_VALUES)? {
                out.extend(json_scalar(value_kind(&item)?));
            }
        }
        kind => out.extend(json_scalar(kind)),
    }
    Ok(())
}
