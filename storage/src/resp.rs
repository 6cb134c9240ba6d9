//! RESP commands as stored in AOF files.
