//! What a run measures of a mechanism's quality beside its result: which
//! pages it moved and which came back (from the tracked sample), and what
//! the moves cost (CPU time, faults, bytes migrated).

use serde::Serialize;

/// What the tracked pages did over one interval (or, summed, a window),
/// as estimated pages of the buffer (census units).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Moves {
    pub promoted_hot: f64,
    pub promoted_cold: f64,
    pub demoted_hot: f64,
    pub demoted_cold: f64,
    /// Pages that moved back the way they came (promoted after a demotion
    /// or demoted after a promotion) in the interval.
    pub round_trips: f64,
    /// Half-width of the 95% interval of the promoted total.
    pub promoted_ci95: f64,
}

impl Moves {
    pub fn promoted(&self) -> f64 {
        self.promoted_hot + self.promoted_cold
    }
    /// Of the pages promoted, the share that was hot when it moved.
    pub fn precision(&self) -> Option<f64> {
        (self.promoted() > 0.0).then(|| self.promoted_hot / self.promoted())
    }
}

/// The window's summary of the tracked pages.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Quality {
    pub moves: Moves,
    /// Hot promoted / all promoted.
    pub precision: Option<f64>,
    /// Estimated pages that made at least one round trip.
    pub pingpong_pages: f64,
    /// Median time between a page's move and its move back, seconds.
    pub round_trip_s_p50: Option<f64>,
    /// Pages followed.
    pub tracked: u64,
}

/// What the window cost, beside what it bought.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Cost {
    /// CPU seconds of the workers over the window; the kernel's hint
    /// faults, scanning and the migrations they start are system time.
    pub user_s: Option<f64>,
    pub sys_s: Option<f64>,
    /// Accesses per worker CPU-second: unlike accesses/s, other tenants of
    /// the machine do not move it.
    pub accesses_per_cpu_s: Option<f64>,
    pub hint_faults_per_s: Option<f64>,
    /// pgmigrate_success over the window, in MiB/s.
    pub migrated_mib_per_s: Option<f64>,
    /// Accesses per page migrated (none migrated: empty).
    pub accesses_per_migrated_page: Option<f64>,
}
