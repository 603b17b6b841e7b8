//! Element storage that is either an owned `Vec` or a borrowed view of shared bytes.
//!
//! Model weights are large and, in an ONNX file, already laid out as little-endian arrays. When the
//! file is memory-mapped, a weight can be used in place: [`Buffer::from_shared_bytes`] views a
//! [`Bytes`] slice of the mapping as `&[T]` without copying, provided its address is aligned for `T`
//! and the target is little-endian. Otherwise (misaligned, big-endian, or `bool`, whose bytes could
//! hold values other than 0 and 1) the caller falls back to decoding a copy.
//!
//! A `Buffer` reads like a slice (`Deref<Target = [T]>`). Writing through `DerefMut` or
//! [`Buffer::make_mut`] first turns a shared view into an owned copy (copy on write), so a shared
//! buffer is never mutated and the bytes behind it never change while it is alive.
//!
//! **Safety invariant** of the `Shared` representation: `bytes.as_ptr()` is aligned for `T`,
//! `bytes.len() == len * size_of::<T>()`, `T` is valid for every bit pattern (`Elem::ANY_BIT_PATTERN`)
//! and the target is little-endian. `Bytes` is immutable and keeps its memory alive, so viewing it as
//! `&[T]` for the lifetime of `&self` is sound.

use crate::tensor::Elem;
use bytes::Bytes;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};

/// Typed elements, owned or viewed in place in shared bytes.
pub struct Buffer<T: Elem> {
    repr: Repr<T>,
}

enum Repr<T> {
    Owned(Vec<T>),
    /// See the module's safety invariant.
    Shared {
        bytes: Bytes,
        len: usize,
        elem: PhantomData<T>,
    },
}

impl<T: Elem> Buffer<T> {
    /// Views little-endian `bytes` as elements of `T` without copying. Returns the bytes back when
    /// that is not possible: misaligned address, a length that is not a whole number of elements, a
    /// big-endian target, or an element type that is not valid for every bit pattern.
    pub fn from_shared_bytes(bytes: Bytes) -> Result<Buffer<T>, Bytes> {
        let size = std::mem::size_of::<T>();
        let viewable = cfg!(target_endian = "little")
            && T::ANY_BIT_PATTERN
            && size > 0
            && bytes.len().is_multiple_of(size)
            && (bytes.as_ptr() as usize).is_multiple_of(std::mem::align_of::<T>());
        if !viewable {
            return Err(bytes);
        }
        let len = bytes.len() / size;
        Ok(Buffer {
            repr: Repr::Shared {
                bytes,
                len,
                elem: PhantomData,
            },
        })
    }

    /// Whether the elements are viewed in shared bytes rather than owned.
    pub fn is_shared(&self) -> bool {
        matches!(self.repr, Repr::Shared { .. })
    }

    /// The owned vector, copying a shared view into a new one.
    pub fn into_vec(self) -> Vec<T> {
        match self.repr {
            Repr::Owned(vec) => vec,
            Repr::Shared { .. } => self.to_vec(),
        }
    }

    /// Mutable access, copying a shared view into an owned vector first.
    pub fn make_mut(&mut self) -> &mut Vec<T> {
        if let Repr::Shared { .. } = self.repr {
            self.repr = Repr::Owned(self.to_vec());
        }
        match &mut self.repr {
            Repr::Owned(vec) => vec,
            Repr::Shared { .. } => unreachable!("converted to owned above"),
        }
    }
}

impl<T: Elem> Deref for Buffer<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        match &self.repr {
            Repr::Owned(vec) => vec,
            // SAFETY: the module's invariant, established by `from_shared_bytes` (the only
            // constructor of `Shared`): aligned, in bounds, every bit pattern valid, immutable bytes
            // that outlive the borrow of `self`.
            Repr::Shared { bytes, len, .. } => unsafe {
                std::slice::from_raw_parts(bytes.as_ptr().cast::<T>(), *len)
            },
        }
    }
}

impl<T: Elem> DerefMut for Buffer<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        self.make_mut()
    }
}

impl<T: Elem> Clone for Buffer<T> {
    /// Shared views clone cheaply (a reference count); owned vectors are copied.
    fn clone(&self) -> Buffer<T> {
        let repr = match &self.repr {
            Repr::Owned(vec) => Repr::Owned(vec.clone()),
            Repr::Shared { bytes, len, elem } => Repr::Shared {
                bytes: bytes.clone(),
                len: *len,
                elem: *elem,
            },
        };
        Buffer { repr }
    }
}

impl<T: Elem> fmt::Debug for Buffer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: Elem> PartialEq for Buffer<T> {
    fn eq(&self, other: &Buffer<T>) -> bool {
        **self == **other
    }
}

impl<T: Elem> PartialEq<Vec<T>> for Buffer<T> {
    fn eq(&self, other: &Vec<T>) -> bool {
        **self == **other
    }
}

impl<T: Elem> Default for Buffer<T> {
    fn default() -> Buffer<T> {
        Buffer::from(Vec::new())
    }
}

impl<T: Elem> From<Vec<T>> for Buffer<T> {
    fn from(vec: Vec<T>) -> Buffer<T> {
        Buffer {
            repr: Repr::Owned(vec),
        }
    }
}

impl<T: Elem> FromIterator<T> for Buffer<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Buffer<T> {
        Buffer::from(iter.into_iter().collect::<Vec<T>>())
    }
}

impl<'a, T: Elem> IntoIterator for &'a Buffer<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 4-byte-aligned bytes holding `values`, plus one leading byte so that a slice from offset 1 is
    /// misaligned.
    fn aligned_f32_bytes(values: &[f32]) -> Bytes {
        let mut words: Vec<u32> = vec![0];
        words.extend(values.iter().map(|v| v.to_bits()));
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        Bytes::from(bytes)
    }

    #[test]
    fn aligned_bytes_are_viewed_in_place() {
        let bytes = aligned_f32_bytes(&[1.5, -2.0, 3.25]);
        let offset = (0..4)
            .find(|o| (bytes.as_ptr() as usize + o + 4).is_multiple_of(4))
            .unwrap();
        // `Bytes::from(Vec)` keeps the Vec's allocation, whose alignment is at least that of u8
        // only; find the slice start that is 4-aligned and check the view reads what was written
        // there.
        let slice = bytes.slice(offset + 4..offset + 4 + 8);
        let expected: Vec<f32> = slice
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let ptr = slice.as_ptr();
        let buffer = Buffer::<f32>::from_shared_bytes(slice).unwrap();
        assert!(buffer.is_shared());
        assert_eq!(buffer.as_ptr().cast::<u8>(), ptr, "no copy was made");
        assert_eq!(&*buffer, &expected[..]);
    }

    #[test]
    fn misaligned_or_partial_bytes_are_refused() {
        let bytes = aligned_f32_bytes(&[1.0, 2.0, 3.0]);
        let misaligned_start = (0..4)
            .find(|o| !(bytes.as_ptr() as usize + o).is_multiple_of(4))
            .unwrap();
        assert!(Buffer::<f32>::from_shared_bytes(
            bytes.slice(misaligned_start..misaligned_start + 4)
        )
        .is_err());
        let aligned_start = (0..4)
            .find(|o| (bytes.as_ptr() as usize + o).is_multiple_of(4))
            .unwrap();
        assert!(
            Buffer::<f32>::from_shared_bytes(bytes.slice(aligned_start..aligned_start + 6))
                .is_err()
        );
    }

    #[test]
    fn bools_are_never_viewed_because_bytes_may_not_be_0_or_1() {
        assert!(Buffer::<bool>::from_shared_bytes(Bytes::from_static(&[0, 1, 2])).is_err());
        assert!(Buffer::<bool>::from_shared_bytes(Bytes::from_static(&[0, 1])).is_err());
    }

    #[test]
    fn writing_copies_a_shared_view_and_leaves_the_bytes_alone() {
        let source = Bytes::from_static(&[7u8, 8, 9]);
        let mut buffer = Buffer::<u8>::from_shared_bytes(source.clone()).unwrap();
        let copy = buffer.clone();
        assert!(copy.is_shared());
        buffer[1] = 42;
        assert!(!buffer.is_shared());
        assert_eq!(&*buffer, &[7, 42, 9]);
        assert_eq!(&*copy, &[7, 8, 9]);
        assert_eq!(&source[..], &[7, 8, 9]);
    }
}
