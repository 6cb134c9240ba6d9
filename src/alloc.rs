//! The server's global allocator: the system allocator (glibc malloc), plus a transparent huge
//! page hint for big blocks, and a count of the bytes allocated ([`allocated_bytes`]: INFO's
//! `used_memory` and what `maxmemory` is held to, as Redis's zmalloc counter).
//!
//! The count is of glibc's chunks: a block of `n` bytes takes `max(32, n + 8)` rounded up to 16
//! on 64-bit glibc (its size header, and its alignment), computed from the layout on both sides
//! so that every free subtracts exactly what its allocation added. Blocks big enough to be
//! `mmap`ed carry a page's rounding more, which the count leaves out (under 0.1% of them).
//!
//! The keyspace's tables (the dense entry vector and the hash index of every database, the hash
//! index of a big hash or set) are single allocations of tens to hundreds of MiB that are read
//! at random: with 4 KiB pages nearly every lookup in a large keyspace also misses the TLB.
//! Blocks of [`HUGE_MIN`] bytes or more are marked `MADV_HUGEPAGE`, which lets the kernel back
//! them with 2 MiB pages when transparent huge pages are in `madvise` mode (the common
//! distribution default; in `always` mode they get them anyway, in `never` mode the hint does
//! nothing). Loading 10M keys from an RDB file took ~30 % less CPU on the inserting thread with
//! the hint (docs/benchmarks.md).
//!
//! Off by default, as in Redis: `disable-thp yes` (Redis's default, and what Debian's redis.conf
//! sets) turns transparent huge pages off for the process (`PR_SET_THP_DISABLE`, as Redis does);
//! `disable-thp no` turns the hint on. Redis's reason (`fork` plus huge pages makes
//! copy-on-write copy 2 MiB per touched page) does not apply to Strongbox, which never forks,
//! but another does: the first touch of a huge page can stall in the kernel's direct compaction
//! when memory is fragmented (seen here: a write that grew the keyspace's index took 29 ms,
//! once 358 ms, with the hint, against ≤ 4–15 ms without, under load). The
//! memory cost is bounded: the kernel backs only the 2 MiB-aligned parts of a marked range with
//! huge pages, so at most one partly used huge page per block is added to RSS.
//!
//! The hint covers the block's whole 4 KiB pages, not only its 2 MiB-aligned interior: a big
//! block is its own `mmap` (glibc), and marking part of it would split the mapping in three,
//! after which `mremap` refuses to grow it (EFAULT) and glibc's `realloc` falls back to
//! allocate-copy-free — a 40 MiB copy when the keyspace's entry vector doubles.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Blocks at least this big get the hint (smaller ones cannot hold a whole aligned huge page
/// plus enough of a second one to be worth a system call).
pub const HUGE_MIN: usize = 4 << 20;
const PAGE: usize = 4096;

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Bytes of live heap chunks (wrapping arithmetic: a free on another thread may land first).
static ALLOCATED: AtomicUsize = AtomicUsize::new(0);

/// The heap chunk glibc uses for a block of `size` bytes (64-bit): what an allocation of
/// `size` adds to [`allocated_bytes`].
#[inline]
pub fn chunk_bytes(size: usize) -> usize {
    (size.saturating_add(8 + 15) & !15).max(32)
}

/// Bytes the process has allocated and not freed (Redis's `used_memory`).
pub fn allocated_bytes() -> usize {
    ALLOCATED.load(Ordering::Relaxed)
}

/// `disable-thp`, applied at start: `true` hints blocks allocated from now on; `false` also
/// turns transparent huge pages off for the whole process, as Redis does.
pub fn use_huge_pages(enabled: bool) {
    ENABLED.store(enabled, Ordering::Relaxed);
    if !enabled {
        // SAFETY: prctl(PR_SET_THP_DISABLE, 1) only sets a flag of this process; a failure
        // (old kernel) leaves the system's THP policy in place, which is all it can mean.
        unsafe {
            libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
        }
    }
}

/// Give the pages of freed heap memory back to the system (glibc `malloc_trim`, which also
/// releases free pages in the middle of the heap). Called once loading is done: the replay's
/// temporaries (read-ahead chunks, argument vectors, the buffers of growing tables) leave free
/// chunks between live ones that glibc would otherwise keep.
pub fn release_free_memory() {
    // glibc only (other C libraries have no malloc_trim).
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory to the kernel; it touches no live block.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// [`System`] with the huge page hint for blocks of [`HUGE_MIN`] bytes or more.
pub struct ServerAlloc;

/// The pages holding the block `[addr, addr + len)`, as (start, length), if the block is big
/// enough to be hinted.
fn huge_range(addr: usize, len: usize) -> Option<(usize, usize)> {
    if addr == 0 || len < HUGE_MIN {
        return None;
    }
    let start = addr & !(PAGE - 1);
    let end = addr.checked_add(len)?.checked_next_multiple_of(PAGE)?;
    Some((start, end - start))
}

fn advise(p: *mut u8, len: usize) {
    if !ENABLED.load(Ordering::Relaxed) {
        return;
    }
    if let Some((start, len)) = huge_range(p as usize, len) {
        // SAFETY: the range is the pages of the block just returned by the system allocator
        // (its mapping, or the heap around it), all mapped in this process; MADV_HUGEPAGE
        // changes how they are backed, never their contents. A failure (e.g. THP not built
        // into the kernel) only means no hint.
        unsafe {
            libc::madvise(start as *mut libc::c_void, len, libc::MADV_HUGEPAGE);
        }
    }
}

// SAFETY: every call is forwarded to `System` unchanged; `advise` only hints the kernel about
// memory inside the returned block.
unsafe impl GlobalAlloc for ServerAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            ALLOCATED.fetch_add(chunk_bytes(layout.size()), Ordering::Relaxed);
        }
        advise(p, layout.size());
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            ALLOCATED.fetch_add(chunk_bytes(layout.size()), Ordering::Relaxed);
        }
        advise(p, layout.size());
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        ALLOCATED.fetch_sub(chunk_bytes(layout.size()), Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            // One update: the new chunk in, the old one out.
            let (new, old) = (chunk_bytes(new_size), chunk_bytes(layout.size()));
            ALLOCATED.fetch_add(new.wrapping_sub(old), Ordering::Relaxed);
        }
        if new_size > layout.size() {
            advise(p, new_size);
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_blocks_are_hinted_whole_pages_and_small_ones_not_at_all() {
        let mb = 1 << 20;
        // Small blocks and null are never hinted.
        assert_eq!(huge_range(0x1000, HUGE_MIN - 1), None);
        assert_eq!(huge_range(0, HUGE_MIN), None);
        // A page-aligned block: exactly its pages.
        assert_eq!(huge_range(8 * mb, 4 * mb), Some((8 * mb, 4 * mb)));
        // glibc's mmapped block starts 16 bytes into its mapping: the hint covers the whole
        // mapping (one VMA, so mremap can still grow it), from its first page to its last.
        let (start, len) = huge_range(8 * mb + 16, 5 * mb).unwrap();
        assert_eq!(start, 8 * mb);
        assert_eq!(start + len, 8 * mb + 5 * mb + PAGE);
        // Near the top of the address space: no overflow.
        assert_eq!(huge_range(usize::MAX - 16, HUGE_MIN), None);
    }

    /// The bug the whole-page hint avoids: after the hint, a big block must still grow in
    /// place by mremap (checked where /proc is available: one mapping covers the block).
    #[test]
    fn a_hinted_block_stays_one_mapping() {
        use_huge_pages(true);
        let layout = Layout::from_size_align(HUGE_MIN * 2, 16).unwrap();
        // SAFETY: non-zero size; freed below.
        let p = unsafe { ServerAlloc.alloc(layout) };
        assert!(!p.is_null());
        let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
            unsafe { ServerAlloc.dealloc(p, layout) };
            return;
        };
        let a = p as usize;
        let covering: Vec<&str> = maps
            .lines()
            .filter(|l| {
                let r = l.split_whitespace().next().unwrap_or("");
                let (lo, hi) = r.split_once('-').unwrap_or(("0", "0"));
                let lo = usize::from_str_radix(lo, 16).unwrap_or(0);
                let hi = usize::from_str_radix(hi, 16).unwrap_or(0);
                lo < a + HUGE_MIN * 2 && hi > a
            })
            .collect();
        // SAFETY: allocated above with this layout.
        unsafe { ServerAlloc.dealloc(p, layout) };
        assert_eq!(
            covering.len(),
            1,
            "the block spans several mappings: {covering:?}"
        );
    }

    #[test]
    fn big_blocks_stay_usable_through_growth() {
        use_huge_pages(true);
        // The allocator under test is the process's, when the binary installs it; here the
        // hint path runs directly on memory from `System` to check it keeps the contents.
        let layout = Layout::from_size_align(HUGE_MIN, 64).unwrap();
        // SAFETY: layout has non-zero size; the block is written, grown, read and freed here.
        unsafe {
            let a = ServerAlloc;
            let p = a.alloc(layout);
            assert!(!p.is_null());
            std::ptr::write_bytes(p, 0xab, HUGE_MIN);
            let q = a.realloc(p, layout, 3 * HUGE_MIN);
            assert!(!q.is_null());
            assert!(std::slice::from_raw_parts(q, HUGE_MIN)
                .iter()
                .all(|&b| b == 0xab));
            a.dealloc(q, Layout::from_size_align(3 * HUGE_MIN, 64).unwrap());
        }
    }
}
