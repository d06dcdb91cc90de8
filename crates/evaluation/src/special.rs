//! Distribution functions: the chi-square and normal upper tails, and the two-sample
//! Kolmogorov-Smirnov p-value, computed as scipy computes them (Cephes' incomplete gamma,
//! Hodges' lattice-path counts).

/// Machine epsilon as Cephes uses it.
const MACHEP: f64 = 1.110_223_024_625_156_5e-16;
/// The largest `x` whose `exp(x)` is finite.
const MAXLOG: f64 = 7.097_827_128_933_84e2;
const BIG: f64 = 4.503_599_627_370_496e15;
const BIG_INV: f64 = 2.220_446_049_250_313e-16;

/// The regularized lower incomplete gamma function P(a, x).
pub fn gamma_p(a: f64, x: f64) -> f64 {
    if x <= 0.0 || a <= 0.0 {
        return 0.0;
    }
    if x > 1.0 && x > a {
        return 1.0 - gamma_q(a, x);
    }
    let ax = a * x.ln() - x - libm::lgamma(a);
    if ax < -MAXLOG {
        return 0.0;
    }
    let ax = ax.exp();
    // The power series.
    let (mut r, mut c, mut sum) = (a, 1.0, 1.0);
    loop {
        r += 1.0;
        c *= x / r;
        sum += c;
        if c / sum <= MACHEP {
            break;
        }
    }
    sum * ax / a
}

/// The regularized upper incomplete gamma function Q(a, x) = 1 - P(a, x).
pub fn gamma_q(a: f64, x: f64) -> f64 {
    if x.is_infinite() && x > 0.0 {
        return 0.0;
    }
    if x <= 0.0 || a <= 0.0 {
        return 1.0;
    }
    if x < 1.0 || x < a {
        return 1.0 - gamma_p(a, x);
    }
    let ax = a * x.ln() - x - libm::lgamma(a);
    if ax < -MAXLOG {
        return 0.0;
    }
    let ax = ax.exp();
    // The continued fraction.
    let mut y = 1.0 - a;
    let mut z = x + y + 1.0;
    let mut c = 0.0;
    let (mut pkm2, mut qkm2) = (1.0, x);
    let (mut pkm1, mut qkm1) = (x + 1.0, z * x);
    let mut ans = pkm1 / qkm1;
    loop {
        c += 1.0;
        y += 1.0;
        z += 2.0;
        let yc = y * c;
        let pk = pkm1 * z - pkm2 * yc;
        let qk = qkm1 * z - qkm2 * yc;
        let t = if qk == 0.0 {
            1.0
        } else {
            let r = pk / qk;
            let t = ((ans - r) / r).abs();
            ans = r;
            t
        };
        pkm2 = pkm1;
        pkm1 = pk;
        qkm2 = qkm1;
        qkm1 = qk;
        if pk.abs() > BIG {
            pkm2 *= BIG_INV;
            pkm1 *= BIG_INV;
            qkm2 *= BIG_INV;
            qkm1 *= BIG_INV;
        }
        if t <= MACHEP {
            break;
        }
    }
    ans * ax
}

/// The chi-square distribution's upper tail: P(X > x) with `df` degrees of freedom.
pub fn chi2_sf(x: f64, df: f64) -> f64 {
    gamma_q(df / 2.0, x / 2.0)
}

/// The standard normal distribution function.
pub fn normal_cdf(x: f64) -> f64 {
    0.5 * libm::erfc(-x / std::f64::consts::SQRT_2)
}

/// The two-sided p-value of the two-sample KS statistic `d` for samples of `n1` and `n2`
/// values, as scipy's `ks_2samp` gives it: exact (the proportion of lattice paths that leave
/// the band) up to 10,000 values a side, else Kolmogorov's limiting distribution.
pub fn ks_two_sided_p(d: f64, n1: usize, n2: usize) -> f64 {
    if n1.max(n2) <= 10_000
        && let Some(p) = ks_exact(d, n1, n2)
    {
        return p;
    }
    ks_asymptotic(d, n1, n2)
}

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// The exact p-value, or `None` when the computation leaves the floating-point range.
fn ks_exact(d: f64, n1: usize, n2: usize) -> Option<f64> {
    let g = gcd(n1, n2);
    let lcm = (n1 / g) * n2;
    // The statistic is a multiple of 1/lcm; round it onto that lattice.
    let h = (d * lcm as f64).round_ties_even() as usize;
    if h == 0 {
        return Some(1.0);
    }
    let p = if n1 == n2 {
        outside_square(n1, h)
    } else {
        outside_band(n1, n2, g, h)
    };
    (p.is_finite() && (0.0..=1.0).contains(&p)).then_some(p)
}

/// For equal sizes: the proportion of paths that pass outside the lines x - y = ±h.
fn outside_square(n: usize, h: usize) -> f64 {
    let mut p = 0.0;
    let mut k = (n / h) as i64;
    let (n, h) = (n as f64, h as f64);
    while k >= 0 {
        let kf = k as f64;
        let mut p1 = 1.0;
        for j in 0..h as usize {
            let j = j as f64;
            p1 = (n - kf * h - j) * p1 / (n + kf * h + j + 1.0);
        }
        p = p1 * (1.0 - p);
        k -= 1;
    }
    2.0 * p
}

/// For unequal sizes: the proportion of lattice paths from (0, 0) to (m, n) that do not stay
/// strictly inside |x/m - y/n| < h/lcm, counted column by column as 1 - p (Hodges' inside
/// method in Viehmann's stable form), over a sliding window of one column.
fn outside_band(m: usize, n: usize, g: usize, h: usize) -> f64 {
    let (m, n) = if m < n { (n, m) } else { (m, n) };
    let (mg, ng) = ((m / g) as f64, (n / g) as f64);
    let hf = h as f64;
    let mut minj = 0usize;
    let mut maxj = ((hf / mg).ceil() as usize).min(n + 1);
    let mut curlen = maxj - minj;
    let len = (2 * maxj + 2).min(n + 1);
    let mut column = vec![1.0f64; len];
    for v in &mut column[minj..maxj] {
        *v = 0.0;
    }
    for i in 1..=m {
        let fi = i as f64;
        let (lastminj, lastlen) = (minj, curlen);
        let low = ((ng * fi - hf) / mg).floor() + 1.0;
        minj = if low < 0.0 { 0 } else { (low as usize).min(n) };
        maxj = (((ng * fi + hf) / mg).ceil() as usize).min(n + 1);
        if maxj <= minj {
            return 1.0;
        }
        let mut val = if minj == 0 { 0.0 } else { 1.0 };
        for jj in 0..maxj - minj {
            let j = (jj + minj) as f64;
            val = (column[jj + minj - lastminj] * fi + val * j) / (fi + j);
            column[jj] = val;
        }
        curlen = maxj - minj;
        if lastlen > curlen {
            for v in &mut column[curlen..lastlen] {
                *v = 1.0;
            }
        }
    }
    column[maxj - minj - 1]
}

/// Kolmogorov's limiting distribution at the effective size (with Stephens' correction): what
/// remains past 10,000 values a side. Close to scipy's `kstwo` there, not equal.
fn ks_asymptotic(d: f64, n1: usize, n2: usize) -> f64 {
    let en = (n1 as f64 * n2 as f64 / (n1 + n2) as f64).sqrt();
    let lambda = (en + 0.12 + 0.11 / en) * d;
    if lambda < 1e-3 {
        return 1.0;
    }
    let mut sum = 0.0;
    for k in 1..=200 {
        let k = k as f64;
        let term = 2.0 * (-1f64).powf(k - 1.0) * (-2.0 * k * k * lambda * lambda).exp();
        sum += term;
        if term.abs() < 1e-16 {
            break;
        }
    }
    sum.clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails_match_known_values() {
        // scipy.stats.chi2.sf(3.84, 1), chi2.sf(10, 4), chi2.sf(250, 200)
        assert!((chi2_sf(3.84, 1.0) - 0.050_043_521_248_705_19).abs() < 1e-12);
        assert!((chi2_sf(10.0, 4.0) - 0.040_427_681_994_512_79).abs() < 1e-12);
        assert!((chi2_sf(250.0, 200.0) - 0.009_379_131_668_826_098).abs() < 1e-10);
        assert_eq!(chi2_sf(f64::INFINITY, 3.0), 0.0);
        // scipy.stats.norm.cdf(1.96)
        assert!((normal_cdf(1.96) - 0.975_002_104_851_779_5).abs() < 1e-12);
    }

    #[test]
    fn ks_p_values_match_scipy() {
        // scipy.stats.ks_2samp's exact p-values for these (d, n1, n2).
        assert!((ks_two_sided_p(0.5, 10, 10) - 0.167_821_342_743_943_34).abs() < 1e-12);
        assert!((ks_two_sided_p(0.3, 20, 30) - 0.202_356_720_771_038_06).abs() < 1e-12);
        assert_eq!(ks_two_sided_p(0.0, 5, 7), 1.0);
    }
}
