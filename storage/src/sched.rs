//! Scheduling hints for the threads whose delays clients see (log writer, fsync, execution,
//! I/O).

/// Ask the scheduler for short time slices on the calling thread (Linux 6.12+ EEVDF custom
/// slice: `sched_setattr` with `sched_runtime` for SCHED_OTHER; earlier kernels ignore it).
/// A thread with a short slice preempts a running thread with a longer one when it wakes, so a
/// serving thread woken by a client does not wait for a busy neighbour (the snapshot thread,
/// another process) to finish its slice: perf sched showed waits of 3–4 ms on 2 cores. The
/// thread's share of the CPU does not change, only how finely it is cut. Returns whether the
/// kernel accepted it.
pub fn prefer_short_slices() -> bool {
    #[cfg(target_os = "linux")]
    {
        #[repr(C)]
        struct SchedAttr {
            size: u32,
            sched_policy: u32,
            sched_flags: u64,
            sched_nice: i32,
            sched_priority: u32,
            sched_runtime: u64,
            sched_deadline: u64,
            sched_period: u64,
        }
        // SAFETY: gettid and getpriority take integers only and touch no memory of this process.
        let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) };
        let attr = SchedAttr {
            size: std::mem::size_of::<SchedAttr>() as u32,
            sched_policy: libc::SCHED_OTHER as u32,
            sched_flags: 0,
            sched_nice: nice,
            sched_priority: 0,
            sched_runtime: SHORT_SLICE_NS,
            sched_deadline: 0,
            sched_period: 0,
        };
        // SAFETY: `attr` is a valid, initialised `struct sched_attr` (SCHED_ATTR_SIZE_VER0
        // layout, its size in `size`) that outlives the call; pid 0 is the calling thread.
        unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) == 0 }
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}

/// The slice [`prefer_short_slices`] asks for (the kernel's minimum is 0.1 ms).
const SHORT_SLICE_NS: u64 = 100_000;

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel's version (major, minor) from uname, on Linux.
    fn kernel_version() -> Option<(u32, u32)> {
        let v = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
        let mut it = v.trim().split(|c: char| !c.is_ascii_digit());
        Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
    }

    #[test]
    fn a_thread_can_ask_for_short_slices() {
        let Some(version) = kernel_version() else {
            return; // not Linux: nothing to ask for
        };
        let (accepted, sched, nice) = std::thread::spawn(|| {
            // SAFETY: as in `prefer_short_slices`.
            let nice_of_self =
                || unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) };
            // SAFETY: setpriority on this thread's own id, integers only.
            unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 3) };
            let before = nice_of_self();
            let ok = prefer_short_slices();
            let sched = std::fs::read_to_string("/proc/thread-self/sched").unwrap_or_default();
            (ok, sched, (before, nice_of_self()))
        })
        .join()
        .expect("thread");
        assert_eq!(nice.0, nice.1, "the thread's nice value is kept");
        assert!(accepted, "sched_setattr refused");
        if version >= (6, 12) {
            // Custom slices exist since 6.12: the thread's slice is the one asked for.
            let slice = sched
                .lines()
                .find(|l| l.starts_with("se.slice"))
                .and_then(|l| l.split(':').nth(1))
                .map(|v| v.trim().to_string());
            assert_eq!(slice.as_deref(), Some("100000"), "{sched}");
        }
    }
}
