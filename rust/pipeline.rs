//! The evidence stream pipeline:
//!
//! reader ──batches──▶ N workers (parse → redact → map → canonicalize → hash)
//!        ──results──▶ in-order writer (seq, chain, Merkle, checkpoints, output)
//!
//! Stages are joined by bounded channels, so a slow sink stalls the reader
//! instead of growing memory. With one thread everything runs inline on the
//! calling thread. Output bytes do not depend on the thread count: workers
//! only do per-line work; everything order-dependent happens in the writer.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use ed25519_dalek::Signer as _;

use crate::canon::write_string;
use crate::chain::{genesis, leaf_hash, link, MerkleAccumulator};
use crate::cloudevent::{
    hash_pair, map_event_into, map_event_unhashed, uuid5, write_final_line, ChainAttrs, MapOptions,
    MappedAt, Scratch, Unhashed, CHECKPOINT_TYPE, EVENT_ID_NAMESPACE,
};
use crate::digest::{tagged, Digest, HashAlg};
use crate::json::{self, Value};
use crate::lines::{Batch, BatchReader, Limits};

/// The redaction stage: runs on each parsed event before it is mapped and hashed.
pub trait Redactor: Send + Sync {
    /// Redacts `event` (parsed from `raw`) in place; adds to `counts` per rule
    /// (indexed like `rule_ids`) and returns how many values were redacted.
    fn redact(&self, raw: &[u8], event: &mut Value<'_>, counts: &mut Vec<u64>) -> u64;
    fn rule_ids(&self) -> Vec<String>;
}

pub struct CheckpointSigner {
    pub key: ed25519_dalek::SigningKey,
    pub key_id: String,
}

pub struct StreamConfig {
    pub stream_id: String,
    pub default_tenant: Option<String>,
    pub default_source: Option<String>,
    /// Seal after this many records; 0 seals only at the end.
    pub checkpoint_every: u64,
    pub alg: HashAlg,
    pub threads: usize,
    pub limits: Limits,
    pub signer: Option<CheckpointSigner>,
}

/// A line that did not become an event.
#[derive(Debug, Clone)]
pub struct Reject {
    pub line: u64,
    /// MALFORMED_JSON, LIMIT_EXCEEDED or INVALID_EVENT.
    pub code: &'static str,
    pub reason: String,
    pub raw: Vec<u8>,
}

#[derive(Debug, Clone, Default)]
pub struct StreamStats {
    pub events: u64,
    pub rejected: u64,
    pub checkpoints: u64,
    pub redactions: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub head: Option<Digest>,
    pub merkle_root: Option<Digest>,
    /// Redactions per rule id (rules that fired at least once).
    pub redactions_by_rule: Vec<(String, u64)>,
}

#[derive(Debug)]
pub enum StreamError {
    Io(io::Error),
    Callback(String),
    Config(String),
    TooManyRecords(u64),
}

impl std::fmt::Display for StreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StreamError::Io(e) => write!(f, "I/O error: {e}"),
            StreamError::Callback(m) => write!(f, "{m}"),
            StreamError::Config(m) => write!(f, "{m}"),
            StreamError::TooManyRecords(n) => write!(
                f,
                "the stream reached {n} records; CloudEvents seq is a 32-bit integer, \
                 so split the input and continue under a new --stream-id"
            ),
        }
    }
}

impl From<io::Error> for StreamError {
    fn from(e: io::Error) -> Self {
        StreamError::Io(e)
    }
}

/// Callbacks the writer makes, in input order, on the writer thread.
pub trait StreamObserver {
    fn reject(&mut self, r: &Reject) -> Result<(), StreamError>;
    fn progress(
        &mut self,
        _events: u64,
        _rejected: u64,
        _bytes_in: u64,
    ) -> Result<(), StreamError> {
        Ok(())
    }
}

pub(crate) enum Item {
    Event(MappedAt, u64),
    Reject(Reject),
}

impl Item {
    fn set_mapped(&mut self, m: MappedAt) {
        let Item::Event(slot, _) = self else {
            unreachable!("only a mapped event is hashed");
        };
        *slot = m;
    }
}

/// A batch after the workers: every mapped event's bytes live in `content`.
pub(crate) struct Processed {
    index: u64,
    pub(crate) items: Vec<Item>,
    pub(crate) content: Vec<u8>,
    bytes: u64,
    pub(crate) rule_counts: Vec<u64>,
}

/// The writer's order-dependent state, for stores that continue one chain across
/// transactions and processes (`crate::ledger`).
#[derive(Clone)]
pub struct ChainState {
    pub seq: u64,
    pub prev: Digest,
    pub merkle: MerkleAccumulator,
    pub since_checkpoint: u64,
    pub segment_first: u64,
    pub last_time: String,
    pub last_tenant: String,
}

impl ChainState {
    pub fn genesis(cfg: &StreamConfig) -> Self {
        ChainState {
            seq: 0,
            prev: genesis(cfg.alg, &cfg.stream_id),
            merkle: MerkleAccumulator::new(cfg.alg),
            since_checkpoint: 0,
            segment_first: 0,
            last_time: String::new(),
            last_tenant: String::new(),
        }
    }
}

fn reject(line: u64, code: &'static str, reason: String, raw: &[u8]) -> Item {
    Item::Reject(Reject {
        line,
        code,
        reason,
        raw: raw.to_vec(),
    })
}

/// A worker's mapping buffers: two, so that events are hashed in pairs.
pub(crate) type Scratches = [Scratch; 2];

fn process_batch(
    batch: &Batch,
    cfg: &StreamConfig,
    redactor: Option<&dyn Redactor>,
    scratch: &mut Scratches,
    mut content: Vec<u8>,
) -> Processed {
    let opts = MapOptions {
        default_tenant: cfg.default_tenant.as_deref(),
        default_source: cfg.default_source.as_deref(),
        alg: cfg.alg,
    };
    let mut items = Vec::with_capacity(batch.lines.len());
    content.clear();
    content.reserve(batch.data.len() * 3 / 2 + 4096);
    let mut rule_counts = Vec::new();
    // A mapped event waiting for a second one to be hashed with: (item, scratch, event).
    let mut unpaired: Option<(usize, usize, Unhashed)> = None;
    for l in &batch.lines {
        let mut raw = batch.line(l);
        if let Some(total) = l.overlong {
            items.push(reject(
                l.number,
                "LIMIT_EXCEEDED",
                format!(
                    "line is {total} bytes, over the {} byte limit (first {} bytes kept)",
                    cfg.limits.max_line_bytes,
                    raw.len()
                ),
                raw,
            ));
            continue;
        }
        if raw.last() == Some(&b'\r') {
            raw = &raw[..raw.len() - 1];
        }
        if raw.iter().all(|c| c.is_ascii_whitespace()) {
            continue; // blank lines carry no event
        }
        let mut v = match json::parse(raw, cfg.limits.max_depth) {
            Ok(v) => v,
            Err(e) if e.is_limit() => {
                items.push(reject(l.number, "LIMIT_EXCEEDED", e.to_string(), raw));
                continue;
            }
            Err(e) => {
                items.push(reject(
                    l.number,
                    "MALFORMED_JSON",
                    format!("not valid JSON: {e}"),
                    raw,
                ));
                continue;
            }
        };
        let redactions = redactor.map_or(0, |r| r.redact(raw, &mut v, &mut rule_counts));
        let k = unpaired.as_ref().map_or(0, |&(_, k, _)| 1 - k);
        match map_event_unhashed(&v, redactions, &opts, &mut scratch[k], &mut content) {
            Ok(u) => {
                // Filled in once hashed.
                items.push(Item::Event(MappedAt::default(), redactions));
                let at = items.len() - 1;
                match unpaired.take() {
                    None => unpaired = Some((at, k, u)),
                    Some((first, j, w)) => {
                        let (a, b) =
                            hash_pair(cfg.alg, (w, &scratch[j]), (u, &scratch[k]), &mut content);
                        items[first].set_mapped(a);
                        items[at].set_mapped(b);
                    }
                }
            }
            Err(e) => items.push(reject(l.number, "INVALID_EVENT", e.to_string(), raw)),
        }
    }
    if let Some((at, k, u)) = unpaired {
        items[at].set_mapped(u.hash(cfg.alg, &scratch[k], &mut content));
    }
    Processed {
        index: batch.index,
        items,
        content,
        bytes: batch.data.len() as u64 + batch.lines.len() as u64,
        rule_counts,
    }
}

/// Order-dependent state: seq, chain, Merkle accumulator, checkpoints, output buffer.
pub(crate) struct Writer<'w, W: Write> {
    cfg: &'w StreamConfig,
    out: &'w mut W,
    /// Events a bounded capture dropped (counted by producers); checkpoints record them.
    dropped: Option<&'w AtomicU64>,
    dropped_at_checkpoint: u64,
    buf: Vec<u8>,
    stream_id_json: Vec<u8>,
    chain: ChainState,
    stats: StreamStats,
    rule_counts: Vec<u64>,
}

/// Output is handed to the sink in chunks of about this size: small enough
/// that the copy a Python sink makes (a bytes object) still finds the chunk in
/// cache, large enough that the per-call cost stays negligible.
const FLUSH_AT: usize = 256 << 10;

impl<'w, W: Write> Writer<'w, W> {
    fn new(cfg: &'w StreamConfig, out: &'w mut W) -> Self {
        let mut stream_id_json = Vec::new();
        write_string(&mut stream_id_json, &cfg.stream_id);
        Writer {
            cfg,
            out,
            dropped: None,
            dropped_at_checkpoint: 0,
            buf: Vec::with_capacity(FLUSH_AT + 64 * 1024),
            stream_id_json,
            chain: ChainState::genesis(cfg),
            stats: StreamStats::default(),
            rule_counts: Vec::new(),
        }
    }

    fn append(&mut self, buf: &[u8], m: &MappedAt) -> Result<(), StreamError> {
        if self.chain.seq >= self.cfg.limits.max_records {
            return Err(StreamError::TooManyRecords(self.chain.seq));
        }
        let chain = link(
            self.cfg.alg,
            &self.chain.prev,
            &m.contenthash,
            self.chain.seq,
        );
        let attrs = ChainAttrs {
            alg: self.cfg.alg,
            contenthash: &m.contenthash,
            chainhash: &chain,
            seq: self.chain.seq,
            stream_id_json: &self.stream_id_json,
        };
        write_final_line(
            &mut self.buf,
            &buf[m.start..m.end],
            m.seq_at - m.start,
            m.stream_at - m.start,
            &attrs,
        );
        self.chain
            .merkle
            .push_leaf_hash(leaf_hash(self.cfg.alg, &m.contenthash));
        self.chain.prev = chain;
        self.chain.seq += 1;
        if self.buf.len() >= FLUSH_AT {
            self.flush()?;
        }
        Ok(())
    }

    /// A writer that continues from `state` instead of the stream's genesis.
    pub(crate) fn resume(cfg: &'w StreamConfig, out: &'w mut W, state: &ChainState) -> Self {
        let mut w = Writer::new(cfg, out);
        w.chain = state.clone();
        w
    }

    pub(crate) fn state(&self) -> ChainState {
        self.chain.clone()
    }

    /// The next record's seq.
    pub(crate) fn seq(&self) -> u64 {
        self.chain.seq
    }

    /// Seals the records since the last checkpoint now; false when there were none.
    pub(crate) fn seal(&mut self) -> Result<bool, StreamError> {
        if self.chain.since_checkpoint == 0 {
            return Ok(false);
        }
        self.checkpoint()?;
        Ok(true)
    }

    pub(crate) fn event(
        &mut self,
        buf: &[u8],
        m: &MappedAt,
        redactions: u64,
    ) -> Result<(), StreamError> {
        self.append(buf, m)?;
        self.stats.events += 1;
        self.stats.redactions += redactions;
        self.chain.since_checkpoint += 1;
        // Both change often: refill the strings in place rather than allocate.
        for (span, last) in [
            (m.time, &mut self.chain.last_time),
            (m.tenant, &mut self.chain.last_tenant),
        ] {
            let text = &buf[span.0..span.1];
            if text != last.as_bytes() {
                last.clear();
                last.push_str(&String::from_utf8_lossy(text));
            }
        }
        if self.cfg.checkpoint_every > 0 && self.chain.since_checkpoint >= self.cfg.checkpoint_every
        {
            self.checkpoint()?;
        }
        Ok(())
    }

    /// Seals the records so far with a checkpoint record (DESIGN §4).
    fn checkpoint(&mut self) -> Result<(), StreamError> {
        let alg = self.cfg.alg;
        let last_seq = self.chain.seq - 1;
        let root = self.chain.merkle.root();
        let s = |x: String| Value::String(Cow::Owned(x));
        let n = |x: u64| Value::Number(x as f64);
        let mut payload: Vec<(Cow<'_, str>, Value<'_>)> = vec![
            ("count".into(), n(self.chain.since_checkpoint)),
            ("first_seq".into(), n(self.chain.segment_first)),
            ("head".into(), s(tagged(alg, &self.chain.prev))),
            ("last_seq".into(), n(last_seq)),
            ("merkle_root".into(), s(tagged(alg, &root))),
            ("stream_id".into(), s(self.cfg.stream_id.clone())),
        ];
        if let Some(dropped) = self.dropped {
            let total = dropped.load(Ordering::Relaxed);
            payload.push(("dropped".into(), n(total - self.dropped_at_checkpoint)));
            self.dropped_at_checkpoint = total;
        }
        if let Some(signer) = &self.cfg.signer {
            payload.push(("key_id".into(), s(signer.key_id.clone())));
            let unsigned = Value::object(payload.clone()).map_err(StreamError::Config)?;
            let sig = signer.key.sign(&crate::canon::to_vec(&unsigned));
            let b64 = base64::engine::general_purpose::STANDARD.encode(sig.to_bytes());
            payload.push(("signature".into(), s(b64)));
        }
        let id_name = crate::canon::to_vec(
            &Value::object(vec![
                ("checkpoint".into(), n(last_seq)),
                ("stream_id".into(), s(self.cfg.stream_id.clone())),
            ])
            .map_err(StreamError::Config)?,
        );
        let tenant = self
            .cfg
            .default_tenant
            .clone()
            .unwrap_or_else(|| self.chain.last_tenant.clone());
        let source = self
            .cfg
            .default_source
            .clone()
            .unwrap_or_else(|| "urn:agent-bom:evidence".to_string());
        let native = Value::object(vec![
            ("event_id".into(), s(uuid5(&EVENT_ID_NAMESPACE, &id_name))),
            ("event_type".into(), s(CHECKPOINT_TYPE.to_string())),
            ("created_at".into(), s(self.chain.last_time.clone())),
            ("tenant_id".into(), s(tenant)),
            ("source".into(), s(source)),
            (
                "entity_refs".into(),
                Value::Array(vec![Value::object(vec![
                    ("id".into(), s(self.cfg.stream_id.clone())),
                    ("kind".into(), s("stream".into())),
                ])
                .map_err(StreamError::Config)?]),
            ),
            (
                "payload".into(),
                Value::object(payload).map_err(StreamError::Config)?,
            ),
        ])
        .map_err(StreamError::Config)?;
        let opts = MapOptions {
            default_tenant: None,
            default_source: None,
            alg,
        };
        let mut content = Vec::with_capacity(1024);
        let mapped = map_event_into(&native, 0, &opts, &mut Scratch::default(), &mut content)
            .map_err(|e| StreamError::Config(format!("checkpoint: {e}")))?;
        self.append(&content, &mapped)?;
        self.stats.checkpoints += 1;
        self.stats.merkle_root = Some(root);
        self.chain.since_checkpoint = 0;
        self.chain.segment_first = self.chain.seq;
        Ok(())
    }

    /// Writer for a bounded capture: flushes per batch, records drops in checkpoints.
    pub(crate) fn for_capture(
        cfg: &'w StreamConfig,
        out: &'w mut W,
        dropped: &'w AtomicU64,
    ) -> Self {
        let mut w = Writer::new(cfg, out);
        w.dropped = Some(dropped);
        w
    }

    /// Records a note as an `audit.integrity` event (time: given, or the last event's).
    pub(crate) fn note(
        &mut self,
        record: u64,
        message: &str,
        created_at: Option<&str>,
        obs: &mut dyn StreamObserver,
    ) -> Result<(), StreamError> {
        let s = |x: &str| Value::String(Cow::Owned(x.to_string()));
        let time = created_at.unwrap_or(&self.chain.last_time);
        let tenant = self
            .cfg
            .default_tenant
            .as_deref()
            .unwrap_or(&self.chain.last_tenant);
        let mut members: Vec<(Cow<'_, str>, Value<'_>)> = vec![
            ("event_type".into(), s("audit.integrity")),
            (
                "payload".into(),
                Value::Object(vec![("note".into(), s(message))]),
            ),
        ];
        if !time.is_empty() {
            members.push(("created_at".into(), s(time)));
        }
        if !tenant.is_empty() {
            members.push(("tenant_id".into(), s(tenant)));
        }
        let native = Value::object(members).map_err(StreamError::Config)?;
        let opts = MapOptions {
            default_tenant: None,
            default_source: Some(
                self.cfg
                    .default_source
                    .as_deref()
                    .unwrap_or("urn:agent-bom:capture"),
            ),
            alg: self.cfg.alg,
        };
        let mut content = Vec::with_capacity(512);
        match map_event_into(&native, 0, &opts, &mut Scratch::default(), &mut content) {
            Ok(m) => self.event(&content, &m, 0),
            Err(e) => {
                self.stats.rejected += 1;
                let reason = if created_at.is_none() && self.chain.last_time.is_empty() {
                    "a note needs created_at when no event came before it".to_string()
                } else {
                    e.to_string()
                };
                obs.reject(&Reject {
                    line: record,
                    code: "INVALID_EVENT",
                    reason,
                    raw: message.as_bytes().to_vec(),
                })
            }
        }
    }

    pub(crate) fn flush(&mut self) -> Result<(), StreamError> {
        if !self.buf.is_empty() {
            self.out.write_all(&self.buf)?;
            self.stats.bytes_out += self.buf.len() as u64;
            self.buf.clear();
        }
        Ok(())
    }

    pub(crate) fn consume(
        &mut self,
        p: &Processed,
        obs: &mut dyn StreamObserver,
    ) -> Result<(), StreamError> {
        self.stats.bytes_in += p.bytes;
        if self.rule_counts.len() < p.rule_counts.len() {
            self.rule_counts.resize(p.rule_counts.len(), 0);
        }
        for (total, n) in self.rule_counts.iter_mut().zip(&p.rule_counts) {
            *total += n;
        }
        for item in &p.items {
            match item {
                Item::Event(m, r) => self.event(&p.content, m, *r)?,
                Item::Reject(r) => {
                    self.stats.rejected += 1;
                    obs.reject(r)?;
                }
            }
        }
        obs.progress(self.stats.events, self.stats.rejected, self.stats.bytes_in)
    }

    pub(crate) fn finish(mut self, rule_ids: &[String]) -> Result<StreamStats, StreamError> {
        self.stats.redactions_by_rule = rule_ids
            .iter()
            .zip(&self.rule_counts)
            .filter(|(_, &n)| n > 0)
            .map(|(id, &n)| (id.clone(), n))
            .collect();
        if self.chain.since_checkpoint > 0 {
            self.checkpoint()?;
        }
        self.flush()?;
        self.out.flush()?;
        if self.chain.seq > 0 {
            self.stats.head = Some(self.chain.prev);
        }
        Ok(self.stats)
    }
}

pub(crate) type CaptureWriter<'w, W> = Writer<'w, W>;

/// `process_batch` for the capture consumer (no buffer recycling across batches).
pub(crate) fn process_batch_for_capture(
    batch: &Batch,
    cfg: &StreamConfig,
    redactor: Option<&dyn Redactor>,
    scratch: &mut Scratches,
) -> Processed {
    process_batch(batch, cfg, redactor, scratch, Vec::new())
}

/// Runs the whole pipeline: reads NDJSON from `input`, writes sealed CloudEvents to `output`.
pub fn run<R: Read + Send, W: Write>(
    cfg: &StreamConfig,
    input: R,
    output: &mut W,
    redactor: Option<&dyn Redactor>,
    obs: &mut dyn StreamObserver,
) -> Result<StreamStats, StreamError> {
    if cfg.stream_id.is_empty() {
        return Err(StreamError::Config("stream id must not be empty".into()));
    }
    let rule_ids = redactor.map(|r| r.rule_ids()).unwrap_or_default();
    let mut reader = BatchReader::new(input, cfg.limits, None);
    let mut writer = Writer::new(cfg, output);
    if cfg.threads <= 1 {
        let mut scratch = Scratches::default();
        let (mut spare_data, mut spare_content) = (None, Vec::new());
        while let Some(batch) = reader.next_batch_reusing(spare_data.take())? {
            let p = process_batch(
                &batch,
                cfg,
                redactor,
                &mut scratch,
                std::mem::take(&mut spare_content),
            );
            writer.consume(&p, obs)?;
            spare_data = Some(batch.data);
            spare_content = p.content;
        }
        return writer.finish(&rule_ids);
    }

    // Used buffers flow back upstream so steady state allocates nothing large.
    let depth = cfg.threads * 4;
    let (batch_tx, batch_rx) = crossbeam_channel::bounded::<Batch>(depth);
    let (done_tx, done_rx) = crossbeam_channel::bounded::<Processed>(depth);
    let (free_data_tx, free_data_rx) = crossbeam_channel::bounded::<Vec<u8>>(depth * 2);
    let (free_content_tx, free_content_rx) = crossbeam_channel::bounded::<Vec<u8>>(depth * 2);
    std::thread::scope(|scope| {
        let reader_handle = scope.spawn(move || -> io::Result<()> {
            while let Some(batch) = reader.next_batch_reusing(free_data_rx.try_recv().ok())? {
                if batch_tx.send(batch).is_err() {
                    break; // the writer stopped early
                }
            }
            Ok(())
        });
        for _ in 0..cfg.threads {
            let (rx, tx) = (batch_rx.clone(), done_tx.clone());
            let (free_data, free_content) = (free_data_tx.clone(), free_content_rx.clone());
            scope.spawn(move || {
                let mut scratch = Scratches::default();
                for batch in rx {
                    let content = free_content.try_recv().unwrap_or_default();
                    let p = process_batch(&batch, cfg, redactor, &mut scratch, content);
                    let _ = free_data.try_send(batch.data);
                    if tx.send(p).is_err() {
                        break;
                    }
                }
            });
        }
        drop(batch_rx);
        drop(done_tx);
        drop(free_data_tx);

        let mut pending: BTreeMap<u64, Processed> = BTreeMap::new();
        let mut next = 0u64;
        let mut result = Ok(());
        for p in &done_rx {
            pending.insert(p.index, p);
            while let Some(p) = pending.remove(&next) {
                next += 1;
                let consumed = writer.consume(&p, obs);
                let _ = free_content_tx.try_send(p.content);
                if let Err(e) = consumed {
                    result = Err(e);
                    break;
                }
            }
            if result.is_err() {
                break;
            }
        }
        drop(done_rx); // unblocks workers and the reader if we stopped early
        let read_result = reader_handle
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("reader thread panicked")));
        result?;
        read_result?;
        writer.finish(&rule_ids)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lines::{Limits, LineRef};

    fn config(alg: HashAlg) -> StreamConfig {
        StreamConfig {
            stream_id: "s".into(),
            default_tenant: Some("acme".into()),
            default_source: Some("urn:test".into()),
            checkpoint_every: 0,
            alg,
            threads: 1,
            limits: Limits {
                max_line_bytes: 1 << 20,
                max_depth: 64,
                max_records: 1 << 20,
            },
            signer: None,
        }
    }

    #[test]
    fn events_hashed_in_pairs_are_hashed_as_each_alone() {
        // Derived and given ids, trace context, payloads across block lengths,
        // and rejects between the two events of a pair.
        let mut lines = Vec::new();
        for i in 0..41usize {
            let pad = "x".repeat((i * 37) % 300);
            lines.push(match i % 7 {
                3 => "{not json".to_string(),
                5 => r#"{"event_type":"no.such","created_at":"2026-05-01T00:00:00Z"}"#.to_string(),
                6 => format!(
                    r#"{{"event_id":"e-{i}","event_type":"finding.created","created_at":"2026-05-01T00:00:00Z","payload":{{"pad":"{pad}"}}}}"#
                ),
                k => format!(
                    r#"{{"event_type":"runtime.exec","created_at":"2026-05-01T00:00:00Z","payload":{{"i":{i},"pad":"{pad}"}}{}}}"#,
                    if k == 4 {
                        r#","traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01""#
                    } else {
                        ""
                    }
                ),
            });
        }
        for n in [lines.len(), lines.len() - 1, 2, 1] {
            for alg in [HashAlg::Sha256, HashAlg::Blake3] {
                let cfg = config(alg);
                let mut batch = Batch {
                    index: 0,
                    data: Vec::new(),
                    lines: Vec::new(),
                };
                for (i, l) in lines[..n].iter().enumerate() {
                    let start = batch.data.len();
                    batch.data.extend_from_slice(l.as_bytes());
                    batch.lines.push(LineRef {
                        number: i as u64 + 1,
                        start,
                        end: batch.data.len(),
                        overlong: None,
                    });
                }
                let p = process_batch(&batch, &cfg, None, &mut Scratches::default(), Vec::new());
                let opts = MapOptions {
                    default_tenant: Some("acme"),
                    default_source: Some("urn:test"),
                    alg,
                };
                let mut events = 0;
                for (item, l) in p.items.iter().zip(&lines) {
                    let v = json::parse(l.as_bytes(), 64).ok();
                    let mut alone = Vec::new();
                    let mapped = v
                        .as_ref()
                        .map(|v| map_event_into(v, 0, &opts, &mut Scratch::default(), &mut alone));
                    match (item, mapped) {
                        (Item::Event(m, _), Some(Ok(a))) => {
                            assert_eq!(&p.content[m.start..m.end], &alone[a.start..a.end], "{l}");
                            assert_eq!(m.contenthash, a.contenthash, "{l}");
                            assert_eq!(m.id.1 - m.id.0, a.id.1 - a.id.0);
                            events += 1;
                        }
                        (Item::Reject(_), None | Some(Err(_))) => {}
                        _ => panic!("event and reject disagree on {l}"),
                    }
                }
                assert_eq!(p.items.len(), n);
                assert!(events >= n / 2, "{events} of {n}");
            }
        }
    }
}
