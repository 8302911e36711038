//! What moves or spreads pages beyond the policy they were placed under:
//! DAMON schemes ([`damon`]) and weighted interleave's weights
//! ([`weights`]). Both are system state a run owns through the knobs
//! (`damon.nr_kdamonds`, `weighted_interleave.*`), so the one guard and
//! `knobs restore` put them back.

pub mod damon;
pub mod weights;
