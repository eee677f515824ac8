//! The CloudEvents Kafka protocol binding, binary mode, for CloudEvent lines.
//!
//! A record's value is the RFC 8785 form of `data` (absent `data`: no value); every
//! other attribute travels as a `ce_<name>` header: a string attribute as its UTF-8
//! text, any other as its RFC 8785 text; `datacontenttype` becomes `content-type`
//! (`application/json` when absent). Headers come in RFC 8785 member order, whatever
//! the line's order, so the same event gives the same record from any input.

use std::borrow::Cow;

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

/// A header's bytes for an attribute value: a string's text, any other value's RFC 8785 text.
pub fn header_text<'v>(v: &'v Value<'_>) -> Cow<'v, [u8]> {
    match v {
        Value::String(s) => Cow::Borrowed(s.as_bytes()),
        other => Cow::Owned(canon::to_vec(other)),
    }
}

/// A CloudEvent line's members (RFC 8785 order), or why the line is not one.
pub fn members(line: &[u8]) -> Result<Vec<(Cow<'_, str>, Value<'_>)>, String> {
    match json::parse(line, MAX_DEPTH).map_err(|e| format!("not JSON: {e}"))? {
        Value::Object(members) => Ok(members),
        other => Err(format!(
            "a CloudEvent is a JSON object, not {}",
            other.type_name()
        )),
    }
}

/// The content type of a CloudEvent's members (`datacontenttype`, else JSON).
pub fn content_type<'v>(members: &'v [(Cow<'_, str>, Value<'_>)]) -> Cow<'v, [u8]> {
    match members.iter().find(|(n, _)| n == "datacontenttype") {
        Some((_, v)) => header_text(v),
        None => Cow::Borrowed(b"application/json"),
    }
}

/// The binary-mode record of one CloudEvent line, or why the line is not one.
pub fn binary_record(line: &[u8]) -> Result<Record, String> {
    let members = members(line)?;
    let mut headers = vec![(
        "content-type".to_string(),
        content_type(&members).into_owned(),
    )];
    let mut value = None;
    for (name, v) in &members {
        match name.as_ref() {
            "data" => value = Some(canon::to_vec(v)),
            "datacontenttype" => {}
            _ => headers.push((format!("ce_{name}"), header_text(v).into_owned())),
        }
    }
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
