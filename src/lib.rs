//! strongbox server library
