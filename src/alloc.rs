//! The server's global allocator: the system allocator (glibc malloc), plus a transparent huge
//! page hint for big blocks.
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
//! Redis disables transparent huge pages for itself (`disable-thp yes`) because `fork` plus
//! huge pages makes copy-on-write copy 2 MiB per touched page; Strongbox does not fork. The
//! memory cost is bounded: only the 2 MiB-aligned interior of a big block is marked, so at most
//! one partly used huge page per block is added to RSS.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, Ordering};

/// Blocks at least this big get the hint (smaller ones cannot hold a whole aligned huge page
/// plus enough of a second one to be worth a system call).
pub const HUGE_MIN: usize = 4 << 20;
const HUGE_PAGE: usize = 2 << 20;

static ENABLED: AtomicBool = AtomicBool::new(true);

/// Turn the hint off (or on again) for blocks allocated from now on (`disable-thp`).
pub fn set_huge_pages(enabled: bool) {
    ENABLED.store(enabled, Ordering::Relaxed);
}

/// [`System`] with the huge page hint for blocks of [`HUGE_MIN`] bytes or more.
pub struct ServerAlloc;

/// The whole huge pages inside the block `[addr, addr + len)`, as (start, length), if the block
/// is big enough to be hinted and holds at least one.
fn huge_range(addr: usize, len: usize) -> Option<(usize, usize)> {
    if addr == 0 || len < HUGE_MIN {
        return None;
    }
    let start = addr.checked_next_multiple_of(HUGE_PAGE)?;
    let end = addr.checked_add(len)? & !(HUGE_PAGE - 1);
    (end > start).then(|| (start, end - start))
}

fn advise(p: *mut u8, len: usize) {
    if !ENABLED.load(Ordering::Relaxed) {
        return;
    }
    if let Some((start, len)) = huge_range(p as usize, len) {
        // SAFETY: the range lies inside the block just returned by the system allocator, which
        // this process owns; MADV_HUGEPAGE changes how it is backed, never its contents. A
        // failure (e.g. THP not built into the kernel) only means no hint.
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
        advise(p, layout.size());
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        advise(p, layout.size());
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
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
    fn only_whole_aligned_huge_pages_inside_big_blocks_are_hinted() {
        let mb = 1 << 20;
        // Small blocks and null are never hinted.
        assert_eq!(huge_range(0x1000, HUGE_MIN - 1), None);
        assert_eq!(huge_range(0, HUGE_MIN), None);
        // An aligned block: all of it.
        assert_eq!(huge_range(8 * mb, 4 * mb), Some((8 * mb, 4 * mb)));
        // Unaligned at both ends: the aligned interior only, never a byte outside the block.
        let (start, len) = huge_range(8 * mb + 16, 5 * mb).unwrap();
        assert_eq!((start, len), (10 * mb, 2 * mb));
        assert!(start >= 8 * mb + 16 && start + len <= 8 * mb + 16 + 5 * mb);
        // The smallest hinted block, at the worst alignment, still holds one whole page.
        assert_eq!(huge_range(2 * mb + 16, HUGE_MIN), Some((4 * mb, 2 * mb)));
        // Near the top of the address space: no overflow.
        assert_eq!(huge_range(usize::MAX - 16, HUGE_MIN), None);
    }

    #[test]
    fn big_blocks_stay_usable_through_growth() {
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
