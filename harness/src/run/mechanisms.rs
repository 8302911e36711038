//! A variant's mechanisms around its measured window: its interleave
//! weights go in before its memory is placed (only new allocations follow
//! them), its DAMON kdamonds start once the memory is placed and stop when
//! the window ends. Built-in workers and external programs share this.

use std::collections::BTreeMap;

use crate::knobs::{Knob, WI_DIR};
use crate::mechanism::damon::{DamonError, DamonRun, DamosStats};
use crate::mechanism::weights::{self, KernelWeights};
use crate::mempolicy::Mode;
use crate::report::Note;
use crate::sysfs::SysRoot;
use crate::topology::{NodeId, NodeSet};
use crate::variant::{Mechanism, Variant, Weights};

use super::Plan;

/// Why a variant's mechanisms could not be put in place.
pub enum Refusal {
    /// This kernel lacks what the variant needs: an `unsupported` row.
    Unsupported(String),
    /// Something failed that should not have.
    Failed(anyhow::Error),
}

/// The mechanisms in force for one variant; dropping it stops DAMON.
#[derive(Default)]
pub struct InForce {
    damon: Option<DamonRun>,
    /// Wall time the statistics reads took, and how many: each waits for
    /// the kdamonds to answer `update_schemes_stats`.
    stats_cost: std::cell::Cell<(std::time::Duration, u32)>,
    /// The weights in force, as read back, under weighted interleave.
    weights: Option<BTreeMap<NodeId, u8>>,
    pub notes: Vec<Note>,
}

impl InForce {
    /// Before placement: the variant's weights, set through the knobs the
    /// run owns. Under weighted interleave without weights, the ones in
    /// force are read and noted.
    pub fn before_placement(sys: &SysRoot, v: &Variant) -> Result<InForce, Refusal> {
        let mut window = InForce::default();
        if v.policy.mode != Mode::WeightedInterleave || !sys.exists(WI_DIR) {
            // Before 6.9 the policy itself is refused, with its reason.
            return Ok(window);
        }
        if let Some(w) = &v.weights {
            check_weight_files(sys, w)?;
            weights::apply(sys, w).map_err(|e| Refusal::Failed(e.into()))?;
        }
        let Some(k) = KernelWeights::read(sys) else {
            return Ok(window);
        };
        let auto = k.auto == Some(true);
        let derived = auto.then(|| {
            let nodes: NodeSet = k.weights.keys().copied().collect();
            weights::weights_text(&weights::derive_for(sys, &nodes))
        });
        window.notes.push(Note::Weights {
            in_force: k.text(),
            auto,
            derived,
        });
        window.weights = Some(k.weights);
        Ok(window)
    }

    /// After placement: DAMON's kdamonds, on.
    pub fn start_moving(&mut self, sys: &SysRoot, plan: &Plan, v: &Variant) -> Result<(), Refusal> {
        if v.mechanism != Mechanism::Damon {
            return Ok(());
        }
        let cfg = plan.damon.clone().unwrap_or_default();
        match DamonRun::start(sys, &plan.fast, &plan.slow, &cfg) {
            Ok(run) => {
                self.notes.push(Note::Damon {
                    kdamonds: run.describe(),
                    left_out: run.accepted.left_out(),
                });
                let tcg = std::env::var(crate::vm::guest::ENV_ACCEL).is_ok_and(|a| a == "tcg");
                if tcg && plan.program.is_none() {
                    self.notes.push(Note::DamonBlindUnderTcg);
                }
                self.damon = Some(run);
                Ok(())
            }
            Err(DamonError::Unsupported(why)) => Err(Refusal::Unsupported(why)),
            Err(e) => Err(Refusal::Failed(e.into())),
        }
    }

    /// The DAMOS statistics now (empty without DAMON).
    pub fn damos(&self) -> anyhow::Result<BTreeMap<&'static str, DamosStats>> {
        let Some(d) = &self.damon else {
            return Ok(BTreeMap::new());
        };
        let t0 = std::time::Instant::now();
        let stats = d.stats()?;
        let (spent, n) = self.stats_cost.get();
        self.stats_cost.set((spent + t0.elapsed(), n + 1));
        Ok(stats)
    }

    /// How far the pages on `nodes` landed from the weights in force.
    pub fn weight_error_pts(&self, nodes: &NodeSet, pages: &BTreeMap<NodeId, u64>) -> Option<f64> {
        weights::placement_error_pts(self.weights.as_ref()?, nodes, pages)
    }

    /// What reading the DAMOS statistics cost, once the window is over.
    pub fn cost_note(&self) -> Option<Note> {
        let (spent, n) = self.stats_cost.get();
        (n > 0).then(|| Note::DamosReadCost {
            ms_per_read: spent.as_secs_f64() * 1e3 / f64::from(n),
            reads: n,
        })
    }

    /// Stops DAMON now, reporting a failure (drop would swallow it).
    pub fn end(mut self) -> anyhow::Result<()> {
        if let Some(mut d) = self.damon.take() {
            d.stop()?;
        }
        Ok(())
    }
}

/// Every weight the variant sets has its file on this kernel.
fn check_weight_files(sys: &SysRoot, w: &Weights) -> Result<(), Refusal> {
    match w {
        Weights::Auto if !Knob::InterleaveAuto.exists(sys) => Err(Refusal::Unsupported(format!(
            "this kernel has no automatic interleave weights ({} is missing; 6.16+)",
            Knob::InterleaveAuto.path()
        ))),
        Weights::Set(map) => match map
            .keys()
            .find(|n| !sys.exists(&Knob::InterleaveWeight(**n).path()))
        {
            Some(n) => Err(Refusal::Unsupported(format!(
                "node {n} has no interleave weight ({} is missing)",
                Knob::InterleaveWeight(*n).path()
            ))),
            None => Ok(()),
        },
        Weights::Auto => Ok(()),
    }
}
