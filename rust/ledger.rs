//! A chain that continues across transactions and processes.
//!
//! The ingest server appends each accepted batch to its tenant's chain inside a
//! database transaction. `Ledger` is the stream writer with its state (seq,
//! head, Merkle frontier, checkpoint window) loaded from and saved to bytes, so
//! any server process can continue the chain where the last commit left it and
//! the records are byte for byte what `evidence stream` writes for the same
//! events. Appending is two steps so the caller can drop duplicates in between:
//! `prepare` (parse, redact, map, hash: per event, no order) gives the event
//! ids; `append` chains the events the caller keeps.

use std::borrow::Cow;

use crate::chain::MerkleAccumulator;
use crate::digest::{hex, parse_hex32, HashAlg};
use crate::json::{self, Value};
use crate::lines::{Batch, LineRef};
use crate::pipeline::{
    process_batch_for_capture, ChainState, Item, Processed, Redactor, StreamConfig, StreamError,
    Writer,
};

const STATE_VERSION: f64 = 1.0;

pub struct Ledger {
    cfg: StreamConfig,
    state: ChainState,
}

/// One input event after `prepare`.
pub enum Prepared {
    /// The CloudEvent id and the number of values redacted.
    Event { id: String, redactions: u64 },
    /// `MALFORMED_JSON`, `LIMIT_EXCEEDED` or `INVALID_EVENT`, with the reason.
    Rejected { code: &'static str, reason: String },
}

/// One record `append_traced` wrote: its seq and the input event it chains (None for
/// a checkpoint).
#[derive(Clone, Copy, Debug)]
pub struct Written {
    pub seq: u64,
    pub item: Option<usize>,
}

pub struct PreparedBatch {
    processed: Processed,
    pub events: Vec<Prepared>,
    /// Redactions per rule, indexed like the redactor's rule ids.
    pub rule_counts: Vec<u64>,
}

/// What `append_traced` wrote: the records' bytes, and where each record is in them.
pub type Traced = (Vec<u8>, Vec<Written>);

impl Ledger {
    /// A ledger for `cfg.stream_id`, continuing from `state` (bytes from `state_bytes`)
    /// or from the stream's genesis.
    pub fn new(cfg: StreamConfig, state: Option<&[u8]>) -> Result<Self, String> {
        let state = match state {
            None => ChainState::genesis(&cfg),
            Some(bytes) => decode_state(&cfg, bytes)?,
        };
        Ok(Ledger { cfg, state })
    }

    pub fn seq(&self) -> u64 {
        self.state.seq
    }

    /// Parses, redacts, maps and hashes each event. No chain state is touched.
    pub fn prepare(
        &self,
        events: &[Vec<u8>],
        redactor: Option<&dyn Redactor>,
    ) -> Result<PreparedBatch, String> {
        let mut batch = Batch {
            index: 0,
            data: Vec::with_capacity(events.iter().map(Vec::len).sum()),
            lines: Vec::with_capacity(events.len()),
        };
        for (i, e) in events.iter().enumerate() {
            let start = batch.data.len();
            batch.data.extend_from_slice(e);
            let overlong = (e.len() > self.cfg.limits.max_line_bytes).then_some(e.len() as u64);
            batch.lines.push(LineRef {
                number: i as u64 + 1,
                start,
                end: batch.data.len(),
                overlong,
            });
        }
        let mut scratch = crate::pipeline::Scratches::default();
        let processed = process_batch_for_capture(&batch, &self.cfg, redactor, &mut scratch);
        if processed.items.len() != events.len() {
            return Err("blank events cannot be appended; drop them first".into());
        }
        let events = processed
            .items
            .iter()
            .map(|item| match item {
                Item::Event(m, redactions) => {
                    let quoted = &processed.content[m.id.0..m.id.1];
                    let id = match json::parse(quoted, 1) {
                        Ok(Value::String(s)) => s.into_owned(),
                        _ => String::from_utf8_lossy(&quoted[1..quoted.len() - 1]).into_owned(),
                    };
                    Prepared::Event {
                        id,
                        redactions: *redactions,
                    }
                }
                Item::Reject(r) => Prepared::Rejected {
                    code: r.code,
                    reason: r.reason.clone(),
                },
            })
            .collect();
        let rule_counts = processed.rule_counts.clone();
        Ok(PreparedBatch {
            processed,
            events,
            rule_counts,
        })
    }

    /// Chains the prepared events whose `keep` flag is set (rejects are never
    /// chained) and returns the records written, checkpoints included, as NDJSON.
    /// On error nothing changes: the state is only replaced on success.
    pub fn append(&mut self, batch: &PreparedBatch, keep: &[bool]) -> Result<Vec<u8>, StreamError> {
        self.append_traced(batch, keep).map(|(out, _)| out)
    }

    /// `append`, also saying what each record written is, for `PreparedBatch::records`.
    pub fn append_traced(
        &mut self,
        batch: &PreparedBatch,
        keep: &[bool],
    ) -> Result<Traced, StreamError> {
        let mut out = Vec::with_capacity(batch.processed.content.len() + 4096);
        let mut written = Vec::with_capacity(keep.len() + 1);
        let state = {
            let mut w = Writer::resume(&self.cfg, &mut out, &self.state);
            for (i, (item, &keep)) in batch.processed.items.iter().zip(keep).enumerate() {
                if let (Item::Event(m, redactions), true) = (item, keep) {
                    let seq = w.seq();
                    w.event(&batch.processed.content, m, *redactions)?;
                    written.push(Written { seq, item: Some(i) });
                    // A checkpoint the event completed comes right after it.
                    written.extend((seq + 1..w.seq()).map(|seq| Written { seq, item: None }));
                }
            }
            w.flush()?;
            w.state()
        };
        self.state = state;
        Ok((out, written))
    }

    /// `append_traced` of each part in turn, all or nothing: on an error the state is
    /// what it was before the first.
    pub fn append_all(
        &mut self,
        parts: &[(&PreparedBatch, &[bool])],
    ) -> Result<Vec<Traced>, StreamError> {
        let saved = self.state.clone();
        let mut done = Vec::with_capacity(parts.len());
        for (batch, keep) in parts {
            match self.append_traced(batch, keep) {
                Ok(x) => done.push(x),
                Err(e) => {
                    self.state = saved;
                    return Err(e);
                }
            }
        }
        Ok(done)
    }

    /// Writes a checkpoint over the records since the last one (empty when none).
    pub fn seal(&mut self) -> Result<Vec<u8>, StreamError> {
        let mut out = Vec::new();
        let state = {
            let mut w = Writer::resume(&self.cfg, &mut out, &self.state);
            w.seal()?;
            w.flush()?;
            w.state()
        };
        self.state = state;
        Ok(out)
    }

    /// The state as canonical JSON, to store with the records it covers.
    pub fn state_bytes(&self) -> Vec<u8> {
        let s = &self.state;
        let st = |x: String| Value::String(Cow::Owned(x));
        let n = |x: u64| Value::Number(x as f64);
        let stack = s
            .merkle
            .stack()
            .iter()
            .map(|(h, d)| Value::Array(vec![n(u64::from(*h)), st(hex(d))]))
            .collect();
        let v = Value::object(vec![
            ("alg".into(), st(self.cfg.alg.name().to_string())),
            ("last_tenant".into(), st(s.last_tenant.clone())),
            ("last_time".into(), st(s.last_time.clone())),
            ("merkle".into(), Value::Array(stack)),
            ("prev".into(), st(hex(&s.prev))),
            ("segment_first".into(), n(s.segment_first)),
            ("seq".into(), n(s.seq)),
            ("since_checkpoint".into(), n(s.since_checkpoint)),
            ("stream_id".into(), st(self.cfg.stream_id.clone())),
            ("v".into(), Value::Number(STATE_VERSION)),
        ])
        .expect("distinct member names");
        crate::canon::to_vec(&v)
    }
}

impl PreparedBatch {
    /// What the ingest store indexes of each record in `out`, written for this batch by
    /// `append_traced`: an event's from what `prepare` found (no second parse), a
    /// checkpoint's read back from its line. Equal to `records(out)`, only cheaper.
    pub fn records<'a>(
        &self,
        out: &'a [u8],
        written: &[Written],
    ) -> Result<Vec<RecordMeta<'a>>, String> {
        let content = &self.processed.content;
        let text = |(a, b): (usize, usize)| String::from_utf8_lossy(&content[a..b]).into_owned();
        let mut lines = out.split(|&b| b == b'\n').filter(|l| !l.is_empty());
        let mut metas = Vec::with_capacity(written.len());
        for w in written {
            let line = lines.next().ok_or("fewer records than written")?;
            let found = w
                .item
                .and_then(|i| match (&self.processed.items[i], &self.events[i]) {
                    (Item::Event(m, _), Prepared::Event { id, .. }) => Some((m, id)),
                    _ => None,
                });
            match found {
                Some((m, id)) => metas.push(RecordMeta {
                    seq: w.seq,
                    id: id.clone(),
                    event_type: text(m.event_type),
                    severity: m.severity.map(text),
                    time: text(m.time),
                    line,
                }),
                None => metas.extend(records(line)?),
            }
        }
        if lines.next().is_some() {
            return Err("more records than written".into());
        }
        Ok(metas)
    }
}

/// What the ingest store indexes of one written record (a line of `append`'s output).
#[derive(Debug, PartialEq)]
pub struct RecordMeta<'a> {
    pub seq: u64,
    pub id: String,
    /// `data.event_type`; `evidence.checkpoint` for checkpoints.
    pub event_type: String,
    pub severity: Option<String>,
    pub time: String,
    /// The line, without its newline.
    pub line: &'a [u8],
}

/// The records in `out` (NDJSON from `append` or `seal`), read back so callers need
/// not parse them again.
pub fn records(out: &[u8]) -> Result<Vec<RecordMeta<'_>>, String> {
    let mut metas = Vec::new();
    for line in out.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let v = json::parse(line, 64).map_err(|e| format!("record is not JSON: {e}"))?;
        let text = |v: Option<&Value<'_>>, what: &str| {
            v.and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| format!("record has no string {what}"))
        };
        let seq = match v.get("seq") {
            Some(Value::Number(x)) if *x >= 0.0 && x.fract() == 0.0 => *x as u64,
            _ => return Err("record has no seq".into()),
        };
        metas.push(RecordMeta {
            seq,
            id: text(v.get("id"), "id")?,
            event_type: text(
                v.get("data").and_then(|d| d.get("event_type")),
                "data.event_type",
            )?,
            severity: v
                .get("severity")
                .and_then(Value::as_str)
                .map(str::to_string),
            time: text(v.get("time"), "time")?,
            line,
        });
    }
    Ok(metas)
}

fn decode_state(cfg: &StreamConfig, bytes: &[u8]) -> Result<ChainState, String> {
    let v = json::parse(bytes, 8).map_err(|e| format!("ledger state is not JSON: {e}"))?;
    let bad = |what: &str| format!("ledger state: {what} missing or invalid");
    let num = |k: &str| -> Result<u64, String> {
        match v.get(k) {
            Some(Value::Number(x)) if *x >= 0.0 && x.fract() == 0.0 => Ok(*x as u64),
            _ => Err(bad(k)),
        }
    };
    let text = |k: &str| -> Result<String, String> {
        v.get(k)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| bad(k))
    };
    if num("v")? != STATE_VERSION as u64 {
        return Err("ledger state: unknown version".into());
    }
    if text("stream_id")? != cfg.stream_id {
        return Err("ledger state belongs to another stream".into());
    }
    if HashAlg::parse(&text("alg")?) != Some(cfg.alg) {
        return Err("ledger state uses another hash algorithm".into());
    }
    let mut stack = Vec::new();
    match v.get("merkle") {
        Some(Value::Array(items)) => {
            for item in items {
                match item {
                    Value::Array(pair) if pair.len() == 2 => {
                        let h = match &pair[0] {
                            Value::Number(h) if *h >= 0.0 && h.fract() == 0.0 => *h as u32,
                            _ => return Err(bad("merkle")),
                        };
                        let d = pair[1]
                            .as_str()
                            .and_then(parse_hex32)
                            .ok_or_else(|| bad("merkle"))?;
                        stack.push((h, d));
                    }
                    _ => return Err(bad("merkle")),
                }
            }
        }
        _ => return Err(bad("merkle")),
    }
    let merkle = MerkleAccumulator::from_stack(cfg.alg, stack)?;
    let seq = num("seq")?;
    if merkle.size() != seq {
        return Err("ledger state: merkle size does not match seq".into());
    }
    Ok(ChainState {
        seq,
        prev: parse_hex32(&text("prev")?).ok_or_else(|| bad("prev"))?,
        merkle,
        since_checkpoint: num("since_checkpoint")?,
        segment_first: num("segment_first")?,
        last_time: text("last_time")?,
        last_tenant: text("last_tenant")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lines::Limits;

    fn cfg(checkpoint_every: u64) -> StreamConfig {
        StreamConfig {
            stream_id: "tenant-acme".into(),
            default_tenant: Some("acme".into()),
            default_source: Some("urn:test".into()),
            checkpoint_every,
            alg: HashAlg::Sha256,
            threads: 1,
            limits: Limits {
                max_line_bytes: 1 << 20,
                max_depth: 64,
                max_records: (1 << 31) - 1,
            },
            signer: None,
        }
    }

    fn event(i: usize) -> Vec<u8> {
        format!(
            r#"{{"event_type":"finding.created","created_at":"2026-05-01T00:00:{:02}Z","payload":{{"n":{i}}}}}"#,
            i % 60
        )
        .into_bytes()
    }

    /// Appending in any split, resuming from saved state each time, writes the
    /// same bytes as one uninterrupted stream.
    #[test]
    fn resumed_appends_equal_one_stream() {
        let events: Vec<Vec<u8>> = (0..23).map(event).collect();
        let mut whole = Ledger::new(cfg(5), None).unwrap();
        let b = whole.prepare(&events, None).unwrap();
        let mut expected = whole.append(&b, &[true; 23]).unwrap();
        expected.extend(whole.seal().unwrap());

        let mut got = Vec::new();
        let mut state: Option<Vec<u8>> = None;
        for chunk in [&events[..3], &events[3..4], &events[4..17], &events[17..]] {
            let mut l = Ledger::new(cfg(5), state.as_deref()).unwrap();
            let b = l.prepare(chunk, None).unwrap();
            got.extend(l.append(&b, &vec![true; chunk.len()]).unwrap());
            state = Some(l.state_bytes());
        }
        let mut l = Ledger::new(cfg(5), state.as_deref()).unwrap();
        got.extend(l.seal().unwrap());
        assert_eq!(
            String::from_utf8(got).unwrap(),
            String::from_utf8(expected).unwrap()
        );
    }

    #[test]
    fn skipped_events_are_not_chained_and_ids_come_back() {
        let events: Vec<Vec<u8>> = vec![event(1), b"{not json".to_vec(), event(2)];
        let mut l = Ledger::new(cfg(0), None).unwrap();
        let b = l.prepare(&events, None).unwrap();
        assert!(matches!(
            b.events[1],
            Prepared::Rejected {
                code: "MALFORMED_JSON",
                ..
            }
        ));
        let Prepared::Event { id, .. } = &b.events[2] else {
            panic!("event 2 must map")
        };
        let out = l.append(&b, &[false, true, true]).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 1);
        assert!(text.contains(&format!("\"id\":\"{id}\"")));
        assert_eq!(l.seq(), 1);
    }

    #[test]
    fn state_from_another_stream_is_refused() {
        let l = Ledger::new(cfg(0), None).unwrap();
        let mut other = cfg(0);
        other.stream_id = "tenant-globex".into();
        assert!(Ledger::new(other, Some(&l.state_bytes())).is_err());
        assert!(Ledger::new(cfg(0), Some(b"{}")).is_err());
    }

    #[test]
    fn records_read_back_what_append_wrote() {
        let mut ledger = Ledger::new(cfg(2), None).unwrap();
        let events: Vec<Vec<u8>> = (0..3).map(event).collect();
        let batch = ledger.prepare(&events, None).unwrap();
        let out = ledger.append(&batch, &[true, true, true]).unwrap();
        let metas = records(&out).unwrap();
        let types: Vec<&str> = metas.iter().map(|m| m.event_type.as_str()).collect();
        assert_eq!(
            types,
            [
                "finding.created",
                "finding.created",
                "evidence.checkpoint",
                "finding.created"
            ]
        );
        assert_eq!(
            metas.iter().map(|m| m.seq).collect::<Vec<_>>(),
            [0, 1, 2, 3]
        );
        let lines: Vec<&[u8]> = out
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        for (m, line) in metas.iter().zip(lines) {
            assert_eq!(m.line, line);
            let v = json::parse(line, 64).unwrap();
            assert_eq!(v.get("id").and_then(Value::as_str), Some(m.id.as_str()));
            assert_eq!(v.get("time").and_then(Value::as_str), Some(m.time.as_str()));
        }
        assert!(records(b"{\"seq\":1}\n").is_err());
    }

    #[test]
    fn traced_records_equal_the_records_read_back() {
        let mut ledger = Ledger::new(cfg(2), None).unwrap();
        let mut events: Vec<Vec<u8>> = (0..4).map(event).collect();
        // An id that needs escaping, a custom type without severity, a reject.
        events.push(
            br#"{"event_id":"q\"\u00e9\\","event_type":"com.example.thing.happened","created_at":"2026-05-01T10:00:00+02:00","severity":"high","tenant_id":"acme","source":"s","payload":{}}"#
                .to_vec(),
        );
        events.push(b"{".to_vec());
        let batch = ledger.prepare(&events, None).unwrap();
        let keep = [true, false, true, true, true, false];
        let (out, written) = ledger.append_traced(&batch, &keep).unwrap();
        assert_eq!(
            batch.records(&out, &written).unwrap(),
            records(&out).unwrap()
        );
        assert_eq!(written.iter().filter(|w| w.item.is_none()).count(), 2);
        // Continued on the next append: seqs go on, a checkpoint closes the window.
        let (out, written) = ledger.append_traced(&batch, &keep).unwrap();
        let metas = batch.records(&out, &written).unwrap();
        assert_eq!(metas, records(&out).unwrap());
        assert_eq!(metas[0].seq, 6);
    }
}
