//! The alerting rule engine's evaluation: conditions, detectors and sliding
//! windows over a batch of events, read straight from their wire bytes.
//!
//! Rules are parsed, checked and explained to their authors in Python
//! (`aiaudit.alerting.rules`); what they compile to arrives here as plain
//! tuples. Fifty rules over an event cost a few microseconds here, where
//! Python's per-rule dispatch made evaluation the bottleneck of the log.

mod caseless;
mod condition;
mod fields;
mod packed;
mod texts;
mod value;
mod window;

use std::collections::{HashMap, HashSet};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyFloat, PyInt, PyList, PyString, PyTuple};

use crate::detect::{self, Finding};
use crate::Error;
use condition::{Cond, Context, Memo, Op};
use fields::{FieldPath, Node};
use texts::TextFields;
use value::Value;
use window::{Compare, Series, Window};

/// A windowed rule's window, its group-by paths and its value path (indexes into the paths).
struct Windowed {
    window: Window,
    group_by: Vec<usize>,
    value: Option<usize>,
}

struct Rule {
    id: String,
    enabled: bool,
    when: Cond,
    window: Option<Windowed>,
}

/// A sample recorded for the journal: (event index in its batch, rule id, group, time, value).
type Recorded = (usize, String, String, f64, f64);

/// Window samples per rule id and group, and which slots changed since last taken.
#[pyclass(module = "aiaudit_native")]
pub struct WindowState {
    /// Rule id -> group -> (samples, changed since last taken).
    slots: HashMap<String, HashMap<String, (Series, bool)>>,
    /// Rules whose added samples are recorded (those a replay cannot rebuild from
    /// an erased event), and what was recorded since last taken.
    journaled: HashSet<String>,
    journal: Vec<Recorded>,
    /// The receive time from which these windows have seen every event of their
    /// log (the engine: its first entry's); a baseline that began earlier was not
    /// all watched, so its emptiness means nothing. Unset: -inf, the samples are all
    /// there ever were (testing rules on a file of events).
    #[pyo3(get, set)]
    start: f64,
}

impl Default for WindowState {
    fn default() -> Self {
        WindowState {
            slots: HashMap::new(),
            journaled: HashSet::new(),
            journal: Vec::new(),
            start: f64::NEG_INFINITY,
        }
    }
}

impl WindowState {
    /// The slot of a rule and group (created empty), marked changed.
    fn slot(&mut self, rule_id: &str, group: &str) -> &mut Series {
        if !self.slots.contains_key(rule_id) {
            self.slots.insert(rule_id.to_string(), HashMap::new());
        }
        let groups = self.slots.get_mut(rule_id).expect("just ensured");
        if !groups.contains_key(group) {
            groups.insert(group.to_string(), (Series::default(), true));
        }
        let slot = groups.get_mut(group).expect("just ensured");
        slot.1 = true;
        &mut slot.0
    }
}

/// Samples in their stored form (`packed`: a version byte, then per sample the
/// differences from the previous one in a few bytes).
#[pyfunction]
pub fn pack_samples<'py>(py: Python<'py>, samples: Vec<(f64, f64)>) -> Bound<'py, PyBytes> {
    PyBytes::new(py, &packed::pack(samples))
}

/// Samples from [`pack_samples`]; ValueError for bytes it did not make.
#[pyfunction]
pub fn unpack_samples(data: &[u8]) -> PyResult<Vec<(f64, f64)>> {
    packed::unpack(data).map_err(PyValueError::new_err)
}

#[pymethods]
impl WindowState {
    #[new]
    fn new() -> Self {
        WindowState::default()
    }

    /// Sets a slot's samples (as loaded from the store); not marked changed.
    fn put(&mut self, rule_id: String, group: String, samples: Vec<(f64, f64)>) {
        let groups = self.slots.entry(rule_id).or_default();
        groups.insert(group, (Series::new(samples), false));
    }

    /// Records the samples added from now on to the windows of these rules
    /// (replacing the previous set; empty: none).
    fn journal(&mut self, rule_ids: Vec<String>) {
        self.journaled = rule_ids.into_iter().collect();
    }

    /// (event index in its batch, rule id, group, time, value) of every sample
    /// recorded since the last call, in the order they were added.
    fn take_journal(&mut self) -> Vec<Recorded> {
        std::mem::take(&mut self.journal)
    }

    /// A slot's samples, oldest first (None: no such slot).
    fn samples(&self, rule_id: &str, group: &str) -> Option<Vec<(f64, f64)>> {
        Some(self.slots.get(rule_id)?.get(group)?.0.samples())
    }

    /// (rule id, group, packed samples as [`pack_samples`] gives them) of the
    /// slots changed since the last call; a slot not changed since is not
    /// rewritten (its stored row still holds it).
    fn take_changed<'py>(&mut self, py: Python<'py>) -> Vec<(String, String, Bound<'py, PyBytes>)> {
        let mut out = Vec::new();
        for (rule_id, groups) in &mut self.slots {
            for (group, (series, changed)) in groups {
                if std::mem::take(changed) {
                    out.push((
                        rule_id.clone(),
                        group.clone(),
                        packed::pack(series.samples()),
                    ));
                }
            }
        }
        out.sort_unstable_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        out.into_iter()
            .map(|(r, g, p)| (r, g, PyBytes::new(py, &p)))
            .collect()
    }

    fn __len__(&self) -> usize {
        self.slots.values().map(HashMap::len).sum()
    }
}

/// A finding as Python sees it: (detector, score, field, start, end, excerpt).
pub type FindingTuple = (String, f64, String, usize, usize, String);

pub fn tuple(f: &Finding) -> FindingTuple {
    (
        f.detector.clone(),
        f.score,
        f.field.clone(),
        f.start,
        f.end,
        f.excerpt.clone(),
    )
}

/// A window's group: the values of its `group_by` fields, one part each.
///
/// The parts are joined with `|`, a `\` or `|` within a part escaped with `\`,
/// and a part that is `*` written `\*`; no parts, or one empty part, is `*`.
/// Joined as they were, ("a|b", "c") and ("a", "b|c") met in "a|b|c", and a
/// user named `*` met the events without a user: one count and one alert.
/// A group whose parts hold neither `\` nor `|` and are not `*` keeps the key
/// it had, so windows stored and alerts raised before still find their group.
fn group_key(parts: &[String]) -> String {
    let mut out = String::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            out.push('|');
        }
        if part == "*" {
            out.push_str("\\*");
            continue;
        }
        for c in part.chars() {
            if c == '\\' || c == '|' {
                out.push('\\');
            }
            out.push(c);
        }
    }
    if out.is_empty() {
        out.push('*');
    }
    out
}

/// A rule that fired: (event index, rule index, group, evidence, window aggregate, the
/// elements its `each` condition held on).
type Hit = (
    usize,
    usize,
    String,
    Vec<FindingTuple>,
    Option<f64>,
    Vec<usize>,
);

/// A rule value as Python sees it.
#[derive(IntoPyObject)]
pub enum PyValue {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

/// Every value of a field path in a serialised event, as rules compare them
/// (the values dedup keys and summaries are rendered with).
#[pyfunction]
pub fn field_values(schema: &crate::Schema, event: &[u8], path: &str) -> PyResult<Vec<PyValue>> {
    let resolved = FieldPath::resolve(&schema.inner, schema.root, path)?;
    let values = resolved.get(&schema.inner, &Node::root(event))?;
    Ok(values
        .into_iter()
        .map(|v| match v {
            Value::Str(s) => PyValue::Str(s),
            Value::Int(i) => PyValue::Int(i),
            Value::Float(f) => PyValue::Float(f),
            Value::Bool(b) => PyValue::Bool(b),
        })
        .collect())
}

/// Compiled rules over events of one schema.
#[pyclass(frozen, module = "aiaudit_native")]
pub struct RuleProgram {
    schema: Py<crate::Schema>,
    paths: Vec<FieldPath>,
    texts: TextFields,
    rules: Vec<Rule>,
}

/// Builds the program from Python's compiled rules, sharing paths between rules.
struct Builder<'s> {
    schema: &'s crate::schema::Schema,
    root: usize,
    paths: Vec<FieldPath>,
    /// (message type the path starts from, path) -> index into `paths`.
    index: HashMap<(usize, String), usize>,
}

fn value(x: &Bound<'_, PyAny>) -> PyResult<Value> {
    if x.is_instance_of::<PyBool>() {
        Ok(Value::Bool(x.extract()?))
    } else if x.is_instance_of::<PyInt>() {
        Ok(x.extract::<i64>().map_or_else(
            |_| Value::Float(x.extract().unwrap_or(f64::NAN)),
            Value::Int,
        ))
    } else if x.is_instance_of::<PyFloat>() {
        Ok(Value::Float(x.extract()?))
    } else if x.is_instance_of::<PyString>() {
        Ok(Value::Str(x.extract()?))
    } else {
        Err(PyValueError::new_err(format!("not a rule value: {x}")))
    }
}

/// A comparison's operand: an integer or a float (Python's rules refuse anything else).
fn number(x: &Bound<'_, PyAny>) -> PyResult<Value> {
    match value(x)? {
        n @ (Value::Int(_) | Value::Float(_)) => Ok(n),
        _ => Err(PyValueError::new_err(format!(
            "not a number to compare with: {x}"
        ))),
    }
}

impl Builder<'_> {
    fn path(&mut self, path: String) -> Result<usize, Error> {
        let key = (self.root, path);
        if let Some(&i) = self.index.get(&key) {
            return Ok(i);
        }
        self.paths
            .push(FieldPath::resolve(self.schema, self.root, &key.1)?);
        self.index.insert(key, self.paths.len() - 1);
        Ok(self.paths.len() - 1)
    }

    /// A repeated message field of the current message: its number and element type.
    fn element(&self, name: &str) -> PyResult<(u32, usize)> {
        let msg = &self.schema.messages[self.root];
        match msg.by_name(name).map(|k| &msg.fields[k]) {
            Some(f) if f.repeated && !f.map => f.message.map(|element| (f.number, element)),
            _ => None,
        }
        .ok_or_else(|| PyValueError::new_err(format!("{name:?} is not a repeated message field")))
    }

    /// `("field", path, op, operand)`, `("detector", name, min_score)`,
    /// `("all" | "any", [..])`, `("not", c)`, `("always",)` or `("each", field, c)`
    /// (`c`'s paths start from the repeated message field's element).
    fn condition(&mut self, node: &Bound<'_, PyAny>) -> PyResult<Cond> {
        let t = node.cast::<PyTuple>()?;
        let kind: String = t.get_item(0)?.extract()?;
        Ok(match kind.as_str() {
            "always" => Cond::Always,
            "not" => Cond::Not(Box::new(self.condition(&t.get_item(1)?)?)),
            "each" => {
                let (number, element) = self.element(&t.get_item(1)?.extract::<String>()?)?;
                let outer = std::mem::replace(&mut self.root, element);
                let item = self.condition(&t.get_item(2)?);
                self.root = outer;
                Cond::Each(number, Box::new(item?))
            }
            "all" | "any" => {
                let items = t.get_item(1)?;
                let items = items
                    .cast::<PyList>()?
                    .iter()
                    .map(|c| self.condition(&c))
                    .collect::<PyResult<Vec<_>>>()?;
                if kind == "all" {
                    Cond::All(items)
                } else {
                    Cond::Any(items)
                }
            }
            "detector" => {
                let name: String = t.get_item(1)?.extract()?;
                let (family, kind) = match name.split_once('.') {
                    Some((family, kind)) => (family, Some(kind.to_owned())),
                    None => (name.as_str(), None),
                };
                let family = detect::FAMILIES
                    .iter()
                    .position(|f| *f == family)
                    .ok_or_else(|| PyValueError::new_err(format!("unknown detector {name:?}")))?;
                Cond::Detector {
                    kind,
                    family,
                    min_score: t.get_item(2)?.extract()?,
                }
            }
            "field" => {
                let path = self.path(t.get_item(1)?.extract()?)?;
                let op: String = t.get_item(2)?.extract()?;
                let x = t.get_item(3)?;
                let list = |x: &Bound<'_, PyAny>| -> PyResult<Vec<Value>> {
                    x.try_iter()?.map(|v| value(&v?)).collect()
                };
                let op = match op.as_str() {
                    "equals" => Op::Equals(value(&x)?),
                    "not_equals" => Op::NotEquals(value(&x)?),
                    "in" => Op::In(list(&x)?),
                    "not_in" => Op::NotIn(list(&x)?),
                    "contains" => {
                        return Ok(Cond::Contains(
                            path,
                            caseless::fold(&x.extract::<String>()?),
                        ))
                    }
                    "regex" => {
                        Op::Regex(crate::re2::compile(&x.extract::<String>()?, false, false)?)
                    }
                    "exists" if self.paths[path].tracks_presence() => Op::Present(x.extract()?),
                    "exists" if self.paths[path].presence().is_some() => {
                        let present = self.paths[path].presence().expect("matched");
                        let path = self.path(present.to_owned())?;
                        return Ok(Cond::Field(path, Op::Present(x.extract()?)));
                    }
                    "exists" => Op::Exists(x.extract()?),
                    other => Op::Compare(Compare::parse(other)?, number(&x)?),
                };
                Cond::Field(path, op)
            }
            other => {
                return Err(PyValueError::new_err(format!(
                    "unknown condition {other:?}"
                )))
            }
        })
    }

    /// `(seconds, group_by paths, aggregate, value path or None, percentile, op,
    /// threshold, baseline seconds, factor)`.
    fn window(&mut self, w: &Bound<'_, PyAny>) -> PyResult<Windowed> {
        let (seconds, group_by, aggregate, value, percentile, op, threshold, baseline, factor): (
            f64,
            Vec<String>,
            String,
            Option<String>,
            f64,
            String,
            f64,
            f64,
            f64,
        ) = w.extract()?;
        Ok(Windowed {
            window: Window {
                seconds,
                aggregate: Window::parse_aggregate(&aggregate)?,
                percentile,
                op: Compare::parse(&op)?,
                threshold,
                baseline_seconds: baseline,
                factor,
            },
            group_by: group_by
                .into_iter()
                .map(|p| self.path(p))
                .collect::<Result<_, _>>()?,
            value: value.map(|p| self.path(p)).transpose()?,
        })
    }
}

/// A rule whose condition held on an event: its index, evidence, the elements its
/// `each` condition held on, and for a windowed rule the group and the sample to add.
struct Matched {
    rule: usize,
    evidence: Vec<FindingTuple>,
    elements: Vec<usize>,
    window: Option<(String, f64)>,
}

impl RuleProgram {
    /// The rules whose condition holds on one event (pure: no window state).
    fn matches(&self, cx: &Context<'_>, bytes: &[u8]) -> Result<Vec<Matched>, Error> {
        let mut memo = Memo::new(Node::root(bytes), self.paths.len());
        let mut out = Vec::new();
        for (r, rule) in self.rules.iter().enumerate() {
            if !rule.enabled {
                continue;
            }
            memo.elements.clear();
            let Some(evidence) = rule.when.eval(cx, &mut memo)? else {
                continue;
            };
            let evidence = evidence
                .iter()
                .map(|&(f, i)| tuple(memo.finding(f, i)))
                .collect();
            let elements = std::mem::take(&mut memo.elements);
            let Some(w) = &rule.window else {
                out.push(Matched {
                    rule: r,
                    evidence,
                    elements,
                    window: None,
                });
                continue;
            };
            let mut parts = Vec::with_capacity(w.group_by.len());
            for &g in &w.group_by {
                parts.push(
                    memo.values(cx, g)?
                        .first()
                        .map(Value::text)
                        .unwrap_or_default(),
                );
            }
            let group = group_key(&parts);
            let mut sample = 1.0;
            if let Some(v) = w.value {
                match memo.values(cx, v)?.iter().find_map(Value::number) {
                    Some(n) => sample = n,
                    None => continue,
                }
            }
            out.push(Matched {
                rule: r,
                evidence,
                elements,
                window: Some((group, sample)),
            });
        }
        Ok(out)
    }

    /// [`Self::matches`] of every event, split over the machine's cores for a large batch.
    fn match_all(&self, cx: &Context<'_>, events: &[Vec<u8>]) -> Result<Vec<Vec<Matched>>, Error> {
        crate::parallel::map(events, |i, bytes| {
            self.matches(cx, bytes)
                .map_err(|e| Error::new(format!("event {i} of the batch: {}", e.0)))
        })
        .into_iter()
        .collect()
    }
}

#[pymethods]
impl RuleProgram {
    /// `rules`: (id, enabled, condition, window or None) per rule, in evaluation order.
    #[new]
    fn new(schema: Py<crate::Schema>, rules: Vec<Bound<'_, PyAny>>) -> PyResult<Self> {
        let s = schema.get();
        let mut b = Builder {
            schema: &s.inner,
            root: s.root,
            paths: Vec::new(),
            index: HashMap::new(),
        };
        let mut compiled = Vec::with_capacity(rules.len());
        for rule in rules {
            let (id, enabled, when, window): (String, bool, Bound<'_, PyAny>, Bound<'_, PyAny>) =
                rule.extract()?;
            let when = b.condition(&when)?;
            let window = if window.is_none() {
                None
            } else {
                Some(b.window(&window)?)
            };
            compiled.push(Rule {
                id,
                enabled,
                when,
                window,
            });
        }
        let texts = TextFields::new(&s.inner, s.root)?;
        let paths = b.paths;
        Ok(RuleProgram {
            schema,
            paths,
            texts,
            rules: compiled,
        })
    }

    /// Every rule that fires on each event (serialised; `times`: receive times in
    /// seconds, on which windows slide), in event then rule order; window slots
    /// are updated in `windows` and marked changed.
    ///
    /// `since`: per rule, the receive time from which its window counts events
    /// (its row's last change: a rule changed counts nothing from before), the
    /// same for a live batch and a replay so that both count alike; an earlier
    /// event neither adds a sample nor fires the windowed rule. None: every event.
    #[pyo3(signature = (events, times, windows, since=None))]
    fn evaluate(
        &self,
        py: Python<'_>,
        events: Vec<Vec<u8>>,
        times: Vec<f64>,
        mut windows: PyRefMut<'_, WindowState>,
        since: Option<Vec<f64>>,
    ) -> PyResult<Vec<Hit>> {
        if events.len() != times.len() {
            return Err(PyValueError::new_err("one receive time per event"));
        }
        let since = since.unwrap_or_else(|| vec![f64::NEG_INFINITY; self.rules.len()]);
        if since.len() != self.rules.len() {
            return Err(PyValueError::new_err("one since time per rule"));
        }
        let s = self.schema.get();
        let windows = &mut *windows;
        let hits = py.detach(|| {
            let cx = Context {
                schema: &s.inner,
                paths: &self.paths,
                texts: &self.texts,
            };
            // Conditions and detectors depend on the event alone: in parallel. Windows
            // then take the matches in log order, the only order that replays alike.
            let matched = self.match_all(&cx, &events)?;
            let mut hits = Vec::new();
            for (i, (found, now)) in matched.into_iter().zip(times).enumerate() {
                for m in found {
                    let Some((group, sample)) = m.window else {
                        hits.push((i, m.rule, String::new(), m.evidence, None, m.elements));
                        continue;
                    };
                    if now < since[m.rule] {
                        continue;
                    }
                    let rule = &self.rules[m.rule];
                    let w = rule.window.as_ref().expect("a windowed rule");
                    if !windows.journaled.is_empty() && windows.journaled.contains(&rule.id) {
                        windows
                            .journal
                            .push((i, rule.id.clone(), group.clone(), now, sample));
                    }
                    let watched = since[m.rule].max(windows.start);
                    let series = windows.slot(&rule.id, &group);
                    series.add(now, sample, w.window.horizon());
                    let (fires, aggregate) = w.window.fires(series, now, watched);
                    if fires {
                        hits.push((i, m.rule, group, m.evidence, Some(aggregate), m.elements));
                    }
                }
            }
            Ok::<_, Error>(hits)
        })?;
        Ok(hits)
    }

    /// Adds recorded samples, (rule id, group, time, value), to the windows of
    /// this program's windowed rules, as evaluating their events did the first
    /// time (a replay of events whose content was erased since); samples of
    /// other rules are ignored. Nothing fires.
    fn add_samples(
        &self,
        samples: Vec<(String, String, f64, f64)>,
        mut windows: PyRefMut<'_, WindowState>,
    ) {
        let horizons: HashMap<&str, f64> = self
            .rules
            .iter()
            .filter_map(|r| Some((r.id.as_str(), r.window.as_ref()?.window.horizon())))
            .collect();
        for (rule_id, group, time, value) in samples {
            if let Some(&horizon) = horizons.get(rule_id.as_str()) {
                windows.slot(&rule_id, &group).add(time, value, horizon);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::group_key;

    fn key(parts: &[&str]) -> String {
        group_key(&parts.iter().map(|p| p.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn groups_of_different_parts_get_different_keys() {
        assert_ne!(key(&["a|b", "c"]), key(&["a", "b|c"]));
        assert_eq!(key(&["a|b", "c"]), "a\\|b|c");
        assert_eq!(key(&["a\\", "|c"]), "a\\\\|\\|c");
        assert_ne!(key(&["a\\", "|c"]), key(&["a\\|", "c"]));
        assert_eq!(key(&[""]), "*");
        assert_eq!(key(&[]), "*");
        assert_eq!(key(&["*"]), "\\*");
        assert_eq!(key(&["\\*"]), "\\\\*");
    }

    #[test]
    fn ordinary_groups_keep_their_keys() {
        assert_eq!(key(&["bob", "gpt-4o"]), "bob|gpt-4o");
        assert_eq!(key(&["", ""]), "|");
        assert_eq!(key(&["eve", ""]), "eve|");
        assert_eq!(key(&["x*"]), "x*");
    }
}
