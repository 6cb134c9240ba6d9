//! Offline tools shared code.
