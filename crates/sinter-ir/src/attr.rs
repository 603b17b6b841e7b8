//! Attribute values as the text format sees them, and the conversion between them and the typed fields
//! of `Op` variants.
//!
//! Ops carry typed attributes (`strides: Vec<i64>`, `alpha: f32`, `direction: RnnDirection`). The text
//! format and generic tooling see them as `AttrValue`s. `AttrType` converts both ways; the `define_ops!`
//! table in `op.rs` uses it to print only non-default attributes and to fill defaults when parsing.

use crate::DType;
use std::fmt;

/// An attribute value in its generic, printable form.
#[derive(Clone, Debug, PartialEq)]
pub enum AttrValue {
    Int(i64),
    /// A float attribute of f64 precision. The parser produces every float literal as `Float`.
    Float(f64),
    /// A float attribute of f32 precision. Printed in its shortest f32 form (see [`write_f32`]).
    Float32(f32),
    Bool(bool),
    Ints(Vec<i64>),
    Floats(Vec<f64>),
    Floats32(Vec<f32>),
    /// A bare identifier: dtype names and enum values (`f32`, `same_upper`, `bidirectional`).
    Ident(String),
    Idents(Vec<String>),
}

impl AttrValue {
    /// A short description of the value's kind, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            AttrValue::Int(_) => "an integer",
            AttrValue::Float(_) | AttrValue::Float32(_) => "a float",
            AttrValue::Bool(_) => "a bool",
            AttrValue::Ints(_) => "a list of integers",
            AttrValue::Floats(_) | AttrValue::Floats32(_) => "a list of floats",
            AttrValue::Ident(_) => "an identifier",
            AttrValue::Idents(_) => "a list of identifiers",
        }
    }
}

/// Writes a float so that parsing it back as f64 gives the same bits: the shortest round-trip form
/// for finite values, `inf`/`-inf`, and `nan` for the canonical quiet NaN. Other NaN payloads are
/// written as their bit pattern, `nan(0x7ff4000000000000)`.
pub fn write_f64(f: &mut impl fmt::Write, x: f64) -> fmt::Result {
    if x.is_nan() {
        if x.to_bits() == f64::NAN.to_bits() {
            f.write_str("nan")
        } else {
            write!(f, "nan(0x{:016x})", x.to_bits())
        }
    } else if x.is_infinite() {
        f.write_str(if x > 0.0 { "inf" } else { "-inf" })
    } else {
        // `{:?}` is the shortest representation that round-trips and always shows a `.` or an
        // exponent, so the parser can tell a float from an integer.
        write!(f, "{x:?}")
    }
}

/// Writes an f32 so that both `parse::<f32>()` and `parse::<f64>() as f32` give the same bits.
///
/// For finite values this is the shortest f32 representation, except where that decimal would
/// double-round when parsed as f64 and narrowed (an exhaustive check over all 2^32 patterns found such
/// values, for example `7.038531e-26`); those are written in the exact f64 form of the f32 value.
/// NaNs other than the canonical one are written as their bit pattern, `nan32(0x7fc00001)`.
pub fn write_f32(f: &mut impl fmt::Write, x: f32) -> fmt::Result {
    if x.is_nan() {
        if x.to_bits() == f32::NAN.to_bits() {
            f.write_str("nan")
        } else {
            write!(f, "nan32(0x{:08x})", x.to_bits())
        }
    } else if x.is_infinite() {
        f.write_str(if x > 0.0 { "inf" } else { "-inf" })
    } else {
        let short = format!("{x:?}");
        let narrowed = short.parse::<f64>().map(|wide| wide as f32);
        if narrowed.is_ok_and(|n| n.to_bits() == x.to_bits()) {
            f.write_str(&short)
        } else {
            write!(f, "{:?}", f64::from(x))
        }
    }
}

impl fmt::Display for AttrValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn list<T>(
            f: &mut fmt::Formatter<'_>,
            items: &[T],
            mut one: impl FnMut(&mut fmt::Formatter<'_>, &T) -> fmt::Result,
        ) -> fmt::Result {
            f.write_str("[")?;
            for (idx, item) in items.iter().enumerate() {
                if idx > 0 {
                    f.write_str(", ")?;
                }
                one(f, item)?;
            }
            f.write_str("]")
        }
        match self {
            AttrValue::Int(v) => write!(f, "{v}"),
            AttrValue::Float(v) => write_f64(f, *v),
            AttrValue::Float32(v) => write_f32(f, *v),
            AttrValue::Bool(v) => write!(f, "{v}"),
            AttrValue::Ints(v) => list(f, v, |f, x| write!(f, "{x}")),
            AttrValue::Floats(v) => list(f, v, |f, x| write_f64(f, *x)),
            AttrValue::Floats32(v) => list(f, v, |f, x| write_f32(f, *x)),
            AttrValue::Ident(v) => f.write_str(v),
            AttrValue::Idents(v) => list(f, v, |f, x| f.write_str(x)),
        }
    }
}

/// A Rust type that can be an op attribute.
pub trait AttrType: Sized {
    /// What the text format expects, for error messages (`"a list of integers"`).
    const EXPECTED: &'static str;
    fn to_attr(&self) -> AttrValue;
    /// Converts back; `None` when the value has the wrong kind or is out of range.
    fn from_attr(value: &AttrValue) -> Option<Self>;
    /// Equality that tells `-0.0` from `0.0` and compares NaNs by bits. The printer omits an
    /// attribute only when it is identical to its default, so that no value is lost in the text.
    fn identical(&self, other: &Self) -> bool;
}

impl AttrType for i64 {
    const EXPECTED: &'static str = "an integer";
    fn to_attr(&self) -> AttrValue {
        AttrValue::Int(*self)
    }
    fn from_attr(value: &AttrValue) -> Option<Self> {
        match value {
            AttrValue::Int(v) => Some(*v),
            _ => None,
        }
    }
    fn identical(&self, other: &Self) -> bool {
        self == other
    }
}

impl AttrType for f32 {
    const EXPECTED: &'static str = "a float";
    fn to_attr(&self) -> AttrValue {
        AttrValue::Float32(*self)
    }
    fn from_attr(value: &AttrValue) -> Option<Self> {
        match value {
            AttrValue::Float(v) => Some(*v as f32),
            AttrValue::Float32(v) => Some(*v),
            AttrValue::Int(v) => Some(*v as f32),
            _ => None,
        }
    }
    fn identical(&self, other: &Self) -> bool {
        self.to_bits() == other.to_bits()
    }
}

impl AttrType for f64 {
    const EXPECTED: &'static str = "a float";
    fn to_attr(&self) -> AttrValue {
        AttrValue::Float(*self)
    }
    fn from_attr(value: &AttrValue) -> Option<Self> {
        match value {
            AttrValue::Float(v) => Some(*v),
            AttrValue::Float32(v) => Some(f64::from(*v)),
            AttrValue::Int(v) => Some(*v as f64),
            _ => None,
        }
    }
    fn identical(&self, other: &Self) -> bool {
        self.to_bits() == other.to_bits()
    }
}

impl AttrType for bool {
    const EXPECTED: &'static str = "true or false";
    fn to_attr(&self) -> AttrValue {
        AttrValue::Bool(*self)
    }
    fn from_attr(value: &AttrValue) -> Option<Self> {
        match value {
            AttrValue::Bool(v) => Some(*v),
            _ => None,
        }
    }
    fn identical(&self, other: &Self) -> bool {
        self == other
    }
}

impl AttrType for Vec<i64> {
    const EXPECTED: &'static str = "a list of integers";
    fn to_attr(&self) -> AttrValue {
        AttrValue::Ints(self.clone())
    }
    fn from_attr(value: &AttrValue) -> Option<Self> {
        match value {
            AttrValue::Ints(v) => Some(v.clone()),
            _ => None,
        }
    }
    fn identical(&self, other: &Self) -> bool {
        self == other
    }
}

impl AttrType for Vec<f32> {
    const EXPECTED: &'static str = "a list of floats";
    fn to_attr(&self) -> AttrValue {
        AttrValue::Floats32(self.clone())
    }
    fn from_attr(value: &AttrValue) -> Option<Self> {
        match value {
            AttrValue::Floats(v) => Some(v.iter().map(|&x| x as f32).collect()),
            AttrValue::Floats32(v) => Some(v.clone()),
            AttrValue::Ints(v) => Some(v.iter().map(|&x| x as f32).collect()),
            _ => None,
        }
    }
    fn identical(&self, other: &Self) -> bool {
        self.len() == other.len()
            && self
                .iter()
                .zip(other)
                .all(|(a, b)| a.to_bits() == b.to_bits())
    }
}

impl AttrType for DType {
    const EXPECTED: &'static str = "a dtype (f32, f64, i64, i32, i8, u8, bool)";
    fn to_attr(&self) -> AttrValue {
        AttrValue::Ident(self.name().to_string())
    }
    fn from_attr(value: &AttrValue) -> Option<Self> {
        match value {
            AttrValue::Ident(v) => DType::from_name(v),
            _ => None,
        }
    }
    fn identical(&self, other: &Self) -> bool {
        self == other
    }
}

/// `None` is the default of every optional attribute, so it is never printed.
impl<T: AttrType> AttrType for Option<T> {
    const EXPECTED: &'static str = T::EXPECTED;
    fn to_attr(&self) -> AttrValue {
        self.as_ref()
            .expect("a None attribute equals its default and is never printed")
            .to_attr()
    }
    fn from_attr(value: &AttrValue) -> Option<Self> {
        T::from_attr(value).map(Some)
    }
    fn identical(&self, other: &Self) -> bool {
        match (self, other) {
            (Some(a), Some(b)) => a.identical(b),
            (None, None) => true,
            _ => false,
        }
    }
}

/// Declares a fieldless enum usable as an attribute, written as a bare identifier.
macro_rules! attr_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant),*
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            pub fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $text),*
                }
            }

            pub fn from_name(text: &str) -> Option<$name> {
                match text {
                    $($text => Some($name::$variant),)*
                    _ => None,
                }
            }
        }

        impl $crate::attr::AttrType for $name {
            const EXPECTED: &'static str = concat!("one of:" $(, " ", $text)*);
            fn to_attr(&self) -> $crate::AttrValue {
                $crate::AttrValue::Ident(self.name().to_string())
            }
            fn from_attr(value: &$crate::AttrValue) -> Option<Self> {
                match value {
                    $crate::AttrValue::Ident(v) => $name::from_name(v),
                    _ => None,
                }
            }
            fn identical(&self, other: &Self) -> bool {
                self == other
            }
        }

        impl $crate::attr::AttrType for Vec<$name> {
            const EXPECTED: &'static str = concat!("a list of:" $(, " ", $text)*);
            fn to_attr(&self) -> $crate::AttrValue {
                $crate::AttrValue::Idents(self.iter().map(|v| v.name().to_string()).collect())
            }
            fn from_attr(value: &$crate::AttrValue) -> Option<Self> {
                match value {
                    $crate::AttrValue::Idents(v) => v.iter().map(|s| $name::from_name(s)).collect(),
                    // The parser reads `[]` as an empty integer list.
                    $crate::AttrValue::Ints(v) if v.is_empty() => Some(Vec::new()),
                    _ => None,
                }
            }
            fn identical(&self, other: &Self) -> bool {
                self == other
            }
        }
    };
}
pub(crate) use attr_enum;

#[cfg(test)]
mod tests {
    use super::*;

    fn f32_text(x: f32) -> String {
        let mut s = String::new();
        write_f32(&mut s, x).unwrap();
        s
    }

    #[test]
    fn f32_text_survives_parsing_through_f64() {
        // 0x15ae43fd prints as `7.038531e-26` in shortest form, which double-rounds when parsed as
        // f64 and narrowed to f32. It was found by an exhaustive check of all 2^32 bit patterns.
        for bits in [
            0x15ae_43fd_u32,
            0x95ae_43fd,
            0x3dcc_cccd,
            0x0000_0001,
            0x7f7f_ffff,
            0x8000_0000,
        ] {
            let x = f32::from_bits(bits);
            let text = f32_text(x);
            let via_f64 = text.parse::<f64>().unwrap() as f32;
            assert_eq!(via_f64.to_bits(), bits, "{text} via f64");
            assert_eq!(
                text.parse::<f32>().unwrap().to_bits(),
                bits,
                "{text} via f32"
            );
        }
        assert_eq!(
            f32_text(0.1),
            "0.1",
            "ordinary values keep their short form"
        );
    }

    #[test]
    fn attr_floats_print_in_their_own_precision() {
        assert_eq!(0.01f32.to_attr().to_string(), "0.01");
        assert_eq!(0.01f64.to_attr().to_string(), "0.01");
        assert_eq!(
            AttrValue::Float(f64::from(0.01f32)).to_string(),
            "0.009999999776482582"
        );
        assert_eq!(vec![1i64, -2].to_attr().to_string(), "[1, -2]");
        assert_eq!(f32::from_attr(&AttrValue::Int(3)), Some(3.0));
        assert_eq!(bool::from_attr(&AttrValue::Int(1)), None);
    }
}
