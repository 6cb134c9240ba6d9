//! RDB codec.
