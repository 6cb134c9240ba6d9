//! Opcodes, type codes and encodings of the RDB format (`src/rdb.h`), by their Redis names.

/// Highest RDB version the reader accepts (Redis 7.2, Valkey 7.2–8.x).
pub const RDB_VERSION_MAX: u32 = 11;
/// Version the writer emits by default (Redis 7.0).
pub const RDB_VERSION_DEFAULT: u32 = 10;

/// End of file, followed by the CRC-64 (RDB >= 5).
pub const RDB_OPCODE_EOF: u8 = 0xFF;
/// Select database: len dbid.
pub const RDB_OPCODE_SELECTDB: u8 = 0xFE;
/// Expire in seconds, 4-byte LE (legacy, load-only).
pub const RDB_OPCODE_EXPIRETIME: u8 = 0xFD;
/// Expire in ms, 8-byte LE.
pub const RDB_OPCODE_EXPIRETIME_MS: u8 = 0xFC;
/// Resize hints: len db_size, len expires_size.
pub const RDB_OPCODE_RESIZEDB: u8 = 0xFB;
/// Aux field: str key, str value.
pub const RDB_OPCODE_AUX: u8 = 0xFA;
/// LFU counter, 1 byte.
pub const RDB_OPCODE_FREQ: u8 = 0xF9;
/// LRU idle seconds, len.
pub const RDB_OPCODE_IDLE: u8 = 0xF8;
/// Module aux data.
pub const RDB_OPCODE_MODULE_AUX: u8 = 0xF7;
/// Pre-GA function format (7.0 release candidates), refused.
pub const RDB_OPCODE_FUNCTION_PRE_GA: u8 = 0xF6;
/// Function library: str code.
pub const RDB_OPCODE_FUNCTION2: u8 = 0xF5;
/// Redis 7.4+ cluster slot info, refused (version 12+ only).
pub const RDB_OPCODE_SLOT_INFO: u8 = 0xF4;

/// Length forms (`rdbSaveLen`).
pub const RDB_6BITLEN: u8 = 0;
/// 14-bit length, big-endian.
pub const RDB_14BITLEN: u8 = 1;
/// 32-bit length marker byte, then u32 BE.
pub const RDB_32BITLEN: u8 = 0x80;
/// 64-bit length marker byte, then u64 BE.
pub const RDB_64BITLEN: u8 = 0x81;
/// `11xxxxxx`: special string encoding.
pub const RDB_ENCVAL: u8 = 3;

/// Special string encodings.
pub const RDB_ENC_INT8: u8 = 0;
/// 16-bit LE integer.
pub const RDB_ENC_INT16: u8 = 1;
/// 32-bit LE integer.
pub const RDB_ENC_INT32: u8 = 2;
/// LZF-compressed string.
pub const RDB_ENC_LZF: u8 = 3;

/// Object types.
pub const RDB_TYPE_STRING: u8 = 0;
/// Legacy linked list.
pub const RDB_TYPE_LIST: u8 = 1;
/// Plain set.
pub const RDB_TYPE_SET: u8 = 2;
/// Sorted set with text scores.
pub const RDB_TYPE_ZSET: u8 = 3;
/// Plain hash.
pub const RDB_TYPE_HASH: u8 = 4;
/// Sorted set with binary scores.
pub const RDB_TYPE_ZSET_2: u8 = 5;
/// Module value (4.0 RC).
pub const RDB_TYPE_MODULE_PRE_GA: u8 = 6;
/// Module value.
pub const RDB_TYPE_MODULE_2: u8 = 7;
/// Hash as zipmap.
pub const RDB_TYPE_HASH_ZIPMAP: u8 = 9;
/// List as ziplist.
pub const RDB_TYPE_LIST_ZIPLIST: u8 = 10;
/// Set as intset.
pub const RDB_TYPE_SET_INTSET: u8 = 11;
/// Sorted set as ziplist.
pub const RDB_TYPE_ZSET_ZIPLIST: u8 = 12;
/// Hash as ziplist.
pub const RDB_TYPE_HASH_ZIPLIST: u8 = 13;
/// Quicklist of ziplists.
pub const RDB_TYPE_LIST_QUICKLIST: u8 = 14;
/// Stream, RDB 9.
pub const RDB_TYPE_STREAM_LISTPACKS: u8 = 15;
/// Hash as listpack (RDB 10).
pub const RDB_TYPE_HASH_LISTPACK: u8 = 16;
/// Sorted set as listpack (RDB 10).
pub const RDB_TYPE_ZSET_LISTPACK: u8 = 17;
/// Quicklist of listpacks / plain nodes (RDB 10).
pub const RDB_TYPE_LIST_QUICKLIST_2: u8 = 18;
/// Stream with first id, max deleted id, entries added, entries read (RDB 10).
pub const RDB_TYPE_STREAM_LISTPACKS_2: u8 = 19;
/// Set as listpack (RDB 11).
pub const RDB_TYPE_SET_LISTPACK: u8 = 20;
/// Stream with consumer active time (RDB 11).
pub const RDB_TYPE_STREAM_LISTPACKS_3: u8 = 21;

/// Quicklist 2 node holding one raw element.
pub const QUICKLIST_NODE_CONTAINER_PLAIN: u64 = 1;
/// Quicklist 2 node holding a listpack.
pub const QUICKLIST_NODE_CONTAINER_PACKED: u64 = 2;

/// Module value sub-opcodes.
pub const RDB_MODULE_OPCODE_EOF: u64 = 0;
/// Signed integer.
pub const RDB_MODULE_OPCODE_SINT: u64 = 1;
/// Unsigned integer.
pub const RDB_MODULE_OPCODE_UINT: u64 = 2;
/// 4-byte float.
pub const RDB_MODULE_OPCODE_FLOAT: u64 = 3;
/// 8-byte double.
pub const RDB_MODULE_OPCODE_DOUBLE: u64 = 4;
/// String.
pub const RDB_MODULE_OPCODE_STRING: u64 = 5;

/// Stream entry flags.
pub const STREAM_ITEM_FLAG_DELETED: i64 = 1;
/// Entry has the master entry's fields.
pub const STREAM_ITEM_FLAG_SAMEFIELDS: i64 = 2;
