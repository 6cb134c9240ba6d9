//! Every limit of the server in one place, units last in the names.

/// Longest inline command line, and longest `*<count>` / `$<len>` header line (Redis: 64 KiB).
pub const INLINE_BYTES_MAX: usize = 64 * 1024;
/// Largest multibulk count accepted (Redis: INT_MAX with a 1M cap for unauthenticated clients).
pub const MULTIBULK_COUNT_MAX: i64 = i32::MAX as i64;
/// Most arguments in a command from a client that has not authenticated (Redis: 10).
pub const GUEST_MULTIBULK_COUNT_MAX: i64 = 10;
/// Longest argument from a client that has not authenticated (Redis: 16 KiB).
pub const GUEST_BULK_BYTES_MAX: usize = 16 * 1024;
/// At most this many argument slots are reserved before the arguments arrive.
pub const ARGS_PREALLOC_MAX: usize = 1024;
/// Default `proto-max-bulk-len` (512 MiB).
pub const PROTO_MAX_BULK_LEN_DEFAULT: u64 = 512 * 1024 * 1024;
/// Default `client-query-buffer-limit` (1 GiB).
pub const QUERY_BUFFER_BYTES_DEFAULT: u64 = 1024 * 1024 * 1024;
/// Bytes read from a socket per read call.
pub const READ_CHUNK_BYTES: usize = 16 * 1024;
/// Commands handed to the executor per message at most (the rest follow in the next message).
pub const COMMANDS_PER_BATCH_MAX: usize = 1024;
/// Batches a connection may have queued at the executor before it stops reading (backpressure).
pub const BATCHES_IN_FLIGHT_MAX: usize = 4;
/// Batches queued for a sleeping execution thread before the queuing connection wakes it itself
/// instead of leaving it to the I/O thread when that goes idle (see `client::ExecBell`).
pub const EXEC_WAKE_DEFERRED_MAX: usize = 32;
/// Messages the executor handles before it flushes the log and looks at timers.
pub const EXECUTOR_ROUND_MESSAGES_MAX: usize = 256;
/// Default `maxclients`.
pub const MAXCLIENTS_DEFAULT: usize = 10_000;
/// Longest string value (Redis: 512 MiB).
pub const STRING_BYTES_MAX: usize = 512 * 1024 * 1024;
/// Number of keys sampled per active-expire loop iteration (Redis: 20).
pub const ACTIVE_EXPIRE_KEYS_PER_LOOP: usize = 20;
/// Time budget of one active-expire cycle, as a fraction of a cron tick (Redis: 25%).
pub const ACTIVE_EXPIRE_CYCLE_PERCENT: u64 = 25;

const _: () = assert!(ARGS_PREALLOC_MAX <= MULTIBULK_COUNT_MAX as usize);
const _: () = assert!(INLINE_BYTES_MAX < QUERY_BUFFER_BYTES_DEFAULT as usize);
