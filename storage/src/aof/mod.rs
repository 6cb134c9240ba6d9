//! Multi-part AOF.
