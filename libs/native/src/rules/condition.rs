//! Compiled rule conditions and their evaluation on one event, with what the
//! rules ask of it (field values, detector findings) computed once per event.

use regex::Regex;

use crate::detect::{self, Finding, Texts};
use crate::rules::caseless;
use crate::rules::fields::{FieldPath, Node};
use crate::rules::texts::{EventTexts, TextFields};
use crate::rules::value::Value;
use crate::rules::window::Compare;
use crate::schema::Schema;
use crate::Error;

/// A comparison of a field's values with an operand, decided when the rule compiles.
pub enum Op {
    Equals(Value),
    NotEquals(Value),
    In(Vec<Value>),
    NotIn(Vec<Value>),
    Regex(Regex),
    /// The operand is a number (an integer or a float), compared exactly.
    Compare(Compare, Value),
    Exists(bool),
    /// `exists` on a path whose presence the event carries
    /// ([`FieldPath::tracks_presence`](crate::rules::fields::FieldPath::tracks_presence)):
    /// whether it has a value at all, a default one included.
    Present(bool),
}

impl Op {
    /// Whether the values satisfy it: any value (`not_equals` / `not_in`: every value).
    fn holds(&self, values: &[Value]) -> bool {
        match self {
            Op::Equals(x) => values.iter().any(|v| v.equals(x)),
            Op::NotEquals(x) => values.iter().all(|v| !v.equals(x)),
            Op::In(xs) => values.iter().any(|v| xs.iter().any(|x| v.equals(x))),
            Op::NotIn(xs) => values.iter().all(|v| !xs.iter().any(|x| v.equals(x))),
            Op::Regex(r) => values
                .iter()
                .any(|v| matches!(v, Value::Str(s) if r.is_match(s))),
            Op::Compare(c, x) => values
                .iter()
                .any(|v| v.order(x).is_some_and(|o| c.admits(o))),
            Op::Exists(want) => values.iter().any(Value::is_set) == *want,
            Op::Present(want) => values.is_empty() != *want,
        }
    }
}

pub enum Cond {
    /// A field (index into the program's paths) and its comparison.
    Field(usize, Op),
    /// A text value of a field (index into the paths), case-folded, holds the operand
    /// (folded when the rule compiled: [`caseless::fold`]).
    Contains(usize, String),
    /// A detector (family or `family.kind`) found something scoring at least `min_score`.
    /// A finding is matched by its kind, the part after its first dot: the secrets family
    /// names its findings `secret.<kind>`, and `detector: secrets` matched none of them.
    Detector {
        kind: Option<String>,
        family: usize,
        min_score: f64,
    },
    All(Vec<Cond>),
    Any(Vec<Cond>),
    Not(Box<Cond>),
    Always,
    /// The condition holds on one element of a repeated message field (its number): its
    /// paths are the element's, so its tests apply to the same element, where a path
    /// through the field reads every element's value apart. The elements it holds on are
    /// left in [`Memo::elements`]; Python places it only where the rule holds with it
    /// (the `when` itself, or an item of its `all`), and tests no detector inside it.
    Each(u32, Box<Cond>),
}

/// Evidence: (family index, finding index) pairs into the event's findings.
pub type Evidence = Vec<(usize, usize)>;

/// One event's field values and detector findings, each computed at its first use.
pub struct Memo<'a> {
    pub node: Node<'a>,
    values: Vec<Option<Vec<Value>>>,
    /// A path's text values case-folded, once however many `contains` read them.
    folded: Vec<Option<Vec<String>>>,
    texts: Option<EventTexts>,
    found: Vec<Option<Vec<Finding>>>,
    /// The elements the last [`Cond::Each`] evaluated held on, by position.
    pub elements: Vec<usize>,
}

/// What a memo reads with: the schema, the program's paths and text fields.
pub struct Context<'p> {
    pub schema: &'p Schema,
    pub paths: &'p [FieldPath],
    pub texts: &'p TextFields,
}

impl<'a> Memo<'a> {
    pub fn new(node: Node<'a>, paths: usize) -> Self {
        Memo {
            node,
            values: (0..paths).map(|_| None).collect(),
            folded: (0..paths).map(|_| None).collect(),
            texts: None,
            found: (0..detect::FAMILIES.len()).map(|_| None).collect(),
            elements: Vec::new(),
        }
    }

    /// Every value of a path (by index).
    pub fn values(&mut self, cx: &Context<'_>, path: usize) -> Result<&[Value], Error> {
        if self.values[path].is_none() {
            self.values[path] = Some(cx.paths[path].get(cx.schema, &self.node)?);
        }
        Ok(self.values[path].as_deref().expect("just set"))
    }

    /// The text values of a path (by index), case-folded.
    pub fn folded(&mut self, cx: &Context<'_>, path: usize) -> Result<&[String], Error> {
        if self.folded[path].is_none() {
            let texts = self
                .values(cx, path)?
                .iter()
                .filter_map(|v| match v {
                    Value::Str(s) => Some(caseless::fold(s)),
                    _ => None,
                })
                .collect();
            self.folded[path] = Some(texts);
        }
        Ok(self.folded[path].as_deref().expect("just set"))
    }

    /// Every finding of a detector family (by index into `detect::FAMILIES`).
    pub fn findings(&mut self, cx: &Context<'_>, family: usize) -> Result<&[Finding], Error> {
        if self.found[family].is_none() {
            if self.texts.is_none() {
                self.texts = Some(EventTexts::read(cx.texts, &self.node)?);
            }
            let t = self.texts.as_ref().expect("just read");
            let texts = Texts {
                inputs: &t.inputs,
                outputs: &t.outputs,
                system: &t.system,
            };
            self.found[family] = detect::family(detect::FAMILIES[family], &texts);
        }
        Ok(self.found[family].as_deref().unwrap_or(&[]))
    }

    pub fn finding(&self, family: usize, index: usize) -> &Finding {
        &self.found[family].as_ref().expect("found before")[index]
    }
}

impl Cond {
    /// None when it does not hold; else the detector evidence that made it hold.
    pub fn eval(&self, cx: &Context<'_>, memo: &mut Memo<'_>) -> Result<Option<Evidence>, Error> {
        Ok(match self {
            Cond::Always => Some(Vec::new()),
            Cond::Field(path, op) => op.holds(memo.values(cx, *path)?).then(Vec::new),
            Cond::Contains(path, x) => memo
                .folded(cx, *path)?
                .iter()
                .any(|s| s.contains(x.as_str()))
                .then(Vec::new),
            Cond::Detector {
                kind,
                family,
                min_score,
            } => {
                let found = memo.findings(cx, *family)?;
                let evidence: Evidence = found
                    .iter()
                    .enumerate()
                    .filter(|(_, x)| {
                        x.score >= *min_score
                            && match kind {
                                None => true, // the findings are the family's already
                                Some(k) => {
                                    x.detector.split_once('.').is_some_and(|(_, xk)| xk == k)
                                }
                            }
                    })
                    .map(|(i, _)| (*family, i))
                    .collect();
                (!evidence.is_empty()).then_some(evidence)
            }
            Cond::All(items) => {
                let mut evidence = Vec::new();
                for c in items {
                    match c.eval(cx, memo)? {
                        Some(e) => evidence.extend(e),
                        None => return Ok(None),
                    }
                }
                Some(evidence)
            }
            Cond::Any(items) => {
                // Every item, to collect the evidence of all that hold.
                let mut ok = false;
                let mut evidence = Vec::new();
                for c in items {
                    if let Some(e) = c.eval(cx, memo)? {
                        ok = true;
                        evidence.extend(e);
                    }
                }
                ok.then_some(evidence)
            }
            Cond::Not(item) => item.eval(cx, memo)?.is_none().then(Vec::new),
            Cond::Each(number, item) => {
                let mut held = Vec::new();
                for (k, element) in memo.node.each(*number)?.into_iter().enumerate() {
                    let mut own = Memo::new(element, cx.paths.len());
                    if item.eval(cx, &mut own)?.is_some() {
                        held.push(k);
                    }
                }
                let holds = !held.is_empty();
                memo.elements = held;
                holds.then(Vec::new)
            }
        })
    }
}
