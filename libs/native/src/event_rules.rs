//! Ingest's rules of an event as a whole, over its wire bytes: ids, type,
//! occurred time, the fields each type is required to hold (the model of an
//! interaction, the approver of a decision, ...), the text the store keeps in
//! columns of its own, trace and span ids, the actor's IP address, how many
//! entries each multi-valued field the search index nests holds. The field
//! checks (`validate.rs`) judge every set field by its kind; these judge the
//! event. Walking the parsed message from Python cost ~8 us an event.
//! `EventChecks` runs both, for Python.

use std::collections::HashMap;
use std::net::IpAddr;

use pyo3::prelude::*;
use regex::Regex;

use crate::canonical::{decode, int, len, seconds_nanos, text, Decoded};
use crate::schema::{Message, Schema};
use crate::wire::Raw;
use crate::{detach_if_large, validate, Error};

/// A field of the event's own (its index) or of one of its messages (the
/// message field's index, then the field's index in that message's type).
#[derive(Clone, Copy)]
enum At {
    Event(usize),
    Nested(usize, usize),
}

/// Ingest's validation of one event, over its wire bytes: the rules of the
/// event as a whole, then the checks of every set field by its kind
/// (`validate.rs`); every field the rules read located once.
#[pyclass(frozen, module = "aiaudit_native")]
pub struct EventChecks {
    schema: Py<crate::Schema>,
    event_id_pattern: Regex,
    tenant_id_pattern: Regex,
    /// Types only the service's own code appends, with the reason shown.
    server_written: HashMap<i32, String>,
    /// The fields each event type must hold, in the order they are told.
    required: HashMap<i32, Vec<Required>>,
    /// (path, field, column limit in characters) of each stored text column.
    stored: Vec<(String, At, usize)>,
    max_text: usize,
    /// What an occurred time past the horizon is told.
    ahead: String,
    /// (path, field, most entries) of each field whose entries are counted.
    counted: Vec<(String, At, usize)>,
    event_id: usize,
    tenant_id: usize,
    event_type: usize,
    occurred_time: usize,
    trace_id: At,
    span_id: At,
    ip_address: At,
}

/// A field events of one type must hold: without it the record says nothing
/// (an approval decision naming no approver).
struct Required {
    path: String,
    /// Field indexes from the event down, as `indexes` gives them.
    fields: Vec<usize>,
    problem: String,
}

/// The field indexes of `path` (`name`, `message.name`, `message.message.name`)
/// from message `root` down, each message on the way a singular one.
fn indexes(schema: &Schema, root: usize, path: &str) -> Result<Vec<usize>, Error> {
    let missing = || Error::new(format!("the event has no field {path}"));
    let (mut msg, mut out) = (&schema.messages[root], Vec::new());
    let mut names = path.split('.').peekable();
    while let Some(name) = names.next() {
        let i = msg.by_name(name).ok_or_else(missing)?;
        out.push(i);
        if names.peek().is_some() {
            let f = &msg.fields[i];
            match f.message {
                Some(mi) if !f.repeated => msg = &schema.messages[mi],
                _ => return Err(missing()),
            }
        }
    }
    Ok(out)
}

/// Where the field at `path` (`name` or `message.name`) of message `root` is.
fn locate(schema: &Schema, root: usize, path: &str) -> Result<At, Error> {
    match indexes(schema, root, path)?[..] {
        [i] => Ok(At::Event(i)),
        [i, j] => Ok(At::Nested(i, j)),
        _ => Err(Error::new(format!("{path}: nested too deep"))),
    }
}

fn event_field(schema: &Schema, root: usize, name: &str) -> Result<usize, Error> {
    match locate(schema, root, name)? {
        At::Event(i) => Ok(i),
        At::Nested(..) => unreachable!("a name without a dot"),
    }
}

/// A whole-string match of `pattern` (Python's `re.fullmatch`).
fn anchored(pattern: &str) -> Result<Regex, Error> {
    Regex::new(&format!(r"\A(?:{pattern})\z"))
        .map_err(|e| Error::new(format!("pattern {pattern:?}: {e}")))
}

/// The event's message fields, each decoded once as it is first asked for.
struct Event<'a, 's> {
    schema: &'s Schema,
    msg: &'s Message,
    top: Decoded<'a>,
    /// (message field's index, decoded): a few, searched in turn.
    nested: Vec<(usize, Decoded<'a>)>,
}

impl<'a, 's> Event<'a, 's> {
    /// The text at `at` (`""` when unset).
    fn text(&mut self, at: At) -> Result<&'a str, Error> {
        self.values(at)?.last().map_or(Ok(""), text)
    }

    /// The occurrences of the field at `at` (of a map: its entries as sent,
    /// a key sent twice counted twice).
    fn values(&mut self, at: At) -> Result<&[Raw<'a>], Error> {
        let (d, i) = match at {
            At::Event(i) => (&self.top, i),
            At::Nested(outer, i) => {
                let k = match self.nested.iter().position(|(o, _)| *o == outer) {
                    Some(k) => k,
                    None => {
                        let mi = self.msg.fields[outer].message.expect("located a message");
                        let parts: Vec<&'a [u8]> = self.top.values[outer].iter().map(len).collect();
                        let d = decode(&self.schema.messages[mi], &parts)?;
                        self.nested.push((outer, d));
                        self.nested.len() - 1
                    }
                };
                (&self.nested[k].1, i)
            }
        };
        Ok(&d.values[i])
    }

    /// Whether the field at `fields` (indexes from the event down) is set: a
    /// text or bytes not empty, a message sent, a repeated field or map with an
    /// entry, a number not zero.
    fn held(&mut self, fields: &[usize]) -> Result<bool, Error> {
        let (msg, schema) = (self.msg, self.schema);
        let (mut raws, mut owner, mut at) = match *fields {
            [i] => (self.values(At::Event(i))?.to_vec(), msg, i),
            [i, j, ..] => {
                let mi = msg.fields[i].message.expect("located a message");
                let raws = self.values(At::Nested(i, j))?.to_vec();
                (raws, &schema.messages[mi], j)
            }
            [] => unreachable!("a path names a field"),
        };
        for &k in fields.iter().skip(2) {
            let inner = &schema.messages[owner.fields[at].message.expect("located a message")];
            let parts: Vec<&'a [u8]> = raws.iter().map(len).collect();
            raws = decode(inner, &parts)?.values[k].to_vec();
            (owner, at) = (inner, k);
        }
        let f = &owner.fields[at];
        Ok(match raws.last() {
            None => false,
            Some(_) if f.repeated || f.message.is_some() => true,
            Some(Raw::Len(bytes)) => !bytes.is_empty(),
            Some(raw) => int(raw) != 0,
        })
    }
}

/// Lowercase hexadecimal digits, exactly `n` of them.
fn hex(s: &str, n: usize) -> bool {
    s.len() == n
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[pymethods]
impl EventChecks {
    /// `server_written`: the reason told, by event type only the service appends;
    /// `required`: (event type, path, problem told) of each field events of that
    /// type must hold;
    /// `stored`: (path, column limit in characters) of each text the store keeps
    /// in a column of its own; `max_text`: the metadata limit; `ahead`: what an
    /// occurred time past the horizon is told; `counted`: (path, most entries)
    /// of each repeated or map field whose entries are counted.
    #[new]
    #[allow(clippy::too_many_arguments)]
    fn new(
        schema: Py<crate::Schema>,
        event_id_pattern: &str,
        tenant_id_pattern: &str,
        server_written: HashMap<i32, String>,
        required: Vec<(i32, String, String)>,
        stored: Vec<(String, usize)>,
        max_text: usize,
        ahead: String,
        counted: Vec<(String, usize)>,
    ) -> PyResult<Self> {
        let (types, root) = (&schema.get().inner, schema.get().root);
        let located = |fields: Vec<(String, usize)>| {
            fields
                .into_iter()
                .map(|(path, limit)| Ok((path.clone(), locate(types, root, &path)?, limit)))
                .collect::<Result<Vec<_>, Error>>()
        };
        let stored = located(stored)?;
        let counted = located(counted)?;
        let mut by_type: HashMap<i32, Vec<Required>> = HashMap::new();
        for (event_type, path, problem) in required {
            let fields = indexes(types, root, &path)?;
            by_type.entry(event_type).or_default().push(Required {
                path,
                fields,
                problem,
            });
        }
        Ok(EventChecks {
            event_id_pattern: anchored(event_id_pattern)?,
            tenant_id_pattern: anchored(tenant_id_pattern)?,
            server_written,
            required: by_type,
            stored,
            max_text,
            ahead,
            counted,
            event_id: event_field(types, root, "event_id")?,
            tenant_id: event_field(types, root, "tenant_id")?,
            event_type: event_field(types, root, "event_type")?,
            occurred_time: event_field(types, root, "occurred_time")?,
            trace_id: locate(types, root, "correlation.trace_id")?,
            span_id: locate(types, root, "correlation.span_id")?,
            ip_address: locate(types, root, "actor.ip_address")?,
            schema,
        })
    }

    /// (the event's rules, the field checks): (path, problem) pairs, paths
    /// relative to the event; `horizon`: the latest occurred time accepted
    /// (seconds since the epoch); `is_ip`: Python's judge of an address
    /// spelled other than canonically.
    #[allow(clippy::type_complexity)]
    fn check(
        &self,
        py: Python<'_>,
        event: &[u8],
        horizon: f64,
        is_ip: &Bound<'_, PyAny>,
    ) -> PyResult<(Vec<(String, String)>, Vec<(String, String)>)> {
        let (types, root) = (&self.schema.get().inner, self.schema.get().root);
        let mut judge = |address: &str| -> Result<bool, Error> {
            is_ip
                .call1((address,))
                .and_then(|r| r.is_truthy())
                .map_err(|e| Error::new(format!("is_ip({address:?}): {e}")))
        };
        let rules = self.rules(types, root, event, horizon, &mut judge)?;
        let fields = detach_if_large(py, event.len(), || {
            let mut checker = validate::Checker::new(types, self.max_text);
            checker.message(root, &[event])?;
            Ok::<_, Error>(checker.violations)
        })?;
        Ok((rules, fields))
    }
}

impl EventChecks {
    /// (path, problem) pairs, paths relative to the event, in the order the
    /// rules are listed; `horizon`: the latest occurred time accepted, in
    /// seconds since the epoch; `is_ip`: asked about an address this parser
    /// does not take in its canonical spelling (Python's `ipaddress` decides).
    fn rules(
        &self,
        schema: &Schema,
        root: usize,
        wire: &[u8],
        horizon: f64,
        is_ip: &mut dyn FnMut(&str) -> Result<bool, Error>,
    ) -> Result<Vec<(String, String)>, Error> {
        let msg = &schema.messages[root];
        let mut event = Event {
            schema,
            msg,
            top: decode(msg, &[wire])?,
            nested: Vec::new(),
        };
        let mut out: Vec<(String, String)> = Vec::new();
        let mut flag = |at: &str, what: String| out.push((at.to_owned(), what));
        if !self
            .event_id_pattern
            .is_match(event.text(At::Event(self.event_id))?)
        {
            flag(
                "event_id",
                "is required: 1-128 characters of [A-Za-z0-9._:-]".into(),
            );
        }
        if !self
            .tenant_id_pattern
            .is_match(event.text(At::Event(self.tenant_id))?)
        {
            flag(
                "tenant_id",
                "is required: 1-64 characters of [a-z0-9_-]".into(),
            );
        }
        let event_type = event.top.values[self.event_type]
            .last()
            .map_or(0, |r| int(r) as i32);
        if event_type == 0 {
            flag("event_type", "is required".into());
        } else if let Some(why) = self.server_written.get(&event_type) {
            flag("event_type", why.clone());
        }
        let occurred = &event.top.values[self.occurred_time];
        if occurred.is_empty() {
            flag("occurred_time", "is required".into());
        } else {
            let mi = msg.fields[self.occurred_time].message.expect("a Timestamp");
            let ts = &schema.messages[mi];
            let parts: Vec<&[u8]> = occurred.iter().map(len).collect();
            let (s, n) = seconds_nanos(ts, &decode(ts, &parts)?);
            // Out of any timestamp's range: the field checks name it.
            if (-62_135_596_800..=253_402_300_799).contains(&s) && (0..=999_999_999).contains(&n) {
                let seconds = s as f64 + f64::from(n) / 1e9;
                if seconds < 0.0 {
                    flag("occurred_time", "is before 1970-01-01T00:00:00Z".into());
                } else if seconds > horizon {
                    flag("occurred_time", self.ahead.clone());
                }
            }
        }
        if let Some(required) = self.required.get(&event_type) {
            for r in required {
                if !event.held(&r.fields)? {
                    flag(&r.path, r.problem.clone());
                }
            }
        }
        for (path, at, limit) in &self.stored {
            let value = event.text(*at)?;
            // Longer than the metadata limit: the field checks say so.
            let chars = if value.len() > *limit {
                value.chars().count()
            } else {
                0
            };
            if *limit < chars && chars <= self.max_text {
                flag(path, format!("is {chars} characters; the limit is {limit}"));
            } else if value.contains('\0') {
                flag(path, "must not contain U+0000 (NUL)".into());
            }
        }
        let trace_id = event.text(self.trace_id)?;
        if !trace_id.is_empty() && !hex(trace_id, 32) {
            flag(
                "correlation.trace_id",
                "must be 32 lowercase hex digits".into(),
            );
        }
        let span_id = event.text(self.span_id)?;
        if !span_id.is_empty() && !hex(span_id, 16) {
            flag(
                "correlation.span_id",
                "must be 16 lowercase hex digits".into(),
            );
        }
        let ip = event.text(self.ip_address)?;
        if !ip.is_empty() {
            let canonical = ip.parse::<IpAddr>().is_ok_and(|a| a.to_string() == ip);
            if !canonical && !is_ip(ip)? {
                flag("actor.ip_address", "is not an IPv4 or IPv6 address".into());
            }
        }
        for (path, at, limit) in &self.counted {
            let held = event.values(*at)?.len();
            if held > *limit {
                flag(path, format!("has {held} entries; the limit is {limit}"));
            }
        }
        Ok(out)
    }
}
