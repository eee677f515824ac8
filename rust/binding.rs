//! The CloudEvents Kafka protocol binding, binary mode, for CloudEvent lines.
//!
//! A record's value is the RFC 8785 form of `data` (absent `data`: no value); every
//! other attribute travels as a `ce_<name>` header: a string attribute as its UTF-8
//! text, any other as its RFC 8785 text; `datacontenttype` becomes `content-type`
//! (`application/json` when absent). Headers come in RFC 8785 member order, whatever
//! the line's order, so the same event gives the same record from any input.

use crate::canon;
use crate::json::{self, Value};

/// Depth bound for the lines parsed here (the ingest limit).
const MAX_DEPTH: usize = 128;

/// One Kafka record in binary mode.
#[derive(Debug, PartialEq)]
pub struct Record {
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
}

fn text(v: &Value<'_>) -> Vec<u8> {
    match v {
        Value::String(s) => s.as_bytes().to_vec(),
        other => canon::to_vec(other),
    }
}

/// The binary-mode record of one CloudEvent line, or why the line is not one.
pub fn binary_record(line: &[u8]) -> Result<Record, String> {
    let ce = json::parse(line, MAX_DEPTH).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Object(members) = ce else {
        return Err(format!(
            "a CloudEvent is a JSON object, not {}",
            ce.type_name()
        ));
    };
    let mut value = None;
    let mut content_type: Vec<u8> = b"application/json".to_vec();
    let mut headers = Vec::with_capacity(members.len());
    for (name, v) in &members {
        match name.as_ref() {
            "data" => value = Some(canon::to_vec(v)),
            "datacontenttype" => content_type = text(v),
            _ => headers.push((format!("ce_{name}"), text(v))),
        }
    }
    headers.insert(0, ("content-type".to_string(), content_type));
    Ok(Record { value, headers })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header<'a>(r: &'a Record, name: &str) -> Option<&'a [u8]> {
        r.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    #[test]
    fn data_is_the_canonical_value_and_attributes_are_headers() {
        let line = br#"{"type":"t","id":"a\u00e9","seq":7,"data":{"b":1.0,"a":[true,null]},"x":{"k":"v"}}"#;
        let r = binary_record(line).unwrap();
        assert_eq!(r.value.as_deref(), Some(&br#"{"a":[true,null],"b":1}"#[..]));
        let names: Vec<&str> = r.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["content-type", "ce_id", "ce_seq", "ce_type", "ce_x"]
        );
        assert_eq!(header(&r, "content-type"), Some(&b"application/json"[..]));
        assert_eq!(header(&r, "ce_id"), Some("aé".as_bytes()));
        assert_eq!(header(&r, "ce_seq"), Some(&b"7"[..]));
        assert_eq!(header(&r, "ce_x"), Some(&br#"{"k":"v"}"#[..]));
    }

    #[test]
    fn content_type_and_missing_data() {
        let r = binary_record(br#"{"datacontenttype":"text/plain","id":"1"}"#).unwrap();
        assert_eq!(r.value, None);
        assert_eq!(header(&r, "content-type"), Some(&b"text/plain"[..]));
        assert_eq!(r.headers.len(), 2);
    }

    #[test]
    fn not_an_object_or_not_json_is_an_error() {
        assert!(binary_record(b"[1]").unwrap_err().contains("not array"));
        assert!(binary_record(b"{").unwrap_err().starts_with("not JSON"));
        assert!(binary_record(br#"{"a":1,"a":2}"#).is_err()); // I-JSON: no duplicates
    }
}
