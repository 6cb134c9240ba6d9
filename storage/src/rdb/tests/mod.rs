//! Tests of the RDB codec against real Redis/Valkey files and a real redis-server.

mod common;
mod fixtures;
mod roundtrip;
