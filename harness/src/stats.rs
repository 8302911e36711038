//! The statistics of `tierbench compare`: mean, relative standard
//! deviation, and Welch's t-test (unequal variances) with the t
//! distribution from `statrs`.

use statrs::distribution::{ContinuousCDF, StudentsT};

/// Mean and sample standard deviation of one metric over iterations.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub n: usize,
    pub mean: f64,
    /// Sample standard deviation (n - 1); 0 for one value.
    pub sd: f64,
}

impl Summary {
    pub fn of(xs: &[f64]) -> Option<Summary> {
        let n = xs.len();
        if n == 0 {
            return None;
        }
        let mean = xs.iter().sum::<f64>() / n as f64;
        let sd = if n > 1 {
            (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
        } else {
            0.0
        };
        Some(Summary { n, mean, sd })
    }
    /// sd / |mean|, or None when the mean is 0.
    pub fn rel_sd(&self) -> Option<f64> {
        (self.mean != 0.0).then(|| self.sd / self.mean.abs())
    }
}

/// Welch's t-test of two samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Welch {
    pub t: f64,
    pub dof: f64,
    /// Two-sided p-value.
    pub p: f64,
}

/// None when either side has fewer than two values (no variance to test
/// against). Two samples without spread are equal (p = 1) or certainly
/// different (p = 0): counters that read the same in every iteration.
pub fn welch(a: &Summary, b: &Summary) -> Option<Welch> {
    if a.n < 2 || b.n < 2 {
        return None;
    }
    let (va, vb) = (a.sd.powi(2) / a.n as f64, b.sd.powi(2) / b.n as f64);
    let se2 = va + vb;
    if se2 == 0.0 {
        let same = a.mean == b.mean;
        return Some(Welch {
            t: if same { 0.0 } else { f64::INFINITY },
            dof: (a.n + b.n - 2) as f64,
            p: if same { 1.0 } else { 0.0 },
        });
    }
    let t = (a.mean - b.mean) / se2.sqrt();
    let dof = se2.powi(2) / (va.powi(2) / (a.n - 1) as f64 + vb.powi(2) / (b.n - 1) as f64);
    let dist = StudentsT::new(0.0, 1.0, dof).ok()?;
    let p = 2.0 * (1.0 - dist.cdf(t.abs()));
    Some(Welch { t, dof, p })
}

/// The 97.5% quantile of Student's t with `dof` degrees of freedom: the
/// factor of a two-sided 95% interval. Infinite for `dof` 0.
pub fn t_975(dof: usize) -> f64 {
    StudentsT::new(0.0, 1.0, dof as f64).map_or(f64::INFINITY, |d| d.inverse_cdf(0.975))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(xs: &[f64]) -> Summary {
        Summary::of(xs).unwrap()
    }

    /// Worked by hand: means 11 and 14, both variances 1 (n = 3), so
    /// se = sqrt(1/3 + 1/3) = 0.8165, t = -3 / 0.8165 = -3.674, and
    /// Welch's dof = (2/3)^2 / (2 * (1/3)^2 / 2) = 4. For t(4), the two-sided
    /// p of |t| = 3.674 is 0.0213 (tables: t(4) at p = 0.02 is 3.747, at
    /// 0.05 is 2.776).
    #[test]
    fn welch_matches_a_hand_computation() {
        let w = welch(&s(&[10.0, 11.0, 12.0]), &s(&[13.0, 14.0, 15.0])).unwrap();
        assert!((w.t + 3.674).abs() < 1e-3, "{w:?}");
        assert!((w.dof - 4.0).abs() < 1e-9, "{w:?}");
        assert!((w.p - 0.0213).abs() < 5e-4, "{w:?}");
        // Means 12 and 13, variances 4 each: t = -1 / sqrt(8/3) = -0.612,
        // dof 4, p = 0.573: not significant.
        let w = welch(&s(&[10.0, 12.0, 14.0]), &s(&[11.0, 13.0, 15.0])).unwrap();
        assert!((w.t + 0.6124).abs() < 1e-3, "{w:?}");
        assert!((w.p - 0.573).abs() < 2e-3, "{w:?}");
    }

    #[test]
    fn the_t_distribution_agrees_with_table_points() {
        // Two-sided critical values: t(4, 0.05) = 2.776, t(10, 0.01) = 3.169.
        for (dof, t, p) in [(4.0, 2.776, 0.05), (10.0, 3.169, 0.01)] {
            let d = StudentsT::new(0.0, 1.0, dof).unwrap();
            assert!((2.0 * (1.0 - d.cdf(t)) - p).abs() < 5e-4);
        }
    }

    #[test]
    fn t_975_matches_the_tables() {
        for (dof, t) in [(1, 12.706), (8, 2.306), (127, 1.979)] {
            assert!((t_975(dof) - t).abs() < 2e-3, "t({dof}) = {}", t_975(dof));
        }
        assert!(t_975(0).is_infinite());
    }

    #[test]
    fn degenerate_samples() {
        assert!(welch(&s(&[1.0]), &s(&[2.0, 3.0])).is_none());
        assert_eq!(welch(&s(&[5.0, 5.0]), &s(&[5.0, 5.0])).unwrap().p, 1.0);
        assert_eq!(welch(&s(&[0.0, 0.0]), &s(&[7.0, 7.0])).unwrap().p, 0.0);
        assert_eq!(s(&[2.0, 4.0]).rel_sd().unwrap(), 2f64.sqrt() / 3.0);
    }
}
