//! Strict JSON (RFC 8259 / I-JSON) parser into a borrowed tree.
//!
//! Written here rather than taken from serde_json because canonicalization
//! needs what serde_json's `Value` throws away: duplicate member names must be
//! rejected (I-JSON), lone surrogates must be rejected, object members must be
//! ordered by UTF-16 code units (RFC 8785 §3.2.3), and nesting depth must be
//! bounded *while* parsing so hostile input cannot exhaust the stack.
//! Objects come out of the parser already sorted in JCS order.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;

use crate::canon::{escape_mask, NEEDS_ESCAPE};

#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Null,
    Bool(bool),
    Number(f64),
    /// Invariant: a `Cow::Borrowed` string needs no JSON escaping (the parser
    /// borrows only escape-free input, and code borrows only literals such
    /// as member names), so canonicalization copies it as is. Anything built
    /// from other data is `Cow::Owned` and gets escaped.
    String(Cow<'a, str>),
    Array(Vec<Value<'a>>),
    /// Members sorted by UTF-16 code units of their names; names are unique.
    Object(Vec<(Cow<'a, str>, Value<'a>)>),
}

impl<'a> Value<'a> {
    pub fn get(&self, key: &str) -> Option<&Value<'a>> {
        match self {
            Value::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        }
    }

    /// Builds an object from members in any order, sorting them in JCS order.
    /// Returns the duplicated name if two members share one.
    pub fn object(mut members: Vec<(Cow<'a, str>, Value<'a>)>) -> Result<Value<'a>, String> {
        sort_members(&mut members)?;
        Ok(Value::Object(members))
    }
}

/// Orders two member names by their UTF-16 code units, as RFC 8785 §3.2.3 requires.
#[inline]
pub fn cmp_utf16(a: &str, b: &str) -> Ordering {
    // Most names already differ in their first byte, with one of them ASCII:
    // decide those inline (sorting members calls this for every comparison).
    match (a.as_bytes().first(), b.as_bytes().first()) {
        (Some(&x), Some(&y)) if x != y && (x < 0x80 || y < 0x80) => x.cmp(&y),
        _ => cmp_utf16_general(a, b),
    }
}

fn cmp_utf16_general(a: &str, b: &str) -> Ordering {
    // UTF-8 byte order equals code point order, which differs from UTF-16
    // order only between supplementary characters and U+E000..U+FFFF.
    let (ab, bb) = (a.as_bytes(), b.as_bytes());
    let common = ab.iter().zip(bb).take_while(|(x, y)| x == y).count();
    match (ab.get(common), bb.get(common)) {
        (Some(&x), Some(&y)) if x < 0x80 || y < 0x80 => x.cmp(&y),
        (Some(_), Some(_)) => {
            // Back up to the start of the differing characters and compare them as UTF-16.
            let mut start = common;
            while !a.is_char_boundary(start) {
                start -= 1;
            }
            a[start..].encode_utf16().cmp(b[start..].encode_utf16())
        }
        (x, y) => x.is_some().cmp(&y.is_some()),
    }
}

fn sort_members(members: &mut [(Cow<'_, str>, Value<'_>)]) -> Result<(), String> {
    if members.len() > 1 {
        members.sort_unstable_by(|(a, _), (b, _)| cmp_utf16(a, b));
        if let Some(w) = members.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(w[0].0.to_string());
        }
    }
    Ok(())
}

/// What went wrong, where (byte offset in the input).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub kind: ParseErrorKind,
    pub offset: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseErrorKind {
    Syntax(String),
    InvalidUtf8,
    LoneSurrogate,
    DuplicateKey(String),
    NumberOutOfRange,
    TooDeep(usize),
}

impl ParseError {
    pub fn is_limit(&self) -> bool {
        matches!(self.kind, ParseErrorKind::TooDeep(_))
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ParseErrorKind::Syntax(m) => write!(f, "{m} at byte {}", self.offset),
            ParseErrorKind::InvalidUtf8 => write!(f, "invalid UTF-8 at byte {}", self.offset),
            ParseErrorKind::LoneSurrogate => {
                write!(
                    f,
                    "lone UTF-16 surrogate in string escape at byte {}",
                    self.offset
                )
            }
            ParseErrorKind::DuplicateKey(k) => write!(f, "duplicate member name {k:?}"),
            ParseErrorKind::NumberOutOfRange => {
                write!(
                    f,
                    "number at byte {} is outside the IEEE-754 double range",
                    self.offset
                )
            }
            ParseErrorKind::TooDeep(d) => write!(f, "nesting deeper than {d} levels"),
        }
    }
}

impl std::error::Error for ParseError {}

/// Parses one JSON text. `max_depth` counts arrays and objects.
/// Internal results carry the error boxed, keeping `Result<Value>` small (hot path).
type PResult<T> = Result<T, Box<ParseError>>;

pub fn parse(input: &[u8], max_depth: usize) -> Result<Value<'_>, ParseError> {
    let text = std::str::from_utf8(input).map_err(|e| ParseError {
        kind: ParseErrorKind::InvalidUtf8,
        offset: e.valid_up_to(),
    })?;
    let mut p = Parser {
        s: text,
        b: input,
        pos: 0,
        max_depth,
        // Room for a typical event's open containers: growing from empty
        // reallocated several times per line.
        members: Vec::with_capacity(32),
        items: Vec::with_capacity(16),
    };
    p.skip_ws();
    let mut root = Value::Null;
    p.value_with(0, |_, v| root = v).map_err(|e| *e)?;
    p.skip_ws();
    if p.pos != p.b.len() {
        return Err(*p.err("unexpected data after the JSON value"));
    }
    Ok(root)
}

struct Parser<'a> {
    s: &'a str,
    b: &'a [u8],
    pos: usize,
    max_depth: usize,
    /// Shared stacks: containers collect their children here and take an
    /// exactly sized Vec at the end (one allocation per container).
    members: Vec<(Cow<'a, str>, Value<'a>)>,
    items: Vec<Value<'a>>,
}

impl<'a> Parser<'a> {
    fn err(&self, msg: &str) -> Box<ParseError> {
        Box::new(ParseError {
            kind: ParseErrorKind::Syntax(msg.to_string()),
            offset: self.pos,
        })
    }

    #[inline]
    fn skip_ws(&mut self) {
        while let Some(&c) = self.b.get(self.pos) {
            if c == b' ' || c == b'\n' || c == b'\r' || c == b'\t' {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    /// Parses one value and hands it to `emit`, which stores it. Each variant is
    /// built right at the store: moving a finished `Value` out of a `Result`
    /// copied it in pieces that the store then read back whole, a
    /// store-forwarding stall per member (~3% of `stream`).
    #[inline(always)]
    fn value_with(&mut self, depth: usize, emit: impl FnOnce(&mut Self, Value<'a>)) -> PResult<()> {
        match self.b.get(self.pos) {
            Some(b'{') => {
                let members = self.object(depth + 1)?;
                emit(self, Value::Object(members));
            }
            Some(b'[') => {
                let items = self.array(depth + 1)?;
                emit(self, Value::Array(items));
            }
            Some(b'"') => {
                let s = self.string()?;
                emit(self, Value::String(s));
            }
            Some(b't') => {
                self.literal("true")?;
                emit(self, Value::Bool(true));
            }
            Some(b'f') => {
                self.literal("false")?;
                emit(self, Value::Bool(false));
            }
            Some(b'n') => {
                self.literal("null")?;
                emit(self, Value::Null);
            }
            Some(b'-' | b'0'..=b'9') => {
                let n = self.number()?;
                emit(self, Value::Number(n));
            }
            Some(_) => return Err(self.err("expected a JSON value")),
            None => return Err(self.err("unexpected end of input")),
        }
        Ok(())
    }

    fn literal(&mut self, word: &str) -> PResult<()> {
        if self.b[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(self.err("invalid literal (expected true, false or null)"))
        }
    }

    fn enter(&self, depth: usize) -> PResult<()> {
        if depth > self.max_depth {
            Err(Box::new(ParseError {
                kind: ParseErrorKind::TooDeep(self.max_depth),
                offset: self.pos,
            }))
        } else {
            Ok(())
        }
    }

    fn object(&mut self, depth: usize) -> PResult<Vec<(Cow<'a, str>, Value<'a>)>> {
        self.enter(depth)?;
        self.pos += 1;
        self.skip_ws();
        if self.b.get(self.pos) == Some(&b'}') {
            self.pos += 1;
            return Ok(Vec::new());
        }
        let base = self.members.len();
        let result = self.object_members(depth);
        if let Err(e) = result {
            self.members.truncate(base);
            return Err(e);
        }
        let mut members = self.members.split_off(base);
        let at = self.pos;
        sort_members(&mut members).map_err(|k| ParseError {
            kind: ParseErrorKind::DuplicateKey(k),
            offset: at,
        })?;
        Ok(members)
    }

    fn object_members(&mut self, depth: usize) -> PResult<()> {
        loop {
            self.skip_ws();
            if self.b.get(self.pos) != Some(&b'"') {
                return Err(self.err("expected a member name string"));
            }
            let key = self.string()?;
            self.skip_ws();
            if self.b.get(self.pos) != Some(&b':') {
                return Err(self.err("expected ':' after member name"));
            }
            self.pos += 1;
            self.skip_ws();
            self.value_with(depth, |p, v| p.members.push((key, v)))?;
            self.skip_ws();
            match self.b.get(self.pos) {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.err("expected ',' or '}' in object")),
            }
        }
    }

    fn array(&mut self, depth: usize) -> PResult<Vec<Value<'a>>> {
        self.enter(depth)?;
        self.pos += 1;
        self.skip_ws();
        if self.b.get(self.pos) == Some(&b']') {
            self.pos += 1;
            return Ok(Vec::new());
        }
        let base = self.items.len();
        let result = self.array_items(depth);
        if let Err(e) = result {
            self.items.truncate(base);
            return Err(e);
        }
        Ok(self.items.split_off(base))
    }

    fn array_items(&mut self, depth: usize) -> PResult<()> {
        loop {
            self.skip_ws();
            self.value_with(depth, |p, v| p.items.push(v))?;
            self.skip_ws();
            match self.b.get(self.pos) {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.err("expected ',' or ']' in array")),
            }
        }
    }

    fn number(&mut self) -> PResult<f64> {
        let start = self.pos;
        let b = self.b;
        let mut i = self.pos;
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        match b.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => {
                while matches!(b.get(i), Some(b'0'..=b'9')) {
                    i += 1;
                }
            }
            _ => {
                self.pos = i;
                return Err(self.err("invalid number"));
            }
        }
        let int_end = i;
        if b.get(i) == Some(&b'.') {
            i += 1;
            if !matches!(b.get(i), Some(b'0'..=b'9')) {
                self.pos = i;
                return Err(self.err("expected digits after the decimal point"));
            }
            while matches!(b.get(i), Some(b'0'..=b'9')) {
                i += 1;
            }
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(b.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            if !matches!(b.get(i), Some(b'0'..=b'9')) {
                self.pos = i;
                return Err(self.err("expected digits in the exponent"));
            }
            while matches!(b.get(i), Some(b'0'..=b'9')) {
                i += 1;
            }
        }
        self.pos = i;
        let lit = &self.s[start..i];
        // Short integers are exact in a double: skip the general float parser.
        if i == int_end && lit.len() <= 16 {
            if let Ok(n) = lit.parse::<i64>() {
                return Ok(n as f64);
            }
        }
        let f: f64 = lit.parse().map_err(|_| self.err("invalid number"))?;
        if !f.is_finite() {
            return Err(Box::new(ParseError {
                kind: ParseErrorKind::NumberOutOfRange,
                offset: start,
            }));
        }
        Ok(f)
    }

    fn string(&mut self) -> PResult<Cow<'a, str>> {
        self.pos += 1; // opening quote
        let start = self.pos;
        let b = self.b;
        // Fast path: find the first quote, backslash or control character a
        // word at a time; a string without escapes borrows the input.
        let mut at = start;
        let mut i = loop {
            let Some(word) = b.get(at..at + 8) else {
                // Under a word left: finish byte by byte.
                let plain = b[at..].iter().take_while(|&&c| !NEEDS_ESCAPE[c as usize]);
                break at + plain.count();
            };
            let mask = escape_mask(u64::from_le_bytes(word.try_into().unwrap_or([0; 8])));
            if mask != 0 {
                break at + (mask.trailing_zeros() / 8) as usize;
            }
            at += 8;
        };
        match b.get(i) {
            Some(b'"') => {
                self.pos = i + 1;
                return Ok(Cow::Borrowed(&self.s[start..i]));
            }
            Some(&c) if c < 0x20 => {
                self.pos = i;
                return Err(self.err("unescaped control character in string"));
            }
            _ => {} // a backslash, or the end of the input: the slow path reports it
        }
        let mut out = String::with_capacity(i - start + 16);
        out.push_str(&self.s[start..i]);
        loop {
            let Some(&c) = b.get(i) else {
                self.pos = i;
                return Err(self.err("unterminated string"));
            };
            match c {
                b'"' => {
                    self.pos = i + 1;
                    return Ok(Cow::Owned(out));
                }
                b'\\' => {
                    let Some(&e) = b.get(i + 1) else {
                        self.pos = i;
                        return Err(self.err("unterminated escape"));
                    };
                    i += 2;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let hi = self.hex4(i)?;
                            i += 4;
                            let cp = if (0xD800..0xDC00).contains(&hi) {
                                if b.get(i) != Some(&b'\\') || b.get(i + 1) != Some(&b'u') {
                                    self.pos = i;
                                    return Err(Box::new(ParseError {
                                        kind: ParseErrorKind::LoneSurrogate,
                                        offset: i,
                                    }));
                                }
                                let lo = self.hex4(i + 2)?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return Err(Box::new(ParseError {
                                        kind: ParseErrorKind::LoneSurrogate,
                                        offset: i,
                                    }));
                                }
                                i += 6;
                                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                            } else if (0xDC00..0xE000).contains(&hi) {
                                return Err(Box::new(ParseError {
                                    kind: ParseErrorKind::LoneSurrogate,
                                    offset: i - 6,
                                }));
                            } else {
                                hi
                            };
                            // Surrogates were excluded above, so this always succeeds.
                            out.push(char::from_u32(cp).unwrap_or('\u{FFFD}'));
                        }
                        _ => {
                            self.pos = i - 1;
                            return Err(self.err("invalid escape sequence"));
                        }
                    }
                }
                c if c < 0x20 => {
                    self.pos = i;
                    return Err(self.err("unescaped control character in string"));
                }
                _ => {
                    // Copy a run of plain bytes at once; runs end on ASCII so stay on char boundaries.
                    let run = i;
                    while i < b.len() && b[i] != b'"' && b[i] != b'\\' && b[i] >= 0x20 {
                        i += 1;
                    }
                    out.push_str(&self.s[run..i]);
                }
            }
        }
    }

    fn hex4(&mut self, at: usize) -> PResult<u32> {
        let digits = self.b.get(at..at + 4).ok_or_else(|| {
            self.pos = at;
            self.err("truncated \\u escape")
        })?;
        let mut v = 0u32;
        for &d in digits {
            let n = match d {
                b'0'..=b'9' => d - b'0',
                b'a'..=b'f' => d - b'a' + 10,
                b'A'..=b'F' => d - b'A' + 10,
                _ => {
                    self.pos = at;
                    return Err(self.err("invalid hex digit in \\u escape"));
                }
            };
            v = v * 16 + n as u32;
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_duplicate_keys() {
        let e = parse(br#"{"a":1,"b":2,"a":3}"#, 64).unwrap_err();
        assert_eq!(e.kind, ParseErrorKind::DuplicateKey("a".into()));
    }

    #[test]
    fn rejects_lone_surrogates() {
        for s in [
            r#""\ud800""#,
            r#""\udc00""#,
            r#""\ud800\u0041""#,
            r#""\ud800x""#,
        ] {
            assert_eq!(
                parse(s.as_bytes(), 8).unwrap_err().kind,
                ParseErrorKind::LoneSurrogate,
                "{s}"
            );
        }
        assert_eq!(
            parse(br#""\ud83d\ude00""#, 8).unwrap(),
            Value::String("😀".into())
        );
    }

    #[test]
    fn rejects_out_of_range_numbers_and_bad_syntax() {
        assert_eq!(
            parse(b"1e400", 8).unwrap_err().kind,
            ParseErrorKind::NumberOutOfRange
        );
        for bad in [
            "01",
            "1.",
            ".5",
            "-",
            "+1",
            "NaN",
            "Infinity",
            "[1,]",
            "{\"a\":1,}",
            "\"a\tb\"",
            "[1] 2",
        ] {
            assert!(parse(bad.as_bytes(), 8).is_err(), "{bad} should fail");
        }
    }

    #[test]
    fn depth_limit_applies_while_parsing() {
        let deep = "[".repeat(100_000);
        let e = parse(deep.as_bytes(), 64).unwrap_err();
        assert!(e.is_limit());
        assert!(parse(
            format!("{}{}", "[".repeat(64), "]".repeat(64)).as_bytes(),
            64
        )
        .is_ok());
        assert!(parse(
            format!("{}{}", "[".repeat(65), "]".repeat(65)).as_bytes(),
            64
        )
        .is_err());
    }

    #[test]
    fn utf16_order_puts_supplementary_before_private_use() {
        // U+1F600 is D83D DE00 in UTF-16, which sorts before U+FB33.
        assert_eq!(cmp_utf16("\u{1F600}", "\u{FB33}"), Ordering::Less);
        assert_eq!(cmp_utf16("a", "ab"), Ordering::Less);
        assert_eq!(cmp_utf16("\u{80}", "\u{f6}"), Ordering::Less);
    }
}
