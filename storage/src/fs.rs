//! File system layer.
