//! The message types the encoder walks, as the Python descriptors describe them.

use std::collections::HashMap;

use crate::jcs;
use crate::wire::{TYPE_MESSAGE, TYPE_STRING};
use crate::Error;

/// One field, as the Python side passes it, in declaration order:
/// (number, (name, JSON name), `FieldDescriptor.TYPE_*`, repeated, explicit
/// presence, sensitive content, message type index or -1, enum (type name,
/// value names by number), oneof index or -1, map field).
pub type FieldSpec = (
    u32,
    (String, String),
    u8,
    bool,
    bool,
    bool,
    i64,
    Option<(String, HashMap<i32, String>)>,
    i64,
    bool,
);

/// Well-known types with a JSON form of their own.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum WellKnown {
    None,
    Timestamp,
    Duration,
    Struct,
    Value,
    ListValue,
}

pub struct Field {
    pub number: u32,
    pub name: String,
    pub json_name: String,
    /// The member's key as written, with its colon.
    pub key: Vec<u8>,
    pub ty: u8,
    pub repeated: bool,
    pub presence: bool,
    pub sensitive: bool,
    pub message: Option<usize>,
    /// Enum value names, quoted, by number.
    pub enum_names: HashMap<i32, Vec<u8>>,
    /// Enum value numbers by name.
    pub enum_numbers: HashMap<String, i32>,
    /// The enum type's own name (in validation errors).
    pub enum_type: String,
    pub oneof: Option<usize>,
    pub map: bool,
}

const NONE: u32 = u32::MAX;

pub struct Message {
    pub name: String,
    pub well_known: WellKnown,
    /// In RFC 8785 member order.
    pub fields: Vec<Field>,
    /// Indexes into `fields` in declaration order (validation reports in this order).
    pub declared: Vec<usize>,
    /// Index in `fields` by field number (`NONE`: not a field of this type);
    /// a table, not a map: looked up for every field of every event walked.
    by_number: Vec<u32>,
    by_json_name: HashMap<String, usize>,
    pub oneofs: usize,
}

impl Message {
    /// The index in :attr:`fields` of a field number, if the type has it.
    pub fn index(&self, number: u32) -> Option<usize> {
        match self.by_number.get(number as usize) {
            Some(&i) if i != NONE => Some(i as usize),
            _ => None,
        }
    }

    /// The index in :attr:`fields` of a field by its proto name (a linear search: few fields).
    pub fn by_name(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.name == name)
    }

    /// The index in :attr:`fields` of a JSON member name, if the type has it.
    pub fn by_json_name(&self, name: &str) -> Option<usize> {
        self.by_json_name.get(name).copied()
    }
}

pub struct Schema {
    pub messages: Vec<Message>,
}

impl Schema {
    /// Checks the types and puts each one's fields in member order.
    pub fn new(specs: Vec<(String, Vec<FieldSpec>)>) -> Result<Schema, Error> {
        let count = specs.len();
        let mut messages = Vec::with_capacity(count);
        for (name, fields) in specs {
            let well_known = match name.as_str() {
                "google.protobuf.Timestamp" => WellKnown::Timestamp,
                "google.protobuf.Duration" => WellKnown::Duration,
                "google.protobuf.Struct" => WellKnown::Struct,
                "google.protobuf.Value" => WellKnown::Value,
                "google.protobuf.ListValue" => WellKnown::ListValue,
                n if n.starts_with("google.protobuf.") && !n.ends_with("Entry") => {
                    return Err(Error::new(format!("{n}: well-known type without a writer")))
                }
                _ => WellKnown::None,
            };
            let mut out: Vec<Field> = Vec::with_capacity(fields.len());
            for (
                number,
                (field_name, json_name),
                ty,
                repeated,
                presence,
                sensitive,
                message,
                enums,
                oneof,
                map,
            ) in fields
            {
                let message = usize::try_from(message).ok();
                if message.is_some_and(|m| m >= count) || (ty == TYPE_MESSAGE) != message.is_some()
                {
                    return Err(Error::new(format!(
                        "{name}.{json_name}: bad message type index"
                    )));
                }
                let mut key = Vec::new();
                jcs::string(&mut key, &json_name);
                key.push(b':');
                let (enum_type, enums) = enums.unwrap_or_default();
                let enum_numbers = enums.iter().map(|(&n, v)| (v.clone(), n)).collect();
                let enum_names = enums
                    .into_iter()
                    .map(|(n, v)| {
                        let mut quoted = Vec::new();
                        jcs::string(&mut quoted, &v);
                        (n, quoted)
                    })
                    .collect();
                out.push(Field {
                    number,
                    name: field_name,
                    json_name,
                    key,
                    ty,
                    repeated,
                    presence,
                    sensitive,
                    message,
                    enum_names,
                    enum_numbers,
                    enum_type,
                    oneof: usize::try_from(oneof).ok(),
                    map,
                });
            }
            let mut order: Vec<usize> = (0..out.len()).collect();
            order.sort_by(|&a, &b| jcs::key_order(&out[a].json_name, &out[b].json_name));
            let mut declared = vec![0; out.len()];
            for (sorted, &original) in order.iter().enumerate() {
                declared[original] = sorted;
            }
            out.sort_by(|a, b| jcs::key_order(&a.json_name, &b.json_name));
            let top = out.iter().map(|f| f.number as usize).max().unwrap_or(0);
            if top > 65_535 {
                return Err(Error::new(format!(
                    "{name}: field number {top} above 65535"
                )));
            }
            let mut by_number = vec![NONE; top + 1];
            for (i, f) in out.iter().enumerate() {
                by_number[f.number as usize] = i as u32;
            }
            let by_json_name = out
                .iter()
                .enumerate()
                .map(|(i, f)| (f.json_name.clone(), i))
                .collect();
            let oneofs = out
                .iter()
                .filter_map(|f| f.oneof)
                .max()
                .map_or(0, |m| m + 1);
            messages.push(Message {
                name,
                well_known,
                fields: out,
                declared,
                by_number,
                by_json_name,
                oneofs,
            });
        }
        let schema = Schema { messages };
        schema.check_maps()?;
        Ok(schema)
    }

    /// Map keys are written as JSON member names: only string keys are supported.
    fn check_maps(&self) -> Result<(), Error> {
        for m in &self.messages {
            for f in m.fields.iter().filter(|f| f.map) {
                let entry = &self.messages[f.message.expect("a map field has an entry type")];
                let key = entry.index(1).map(|i| &entry.fields[i]);
                if key.is_none_or(|k| k.ty != TYPE_STRING) || entry.index(2).is_none() {
                    return Err(Error::new(format!(
                        "{}.{}: only map<string, _>",
                        m.name, f.json_name
                    )));
                }
            }
        }
        Ok(())
    }
}
