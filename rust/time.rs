//! RFC 3339 timestamps, normalized to UTC: `YYYY-MM-DDTHH:MM:SS[.fraction]Z`.
//! The fraction keeps its significant digits (trailing zeros dropped, at most 9).
//! Nothing here reads the clock.

use std::borrow::Cow;

/// Normalizes an RFC 3339 date-time to UTC, or says what is wrong with it.
pub fn normalize_rfc3339(s: &str) -> Result<String, String> {
    normalize_rfc3339_cow(s).map(Cow::into_owned)
}

/// Like `normalize_rfc3339`, but borrows input that is already normalized
/// (the usual case: collectors write UTC with 'Z'), skipping the formatting.
pub fn normalize_rfc3339_cow(s: &str) -> Result<Cow<'_, str>, String> {
    let t = parse(s)?;
    let frac = t.frac.trim_end_matches('0');
    // Already normalized: 'T', 'Z', no trailing zeros in the fraction.
    let b = s.as_bytes();
    if b[10] == b'T' && b[b.len() - 1] == b'Z' && frac.len() == t.frac.len() {
        return Ok(Cow::Borrowed(s));
    }
    let (y, mo, d, h, mi, se) = civil_from_secs(t.utc_seconds());
    if !(0..=9999).contains(&y) {
        return Err(format!("{s:?} falls outside years 0000-9999 in UTC"));
    }
    let mut out = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{se:02}");
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    out.push('Z');
    Ok(Cow::Owned(out))
}

/// `(milliseconds since the Unix epoch, UTC offset in minutes)` of an RFC 3339
/// date-time that `normalize_rfc3339` accepts, or None. Sub-millisecond digits are
/// truncated.
pub fn epoch_millis(s: &str) -> Option<(i64, i32)> {
    let t = parse(s).ok()?;
    let secs = t.utc_seconds();
    // Years 0000-9999 once in UTC, as normalize_rfc3339 requires.
    if !(-62_167_219_200..=253_402_300_799).contains(&secs) {
        return None;
    }
    let millis = t
        .frac
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .fold(0i64, |v, c| v * 10 + (c - b'0') as i64);
    Some((secs * 1000 + millis, t.offset_min as i32))
}

/// An RFC 3339 date-time's fields, checked (calendar, time of day, zone).
struct Parsed<'a> {
    year: u32,
    month: u32,
    day: u32,
    hour: u32,
    min: u32,
    sec: u32,
    frac: &'a str,
    offset_min: i64,
}

impl Parsed<'_> {
    fn utc_seconds(&self) -> i64 {
        let days = days_from_civil(self.year as i64, self.month, self.day);
        days * 86_400 + (self.hour as i64) * 3600 + (self.min as i64) * 60 + self.sec as i64
            - self.offset_min * 60
    }
}

fn parse(s: &str) -> Result<Parsed<'_>, String> {
    let b = s.as_bytes();
    let bad = || format!("{s:?} is not an RFC 3339 date-time (expected e.g. 2026-05-01T12:00:00Z)");
    if b.len() < 20 {
        return Err(bad());
    }
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        let mut v = 0u32;
        for &c in b.get(r)? {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + (c - b'0') as u32;
        }
        Some(v)
    };
    let sep_ok = b[4] == b'-'
        && b[7] == b'-'
        && matches!(b[10], b'T' | b't' | b' ')
        && b[13] == b':'
        && b[16] == b':';
    if !sep_ok {
        return Err(bad());
    }
    let (Some(year), Some(month), Some(day), Some(hour), Some(min), Some(sec)) = (
        digits(0..4),
        digits(5..7),
        digits(8..10),
        digits(11..13),
        digits(14..16),
        digits(17..19),
    ) else {
        return Err(bad());
    };
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return Err(format!("{s:?} has an invalid calendar date"));
    }
    if hour > 23 || min > 59 || sec > 59 {
        return Err(format!(
            "{s:?} has an invalid time of day (leap seconds are not accepted)"
        ));
    }
    let mut i = 19;
    let mut frac = "";
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while b.get(i).is_some_and(|c| c.is_ascii_digit()) {
            i += 1;
        }
        if i == start || i - start > 9 {
            return Err(format!("{s:?} needs 1 to 9 fractional-second digits"));
        }
        frac = &s[start..i];
    }
    let offset_min: i64 = match &b[i..] {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let oh = digits(i + 1..i + 3).filter(|_| h1.is_ascii_digit() && h2.is_ascii_digit());
            let om = digits(i + 4..i + 6).filter(|_| m1.is_ascii_digit() && m2.is_ascii_digit());
            match (oh, om) {
                (Some(h), Some(m)) if h <= 23 && m <= 59 => {
                    let v = (h * 60 + m) as i64;
                    if *sign == b'-' {
                        -v
                    } else {
                        v
                    }
                }
                _ => return Err(bad()),
            }
        }
        _ => {
            return Err(format!(
                "{s:?} needs a time zone: 'Z' or an offset like +02:00"
            ))
        }
    };
    Ok(Parsed {
        year,
        month,
        day,
        hour,
        min,
        sec,
        frac,
        offset_min,
    })
}

fn is_leap(y: u32) -> bool {
    (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400)
}

fn days_in_month(y: u32, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(y) => 29,
        _ => 28,
    }
}

// Howard Hinnant's days_from_civil / civil_from_days.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_secs(secs: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    (
        y,
        m,
        d,
        (rem / 3600) as u32,
        ((rem % 3600) / 60) as u32,
        (rem % 60) as u32,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_offsets_and_fractions_to_utc() {
        assert_eq!(
            normalize_rfc3339("2026-05-01T12:00:00Z").unwrap(),
            "2026-05-01T12:00:00Z"
        );
        assert_eq!(
            normalize_rfc3339("2026-05-01t12:00:00.500z").unwrap(),
            "2026-05-01T12:00:00.5Z"
        );
        assert_eq!(
            normalize_rfc3339("2026-05-01T01:30:00+02:00").unwrap(),
            "2026-04-30T23:30:00Z"
        );
        assert_eq!(
            normalize_rfc3339("2024-12-31T23:59:59.000000001-01:00").unwrap(),
            "2025-01-01T00:59:59.000000001Z"
        );
        assert_eq!(
            normalize_rfc3339("2024-02-29T00:00:00Z").unwrap(),
            "2024-02-29T00:00:00Z"
        );
    }

    #[test]
    fn borrows_input_that_is_already_normalized() {
        assert!(matches!(
            normalize_rfc3339_cow("2026-05-01T12:00:00.5Z"),
            Ok(Cow::Borrowed(_))
        ));
        assert!(matches!(
            normalize_rfc3339_cow("2026-05-01T12:00:00Z"),
            Ok(Cow::Borrowed(_))
        ));
        for needs_work in [
            "2026-05-01T12:00:00.50Z",
            "2026-05-01t12:00:00Z",
            "2026-05-01T12:00:00+00:00",
            "2026-05-01T12:00:00.000Z",
        ] {
            let n = normalize_rfc3339_cow(needs_work).unwrap();
            assert!(matches!(n, Cow::Owned(_)), "{needs_work}");
        }
        assert_eq!(
            normalize_rfc3339("2026-05-01T12:00:00.000Z").unwrap(),
            "2026-05-01T12:00:00Z"
        );
    }

    #[test]
    fn epoch_millis_truncates_to_milliseconds_and_keeps_the_offset() {
        assert_eq!(epoch_millis("1970-01-01T00:00:00Z"), Some((0, 0)));
        assert_eq!(
            epoch_millis("2026-05-01T01:30:00.98765+02:00"),
            Some((1_777_591_800_987, 120))
        );
        assert_eq!(epoch_millis("1969-12-31T23:59:59.5Z"), Some((-500, 0)));
        assert_eq!(
            epoch_millis("0000-01-01T00:00:00Z"),
            Some((-62_167_219_200_000, 0))
        );
        assert_eq!(epoch_millis("0000-01-01T00:30:00+01:00"), None);
        assert_eq!(epoch_millis("9999-12-31T23:59:59-00:01"), None);
        assert_eq!(epoch_millis("2023-02-29T00:00:00Z"), None);
    }

    #[test]
    fn rejects_invalid_times() {
        for bad in [
            "2026-05-01",
            "2026-05-01T12:00:00",
            "2026-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2026-05-01T24:00:00Z",
            "2026-05-01T12:00:60Z",
            "2026-05-01T12:00:00.Z",
            "2026-05-01T12:00:00+2:00",
            "yesterday at noon",
            "2026-05-01T12:00:00.1234567890Z",
        ] {
            assert!(normalize_rfc3339(bad).is_err(), "{bad}");
        }
    }
}
