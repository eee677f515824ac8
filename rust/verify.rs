//! Streaming verifier for evidence streams (DESIGN §4).
//!
//! Reads line by line under limits, checks each record (canonical bytes,
//! attributes, contenthash, seq, chain) and each checkpoint (counts, head,
//! Merkle root, signature), and reports every problem with its line, seq and
//! reason code. Follow-on noise is avoided on purpose: a deleted line is one
//! SEQ_GAP, two swapped lines one SEQ_REORDER, an edited contenthash one
//! HASH_MISMATCH.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;

use base64::Engine as _;

use crate::canon;
use crate::chain::{genesis, leaf_hash, link, MerkleAccumulator};
use crate::cloudevent::{CHECKPOINT_TYPE, TYPE_PREFIX};
use crate::digest::{parse_tagged, tagged, Digest, HashAlg};
use crate::json::{self, Value};
use crate::lines::{BatchReader, Limits};

/// Attributes left out of contenthash.
pub const UNHASHED: [&str; 6] = [
    "chainhash",
    "contenthash",
    "seq",
    "streamid",
    "traceparent",
    "tracestate",
];

#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub line: u64,
    pub seq: Option<u64>,
    pub code: &'static str,
    pub detail: String,
    pub expected: Option<String>,
    pub found: Option<String>,
}

pub struct VerifyOptions {
    pub limits: Limits,
    pub public_key: Option<ed25519_dalek::VerifyingKey>,
    pub require_sealed: bool,
    pub max_problems: usize,
    /// Keep every leaf hash and checkpoint (for inclusion proofs).
    pub collect: bool,
}

#[derive(Debug, Clone)]
pub struct CheckpointInfo {
    pub line: u64,
    pub seq: u64,
    pub last_seq: u64,
    pub merkle_root: Option<Digest>,
    /// Canonical bytes of the checkpoint payload.
    pub payload: Vec<u8>,
}

#[derive(Debug, Default)]
pub struct VerifyReport {
    pub ok: bool,
    pub lines: u64,
    pub records: u64,
    pub events: u64,
    pub checkpoints: u64,
    pub sealed: bool,
    pub stream_id: Option<String>,
    pub alg: Option<HashAlg>,
    pub head: Option<Digest>,
    pub merkle_root: Option<Digest>,
    pub signatures_verified: u64,
    pub signatures_unchecked: u64,
    pub errors: Vec<Problem>,
    pub warnings: Vec<Problem>,
    pub errors_total: u64,
    pub bytes: u64,
    pub input_sha256: Option<Digest>,
    /// Present with `collect`: leaf hashes in seq order and every checkpoint.
    pub leaves: Vec<Digest>,
    pub checkpoint_list: Vec<CheckpointInfo>,
    pub contenthashes: Vec<Digest>,
}

/// The head and Merkle root a checkpoint claims, checked once every record it covers is in.
struct SealCheck {
    line: u64,
    seq: u64,
    last_seq: u64,
    head: String,
    merkle_root: String,
}

struct Pending {
    line: u64,
    content: Digest,
    chain: Digest,
}

struct State {
    opts: VerifyOptions,
    report: VerifyReport,
    alg: HashAlg,
    stream_id: Option<String>,
    seen: Vec<u64>,
    next_seq: u64,
    /// Gaps not yet filled: start → (end exclusive, line that revealed it, seq found there).
    missing: BTreeMap<u64, (u64, u64, u64)>,
    chains: HashMap<u64, Digest>,
    pending_chain: HashMap<u64, Pending>,
    merkle: MerkleAccumulator,
    /// Records that arrived before an earlier seq: seq → contenthash.
    early_leaves: BTreeMap<u64, Digest>,
    last_checkpoint_seq: Option<u64>,
    /// Checkpoints that arrived before a record they cover: checked once it arrives.
    deferred: BTreeMap<u64, SealCheck>,
    /// Highest seq covered by a checkpoint so far.
    max_sealed: Option<u64>,
    /// Event records not (yet) covered by a checkpoint: seq → line.
    unsealed: BTreeMap<u64, u64>,
    /// Seq of the checkpoint whose Merkle root was last confirmed.
    confirmed_root_seq: Option<u64>,
}

const EARLY_LEAF_CAP: usize = 1 << 20;

impl State {
    fn problem(
        &mut self,
        line: u64,
        seq: Option<u64>,
        code: &'static str,
        detail: String,
        expected: Option<String>,
        found: Option<String>,
    ) {
        self.report.errors_total += 1;
        if self.report.errors.len() < self.opts.max_problems {
            self.report.errors.push(Problem {
                line,
                seq,
                code,
                detail,
                expected,
                found,
            });
        }
    }

    fn seen(&self, s: u64) -> bool {
        self.seen
            .get((s / 64) as usize)
            .is_some_and(|w| w & (1 << (s % 64)) != 0)
    }

    fn mark(&mut self, s: u64) {
        let i = (s / 64) as usize;
        if self.seen.len() <= i {
            self.seen.resize(i + 1, 0);
        }
        self.seen[i] |= 1 << (s % 64);
    }

    fn check_chain(
        &mut self,
        line: u64,
        seq: u64,
        claimed_content: &Digest,
        computed_content: &Digest,
        chain: &Digest,
    ) -> Option<Digest> {
        let prev = if seq == 0 {
            Some(genesis(self.alg, self.stream_id.as_deref().unwrap_or("")))
        } else {
            self.chains.get(&(seq - 1)).copied()
        };
        let Some(prev) = prev else {
            self.pending_chain.insert(
                seq,
                Pending {
                    line,
                    content: *claimed_content,
                    chain: *chain,
                },
            );
            return Some(*claimed_content);
        };
        let expect = link(self.alg, &prev, claimed_content, seq);
        if &expect == chain {
            return Some(*claimed_content);
        }
        // The contenthash attribute itself was edited: the chain still matches the real content.
        if claimed_content != computed_content
            && &link(self.alg, &prev, computed_content, seq) == chain
        {
            return Some(*computed_content);
        }
        self.problem(
            line,
            Some(seq),
            "CHAIN_MISMATCH",
            "chainhash does not follow from the previous record".into(),
            Some(tagged(self.alg, &expect)),
            Some(tagged(self.alg, chain)),
        );
        None
    }

    fn push_leaf(&mut self, seq: u64, content: &Digest) {
        if seq > self.merkle.size() {
            if self.early_leaves.len() < EARLY_LEAF_CAP {
                self.early_leaves.insert(seq, *content);
            }
            return;
        }
        if seq < self.merkle.size() {
            return;
        }
        let mut next = Some(*content);
        while let Some(c) = next {
            if let Some(check) = self.deferred.remove(&self.merkle.size()) {
                self.seal_check(check);
            }
            let leaf = leaf_hash(self.alg, &c);
            self.merkle.push_leaf_hash(leaf);
            if self.opts.collect {
                self.report.leaves.push(leaf);
                self.report.contenthashes.push(c);
            }
            next = self.early_leaves.remove(&self.merkle.size());
        }
    }

    fn record(&mut self, line: u64, v: &Value<'_>, raw: &[u8]) {
        let canonical = canon::to_vec(v);
        if canonical != raw {
            self.problem(
                line,
                None,
                "NOT_CANONICAL",
                "line is not the RFC 8785 canonical form of its JSON".into(),
                None,
                None,
            );
        }
        let Value::Object(members) = v else {
            self.problem(
                line,
                None,
                "MISSING_ATTRIBUTE",
                format!("a record must be a JSON object, got {}", v.type_name()),
                None,
                None,
            );
            return;
        };
        macro_rules! attr {
            ($name:literal) => {
                match v.get($name).and_then(Value::as_str) {
                    Some(s) if !s.is_empty() => s,
                    _ => {
                        self.problem(
                            line,
                            None,
                            "MISSING_ATTRIBUTE",
                            format!("'{}' is missing or not a non-empty string", $name),
                            None,
                            None,
                        );
                        return;
                    }
                }
            };
        }
        let specversion = attr!("specversion");
        let _id = attr!("id");
        let _source = attr!("source");
        let typ = attr!("type");
        let streamid = attr!("streamid");
        let ch_s = attr!("contenthash");
        let chain_s = attr!("chainhash");
        if specversion != "1.0" {
            self.problem(
                line,
                None,
                "MISSING_ATTRIBUTE",
                "specversion must be \"1.0\"".into(),
                Some("1.0".into()),
                Some(specversion.into()),
            );
            return;
        }
        let seq = match v.get("seq") {
            Some(Value::Number(n)) if n.fract() == 0.0 && *n >= 0.0 && *n < 9.0e15 => *n as u64,
            _ => {
                self.problem(
                    line,
                    None,
                    "MISSING_ATTRIBUTE",
                    "'seq' is missing or not a non-negative integer".into(),
                    None,
                    None,
                );
                return;
            }
        };
        let (Some((alg_c, claimed)), Some((alg_h, chain))) =
            (parse_tagged(ch_s), parse_tagged(chain_s))
        else {
            self.problem(
                line,
                Some(seq),
                "MISSING_ATTRIBUTE",
                "contenthash and chainhash must be '<sha256|blake3>:<64 lowercase hex>'".into(),
                None,
                Some(format!("{ch_s} / {chain_s}")),
            );
            return;
        };
        match &self.stream_id {
            None => {
                self.stream_id = Some(streamid.to_string());
                self.alg = alg_c;
                self.report.alg = Some(alg_c);
            }
            Some(s) if s != streamid => {
                self.problem(
                    line,
                    Some(seq),
                    "STREAM_MIXED",
                    "record belongs to another stream".into(),
                    Some(s.clone()),
                    Some(streamid.into()),
                );
                return;
            }
            Some(_) => {}
        }
        if alg_c != self.alg || alg_h != self.alg {
            self.problem(
                line,
                Some(seq),
                "HASH_MISMATCH",
                "hash algorithm differs from the rest of the stream".into(),
                Some(self.alg.name().into()),
                Some(format!("{} / {}", alg_c.name(), alg_h.name())),
            );
            return;
        }
        if seq >= self.opts.limits.max_records {
            self.problem(
                line,
                Some(seq),
                "LIMIT_EXCEEDED",
                format!(
                    "seq is beyond the {} record limit",
                    self.opts.limits.max_records
                ),
                None,
                None,
            );
            return;
        }

        // contenthash over the record minus the unhashed attributes.
        let kept: Vec<(std::borrow::Cow<'_, str>, Value<'_>)> = members
            .iter()
            .filter(|(k, _)| !UNHASHED.contains(&k.as_ref()))
            .cloned()
            .collect();
        let computed = self.alg.hash(&canon::to_vec(&Value::Object(kept)));
        if computed != claimed {
            self.problem(
                line,
                Some(seq),
                "HASH_MISMATCH",
                "contenthash does not match the record's content".into(),
                Some(tagged(self.alg, &computed)),
                Some(ch_s.into()),
            );
        }

        // Sequence.
        if self.seen(seq) {
            self.problem(
                line,
                Some(seq),
                "SEQ_DUPLICATE",
                format!("seq {seq} appears more than once"),
                Some(self.next_seq.to_string()),
                Some(seq.to_string()),
            );
            return;
        }
        self.mark(seq);
        self.report.records += 1;
        if seq > self.next_seq {
            self.missing.insert(self.next_seq, (seq, line, seq));
            self.next_seq = seq + 1;
        } else if seq < self.next_seq {
            self.problem(
                line,
                Some(seq),
                "SEQ_REORDER",
                format!("seq {seq} arrives after seq {}", self.next_seq - 1),
                None,
                Some(seq.to_string()),
            );
            self.fill_missing(seq);
        } else {
            self.next_seq = seq + 1;
        }

        // Chain, then any record that was waiting for this one.
        let effective = self
            .check_chain(line, seq, &claimed, &computed, &chain)
            .unwrap_or(claimed);
        self.chains.insert(seq, chain);
        if let Some(p) = self.pending_chain.remove(&(seq + 1)) {
            self.check_chain(p.line, seq + 1, &p.content, &p.content, &p.chain);
        }
        if self.chains.len() > 8192 {
            let floor = self.next_seq.saturating_sub(4096);
            self.chains.retain(|s, _| *s >= floor);
        }
        self.report.head = Some(chain);

        let is_checkpoint = typ.strip_prefix(TYPE_PREFIX) == Some(CHECKPOINT_TYPE);
        if is_checkpoint {
            self.checkpoint(line, seq, v);
            self.report.checkpoints += 1;
            if seq > 0 && self.max_sealed.is_none_or(|m| seq - 1 > m) {
                self.max_sealed = Some(seq - 1);
                self.unsealed = self.unsealed.split_off(&seq);
            }
        } else {
            self.report.events += 1;
            if self.max_sealed.is_none_or(|m| seq > m) {
                self.unsealed.insert(seq, line);
            }
        }
        self.push_leaf(seq, &effective);
    }

    fn fill_missing(&mut self, seq: u64) {
        let Some((&start, &(end, line, found))) = self.missing.range(..=seq).next_back() else {
            return;
        };
        if seq >= end {
            return;
        }
        self.missing.remove(&start);
        if start < seq {
            self.missing.insert(start, (seq, line, found));
        }
        if seq + 1 < end {
            self.missing.insert(seq + 1, (end, line, found));
        }
    }

    fn checkpoint(&mut self, line: u64, seq: u64, v: &Value<'_>) {
        let Some(payload @ Value::Object(pm)) = v.get("data").and_then(|d| d.get("payload")) else {
            self.problem(
                line,
                Some(seq),
                "CHECKPOINT_MISMATCH",
                "checkpoint has no data.payload object".into(),
                None,
                None,
            );
            return;
        };
        let int = |k: &str| match payload.get(k) {
            Some(Value::Number(n)) if n.fract() == 0.0 && *n >= 0.0 => Some(*n as u64),
            _ => None,
        };
        let text = |k: &str| payload.get(k).and_then(Value::as_str);
        let mismatch = |st: &mut State, what: &str, expected: String, found: String| {
            st.problem(
                line,
                Some(seq),
                "CHECKPOINT_MISMATCH",
                format!("checkpoint {what} is wrong"),
                Some(expected),
                Some(found),
            );
        };
        let expected_first = self.last_checkpoint_seq.map_or(0, |s| s + 1);
        let (Some(first_seq), Some(last_seq), Some(count)) =
            (int("first_seq"), int("last_seq"), int("count"))
        else {
            mismatch(
                self,
                "payload",
                "first_seq, last_seq, count as integers".into(),
                "missing".into(),
            );
            return;
        };
        if seq == 0 || last_seq != seq - 1 {
            mismatch(
                self,
                "last_seq",
                seq.saturating_sub(1).to_string(),
                last_seq.to_string(),
            );
        }
        if first_seq != expected_first {
            mismatch(
                self,
                "first_seq",
                expected_first.to_string(),
                first_seq.to_string(),
            );
        }
        if count != seq.saturating_sub(expected_first) {
            mismatch(
                self,
                "count",
                seq.saturating_sub(expected_first).to_string(),
                count.to_string(),
            );
        }
        if text("stream_id") != self.stream_id.as_deref() {
            mismatch(
                self,
                "stream_id",
                self.stream_id.clone().unwrap_or_default(),
                text("stream_id").unwrap_or("").into(),
            );
        }
        let claimed_root = text("merkle_root").and_then(parse_tagged).map(|x| x.1);
        let check = SealCheck {
            line,
            seq,
            last_seq,
            head: text("head").unwrap_or("").to_string(),
            merkle_root: text("merkle_root").unwrap_or("").to_string(),
        };
        // Checkable once every record it covers is in; a record still missing
        // then is a gap, reported on its own.
        if self.merkle.size() == seq {
            self.seal_check(check);
        } else if self.merkle.size() < seq {
            self.deferred.insert(seq, check);
        }
        match (&self.opts.public_key, text("signature")) {
            (Some(key), Some(sig_b64)) => {
                let unsigned: Vec<_> = pm
                    .iter()
                    .filter(|(k, _)| k != "signature")
                    .cloned()
                    .collect();
                let msg = canon::to_vec(&Value::Object(unsigned));
                let sig = base64::engine::general_purpose::STANDARD
                    .decode(sig_b64)
                    .ok()
                    .and_then(|b| ed25519_dalek::Signature::from_slice(&b).ok());
                match sig {
                    Some(sig) if key.verify_strict(&msg, &sig).is_ok() => self.report.signatures_verified += 1,
                    _ => self.problem(line, Some(seq), "SIGNATURE_INVALID", format!("checkpoint signature does not verify with the given public key (key_id {:?})", text("key_id").unwrap_or("")), None, Some(sig_b64.into())),
                }
            }
            (Some(_), None) => self.problem(
                line,
                Some(seq),
                "SIGNATURE_INVALID",
                "checkpoint is not signed but a public key was given".into(),
                None,
                None,
            ),
            (None, Some(_)) => self.report.signatures_unchecked += 1,
            (None, None) => {}
        }
        if self.opts.collect {
            self.report.checkpoint_list.push(CheckpointInfo {
                line,
                seq,
                last_seq,
                merkle_root: claimed_root,
                payload: canon::to_vec(payload),
            });
        }
        self.last_checkpoint_seq = Some(seq);
    }

    fn seal_check(&mut self, c: SealCheck) {
        let alg = self.alg;
        if let Some(head) = self.chains.get(&c.last_seq).copied() {
            if parse_tagged(&c.head) != Some((alg, head)) {
                self.problem(
                    c.line,
                    Some(c.seq),
                    "CHECKPOINT_MISMATCH",
                    "checkpoint head is wrong".into(),
                    Some(tagged(alg, &head)),
                    Some(c.head.clone()),
                );
            }
        }
        let root = self.merkle.root();
        if parse_tagged(&c.merkle_root) != Some((alg, root)) {
            self.problem(
                c.line,
                Some(c.seq),
                "CHECKPOINT_MISMATCH",
                "checkpoint merkle_root is wrong".into(),
                Some(tagged(alg, &root)),
                Some(c.merkle_root),
            );
        } else if self.confirmed_root_seq.is_none_or(|s| c.seq > s) {
            self.confirmed_root_seq = Some(c.seq);
            self.report.merkle_root = Some(root);
        }
    }

    fn finish(mut self, bytes: u64, digest: Option<Digest>) -> VerifyReport {
        for (start, (end, line, found)) in std::mem::take(&mut self.missing) {
            let what = if end - start == 1 {
                format!("seq {start} is missing")
            } else {
                format!("seqs {start}..{} are missing", end - 1)
            };
            self.problem(
                line,
                Some(found),
                "SEQ_GAP",
                what,
                Some(start.to_string()),
                Some(found.to_string()),
            );
        }
        if let Some((&seq, &line)) = self.unsealed.first_key_value() {
            let p = Problem {
                line,
                seq: Some(seq),
                code: "UNSEALED_TAIL",
                detail: format!(
                    "{} record(s) are not covered by any checkpoint",
                    self.unsealed.len()
                ),
                expected: None,
                found: None,
            };
            if self.opts.require_sealed {
                self.report.errors_total += 1;
                self.report.errors.push(p);
            } else {
                self.report.warnings.push(p);
            }
        } else if self.report.records == 0 && self.opts.require_sealed {
            self.problem(
                0,
                None,
                "UNSEALED_TAIL",
                "input holds no records, so nothing is sealed".into(),
                None,
                None,
            );
        }
        self.report.errors.sort_by_key(|p| (p.line, p.code));
        self.report.sealed = self.report.records > 0 && self.unsealed.is_empty();
        self.report.stream_id = self.stream_id;
        self.report.bytes = bytes;
        self.report.input_sha256 = digest;
        self.report.ok = self.report.errors_total == 0;
        self.report
    }
}

pub fn verify<R: Read>(input: R, opts: VerifyOptions) -> std::io::Result<VerifyReport> {
    let limits = opts.limits;
    let mut reader = BatchReader::new(input, limits, Some(HashAlg::Sha256.hasher()));
    let alg = HashAlg::Sha256;
    let mut st = State {
        opts,
        report: VerifyReport::default(),
        alg,
        stream_id: None,
        seen: Vec::new(),
        next_seq: 0,
        missing: BTreeMap::new(),
        chains: HashMap::new(),
        pending_chain: HashMap::new(),
        merkle: MerkleAccumulator::new(alg),
        early_leaves: BTreeMap::new(),
        last_checkpoint_seq: None,
        deferred: BTreeMap::new(),
        max_sealed: None,
        unsealed: BTreeMap::new(),
        confirmed_root_seq: None,
    };
    'outer: while let Some(batch) = reader.next_batch()? {
        for l in &batch.lines {
            st.report.lines += 1;
            if st.report.lines > limits.max_records {
                st.problem(
                    l.number,
                    None,
                    "LIMIT_EXCEEDED",
                    format!("more than {} lines; stopped reading", limits.max_records),
                    None,
                    None,
                );
                break 'outer;
            }
            let raw = batch.line(l);
            if let Some(total) = l.overlong {
                st.problem(
                    l.number,
                    None,
                    "LIMIT_EXCEEDED",
                    format!(
                        "line is {total} bytes, over the {} byte limit",
                        limits.max_line_bytes
                    ),
                    None,
                    None,
                );
                continue;
            }
            match json::parse(raw, limits.max_depth) {
                Ok(v) => {
                    if st.report.records == 0 && st.stream_id.is_none() {
                        // The first record fixes the algorithm for the Merkle tree.
                        if let Some(alg) = v
                            .get("contenthash")
                            .and_then(Value::as_str)
                            .and_then(parse_tagged)
                            .map(|x| x.0)
                        {
                            st.merkle = MerkleAccumulator::new(alg);
                        }
                    }
                    st.record(l.number, &v, raw)
                }
                Err(e) if e.is_limit() => {
                    st.problem(l.number, None, "LIMIT_EXCEEDED", e.to_string(), None, None)
                }
                Err(_) if raw.is_empty() => st.problem(
                    l.number,
                    None,
                    "MALFORMED_JSON",
                    "empty line".into(),
                    None,
                    None,
                ),
                Err(e) => st.problem(l.number, None, "MALFORMED_JSON", e.to_string(), None, None),
            }
        }
    }
    let bytes = reader.bytes_read;
    let digest = reader.take_digest();
    Ok(st.finish(bytes, digest))
}
