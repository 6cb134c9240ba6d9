//! The per-command latency histogram behind INFO latencystats (Redis 7.0's `latency-tracking`).
//!
//! Redis keeps an HdrHistogram per command over 1 ns..1 s with 2 significant digits. This is the
//! same log-linear layout written for our one use: values below `SUB_BUCKETS_COUNT` are exact,
//! above it each power of two is cut into `SUB_BUCKETS_HALF` equal buckets, so a bucket is
//! never wider than 1/128 of its values (better than 2 significant digits). A percentile reads as
//! the highest value of the bucket that reaches it, as `hdr_value_at_percentile` answers.

/// Recorded values are clamped to this range (ns), as Redis clamps (1 ns..1 s).
pub const LATENCY_NS_MIN: u64 = 1;
pub const LATENCY_NS_MAX: u64 = 1_000_000_000;

/// LATENCY HISTOGRAM's first step (ns); each next one doubles.
const CDF_FIRST_NS: u64 = 1024;

const SUB_BUCKETS_COUNT: u64 = 256;
const SUB_BUCKETS_HALF: u64 = SUB_BUCKETS_COUNT / 2;
/// log2(SUB_BUCKETS_HALF).
const SUB_BUCKETS_HALF_BITS: u32 = 7;
const _: () = assert!(1 << SUB_BUCKETS_HALF_BITS == SUB_BUCKETS_HALF);
/// Buckets needed for values up to `LATENCY_NS_MAX` (< 2^30: shifts 1..=22).
const BUCKETS_COUNT: usize = bucket_index(LATENCY_NS_MAX) + 1;
const _: () = assert!(BUCKETS_COUNT <= 4096);

const fn bucket_index(v: u64) -> usize {
    if v < SUB_BUCKETS_COUNT {
        return v as usize;
    }
    let shift = 63 - v.leading_zeros() - SUB_BUCKETS_HALF_BITS;
    (SUB_BUCKETS_COUNT + (shift as u64 - 1) * SUB_BUCKETS_HALF + ((v >> shift) - SUB_BUCKETS_HALF))
        as usize
}

/// The highest value that falls in bucket `i`.
fn bucket_highest(i: usize) -> u64 {
    let i = i as u64;
    if i < SUB_BUCKETS_COUNT {
        return i;
    }
    let shift = (i - SUB_BUCKETS_COUNT) / SUB_BUCKETS_HALF + 1;
    let sub = (i - SUB_BUCKETS_COUNT) % SUB_BUCKETS_HALF + SUB_BUCKETS_HALF;
    (sub << shift) + (1 << shift) - 1
}

pub struct Histogram {
    counts: Box<[u64]>,
    total: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS_COUNT].into_boxed_slice(),
            total: 0,
        }
    }
}

impl Histogram {
    /// Record one command that took `us` microseconds (Redis records µs × 1000 in ns).
    pub fn record_us(&mut self, us: u64) {
        let ns = us
            .saturating_mul(1000)
            .clamp(LATENCY_NS_MIN, LATENCY_NS_MAX);
        self.counts[bucket_index(ns)] += 1;
        self.total += 1;
    }

    /// How many values were recorded.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// LATENCY HISTOGRAM's cumulative distribution: (µs, values up to it) at powers of two
    /// from 1024 ns, each step shown only when it adds values, up to the largest value (as
    /// Redis's logarithmic iteration with base 2 from 1024 ns).
    pub fn cdf_usec(&self) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut seen = 0u64;
        let mut next = 0usize;
        let mut upper = CDF_FIRST_NS;
        while seen < self.total {
            let last = bucket_index((upper - 1).min(LATENCY_NS_MAX));
            let before = seen;
            while next <= last && next < self.counts.len() {
                seen += self.counts[next];
                next += 1;
            }
            if seen > before {
                out.push((bucket_highest(last) / 1000, seen));
            }
            if next >= self.counts.len() {
                break;
            }
            upper *= 2;
        }
        out
    }

    /// The value (ns) at percentile `p` (0..=100), 0 when nothing was recorded.
    pub fn value_at_percentile_ns(&self, p: f64) -> u64 {
        let p = p.clamp(0.0, 100.0);
        let wanted = (((p / 100.0) * self.total as f64) + 0.5) as u64;
        let wanted = wanted.max(1);
        let mut seen = 0u64;
        for (i, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= wanted {
                return bucket_highest(i);
            }
        }
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_narrow() {
        for v in [1u64, 255, 256, 257, 511, 512, 1000, 123_456, LATENCY_NS_MAX] {
            let i = bucket_index(v);
            assert!(bucket_highest(i) >= v, "{v}");
            if i > 0 {
                assert!(bucket_highest(i - 1) < v, "{v}");
            }
            assert!(bucket_highest(i) - v <= v / 128, "{v}");
        }
    }

    #[test]
    fn percentiles_follow_the_recorded_values() {
        let mut h = Histogram::default();
        assert_eq!(h.value_at_percentile_ns(50.0), 0);
        for us in 1..=100 {
            h.record_us(us);
        }
        let p50 = h.value_at_percentile_ns(50.0);
        assert!((50_000..=50_000 + 50_000 / 128).contains(&p50), "{p50}");
        let p100 = h.value_at_percentile_ns(100.0);
        assert!(
            (100_000..=100_000 + 100_000 / 128).contains(&p100),
            "{p100}"
        );
        assert!(h.value_at_percentile_ns(0.0) >= 1000);
        assert_eq!(
            h.cdf_usec(),
            vec![
                (1, 1),
                (2, 2),
                (4, 4),
                (8, 8),
                (16, 16),
                (32, 32),
                (65, 65),
                (131, 100)
            ]
        );
        // 0 µs clamps to 1 ns, as in Redis.
        let mut z = Histogram::default();
        z.record_us(0);
        assert_eq!(z.value_at_percentile_ns(99.9), 1);
    }
}
