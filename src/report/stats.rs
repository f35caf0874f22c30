//! The little statistics the reports need: running tallies of scores, Student's t confidence
//! intervals for a mean, and nearest-rank percentiles. Pure functions over numbers.

/// Two-sided confidence level of every interval in the reports.
pub const CONFIDENCE: f64 = 0.95;

/// How [`mean_ci`] computes its interval, as the reports state it.
pub const CI_METHOD: &str = "95% confidence interval of the mean, Student's t with n-1 degrees \
                             of freedom and the sample standard deviation";

/// The highest score any scale may have (NPS: 0–10).
pub const MAX_SCORE: u8 = 10;

/// Count, sum and sum of squares of scores (0–10, whatever the scale), plus the distribution:
/// enough for the mean, the standard deviation and the shares, and cheap to merge.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Scores {
    pub n: u64,
    pub sum: f64,
    pub sum_sq: f64,
    /// `distribution[s]`: how many scores were `s`.
    pub distribution: [u64; MAX_SCORE as usize + 1],
}

impl Scores {
    pub fn add(&mut self, score: u8) {
        let x = f64::from(score);
        self.n += 1;
        self.sum += x;
        self.sum_sq += x * x;
        if score <= MAX_SCORE {
            self.distribution[usize::from(score)] += 1;
        }
    }

    /// `n` scores of `score` at once (a tally).
    pub fn add_n(&mut self, score: u8, n: u64) {
        let x = f64::from(score);
        self.n += n;
        self.sum += x * n as f64;
        self.sum_sq += x * x * n as f64;
        if score <= MAX_SCORE {
            self.distribution[usize::from(score)] += n;
        }
    }

    pub fn merge(&mut self, other: &Scores) {
        self.n += other.n;
        self.sum += other.sum;
        self.sum_sq += other.sum_sq;
        for (a, b) in self.distribution.iter_mut().zip(other.distribution) {
            *a += b;
        }
    }

    pub fn mean(&self) -> Option<f64> {
        (self.n > 0).then(|| self.sum / self.n as f64)
    }

    /// Sample standard deviation (n − 1); `None` below two scores.
    pub fn sd(&self) -> Option<f64> {
        if self.n < 2 {
            return None;
        }
        let n = self.n as f64;
        let var = (self.sum_sq - self.sum * self.sum / n) / (n - 1.0);
        // Rounding can take a zero variance a hair below zero.
        Some(var.max(0.0).sqrt())
    }

    /// How many scores lie in `range`.
    pub fn count_in(&self, range: std::ops::RangeInclusive<u8>) -> u64 {
        range
            .filter(|s| *s <= MAX_SCORE)
            .map(|s| self.distribution[usize::from(s)])
            .sum()
    }

    /// The share of scores in `range`, 0–100; `None` without scores.
    pub fn pct_in(&self, range: std::ops::RangeInclusive<u8>) -> Option<f64> {
        (self.n > 0).then(|| 100.0 * self.count_in(range) as f64 / self.n as f64)
    }
}

/// The [`CONFIDENCE`] interval of the mean of `scores` ([`CI_METHOD`]); `None` below two
/// scores, where no spread can be estimated.
pub fn mean_ci(scores: &Scores) -> Option<(f64, f64)> {
    let mean = scores.mean()?;
    let sd = scores.sd()?;
    let df = (scores.n - 1) as f64;
    let half = t_quantile(1.0 - (1.0 - CONFIDENCE) / 2.0, df) * sd / (scores.n as f64).sqrt();
    Some((mean - half, mean + half))
}

/// The `p` quantile (0.5 < p < 1) of Student's t distribution with `df` degrees of freedom,
/// by bisection on [`t_cdf`]; accurate to about 1e-9.
pub fn t_quantile(p: f64, df: f64) -> f64 {
    let (mut lo, mut hi) = (0.0_f64, 1.0e4_f64);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if t_cdf(mid, df) < p {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo < 1e-10 {
            break;
        }
    }
    0.5 * (lo + hi)
}

/// P(T ≤ t) for Student's t with `df` degrees of freedom, through the regularized incomplete
/// beta function.
pub fn t_cdf(t: f64, df: f64) -> f64 {
    let x = df / (df + t * t);
    let tail = 0.5 * incomplete_beta(0.5 * df, 0.5, x);
    if t >= 0.0 { 1.0 - tail } else { tail }
}

/// I_x(a, b), the regularized incomplete beta function (continued fraction, Lentz's method).
fn incomplete_beta(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let ln_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln();
    let front = ln_front.exp();
    // The continued fraction converges fast for x < (a + 1) / (a + b + 2); use the symmetry
    // I_x(a, b) = 1 − I_{1−x}(b, a) otherwise.
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_fraction(a, b, x) / a
    } else {
        1.0 - front * beta_fraction(b, a, 1.0 - x) / b
    }
}

fn beta_fraction(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let mut c = 1.0;
    let mut d = 1.0 - (a + b) * x / (a + 1.0);
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..300 {
        let m = f64::from(m);
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((a + m2 - 1.0) * (a + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        h *= d * c;
        let aa = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1.0));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        let step = d * c;
        h *= step;
        if (step - 1.0).abs() < 1e-15 {
            break;
        }
    }
    h
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7, n = 9), good to ~1e-15.
fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x)Γ(1−x) = π / sin(πx).
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut sum = G[0];
    for (i, g) in G.iter().enumerate().skip(1) {
        sum += g / (x + i as f64);
    }
    let t = x + 7.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

/// The nearest-rank `p` percentile (0 < p ≤ 1) of `sorted` (ascending): the smallest value
/// with at least `p` of the values at or below it. Always one of the values, never an
/// interpolation, so "p90 = 120 s" means some incident really took 120 s.
pub fn nearest_rank(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Median and p90 (nearest rank) of some times, rounded to 0.1 s; sorts them.
pub fn median_p90(seconds: &mut [f64]) -> (Option<f64>, Option<f64>) {
    seconds.sort_by(f64::total_cmp);
    let secs = |x: Option<f64>| x.map(|s| round(s, 1));
    (
        secs(nearest_rank(seconds, 0.5)),
        secs(nearest_rank(seconds, 0.9)),
    )
}

/// `x` rounded to `places` decimals, for the JSON document (3.666… → 3.67).
pub fn round(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_quantiles_match_the_tables() {
        // Two-sided 95 % critical values from any t table.
        for (df, expected) in [
            (1.0, 12.706),
            (2.0, 4.303),
            (4.0, 2.776),
            (9.0, 2.262),
            (29.0, 2.045),
            (120.0, 1.980),
        ] {
            let t = t_quantile(0.975, df);
            assert!((t - expected).abs() < 5e-4, "df {df}: {t} vs {expected}");
        }
        assert!((t_quantile(0.975, 1e6) - 1.95996).abs() < 1e-3);
        assert!((t_cdf(0.0, 5.0) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn mean_sd_and_ci_of_a_small_sample() {
        let mut s = Scores::default();
        for x in [5, 4, 4, 3, 5] {
            s.add(x);
        }
        assert_eq!(s.mean(), Some(4.2));
        let sd = s.sd().unwrap();
        assert!((sd - 0.836_660_0).abs() < 1e-6);
        let (lo, hi) = mean_ci(&s).unwrap();
        // 4.2 ± 2.776 · 0.8367 / √5
        assert!(
            (lo - 3.161).abs() < 1e-3 && (hi - 5.239).abs() < 1e-3,
            "{lo} {hi}"
        );
        assert_eq!(s.pct_in(4..=5), Some(80.0));
        assert_eq!(s.pct_in(1..=2), Some(0.0));
        let mut one = Scores::default();
        one.add(3);
        assert_eq!(mean_ci(&one), None);
    }

    #[test]
    fn nearest_rank_percentiles() {
        assert_eq!(nearest_rank(&[35.0, 120.0], 0.5), Some(35.0));
        assert_eq!(nearest_rank(&[35.0, 120.0], 0.9), Some(120.0));
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(nearest_rank(&v, 0.5), Some(5.0));
        assert_eq!(nearest_rank(&v, 0.9), Some(9.0));
        assert_eq!(nearest_rank(&[], 0.5), None);
    }
}
