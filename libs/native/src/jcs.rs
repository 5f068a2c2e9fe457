//! RFC 8785 (JSON Canonicalization Scheme) pieces: strings, numbers, key order,
//! and the proto3 JSON text of timestamps and durations.

use std::cmp::Ordering;
use std::fmt::Write as _;

use crate::Error;

/// A JSON string as RFC 8785 writes it: only `"`, `\` and control characters escaped.
pub fn string(out: &mut Vec<u8>, s: &str) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    let bytes = s.as_bytes();
    let (mut start, mut i) = (0, 0); // `start`: the first byte not yet copied
    while i < bytes.len() {
        // Eight plain bytes at a time: content is long text with few escapes.
        if let Some(chunk) = bytes.get(i..i + 8) {
            if !needs_escape(u64::from_le_bytes(chunk.try_into().expect("8 bytes"))) {
                i += 8;
                continue;
            }
        }
        let b = bytes[i];
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => b"",
            _ => {
                i += 1;
                continue;
            }
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.push(HEX[(b >> 4) as usize]);
            out.push(HEX[(b & 0xf) as usize]);
        } else {
            out.extend_from_slice(escape);
        }
        i += 1;
        start = i;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Whether any of the eight bytes of `x` is below 0x20, a quote or a backslash
/// (the bytes a JSON string escapes), by the "has a byte less than n" bit trick.
fn needs_escape(x: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let below = |v: u64, n: u64| v.wrapping_sub(ONES * n) & !v & HIGH;
    let quote = x ^ (ONES * u64::from(b'"'));
    let backslash = x ^ (ONES * u64::from(b'\\'));
    below(x, 0x20) | below(quote, 1) | below(backslash, 1) != 0
}

/// RFC 8785 member order: by UTF-16 code units.
pub fn key_order(a: &str, b: &str) -> Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

/// ECMAScript `Number.prototype.toString` of a finite double (RFC 8785 section 3.2.2.3).
pub fn number(out: &mut Vec<u8>, x: f64) -> Result<(), Error> {
    if !x.is_finite() {
        return Err(Error::new(format!("{x} has no JSON form")));
    }
    if x == 0.0 {
        out.push(b'0');
        return Ok(());
    }
    if x < 0.0 {
        out.push(b'-');
    }
    let (digits, n) = shortest_digits(x.abs());
    let digits = digits.as_str();
    let k = digits.len() as i32;
    let text = if k <= n && n <= 21 {
        format!("{digits}{}", "0".repeat((n - k) as usize))
    } else if 0 < n && n <= 21 {
        format!("{}.{}", &digits[..n as usize], &digits[n as usize..])
    } else if -6 < n && n <= 0 {
        format!("0.{}{digits}", "0".repeat((-n) as usize))
    } else {
        let e = n - 1;
        let head = if k == 1 {
            digits.to_string()
        } else {
            format!("{}.{}", &digits[..1], &digits[1..])
        };
        format!("{head}e{}{}", if e > 0 { '+' } else { '-' }, e.abs())
    };
    out.extend_from_slice(text.as_bytes());
    Ok(())
}

/// The shortest digits that read back as `x` (> 0), and where the decimal point goes:
/// `x` = 0.`digits` × 10^`n`. Between two shortest candidates equally close to `x`,
/// the one ending in an even digit, as ECMAScript's `Number::toString` (and Python's
/// `repr`) choose; Rust's `{:e}` may give the other (70368744177664.625 is printed
/// `…64.63`, not `…64.62`).
fn shortest_digits(x: f64) -> (String, i32) {
    let (digits, exp) = scientific(&format!("{x:e}"));
    let n = exp + 1;
    let Ok(value) = digits.parse::<u64>() else {
        return (digits, n);
    };
    if value % 2 == 0 {
        return (digits, n);
    }
    let scale = n - digits.len() as i32; // x ≈ value × 10^scale
    for other in [value - 1, value + 1] {
        // Rarely does a neighbour read back too; only then is x's exact expansion
        // (up to 767 digits, the costliest step by far) needed to find a tie.
        if format!("{other}e{scale}").parse::<f64>() != Ok(x) {
            continue;
        }
        // A tie: x is exactly the midpoint, the smaller of the two followed by a 5.
        let exact = scientific(&format!("{x:.800e}"));
        let midpoint = format!("{}5", value.min(other));
        if exact.0 == midpoint && exact.1 == scale - 1 + midpoint.len() as i32 - 1 {
            let text = other.to_string();
            return (
                text.trim_end_matches('0').to_string(),
                scale + text.len() as i32,
            );
        }
    }
    (digits, n)
}

/// (significant digits without trailing zeros, decimal exponent) of Rust's `d.ddde±x`.
fn scientific(text: &str) -> (String, i32) {
    let (mantissa, exp) = text.split_once('e').expect("{:e} always has an exponent");
    let exp: i32 = exp.parse().expect("{:e} exponent is an integer");
    let digits: String = mantissa.chars().filter(|&c| c != '.').collect();
    (digits.trim_end_matches('0').to_string(), exp)
}

/// `.fff`, `.ffffff` or `.fffffffff`, the fewest of the three that hold `nanos` (none for 0).
fn fraction(text: &mut String, nanos: u64) {
    if nanos == 0 {
    } else if nanos.is_multiple_of(1_000_000) {
        let _ = write!(text, ".{:03}", nanos / 1_000_000);
    } else if nanos.is_multiple_of(1000) {
        let _ = write!(text, ".{:06}", nanos / 1000);
    } else {
        let _ = write!(text, ".{nanos:09}");
    }
}

const MIN_SECONDS: i64 = -62_135_596_800; // 0001-01-01T00:00:00Z
const MAX_SECONDS: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z

/// A `google.protobuf.Timestamp` in its proto3 JSON form (RFC 3339, UTC, `Z`).
pub fn timestamp(out: &mut Vec<u8>, seconds: i64, nanos: i32) -> Result<(), Error> {
    if !(MIN_SECONDS..=MAX_SECONDS).contains(&seconds) || !(0..1_000_000_000).contains(&nanos) {
        return Err(Error::new(format!(
            "timestamp {seconds}s {nanos}ns is outside 0001-01-01 to 9999-12-31"
        )));
    }
    let (days, secs) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    let mut text = format!(
        "\"{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
    fraction(&mut text, nanos as u64);
    text.push_str("Z\"");
    out.extend_from_slice(text.as_bytes());
    Ok(())
}

/// A `google.protobuf.Duration` in its proto3 JSON form (`-1.5s`).
pub fn duration(out: &mut Vec<u8>, seconds: i64, nanos: i32) {
    let mut text = String::from("\"");
    if seconds < 0 || nanos < 0 {
        text.push('-');
    }
    let _ = write!(text, "{}", seconds.unsigned_abs());
    fraction(&mut text, u64::from(nanos.unsigned_abs()));
    text.push_str("s\"");
    out.extend_from_slice(text.as_bytes());
}

/// Proleptic Gregorian (year, month, day) of a day count from 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}
