//! Deterministic mapping of a native posture event to a CloudEvent (DESIGN §4).
//!
//! The CloudEvent is written straight to canonical (RFC 8785) bytes: its
//! top-level names are a fixed set, so they are emitted in their JCS order by
//! hand. The bytes exclude the chain attributes (`chainhash`, `contenthash`,
//! `seq`, `streamid`); the writer splices those in at the recorded offsets,
//! which keeps the result canonical (a test checks it).

use std::borrow::Cow;

use crate::canon::{write_plain_string, write_string, write_value};
use crate::digest::{push_hex, sha1_pair, sha1_parts, sha256_pair, Digest, HashAlg, HEX};
use crate::json::{cmp_utf16, Value};
use crate::time::normalize_rfc3339_cow;

pub const TYPE_PREFIX: &str = "io.agentbom.";
pub const CHECKPOINT_TYPE: &str = "evidence.checkpoint";

/// Event types of the registry (DESIGN §3); they map to `io.agentbom.<type>`.
pub const REGISTRY_TYPES: [&str; 15] = [
    "finding.created",
    "finding.updated",
    "exposure_path.created",
    "skill.verdict",
    "deploy.decision",
    "runtime.policy_decision",
    "audit.integrity",
    "runtime.exec",
    "runtime.fs",
    "runtime.net",
    "runtime.syscall",
    "security.alert.created",
    "evidence.checkpoint",
    "delivery.dead_lettered",
    "delivery.recovered",
];

const SEVERITIES: [&str; 5] = ["info", "low", "medium", "high", "critical"];

/// uuid5(NAMESPACE_URL, "urn:agent-bom:event-id:v1")
pub const EVENT_ID_NAMESPACE: [u8; 16] = [
    133, 237, 58, 190, 185, 220, 86, 238, 147, 85, 51, 57, 125, 231, 8, 159,
];

/// Why a native event could not be mapped: the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapError {
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for MapError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "field '{}': {}", self.field, self.message)
        }
    }
}

fn err(field: &str, message: impl Into<String>) -> MapError {
    MapError {
        field: field.to_string(),
        message: message.into(),
    }
}

/// RFC 3986 `URI-reference` (CloudEvents `source`), ASCII only, from the RFC's ABNF:
/// a URI (scheme ":" hier-part) or a relative reference (whose first path segment has
/// no ":"), then an optional query and fragment. One pattern, also the Python
/// contract's (`_core.URI_REFERENCE`), so both accept the same strings.
pub static URI_REFERENCE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let pct = "%[0-9A-Fa-f]{2}";
    let unreserved_sub = "-A-Za-z0-9._~!$&'()*+,;="; // '-' first: a literal
    let pchar = format!("(?:[{unreserved_sub}:@]|{pct})");
    let pchar_nc = format!("(?:[{unreserved_sub}@]|{pct})"); // no ':'
    let h16 = "[0-9A-Fa-f]{1,4}";
    let octet = "(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])";
    let ls32 = format!("(?:{h16}:{h16}|(?:{octet}\\.){{3}}{octet})");
    let ipv6 = [
        format!("(?:{h16}:){{6}}{ls32}"),
        format!("::(?:{h16}:){{5}}{ls32}"),
        format!("(?:{h16})?::(?:{h16}:){{4}}{ls32}"),
        format!("(?:(?:{h16}:){{0,1}}{h16})?::(?:{h16}:){{3}}{ls32}"),
        format!("(?:(?:{h16}:){{0,2}}{h16})?::(?:{h16}:){{2}}{ls32}"),
        format!("(?:(?:{h16}:){{0,3}}{h16})?::{h16}:{ls32}"),
        format!("(?:(?:{h16}:){{0,4}}{h16})?::{ls32}"),
        format!("(?:(?:{h16}:){{0,5}}{h16})?::{h16}"),
        format!("(?:(?:{h16}:){{0,6}}{h16})?::"),
    ]
    .join("|");
    let ip_literal = format!("\\[(?:{ipv6}|v[0-9A-Fa-f]+\\.[{unreserved_sub}:]+)\\]");
    let reg_name = format!("(?:[{unreserved_sub}]|{pct})*");
    let userinfo = format!("(?:(?:[{unreserved_sub}:]|{pct})*@)?");
    let authority = format!("{userinfo}(?:{ip_literal}|{reg_name})(?::[0-9]*)?");
    let segments = format!("(?:/{pchar}*)*");
    let scheme = "[A-Za-z][A-Za-z0-9+.-]*:";
    let rest = format!("(?:[{unreserved_sub}:@/?]|{pct})*"); // query, fragment
    format!(
        "^(?:(?:{scheme})?//{authority}{segments}\
         |{scheme}/?(?:{pchar}+{segments})?\
         |/(?:{pchar}+{segments})?\
         |{pchar_nc}+{segments}\
         |)(?:\\?{rest})?(?:#{rest})?$"
    )
});

/// Whether `s` is a URI-reference (see `URI_REFERENCE`); `Err` names the problem.
#[inline(never)]
pub fn check_uri_reference(s: &str) -> Result<(), String> {
    static RE: std::sync::LazyLock<regex::Regex> =
        std::sync::LazyLock::new(|| regex::Regex::new(&URI_REFERENCE).expect("URI_REFERENCE"));
    // A stream's events come from a few sources: the last ones found good are
    // remembered per thread (measured: 216,000 → 220,000 events/s on one thread).
    thread_local! {
        static GOOD: std::cell::RefCell<([String; 8], usize)> = Default::default();
    }
    if GOOD.with(|g| g.borrow().0.iter().any(|k| k == s && !k.is_empty())) {
        return Ok(());
    }
    if RE.is_match(s) {
        GOOD.with(|g| {
            let (keys, next) = &mut *g.borrow_mut();
            keys[*next] = s.to_owned();
            *next = (*next + 1) % keys.len();
        });
        return Ok(());
    }
    Err(uri_reference_problem(s))
}

#[cold]
fn uri_reference_problem(s: &str) -> String {
    let why = if s.contains("[REDACTED:") {
        // Redaction runs first, so that no secret reaches a hash; its marker is no URI.
        "it held a secret, now redacted ([REDACTED:…] is not URI syntax); \
         keep credentials and addresses out of source"
            .to_string()
    } else if let Some(c) = s.chars().find(|c| !c.is_ascii() || c.is_ascii_control()) {
        format!("{c:?} must be percent-encoded")
    } else if let Some(c) = s.chars().find(|c| " \"<>\\^`{|}".contains(*c)) {
        format!("{c:?} must be percent-encoded")
    } else {
        "its syntax is not RFC 3986's (a scheme such as urn: or https:, or a relative \
         reference whose first segment has no ':'; '%' starts a %XX escape; one '#')"
            .to_string()
    };
    format!("is not a URI-reference: {why}, e.g. urn:agent-bom:collector:name")
}

pub struct MapOptions<'o> {
    pub default_tenant: Option<&'o str>,
    pub default_source: Option<&'o str>,
    pub alg: HashAlg,
}

/// A mapped event: canonical CloudEvent bytes minus the chain attributes.
pub struct Mapped {
    pub content: Vec<u8>,
    /// Offset in `content` where `"seq":N,` belongs.
    pub seq_at: usize,
    /// Offset in `content` where `"streamid":"…",` belongs.
    pub stream_at: usize,
    pub contenthash: Digest,
    pub time: String,
    pub tenant: String,
}

/// A mapped event written into a shared buffer: absolute offsets into it.
#[derive(Debug, Clone, Copy, Default)]
pub struct MappedAt {
    pub start: usize,
    pub end: usize,
    pub seq_at: usize,
    pub stream_at: usize,
    pub contenthash: Digest,
    /// The normalized time and the tenant id, as raw ASCII bytes inside the content.
    pub time: (usize, usize),
    pub tenant: (usize, usize),
    /// The CloudEvent `id` as a JSON string (quotes included).
    pub id: (usize, usize),
    /// `data.event_type` and the `severity` attribute, as raw ASCII bytes inside the
    /// content: what the ingest store indexes, read without parsing the record again.
    pub event_type: (usize, usize),
    pub severity: Option<(usize, usize)>,
}

/// Reusable per-worker buffers for `map_event_into`.
#[derive(Default)]
pub struct Scratch {
    vals: Vec<u8>,
    spans: Vec<(usize, usize)>,
}

pub fn is_registry_type(t: &str) -> bool {
    REGISTRY_TYPES.contains(&t)
}

/// Custom event types are reverse-DNS names with at least three labels.
pub fn is_reverse_dns(t: &str) -> bool {
    let labels: Vec<&str> = t.split('.').collect();
    labels.len() >= 3
        && labels[0]
            .bytes()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase())
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'_')
        })
}

/// W3C Trace Context `traceparent`: version-traceid-parentid-flags in lowercase
/// hex; version ff and all-zero ids are invalid.
pub fn is_traceparent(t: &str) -> bool {
    let parts: Vec<&str> = t.split('-').collect();
    let hex = |p: &str, n: usize| {
        p.len() == n
            && p.bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
    };
    parts.len() == 4
        && hex(parts[0], 2)
        && parts[0] != "ff"
        && hex(parts[1], 32)
        && parts[1].bytes().any(|c| c != b'0')
        && hex(parts[2], 16)
        && parts[2].bytes().any(|c| c != b'0')
        && hex(parts[3], 2)
}

pub fn is_valid_tenant(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

/// RFC 4122 version 5 UUID (SHA-1, name-based), lowercase hyphenated.
pub fn uuid5(namespace: &[u8; 16], name: &[u8]) -> String {
    let text = uuid5_text(&sha1_parts(&[namespace, name]));
    // Only ASCII hex digits and hyphens were written.
    String::from_utf8(text.to_vec()).unwrap_or_default()
}

/// The version 5 UUID text of a SHA-1 digest of namespace ‖ name.
fn uuid5_text(sha1: &[u8; 20]) -> [u8; 36] {
    let mut u = [0u8; 16];
    u.copy_from_slice(&sha1[..16]);
    u[6] = (u[6] & 0x0f) | 0x50;
    u[8] = (u[8] & 0x3f) | 0x80;
    let mut out = [0u8; 36];
    let mut at = 0;
    for (i, b) in u.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out[at] = b'-';
            at += 1;
        }
        out[at] = HEX[usize::from(b >> 4)];
        out[at + 1] = HEX[usize::from(b & 0xf)];
        at += 2;
    }
    out
}

/// The fields of the envelope (DESIGN §3) picked out of a native event.
#[derive(Default)]
struct Fields<'v, 'a> {
    event_id: Option<&'v str>,
    tenant_id: Option<&'v str>,
    event_type: Option<&'v str>,
    created_at: Option<&'v str>,
    source: Option<&'v str>,
    severity: Option<&'v str>,
    risk_score: Option<&'v Value<'a>>,
    entity_refs: Option<&'v Value<'a>>,
    exposure_path_id: Option<&'v str>,
    payload: Option<&'v [(Cow<'a, str>, Value<'a>)]>,
    ocsf: Option<&'v Value<'a>>,
    audit_ref: Option<&'v Value<'a>>,
    correlation_id: Option<&'v str>,
    causation_id: Option<&'v str>,
    traceparent: Option<&'v str>,
    tracestate: Option<&'v str>,
    /// Unknown top-level members: they move into `payload`.
    extra: Vec<&'v (Cow<'a, str>, Value<'a>)>,
}

fn opt_str<'v>(field: &str, v: &'v Value<'_>, max: usize) -> Result<&'v str, MapError> {
    match v {
        // Characters, as the Python contract counts them (bytes only bound them).
        Value::String(s) if !s.is_empty() && (s.len() <= max || s.chars().count() <= max) => Ok(s),
        Value::String(s) if s.is_empty() => Err(err(field, "must not be empty")),
        Value::String(_) => Err(err(field, format!("is longer than {max} characters"))),
        other => Err(err(
            field,
            format!("must be a string, got {}", other.type_name()),
        )),
    }
}

fn pick<'v, 'a>(members: &'v [(Cow<'a, str>, Value<'a>)]) -> Result<Fields<'v, 'a>, MapError> {
    let mut f = Fields::default();
    for m in members {
        let (k, v) = (m.0.as_ref(), &m.1);
        match k {
            "event_id" => f.event_id = Some(opt_str(k, v, 256)?),
            "tenant_id" => f.tenant_id = Some(opt_str(k, v, 128)?),
            "event_type" => f.event_type = Some(opt_str(k, v, 255)?),
            "created_at" => f.created_at = Some(opt_str(k, v, 64)?),
            "source" => f.source = Some(opt_str(k, v, 2048)?),
            "severity" => f.severity = Some(opt_str(k, v, 16)?),
            "risk_score" => f.risk_score = Some(v),
            "entity_refs" => f.entity_refs = Some(v),
            "exposure_path_id" => f.exposure_path_id = Some(opt_str(k, v, 256)?),
            "payload" => match v {
                Value::Object(p) => f.payload = Some(p),
                other => {
                    return Err(err(
                        k,
                        format!("must be an object, got {}", other.type_name()),
                    ))
                }
            },
            "ocsf" => f.ocsf = Some(v),
            "audit_ref" => f.audit_ref = Some(v),
            "schema_version" => {
                if v.as_str() != Some("1") {
                    return Err(err(
                        k,
                        "must be \"1\" (the only envelope version this build knows)",
                    ));
                }
            }
            "correlation_id" => f.correlation_id = Some(opt_str(k, v, 256)?),
            "causation_id" => f.causation_id = Some(opt_str(k, v, 256)?),
            "traceparent" => {
                let t = opt_str(k, v, 55)?;
                if !is_traceparent(t) {
                    return Err(err(
                        k,
                        format!("{t:?} is not a W3C traceparent (00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>)"),
                    ));
                }
                f.traceparent = Some(t);
            }
            "tracestate" => f.tracestate = Some(opt_str(k, v, 512)?),
            _ => f.extra.push(m),
        }
    }
    Ok(f)
}

/// Writes `,"key":` for one of the envelope's own (literal) member names.
fn write_member(out: &mut Vec<u8>, first: &mut bool, key: &'static str) {
    if !*first {
        out.push(b',');
    }
    *first = false;
    write_plain_string(out, key);
    out.push(b':');
}

/// Writes `{k:v,...}` for references to members, in JCS order.
fn write_refs_object(out: &mut Vec<u8>, refs: &mut [(&str, &Value<'_>)]) {
    refs.sort_unstable_by(|a, b| cmp_utf16(a.0, b.0));
    out.push(b'{');
    let mut first = true;
    for (k, v) in refs.iter() {
        if !first {
            out.push(b',');
        }
        first = false;
        write_string(out, k);
        out.push(b':');
        write_value(out, v);
    }
    out.push(b'}');
}

/// Maps one native event (already redacted) to canonical CloudEvent bytes.
/// `redactions` is the count the redaction stage reported for this event.
pub fn map_event(
    native: &Value<'_>,
    redactions: u64,
    opts: &MapOptions<'_>,
) -> Result<Mapped, MapError> {
    let mut out = Vec::with_capacity(1024);
    let m = map_event_into(native, redactions, opts, &mut Scratch::default(), &mut out)?;
    let text = |(a, b): (usize, usize)| String::from_utf8_lossy(&out[a..b]).into_owned();
    Ok(Mapped {
        seq_at: m.seq_at - m.start,
        stream_at: m.stream_at - m.start,
        contenthash: m.contenthash,
        time: text(m.time),
        tenant: text(m.tenant),
        content: out[m.start..m.end].to_vec(),
    })
}

/// Maps one native event, appending its canonical bytes to `out`.
pub fn map_event_into(
    native: &Value<'_>,
    redactions: u64,
    opts: &MapOptions<'_>,
    scratch: &mut Scratch,
    out: &mut Vec<u8>,
) -> Result<MappedAt, MapError> {
    let u = map_event_unhashed(native, redactions, opts, scratch, out)?;
    Ok(u.hash(opts.alg, scratch, out))
}

/// A mapped event whose hashes are still to compute: a derived event id (a
/// placeholder in the output until then) and the content hash. Mapping and
/// hashing are apart so that a batch can hash two events at once (`hash_pair`).
#[must_use = "an event's id and content hash are only set by hashing it"]
pub(crate) struct Unhashed {
    at: MappedAt,
    /// The length of the native event's JCS in the scratch it was mapped
    /// with: checks that the same scratch, unchanged, is given to hash it.
    name_len: usize,
    /// Where the two copies of a derived id sit in the output (36 bytes each).
    derived_id: Option<[usize; 2]>,
    /// The trace context, which the content hash leaves out.
    trace: (usize, usize),
}

impl Unhashed {
    /// The name a derived id is the UUID of: the native event's JCS, which
    /// `scratch` holds until it maps another event.
    fn id_name<'s>(&self, scratch: &'s Scratch) -> [&'s [u8]; 2] {
        debug_assert_eq!(scratch.vals.len(), self.name_len, "not the event's scratch");
        [&EVENT_ID_NAMESPACE, &scratch.vals]
    }

    fn set_id(&self, out: &mut [u8], sha1: &[u8; 20]) {
        let text = uuid5_text(sha1);
        for at in self.derived_id.into_iter().flatten() {
            out[at..at + text.len()].copy_from_slice(&text);
        }
    }

    fn content<'o>(&self, out: &'o [u8]) -> [&'o [u8]; 2] {
        [
            &out[self.at.start..self.trace.0],
            &out[self.trace.1..self.at.end],
        ]
    }

    /// Fills in a derived id alone (none to fill for a given one).
    fn derive_id(&self, scratch: &Scratch, out: &mut [u8]) {
        if self.derived_id.is_some() {
            self.set_id(out, &sha1_parts(&self.id_name(scratch)));
        }
    }

    /// Computes the hashes; `scratch` is the one the event was mapped with.
    pub(crate) fn hash(mut self, alg: HashAlg, scratch: &Scratch, out: &mut [u8]) -> MappedAt {
        self.derive_id(scratch, out);
        self.at.contenthash = alg.hash_parts(&self.content(out));
        self.at
    }
}

/// `Unhashed::hash` for two events mapped into the same `out`, each with its
/// own scratch: their SHA-1 and SHA-256 digests are computed together.
pub(crate) fn hash_pair(
    alg: HashAlg,
    (mut a, sa): (Unhashed, &Scratch),
    (mut b, sb): (Unhashed, &Scratch),
    out: &mut [u8],
) -> (MappedAt, MappedAt) {
    if a.derived_id.is_some() && b.derived_id.is_some() {
        let (da, db) = sha1_pair(&a.id_name(sa), &b.id_name(sb));
        a.set_id(out, &da);
        b.set_id(out, &db);
    } else {
        a.derive_id(sa, out);
        b.derive_id(sb, out);
    }
    (a.at.contenthash, b.at.contenthash) = match alg {
        HashAlg::Sha256 => sha256_pair(&a.content(out), &b.content(out)),
        _ => (
            alg.hash_parts(&a.content(out)),
            alg.hash_parts(&b.content(out)),
        ),
    };
    (a.at, b.at)
}

/// Maps one native event, appending its canonical bytes to `out`; the caller hashes it.
pub(crate) fn map_event_unhashed(
    native: &Value<'_>,
    redactions: u64,
    opts: &MapOptions<'_>,
    scratch: &mut Scratch,
    out: &mut Vec<u8>,
) -> Result<Unhashed, MapError> {
    let Value::Object(members) = native else {
        return Err(err(
            "",
            format!(
                "each line must be a JSON object, got {}",
                native.type_name()
            ),
        ));
    };
    let f = pick(members)?;

    let tenant = f.tenant_id.or(opts.default_tenant).ok_or_else(|| {
        err(
            "tenant_id",
            "is required (set it on the event or pass --tenant-id)",
        )
    })?;
    if !is_valid_tenant(tenant) {
        return Err(err(
            "tenant_id",
            format!("{tenant:?} must match ^[A-Za-z0-9][A-Za-z0-9._-]{{0,127}}$"),
        ));
    }
    let event_type = f
        .event_type
        .ok_or_else(|| err("event_type", "is required"))?;
    let registry = is_registry_type(event_type);
    if !registry && (!is_reverse_dns(event_type) || event_type.starts_with(TYPE_PREFIX)) {
        return Err(err(
            "event_type",
            format!(
                "{event_type:?} is neither a registry type (finding.created, runtime.exec, …) \
                 nor a reverse-DNS custom type like com.example.thing.happened \
                 (io.agentbom.* is reserved)"
            ),
        ));
    }
    let created_raw = f.created_at.ok_or_else(|| {
        err(
            "created_at",
            "is required (RFC 3339, e.g. 2026-05-01T12:00:00Z)",
        )
    })?;
    let time = normalize_rfc3339_cow(created_raw).map_err(|m| err("created_at", m))?;
    let source = f.source.or(opts.default_source).ok_or_else(|| {
        err(
            "source",
            "is required (set it on the event or pass --source)",
        )
    })?;
    if let Some(own) = f.source {
        // A default was checked where it was given.
        check_uri_reference(own).map_err(|m| err("source", m))?;
    }
    if let Some(sev) = f.severity {
        if !SEVERITIES.contains(&sev) {
            return Err(err(
                "severity",
                format!("{sev:?} must be one of info, low, medium, high, critical"),
            ));
        }
    }
    if let Some(r) = f.risk_score {
        match r {
            Value::Number(n) if (0.0..=100.0).contains(n) => {}
            _ => return Err(err("risk_score", "must be a number from 0 to 100")),
        }
    }
    let subject = match f.entity_refs {
        None => None,
        Some(Value::Array(refs)) => {
            for (i, r) in refs.iter().enumerate() {
                let ok = matches!(r, Value::Object(_))
                    && r.get("kind")
                        .and_then(Value::as_str)
                        .is_some_and(|s| !s.is_empty())
                    && r.get("id")
                        .and_then(Value::as_str)
                        .is_some_and(|s| !s.is_empty());
                if !ok {
                    return Err(err(
                        &format!("entity_refs[{i}]"),
                        "must be an object with non-empty string 'kind' and 'id'",
                    ));
                }
            }
            refs.first()
                .and_then(|r| r.get("id"))
                .and_then(Value::as_str)
        }
        Some(other) => {
            return Err(err(
                "entity_refs",
                format!("must be an array, got {}", other.type_name()),
            ))
        }
    };
    for (name, v) in [("ocsf", f.ocsf), ("audit_ref", f.audit_ref)] {
        if let Some(v) = v {
            if !matches!(v, Value::Object(_)) {
                return Err(err(
                    name,
                    format!("must be an object, got {}", v.type_name()),
                ));
            }
        }
    }

    // Payload = the given payload plus unknown top-level members.
    let mut payload: Vec<(&str, &Value<'_>)> = Vec::new();
    if !f.extra.is_empty() {
        payload.extend(
            f.payload
                .unwrap_or(&[])
                .iter()
                .map(|(k, v)| (k.as_ref(), v)),
        );
    }
    for m in &f.extra {
        if f.payload.is_some_and(|p| p.iter().any(|(k, _)| k == &m.0)) {
            return Err(err(
                &m.0,
                "appears both at top level and inside payload; keep one",
            ));
        }
        payload.push((m.0.as_ref(), &m.1));
    }

    // The native event's JCS, written once: the derived id hashes it whole and
    // the envelope copies each member's value out of it.
    let Scratch { vals, spans } = scratch;
    let defaults: [(&str, Option<&str>); 2] = if f.event_id.is_none() {
        // In JCS order; only a derived id covers the defaults.
        [
            ("source", f.source.is_none().then_some(source)),
            ("tenant_id", f.tenant_id.is_none().then_some(tenant)),
        ]
    } else {
        [("source", None), ("tenant_id", None)]
    };
    write_native(members, &defaults, vals, spans);
    let span = |i: usize| &vals[spans[i].0..spans[i].1];
    // The canonical bytes of a value picked out of `members` (found by address).
    let raw = |v: Option<&Value<'_>>| {
        v.and_then(|v| members.iter().position(|(_, m)| std::ptr::eq(m, v)))
            .map(span)
    };

    // A derived event_id is uuid5 over the JCS bytes of the native event (after
    // redaction) with the defaults for tenant_id and source filled in: `vals`.
    // It is written as a placeholder here and filled in when hashed.
    let mut derived_id = [0; 2];
    let mut write_id = |out: &mut Vec<u8>, copy: usize| match f.event_id {
        Some(id) => write_string(out, id),
        None => {
            out.push(b'"');
            derived_id[copy] = out.len();
            out.extend_from_slice(&[b'0'; 36]);
            out.push(b'"');
        }
    };

    let start = out.len();
    let type_range;
    let mut severity_range = None;
    out.reserve(vals.len() + 512);
    out.push(b'{');
    // data (the envelope), members in JCS order.
    out.extend_from_slice(b"\"data\":");
    {
        let mut first = true;
        out.push(b'{');
        if let Some(v) = raw(f.audit_ref) {
            write_member(out, &mut first, "audit_ref");
            out.extend_from_slice(v);
        }
        if let Some(v) = f.causation_id {
            write_member(out, &mut first, "causation_id");
            write_string(out, v);
        }
        if let Some(v) = f.correlation_id {
            write_member(out, &mut first, "correlation_id");
            write_string(out, v);
        }
        // The normalized time, tenant, event type and severity were checked
        // above to be plain ASCII: they need no escaping.
        write_member(out, &mut first, "created_at");
        write_plain_string(out, &time);
        if let Some(v) = raw(f.entity_refs) {
            write_member(out, &mut first, "entity_refs");
            out.extend_from_slice(v);
        }
        write_member(out, &mut first, "event_id");
        write_id(out, 0);
        write_member(out, &mut first, "event_type");
        let type_at = out.len() + 1;
        write_plain_string(out, event_type);
        type_range = (type_at, out.len() - 1);
        if let Some(v) = f.exposure_path_id {
            write_member(out, &mut first, "exposure_path_id");
            write_string(out, v);
        }
        if let Some(v) = raw(f.ocsf) {
            write_member(out, &mut first, "ocsf");
            out.extend_from_slice(v);
        }
        write_member(out, &mut first, "payload");
        if f.extra.is_empty() {
            let payload = members.iter().position(|(k, _)| k == "payload");
            out.extend_from_slice(payload.map_or(b"{}", span));
        } else {
            write_refs_object(out, &mut payload);
        }
        if let Some(v) = raw(f.risk_score) {
            write_member(out, &mut first, "risk_score");
            out.extend_from_slice(v);
        }
        write_member(out, &mut first, "schema_version");
        out.extend_from_slice(b"\"1\"");
        if let Some(v) = f.severity {
            write_member(out, &mut first, "severity");
            write_plain_string(out, v);
        }
        write_member(out, &mut first, "source");
        write_string(out, source);
        write_member(out, &mut first, "tenant_id");
        write_plain_string(out, tenant);
        out.push(b'}');
    }
    out.extend_from_slice(b",\"datacontenttype\":\"application/json\",\"id\":");
    let id_at = out.len();
    write_id(out, 1);
    let id_range = (id_at, out.len());
    out.extend_from_slice(b",\"redactions\":");
    out.extend_from_slice(itoa_u64(redactions).as_slice());
    out.push(b',');
    let seq_at = out.len();
    if let Some(v) = f.severity {
        out.extend_from_slice(b"\"severity\":");
        let at = out.len() + 1;
        write_plain_string(out, v);
        severity_range = Some((at, out.len() - 1));
        out.push(b',');
    }
    out.extend_from_slice(b"\"source\":");
    write_string(out, source);
    out.extend_from_slice(b",\"specversion\":\"1.0\",");
    let stream_at = out.len();
    if let Some(v) = subject {
        out.extend_from_slice(b"\"subject\":");
        write_string(out, v);
        out.push(b',');
    }
    out.extend_from_slice(b"\"tenantid\":");
    let tenant_at = out.len() + 1;
    write_plain_string(out, tenant);
    let tenant_range = (tenant_at, out.len() - 1);
    out.extend_from_slice(b",\"time\":");
    let time_at = out.len() + 1;
    write_plain_string(out, &time);
    let time_range = (time_at, out.len() - 1);
    let trace_start = out.len();
    if let Some(v) = f.traceparent {
        out.extend_from_slice(b",\"traceparent\":");
        write_string(out, v);
    }
    if let Some(v) = f.tracestate {
        out.extend_from_slice(b",\"tracestate\":");
        write_string(out, v);
    }
    let trace_end = out.len();
    out.extend_from_slice(b",\"type\":");
    // Registry and reverse-DNS names are plain ASCII (checked above): no escaping.
    out.push(b'"');
    if registry {
        out.extend_from_slice(TYPE_PREFIX.as_bytes());
    }
    out.extend_from_slice(event_type.as_bytes());
    out.push(b'"');
    out.push(b'}');

    Ok(Unhashed {
        at: MappedAt {
            start,
            end: out.len(),
            seq_at,
            stream_at,
            contenthash: Digest::default(),
            time: time_range,
            tenant: tenant_range,
            id: id_range,
            event_type: type_range,
            severity: severity_range,
        },
        name_len: vals.len(),
        derived_id: f.event_id.is_none().then_some(derived_id),
        // contenthash excludes the trace context, which sits between "time" and "type".
        trace: (trace_start, trace_end),
    })
}

/// Writes the JCS of the object `members` plus the `defaults` that are set
/// (name, value; in JCS order, names absent from `members`) into `vals`, and
/// the span of each member's value into `spans`.
fn write_native(
    members: &[(Cow<'_, str>, Value<'_>)],
    defaults: &[(&str, Option<&str>)],
    vals: &mut Vec<u8>,
    spans: &mut Vec<(usize, usize)>,
) {
    vals.clear();
    spans.clear();
    let mut defaults = defaults
        .iter()
        .filter_map(|&(k, v)| Some((k, v?)))
        .peekable();
    // `{` before the first member, `,` before the others.
    let write_name = |vals: &mut Vec<u8>, name: &Cow<'_, str>| {
        vals.push(if vals.is_empty() { b'{' } else { b',' });
        match name {
            Cow::Borrowed(k) => write_plain_string(vals, k),
            Cow::Owned(k) => write_string(vals, k),
        }
        vals.push(b':');
    };
    for (k, v) in members {
        while let Some((dk, dv)) = defaults.next_if(|(dk, _)| cmp_utf16(dk, k).is_lt()) {
            write_name(vals, &Cow::Borrowed(dk));
            write_string(vals, dv);
        }
        write_name(vals, k);
        let start = vals.len();
        write_value(vals, v);
        spans.push((start, vals.len()));
    }
    for (dk, dv) in defaults {
        write_name(vals, &Cow::Borrowed(dk));
        write_string(vals, dv);
    }
    if vals.is_empty() {
        vals.push(b'{');
    }
    vals.push(b'}');
}

/// The attributes the writer adds to a mapped event.
pub struct ChainAttrs<'a> {
    pub alg: HashAlg,
    pub contenthash: &'a Digest,
    pub chainhash: &'a Digest,
    pub seq: u64,
    /// The stream id as a JSON string (quotes included).
    pub stream_id_json: &'a [u8],
}

/// Assembles the final line: `content` (a mapped event; `seq_at`/`stream_at`
/// relative to it) with the chain attributes spliced in, plus '\n'.
pub fn write_final_line(
    out: &mut Vec<u8>,
    content: &[u8],
    seq_at: usize,
    stream_at: usize,
    a: &ChainAttrs<'_>,
) {
    out.reserve(content.len() + 200);
    out.extend_from_slice(b"{\"chainhash\":\"");
    out.extend_from_slice(a.alg.name().as_bytes());
    out.push(b':');
    push_hex(out, a.chainhash);
    out.extend_from_slice(b"\",\"contenthash\":\"");
    out.extend_from_slice(a.alg.name().as_bytes());
    out.push(b':');
    push_hex(out, a.contenthash);
    out.extend_from_slice(b"\",");
    out.extend_from_slice(&content[1..seq_at]);
    out.extend_from_slice(b"\"seq\":");
    out.extend_from_slice(itoa_u64(a.seq).as_slice());
    out.push(b',');
    out.extend_from_slice(&content[seq_at..stream_at]);
    out.extend_from_slice(b"\"streamid\":");
    out.extend_from_slice(a.stream_id_json);
    out.push(b',');
    out.extend_from_slice(&content[stream_at..]);
    out.push(b'\n');
}

struct U64Buf([u8; 20], usize);
impl U64Buf {
    fn as_slice(&self) -> &[u8] {
        &self.0[self.1..]
    }
}
fn itoa_u64(mut n: u64) -> U64Buf {
    let mut b = [0u8; 20];
    let mut i = 20;
    loop {
        i -= 1;
        b[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    U64Buf(b, i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_must_be_uri_references() {
        // The full differential against a reference validator is in
        // tests/test_uri_reference.py; these pin the pattern's compile and its shape.
        for ok in [
            "urn:agent-bom:collector:devin",
            "https://u:p@example.com:8443/a?q=1#f",
            "//[2001:db8::7]/x",
            "/api/v1/scan",
            "rel/a:b",
            "?q",
            "%41",
        ] {
            assert_eq!(check_uri_reference(ok), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("my scanner", "' ' must be percent-encoded"),
            ("1abc:x", "syntax"),
            ("a#b#c", "syntax"),
            ("//[1::2::3]", "syntax"),
            ("100%", "syntax"),
            ("mailto:[REDACTED:email]", "now redacted"),
        ] {
            let e = check_uri_reference(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
    use crate::canon::canonicalize;
    use crate::json::parse;

    fn opts() -> MapOptions<'static> {
        MapOptions {
            default_tenant: Some("acme"),
            default_source: Some("urn:test"),
            alg: HashAlg::Sha256,
        }
    }

    #[test]
    fn uuid5_matches_rfc4122_reference() {
        // Python: uuid.uuid5(uuid.NAMESPACE_DNS, "python.org") == 886313e1-3b8a-5372-9b90-0c9aee199e5d
        let dns = [
            0x6b, 0xa7, 0xb8, 0x10, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4,
            0x30, 0xc8,
        ];
        assert_eq!(
            uuid5(&dns, b"python.org"),
            "886313e1-3b8a-5372-9b90-0c9aee199e5d"
        );
    }

    #[test]
    fn final_line_is_canonical_with_all_optional_members() {
        let native = br#"{"event_type":"finding.created","created_at":"2026-05-01T12:00:00+02:00","severity":"high","risk_score":71.5,
            "entity_refs":[{"kind":"package","id":"pkg:npm/left-pad@1.0.0"}],"exposure_path_id":"ep-1","correlation_id":"c1","causation_id":"c0",
            "traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01","tracestate":"x=1","audit_ref":{"seq":1},"ocsf":{"class_uid":2004},
            "payload":{"finding_id":"F-1","title":"t"},"zzz_extra":[1,2],"aaa_extra":"moved"}"#;
        let v = parse(native, 64).unwrap();
        let m = map_event(&v, 2, &opts()).unwrap();
        let mut line = Vec::new();
        let attrs = ChainAttrs {
            alg: HashAlg::Sha256,
            contenthash: &m.contenthash,
            chainhash: &[7u8; 32],
            seq: 42,
            stream_id_json: b"\"s-1\"",
        };
        write_final_line(&mut line, &m.content, m.seq_at, m.stream_at, &attrs);
        let body = &line[..line.len() - 1];
        assert_eq!(
            canonicalize(body, 64).unwrap(),
            body,
            "{}",
            String::from_utf8_lossy(body)
        );
        let s = String::from_utf8_lossy(body);
        assert!(s.contains("\"payload\":{\"aaa_extra\":\"moved\",\"finding_id\":\"F-1\",\"title\":\"t\",\"zzz_extra\":[1,2]}"));
        assert!(s.contains("\"time\":\"2026-05-01T10:00:00Z\""));
        assert!(s.contains("\"subject\":\"pkg:npm/left-pad@1.0.0\""));
        assert!(s.contains("\"type\":\"io.agentbom.finding.created\""));
        // contenthash = H(JCS(event minus chain attributes and trace context))
        let reparsed = parse(body, 64).unwrap();
        let Value::Object(ms) = reparsed else {
            panic!()
        };
        let kept: Vec<_> = ms
            .into_iter()
            .filter(|(k, _)| {
                ![
                    "chainhash",
                    "contenthash",
                    "seq",
                    "streamid",
                    "traceparent",
                    "tracestate",
                ]
                .contains(&k.as_ref())
            })
            .collect();
        let expect = HashAlg::Sha256.hash(&crate::canon::to_vec(&Value::Object(kept)));
        assert_eq!(expect, m.contenthash);
    }

    #[test]
    fn rejects_with_field_names() {
        let cases: [(&[u8], &str); 8] = [
            (br#"{"event_type":"finding.created","created_at":"2026-05-01T12:00:00Z","traceparent":"00-abc-def-01"}"#, "traceparent"),
            (b"[1]", ""),
            (br#"{"event_type":"finding.created"}"#, "created_at"),
            (br#"{"event_type":"bogus","created_at":"2026-05-01T12:00:00Z"}"#, "event_type"),
            (br#"{"event_type":"finding.created","created_at":"yesterday"}"#, "created_at"),
            (br#"{"event_type":"finding.created","created_at":"2026-05-01T12:00:00Z","severity":"urgent"}"#, "severity"),
            (br#"{"event_type":"finding.created","created_at":"2026-05-01T12:00:00Z","tenant_id":"no spaces"}"#, "tenant_id"),
            (br#"{"event_type":"finding.created","created_at":"2026-05-01T12:00:00Z","payload":{"a":1},"a":2}"#, "a"),
        ];
        for (input, field) in cases {
            let v = parse(input, 64).unwrap();
            let e = map_event(&v, 0, &opts()).err().expect("should reject");
            assert_eq!(e.field, field, "{e}");
        }
        let v = parse(
            br#"{"event_type":"finding.created","created_at":"2026-05-01T12:00:00Z"}"#,
            64,
        )
        .unwrap();
        let no_defaults = MapOptions {
            default_tenant: None,
            default_source: None,
            alg: HashAlg::Sha256,
        };
        assert_eq!(
            map_event(&v, 0, &no_defaults).err().unwrap().field,
            "tenant_id"
        );
    }

    #[test]
    fn derived_id_is_stable_and_depends_on_content() {
        let a = parse(
            br#"{"event_type":"runtime.exec","created_at":"2026-05-01T12:00:00Z","cmd":"ls"}"#,
            64,
        )
        .unwrap();
        let b = parse(
            br#"{"cmd":"ls","created_at":"2026-05-01T12:00:00Z","event_type":"runtime.exec"}"#,
            64,
        )
        .unwrap();
        let c = parse(
            br#"{"event_type":"runtime.exec","created_at":"2026-05-01T12:00:00Z","cmd":"id"}"#,
            64,
        )
        .unwrap();
        let (ma, mb, mc) = (
            map_event(&a, 0, &opts()).unwrap(),
            map_event(&b, 0, &opts()).unwrap(),
            map_event(&c, 0, &opts()).unwrap(),
        );
        assert_eq!(ma.content, mb.content);
        assert_ne!(ma.contenthash, mc.contenthash);
        // Recipe from docs/contracts.md: uuid5(ns, JCS(native + defaults)).
        let name = br#"{"cmd":"ls","created_at":"2026-05-01T12:00:00Z","event_type":"runtime.exec","source":"urn:test","tenant_id":"acme"}"#;
        let id = uuid5(&EVENT_ID_NAMESPACE, name);
        assert!(String::from_utf8_lossy(&ma.content).contains(&format!("\"id\":\"{id}\"")));
    }
}
