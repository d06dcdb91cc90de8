//! A reference profile's pieces: the seeded, bounded sample of a training set, and each
//! column's summary (count, missing share, and quantiles or category frequencies), as
//! `wafer profile` writes them beside a model.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The quantiles a numeric summary gives (numpy's default, linear interpolation).
pub const QUANTILES: [f64; 7] = [0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0];

/// Categories a summary lists at most; the rest are counted together.
pub const TOP_CATEGORIES: usize = 50;

/// One column's summary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Values, missing ones included.
    pub count: usize,
    /// The share of missing values.
    pub missing: f64,
    /// What the present values look like.
    #[serde(flatten)]
    pub shape: Shape,
}

/// The distribution of a column's present values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Shape {
    /// A numeric column.
    Numbers {
        /// The mean.
        mean: f64,
        /// The sample standard deviation (`ddof = 1`, as pandas).
        std: f64,
        /// [`QUANTILES`], as `"q"` → value.
        quantiles: BTreeMap<String, f64>,
    },
    /// A categorical column.
    Categories {
        /// Distinct values.
        distinct: usize,
        /// The [`TOP_CATEGORIES`] most frequent values' shares, and `"(others)"` for the rest.
        frequencies: BTreeMap<String, f64>,
    },
}

/// Summarizes a numeric column (`None` is missing).
pub fn summarize_numbers(values: &[Option<f64>]) -> Summary {
    let mut present: Vec<f64> = values.iter().flatten().copied().collect();
    present.sort_by(f64::total_cmp);
    let n = present.len();
    let mean = present.iter().sum::<f64>() / n.max(1) as f64;
    let var = present.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n.max(2) - 1) as f64;
    let quantiles = if n == 0 {
        BTreeMap::new()
    } else {
        QUANTILES
            .iter()
            .map(|&q| (format!("{q}"), quantile(&present, q)))
            .collect()
    };
    Summary {
        count: values.len(),
        missing: (values.len() - n) as f64 / values.len().max(1) as f64,
        shape: Shape::Numbers {
            mean: if n == 0 { f64::NAN } else { mean },
            std: if n < 2 { 0.0 } else { var.sqrt() },
            quantiles,
        },
    }
}

/// The `q` quantile of sorted values, interpolated linearly (numpy's default).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let at = q * (sorted.len() - 1) as f64;
    let (lo, frac) = (at.floor() as usize, at.fract());
    match sorted.get(lo + 1) {
        Some(hi) if frac > 0.0 => sorted[lo] + (hi - sorted[lo]) * frac,
        _ => sorted[lo],
    }
}

/// Summarizes a categorical column (`None` is missing).
pub fn summarize_categories(values: &[Option<&str>]) -> Summary {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for v in values.iter().flatten() {
        *counts.entry(v).or_default() += 1;
    }
    let n: usize = counts.values().sum();
    let mut ranked: Vec<(&str, usize)> = counts.iter().map(|(k, v)| (*k, *v)).collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let mut frequencies = BTreeMap::new();
    for (i, (value, count)) in ranked.iter().enumerate() {
        let share = *count as f64 / n as f64;
        let key = if i < TOP_CATEGORIES {
            (*value).to_owned()
        } else {
            "(others)".to_owned()
        };
        *frequencies.entry(key).or_insert(0.0) += share;
    }
    Summary {
        count: values.len(),
        missing: (values.len() - n) as f64 / values.len().max(1) as f64,
        shape: Shape::Categories {
            distinct: counts.len(),
            frequencies,
        },
    }
}

/// A seeded reservoir sample (Vitter's algorithm R) of at most `capacity` row numbers from a
/// stream of unknown length: every row is kept with the same probability, and the same seed
/// over the same rows keeps the same ones.
#[derive(Clone, Debug)]
pub struct Reservoir {
    capacity: usize,
    seen: u64,
    state: u64,
    kept: Vec<u64>,
}

impl Reservoir {
    /// An empty sample of at most `capacity` rows.
    pub fn new(capacity: usize, seed: u64) -> Reservoir {
        Reservoir {
            capacity,
            seen: 0,
            state: seed,
            kept: Vec::with_capacity(capacity.min(1 << 16)),
        }
    }

    /// Offers the next row; returns the slot it takes (replacing that slot's row), if kept.
    pub fn offer(&mut self) -> Option<usize> {
        let row = self.seen;
        self.seen += 1;
        if self.kept.len() < self.capacity {
            self.kept.push(row);
            return Some(self.kept.len() - 1);
        }
        let j = self.next() % self.seen;
        let slot = usize::try_from(j).ok().filter(|&j| j < self.capacity)?;
        self.kept[slot] = row;
        Some(slot)
    }

    /// Rows offered so far.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// The kept row numbers, by slot.
    pub fn rows(&self) -> &[u64] {
        &self.kept
    }

    /// splitmix64.
    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_summarize_as_pandas_describes() {
        // pandas: Series([1, 2, 3, 4, None, 10]).describe() and .quantile([.05, .95]).
        let s = summarize_numbers(&[Some(1.0), Some(2.0), Some(3.0), Some(4.0), None, Some(10.0)]);
        assert_eq!(s.count, 6);
        assert!((s.missing - 1.0 / 6.0).abs() < 1e-15);
        let Shape::Numbers {
            mean,
            std,
            quantiles,
        } = s.shape
        else {
            panic!("numbers")
        };
        assert_eq!(mean, 4.0);
        assert!((std - 3.535_533_905_932_737_6).abs() < 1e-12);
        assert_eq!(quantiles["0"], 1.0);
        assert_eq!(quantiles["0.25"], 2.0);
        assert_eq!(quantiles["0.5"], 3.0);
        assert_eq!(quantiles["0.75"], 4.0);
        assert!((quantiles["0.05"] - 1.2).abs() < 1e-12);
        assert!((quantiles["0.95"] - 8.8).abs() < 1e-12);
        assert_eq!(quantiles["1"], 10.0);
    }

    #[test]
    fn categories_rank_and_fold_the_tail() {
        let values: Vec<String> = (0..120).map(|i| format!("c{}", i % 60)).collect();
        let mut refs: Vec<Option<&str>> = values.iter().map(|s| Some(s.as_str())).collect();
        refs.push(None);
        let s = summarize_categories(&refs);
        let Shape::Categories {
            distinct,
            frequencies,
        } = s.shape
        else {
            panic!("categories")
        };
        assert_eq!(distinct, 60);
        assert_eq!(frequencies.len(), TOP_CATEGORIES + 1);
        assert!((frequencies["(others)"] - 10.0 / 60.0).abs() < 1e-12);
        assert!((frequencies.values().sum::<f64>() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn the_reservoir_is_bounded_seeded_and_even() {
        let sample = |seed| {
            let mut r = Reservoir::new(100, seed);
            for _ in 0..10_000 {
                r.offer();
            }
            r.rows().to_vec()
        };
        let a = sample(7);
        assert_eq!(a.len(), 100);
        assert_eq!(a, sample(7));
        assert_ne!(a, sample(8));
        // Each tenth of the stream holds about a tenth of the sample.
        let mut tenths = [0usize; 10];
        for seed in 0..200 {
            for row in sample(seed) {
                tenths[(row / 1000) as usize] += 1;
            }
        }
        for t in tenths {
            assert!((1800..2200).contains(&t), "{tenths:?}");
        }
        // Fewer rows than the capacity: all are kept, in order.
        let mut small = Reservoir::new(100, 1);
        for _ in 0..5 {
            small.offer();
        }
        assert_eq!(small.rows(), &[0, 1, 2, 3, 4]);
    }
}
