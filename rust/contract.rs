//! The envelope contract, compiled into the core: a fast path for the server's ingest.
//!
//! The contract itself is the pydantic models in `agent_bom.envelope`. Python walks
//! the pydantic-core schema of each registry type (the same schema its batch
//! validator runs) and hands this module a description of it (`Node`); anything the
//! walk does not know is refused there, so this module never guesses. Checking
//! here needs no GIL: a batch of event texts is parsed and checked on one thread
//! while the interpreter serves other requests.
//!
//! It only ever says "valid" or "ask Python": an event it does not pass goes the
//! slow way (pydantic), which names every problem. So it must never pass an event
//! pydantic would refuse (tests/server/test_core_contract.py checks it against
//! pydantic on generated events); refusing one pydantic passes only costs time.
//! JSON is read as orjson reads it: integers that fit 64 bits are integers,
//! anything else a number is a float (serde_json agrees, `float_roundtrip` on; it
//! reads `-0` as a float where orjson gives the integer 0, which only sends such an
//! event the slow way).
//! Texts with a duplicated member name are left to Python (orjson keeps the last;
//! the core's own parser refuses them).

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::cloudevent::{check_uri_reference, URI_REFERENCE};

/// A JSON value with orjson's number types.
#[derive(Debug, Clone, PartialEq)]
pub enum J<'a> {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(Cow<'a, str>),
    Arr(Vec<J<'a>>),
    Obj(Vec<(Cow<'a, str>, J<'a>)>),
}

impl<'a> J<'a> {
    pub fn get(&self, key: &str) -> Option<&J<'a>> {
        match self {
            J::Obj(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Python's truthiness of the value orjson would give.
    fn truthy(&self) -> bool {
        match self {
            J::Null => false,
            J::Bool(b) => *b,
            J::Int(i) => *i != 0,
            J::Float(f) => *f != 0.0,
            J::Str(s) => !s.is_empty(),
            J::Arr(a) => !a.is_empty(),
            J::Obj(m) => !m.is_empty(),
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for J<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(JVisitor(std::marker::PhantomData))
    }
}

struct JVisitor<'a>(std::marker::PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for JVisitor<'a> {
    type Value = J<'a>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<J<'a>, E> {
        Ok(J::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<J<'a>, E> {
        Ok(J::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<J<'a>, E> {
        Ok(J::Int(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<J<'a>, E> {
        Ok(J::Int(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<J<'a>, E> {
        Ok(J::Float(v))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<J<'a>, E> {
        Ok(J::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<J<'a>, E> {
        Ok(J::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<J<'a>, E> {
        Ok(J::Str(Cow::Owned(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<J<'a>, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(v) = seq.next_element()? {
            out.push(v);
        }
        Ok(J::Arr(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<J<'a>, A::Error> {
        let mut out: Vec<(Cow<'a, str>, J<'a>)> = Vec::new();
        while let Some(k) = map.next_key::<Cow<'de, str>>()? {
            if out.iter().any(|(n, _)| *n == k) {
                return Err(de::Error::custom("duplicate member name"));
            }
            let v = map.next_value()?;
            out.push((k, v));
        }
        Ok(J::Obj(out))
    }
}

/// One JSON text as orjson reads it, or None (not JSON, a duplicated name, nesting
/// past serde_json's 128 levels, a number out of range…: Python decides those).
pub fn parse(text: &[u8]) -> Option<J<'_>> {
    serde_json::from_slice(text).ok()
}

/// The elements of a JSON array text, as slices of it; None when it is not one.
pub fn split_array(text: &[u8]) -> Option<Vec<&[u8]>> {
    let items: Vec<&serde_json::value::RawValue> = serde_json::from_slice(text).ok()?;
    Some(items.iter().map(|r| r.get().as_bytes()).collect())
}

// --- the contract -----------------------------------------------------------------------

#[derive(Debug)]
enum Pattern {
    UriReference,
    Regex(regex::Regex),
}

#[derive(Debug)]
enum Check {
    Rfc3339,
    Ip,
    /// `_check_event_type`: a registry type, or a custom type matching `pattern` (the
    /// reverse-DNS rule) outside the `reserved` prefix.
    EventType {
        pattern: regex::Regex,
        reserved: String,
    },
}

#[derive(Debug)]
struct Field {
    name: String,
    required: bool,
    node: Node,
}

/// A pydantic-core schema node in strict mode, as far as the contract uses them.
#[derive(Debug)]
enum Node {
    Any,
    Bool,
    /// Lengths in characters, as Python counts them.
    Str {
        min: usize,
        max: Option<usize>,
        pattern: Option<Pattern>,
    },
    Literal(Vec<String>),
    Int {
        ge: Option<i128>,
        le: Option<i128>,
    },
    Float {
        ge: Option<f64>,
        le: Option<f64>,
    },
    List {
        items: Box<Node>,
        min: usize,
        max: Option<usize>,
    },
    Dict {
        values: Box<Node>,
    },
    Fields {
        fields: Vec<Field>,
        forbid_extra: bool,
        /// At least one of these members must be present (a model validator's rule).
        require_any: Vec<String>,
    },
    After(Box<Node>, Check),
}

fn spec_err(at: &str, what: impl fmt::Display) -> String {
    format!("contract spec at {at}: {what}")
}

/// The optional number `key` of a spec node, read by `read` (None: absent or null).
fn opt<T>(
    spec: &serde_json::Value,
    key: &str,
    at: &str,
    what: &str,
    read: impl Fn(&serde_json::Value) -> Option<T>,
) -> Result<Option<T>, String> {
    match spec.get(key) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => read(v)
            .map(Some)
            .ok_or_else(|| spec_err(at, format!("{key} must be {what}"))),
    }
}

fn opt_usize(spec: &serde_json::Value, key: &str, at: &str) -> Result<Option<usize>, String> {
    opt(spec, key, at, "a count", |v| v.as_u64().map(|n| n as usize))
}

fn only_keys(spec: &serde_json::Value, allowed: &[&str], at: &str) -> Result<(), String> {
    let obj = spec
        .as_object()
        .ok_or_else(|| spec_err(at, "a node is an object"))?;
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(spec_err(at, format!("unknown key {k:?}"))),
        None => Ok(()),
    }
}

fn node(spec: &serde_json::Value, at: &str) -> Result<Node, String> {
    let t = spec
        .get("t")
        .and_then(|t| t.as_str())
        .ok_or_else(|| spec_err(at, "a node names its type in \"t\""))?;
    Ok(match t {
        "any" | "bool" => {
            only_keys(spec, &["t"], at)?;
            if t == "any" {
                Node::Any
            } else {
                Node::Bool
            }
        }
        "str" => {
            only_keys(spec, &["t", "min", "max", "pattern"], at)?;
            let pattern = match spec.get("pattern") {
                None | Some(serde_json::Value::Null) => None,
                Some(p) => {
                    let p = p
                        .as_str()
                        .ok_or_else(|| spec_err(at, "pattern is a string"))?;
                    Some(if p == URI_REFERENCE.as_str() {
                        Pattern::UriReference
                    } else {
                        Pattern::Regex(regex::Regex::new(p).map_err(|e| spec_err(at, e))?)
                    })
                }
            };
            Node::Str {
                min: opt_usize(spec, "min", at)?.unwrap_or(0),
                max: opt_usize(spec, "max", at)?,
                pattern,
            }
        }
        "literal" => {
            only_keys(spec, &["t", "values"], at)?;
            let values = spec
                .get("values")
                .and_then(|v| v.as_array())
                .ok_or_else(|| spec_err(at, "values is an array"))?
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| spec_err(at, "only string literals are supported"))?;
            Node::Literal(values)
        }
        "int" => {
            only_keys(spec, &["t", "ge", "le"], at)?;
            Node::Int {
                ge: opt(spec, "ge", at, "an integer", |v| v.as_i64().map(i128::from))?,
                le: opt(spec, "le", at, "an integer", |v| v.as_i64().map(i128::from))?,
            }
        }
        "float" => {
            only_keys(spec, &["t", "ge", "le"], at)?;
            Node::Float {
                ge: opt(spec, "ge", at, "a number", serde_json::Value::as_f64)?,
                le: opt(spec, "le", at, "a number", serde_json::Value::as_f64)?,
            }
        }
        "list" => {
            only_keys(spec, &["t", "items", "min", "max"], at)?;
            let items = spec
                .get("items")
                .ok_or_else(|| spec_err(at, "a list has items"))?;
            Node::List {
                items: Box::new(node(items, &format!("{at}[]"))?),
                min: opt_usize(spec, "min", at)?.unwrap_or(0),
                max: opt_usize(spec, "max", at)?,
            }
        }
        "dict" => {
            only_keys(spec, &["t", "values"], at)?;
            let values = spec
                .get("values")
                .ok_or_else(|| spec_err(at, "a dict has values"))?;
            Node::Dict {
                values: Box::new(node(values, &format!("{at}{{}}"))?),
            }
        }
        "fields" => {
            only_keys(spec, &["t", "fields", "extra", "require_any"], at)?;
            let forbid_extra = match spec.get("extra").and_then(|e| e.as_str()) {
                Some("forbid") => true,
                Some("allow") | Some("ignore") => false,
                _ => return Err(spec_err(at, "extra is forbid, allow or ignore")),
            };
            let mut fields = Vec::new();
            for f in spec
                .get("fields")
                .and_then(|f| f.as_array())
                .ok_or_else(|| spec_err(at, "fields is an array"))?
            {
                only_keys(f, &["name", "required", "schema"], at)?;
                let name = f
                    .get("name")
                    .and_then(|n| n.as_str())
                    .ok_or_else(|| spec_err(at, "a field has a name"))?;
                let required = f
                    .get("required")
                    .and_then(|r| r.as_bool())
                    .ok_or_else(|| spec_err(at, "a field says whether it is required"))?;
                let schema = f
                    .get("schema")
                    .ok_or_else(|| spec_err(at, "a field has a schema"))?;
                fields.push(Field {
                    name: name.to_owned(),
                    required,
                    node: node(schema, &format!("{at}.{name}"))?,
                });
            }
            let require_any = match spec.get("require_any") {
                None => Vec::new(),
                Some(r) => r
                    .as_array()
                    .and_then(|a| {
                        a.iter()
                            .map(|v| v.as_str().map(str::to_owned))
                            .collect::<Option<Vec<_>>>()
                    })
                    .ok_or_else(|| spec_err(at, "require_any is an array of names"))?,
            };
            Node::Fields {
                fields,
                forbid_extra,
                require_any,
            }
        }
        "after" => {
            only_keys(spec, &["t", "check", "schema", "pattern", "reserved"], at)?;
            let text = |key: &str| {
                spec.get(key)
                    .and_then(|v| v.as_str())
                    .ok_or_else(|| spec_err(at, format!("the check needs {key}")))
            };
            let check = match spec.get("check").and_then(|c| c.as_str()) {
                Some("rfc3339") => Check::Rfc3339,
                Some("ip") => Check::Ip,
                Some("event_type") => Check::EventType {
                    pattern: regex::Regex::new(text("pattern")?).map_err(|e| spec_err(at, e))?,
                    reserved: text("reserved")?.to_owned(),
                },
                other => return Err(spec_err(at, format!("unknown check {other:?}"))),
            };
            let inner = spec
                .get("schema")
                .ok_or_else(|| spec_err(at, "a check wraps a schema"))?;
            Node::After(Box::new(node(inner, at)?), check)
        }
        other => return Err(spec_err(at, format!("unknown node type {other:?}"))),
    })
}

fn chars_within(s: &str, min: usize, max: Option<usize>) -> bool {
    // Bytes bound characters from above (at most 4 bytes each) and from below.
    let bytes = s.len();
    if bytes < min {
        return false;
    }
    if let Some(max) = max {
        if bytes <= max && min <= bytes / 4 {
            return true;
        }
        let n = s.chars().count();
        return n >= min && n <= max;
    }
    min == 0 || s.chars().count() >= min
}

fn valid(node: &Node, v: &J<'_>) -> bool {
    match (node, v) {
        (Node::Any, _) => true,
        (Node::Bool, J::Bool(_)) => true,
        (Node::Str { min, max, pattern }, J::Str(s)) => {
            chars_within(s, *min, *max)
                && match pattern {
                    None => true,
                    Some(Pattern::UriReference) => check_uri_reference(s).is_ok(),
                    Some(Pattern::Regex(re)) => re.is_match(s),
                }
        }
        (Node::Literal(values), J::Str(s)) => values.iter().any(|x| x == s),
        (Node::Int { ge, le }, J::Int(i)) => {
            ge.is_none_or(|g| *i >= g) && le.is_none_or(|l| *i <= l)
        }
        (Node::Float { ge, le }, J::Int(_) | J::Float(_)) => {
            let f = match v {
                J::Int(i) => *i as f64,
                J::Float(f) => *f,
                _ => unreachable!(),
            };
            ge.is_none_or(|g| f >= g) && le.is_none_or(|l| f <= l)
        }
        (Node::List { items, min, max }, J::Arr(a)) => {
            a.len() >= *min && max.is_none_or(|m| a.len() <= m) && a.iter().all(|x| valid(items, x))
        }
        (Node::Dict { values }, J::Obj(m)) => m.iter().all(|(_, x)| valid(values, x)),
        (Node::Fields { .. }, J::Obj(m)) => valid_object(node, m, &[]),
        (Node::After(inner, check), J::Str(s)) => {
            valid(inner, v)
                && match check {
                    Check::Rfc3339 => crate::time::epoch_millis(s).is_some(),
                    Check::Ip => is_ip(s),
                    Check::EventType { pattern, reserved } => {
                        crate::cloudevent::is_registry_type(s)
                            || (!s.starts_with(reserved.as_str()) && pattern.is_match(s))
                    }
                }
        }
        _ => false,
    }
}

/// `members` against a `Node::Fields`; `implied` members count as present with that
/// value when the text leaves them out (the server's tenant, a derived id).
fn valid_object(
    node: &Node,
    members: &[(Cow<'_, str>, J<'_>)],
    implied: &[(&str, &J<'_>)],
) -> bool {
    let Node::Fields {
        fields,
        forbid_extra,
        require_any,
    } = node
    else {
        return false;
    };
    let present = |name: &str| members.iter().find(|(k, _)| k == name).map(|(_, v)| v);
    for f in fields {
        let value = present(&f.name)
            .or_else(|| implied.iter().find(|(k, _)| *k == f.name).map(|(_, v)| *v));
        match value {
            Some(v) if !valid(&f.node, v) => return false,
            None if f.required => return false,
            _ => {}
        }
    }
    if !require_any.is_empty() && !require_any.iter().any(|n| present(n).is_some()) {
        return false;
    }
    !*forbid_extra
        || members
            .iter()
            .all(|(k, _)| fields.iter().any(|f| f.name == *k))
}

/// Whether Python's `ipaddress.ip_address` accepts `s` (or a subset: refusing more
/// only costs the slow path): IPv4 as std reads it (dotted quad, no leading zeros),
/// IPv6 with an optional `%zone` as Python reads it (anything after the first `%`,
/// not empty, no second `%`), and never a `/` anywhere, which Python refuses before
/// it looks at a zone. Checked against Python's in tests/server/test_core_contract.py.
fn is_ip(s: &str) -> bool {
    if s.contains('/') {
        return false;
    }
    match s.split_once('%') {
        None => s.parse::<std::net::IpAddr>().is_ok(),
        Some((addr, zone)) => {
            !zone.is_empty() && !zone.contains('%') && addr.parse::<std::net::Ipv6Addr>().is_ok()
        }
    }
}

/// The scope values the server authorizes a collector by (`_scope_values` in
/// server/ingest.py): event type, connector, repository, environment; and the
/// event's `created_at` (epoch ms), for the lag of those it lets through.
pub type Scope = (String, Option<String>, Option<String>, Option<String>, i64);

/// The checked envelope contract of every registry type, and of the custom types.
#[derive(Debug)]
pub struct Contract {
    types: HashMap<String, Node>,
    /// For any other `event_type` (the spec's `"*"`): its own check decides.
    custom: Option<Node>,
}

/// A passing event: its text for the store and what the server needs of it.
#[derive(Debug)]
pub struct Passed {
    /// The text with `tenant_id` added when it was left out; None: as given.
    pub text: Option<Vec<u8>>,
    pub created_ms: i64,
    pub scope: Option<Scope>,
}

impl Contract {
    /// From the description Python builds (`{"<event type>": node, …}`, JSON).
    pub fn new(spec: &[u8]) -> Result<Contract, String> {
        let spec: serde_json::Value =
            serde_json::from_slice(spec).map_err(|e| format!("contract spec: {e}"))?;
        let obj = spec
            .as_object()
            .ok_or("contract spec: an object of event types")?;
        let mut types = HashMap::new();
        let mut custom = None;
        for (t, n) in obj {
            let n = node(n, t)?;
            if !matches!(n, Node::Fields { .. }) {
                return Err(spec_err(t, "an envelope is an object of fields"));
            }
            if t == "*" {
                custom = Some(n);
            } else {
                types.insert(t.clone(), n);
            }
        }
        Ok(Contract { types, custom })
    }

    /// The event `text` passes the contract as the server checks it for `tenant`
    /// (tenant_id left out or equal, event_id left out or a short id without control
    /// characters), or None: Python decides.
    pub fn check(&self, text: &[u8], tenant: &str, scoped: bool) -> Option<Passed> {
        let event = parse(text)?;
        let J::Obj(members) = &event else {
            return None;
        };
        let event_type = match event.get("event_type") {
            Some(J::Str(t)) => t,
            _ => return None,
        };
        let envelope = self
            .types
            .get(event_type.as_ref())
            .or(self.custom.as_ref())?;
        let inject = match event.get("tenant_id") {
            None => true,
            Some(J::Str(t)) if t == tenant => false,
            Some(_) => return None,
        };
        if let Some(id) = event.get("event_id") {
            let J::Str(id) = id else { return None };
            if id.chars().count() > 256 || id.chars().any(|c| c < ' ' || c == '\x7f') {
                return None;
            }
        }
        let tenant_value = J::Str(Cow::Borrowed(tenant));
        let derived_id = J::Str(Cow::Borrowed("x"));
        let implied = [("tenant_id", &tenant_value), ("event_id", &derived_id)];
        if !valid_object(envelope, members, &implied) {
            return None;
        }
        let created_ms = match event.get("created_at") {
            Some(J::Str(c)) => crate::time::epoch_millis(c)?.0,
            _ => return None,
        };
        let scope = if scoped {
            Some(scope_of(&event, event_type, created_ms)?)
        } else {
            None
        };
        let text = inject.then(|| with_tenant(text, tenant));
        Some(Passed {
            text,
            created_ms,
            scope,
        })
    }
}

fn scope_of(event: &J<'_>, event_type: &str, created_ms: i64) -> Option<Scope> {
    let payload = event.get("payload");
    let member = |name: &str| -> Option<Option<String>> {
        match payload.and_then(|p| p.get(name)) {
            None | Some(J::Null) => Some(None),
            Some(J::Str(s)) => Some(Some(s.to_string())),
            Some(_) => None, // not a string: Python decides
        }
    };
    let mut repo: Option<&J<'_>> = payload.and_then(|p| p.get("repository"));
    if let Some(J::Arr(refs)) = event.get("entity_refs") {
        for r in refs {
            if r.get("kind") == Some(&J::Str(Cow::Borrowed("repo"))) && !repo.is_some_and(J::truthy)
            {
                repo = r.get("id");
            }
        }
    }
    let repo = match repo {
        Some(J::Str(s)) => Some(s.to_string()),
        _ => None,
    };
    Some((
        event_type.to_owned(),
        member("connector")?,
        repo,
        member("environment")?,
        created_ms,
    ))
}

/// `text` (a JSON object) with `"tenant_id":"<tenant>"` as its first member.
fn with_tenant(text: &[u8], tenant: &str) -> Vec<u8> {
    let open = text.iter().position(|&b| b == b'{').unwrap_or(0);
    let mut out = Vec::with_capacity(text.len() + tenant.len() + 16);
    out.extend_from_slice(&text[..=open]);
    out.extend_from_slice(b"\"tenant_id\":");
    // Tenant ids are [A-Za-z0-9._-]: nothing to escape, but never trust that here.
    out.extend_from_slice(&serde_json::to_vec(tenant).unwrap_or_default());
    let rest = &text[open + 1..];
    let empty = rest
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'}');
    if !empty {
        out.push(b',');
    }
    out.extend_from_slice(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contract() -> Contract {
        let spec = br#"{"finding.created": {"t": "fields", "extra": "forbid", "fields": [
            {"name": "event_id", "required": true, "schema": {"t": "str", "min": 1, "max": 256}},
            {"name": "tenant_id", "required": true, "schema": {"t": "str", "max": 128, "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"}},
            {"name": "event_type", "required": true, "schema": {"t": "literal", "values": ["finding.created"]}},
            {"name": "created_at", "required": true, "schema": {"t": "after", "check": "rfc3339", "schema": {"t": "str", "max": 64}}},
            {"name": "risk_score", "required": false, "schema": {"t": "float", "ge": 0, "le": 100}},
            {"name": "payload", "required": true, "schema": {"t": "fields", "extra": "allow", "fields": [
                {"name": "n", "required": false, "schema": {"t": "int", "ge": 0, "le": 10}},
                {"name": "ip", "required": false, "schema": {"t": "after", "check": "ip", "schema": {"t": "str"}}}
            ]}}
        ]}}"#;
        Contract::new(spec).unwrap()
    }

    #[test]
    fn passes_and_adds_the_tenant() {
        let c = contract();
        let text = br#"{"event_type":"finding.created","created_at":"2026-05-01T12:00:00Z","payload":{"n":3,"ip":"10.0.0.1","other":null}}"#;
        let p = c.check(text, "acme", false).unwrap();
        let out = p.text.unwrap();
        assert!(out.starts_with(br#"{"tenant_id":"acme","event_type""#));
        assert_eq!(p.created_ms, 1_777_636_800_000);
        // the text with the tenant passes as given
        assert!(c.check(&out, "acme", false).unwrap().text.is_none());
        assert!(c.check(&out, "other", false).is_none());
    }

    #[test]
    fn refuses_what_strict_pydantic_refuses() {
        let c = contract();
        let base = |payload: &str| {
            format!(
                r#"{{"event_type":"finding.created","created_at":"2026-05-01T12:00:00Z","payload":{payload}}}"#
            )
        };
        for bad in [
            r#"{"n":1.0}"#,  // a float is not an int in strict mode
            r#"{"n":true}"#, // nor a boolean
            r#"{"n":11}"#,
            r#"{"n":null}"#, // never null
            r#"{"ip":"01.2.3.4"}"#,
            r#"{"n":1,"n":2}"#, // duplicate: left to Python
            r#"[]"#,
        ] {
            assert!(
                c.check(base(bad).as_bytes(), "acme", false).is_none(),
                "{bad}"
            );
        }
        assert!(c
            .check(br#"{"event_type":"finding.created","created_at":"2026-02-30T12:00:00Z","payload":{}}"#, "acme", false)
            .is_none());
        assert!(c
            .check(br#"{"event_type":"finding.created","created_at":"2026-02-03T12:00:00Z","payload":{},"extra":1}"#, "acme", false)
            .is_none());
        assert!(c
            .check(br#"{"event_type":"finding.created","created_at":"2026-02-03T12:00:00Z","risk_score":100,"payload":{}}"#, "acme", false)
            .is_some());
    }

    #[test]
    fn unknown_nodes_are_refused_when_built() {
        let e = Contract::new(br#"{"x": {"t": "fields", "extra": "allow", "fields": [{"name": "a", "required": true, "schema": {"t": "tuple"}}]}}"#).unwrap_err();
        assert!(e.contains("unknown node type"), "{e}");
        let e = Contract::new(br#"{"x": {"t": "str", "strip": true}}"#).unwrap_err();
        assert!(e.contains("unknown key"), "{e}");
    }

    #[test]
    fn splits_arrays_like_json() {
        let items = split_array(b" [ {\"a\": [1, 2]} , 3,\"x\" ] ").unwrap();
        assert_eq!(items, vec![&b"{\"a\": [1, 2]}"[..], b"3", b"\"x\""]);
        assert!(split_array(b"[1,]").is_none());
        assert!(split_array(b"{}").is_none());
    }
}
