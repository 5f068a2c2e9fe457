//! Native core of aiaudit, for Python: the canonical form of events.
//!
//! Ingest computes it for every event and `verify` for every stored one; in
//! Python it was most of ingest's CPU per event.

mod canonical;
mod jcs;
mod schema;
mod wire;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

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
}

#[pymodule]
fn aiaudit_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Schema>()
}
