//! The routing-latency histogram: log-linear buckets (16 per power of two, so a bucket is at
//! most 1/16 = 6.25% wide), from 0 ns to 2^40 ns (about 18 minutes; longer counts in the
//! last bucket). The router finds a bucket with a leading-zero count and two shifts, and adds
//! one to a private array it publishes about once a millisecond.

/// Sub-buckets per power of two, as bits.
const SUB_BITS: u32 = 4;
const SUB: u64 = 1 << SUB_BITS;
/// Values from 2^MAX_EXP up land in the last bucket.
const MAX_EXP: u32 = 40;

/// Buckets of the histogram.
pub const LATENCY_BUCKETS: usize = (SUB + (MAX_EXP - SUB_BITS) as u64 * SUB) as usize;

/// The bucket of `ns`.
///
/// ```
/// use agentd::bus_header::histogram::{bucket, bounds};
/// for v in [0, 1, 15, 16, 17, 1_000, 123_456, 1 << 39] {
///     let (lo, hi) = bounds(bucket(v));
///     assert!(lo <= v && v <= hi, "{v} in {lo}..={hi}");
/// }
/// ```
#[inline]
pub fn bucket(ns: u64) -> usize {
    if ns < SUB {
        return ns as usize;
    }
    let exp = 63 - ns.leading_zeros();
    if exp >= MAX_EXP {
        return LATENCY_BUCKETS - 1;
    }
    let sub = (ns >> (exp - SUB_BITS)) & (SUB - 1);
    (SUB + (exp - SUB_BITS) as u64 * SUB + sub) as usize
}

/// The smallest and largest value of bucket `index` (the last one's largest is `u64::MAX`).
pub fn bounds(index: usize) -> (u64, u64) {
    let lower = |i: usize| -> u64 {
        let i = i as u64;
        if i < SUB {
            return i;
        }
        let exp = (i - SUB) / SUB + SUB_BITS as u64;
        let sub = (i - SUB) % SUB;
        (1 << exp) + (sub << (exp - SUB_BITS as u64))
    };
    let hi = if index + 1 >= LATENCY_BUCKETS {
        u64::MAX
    } else {
        lower(index + 1) - 1
    };
    (lower(index), hi)
}

/// A histogram as read from the header: counts per bucket and the sum of what was recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Latency {
    /// Count per bucket ([`LATENCY_BUCKETS`] of them).
    pub counts: Vec<u64>,
    /// Sum of the recorded values, ns.
    pub sum_ns: u64,
}

impl Latency {
    /// An empty histogram.
    pub fn empty() -> Latency {
        Latency {
            counts: vec![0; LATENCY_BUCKETS],
            sum_ns: 0,
        }
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The value at quantile `q` (0..=1): the upper bound of the bucket holding it, so at most
    /// 6.25% above the true value; `None` when nothing was recorded.
    ///
    /// ```
    /// use agentd::bus_header::histogram::{bucket, Latency};
    /// let mut h = Latency::empty();
    /// for v in 1..=100u64 { h.counts[bucket(v * 1_000)] += 1; }
    /// let p50 = h.quantile(0.5).unwrap();
    /// assert!((50_000..=53_200).contains(&p50), "{p50}");
    /// ```
    pub fn quantile(&self, q: f64) -> Option<u64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(bounds(i).1);
            }
        }
        None
    }

    /// The highest value recorded, as its bucket's upper bound.
    pub fn max(&self) -> Option<u64> {
        self.quantile(1.0)
    }

    /// Values recorded at or below `le_ns`, counting a bucket when its upper bound is at or
    /// below it (exact for powers of two, which are bucket boundaries).
    pub fn count_at_or_below(&self, le_ns: u64) -> u64 {
        self.counts
            .iter()
            .enumerate()
            .take_while(|(i, _)| bounds(*i).1 <= le_ns)
            .map(|(_, c)| c)
            .sum()
    }

    /// What was recorded since `earlier`, a reading of the same histogram (for rates).
    pub fn since(&self, earlier: &Latency) -> Latency {
        Latency {
            counts: self
                .counts
                .iter()
                .zip(earlier.counts.iter().chain(std::iter::repeat(&0)))
                .map(|(a, b)| a.saturating_sub(*b))
                .collect(),
            sum_ns: self.sum_ns.saturating_sub(earlier.sum_ns),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_narrow() {
        let mut next = 0;
        for i in 0..LATENCY_BUCKETS {
            let (lo, hi) = bounds(i);
            assert_eq!(lo, next, "bucket {i}");
            assert!(hi >= lo);
            assert_eq!(bucket(lo), i);
            if i + 1 < LATENCY_BUCKETS {
                assert_eq!(bucket(hi), i);
                assert!(
                    (hi - lo) as f64 <= lo as f64 / 16.0 + 1.0,
                    "bucket {i} too wide"
                );
            }
            next = hi.wrapping_add(1);
        }
        assert_eq!(bucket(u64::MAX), LATENCY_BUCKETS - 1);
    }

    #[test]
    fn powers_of_two_are_bucket_boundaries() {
        for exp in 4..40 {
            let i = bucket(1 << exp);
            assert_eq!(bounds(i).0, 1 << exp);
        }
    }
}
