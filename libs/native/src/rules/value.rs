//! Field values as rules see them, compared the way Python compares them.

/// One value of a field: text, integer, floating point or boolean.
#[derive(Clone, Debug)]
pub enum Value {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl Value {
    /// The value as a number, booleans included (Python's `True == 1`; window
    /// values are Python's `isinstance(v, int | float)`, booleans too).
    pub fn number(&self) -> Option<f64> {
        match self {
            Value::Str(_) => None,
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            Value::Bool(b) => Some(f64::from(u8::from(*b))),
        }
    }

    /// A number for comparisons (`gt` and the like): integers and floats, not booleans.
    pub fn comparable(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// Python's `==`: text equals text, numbers (booleans included) equal by value.
    pub fn equals(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Str(a), Value::Str(b)) => a == b,
            (Value::Str(_), _) | (_, Value::Str(_)) => false,
            (Value::Int(a), Value::Int(b)) => a == b,
            _ => self.number() == other.number(),
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
    fn equality_is_pythons() {
        assert!(Value::Int(1).equals(&Value::Float(1.0)));
        assert!(Value::Bool(true).equals(&Value::Int(1)));
        assert!(!Value::Str("1".into()).equals(&Value::Int(1)));
        assert!(Value::Str("a".into()).equals(&Value::Str("a".into())));
    }
}
