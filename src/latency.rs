//! The latency monitor (Redis's latency.c): with `latency-monitor-threshold` N > 0, every event
//! that took N ms or more (a command: "command", or "fast-command" for commands flagged fast)
//! is kept as a sample of its event's time series, read by LATENCY LATEST / HISTORY / RESET /
//! DOCTOR.

use std::collections::{HashMap, VecDeque};

/// Samples kept per event (Redis's LATENCY_TS_LEN).
pub const SAMPLES_PER_EVENT_MAX: usize = 160;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    /// Unix seconds.
    pub time_s: i64,
    pub latency_ms: u64,
}

#[derive(Default)]
pub struct Series {
    /// Oldest first; two samples in the same second are merged (the higher latency kept).
    pub samples: VecDeque<Sample>,
    /// The highest latency ever recorded for the event (kept when old samples leave).
    pub max_ms: u64,
}

#[derive(Default)]
pub struct LatencyMonitor {
    pub events: HashMap<&'static str, Series>,
}

impl LatencyMonitor {
    /// Record `latency_ms` for `event` at `now_s`, as Redis's latencyAddSample.
    pub fn add(&mut self, event: &'static str, latency_ms: u64, now_s: i64) {
        let s = self.events.entry(event).or_default();
        s.max_ms = s.max_ms.max(latency_ms);
        if let Some(last) = s.samples.back_mut() {
            if last.time_s == now_s {
                last.latency_ms = last.latency_ms.max(latency_ms);
                return;
            }
        }
        s.samples.push_back(Sample {
            time_s: now_s,
            latency_ms,
        });
        while s.samples.len() > SAMPLES_PER_EVENT_MAX {
            s.samples.pop_front();
        }
    }

    /// Forget `names` (every event when empty); how many existed.
    pub fn reset(&mut self, names: &[String]) -> usize {
        if names.is_empty() {
            let n = self.events.len();
            self.events.clear();
            return n;
        }
        names
            .iter()
            .filter(|n| {
                let key = self.events.keys().copied().find(|k| k == n);
                key.and_then(|k| self.events.remove(k)).is_some()
            })
            .count()
    }

    /// Event names, sorted (LATEST and DOCTOR list them in this order).
    pub fn names(&self) -> Vec<&'static str> {
        let mut v: Vec<_> = self.events.keys().copied().collect();
        v.sort_unstable();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_merge_per_second_and_are_bounded() {
        let mut m = LatencyMonitor::default();
        m.add("command", 300, 10);
        m.add("command", 500, 10);
        m.add("command", 200, 11);
        let s = &m.events["command"];
        assert_eq!(
            s.samples
                .iter()
                .map(|x| (x.time_s, x.latency_ms))
                .collect::<Vec<_>>(),
            vec![(10, 500), (11, 200)]
        );
        assert_eq!(s.max_ms, 500);
        for t in 0..500 {
            m.add("command", 1, 100 + t);
        }
        assert_eq!(m.events["command"].samples.len(), SAMPLES_PER_EVENT_MAX);
        assert_eq!(m.events["command"].max_ms, 500);
        assert_eq!(m.reset(&["nope".into()]), 0);
        assert_eq!(m.reset(&[]), 1);
        assert!(m.events.is_empty());
    }
}
