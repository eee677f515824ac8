//! RFC 8785 JSON Canonicalization Scheme (JCS) serializer.
//!
//! Objects arrive sorted from the parser (`json::Value::Object` invariant), so
//! serialization is a single pass: ES6 number formatting (`ryu-js`, which
//! implements ECMAScript `Number.prototype.toString`), minimal string escaping
//! with lowercase `\u00xx` for other control characters, no whitespace.

use std::borrow::Cow;

use crate::json::{self, ParseError, Value};

/// Appends the canonical form of `v` to `out`.
pub fn write_value(out: &mut Vec<u8>, v: &Value<'_>) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => write_number(out, *n),
        Value::String(Cow::Borrowed(s)) => write_plain_string(out, s),
        Value::String(Cow::Owned(s)) => write_string(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item);
            }
            out.push(b']');
        }
        Value::Object(members) => {
            out.push(b'{');
            for (i, (k, item)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                match k {
                    Cow::Borrowed(k) => write_plain_string(out, k),
                    Cow::Owned(k) => write_string(out, k),
                }
                out.push(b':');
                write_value(out, item);
            }
            out.push(b'}');
        }
    }
}

/// ES6 `Number.prototype.toString` for a finite double (callers reject NaN/Infinity).
pub fn write_number(out: &mut Vec<u8>, n: f64) {
    // Integers below 2^53 print as plain digits; skip the shortest-digits search for them.
    if n.fract() == 0.0 && n.abs() < 9_007_199_254_740_992.0 {
        let i = n as i64; // -0.0 becomes 0, as ES6 prints it
        let mut buf = itoa_buf(i);
        out.extend_from_slice(buf.as_bytes_mut());
        return;
    }
    let mut b = ryu_js::Buffer::new();
    out.extend_from_slice(b.format_finite(n).as_bytes());
}

struct IntBuf {
    bytes: [u8; 20],
    start: usize,
}

impl IntBuf {
    fn as_bytes_mut(&mut self) -> &[u8] {
        &self.bytes[self.start..]
    }
}

fn itoa_buf(mut i: i64) -> IntBuf {
    let mut bytes = [0u8; 20];
    let mut pos = 20;
    let neg = i < 0;
    if i == 0 {
        pos -= 1;
        bytes[pos] = b'0';
    }
    while i != 0 {
        pos -= 1;
        bytes[pos] = b'0' + (i % 10).unsigned_abs() as u8;
        i /= 10;
    }
    if neg {
        pos -= 1;
        bytes[pos] = b'-';
    }
    IntBuf { bytes, start: pos }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Bytes that must be escaped: control characters, '"' and '\'.
pub(crate) static NEEDS_ESCAPE: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// Marks (bit 7 of the byte) the 8 bytes of `w` (little-endian) that are control
/// characters, '"' or '\\'. Uses the "has less than" / "has zero byte" word
/// tricks: bytes above a marked one may be marked falsely, but the lowest mark
/// is exact, so `trailing_zeros() / 8` is the index of the first such byte.
#[inline(always)]
pub(crate) fn escape_mask(w: u64) -> u64 {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let ctl = w.wrapping_sub(LO * 0x20) & !w & HI;
    let q = w ^ (LO * b'"' as u64);
    let q = q.wrapping_sub(LO) & !q & HI;
    let bs = w ^ (LO * b'\\' as u64);
    let bs = bs.wrapping_sub(LO) & !bs & HI;
    ctl | q | bs
}

/// Bit i set for each of the 16 bytes of `block` that is a control
/// character, '"' or '\\' (SSE2, which every x86-64 CPU has).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn escape_mask16(block: &[u8; 16]) -> u32 {
    use std::arch::x86_64::*;
    // SAFETY: SSE2 is part of x86-64; the load reads the 16 bytes of `block`.
    unsafe {
        let v = _mm_loadu_si128(block.as_ptr().cast());
        let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
        let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
        // Unsigned c < 0x20: min(c, 0x1f) == c.
        let control = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1f)), v);
        _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), control)) as u32
    }
}

#[inline(always)]
fn escape_byte(out: &mut Vec<u8>, c: u8) {
    match c {
        b'"' => out.extend_from_slice(b"\\\""),
        b'\\' => out.extend_from_slice(b"\\\\"),
        b'\x08' => out.extend_from_slice(b"\\b"),
        b'\x0c' => out.extend_from_slice(b"\\f"),
        b'\n' => out.extend_from_slice(b"\\n"),
        b'\r' => out.extend_from_slice(b"\\r"),
        b'\t' => out.extend_from_slice(b"\\t"),
        _ => out.extend_from_slice(&[
            b'\\',
            b'u',
            b'0',
            b'0',
            HEX[(c >> 4) as usize],
            HEX[(c & 0xf) as usize],
        ]),
    }
}

/// A string known to need no escaping (see the `Value::String` invariant).
#[inline]
pub fn write_plain_string(out: &mut Vec<u8>, s: &str) {
    debug_assert!(
        !s.bytes().any(|c| NEEDS_ESCAPE[c as usize]),
        "borrowed string needs escaping: {s:?}"
    );
    out.reserve(s.len() + 2);
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
}

pub fn write_string(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    out.reserve(b.len() + 2);
    out.push(b'"');
    let mut run = 0; // start of bytes not yet copied
    let mut i = 0;
    while i < b.len() {
        // The next byte to escape: 16 bytes at a time, then a word at a time,
        // then byte by byte on the tail.
        #[cfg(target_arch = "x86_64")]
        if let Some(block) = b.get(i..i + 16).and_then(|x| <&[u8; 16]>::try_from(x).ok()) {
            let mask = escape_mask16(block);
            if mask == 0 {
                i += 16;
                continue;
            }
            let special = i + mask.trailing_zeros() as usize;
            out.extend_from_slice(&b[run..special]);
            escape_byte(out, b[special]);
            i = special + 1;
            run = i;
            continue;
        }
        let special = match b.get(i..i + 8) {
            Some(word) => {
                let mask = escape_mask(u64::from_le_bytes(word.try_into().unwrap_or([0; 8])));
                if mask == 0 {
                    i += 8;
                    continue;
                }
                i + (mask.trailing_zeros() / 8) as usize
            }
            None => match b[i..].iter().position(|&c| NEEDS_ESCAPE[c as usize]) {
                Some(n) => i + n,
                None => break,
            },
        };
        out.extend_from_slice(&b[run..special]);
        escape_byte(out, b[special]);
        i = special + 1;
        run = i;
    }
    out.extend_from_slice(&b[run..]);
    out.push(b'"');
}

/// Parses JSON text and returns its canonical form.
pub fn canonicalize(input: &[u8], max_depth: usize) -> Result<Vec<u8>, ParseError> {
    let v = json::parse(input, max_depth)?;
    let mut out = Vec::with_capacity(input.len());
    write_value(&mut out, &v);
    Ok(out)
}

pub fn to_vec(v: &Value<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    write_value(&mut out, v);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(n: f64) -> String {
        let mut v = Vec::new();
        write_number(&mut v, n);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn es6_number_edge_cases() {
        assert_eq!(num(1e21), "1e+21");
        assert_eq!(num(1e20), "100000000000000000000");
        assert_eq!(num(1e-7), "1e-7");
        assert_eq!(num(1e-6), "0.000001");
        assert_eq!(num(-0.0), "0");
        assert_eq!(num(9007199254740993.0), "9007199254740992");
        assert_eq!(num(5e-324), "5e-324");
        assert_eq!(num(1.7976931348623157e308), "1.7976931348623157e+308");
        assert_eq!(num(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(num(-1.5), "-1.5");
        assert_eq!(num(333333333.3333333), "333333333.3333333");
        assert_eq!(num(-9007199254740991.0), "-9007199254740991");
    }

    #[test]
    fn write_string_escapes_at_every_position_in_words_and_tail() {
        for len in 0..50 {
            for at in 0..len {
                for special in [
                    '"', '\\', '\n', '\u{1f}', '\0', 'é', ' ', '\u{7f}', '!', '[', ']',
                ] {
                    let s: String = (0..len)
                        .map(|i| {
                            if i == at || i + 1 == len {
                                special
                            } else {
                                'a'
                            }
                        })
                        .collect();
                    let mut expect = String::from('"');
                    for c in s.chars() {
                        match c {
                            '"' => expect.push_str("\\\""),
                            '\\' => expect.push_str("\\\\"),
                            '\n' => expect.push_str("\\n"),
                            c if u32::from(c) < 0x20 => {
                                expect.push_str(&format!("\\u{:04x}", u32::from(c)))
                            }
                            c => expect.push(c),
                        }
                    }
                    expect.push('"');
                    let mut out = Vec::new();
                    write_string(&mut out, &s);
                    assert_eq!(String::from_utf8(out).unwrap(), expect, "{s:?}");
                }
            }
        }
    }

    #[test]
    fn rfc8785_section_3_2_2_example() {
        let input = br#"{
  "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
  "literals": [null, true, false]
}"#;
        let expected = "{\"literals\":[null,true,false],\"numbers\":[333333333.3333333,1e+30,4.5,0.002,1e-27],\"string\":\"€$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\"}";
        assert_eq!(
            String::from_utf8(canonicalize(input, 64).unwrap()).unwrap(),
            expected
        );
    }

    #[test]
    fn rfc8785_section_3_2_3_sorting_example() {
        let input = r#"{"\u20ac": "Euro Sign", "\r": "Carriage Return", "\ufb33": "Hebrew Letter Dalet With Dagesh", "1": "One", "\ud83d\ude00": "Emoji: Grinning Face", "\u0080": "Control", "\u00f6": "Latin Small Letter O With Diaeresis"}"#;
        let out = String::from_utf8(canonicalize(input.as_bytes(), 64).unwrap()).unwrap();
        let values: Vec<&str> = out
            .split("\":\"")
            .skip(1)
            .map(|s| s.split('"').next().unwrap())
            .collect();
        assert_eq!(
            values,
            [
                "Carriage Return",
                "One",
                "Control",
                "Latin Small Letter O With Diaeresis",
                "Euro Sign",
                "Emoji: Grinning Face",
                "Hebrew Letter Dalet With Dagesh"
            ]
        );
    }

    #[test]
    fn mutated_json_never_panics_and_canonical_form_is_a_fixed_point() {
        let seed = br#"{"b":[1,2.5e-3,-0,"\u00e9\ud83d\ude00",{"x":null,"\u0000":true}],"a":"t\"q\\","c":{"d":[[],{}]},"n":1e21}"#;
        let alphabet = b"{}[]\",:.-+eE0123456789tfnul \\/\x00\x7f\xc3\xa9\xff";
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let mut input = seed.to_vec();
            for _ in 0..(next() % 4 + 1) {
                let pos = (next() as usize) % (input.len() + 1);
                let byte = alphabet[(next() as usize) % alphabet.len()];
                match next() % 3 {
                    0 if pos < input.len() => input[pos] = byte,
                    1 => input.insert(pos, byte),
                    _ if pos < input.len() => {
                        input.remove(pos);
                    }
                    _ => {}
                }
            }
            if let Ok(c) = canonicalize(&input, 64) {
                assert_eq!(
                    canonicalize(&c, 64).unwrap(),
                    c,
                    "not a fixed point: {}",
                    String::from_utf8_lossy(&input)
                );
            }
        }
    }
}
