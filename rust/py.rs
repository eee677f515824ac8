//! PyO3 glue: the `agent_bom._core` module. Its typed contract is
//! `python/agent_bom/_core.pyi`. I/O objects come from Python (file-like
//! objects with `read`/`write`); the GIL is released while the core runs.

use std::borrow::Cow;
use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex};

use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple,
};

use crate::canon;
use crate::capture::{Capture, CaptureConfig, Entry, PushError, Pushed, WhenFull};
use crate::chain;
use crate::digest::{hex, parse_hex32, tagged, Digest, HashAlg};
use crate::json::{ParseError, Value};
use crate::ledger::{Ledger, Prepared, PreparedBatch};
use crate::lines::Limits;
use crate::pipeline::{self, CheckpointSigner, Reject, StreamConfig, StreamError, StreamObserver};
use crate::redact::{Mode, Redactor, RuleCounts, RuleSet};

pyo3::create_exception!(
    _core,
    BackpressureError,
    pyo3::exceptions::PyRuntimeError,
    "The capture queue is full."
);
use crate::verify::{self, Problem, VerifyOptions};

const MAX_SAFE_INT: i64 = (1 << 53) - 1;
const PY_MAX_DEPTH: usize = 512;

fn alg(name: &str) -> PyResult<HashAlg> {
    HashAlg::parse(name).ok_or_else(|| {
        PyValueError::new_err(format!(
            "unknown hash algorithm {name:?}: use 'sha256' or 'blake3'"
        ))
    })
}

fn path_str(path: &[String]) -> String {
    if path.is_empty() {
        "$".into()
    } else {
        format!("${}", path.concat())
    }
}

/// Converts a Python object to a JSON tree, naming the path of anything that is not JSON.
fn to_value<'py>(
    obj: &Bound<'py, PyAny>,
    path: &mut Vec<String>,
    depth: usize,
) -> PyResult<Value<'static>> {
    if depth > PY_MAX_DEPTH {
        return Err(PyValueError::new_err(format!(
            "{}: nesting deeper than {PY_MAX_DEPTH} levels",
            path_str(path)
        )));
    }
    if obj.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        let s = s.to_str().map_err(|_| {
            PyValueError::new_err(format!(
                "{}: string holds a lone surrogate, which JSON (I-JSON) cannot carry",
                path_str(path)
            ))
        })?;
        return Ok(Value::String(Cow::Owned(s.to_owned())));
    }
    if obj.cast::<PyInt>().is_ok() {
        return match obj.extract::<i64>() {
            Ok(n) if (-MAX_SAFE_INT..=MAX_SAFE_INT).contains(&n) => Ok(Value::Number(n as f64)),
            _ => Err(PyValueError::new_err(format!(
                "{}: integer {} is outside the I-JSON range ±(2**53-1); send it as a string",
                path_str(path),
                obj
            ))),
        };
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        let v = f.value();
        if !v.is_finite() {
            return Err(PyValueError::new_err(format!(
                "{}: {v} is not representable in JSON (NaN and Infinity are rejected)",
                path_str(path)
            )));
        }
        return Ok(Value::Number(v));
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        let mut members = Vec::with_capacity(d.len());
        for (k, v) in d.iter() {
            let key = k.cast::<PyString>().map_err(|_| {
                PyValueError::new_err(format!(
                    "{}: object keys must be strings, got {}",
                    path_str(path),
                    k.get_type()
                        .name()
                        .map(|n| n.to_string())
                        .unwrap_or_default()
                ))
            })?;
            let key = key
                .to_str()
                .map_err(|_| {
                    PyValueError::new_err(format!("{}: key holds a lone surrogate", path_str(path)))
                })?
                .to_owned();
            path.push(format!(".{key}"));
            let value = to_value(&v, path, depth + 1)?;
            path.pop();
            members.push((Cow::Owned(key), value));
        }
        return Value::object(members).map_err(|k| {
            PyValueError::new_err(format!("{}: duplicate key {k:?}", path_str(path)))
        });
    }
    if obj.cast::<PyList>().is_ok() || obj.cast::<PyTuple>().is_ok() {
        let mut items = Vec::new();
        for (i, item) in obj.try_iter()?.enumerate() {
            path.push(format!("[{i}]"));
            items.push(to_value(&item?, path, depth + 1)?);
            path.pop();
        }
        return Ok(Value::Array(items));
    }
    Err(PyValueError::new_err(format!(
        "{}: {} is not a JSON type (use dict, list, str, int, float, bool or None)",
        path_str(path),
        obj.get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_default()
    )))
}

/// Converts a JSON tree back to Python (integral numbers below 2**53 become int).
fn from_value<'py>(py: Python<'py>, v: &Value<'_>) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) if n.fract() == 0.0 && n.abs() <= MAX_SAFE_INT as f64 => {
            (*n as i64).into_pyobject(py)?.into_any()
        }
        Value::Number(n) => PyFloat::new(py, *n).into_any(),
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for i in items {
                list.append(from_value(py, i)?)?;
            }
            list.into_any()
        }
        Value::Object(members) => {
            let d = PyDict::new(py);
            for (k, i) in members {
                d.set_item(k.as_ref(), from_value(py, i)?)?;
            }
            d.into_any()
        }
    })
}

fn parse_err(e: ParseError) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// RFC 8785 canonical bytes of a Python JSON value.
/// `(milliseconds since the Unix epoch, UTC offset in minutes)` of an RFC 3339
/// date-time the core accepts, or None.
#[pyfunction]
fn epoch_millis(value: &str) -> Option<(i64, i32)> {
    crate::time::epoch_millis(value)
}

#[pyfunction]
fn canonical_json<'py>(py: Python<'py>, obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    let v = to_value(obj, &mut Vec::new(), 0)?;
    // Serializing costs about what converting the objects did, with the GIL held:
    // releasing it here would only make the caller queue to get it back (up to the
    // interpreter's 5 ms switch interval when other threads are busy).
    let out = canon::to_vec(&v);
    Ok(PyBytes::new(py, &out))
}

/// The CloudEvents Kafka binary-mode records of CloudEvent lines (`crate::binding`):
/// per line `(value, [(header, bytes), ...])`, or the reason it is not a CloudEvent.
///
/// One pass per line, with the GIL (the Python objects are most of the work). Most
/// (name, value) pairs repeat from one record to the next (type, source, tenant,
/// content type...): such a header is one shared tuple, not a new one per record.
#[pyfunction]
fn kafka_binary<'py>(
    py: Python<'py>,
    lines: Vec<Bound<'py, PyBytes>>,
) -> PyResult<Bound<'py, PyList>> {
    let mut headers_seen = HeaderCache::new(py);
    let out = PyList::empty(py);
    for line in &lines {
        let members = match crate::binding::members(line.as_bytes()) {
            Ok(m) => m,
            Err(why) => {
                out.append(why)?;
                continue;
            }
        };
        let headers = PyList::empty(py);
        let ct = crate::binding::content_type(&members);
        headers.append(headers_seen.content_type.tuple(py, &ct)?)?;
        let mut value = None;
        for (name, v) in &members {
            match name.as_ref() {
                "data" => value = Some(PyBytes::new(py, &canon::to_vec(v))),
                "datacontenttype" => {}
                _ => {
                    let text = crate::binding::header_text(v);
                    headers.append(headers_seen.attribute(py, name, &text)?)?;
                }
            }
        }
        out.append((value, headers))?;
    }
    Ok(out)
}

/// One header's name, and the last value seen with its tuple.
struct HeaderSlot<'py> {
    attr: String,
    header: Bound<'py, PyString>,
    last: Vec<u8>,
    tuple: Option<Bound<'py, PyTuple>>,
}

impl<'py> HeaderSlot<'py> {
    fn new(py: Python<'py>, attr: &str, header: &str) -> Self {
        HeaderSlot {
            attr: attr.to_string(),
            header: PyString::new(py, header),
            last: Vec::new(),
            tuple: None,
        }
    }

    /// The `(header, value)` tuple: the last one again when the value repeats.
    fn tuple(&mut self, py: Python<'py>, value: &[u8]) -> PyResult<Bound<'py, PyTuple>> {
        if let Some(t) = &self.tuple {
            if self.last == value {
                return Ok(t.clone());
            }
        }
        let t = PyTuple::new(
            py,
            [
                self.header.clone().into_any(),
                PyBytes::new(py, value).into_any(),
            ],
        )?;
        self.last.clear();
        self.last.extend_from_slice(value);
        self.tuple = Some(t.clone());
        Ok(t)
    }
}

/// `content-type`'s slot and those of the attributes met so far (a dozen: a linear
/// search), each attribute's header `ce_<name>`.
struct HeaderCache<'py> {
    content_type: HeaderSlot<'py>,
    attributes: Vec<HeaderSlot<'py>>,
}

impl<'py> HeaderCache<'py> {
    fn new(py: Python<'py>) -> Self {
        HeaderCache {
            content_type: HeaderSlot::new(py, "", "content-type"),
            attributes: Vec::new(),
        }
    }

    fn attribute(
        &mut self,
        py: Python<'py>,
        attr: &str,
        value: &[u8],
    ) -> PyResult<Bound<'py, PyTuple>> {
        let i = match self.attributes.iter().position(|s| s.attr == attr) {
            Some(i) => i,
            None => {
                let slot = HeaderSlot::new(py, attr, &format!("ce_{attr}"));
                self.attributes.push(slot);
                self.attributes.len() - 1
            }
        };
        self.attributes[i].tuple(py, value)
    }
}

/// RFC 8785 canonical form of JSON text.
#[pyfunction]
#[pyo3(signature = (data, max_depth = 128))]
fn canonicalize<'py>(
    py: Python<'py>,
    data: &[u8],
    max_depth: usize,
) -> PyResult<Bound<'py, PyBytes>> {
    let out = py
        .detach(|| canon::canonicalize(data, max_depth))
        .map_err(parse_err)?;
    Ok(PyBytes::new(py, &out))
}

#[pyfunction]
#[pyo3(signature = (obj, algorithm = "sha256"))]
fn content_hash(obj: &Bound<'_, PyAny>, algorithm: &str) -> PyResult<String> {
    let a = alg(algorithm)?;
    let v = to_value(obj, &mut Vec::new(), 0)?;
    // With the GIL held, as in canonical_json.
    Ok(tagged(a, &a.hash(&canon::to_vec(&v))))
}

#[pyfunction]
#[pyo3(signature = (data, algorithm = "sha256"))]
fn hash_bytes(py: Python<'_>, data: &[u8], algorithm: &str) -> PyResult<String> {
    let a = alg(algorithm)?;
    Ok(py.detach(|| tagged(a, &a.hash(data))))
}

fn digests(items: &[String]) -> PyResult<Vec<Digest>> {
    items
        .iter()
        .map(|s| {
            let h = s.split_once(':').map_or(s.as_str(), |x| x.1);
            parse_hex32(h).ok_or_else(|| {
                PyValueError::new_err(format!("{s:?} is not a 32-byte digest in hex"))
            })
        })
        .collect()
}

/// RFC 6962 MTH over raw leaf inputs (each hashed as H(0x00 ‖ data)), hex.
#[pyfunction]
#[pyo3(signature = (leaves, algorithm = "sha256"))]
fn merkle_root(leaves: Vec<Vec<u8>>, algorithm: &str) -> PyResult<String> {
    let a = alg(algorithm)?;
    let hashes: Vec<Digest> = leaves.iter().map(|l| chain::leaf_hash(a, l)).collect();
    Ok(hex(&chain::tree_root(a, &hashes)))
}

/// RFC 6962 audit path (hex node hashes) for leaf `index` over raw leaf inputs.
#[pyfunction]
#[pyo3(signature = (leaves, index, algorithm = "sha256"))]
fn inclusion_proof(leaves: Vec<Vec<u8>>, index: usize, algorithm: &str) -> PyResult<Vec<String>> {
    let a = alg(algorithm)?;
    if index >= leaves.len() {
        return Err(PyValueError::new_err(format!(
            "index {index} is outside a tree of {} leaves",
            leaves.len()
        )));
    }
    let hashes: Vec<Digest> = leaves.iter().map(|l| chain::leaf_hash(a, l)).collect();
    Ok(chain::inclusion_proof(a, &hashes, index)
        .iter()
        .map(|d| hex(d))
        .collect())
}

/// Root (hex) implied by a leaf hash and its audit path, or None if the path cannot fit the tree.
#[pyfunction]
#[pyo3(signature = (leaf_hash, index, size, path, algorithm = "sha256"))]
fn root_from_inclusion_proof(
    leaf_hash: String,
    index: u64,
    size: u64,
    path: Vec<String>,
    algorithm: &str,
) -> PyResult<Option<String>> {
    let a = alg(algorithm)?;
    let leaf = digests(&[leaf_hash])?[0];
    let path = digests(&path)?;
    Ok(chain::root_from_inclusion_proof(a, &leaf, index, size, &path).map(|d| hex(&d)))
}

/// Leaf hash H(0x00 ‖ contenthash) for a `<alg>:<hex>` contenthash.
#[pyfunction]
fn evidence_leaf_hash(contenthash: &str) -> PyResult<String> {
    let (a, d) = crate::digest::parse_tagged(contenthash).ok_or_else(|| {
        PyValueError::new_err(format!("{contenthash:?} is not '<sha256|blake3>:<hex>'"))
    })?;
    Ok(tagged(a, &chain::leaf_hash(a, &d)))
}

/// A compiled rule set plus a mode (`agent_bom.redact` holds one).
#[pyclass(name = "Redactor", module = "agent_bom._core", frozen)]
struct PyRedactor {
    inner: Arc<Redactor>,
}

#[pymethods]
impl PyRedactor {
    #[new]
    #[pyo3(signature = (rule_files, mode = "mask", key = None))]
    fn new(rule_files: Vec<Vec<u8>>, mode: &str, key: Option<Vec<u8>>) -> PyResult<Self> {
        let mode = match (mode, key) {
            ("mask", _) => Mode::Mask,
            ("hash", Some(k)) if !k.is_empty() => Mode::Hash(k),
            ("hash", _) => {
                return Err(PyValueError::new_err(
                    "hash mode needs a non-empty key (--redact-key-file or --redact-key-env)",
                ))
            }
            (other, _) => {
                return Err(PyValueError::new_err(format!(
                    "redaction mode {other:?} is not supported: use mask or hash"
                )))
            }
        };
        let files: Vec<&[u8]> = rule_files.iter().map(Vec::as_slice).collect();
        let set = RuleSet::from_json(&files).map_err(PyValueError::new_err)?;
        Ok(PyRedactor {
            inner: Arc::new(Redactor::new(set, mode)),
        })
    }

    #[getter]
    fn rule_ids(&self) -> Vec<String> {
        self.inner.rules().rule_ids()
    }

    /// Redacts a JSON value: (redacted value, count, {rule id: count}).
    fn redact<'py>(
        &self,
        py: Python<'py>,
        obj: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let mut out = self.redact_many(py, vec![obj.clone()])?;
        Ok(out.remove(0))
    }

    /// Redacts many JSON values in one call; the GIL is released while redacting.
    fn redact_many<'py>(
        &self,
        py: Python<'py>,
        objs: Vec<Bound<'py, PyAny>>,
    ) -> PyResult<Vec<Bound<'py, PyTuple>>> {
        let mut values = Vec::with_capacity(objs.len());
        for (i, o) in objs.iter().enumerate() {
            let mut path = if objs.len() > 1 {
                vec![format!("[{i}]")]
            } else {
                Vec::new()
            };
            values.push(to_value(o, &mut path, 0)?);
        }
        let inner = self.inner.clone();
        let results: Vec<(Value<'static>, u64, RuleCounts)> = py.detach(move || {
            values
                .into_iter()
                .map(|mut v| {
                    let mut counts = Vec::new();
                    let n = inner.redact_value(None, &mut v, &mut counts);
                    (v, n, counts)
                })
                .collect()
        });
        let ids = self.inner.rules().rule_ids();
        results
            .into_iter()
            .zip(objs)
            .map(|((v, n, counts), original)| {
                let by_rule = PyDict::new(py);
                for (id, c) in ids.iter().zip(&counts) {
                    if *c > 0 {
                        by_rule.set_item(id, c)?;
                    }
                }
                // Unchanged values come back as the caller's own object.
                let value = if n == 0 {
                    original
                } else {
                    from_value(py, &v)?
                };
                PyTuple::new(
                    py,
                    [value, n.into_pyobject(py)?.into_any(), by_rule.into_any()],
                )
            })
            .collect()
    }
}

/// Parses every NDJSON line of `data` and, with a redactor, redacts it; returns
/// the redaction count. Benchmarks time it with and without a redactor to
/// isolate the redaction stage's cost.
#[pyfunction]
#[pyo3(signature = (data, redactor = None))]
fn redact_lines(
    py: Python<'_>,
    data: &[u8],
    redactor: Option<PyRef<'_, PyRedactor>>,
) -> PyResult<u64> {
    let redactor = redactor.map(|r| r.inner.clone());
    py.detach(|| {
        let mut counts = Vec::new();
        let mut total = 0;
        for line in data.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
            let mut v = crate::json::parse(line, 64).map_err(parse_err)?;
            if let Some(r) = &redactor {
                total += r.redact_value(Some(line), &mut v, &mut counts);
            }
        }
        Ok(total)
    })
}

/// Sink that hands each flushed run of finished lines to a Python callable as `list[bytes]`.
struct CallableSink {
    obj: Py<PyAny>,
    err: ErrSlot,
}

impl Write for CallableSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Python::attach(|py| {
            let lines = PyList::empty(py);
            for line in buf.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
                lines
                    .append(PyBytes::new(py, line))
                    .map_err(|e| stash(&self.err, e))?;
            }
            self.obj
                .call1(py, (lines,))
                .map_err(|e| stash(&self.err, e))?;
            Ok(buf.len())
        })
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Bounded capture (`agent_bom.evidence.EvidenceStream` wraps it).
#[pyclass(name = "Capture", module = "agent_bom._core", frozen)]
struct PyCapture {
    inner: Capture,
    err: ErrSlot,
    when_full: WhenFull,
}

fn entry_from(obj: &Bound<'_, PyAny>) -> PyResult<Entry> {
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(Entry::Event(b.as_bytes().to_vec()));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Entry::Event(s.to_str()?.as_bytes().to_vec()));
    }
    let v = to_value(obj, &mut Vec::new(), 0)?;
    Ok(Entry::Event(canon::to_vec(&v)))
}

impl PyCapture {
    fn push_error(&self, e: PushError) -> PyErr {
        match e {
            PushError::Full => BackpressureError::new_err(
                "the capture queue is full (when_full='error'); slow down, raise capacity/max_bytes, \
                 or use when_full='block'",
            ),
            PushError::Closed => take_err(&self.err).unwrap_or_else(|| {
                PyValueError::new_err("the capture is finished or its sink failed; call finish() for the reason")
            }),
        }
    }
}

#[pymethods]
impl PyCapture {
    #[new]
    #[pyo3(signature = (sink, *, callable, stream_id, tenant_id = None, source = None, checkpoint_every = 10_000,
                        algorithm = "sha256", capacity = 8192, max_bytes = 64 << 20, when_full = "block",
                        max_depth = 64, signing_seed = None, key_id = None, redactor = None, on_reject = None,
                        threads = 1))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        sink: Py<PyAny>,
        callable: bool,
        stream_id: String,
        tenant_id: Option<String>,
        source: Option<String>,
        checkpoint_every: u64,
        algorithm: &str,
        capacity: usize,
        max_bytes: usize,
        when_full: &str,
        max_depth: usize,
        signing_seed: Option<Vec<u8>>,
        key_id: Option<String>,
        redactor: Option<PyRef<'_, PyRedactor>>,
        on_reject: Option<Py<PyAny>>,
        threads: usize,
    ) -> PyResult<Self> {
        if threads < 1 {
            return Err(PyValueError::new_err("threads must be at least 1"));
        }
        let when_full = match when_full {
            "block" => WhenFull::Block,
            "drop_newest" => WhenFull::DropNewest,
            "error" => WhenFull::Error,
            other => {
                return Err(PyValueError::new_err(format!(
                    "when_full={other:?}: use 'block', 'drop_newest' or 'error'"
                )))
            }
        };
        if stream_id.is_empty() {
            return Err(PyValueError::new_err("stream_id must not be empty"));
        }
        let signer = signer_from(signing_seed, key_id)?;
        let stream = StreamConfig {
            stream_id,
            default_tenant: tenant_id,
            default_source: checked_source(source)?,
            checkpoint_every,
            alg: alg(algorithm)?,
            threads,
            limits: Limits {
                max_line_bytes: max_bytes,
                max_depth,
                max_records: (1 << 31) - 1,
            },
            signer,
        };
        let cfg = CaptureConfig {
            stream,
            capacity,
            max_bytes,
            when_full,
        };
        let err: ErrSlot = Arc::new(Mutex::new(None));
        let redactor: Option<Arc<dyn pipeline::Redactor>> =
            redactor.map(|r| r.inner.clone() as Arc<dyn pipeline::Redactor>);
        let observer = Box::new(PyObserver {
            on_reject,
            on_progress: None,
            err: err.clone(),
        });
        let inner = if callable {
            Capture::start(
                cfg,
                CallableSink {
                    obj: sink,
                    err: err.clone(),
                },
                redactor,
                observer,
            )
        } else {
            Capture::start(
                cfg,
                PyWriter {
                    obj: sink,
                    err: err.clone(),
                },
                redactor,
                observer,
            )
        };
        Ok(PyCapture {
            inner,
            err,
            when_full,
        })
    }

    /// Queues one event (dict, bytes or str); False when it was dropped (when_full='drop_newest').
    fn record(&self, py: Python<'_>, event: &Bound<'_, PyAny>) -> PyResult<bool> {
        let e = entry_from(event)?;
        let pushed = if self.when_full == WhenFull::Block {
            py.detach(|| self.inner.push(e))
        } else {
            self.inner.push(e)
        };
        match pushed {
            Ok(p) => Ok(p == Pushed::Queued),
            Err(e) => Err(self.push_error(e)),
        }
    }

    /// Queues many events; returns (queued, dropped).
    fn record_many(&self, py: Python<'_>, events: &Bound<'_, PyAny>) -> PyResult<(u64, u64)> {
        let mut entries = Vec::with_capacity(events.len().unwrap_or(0));
        for e in events.try_iter()? {
            entries.push(entry_from(&e?)?);
        }
        py.detach(|| self.inner.push_many(entries))
            .map_err(|e| self.push_error(e))
    }

    #[pyo3(signature = (message, created_at = None))]
    fn note(&self, py: Python<'_>, message: String, created_at: Option<String>) -> PyResult<()> {
        let e = Entry::Note {
            message,
            created_at,
        };
        py.detach(|| self.inner.push(e))
            .map(|_| ())
            .map_err(|e| self.push_error(e))
    }

    #[getter]
    fn recorded(&self) -> u64 {
        self.inner
            .counters()
            .recorded
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    #[getter]
    fn dropped(&self) -> u64 {
        self.inner
            .counters()
            .dropped
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Drains the queue, seals the stream, and returns the stats.
    fn finish<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let result = py.detach(|| self.inner.finish());
        if let Some(e) = take_err(&self.err) {
            return Err(e);
        }
        let stats = result.map_err(|e| PyValueError::new_err(e.to_string()))?;
        let d = stats_dict(py, &stats, self.inner.alg())?;
        d.set_item("recorded", self.recorded())?;
        d.set_item("dropped", self.dropped())?;
        Ok(d)
    }
}

/// Python errors raised inside I/O callbacks, kept to re-raise after the core returns.
type ErrSlot = Arc<Mutex<Option<PyErr>>>;

fn stash(slot: &ErrSlot, e: PyErr) -> io::Error {
    let msg = e.to_string();
    if let Ok(mut s) = slot.lock() {
        s.get_or_insert(e);
    }
    io::Error::other(msg)
}

struct PyReader {
    obj: Py<PyAny>,
    err: ErrSlot,
    /// A Python-owned buffer for `readinto` (no new bytes object per chunk).
    buffer: Option<Py<PyByteArray>>,
}

impl PyReader {
    fn new(obj: Py<PyAny>, err: ErrSlot) -> Self {
        let buffer = Python::attach(|py| {
            obj.bind(py)
                .hasattr("readinto")
                .unwrap_or(false)
                .then(|| PyByteArray::new(py, &[]).unbind())
        });
        PyReader { obj, err, buffer }
    }
}

impl Read for PyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Python::attach(|py| {
            if let Some(ba) = &self.buffer {
                let ba = ba.bind(py);
                if ba.len() != buf.len() {
                    ba.resize(buf.len()).map_err(|e| stash(&self.err, e))?;
                }
                let n = self
                    .obj
                    .call_method1(py, "readinto", (ba,))
                    .map_err(|e| stash(&self.err, e))?;
                // None means "no data available" on a non-blocking stream: treat as zero bytes read.
                let n: usize = n.extract(py).unwrap_or(0).min(buf.len());
                // SAFETY: we hold the GIL and call no Python code while the slice is alive.
                let src = unsafe { ba.as_bytes() };
                buf[..n].copy_from_slice(&src[..n]);
                return Ok(n);
            }
            let chunk = self
                .obj
                .call_method1(py, "read", (buf.len(),))
                .map_err(|e| stash(&self.err, e))?;
            let bytes = chunk.cast_bound::<PyBytes>(py).map_err(|_| {
                io::Error::other("input must be opened in binary mode (read() returned str)")
            })?;
            let b = bytes.as_bytes();
            let n = b.len().min(buf.len());
            buf[..n].copy_from_slice(&b[..n]);
            Ok(n)
        })
    }
}

struct PyWriter {
    obj: Py<PyAny>,
    err: ErrSlot,
}

impl Write for PyWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Python::attach(|py| {
            self.obj
                .call_method1(py, "write", (PyBytes::new(py, buf),))
                .map_err(|e| stash(&self.err, e))?;
            Ok(buf.len())
        })
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

struct PyObserver {
    on_reject: Option<Py<PyAny>>,
    on_progress: Option<Py<PyAny>>,
    err: ErrSlot,
}

impl StreamObserver for PyObserver {
    fn reject(&mut self, r: &Reject) -> Result<(), StreamError> {
        let Some(cb) = &self.on_reject else {
            return Ok(());
        };
        Python::attach(|py| {
            cb.call1(
                py,
                (r.line, r.code, r.reason.as_str(), PyBytes::new(py, &r.raw)),
            )
            .map(|_| ())
            .map_err(|e| {
                let io = stash(&self.err, e);
                StreamError::Callback(io.to_string())
            })
        })
    }
    fn progress(&mut self, events: u64, rejected: u64, bytes_in: u64) -> Result<(), StreamError> {
        let Some(cb) = &self.on_progress else {
            return Ok(());
        };
        Python::attach(|py| {
            cb.call1(py, (events, rejected, bytes_in))
                .map(|_| ())
                .map_err(|e| {
                    let io = stash(&self.err, e);
                    StreamError::Callback(io.to_string())
                })
        })
    }
}

fn take_err(slot: &ErrSlot) -> Option<PyErr> {
    slot.lock().ok().and_then(|mut s| s.take())
}

fn signer_from(
    signing_seed: Option<Vec<u8>>,
    key_id: Option<String>,
) -> PyResult<Option<CheckpointSigner>> {
    match (signing_seed, key_id) {
        (Some(seed), Some(key_id)) => {
            let seed: [u8; 32] = seed.try_into().map_err(|_| {
                PyValueError::new_err("signing_seed must be the 32-byte Ed25519 private key seed")
            })?;
            Ok(Some(CheckpointSigner {
                key: ed25519_dalek::SigningKey::from_bytes(&seed),
                key_id,
            }))
        }
        (None, None) => Ok(None),
        _ => Err(PyValueError::new_err(
            "a signing key needs a key id, and a key id needs a signing key",
        )),
    }
}

fn stats_dict<'py>(
    py: Python<'py>,
    stats: &pipeline::StreamStats,
    a: HashAlg,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("events", stats.events)?;
    d.set_item("rejected", stats.rejected)?;
    d.set_item("checkpoints", stats.checkpoints)?;
    d.set_item("redactions", stats.redactions)?;
    d.set_item("bytes_in", stats.bytes_in)?;
    d.set_item("bytes_out", stats.bytes_out)?;
    d.set_item("head", stats.head.map(|h| tagged(a, &h)))?;
    d.set_item("merkle_root", stats.merkle_root.map(|h| tagged(a, &h)))?;
    let by_rule = PyDict::new(py);
    for (id, n) in &stats.redactions_by_rule {
        by_rule.set_item(id, n)?;
    }
    d.set_item("redactions_by_rule", by_rule)?;
    Ok(d)
}

/// Streams native NDJSON events from `reader` into sealed CloudEvents on `writer`.
#[pyfunction]
#[pyo3(signature = (reader, writer, *, stream_id, tenant_id = None, source = None, checkpoint_every = 10_000,
                    algorithm = "sha256", threads = 1, max_line_bytes = 1 << 20, max_depth = 64,
                    max_records = (1u64 << 31) - 1, signing_seed = None, key_id = None, redactor = None,
                    on_reject = None, on_progress = None))]
#[allow(clippy::too_many_arguments)]
fn stream<'py>(
    py: Python<'py>,
    reader: Py<PyAny>,
    writer: Py<PyAny>,
    stream_id: String,
    tenant_id: Option<String>,
    source: Option<String>,
    checkpoint_every: u64,
    algorithm: &str,
    threads: usize,
    max_line_bytes: usize,
    max_depth: usize,
    max_records: u64,
    signing_seed: Option<Vec<u8>>,
    key_id: Option<String>,
    redactor: Option<PyRef<'py, PyRedactor>>,
    on_reject: Option<Py<PyAny>>,
    on_progress: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let redactor = redactor.map(|r| r.inner.clone());
    let signer = signer_from(signing_seed, key_id)?;
    let cfg = StreamConfig {
        stream_id,
        default_tenant: tenant_id,
        default_source: checked_source(source)?,
        checkpoint_every,
        alg: alg(algorithm)?,
        threads: threads.max(1),
        limits: Limits {
            max_line_bytes,
            max_depth,
            max_records,
        },
        signer,
    };
    let err: ErrSlot = Arc::new(Mutex::new(None));
    let input = PyReader::new(reader, err.clone());
    let mut output = PyWriter {
        obj: writer,
        err: err.clone(),
    };
    let mut obs = PyObserver {
        on_reject,
        on_progress,
        err: err.clone(),
    };
    let result = py.detach(|| {
        let stage = redactor.as_deref().map(|r| r as &dyn pipeline::Redactor);
        pipeline::run(&cfg, input, &mut output, stage, &mut obs)
    });
    if let Some(e) = take_err(&err) {
        return Err(e);
    }
    let stats = result.map_err(|e| match e {
        StreamError::Io(e) => PyOSError::new_err(e.to_string()),
        other => PyValueError::new_err(other.to_string()),
    })?;
    stats_dict(py, &stats, cfg.alg)
}

fn problem_dict<'py>(py: Python<'py>, p: &Problem) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("line", p.line)?;
    d.set_item("seq", p.seq)?;
    d.set_item("code", p.code)?;
    d.set_item("detail", &p.detail)?;
    d.set_item("expected", &p.expected)?;
    d.set_item("found", &p.found)?;
    Ok(d)
}

/// Verifies an evidence stream read from `reader`; returns the report as a dict.
#[pyfunction]
#[pyo3(signature = (reader, *, public_key = None, require_sealed = false, max_line_bytes = 8 << 20,
                    max_depth = 128, max_records = 1u64 << 31, max_problems = 1000, collect = false))]
#[allow(clippy::too_many_arguments)]
fn verify_stream<'py>(
    py: Python<'py>,
    reader: Py<PyAny>,
    public_key: Option<Vec<u8>>,
    require_sealed: bool,
    max_line_bytes: usize,
    max_depth: usize,
    max_records: u64,
    max_problems: usize,
    collect: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let public_key = match public_key {
        None => None,
        Some(k) => {
            let raw: [u8; 32] = k.try_into().map_err(|_| {
                PyValueError::new_err("public_key must be the 32-byte raw Ed25519 public key")
            })?;
            Some(ed25519_dalek::VerifyingKey::from_bytes(&raw).map_err(|e| {
                PyValueError::new_err(format!("not a valid Ed25519 public key: {e}"))
            })?)
        }
    };
    let opts = VerifyOptions {
        limits: Limits {
            max_line_bytes,
            max_depth,
            max_records,
        },
        public_key,
        require_sealed,
        max_problems,
        collect,
    };
    let err: ErrSlot = Arc::new(Mutex::new(None));
    let input = PyReader::new(reader, err.clone());
    let result = py.detach(|| verify::verify(input, opts));
    if let Some(e) = take_err(&err) {
        return Err(e);
    }
    let r = result.map_err(|e| PyOSError::new_err(e.to_string()))?;
    let a = r.alg.unwrap_or(HashAlg::Sha256);
    let d = PyDict::new(py);
    d.set_item("ok", r.ok)?;
    d.set_item("lines", r.lines)?;
    d.set_item("records", r.records)?;
    d.set_item("events", r.events)?;
    d.set_item("checkpoints", r.checkpoints)?;
    d.set_item("sealed", r.sealed)?;
    d.set_item("stream_id", &r.stream_id)?;
    d.set_item("hash_alg", r.alg.map(HashAlg::name))?;
    d.set_item("head", r.head.map(|h| tagged(a, &h)))?;
    d.set_item("merkle_root", r.merkle_root.map(|h| tagged(a, &h)))?;
    d.set_item("signatures_verified", r.signatures_verified)?;
    d.set_item("signatures_unchecked", r.signatures_unchecked)?;
    d.set_item("errors_total", r.errors_total)?;
    d.set_item("bytes", r.bytes)?;
    d.set_item("input_sha256", r.input_sha256.map(|h| hex(&h)))?;
    let errors = PyList::empty(py);
    for p in &r.errors {
        errors.append(problem_dict(py, p)?)?;
    }
    d.set_item("errors", errors)?;
    let warnings = PyList::empty(py);
    for p in &r.warnings {
        warnings.append(problem_dict(py, p)?)?;
    }
    d.set_item("warnings", warnings)?;
    if collect {
        let leaves: Vec<String> = r.leaves.iter().map(|h| tagged(a, h)).collect();
        d.set_item("leaves", leaves)?;
        let contents: Vec<String> = r.contenthashes.iter().map(|h| tagged(a, h)).collect();
        d.set_item("contenthashes", contents)?;
        let cps = PyList::empty(py);
        for c in &r.checkpoint_list {
            let cd = PyDict::new(py);
            cd.set_item("line", c.line)?;
            cd.set_item("seq", c.seq)?;
            cd.set_item("last_seq", c.last_seq)?;
            cd.set_item("payload", PyBytes::new(py, &c.payload))?;
            cps.append(cd)?;
        }
        d.set_item("checkpoint_list", cps)?;
    }
    Ok(d)
}

/// Audit path (tagged hex) for leaf `index` in the tree over the first `size` leaf hashes.
#[pyfunction]
fn inclusion_path_for_leaves(
    leaves: Vec<String>,
    index: usize,
    size: usize,
) -> PyResult<Vec<String>> {
    let a = leaves
        .first()
        .and_then(|l| crate::digest::parse_tagged(l))
        .map(|x| x.0)
        .unwrap_or(HashAlg::Sha256);
    if size > leaves.len() || index >= size {
        return Err(PyValueError::new_err(format!(
            "leaf {index} is not inside a tree of size {size} ({} leaves known)",
            leaves.len()
        )));
    }
    let hashes = digests(&leaves[..size])?;
    Ok(chain::inclusion_proof(a, &hashes, index)
        .iter()
        .map(|d| tagged(a, d))
        .collect())
}

/// Ed25519 signature check, strict (RFC 8032 with canonical encodings, no small-order
/// keys): checkpoints carried inside proofs and `v1a` webhook signatures. Lets go of
/// the GIL, since a request body can be large.
#[pyfunction]
fn ed25519_verify(
    py: Python<'_>,
    public_key: &[u8],
    message: &[u8],
    signature: &[u8],
) -> PyResult<bool> {
    let raw: [u8; 32] = public_key
        .try_into()
        .map_err(|_| PyValueError::new_err("public_key must be 32 raw bytes"))?;
    let key = ed25519_dalek::VerifyingKey::from_bytes(&raw)
        .map_err(|e| PyValueError::new_err(format!("not a valid Ed25519 public key: {e}")))?;
    let Ok(sig) = ed25519_dalek::Signature::from_slice(signature) else {
        return Ok(false);
    };
    Ok(py.detach(|| key.verify_strict(message, &sig).is_ok()))
}

/// Why `s` is not an RFC 3986 URI-reference (the check the core makes of `source`), or
/// None when it is one.
#[pyfunction]
fn uri_reference_problem(s: &str) -> Option<String> {
    crate::cloudevent::check_uri_reference(s).err()
}

/// A default `source` given to the core: a URI-reference, or a clear error.
fn checked_source(source: Option<String>) -> PyResult<Option<String>> {
    if let Some(s) = &source {
        crate::cloudevent::check_uri_reference(s)
            .map_err(|m| PyValueError::new_err(format!("source {s:?} {m}")))?;
    }
    Ok(source)
}

fn check_keep(batch: &PyPreparedBatch, keep: &[bool]) -> PyResult<()> {
    if keep.len() != batch.inner.events.len() {
        return Err(PyValueError::new_err(
            "keep needs one flag per prepared event",
        ));
    }
    Ok(())
}

/// Events prepared for a `Ledger` (parsed, redacted, mapped, hashed), not yet chained.
#[pyclass(name = "PreparedBatch", module = "agent_bom._core", frozen)]
struct PyPreparedBatch {
    inner: PreparedBatch,
    rule_ids: Vec<String>,
}

#[pymethods]
impl PyPreparedBatch {
    /// Per input event: ("event", id, redactions) or ("rejected", code, reason).
    fn results<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let out = PyList::empty(py);
        for p in &self.inner.events {
            let t = match p {
                Prepared::Event { id, redactions } => {
                    ("event", id.as_str(), *redactions).into_pyobject(py)?
                }
                Prepared::Rejected { code, reason } => {
                    ("rejected", *code, reason.as_str()).into_pyobject(py)?
                }
            };
            out.append(t)?;
        }
        Ok(out)
    }

    /// Redactions per rule id (rules that fired).
    fn redactions_by_rule<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (id, n) in self.rule_ids.iter().zip(&self.inner.rule_counts) {
            if *n > 0 {
                d.set_item(id, n)?;
            }
        }
        Ok(d)
    }
}

/// A chain continued across transactions: state in, records and state out.
#[pyclass(name = "Ledger", module = "agent_bom._core", frozen)]
struct PyLedger {
    inner: Mutex<Ledger>,
    alg: HashAlg,
    redactor: Option<Arc<Redactor>>,
}

impl PyLedger {
    fn lock(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[pymethods]
impl PyLedger {
    #[new]
    #[pyo3(signature = (stream_id, *, tenant_id, source = None, checkpoint_every = 10_000,
                        algorithm = "sha256", state = None, max_line_bytes = 1 << 20, max_depth = 64,
                        signing_seed = None, key_id = None, redactor = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        stream_id: String,
        tenant_id: String,
        source: Option<String>,
        checkpoint_every: u64,
        algorithm: &str,
        state: Option<Vec<u8>>,
        max_line_bytes: usize,
        max_depth: usize,
        signing_seed: Option<Vec<u8>>,
        key_id: Option<String>,
        redactor: Option<PyRef<'_, PyRedactor>>,
    ) -> PyResult<Self> {
        if stream_id.is_empty() {
            return Err(PyValueError::new_err("stream_id must not be empty"));
        }
        let a = alg(algorithm)?;
        let cfg = StreamConfig {
            stream_id,
            default_tenant: Some(tenant_id),
            default_source: checked_source(source)?,
            checkpoint_every,
            alg: a,
            threads: 1,
            limits: Limits {
                max_line_bytes,
                max_depth,
                max_records: (1 << 31) - 1,
            },
            signer: signer_from(signing_seed, key_id)?,
        };
        let inner = Ledger::new(cfg, state.as_deref()).map_err(PyValueError::new_err)?;
        Ok(PyLedger {
            inner: Mutex::new(inner),
            alg: a,
            redactor: redactor.map(|r| r.inner.clone()),
        })
    }

    /// The next seq (records chained so far).
    #[getter]
    fn seq(&self) -> u64 {
        self.lock().seq()
    }

    fn prepare(&self, py: Python<'_>, events: Vec<Vec<u8>>) -> PyResult<PyPreparedBatch> {
        let redactor = self
            .redactor
            .as_deref()
            .map(|r| r as &dyn pipeline::Redactor);
        let inner = py
            .detach(|| self.lock().prepare(&events, redactor))
            .map_err(PyValueError::new_err)?;
        let rule_ids = self
            .redactor
            .as_ref()
            .map(|r| pipeline::Redactor::rule_ids(r.as_ref()))
            .unwrap_or_default();
        Ok(PyPreparedBatch { inner, rule_ids })
    }

    /// Chains the kept events; returns the records written (NDJSON, checkpoints included).
    fn append<'py>(
        &self,
        py: Python<'py>,
        batch: PyRef<'py, PyPreparedBatch>,
        keep: Vec<bool>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        check_keep(&batch, &keep)?;
        let inner = &batch.inner;
        let out = py
            .detach(|| self.lock().append(inner, &keep))
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        Ok(PyBytes::new(py, &out))
    }

    /// Chains the kept events like `append`; returns one tuple per record written
    /// (checkpoints included): (seq, id, event_type, severity or None, time, line).
    /// `then`: a second batch chained whole right after (the ingest server's audit
    /// record), in the same call.
    #[pyo3(signature = (batch, keep, then=None))]
    fn append_records<'py>(
        &self,
        py: Python<'py>,
        batch: PyRef<'py, PyPreparedBatch>,
        keep: Vec<bool>,
        then: Option<PyRef<'py, PyPreparedBatch>>,
    ) -> PyResult<Bound<'py, PyList>> {
        check_keep(&batch, &keep)?;
        let parts: Vec<(&PreparedBatch, Vec<bool>)> = std::iter::once((&batch.inner, keep))
            .chain(
                then.as_deref()
                    .map(|t| (&t.inner, vec![true; t.inner.events.len()])),
            )
            .collect();
        // Chaining and reading the records back keep the GIL: the ingest server calls
        // this holding its database's write lock, where letting go of the GIL means
        // waiting to win it back (~0.1 ms of work per 100 events against waits of
        // ~0.4 ms under load) while every other request waits for the lock.
        let done = (|| -> Result<_, String> {
            let refs: Vec<(&PreparedBatch, &[bool])> =
                parts.iter().map(|(b, k)| (*b, k.as_slice())).collect();
            let appended = self.lock().append_all(&refs).map_err(|e| e.to_string())?;
            let mut done = Vec::with_capacity(parts.len());
            for ((inner, _), (out, written)) in parts.iter().zip(appended) {
                let base = out.as_ptr() as usize;
                let metas: Vec<_> = inner
                    .records(&out, &written)?
                    .into_iter()
                    .map(|m| {
                        let start = m.line.as_ptr() as usize - base;
                        let line = start..start + m.line.len();
                        (m.seq, m.id, m.event_type, m.severity, m.time, line)
                    })
                    .collect();
                done.push((out, metas));
            }
            Ok(done)
        })()
        .map_err(PyValueError::new_err)?;
        let rows = PyList::empty(py);
        for (out, metas) in done {
            for (seq, id, event_type, severity, time, line) in metas {
                let line = PyBytes::new(py, &out[line]);
                rows.append((seq, id, event_type, severity, time, line))?;
            }
        }
        Ok(rows)
    }

    /// A checkpoint over the records since the last one (empty bytes when none).
    fn seal<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let out = py
            .detach(|| self.lock().seal())
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        Ok(PyBytes::new(py, &out))
    }

    /// The state to store with the records (canonical JSON).
    fn state<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.lock().state_bytes())
    }

    #[getter]
    fn algorithm(&self) -> &'static str {
        self.alg.name()
    }
}

/// The envelope contract compiled into the core (rust/contract.rs): the server's
/// fast path, checked without the GIL.
#[pyclass(name = "Contract", module = "agent_bom._core", frozen)]
struct PyContract {
    inner: crate::contract::Contract,
}

type Checked<'py> = (
    Vec<usize>,
    Vec<Bound<'py, PyBytes>>,
    Option<i64>,
    Option<Vec<crate::contract::Scope>>,
);

#[pymethods]
impl PyContract {
    #[new]
    fn new(spec: &[u8]) -> PyResult<Self> {
        let inner = crate::contract::Contract::new(spec).map_err(PyValueError::new_err)?;
        Ok(PyContract { inner })
    }

    /// `(indices, texts, newest_ms, scopes)` of the events that pass for `tenant`;
    /// the others are Python's to decide. Texts longer than `max_bytes` are left to
    /// Python too.
    #[pyo3(signature = (events, tenant, *, scoped, max_bytes))]
    fn check<'py>(
        &self,
        py: Python<'py>,
        events: Vec<Bound<'py, PyBytes>>,
        tenant: &str,
        scoped: bool,
        max_bytes: usize,
    ) -> Checked<'py> {
        let texts: Vec<&[u8]> = events.iter().map(|b| b.as_bytes()).collect();
        let passed = py.detach(|| {
            texts
                .iter()
                .enumerate()
                .filter(|(_, t)| t.len() <= max_bytes)
                .filter_map(|(i, t)| self.inner.check(t, tenant, scoped).map(|p| (i, p)))
                .collect::<Vec<_>>()
        });
        let newest = passed.iter().map(|(_, p)| p.created_ms).max();
        let mut indices = Vec::with_capacity(passed.len());
        let mut out = Vec::with_capacity(passed.len());
        let mut scopes = scoped.then(|| Vec::with_capacity(passed.len()));
        for (i, p) in passed {
            indices.push(i);
            out.push(match &p.text {
                Some(t) => PyBytes::new(py, t),
                None => events[i].clone(),
            });
            if let (Some(s), Some(scope)) = (scopes.as_mut(), p.scope) {
                s.push(scope);
            }
        }
        (indices, out, newest, scopes)
    }
}

/// The elements of a JSON array text (each as its own bytes), or None when the text
/// is not a JSON array as serde_json reads it.
#[pyfunction]
fn split_json_array<'py>(py: Python<'py>, text: &[u8]) -> Option<Vec<Bound<'py, PyBytes>>> {
    let items = py.detach(|| crate::contract::split_array(text))?;
    Some(items.into_iter().map(|b| PyBytes::new(py, b)).collect())
}

#[pymodule]
#[pyo3(name = "_core")]
fn core_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("REGISTRY_TYPES", crate::cloudevent::REGISTRY_TYPES.to_vec())?;
    m.add(
        "EVENT_ID_NAMESPACE",
        hex(&crate::cloudevent::EVENT_ID_NAMESPACE),
    )?;
    m.add_function(wrap_pyfunction!(canonical_json, m)?)?;
    m.add_function(wrap_pyfunction!(epoch_millis, m)?)?;
    m.add_function(wrap_pyfunction!(canonicalize, m)?)?;
    m.add_function(wrap_pyfunction!(kafka_binary, m)?)?;
    m.add_function(wrap_pyfunction!(content_hash, m)?)?;
    m.add_function(wrap_pyfunction!(hash_bytes, m)?)?;
    m.add_function(wrap_pyfunction!(merkle_root, m)?)?;
    m.add_function(wrap_pyfunction!(inclusion_proof, m)?)?;
    m.add_function(wrap_pyfunction!(root_from_inclusion_proof, m)?)?;
    m.add_function(wrap_pyfunction!(evidence_leaf_hash, m)?)?;
    m.add_function(wrap_pyfunction!(inclusion_path_for_leaves, m)?)?;
    m.add_function(wrap_pyfunction!(ed25519_verify, m)?)?;
    m.add_function(wrap_pyfunction!(stream, m)?)?;
    m.add_class::<PyRedactor>()?;
    m.add_class::<PyCapture>()?;
    m.add_class::<PyLedger>()?;
    m.add_class::<PyPreparedBatch>()?;
    m.add_class::<PyContract>()?;
    m.add_function(wrap_pyfunction!(split_json_array, m)?)?;
    m.add_function(wrap_pyfunction!(redact_lines, m)?)?;
    m.add("URI_REFERENCE", crate::cloudevent::URI_REFERENCE.as_str())?;
    m.add_function(wrap_pyfunction!(uri_reference_problem, m)?)?;
    m.add("BackpressureError", m.py().get_type::<BackpressureError>())?;
    m.add_function(wrap_pyfunction!(verify_stream, m)?)?;
    Ok(())
}
