//! Native core of aiaudit, for Python: the canonical form of events, events
//! back from it, ingest's field checks, Merkle subtree hashing, and the
//! alerting rule engine with its detectors.
//!
//! Ingest checks and commits every event, every consumer (search pages,
//! alerting, exports) restores stored events, `verify` hashes every node of
//! the tree, and alerting evaluates every rule on every event: in Python these
//! were the largest costs per event on those paths.

mod canonical;
mod detect;
mod event_rules;
mod jcs;
mod media_text;
mod parallel;
mod re2;
mod restore;
mod rules;
mod schema;
mod unknown;
mod validate;
mod wire;

use pyo3::exceptions::PyValueError;
use std::collections::HashMap;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use sha2::{Digest, Sha256};

/// Why an event has no canonical form (raised as ValueError).
#[derive(Debug)]
pub struct Error(String);

impl Error {
    pub fn new(message: impl Into<String>) -> Self {
        Error(message.into())
    }
}

impl From<Error> for PyErr {
    fn from(e: Error) -> PyErr {
        PyValueError::new_err(e.0)
    }
}

/// Inputs at least this large (bytes) are worked on with the interpreter lock
/// released. Below it the work (a few microseconds for a typical event) costs
/// less than taking the lock back: a thread that let go of it waits for the
/// thread that took it over to block or reach its switch interval (5 ms), so
/// a request handler releasing it per event spent most of its time waiting
/// whenever another thread was busy in Python.
const DETACH_BYTES: usize = 256 * 1024;

/// `work` with the interpreter lock released when `size` is worth it (see [`DETACH_BYTES`]).
fn detach_if_large<T: Send>(py: Python<'_>, size: usize, work: impl FnOnce() -> T + Send) -> T {
    if size >= DETACH_BYTES {
        py.detach(work)
    } else {
        work()
    }
}

/// A stored event: its canonical form and its content (None: erased).
type Stored = (Vec<u8>, Option<HashMap<String, String>>);

/// The message types of an event, built once from their Python descriptors.
#[pyclass(frozen, module = "aiaudit_native")]
struct Schema {
    inner: schema::Schema,
    root: usize,
}

#[pymethods]
impl Schema {
    /// `messages`: (full name, fields) per type; `root`: the index of the event type.
    #[new]
    fn new(messages: Vec<(String, Vec<schema::FieldSpec>)>, root: usize) -> PyResult<Self> {
        let inner = schema::Schema::new(messages)?;
        if root >= inner.messages.len() {
            return Err(PyValueError::new_err("root is not a message type index"));
        }
        Ok(Schema { inner, root })
    }

    /// (canonical bytes, its RFC 6962 leaf hash, content by JSON path, the same
    /// content as compact JSON) of a serialised event under `salt`. Ingest
    /// stores the hash and the JSON of every event: here they cost a fraction
    /// of what hashing and serialising them again in Python did.
    #[allow(clippy::type_complexity)]
    fn commit<'py>(
        &self,
        py: Python<'py>,
        event: &[u8],
        salt: &[u8],
    ) -> PyResult<(
        Bound<'py, PyBytes>,
        Bound<'py, PyBytes>,
        Bound<'py, PyDict>,
        Bound<'py, PyBytes>,
    )> {
        let (text, leaf, content, json) = detach_if_large(py, event.len(), || {
            let mut encoder = canonical::Encoder::new(&self.inner, salt);
            encoder.message(self.root, &[event])?;
            let leaf = Sha256::new()
                .chain_update([0u8])
                .chain_update(&encoder.out)
                .finalize();
            let json = canonical::content_json(&encoder.content);
            Ok::<_, Error>((encoder.out, leaf, encoder.content, json))
        })?;
        let values = PyDict::new(py);
        for (path, value) in content {
            values.set_item(path, value)?;
        }
        Ok((
            PyBytes::new(py, &text),
            PyBytes::new(py, &leaf),
            values,
            PyBytes::new(py, &json),
        ))
    }

    /// The proto3 JSON mapping of a serialised event, content included, as RFC 8785
    /// text: what exports write for each event. `json_format.MessageToDict` and
    /// `json.dumps` took three quarters of a JSON Lines export's time.
    fn json<'py>(&self, py: Python<'py>, event: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
        let text = detach_if_large(py, event.len(), || {
            let mut encoder = canonical::Encoder::plain(&self.inner);
            encoder.message(self.root, &[event])?;
            Ok::<_, Error>(encoder.out)
        })?;
        Ok(PyBytes::new(py, &text))
    }

    /// The content of a serialised event, as ingest's masking scans it: (JSON path,
    /// text) of every set `sensitive_content` string field, and the paths of the set
    /// content bytes (inline media). Walking the parsed message from Python cost ~12 us
    /// an event; this, well under one.
    #[allow(clippy::type_complexity)]
    fn content_texts(
        &self,
        py: Python<'_>,
        event: &[u8],
    ) -> PyResult<(Vec<(String, String)>, Vec<String>)> {
        let found = detach_if_large(py, event.len(), || {
            let mut out = canonical::ContentFound::default();
            canonical::content_texts(
                &self.inner,
                self.root,
                &[event],
                &mut String::new(),
                &mut out,
            )?;
            Ok::<_, Error>(out)
        })?;
        Ok((found.texts, found.bytes))
    }

    /// False when a serialised event surely holds no field unknown to its types
    /// (see `unknown.rs`); true means "maybe": the parsed message decides.
    fn maybe_unknown_fields(&self, event: &[u8]) -> bool {
        unknown::maybe(&self.inner, self.root, event)
    }

    /// The serialised event of a canonical form with its content put back (None: erased).
    ///
    /// ValueError for anything the canonical writer would not have written: the
    /// caller's exact parser then decides.
    fn restore<'py>(
        &self,
        py: Python<'py>,
        canonical: &[u8],
        content: Option<HashMap<String, String>>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let size = canonical.len()
            + content
                .as_ref()
                .map_or(0, |c| c.values().map(String::len).sum());
        let out = detach_if_large(py, size, || self.restored(canonical, content.as_ref()))?;
        Ok(PyBytes::new(py, &out))
    }

    /// [`Self::restore`] of many stored events at once, split over the machine's
    /// cores; None for one the fast path does not take (the caller's exact
    /// parser decides). One call per batch: a consumer thread releasing and
    /// taking the interpreter lock for every event waited on other threads.
    fn restore_many<'py>(
        &self,
        py: Python<'py>,
        items: Vec<Stored>,
    ) -> Vec<Option<Bound<'py, PyBytes>>> {
        let restored = py.detach(|| {
            parallel::map(&items, |_, (canonical, content)| {
                self.restored(canonical, content.as_ref()).ok()
            })
        });
        restored
            .into_iter()
            .map(|r| r.map(|bytes| PyBytes::new(py, &bytes)))
            .collect()
    }
}

impl Schema {
    /// The wire bytes of a canonical form with its content put back.
    fn restored(
        &self,
        canonical: &[u8],
        content: Option<&HashMap<String, String>>,
    ) -> Result<Vec<u8>, Error> {
        let node: serde_json::Value =
            serde_json::from_slice(canonical).map_err(|e| Error::new(format!("not JSON: {e}")))?;
        let obj = node
            .as_object()
            .ok_or_else(|| Error::new("not a JSON object"))?;
        let mut out = Vec::with_capacity(canonical.len());
        restore::Restorer::new(&self.inner, content).message(self.root, obj, &mut out)?;
        Ok(out)
    }
}

/// The levels of the RFC 6962 subtree over `leaves` (32-byte hashes, concatenated):
/// level 0 is the leaves, each next level the node hashes `SHA-256(0x01 || left || right)`
/// of adjacent pairs (an odd last node waits), up to one hash; each level concatenated.
#[pyfunction]
fn merkle_levels<'py>(py: Python<'py>, leaves: &[u8]) -> PyResult<Vec<Bound<'py, PyBytes>>> {
    if !leaves.len().is_multiple_of(32) {
        return Err(PyValueError::new_err("leaves must be whole 32-byte hashes"));
    }
    let levels = py.detach(|| {
        let mut levels = vec![leaves.to_vec()];
        while levels.last().is_some_and(|level| level.len() > 32) {
            let below = levels.last().expect("not empty");
            let mut level = Vec::with_capacity(below.len() / 2);
            for pair in below.chunks_exact(64) {
                let mut hash = Sha256::new();
                hash.update([1u8]);
                hash.update(pair);
                level.extend_from_slice(&hash.finalize());
            }
            levels.push(level);
        }
        levels
    });
    Ok(levels.iter().map(|level| PyBytes::new(py, level)).collect())
}

/// One detector family's findings on an event's texts: (detector, score, field,
/// start, end, excerpt) with character offsets. `inputs` and `outputs` are
/// (field path, text) pairs; `system` the system prompt's texts.
#[pyfunction]
#[pyo3(name = "detect")]
fn detect_family(
    py: Python<'_>,
    family: &str,
    inputs: Vec<(String, String)>,
    outputs: Vec<(String, String)>,
    system: Vec<String>,
) -> PyResult<Vec<rules::FindingTuple>> {
    let texts = |pairs: Vec<(String, String)>| -> Vec<detect::Text> {
        pairs
            .into_iter()
            .map(|(field, text)| detect::Text { field, text })
            .collect()
    };
    let (inputs, outputs) = (texts(inputs), texts(outputs));
    let size = inputs
        .iter()
        .chain(&outputs)
        .map(|t| t.text.len())
        .sum::<usize>()
        + system.iter().map(String::len).sum::<usize>();
    let found = detach_if_large(py, size, || {
        detect::family(
            family,
            &detect::Texts {
                inputs: &inputs,
                outputs: &outputs,
                system: &system,
            },
        )
    });
    let found = found.ok_or_else(|| PyValueError::new_err(format!("no detector {family:?}")))?;
    Ok(found.iter().map(rules::tuple).collect())
}

/// Sets the injection detector's logistic model (bias, weight per signal family,
/// weight per word feature); until then it has none and scores nothing.
#[pyfunction]
fn load_injection_model(bias: f64, signals: HashMap<String, f64>, words: HashMap<Vec<u8>, f64>) {
    detect::injection::load_model(bias, signals, words);
}

/// Sets the harmful-content detector's logistic model (bias, weight per
/// category, weight per word feature); until then it has none and finds nothing.
#[pyfunction]
fn load_harmful_model(bias: f64, signals: HashMap<String, f64>, words: HashMap<Vec<u8>, f64>) {
    detect::harmful::load_model(bias, signals, words);
}

/// Sets the harmful-content detector's answer model (bias, weight per signal,
/// weight per word feature), which scores outputs only; until then outputs are
/// scored as requests are.
#[pyfunction]
fn load_harmful_answer_model(
    bias: f64,
    signals: HashMap<String, f64>,
    words: HashMap<Vec<u8>, f64>,
) {
    detect::harmful::load_answer_model(bias, signals, words);
}

/// The signals the harmful answer model weighs in a text (categories, compliance
/// signals, a refusal): (name, start, end), character offsets.
#[pyfunction]
fn harmful_answer_signals(text: &str) -> Vec<detect::linear::Span> {
    detect::harmful::answer_signal_spans(text)
}

/// The harmful answer model's probability of a text (rounded to 4 places) and the
/// spans of its signals; ValueError before `load_harmful_answer_model`.
#[pyfunction]
fn harmful_answer_score(text: &str) -> PyResult<(f64, Vec<detect::linear::Span>)> {
    detect::harmful::answer_score(text)
        .ok_or_else(|| PyValueError::new_err("no harmful answer model loaded"))
}

/// The word features the detectors' logistic models weigh: distinct words and
/// adjacent word pairs (`b"a b"`) of a text's head (training uses the same features).
#[pyfunction]
fn linear_words(text: &str) -> Vec<Vec<u8>> {
    detect::linear::words(text)
}

/// The injection signal families that matched a text: (name, start, end), character offsets.
#[pyfunction]
fn injection_signals(text: &str) -> Vec<detect::linear::Span> {
    detect::injection::signal_spans(text)
}

/// The injection score of a text (rounded to 4 places) and its evidence spans;
/// ValueError before `load_injection_model`.
#[pyfunction]
fn injection_score(text: &str) -> PyResult<(f64, Vec<detect::linear::Span>)> {
    detect::injection::score(text).ok_or_else(|| PyValueError::new_err("no injection model loaded"))
}

/// The harmful-content categories that matched a text: (name, start, end), character offsets.
#[pyfunction]
fn harmful_signals(text: &str) -> Vec<detect::linear::Span> {
    detect::harmful::signal_spans(text)
}

/// The harmful-content score of a text (rounded to 4 places) and its evidence
/// spans; ValueError before `load_harmful_model`.
#[pyfunction]
fn harmful_score(text: &str) -> PyResult<(f64, Vec<detect::linear::Span>)> {
    detect::harmful::score(text).ok_or_else(|| PyValueError::new_err("no harmful model loaded"))
}

/// ValueError (with the reason) unless `pattern` is an RE2 pattern a new rule may hold
/// (`stored`: a rule stored before the size check, which keeps running).
#[pyfunction]
#[pyo3(signature = (pattern, stored = false))]
fn check_regex(pattern: &str, stored: bool) -> PyResult<()> {
    let limit = if stored {
        re2::COMPILED_BYTES
    } else {
        re2::NEW_RULE_BYTES
    };
    re2::compile_within(pattern, false, false, limit)?;
    Ok(())
}

/// A textual inline media's bytes as text (codec to encode it back, byte order mark
/// length, text), or None for a binary type: what redaction masks and detectors scan.
#[pyfunction]
#[pyo3(name = "media_text")]
fn read_media_text(mime_type: &str, data: &[u8]) -> Option<(&'static str, usize, String)> {
    media_text::read(mime_type, data).map(|m| (m.codec, m.bom, m.text))
}

#[pymodule]
fn aiaudit_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Schema>()?;
    m.add_class::<event_rules::EventChecks>()?;
    m.add_class::<rules::RuleProgram>()?;
    m.add_class::<rules::WindowState>()?;
    m.add_function(wrap_pyfunction!(rules::pack_samples, m)?)?;
    m.add_function(wrap_pyfunction!(rules::unpack_samples, m)?)?;
    m.add_function(wrap_pyfunction!(rules::field_values, m)?)?;
    m.add_function(wrap_pyfunction!(merkle_levels, m)?)?;
    m.add_function(wrap_pyfunction!(detect_family, m)?)?;
    m.add_function(wrap_pyfunction!(check_regex, m)?)?;
    m.add_function(wrap_pyfunction!(read_media_text, m)?)?;
    m.add_function(wrap_pyfunction!(injection_signals, m)?)?;
    m.add_function(wrap_pyfunction!(injection_score, m)?)?;
    m.add_function(wrap_pyfunction!(load_injection_model, m)?)?;
    m.add_function(wrap_pyfunction!(harmful_signals, m)?)?;
    m.add_function(wrap_pyfunction!(harmful_score, m)?)?;
    m.add_function(wrap_pyfunction!(load_harmful_model, m)?)?;
    m.add_function(wrap_pyfunction!(load_harmful_answer_model, m)?)?;
    m.add_function(wrap_pyfunction!(harmful_answer_signals, m)?)?;
    m.add_function(wrap_pyfunction!(harmful_answer_score, m)?)?;
    m.add_function(wrap_pyfunction!(linear_words, m)?)
}
