//! Per-endpoint totals for the end of a run (`netxray dns`: per name;
//! `netxray http`: per method and path): count, errors and latency
//! percentiles.
//!
//! Bounded: at most [`MAX_KEYS`] endpoints (later ones are summed under
//! [`OTHER`]), and at most [`MAX_SAMPLES`] latencies per endpoint (past
//! that, every other sample is kept: percentiles stay representative, the
//! count stays exact).

/// Maps on the per-message path: foldhash (as model/journey.rs), seeded
/// per run: names and paths from the network cannot be picked to collide
/// without the seed.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

pub const MAX_KEYS: usize = 1000;
pub const MAX_SAMPLES: usize = 100_000;
/// The row that sums endpoints past [`MAX_KEYS`].
pub const OTHER: &str = "(other)";

/// One endpoint's totals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub key: String,
    pub count: u64,
    pub errors: u64,
    /// Latency percentiles (ns) over the exchanges that have one.
    pub p50: Option<u64>,
    pub p90: Option<u64>,
    pub p99: Option<u64>,
    pub max: Option<u64>,
}

#[derive(Debug, Default)]
struct Acc {
    count: u64,
    errors: u64,
    samples: Vec<u64>,
    /// Keep one sample in `stride` (doubles each time the vector fills).
    stride: u64,
    max: Option<u64>,
}

/// Totals per endpoint.
#[derive(Debug, Default)]
pub struct Summary {
    by_key: HashMap<String, Acc>,
}

impl Summary {
    pub fn add(&mut self, key: &str, latency_ns: Option<u64>, error: bool) {
        let key = if self.by_key.contains_key(key) || self.by_key.len() < MAX_KEYS {
            key
        } else {
            OTHER
        };
        // No allocation for a key already there (the common case).
        if !self.by_key.contains_key(key) {
            self.by_key.insert(key.to_string(), Acc::default());
        }
        let Some(a) = self.by_key.get_mut(key) else {
            return;
        };
        a.count += 1;
        a.errors += u64::from(error);
        if let Some(l) = latency_ns {
            a.max = a.max.max(Some(l));
            a.stride = a.stride.max(1);
            if a.count.is_multiple_of(a.stride) {
                a.samples.push(l);
            }
            if a.samples.len() >= MAX_SAMPLES {
                let kept: Vec<u64> = a.samples.iter().step_by(2).copied().collect();
                a.samples = kept;
                a.stride *= 2;
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// The rows, most exchanges first.
    pub fn rows(&self) -> Vec<Row> {
        let mut rows: Vec<Row> = self
            .by_key
            .iter()
            .map(|(k, a)| {
                let mut s = a.samples.clone();
                s.sort_unstable();
                Row {
                    key: k.clone(),
                    count: a.count,
                    errors: a.errors,
                    p50: percentile(&s, 50),
                    p90: percentile(&s, 90),
                    p99: percentile(&s, 99),
                    max: a.max,
                }
            })
            .collect();
        rows.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
        rows
    }
}

/// The nearest-rank percentile of sorted samples.
fn percentile(sorted: &[u64], p: usize) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_errors_and_percentiles() {
        let mut s = Summary::default();
        for l in 1..=100u64 {
            s.add("a.test", Some(l), l % 10 == 0);
        }
        s.add("b.test", None, true);
        let rows = s.rows();
        assert_eq!(rows[0].key, "a.test");
        assert_eq!(rows[0].count, 100);
        assert_eq!(rows[0].errors, 10);
        assert_eq!(rows[0].p50, Some(50));
        assert_eq!(rows[0].p90, Some(90));
        assert_eq!(rows[0].p99, Some(99));
        assert_eq!(rows[0].max, Some(100));
        assert_eq!(rows[1].p50, None);
    }

    #[test]
    fn bounded_in_keys_and_samples() {
        let mut s = Summary::default();
        for i in 0..MAX_KEYS + 5 {
            s.add(&format!("n{i}"), Some(1), false);
        }
        let rows = s.rows();
        assert_eq!(rows.len(), MAX_KEYS + 1);
        assert_eq!(
            rows.iter().find(|r| r.key == OTHER).map(|r| r.count),
            Some(5)
        );
        let mut s = Summary::default();
        for l in 0..(3 * MAX_SAMPLES as u64) {
            s.add("x", Some(l), false);
        }
        let a = &s.by_key["x"];
        assert!(a.samples.len() < MAX_SAMPLES);
        assert_eq!(a.count, 3 * MAX_SAMPLES as u64);
        let p50 = s.rows()[0].p50.unwrap_or(0) as f64;
        assert!(
            (p50 / (1.5 * MAX_SAMPLES as f64) - 1.0).abs() < 0.05,
            "{p50}"
        );
    }
}
