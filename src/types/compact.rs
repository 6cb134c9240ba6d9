//! `CompactBytes`: the 16-byte byte string the keyspace stores keys and string values in.
//!
//! Up to [`INLINE_MAX`] (15) bytes live inline, with no heap allocation at all. Up to
//! [`THIN_MAX`] bytes (and keys of any length) are one heap allocation holding a 4-byte length
//! and the bytes, behind a thin pointer. Longer values are a boxed, refcounted [`Bytes`], so a
//! large value is still answered without a copy. The enum layout is left to rustc, which puts
//! the discriminant in the niche of the inline length byte: the whole type is 16 bytes, and a
//! [`crate::keyspace::Value`] holding one is 16 bytes too (checked by the size probe tests).
//!
//! A value an in-place edit produced (APPEND, SETRANGE, SETBIT, BITFIELD) is *raw*, as Redis
//! keeps such a string (OBJECT ENCODING answers `raw` until the next SET): never inline, and
//! a thin allocation carries the mark in its length's top bit ([`CompactBytes::raw`]).

use std::alloc::{self, Layout};
use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::ptr::NonNull;

use bytes::{Bytes, BytesMut};

/// The longest string stored inline.
pub const INLINE_MAX: usize = 15;

/// The longest value stored in a [`Thin`] allocation (Redis's embstr limit); longer values are
/// a shared [`Bytes`]. Keys are thin at any length.
pub const THIN_MAX: usize = 44;

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

/// An owned byte string in one heap allocation: a native-endian `u32` length, then the bytes.
/// The pointer is thin (8 bytes), unlike `Box<[u8]>`.
struct Thin(NonNull<u8>);

const THIN_HEADER: usize = std::mem::size_of::<u32>();

/// The top bit of a `Thin`'s length word: the string is raw (made by an in-place edit).
const THIN_RAW: u32 = 1 << 31;

/// The longest string a `Thin` can hold (its length is 31 bits of a `u32`); a longer key is a
/// `Bytes`.
const THIN_LEN_MAX: usize = (THIN_RAW - 1) as usize - THIN_HEADER;

impl Thin {
    fn layout(len: usize) -> Layout {
        // Cannot fail: `len` ≤ THIN_LEN_MAX, far below isize::MAX.
        Layout::from_size_align(THIN_HEADER + len, std::mem::align_of::<u32>())
            .expect("thin string layout")
    }

    fn new(s: &[u8]) -> Thin {
        Thin::with_mark(s, 0)
    }

    /// A copy of `s`, its length word or'ed with `mark` (0 or [`THIN_RAW`]).
    fn with_mark(s: &[u8], mark: u32) -> Thin {
        // Callers check the length; the assert keeps `Drop`'s layout sound regardless.
        assert!(s.len() <= THIN_LEN_MAX);
        let len = s.len() as u32 | mark;
        let layout = Thin::layout(s.len());
        // SAFETY: the layout has a non-zero size (the header). The header is written aligned
        // (the allocation is aligned for u32) and the bytes after it stay inside the allocation.
        unsafe {
            let p = alloc::alloc(layout);
            let Some(p) = NonNull::new(p) else {
                alloc::handle_alloc_error(layout)
            };
            p.as_ptr().cast::<u32>().write(len);
            std::ptr::copy_nonoverlapping(s.as_ptr(), p.as_ptr().add(THIN_HEADER), s.len());
            Thin(p)
        }
    }

    #[inline]
    fn word(&self) -> u32 {
        // SAFETY: the header was written by `with_mark` and the allocation lives as long as
        // `self`.
        unsafe { self.0.as_ptr().cast::<u32>().read() }
    }

    #[inline]
    fn len(&self) -> usize {
        (self.word() & !THIN_RAW) as usize
    }

    fn is_raw(&self) -> bool {
        self.word() & THIN_RAW != 0
    }

    #[inline]
    fn as_slice(&self) -> &[u8] {
        // SAFETY: `new` wrote `len` initialized bytes after the header; they are never mutated
        // and live as long as `self`.
        unsafe { std::slice::from_raw_parts(self.0.as_ptr().add(THIN_HEADER), self.len()) }
    }
}

impl Drop for Thin {
    fn drop(&mut self) {
        let layout = Thin::layout(self.len());
        // SAFETY: allocated by `new` with this same layout (the length never changes).
        unsafe { alloc::dealloc(self.0.as_ptr(), layout) }
    }
}

impl Clone for Thin {
    fn clone(&self) -> Thin {
        Thin::with_mark(self.as_slice(), self.word() & THIN_RAW)
    }
}

// SAFETY: a `Thin` owns its allocation exclusively and never mutates it after `new`, like a
// `Box<[u8]>`.
unsafe impl Send for Thin {}
// SAFETY: as above: shared references only read immutable bytes.
unsafe impl Sync for Thin {}

#[derive(Clone)]
enum Repr {
    Inline(Inline),
    Thin(Thin),
    Heap(Box<Bytes>),
}

/// A byte string of 16 bytes: inline up to 15 bytes, one thin allocation up to 44 bytes (or
/// for a key), a boxed [`Bytes`] above.
#[derive(Clone)]
pub struct CompactBytes(Repr);

impl CompactBytes {
    pub const fn new() -> CompactBytes {
        CompactBytes(Repr::Inline(Inline {
            len: Len::L0,
            buf: [0; INLINE_MAX],
        }))
    }

    #[inline]
    fn inline(s: &[u8]) -> CompactBytes {
        let mut buf = [0u8; INLINE_MAX];
        buf[..s.len()].copy_from_slice(s);
        CompactBytes(Repr::Inline(Inline {
            len: LENS[s.len()],
            buf,
        }))
    }

    /// A copy of `s` (never shares the caller's buffer), as a value.
    #[inline]
    pub fn from_slice(s: &[u8]) -> CompactBytes {
        if s.len() <= INLINE_MAX {
            CompactBytes::inline(s)
        } else if s.len() <= THIN_MAX {
            CompactBytes(Repr::Thin(Thin::new(s)))
        } else {
            CompactBytes(Repr::Heap(Box::new(Bytes::copy_from_slice(s))))
        }
    }

    /// A copy of `s` as a key: inline or one thin allocation, whatever the length (keys are
    /// never answered by sharing their buffer, so they need no refcount).
    #[inline]
    pub fn key(s: &[u8]) -> CompactBytes {
        if s.len() <= INLINE_MAX {
            CompactBytes::inline(s)
        } else if s.len() <= THIN_LEN_MAX {
            CompactBytes(Repr::Thin(Thin::new(s)))
        } else {
            CompactBytes(Repr::Heap(Box::new(Bytes::copy_from_slice(s))))
        }
    }

    /// Take `b`: strings up to [`THIN_MAX`] are copied (and `b` dropped), longer ones are kept
    /// as they are, sharing `b`'s buffer. Callers storing request bytes copy them first.
    #[inline]
    pub fn from_bytes(b: Bytes) -> CompactBytes {
        if b.len() <= THIN_MAX {
            CompactBytes::from_slice(&b)
        } else {
            CompactBytes(Repr::Heap(Box::new(b)))
        }
    }

    /// Take `b` as a string an in-place edit produced: raw, as Redis keeps it (see the
    /// module's documentation). Up to [`THIN_MAX`] bytes it is copied into a marked thin
    /// allocation (never inline), longer ones are kept as they are.
    pub fn raw(b: Bytes) -> CompactBytes {
        if b.len() <= THIN_MAX {
            CompactBytes(Repr::Thin(Thin::with_mark(&b, THIN_RAW)))
        } else {
            CompactBytes(Repr::Heap(Box::new(b)))
        }
    }

    /// Whether Redis would encode this value `raw`: longer than [`THIN_MAX`], or made by
    /// [`CompactBytes::raw`].
    pub fn is_raw(&self) -> bool {
        match &self.0 {
            Repr::Inline(_) => false,
            Repr::Thin(t) => t.is_raw(),
            Repr::Heap(_) => true,
        }
    }

    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline(i) => &i.buf[..i.len as usize],
            Repr::Thin(t) => t.as_slice(),
            Repr::Heap(b) => b,
        }
    }

    /// True if the bytes are a shared [`Bytes`] (`to_bytes` does not copy).
    pub fn is_shared(&self) -> bool {
        matches!(self.0, Repr::Heap(_))
    }

    /// True if the bytes are stored inline (no heap allocation).
    pub fn is_inline(&self) -> bool {
        matches!(self.0, Repr::Inline(_))
    }

    /// The bytes as a [`Bytes`]: shares a long value, copies a short one.
    #[inline]
    pub fn to_bytes(&self) -> Bytes {
        match &self.0 {
            Repr::Heap(b) => Bytes::clone(b),
            _ => Bytes::copy_from_slice(self.as_slice()),
        }
    }

    /// A mutable buffer with these bytes, reusing the heap buffer when it is not shared.
    pub fn into_bytes_mut(self) -> BytesMut {
        match self.0 {
            Repr::Heap(b) => BytesMut::from(*b),
            _ => BytesMut::from(self.as_slice()),
        }
    }

    /// Heap bytes owned beyond the 16 bytes of the value itself (approximate: allocator
    /// rounding and a shared buffer's other owners are not counted).
    pub fn heap_size(&self) -> usize {
        match &self.0 {
            Repr::Inline(_) => 0,
            Repr::Thin(t) => THIN_HEADER + t.len(),
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
            let k = CompactBytes::key(&v);
            assert_eq!(&k[..], &v[..]);
            assert_eq!(k, a);
            assert!(!k.is_shared());
            assert_eq!(k.clone(), k);
            assert_eq!(a.is_inline(), n <= INLINE_MAX);
            assert_eq!(a.is_shared(), n > THIN_MAX);
            assert_eq!(b.is_shared(), n > THIN_MAX);
            assert_eq!(a.heap_size() == 0, n <= INLINE_MAX);
            assert_eq!(&a.to_bytes()[..], &v[..]);
            assert_eq!(&a.clone().into_bytes_mut()[..], &v[..]);
            let mut h1 = std::collections::hash_map::DefaultHasher::new();
            let mut h2 = std::collections::hash_map::DefaultHasher::new();
            a.hash(&mut h1);
            v[..].hash(&mut h2);
            assert_eq!(h1.finish(), h2.finish());
            // Raw: the same bytes, equal and hashed alike, marked whatever the length, the
            // mark kept by a clone; never inline.
            let r = CompactBytes::raw(Bytes::from(v.clone()));
            assert_eq!(&r[..], &v[..]);
            assert_eq!(r, a);
            assert!(r.is_raw());
            assert!(r.clone().is_raw());
            assert_eq!(r.clone(), r);
            assert!(!r.is_inline());
            assert_eq!(a.is_raw(), n > THIN_MAX);
            assert!(!k.is_raw());
            assert_eq!(&r.clone().into_bytes_mut()[..], &v[..]);
            let mut h3 = std::collections::hash_map::DefaultHasher::new();
            r.hash(&mut h3);
            assert_eq!(h3.finish(), h2.finish());
        }
    }

    #[test]
    fn large_values_are_shared_not_copied() {
        let b = Bytes::from(vec![7u8; 100]);
        let c = CompactBytes::from_bytes(b.clone());
        assert_eq!(c.to_bytes().as_ptr(), b.as_ptr());
    }
}
