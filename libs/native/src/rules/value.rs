//! Field values as rules see them, compared the way Python compares them.

use std::cmp::Ordering;

/// One value of a field: text, integer, floating point or boolean.
#[derive(Clone, Debug)]
pub enum Value {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl Value {
    /// The value as a number, booleans included (window values are Python's
    /// `isinstance(v, int | float)`, booleans too).
    pub fn number(&self) -> Option<f64> {
        match self {
            Value::Str(_) => None,
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            Value::Bool(b) => Some(f64::from(u8::from(*b))),
        }
    }

    /// The value as a number, booleans as 0 and 1 (Python's `True == 1`).
    fn as_number(&self) -> Option<Value> {
        match self {
            Value::Str(_) => None,
            Value::Bool(b) => Some(Value::Int(i64::from(*b))),
            number => Some(number.clone()),
        }
    }

    /// Python's order of two numbers (integers and floats; text and booleans have none),
    /// exact between an integer and a float: past 2**53 doubles skip integers, and
    /// `2**53 + 1 > 2.0**53` holds in Python where as doubles the two are equal.
    pub fn order(&self, other: &Value) -> Option<Ordering> {
        match (self, other) {
            (Value::Int(a), Value::Int(b)) => Some(a.cmp(b)),
            (Value::Float(a), Value::Float(b)) => a.partial_cmp(b),
            (Value::Int(a), Value::Float(b)) => int_float(*a, *b),
            (Value::Float(a), Value::Int(b)) => int_float(*b, *a).map(Ordering::reverse),
            _ => None,
        }
    }

    /// Python's `==`: text equals text, numbers (booleans included) equal by exact value.
    pub fn equals(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Str(a), Value::Str(b)) => a == b,
            _ => match (self.as_number(), other.as_number()) {
                (Some(a), Some(b)) => a.order(&b) == Some(Ordering::Equal),
                _ => false,
            },
        }
    }

    /// Differs from the proto3 default (what `exists` tests).
    pub fn is_set(&self) -> bool {
        match self {
            Value::Str(s) => !s.is_empty() && !s.ends_with("_UNSPECIFIED"),
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Bool(b) => *b,
        }
    }

    /// Python's `str()` of the value (group keys and rendered placeholders).
    pub fn text(&self) -> String {
        match self {
            Value::Str(s) => s.clone(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => float_repr(*f),
            Value::Bool(b) => if *b { "True" } else { "False" }.to_string(),
        }
    }
}

/// An integer against a float, exactly: the float's whole part, then its fraction.
fn int_float(i: i64, f: f64) -> Option<Ordering> {
    const TWO_63: f64 = 9_223_372_036_854_775_808.0; // exact as a double
    if f.is_nan() {
        return None;
    }
    if f >= TWO_63 {
        return Some(Ordering::Less);
    }
    if f < -TWO_63 {
        return Some(Ordering::Greater);
    }
    let whole = f.trunc();
    match i.cmp(&(whole as i64)) {
        Ordering::Equal => 0.0.partial_cmp(&(f - whole)),
        unequal => Some(unequal),
    }
}

/// Python's `repr(float)`: shortest round-trip digits, exponent form below 1e-4 and from 1e16.
pub fn float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.into();
    }
    let sci = format!("{f:e}"); // shortest digits: "-1.5e-7"
    let (mantissa, exp) = sci.split_once('e').expect("exponent form");
    let exp: i32 = exp.parse().expect("exponent");
    if (-4..16).contains(&exp) {
        let mut s = format!("{f}");
        if !s.contains('.') {
            s.push_str(".0");
        }
        return s;
    }
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exp.abs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_as_python_does() {
        for (f, want) in [
            (1.0, "1.0"),
            (0.5, "0.5"),
            (1e-7, "1e-07"),
            (1.5e16, "1.5e+16"),
            (123456.789, "123456.789"),
            (0.0001, "0.0001"),
            (-2.5e-5, "-2.5e-05"),
            (1e15, "1000000000000000.0"),
        ] {
            assert_eq!(float_repr(f), want);
        }
    }

    #[test]
    fn integers_and_floats_order_exactly_as_in_python() {
        let big = 1i64 << 53;
        let (i, f) = (Value::Int, Value::Float);
        assert_eq!(i(big + 1).order(&f(big as f64)), Some(Ordering::Greater));
        assert_eq!(f(big as f64).order(&i(big + 1)), Some(Ordering::Less));
        assert_eq!(i(big).order(&f(big as f64)), Some(Ordering::Equal));
        assert_eq!(
            i(i64::MAX).order(&f(9.223372036854776e18)),
            Some(Ordering::Less)
        );
        assert_eq!(
            i(i64::MIN).order(&f(-9.223372036854776e18)),
            Some(Ordering::Equal)
        );
        assert_eq!(i(-2).order(&f(-1.5)), Some(Ordering::Less));
        assert_eq!(i(-1).order(&f(-1.5)), Some(Ordering::Greater));
        assert_eq!(i(1).order(&f(1.5)), Some(Ordering::Less));
        assert_eq!(i(1).order(&f(f64::INFINITY)), Some(Ordering::Less));
        assert_eq!(i(1).order(&f(f64::NEG_INFINITY)), Some(Ordering::Greater));
        assert_eq!(i(1).order(&f(f64::NAN)), None);
        assert_eq!(i(1).order(&Value::Bool(true)), None);
        assert!(!i(big + 1).equals(&f(big as f64)));
    }

    #[test]
    fn equality_is_pythons() {
        assert!(Value::Int(1).equals(&Value::Float(1.0)));
        assert!(Value::Bool(true).equals(&Value::Int(1)));
        assert!(!Value::Str("1".into()).equals(&Value::Int(1)));
        assert!(Value::Str("a".into()).equals(&Value::Str("a".into())));
    }
}
