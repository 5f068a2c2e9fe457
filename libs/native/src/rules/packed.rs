//! The stored form of a window's samples: each sample's time and value as the
//! difference from the previous sample's, in as few bytes as they need.
//!
//! A window is rewritten whole at every save, and 16 bytes a sample (raw
//! doubles, the earlier form) made rows of several KB: PostgreSQL compressed
//! each (pglz) and moved it to TOAST, most of a save's time (110-150 ms for
//! 550 windows of 400 samples). Samples are in time order and close together,
//! and a count window's values are all 1.0, so the differences are small: about
//! 4 bytes a sample, and such a row stays inline and uncompressed.
//!
//! Exact: the bit patterns are what is differenced, with wrapping arithmetic,
//! so every double (NaN, -0.0, infinities included) comes back as it went in.
//!
//! Layout: [`VERSION`], then per sample the varint of the time's bits minus the
//! previous time's (wrapping: a window's times only grow, so a time before the
//! previous one, exact still, takes 10 bytes), and the varint of the value's
//! bits XOR the previous value's, bit-reversed (values whose low mantissa bits
//! are zero, whole numbers, then differ in low bits: few bytes). Both start from 0.

/// First byte of the stored form; text rows of earlier versions start with `f64:` or `[`.
pub const VERSION: u8 = 1;

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn varint(bytes: &[u8], at: &mut usize) -> Result<u64, String> {
    let mut n: u64 = 0;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*at).ok_or("packed samples cut short")?;
        *at += 1;
        if shift == 63 && b > 1 {
            return Err("packed samples: varint overflows 64 bits".into());
        }
        n |= u64::from(b & 0x7F) << shift;
        if b & 0x80 == 0 {
            return Ok(n);
        }
    }
    Err("packed samples: varint longer than 10 bytes".into())
}

/// The stored form of samples.
pub fn pack(samples: impl IntoIterator<Item = (f64, f64)>) -> Vec<u8> {
    let samples = samples.into_iter();
    let mut out = Vec::with_capacity(1 + 5 * samples.size_hint().0);
    out.push(VERSION);
    let (mut t0, mut v0) = (0u64, 0u64);
    for (t, v) in samples {
        let (t, v) = (t.to_bits(), v.to_bits());
        put_varint(&mut out, t.wrapping_sub(t0));
        put_varint(&mut out, (v ^ v0).reverse_bits());
        (t0, v0) = (t, v);
    }
    out
}

/// Samples from [`pack`]; an error names what is wrong with bytes it did not make.
pub fn unpack(bytes: &[u8]) -> Result<Vec<(f64, f64)>, String> {
    if bytes.first() != Some(&VERSION) {
        return Err("packed samples: not of this form (first byte)".into());
    }
    let mut out = Vec::with_capacity(bytes.len() / 4);
    let (mut at, mut t, mut v) = (1usize, 0u64, 0u64);
    while at < bytes.len() {
        t = t.wrapping_add(varint(bytes, &mut at)?);
        v ^= varint(bytes, &mut at)?.reverse_bits();
        out.push((f64::from_bits(t), f64::from_bits(v)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::{pack, unpack};

    fn same(a: &[(f64, f64)], b: &[(f64, f64)]) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| x.0.to_bits() == y.0.to_bits() && x.1.to_bits() == y.1.to_bits())
    }

    #[test]
    fn every_double_comes_back_bit_for_bit() {
        let odd = [
            0.0,
            -0.0,
            f64::NAN,
            -f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MIN_POSITIVE,
            f64::MAX,
            f64::MIN,
            1e-310,
            -1.5,
        ];
        let mut samples: Vec<(f64, f64)> = Vec::new();
        for &t in &odd {
            for &v in &odd {
                samples.push((t, v));
            }
        }
        samples.push((1_780_000_000.123_456, 1.0));
        samples.push((1_780_000_000.123_456, 1.0));
        samples.push((1_780_000_001.5, 4096.0));
        samples.push((1_779_999_999.0, 0.1)); // out of order
        assert!(same(&unpack(&pack(samples.clone())).unwrap(), &samples));
        assert!(unpack(&pack([])).unwrap().is_empty());
    }

    #[test]
    fn close_samples_of_a_count_take_a_few_bytes_each() {
        let samples: Vec<(f64, f64)> = (0..400)
            .map(|i| (1_780_000_000.0 + f64::from(i) * 0.25, 1.0))
            .collect();
        let packed = pack(samples.clone());
        assert!(packed.len() <= 4 * 400 + 11, "{} bytes", packed.len());
        assert!(same(&unpack(&packed).unwrap(), &samples));
    }

    #[test]
    fn bytes_it_did_not_make_are_refused() {
        assert!(unpack(b"f64:AAAA").is_err());
        assert!(unpack(b"").is_err());
        assert!(unpack(&[1, 0x80]).is_err()); // cut within a varint
        assert!(unpack(&[1, 2]).is_err()); // a time without its value
        assert!(
            unpack(&[1, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F, 0]).is_err()
        );
    }
}
