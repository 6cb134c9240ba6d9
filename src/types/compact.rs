//! `CompactBytes`: the 16-byte byte string the keyspace stores keys and string values in.
//!
//! Up to [`INLINE_MAX`] (15) bytes live inline, with no heap allocation at all; longer strings
//! are a boxed, refcounted [`Bytes`] (so a large value is still answered without a copy). The
//! enum layout is left to rustc, which puts the heap variant's discriminant in the niche of the
//! inline length byte: the whole type is 16 bytes, and a [`crate::keyspace::Value`] holding one
//! is 16 bytes too (checked by the size probe tests).

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

use bytes::{Bytes, BytesMut};

/// The longest string stored inline.
pub const INLINE_MAX: usize = 15;

/// The length of an inline string. An enum (not a `u8`) so that its 240 unused values are a
/// niche rustc uses for the discriminants of the enums wrapping it.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Len {
    L0 = 0,
    L1,
    L2,
    L3,
    L4,
    L5,
    L6,
    L7,
    L8,
    L9,
    L10,
    L11,
    L12,
    L13,
    L14,
    L15,
}

const LENS: [Len; INLINE_MAX + 1] = [
    Len::L0,
    Len::L1,
    Len::L2,
    Len::L3,
    Len::L4,
    Len::L5,
    Len::L6,
    Len::L7,
    Len::L8,
    Len::L9,
    Len::L10,
    Len::L11,
    Len::L12,
    Len::L13,
    Len::L14,
    Len::L15,
];

#[derive(Clone, Copy)]
struct Inline {
    len: Len,
    buf: [u8; INLINE_MAX],
}

#[derive(Clone)]
enum Repr {
    Inline(Inline),
    Heap(Box<Bytes>),
}

/// A byte string of 16 bytes: inline up to 15 bytes, a boxed [`Bytes`] above.
#[derive(Clone)]
pub struct CompactBytes(Repr);

impl CompactBytes {
    pub const fn new() -> CompactBytes {
        CompactBytes(Repr::Inline(Inline {
            len: Len::L0,
            buf: [0; INLINE_MAX],
        }))
    }

    /// A copy of `s` (never shares the caller's buffer).
    #[inline]
    pub fn from_slice(s: &[u8]) -> CompactBytes {
        if s.len() <= INLINE_MAX {
            let mut buf = [0u8; INLINE_MAX];
            buf[..s.len()].copy_from_slice(s);
            CompactBytes(Repr::Inline(Inline {
                len: LENS[s.len()],
                buf,
            }))
        } else {
            CompactBytes(Repr::Heap(Box::new(Bytes::copy_from_slice(s))))
        }
    }

    /// Take `b`: short strings are copied inline (and `b` dropped), longer ones are kept as
    /// they are, sharing `b`'s buffer. Callers storing request bytes copy them first.
    #[inline]
    pub fn from_bytes(b: Bytes) -> CompactBytes {
        if b.len() <= INLINE_MAX {
            CompactBytes::from_slice(&b)
        } else {
            CompactBytes(Repr::Heap(Box::new(b)))
        }
    }

    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline(i) => &i.buf[..i.len as usize],
            Repr::Heap(b) => b,
        }
    }

    /// True if the bytes are stored inline (no heap allocation).
    pub fn is_inline(&self) -> bool {
        matches!(self.0, Repr::Inline(_))
    }

    /// The bytes as a [`Bytes`]: shares a heap string, copies an inline one.
    #[inline]
    pub fn to_bytes(&self) -> Bytes {
        match &self.0 {
            Repr::Inline(i) => Bytes::copy_from_slice(&i.buf[..i.len as usize]),
            Repr::Heap(b) => Bytes::clone(b),
        }
    }

    /// A mutable buffer with these bytes, reusing the heap buffer when it is not shared.
    pub fn into_bytes_mut(self) -> BytesMut {
        match self.0 {
            Repr::Inline(i) => BytesMut::from(&i.buf[..i.len as usize]),
            Repr::Heap(b) => BytesMut::from(*b),
        }
    }

    /// Heap bytes owned beyond the 16 bytes of the value itself (approximate: allocator
    /// rounding and a shared buffer's other owners are not counted).
    pub fn heap_size(&self) -> usize {
        match &self.0 {
            Repr::Inline(_) => 0,
            Repr::Heap(b) => std::mem::size_of::<Bytes>() + b.len(),
        }
    }
}

impl Default for CompactBytes {
    fn default() -> CompactBytes {
        CompactBytes::new()
    }
}

impl Deref for CompactBytes {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsRef<[u8]> for CompactBytes {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl Borrow<[u8]> for CompactBytes {
    fn borrow(&self) -> &[u8] {
        self.as_slice()
    }
}

impl PartialEq for CompactBytes {
    fn eq(&self, other: &CompactBytes) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for CompactBytes {}

impl PartialEq<[u8]> for CompactBytes {
    fn eq(&self, other: &[u8]) -> bool {
        self.as_slice() == other
    }
}

/// Hashes as the byte slice does, so a `&[u8]` finds a `CompactBytes` key in a map.
impl Hash for CompactBytes {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state)
    }
}

impl fmt::Debug for CompactBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&Bytes::copy_from_slice(self.as_slice()), f)
    }
}

impl From<Bytes> for CompactBytes {
    fn from(b: Bytes) -> CompactBytes {
        CompactBytes::from_bytes(b)
    }
}

impl From<&Bytes> for CompactBytes {
    fn from(b: &Bytes) -> CompactBytes {
        CompactBytes::from_slice(b)
    }
}

impl From<&[u8]> for CompactBytes {
    fn from(s: &[u8]) -> CompactBytes {
        CompactBytes::from_slice(s)
    }
}

impl From<Vec<u8>> for CompactBytes {
    fn from(v: Vec<u8>) -> CompactBytes {
        CompactBytes::from_bytes(Bytes::from(v))
    }
}

impl From<BytesMut> for CompactBytes {
    fn from(b: BytesMut) -> CompactBytes {
        CompactBytes::from_bytes(b.freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sixteen_bytes() {
        assert_eq!(std::mem::size_of::<CompactBytes>(), 16);
        assert_eq!(std::mem::size_of::<Option<CompactBytes>>(), 16);
    }

    #[test]
    fn round_trips_every_length() {
        for n in 0..64usize {
            let v: Vec<u8> = (0..n as u8).collect();
            let a = CompactBytes::from_slice(&v);
            let b = CompactBytes::from_bytes(Bytes::from(v.clone()));
            assert_eq!(&a[..], &v[..]);
            assert_eq!(&b[..], &v[..]);
            assert_eq!(a, b);
            assert_eq!(a.is_inline(), n <= INLINE_MAX);
            assert_eq!(a.heap_size() == 0, n <= INLINE_MAX);
            assert_eq!(&a.to_bytes()[..], &v[..]);
            assert_eq!(&a.clone().into_bytes_mut()[..], &v[..]);
            let mut h1 = std::collections::hash_map::DefaultHasher::new();
            let mut h2 = std::collections::hash_map::DefaultHasher::new();
            a.hash(&mut h1);
            v[..].hash(&mut h2);
            assert_eq!(h1.finish(), h2.finish());
        }
    }

    #[test]
    fn large_values_are_shared_not_copied() {
        let b = Bytes::from(vec![7u8; 100]);
        let c = CompactBytes::from_bytes(b.clone());
        assert_eq!(c.to_bytes().as_ptr(), b.as_ptr());
    }
}
