//! Recovery
