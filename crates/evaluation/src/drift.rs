//! Data drift, column by column and for a whole dataset, as Evidently's `DataDriftPreset`
//! computes it by default:
//! - up to 1,000 reference values: two-sample Kolmogorov-Smirnov for numbers, chi-square for
//!   categories (a Z-test for two), at p ≤ 0.05 (KS) or p < 0.05;
//! - more: the Wasserstein distance normed by the reference's standard deviation for numbers,
//!   the Jensen-Shannon distance for categories, at ≥ 0.1;
//! - a numeric column with at most 5 distinct values is tested as a category;
//! - the dataset drifts when at least half of its columns do.
//!
//! PSI, and any test for any column, can be chosen instead. Missing values are left out before
//! testing, as Evidently leaves them out.

use thiserror::Error;

use crate::special::{chi2_sf, ks_two_sided_p, normal_cdf};

/// One column's values, missing ones left out.
#[derive(Clone, Debug, PartialEq)]
pub enum Sample {
    /// A numeric column.
    Numbers(Vec<f64>),
    /// A categorical column.
    Categories(Vec<String>),
}

impl Sample {
    /// The number of values.
    pub fn len(&self) -> usize {
        match self {
            Sample::Numbers(v) => v.len(),
            Sample::Categories(v) => v.len(),
        }
    }

    /// Whether it holds no value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn kind(&self) -> &'static str {
        match self {
            Sample::Numbers(_) => "numeric",
            Sample::Categories(_) => "categorical",
        }
    }

    /// The values as category keys: text, or the numbers' shortest round-trip form.
    fn keys(&self) -> Vec<String> {
        match self {
            Sample::Numbers(v) => v.iter().map(|x| format!("{x:?}")).collect(),
            Sample::Categories(v) => v.clone(),
        }
    }
}

/// A drift test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// Two-sample Kolmogorov-Smirnov; the score is the p-value.
    Ks,
    /// Pearson's chi-square on category counts; the score is the p-value.
    ChiSquare,
    /// The two-proportion Z-test, for two categories; the score is the p-value.
    ZTest,
    /// The Wasserstein distance divided by the reference's standard deviation.
    Wasserstein,
    /// The Jensen-Shannon distance of the binned distributions (natural log).
    JensenShannon,
    /// The population stability index of the binned distributions.
    Psi,
}

impl Method {
    /// Every method, by name.
    pub const ALL: [Method; 6] = [
        Method::Ks,
        Method::ChiSquare,
        Method::ZTest,
        Method::Wasserstein,
        Method::JensenShannon,
        Method::Psi,
    ];

    /// Evidently's name for it: `ks`, `chisquare`, `z`, `wasserstein`, `jensenshannon`, `psi`.
    pub fn name(self) -> &'static str {
        match self {
            Method::Ks => "ks",
            Method::ChiSquare => "chisquare",
            Method::ZTest => "z",
            Method::Wasserstein => "wasserstein",
            Method::JensenShannon => "jensenshannon",
            Method::Psi => "psi",
        }
    }

    /// The method Evidently names `name`.
    pub fn from_name(name: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Whether the score is a p-value (drift when small) rather than a distance (drift when
    /// large).
    pub fn is_p_value(self) -> bool {
        matches!(self, Method::Ks | Method::ChiSquare | Method::ZTest)
    }

    /// Evidently's default threshold: 0.05 for p-values, 0.1 for distances.
    pub fn default_threshold(self) -> f64 {
        if self.is_p_value() { 0.05 } else { 0.1 }
    }

    /// Evidently's verdict for `score` at `threshold` (KS counts p = threshold as drift, the
    /// other p-value tests do not; distances drift from the threshold up).
    fn drifted(self, score: f64, threshold: f64) -> bool {
        match self {
            Method::Ks => score <= threshold,
            Method::ChiSquare | Method::ZTest => score < threshold,
            Method::Wasserstein | Method::JensenShannon | Method::Psi => score >= threshold,
        }
    }

    /// Whether it can test a column of this kind.
    fn takes(self, sample: &Sample) -> bool {
        match self {
            Method::Ks | Method::Wasserstein => matches!(sample, Sample::Numbers(_)),
            Method::ChiSquare | Method::ZTest | Method::JensenShannon | Method::Psi => true,
        }
    }
}

/// Why a column could not be tested.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum DriftError {
    /// No values on one side, once missing ones are left out.
    #[error("the {0} data has no values")]
    Empty(&'static str),
    /// Reference and current are of different kinds.
    #[error("the reference is {reference}, the current data {current}")]
    MixedKinds {
        /// The reference's kind.
        reference: &'static str,
        /// The current data's kind.
        current: &'static str,
    },
    /// The method does not take this kind of column.
    #[error("{method} cannot test a {kind} column")]
    NotForKind {
        /// The method's name.
        method: &'static str,
        /// The column's kind.
        kind: &'static str,
    },
    /// A Z-test needs at most two categories.
    #[error("the Z-test takes two categories, not {0}")]
    NotTwoCategories(usize),
}

/// One column's verdict.
#[derive(Clone, Debug, PartialEq)]
pub struct ColumnDrift {
    /// The test.
    pub method: Method,
    /// Its p-value or distance.
    pub score: f64,
    /// The threshold it was held to.
    pub threshold: f64,
    /// Whether the column drifted.
    pub drifted: bool,
}

/// A dataset's verdict.
#[derive(Clone, Debug, PartialEq)]
pub struct DatasetDrift {
    /// Each column's verdict, in the order given.
    pub columns: Vec<(String, ColumnDrift)>,
    /// The share of drifted columns.
    pub share: f64,
    /// Whether that share reaches the dataset threshold.
    pub drifted: bool,
}

/// Evidently's default share of drifted columns for a dataset to drift.
pub const DATASET_DRIFT_SHARE: f64 = 0.5;

/// The number of distinct values of reference and current together.
fn distinct(reference: &Sample, current: &Sample) -> usize {
    match (reference, current) {
        (Sample::Numbers(r), Sample::Numbers(c)) => {
            let mut all: Vec<f64> = r.iter().chain(c).copied().collect();
            all.sort_by(f64::total_cmp);
            all.dedup();
            all.len()
        }
        _ => {
            let mut all: Vec<String> = reference.keys();
            all.extend(current.keys());
            all.sort();
            all.dedup();
            all.len()
        }
    }
}

/// The test Evidently's `DataDriftPreset` chooses for a column by default.
pub fn default_method(reference: &Sample, current: &Sample) -> Method {
    let values = distinct(reference, current);
    let numeric = matches!(reference, Sample::Numbers(_)) && values > 5;
    match (reference.len() <= 1_000, numeric) {
        (true, true) => Method::Ks,
        (true, false) if values <= 2 => Method::ZTest,
        (true, false) => Method::ChiSquare,
        (false, true) => Method::Wasserstein,
        (false, false) => Method::JensenShannon,
    }
}

/// Tests one column: with `method` (default: Evidently's choice) at `threshold` (default: the
/// method's).
pub fn column_drift(
    reference: &Sample,
    current: &Sample,
    method: Option<Method>,
    threshold: Option<f64>,
) -> Result<ColumnDrift, DriftError> {
    if reference.is_empty() {
        return Err(DriftError::Empty("reference"));
    }
    if current.is_empty() {
        return Err(DriftError::Empty("current"));
    }
    if reference.kind() != current.kind() {
        return Err(DriftError::MixedKinds {
            reference: reference.kind(),
            current: current.kind(),
        });
    }
    let method = method.unwrap_or_else(|| default_method(reference, current));
    if !method.takes(reference) {
        return Err(DriftError::NotForKind {
            method: method.name(),
            kind: reference.kind(),
        });
    }
    let score = match (method, reference, current) {
        (Method::Ks, Sample::Numbers(r), Sample::Numbers(c)) => ks(r, c),
        (Method::Wasserstein, Sample::Numbers(r), Sample::Numbers(c)) => {
            let norm = std_dev(r).max(0.001);
            wasserstein(r, c) / norm
        }
        (Method::ChiSquare, r, c) => chi_square(&r.keys(), &c.keys()),
        (Method::ZTest, r, c) => z_test(&r.keys(), &c.keys())?,
        (Method::JensenShannon, r, c) => {
            let (p, q) = binned(r, c, false);
            jensen_shannon(&p, &q)
        }
        (Method::Psi, r, c) => {
            let (p, q) = binned(r, c, true);
            p.iter().zip(&q).map(|(r, c)| (r - c) * (r / c).ln()).sum()
        }
        _ => unreachable!("kinds checked above"),
    };
    let threshold = threshold.unwrap_or_else(|| method.default_threshold());
    Ok(ColumnDrift {
        method,
        score,
        threshold,
        drifted: method.drifted(score, threshold),
    })
}

/// Tests every column with its default test, and the dataset at [`DATASET_DRIFT_SHARE`].
pub fn dataset_drift(columns: &[(String, Sample, Sample)]) -> Result<DatasetDrift, DriftError> {
    let columns: Vec<(String, ColumnDrift)> = columns
        .iter()
        .map(|(name, r, c)| Ok((name.clone(), column_drift(r, c, None, None)?)))
        .collect::<Result<_, DriftError>>()?;
    let drifted = columns.iter().filter(|(_, d)| d.drifted).count();
    let share = if columns.is_empty() {
        0.0
    } else {
        drifted as f64 / columns.len() as f64
    };
    Ok(DatasetDrift {
        drifted: !columns.is_empty() && share >= DATASET_DRIFT_SHARE,
        columns,
        share,
    })
}

/// Sorted copy.
fn sorted(v: &[f64]) -> Vec<f64> {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v
}

/// The number of values of sorted `v` at most `x`.
fn count_le(v: &[f64], x: f64) -> usize {
    v.partition_point(|&y| y <= x)
}

/// The two-sided KS p-value (scipy's `ks_2samp`).
fn ks(reference: &[f64], current: &[f64]) -> f64 {
    let (a, b) = (sorted(reference), sorted(current));
    let (n1, n2) = (a.len() as f64, b.len() as f64);
    let mut d = 0.0f64;
    for &x in a.iter().chain(&b) {
        let diff = count_le(&a, x) as f64 / n1 - count_le(&b, x) as f64 / n2;
        d = d.max(diff.abs());
    }
    ks_two_sided_p(d.min(1.0), a.len(), b.len())
}

/// The population standard deviation.
fn std_dev(v: &[f64]) -> f64 {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    (v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n).sqrt()
}

/// The first Wasserstein distance between two samples (scipy's `wasserstein_distance`).
fn wasserstein(u: &[f64], v: &[f64]) -> f64 {
    let (u, v) = (sorted(u), sorted(v));
    let all = sorted(&[u.as_slice(), v.as_slice()].concat());
    let (nu, nv) = (u.len() as f64, v.len() as f64);
    all.windows(2)
        .map(|w| {
            let (x, delta) = (w[0], w[1] - w[0]);
            let cdf_u = count_le(&u, x) as f64 / nu;
            let cdf_v = count_le(&v, x) as f64 / nv;
            (cdf_u - cdf_v).abs() * delta
        })
        .sum()
}

/// Counts of each key of `keys` in `values`.
fn counts(values: &[String], keys: &[String]) -> Vec<f64> {
    let mut counts = std::collections::HashMap::<&str, f64>::new();
    for v in values {
        *counts.entry(v.as_str()).or_default() += 1.0;
    }
    keys.iter()
        .map(|k| counts.get(k.as_str()).copied().unwrap_or(0.0))
        .collect()
}

/// The distinct values of both, sorted.
fn union_keys(reference: &[String], current: &[String]) -> Vec<String> {
    let mut keys: Vec<String> = reference.iter().chain(current).cloned().collect();
    keys.sort();
    keys.dedup();
    keys
}

/// Pearson's chi-square p-value of the current counts against the reference's proportions.
fn chi_square(reference: &[String], current: &[String]) -> f64 {
    let keys = union_keys(reference, current);
    let k_norm = current.len() as f64 / reference.len() as f64;
    let expected: Vec<f64> = counts(reference, &keys)
        .iter()
        .map(|c| c * k_norm)
        .collect();
    let observed = counts(current, &keys);
    let statistic: f64 = observed
        .iter()
        .zip(&expected)
        .map(|(o, e)| (o - e) * (o - e) / e)
        .sum();
    chi2_sf(statistic, (keys.len() - 1) as f64)
}

/// The two-sided two-proportion Z-test p-value, the first key (sorted) against the other.
fn z_test(reference: &[String], current: &[String]) -> Result<f64, DriftError> {
    let keys = union_keys(reference, current);
    if keys.len() > 2 {
        return Err(DriftError::NotTwoCategories(keys.len()));
    }
    if keys.len() == 1 {
        return Ok(1.0);
    }
    let share = |v: &[String]| v.iter().filter(|x| **x != keys[0]).count() as f64 / v.len() as f64;
    let (n1, n2) = (reference.len() as f64, current.len() as f64);
    let (p1, p2) = (share(reference), share(current));
    let pooled = (p1 * n1 + p2 * n2) / (n1 + n2);
    let z = (p1 - p2) / (pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)).sqrt();
    Ok(2.0 * (1.0 - normal_cdf(z.abs())))
}

/// Reference and current proportions per bin (Evidently's `get_binned_data`): numbers with
/// more than 20 distinct reference values in Sturges' equal-width bins over both samples, else
/// per distinct value. With `fill_zeroes`, empty bins get a small share, as PSI needs.
fn binned(reference: &Sample, current: &Sample, fill_zeroes: bool) -> (Vec<f64>, Vec<f64>) {
    let many_values = match reference {
        Sample::Numbers(r) => {
            let mut d = sorted(r);
            d.dedup();
            d.len() > 20
        }
        Sample::Categories(_) => false,
    };
    let (mut p, mut q) = match (reference, current) {
        (Sample::Numbers(r), Sample::Numbers(c)) if many_values => {
            let edges = sturges_edges(&[r.as_slice(), c.as_slice()].concat());
            (histogram(r, &edges), histogram(c, &edges))
        }
        _ => {
            let (r, c) = (reference.keys(), current.keys());
            let keys = union_keys(&r, &c);
            let share = |counts: Vec<f64>, n: usize| -> Vec<f64> {
                counts.into_iter().map(|k| k / n as f64).collect()
            };
            (
                share(counts(&r, &keys), r.len()),
                share(counts(&c, &keys), c.len()),
            )
        }
    };
    if fill_zeroes {
        fill(&mut p);
        fill(&mut q);
    }
    (p, q)
}

/// Replaces empty bins' zero share: a millionth of the smallest share when that is at most
/// 0.0001, else 0.0001.
fn fill(shares: &mut [f64]) {
    let smallest = shares
        .iter()
        .copied()
        .filter(|s| *s != 0.0)
        .fold(f64::INFINITY, f64::min);
    let filler = if smallest <= 0.0001 {
        smallest / 1e6
    } else {
        0.0001
    };
    for s in shares.iter_mut().filter(|s| **s == 0.0) {
        *s = filler;
    }
}

/// numpy's `histogram_bin_edges(values, bins="sturges")`.
fn sturges_edges(values: &[f64]) -> Vec<f64> {
    let (first, last) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        });
    let (first, last) = if first == last {
        (first - 0.5, last + 0.5)
    } else {
        (first, last)
    };
    let range = last - first;
    let width = range / ((values.len() as f64).log2() + 1.0);
    let bins = if width > 0.0 {
        (range / width).ceil() as usize
    } else {
        1
    };
    // numpy's linspace: i * step + start, the last edge exactly `last`.
    let step = range / bins as f64;
    let mut edges: Vec<f64> = (0..=bins).map(|i| i as f64 * step + first).collect();
    edges[bins] = last;
    edges
}

/// numpy's `histogram(values, edges)[0] / len`: bins closed on the left, the last on both
/// sides.
fn histogram(values: &[f64], edges: &[f64]) -> Vec<f64> {
    let v = sorted(values);
    let bins = edges.len() - 1;
    let below = |x: f64| v.partition_point(|&y| y < x);
    (0..bins)
        .map(|i| {
            let end = if i + 1 == bins {
                count_le(&v, edges[bins])
            } else {
                below(edges[i + 1])
            };
            (end - below(edges[i])) as f64 / v.len() as f64
        })
        .collect()
}

/// scipy's `jensenshannon(p, q)`, natural log.
fn jensen_shannon(p: &[f64], q: &[f64]) -> f64 {
    let (sp, sq) = (p.iter().sum::<f64>(), q.iter().sum::<f64>());
    let rel_entr = |x: f64, y: f64| {
        if x > 0.0 && y > 0.0 {
            x * (x / y).ln()
        } else if x == 0.0 && y >= 0.0 {
            0.0
        } else {
            f64::INFINITY
        }
    };
    let (mut left, mut right) = (0.0, 0.0);
    for (a, b) in p.iter().zip(q) {
        let (a, b) = (a / sp, b / sq);
        let m = (a + b) / 2.0;
        left += rel_entr(a, m);
        right += rel_entr(b, m);
    }
    ((left + right) / 2.0).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbers(v: &[f64]) -> Sample {
        Sample::Numbers(v.to_vec())
    }

    fn text(v: &[&str]) -> Sample {
        Sample::Categories(v.iter().map(|s| (*s).to_owned()).collect())
    }

    #[test]
    fn the_default_method_follows_evidently() {
        let small: Vec<f64> = (0..100).map(f64::from).collect();
        let large: Vec<f64> = (0..2000).map(f64::from).collect();
        assert_eq!(
            default_method(&numbers(&small), &numbers(&small)),
            Method::Ks
        );
        assert_eq!(
            default_method(&numbers(&large), &numbers(&small)),
            Method::Wasserstein
        );
        let few = numbers(&[1.0, 2.0, 3.0, 1.0]);
        assert_eq!(default_method(&few, &few), Method::ChiSquare);
        let two = text(&["a", "b", "a"]);
        assert_eq!(default_method(&two, &two), Method::ZTest);
        let many: Vec<&str> = (0..2000).map(|i| ["a", "b", "c"][i % 3]).collect();
        assert_eq!(
            default_method(&text(&many), &text(&many)),
            Method::JensenShannon
        );
    }

    #[test]
    fn refuses_what_cannot_be_tested() {
        let n = numbers(&[1.0]);
        let t = text(&["a"]);
        assert_eq!(
            column_drift(&numbers(&[]), &n, None, None),
            Err(DriftError::Empty("reference"))
        );
        assert!(matches!(
            column_drift(&n, &t, None, None),
            Err(DriftError::MixedKinds { .. })
        ));
        assert!(matches!(
            column_drift(&t, &t, Some(Method::Ks), None),
            Err(DriftError::NotForKind { .. })
        ));
        assert_eq!(
            column_drift(&text(&["a", "b", "c"]), &t, Some(Method::ZTest), None),
            Err(DriftError::NotTwoCategories(3))
        );
    }

    #[test]
    fn identical_samples_do_not_drift() {
        let v: Vec<f64> = (0..500).map(|i| f64::from(i % 37)).collect();
        for method in [
            Method::Ks,
            Method::Wasserstein,
            Method::Psi,
            Method::JensenShannon,
        ] {
            let d = column_drift(&numbers(&v), &numbers(&v), Some(method), None).unwrap();
            assert!(!d.drifted, "{method:?}: {d:?}");
        }
    }
}
