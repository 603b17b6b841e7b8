//! Concrete tensors: constant weights in a graph, and the values the reference interpreter computes.
//!
//! Storage is one typed [`Buffer`] per dtype in row-major (C) order: an owned `Vec`, or a view of
//! weights in place in a memory-mapped model file. Equality is bitwise on floats, so that a
//! text-format round trip can be checked exactly (NaN payloads and the sign of zero included).

use crate::{Buffer, DType, Shape, TensorType};
use bytes::Bytes;
use std::fmt;

/// A Rust scalar type that is the element type of some `DType`.
pub trait Elem: Copy + Default + PartialEq + fmt::Debug + Send + Sync + 'static {
    const DTYPE: DType;
    /// Whether every bit pattern of `size_of::<Self>()` bytes is a valid value, so that stored bytes
    /// can be viewed in place (see [`Buffer::from_shared_bytes`]). False for `bool`.
    const ANY_BIT_PATTERN: bool;
    fn to_f64(self) -> f64;
    /// Converts with the numpy `astype` rules: floats to ints truncate toward zero, to bool is `!= 0`.
    fn from_f64(v: f64) -> Self;
    fn wrap(data: Vec<Self>) -> TensorData;
    fn unwrap(data: &TensorData) -> Option<&[Self]>;
}

macro_rules! impl_elem {
    ($t:ty, $dt:ident) => {
        impl Elem for $t {
            const DTYPE: DType = DType::$dt;
            const ANY_BIT_PATTERN: bool = true;
            fn to_f64(self) -> f64 {
                self as f64
            }
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            fn wrap(data: Vec<Self>) -> TensorData {
                TensorData::$dt(data.into())
            }
            fn unwrap(data: &TensorData) -> Option<&[Self]> {
                match data {
                    TensorData::$dt(v) => Some(v),
                    _ => None,
                }
            }
        }
    };
}
impl_elem!(f32, F32);
impl_elem!(f64, F64);
impl_elem!(i64, I64);
impl_elem!(i32, I32);
impl_elem!(i8, I8);
impl_elem!(u8, U8);

impl Elem for bool {
    const DTYPE: DType = DType::Bool;
    const ANY_BIT_PATTERN: bool = false;
    fn to_f64(self) -> f64 {
        if self {
            1.0
        } else {
            0.0
        }
    }
    fn from_f64(v: f64) -> Self {
        v != 0.0
    }
    fn wrap(data: Vec<Self>) -> TensorData {
        TensorData::Bool(data.into())
    }
    fn unwrap(data: &TensorData) -> Option<&[Self]> {
        match data {
            TensorData::Bool(v) => Some(v),
            _ => None,
        }
    }
}

/// Typed element storage.
#[derive(Clone, Debug)]
pub enum TensorData {
    F32(Buffer<f32>),
    F64(Buffer<f64>),
    I64(Buffer<i64>),
    I32(Buffer<i32>),
    I8(Buffer<i8>),
    U8(Buffer<u8>),
    Bool(Buffer<bool>),
}

/// Runs `$body` with `$v` bound to the typed [`Buffer`] inside a `TensorData`.
#[macro_export]
macro_rules! with_data {
    ($data:expr, $v:ident => $body:expr) => {
        match $data {
            $crate::TensorData::F32($v) => $body,
            $crate::TensorData::F64($v) => $body,
            $crate::TensorData::I64($v) => $body,
            $crate::TensorData::I32($v) => $body,
            $crate::TensorData::I8($v) => $body,
            $crate::TensorData::U8($v) => $body,
            $crate::TensorData::Bool($v) => $body,
        }
    };
}

impl TensorData {
    pub fn dtype(&self) -> DType {
        match self {
            TensorData::F32(_) => DType::F32,
            TensorData::F64(_) => DType::F64,
            TensorData::I64(_) => DType::I64,
            TensorData::I32(_) => DType::I32,
            TensorData::I8(_) => DType::I8,
            TensorData::U8(_) => DType::U8,
            TensorData::Bool(_) => DType::Bool,
        }
    }

    pub fn len(&self) -> usize {
        with_data!(self, v => v.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `len` zeros (false for bool) of the given dtype.
    pub fn zeros(dtype: DType, len: usize) -> TensorData {
        match dtype {
            DType::F32 => TensorData::F32(vec![0.0; len].into()),
            DType::F64 => TensorData::F64(vec![0.0; len].into()),
            DType::I64 => TensorData::I64(vec![0; len].into()),
            DType::I32 => TensorData::I32(vec![0; len].into()),
            DType::I8 => TensorData::I8(vec![0; len].into()),
            DType::U8 => TensorData::U8(vec![0; len].into()),
            DType::Bool => TensorData::Bool(vec![false; len].into()),
        }
    }

    /// Builds storage of `dtype` from f64 values, converting with `Elem::from_f64`.
    pub fn from_f64s(dtype: DType, values: impl Iterator<Item = f64>) -> TensorData {
        fn collect<T: Elem>(values: impl Iterator<Item = f64>) -> TensorData {
            T::wrap(values.map(T::from_f64).collect())
        }
        match dtype {
            DType::F32 => collect::<f32>(values),
            DType::F64 => collect::<f64>(values),
            DType::I64 => collect::<i64>(values),
            DType::I32 => collect::<i32>(values),
            DType::I8 => collect::<i8>(values),
            DType::U8 => collect::<u8>(values),
            DType::Bool => collect::<bool>(values),
        }
    }

    /// Element `idx` widened to f64 (i64 values beyond 2^53 lose precision).
    pub fn get_f64(&self, idx: usize) -> f64 {
        with_data!(self, v => v[idx].to_f64())
    }

    /// Element `idx` as i64 (floats truncate toward zero).
    pub fn get_i64(&self, idx: usize) -> i64 {
        match self {
            TensorData::I64(v) => v[idx],
            _ => self.get_f64(idx) as i64,
        }
    }

    /// Little-endian bytes, bool as 0/1 bytes. This is the layout of external weight files.
    pub fn to_le_bytes(&self) -> Vec<u8> {
        match self {
            TensorData::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            TensorData::F64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            TensorData::I64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            TensorData::I32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            TensorData::I8(v) => v.iter().map(|&x| x as u8).collect(),
            TensorData::U8(v) => v.to_vec(),
            TensorData::Bool(v) => v.iter().map(|&x| x as u8).collect(),
        }
    }

    /// Like [`TensorData::from_le_bytes`], but views `bytes` in place when its layout allows
    /// ([`Buffer::from_shared_bytes`]: aligned, little-endian target, not bool) and copies otherwise.
    pub fn from_le_bytes_shared(dtype: DType, bytes: Bytes) -> Option<TensorData> {
        fn view<T: Elem>(
            bytes: Bytes,
            wrap: fn(Buffer<T>) -> TensorData,
        ) -> Result<TensorData, Bytes> {
            Buffer::<T>::from_shared_bytes(bytes).map(wrap)
        }
        let viewed = match dtype {
            DType::F32 => view(bytes, TensorData::F32),
            DType::F64 => view(bytes, TensorData::F64),
            DType::I64 => view(bytes, TensorData::I64),
            DType::I32 => view(bytes, TensorData::I32),
            DType::I8 => view(bytes, TensorData::I8),
            DType::U8 => view(bytes, TensorData::U8),
            DType::Bool => Err(bytes),
        };
        match viewed {
            Ok(data) => Some(data),
            Err(bytes) => TensorData::from_le_bytes(dtype, &bytes),
        }
    }

    /// Whether the elements are viewed in place in shared bytes (see [`Buffer`]).
    pub fn is_shared(&self) -> bool {
        with_data!(self, v => v.is_shared())
    }

    /// Decodes little-endian bytes. Returns `None` when the byte count is not a whole number of elements.
    pub fn from_le_bytes(dtype: DType, bytes: &[u8]) -> Option<TensorData> {
        if !bytes.len().is_multiple_of(dtype.size_bytes()) {
            return None;
        }
        macro_rules! decode {
            ($t:ty, $n:expr) => {
                bytes
                    .chunks_exact($n)
                    .map(|c| <$t>::from_le_bytes(c.try_into().expect("chunk size")))
                    .collect()
            };
        }
        Some(match dtype {
            DType::F32 => TensorData::F32(decode!(f32, 4)),
            DType::F64 => TensorData::F64(decode!(f64, 8)),
            DType::I64 => TensorData::I64(decode!(i64, 8)),
            DType::I32 => TensorData::I32(decode!(i32, 4)),
            DType::I8 => TensorData::I8(bytes.iter().map(|&b| b as i8).collect()),
            DType::U8 => TensorData::U8(bytes.to_vec().into()),
            DType::Bool => TensorData::Bool(bytes.iter().map(|&b| b != 0).collect()),
        })
    }
}

impl PartialEq for TensorData {
    /// Bitwise equality: `NaN == NaN` with the same payload, and `0.0 != -0.0`.
    fn eq(&self, other: &TensorData) -> bool {
        match (self, other) {
            (TensorData::F32(a), TensorData::F32(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
            }
            (TensorData::F64(a), TensorData::F64(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
            }
            (TensorData::I64(a), TensorData::I64(b)) => a == b,
            (TensorData::I32(a), TensorData::I32(b)) => a == b,
            (TensorData::I8(a), TensorData::I8(b)) => a == b,
            (TensorData::U8(a), TensorData::U8(b)) => a == b,
            (TensorData::Bool(a), TensorData::Bool(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for TensorData {}

/// A concrete tensor: a static shape and row-major data whose length is the shape's element count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tensor {
    shape: Vec<usize>,
    data: TensorData,
}

/// The data length does not match the shape.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("tensor of shape {shape:?} needs {expected} elements, got {actual}")]
pub struct TensorSizeError {
    pub shape: Vec<usize>,
    pub expected: usize,
    pub actual: usize,
}

/// The element count of a static shape: 0 if any dim is 0 (even when the others are huge), `None` if
/// the product overflows.
fn element_count(shape: &[usize]) -> Option<usize> {
    if shape.contains(&0) {
        return Some(0);
    }
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

impl Tensor {
    /// Pairs a shape with data, checking the element count. A shape with a 0 dim has no elements
    /// whatever its other dims are; a count that overflows `usize` matches no data.
    pub fn new(shape: Vec<usize>, data: TensorData) -> Result<Tensor, TensorSizeError> {
        let expected = element_count(&shape).unwrap_or(usize::MAX);
        if expected != data.len() {
            return Err(TensorSizeError {
                shape,
                expected,
                actual: data.len(),
            });
        }
        Ok(Tensor { shape, data })
    }

    /// A typed tensor from a Rust vector.
    pub fn from_vec<T: Elem>(shape: Vec<usize>, data: Vec<T>) -> Result<Tensor, TensorSizeError> {
        Tensor::new(shape, T::wrap(data))
    }

    /// A rank-0 tensor.
    pub fn scalar<T: Elem>(value: T) -> Tensor {
        Tensor {
            shape: Vec::new(),
            data: T::wrap(vec![value]),
        }
    }

    /// A tensor of zeros (false for bool). The shape's element count must be allocatable.
    pub fn zeros(dtype: DType, shape: Vec<usize>) -> Tensor {
        let len = element_count(&shape).expect("the element count of a zeros tensor fits usize");
        Tensor {
            shape,
            data: TensorData::zeros(dtype, len),
        }
    }

    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn data(&self) -> &TensorData {
        &self.data
    }

    pub fn into_data(self) -> TensorData {
        self.data
    }

    /// The tensor's type, with every dim static.
    pub fn ty(&self) -> TensorType {
        TensorType::new(self.dtype(), Shape::fixed(&self.shape))
    }

    /// The elements as a typed slice, if `T` is the tensor's element type.
    pub fn as_slice<T: Elem>(&self) -> Option<&[T]> {
        T::unwrap(&self.data)
    }

    /// The elements widened to f64.
    pub fn to_f64_vec(&self) -> Vec<f64> {
        with_data!(&self.data, v => v.iter().map(|x| x.to_f64()).collect())
    }

    /// The elements as i64 (floats truncate toward zero).
    pub fn to_i64_vec(&self) -> Vec<i64> {
        (0..self.len()).map(|idx| self.data.get_i64(idx)).collect()
    }

    /// The same data viewed with another shape of equal element count.
    pub fn reshaped(self, shape: Vec<usize>) -> Result<Tensor, TensorSizeError> {
        Tensor::new(shape, self.data)
    }

    /// Converts every element to `dtype` with numpy `astype` semantics, rounding once:
    ///
    /// - integer to integer wraps (two's complement truncation, `i32 300 -> i8 44`);
    /// - integer or float to float rounds to nearest even, directly from the source value;
    /// - float to integer truncates toward zero; out-of-range values saturate and NaN becomes 0
    ///   (numpy leaves these cases platform-defined);
    /// - anything to bool is `x != 0` (NaN is true), bool to numbers is 0 or 1.
    pub fn cast(&self, dtype: DType) -> Tensor {
        if dtype == self.dtype() {
            return self.clone();
        }
        macro_rules! convert {
            ($src:expr, $x:ident => $int:expr, $float:expr) => {
                match dtype {
                    DType::F32 => TensorData::F32($src.map(|$x| $float as f32).collect()),
                    DType::F64 => TensorData::F64($src.map(|$x| $float as f64).collect()),
                    DType::I64 => TensorData::I64($src.map(|$x| $int as i64).collect()),
                    DType::I32 => TensorData::I32($src.map(|$x| $int as i32).collect()),
                    DType::I8 => TensorData::I8($src.map(|$x| $int as i8).collect()),
                    DType::U8 => TensorData::U8($src.map(|$x| $int as u8).collect()),
                    DType::Bool => TensorData::Bool($src.map(|$x| $float as f64 != 0.0).collect()),
                }
            };
        }
        let data = match &self.data {
            // Floats: `as` to an integer truncates and saturates; to a float it rounds once.
            TensorData::F32(v) => convert!(v.iter().copied(), x => x, x),
            TensorData::F64(v) => convert!(v.iter().copied(), x => x, x),
            // Integers: widen exactly to i64, then `as` wraps to narrower integers and rounds once to
            // floats.
            TensorData::I64(v) => convert!(v.iter().copied(), x => x, x),
            TensorData::I32(v) => convert!(v.iter().map(|&x| i64::from(x)), x => x, x),
            TensorData::I8(v) => convert!(v.iter().map(|&x| i64::from(x)), x => x, x),
            TensorData::U8(v) => convert!(v.iter().map(|&x| i64::from(x)), x => x, x),
            TensorData::Bool(v) => convert!(v.iter().map(|&x| i64::from(x)), x => x, x),
        };
        Tensor {
            shape: self.shape.clone(),
            data,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cast_to<T: Elem>(t: &Tensor, dtype: DType) -> Vec<T> {
        t.cast(dtype).as_slice::<T>().unwrap().to_vec()
    }

    #[test]
    fn integer_casts_wrap_like_numpy() {
        let t = Tensor::from_vec(vec![3], vec![300i32, -129, 255]).unwrap();
        assert_eq!(cast_to::<i8>(&t, DType::I8), vec![44, 127, -1]);
        let u = Tensor::from_vec(vec![2], vec![200u8, 7]).unwrap();
        assert_eq!(cast_to::<i8>(&u, DType::I8), vec![-56, 7]);
        assert_eq!(cast_to::<i64>(&u, DType::I64), vec![200, 7]);
    }

    #[test]
    fn casts_to_float_round_once() {
        // 2^60 + 2^36 + 1 lies just above the midpoint between two f32 neighbours. Rounding to f64
        // first drops the +1 and lands exactly on the midpoint, which then rounds down to even.
        let x = (1i64 << 60) + (1i64 << 36) + 1;
        let t = Tensor::from_vec(vec![1], vec![x]).unwrap();
        assert_eq!(cast_to::<f32>(&t, DType::F32), vec![x as f32]);
        assert_eq!(cast_to::<f32>(&t, DType::F32)[0], 1.152_921_6e18_f32);
    }

    #[test]
    fn float_to_int_truncates_and_saturates() {
        let t = Tensor::from_vec(vec![5], vec![-1.7f32, 2.9, f32::NAN, 1e10, -1e10]).unwrap();
        assert_eq!(
            cast_to::<i32>(&t, DType::I32),
            vec![-1, 2, 0, i32::MAX, i32::MIN]
        );
        assert_eq!(
            cast_to::<bool>(&t, DType::Bool),
            vec![true, true, true, true, true]
        );
        let z = Tensor::from_vec(vec![2], vec![0.0f64, -0.0]).unwrap();
        assert_eq!(cast_to::<bool>(&z, DType::Bool), vec![false, false]);
    }
}
