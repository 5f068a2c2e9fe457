//! Native core of aiaudit, for Python: the canonical form of events, events
//! back from it, ingest's field checks, and Merkle subtree hashing.
//!
//! Ingest checks and commits every event, every consumer (search pages,
//! alerting, exports) restores stored events, and `verify` hashes every node
//! of the tree: in Python these were the largest costs per event on those paths.

mod canonical;
mod jcs;
mod restore;
mod schema;
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

    /// (canonical bytes, content by JSON path) of a serialised event under `salt`.
    fn commit<'py>(
        &self,
        py: Python<'py>,
        event: &[u8],
        salt: &[u8],
    ) -> PyResult<(Bound<'py, PyBytes>, Bound<'py, PyDict>)> {
        let (text, content) = py.detach(|| {
            let mut encoder = canonical::Encoder::new(&self.inner, salt);
            encoder.message(self.root, &[event])?;
            Ok::<_, Error>((encoder.out, encoder.content))
        })?;
        let values = PyDict::new(py);
        for (path, value) in content {
            values.set_item(path, value)?;
        }
        Ok((PyBytes::new(py, &text), values))
    }

    /// Ingest's field checks of a serialised event: (path, problem) pairs, paths
    /// relative to the event, in declaration order; `max_text`: the metadata limit.
    fn check(
        &self,
        py: Python<'_>,
        event: &[u8],
        max_text: usize,
    ) -> PyResult<Vec<(String, String)>> {
        let violations = py.detach(|| {
            let mut checker = validate::Checker::new(&self.inner, max_text);
            checker.message(self.root, &[event])?;
            Ok::<_, Error>(checker.violations)
        })?;
        Ok(violations)
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
        let out = py.detach(|| {
            let node: serde_json::Value = serde_json::from_slice(canonical)
                .map_err(|e| Error::new(format!("not JSON: {e}")))?;
            let obj = node
                .as_object()
                .ok_or_else(|| Error::new("not a JSON object"))?;
            let mut out = Vec::with_capacity(canonical.len());
            restore::Restorer::new(&self.inner, content.as_ref())
                .message(self.root, obj, &mut out)?;
            Ok::<_, Error>(out)
        })?;
        Ok(PyBytes::new(py, &out))
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

#[pymodule]
fn aiaudit_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Schema>()?;
    m.add_function(wrap_pyfunction!(merkle_levels, m)?)
}
