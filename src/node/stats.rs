//! Round-trip time statistics, as in the cluster ping tables of the brief.

use std::fmt;
use std::time::Duration;

/// Summary of round-trip times: min / avg / max / standard deviation and the p50 / p99
/// percentiles (nearest rank).
///
/// ```
/// use std::time::Duration;
/// use fleetwire::node::RttStats;
/// let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
/// let s = RttStats::from_samples(&samples).unwrap();
/// assert_eq!((s.min, s.max), (Duration::from_millis(1), Duration::from_millis(100)));
/// assert_eq!((s.p50, s.p99), (Duration::from_millis(50), Duration::from_millis(99)));
/// assert_eq!(s.avg, Duration::from_micros(50_500));
/// assert!(RttStats::from_samples(&[]).is_none());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RttStats {
    /// Number of samples.
    pub count: usize,
    /// Smallest.
    pub min: Duration,
    /// Arithmetic mean.
    pub avg: Duration,
    /// Largest.
    pub max: Duration,
    /// Population standard deviation.
    pub stddev: Duration,
    /// Median (nearest rank).
    pub p50: Duration,
    /// 99th percentile (nearest rank).
    pub p99: Duration,
}

impl RttStats {
    /// Computes the summary; `None` without samples.
    ///
    /// ```
    /// use std::time::Duration;
    /// let s = fleetwire::node::RttStats::from_samples(&[Duration::from_millis(2)]).unwrap();
    /// assert_eq!((s.count, s.stddev), (1, Duration::ZERO));
    /// ```
    pub fn from_samples(samples: &[Duration]) -> Option<RttStats> {
        if samples.is_empty() {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        let n = sorted.len() as f64;
        let secs: Vec<f64> = sorted.iter().map(Duration::as_secs_f64).collect();
        let mean = secs.iter().sum::<f64>() / n;
        let var = secs.iter().map(|s| (s - mean) * (s - mean)).sum::<f64>() / n;
        Some(RttStats {
            count: sorted.len(),
            min: sorted[0],
            avg: Duration::from_secs_f64(mean),
            max: sorted[sorted.len() - 1],
            stddev: Duration::from_secs_f64(var.sqrt()),
            p50: nearest_rank(&sorted, 50),
            p99: nearest_rank(&sorted, 99),
        })
    }
}

/// The nearest-rank percentile `p` of sorted, non-empty `sorted`.
fn nearest_rank(sorted: &[Duration], p: usize) -> Duration {
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted[rank.min(sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

impl fmt::Display for RttStats {
    /// A two-line table in milliseconds.
    ///
    /// ```
    /// use std::time::Duration;
    /// let s = fleetwire::node::RttStats::from_samples(&[Duration::from_micros(640)]).unwrap();
    /// let table = s.to_string();
    /// assert!(table.starts_with("      min"));
    /// assert!(table.contains("0.640"));
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:>9} {:>9} {:>9} {:>9} {:>9} {:>9}  (ms, {} samples)",
            "min", "avg", "max", "stddev", "p50", "p99", self.count
        )?;
        write!(
            f,
            "{:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
            ms(self.min),
            ms(self.avg),
            ms(self.max),
            ms(self.stddev),
            ms(self.p50),
            ms(self.p99)
        )
    }
}
