//! `--offline-slow-at T`: the slow node's memory blocks taken offline in
//! the middle of a variant, as an administrator removing an expander (or
//! a platform retiring failing memory) does. The kernel either migrates
//! the pages away first (a block in ZONE_MOVABLE normally can be emptied)
//! or refuses (EBUSY: pages it cannot move). Each block is a knob the run
//! owns, so the guard that puts numa_balancing back also puts every block
//! back online, in its zone, on every exit path (a normal end, an error,
//! SIGTERM, Ctrl-C; `knobs restore` after SIGKILL); and after each variant
//! the blocks go back online so the next one starts from the same machine.

use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::knobs::{self, Knob, KnobError, MEMORY_DIR};
use crate::mempolicy::sys::Errno;
use crate::report::note::Outcome;
use crate::report::Note;
use crate::sysfs::SysRoot;
use crate::topology::{NodeId, NodeSet};

/// A memory block the run takes offline, and the state to put back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Block {
    pub id: u32,
    pub node: NodeId,
    /// `online_movable` or `online_kernel`, as it was before the run.
    pub was: String,
}

/// What `--offline-slow-at` will do, resolved against the machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OfflinePlan {
    #[serde(rename = "at_s", serialize_with = "crate::units::secs")]
    pub at: Duration,
    pub nodes: NodeSet,
    pub blocks: Vec<Block>,
}

impl OfflinePlan {
    /// The online memory blocks of `slow`; an error line when there are
    /// none to take (no slow node, no hotplug sysfs, all offline).
    pub fn resolve(sys: &SysRoot, slow: &NodeSet, at: Duration) -> Result<Self, String> {
        if slow.is_empty() {
            return Err(
                "needs a slow node, and this machine has none (one memory tier): run it \
                        on a tiered machine (tierbench vm --host qemu-cxl-type3)"
                    .into(),
            );
        }
        let mut blocks = Vec::new();
        for node in slow.iter() {
            for id in crate::topology::blocks::block_ids(sys, node) {
                let knob = Knob::MemoryBlock(id);
                let was = knob.read(sys).map_err(|e| e.to_string())?;
                if was.starts_with("online") {
                    blocks.push(Block { id, node, was });
                }
            }
        }
        if blocks.is_empty() {
            return Err(format!(
                "needs online memory blocks on the slow node(s) {slow}, and {MEMORY_DIR} lists \
                 none there (memory that is not hot-pluggable, or already offline)"
            ));
        }
        Ok(OfflinePlan {
            at,
            nodes: slow.clone(),
            blocks,
        })
    }

    /// The knobs the run owns for it.
    pub fn knobs(&self) -> impl Iterator<Item = Knob> + '_ {
        self.blocks.iter().map(|b| Knob::MemoryBlock(b.id))
    }

    /// Puts every block back in its zone (after a variant). Returns what
    /// could not be put back, one line each.
    pub fn put_back(&self) -> Vec<String> {
        self.blocks
            .iter()
            .filter_map(|b| {
                knobs::set_owned(&Knob::MemoryBlock(b.id), &b.was)
                    .err()
                    .map(|e| format!("memory{}: {e}", b.id))
            })
            .collect()
    }
}

/// The offlining under way, on a thread of its own: a block's pages are
/// migrated before it goes offline, which takes seconds, and the rows go
/// on meanwhile.
struct Offlining {
    at_s: f64,
    nodes: NodeSet,
    thread: Option<JoinHandle<Vec<Outcome>>>,
}

impl Offlining {
    fn start(plan: &OfflinePlan, at_s: f64) -> Self {
        let blocks: Vec<u32> = plan.blocks.iter().map(|b| b.id).collect();
        let thread = std::thread::spawn(move || {
            blocks
                .into_iter()
                .map(|block| {
                    let t = Instant::now();
                    let refused = knobs::set_owned(&Knob::MemoryBlock(block), "offline")
                        .err()
                        .map(|e| refusal(&e));
                    Outcome {
                        block,
                        seconds: t.elapsed().as_secs_f64(),
                        refused,
                    }
                })
                .collect()
        });
        Offlining {
            at_s,
            nodes: plan.nodes.clone(),
            thread: Some(thread),
        }
    }

    /// The note, once every block has been tried.
    fn poll(&mut self) -> Option<Note> {
        if self.thread.as_ref()?.is_finished() {
            return Some(self.finish());
        }
        None
    }

    /// Waits for the last block, then the note. Later calls give a note
    /// without outcomes: each is reported once.
    fn finish(&mut self) -> Note {
        let outcomes = self
            .thread
            .take()
            .map(|t| t.join().unwrap_or_default())
            .unwrap_or_default();
        Note::Offlined {
            at_s: self.at_s,
            nodes: self.nodes.to_string(),
            outcomes,
        }
    }

    fn pending(&self) -> bool {
        self.thread.is_some()
    }
}

/// One variant's share of `--offline-slow-at`: started when its time
/// comes, polled with every row, finished and put back when the window
/// ends. The built-in workers' loop and a program's loop both drive it.
#[derive(Default)]
pub struct VariantOffline {
    plan: Option<OfflinePlan>,
    running: Option<Offlining>,
    note: Option<Note>,
}

impl VariantOffline {
    pub fn new(plan: Option<&OfflinePlan>) -> Self {
        VariantOffline {
            plan: plan.cloned(),
            ..Default::default()
        }
    }

    /// Starts the offlining once `elapsed` reaches its time.
    pub fn tick(&mut self, elapsed: Duration) {
        if let Some(p) = self.plan.as_ref().filter(|p| elapsed >= p.at) {
            if self.running.is_none() {
                self.running = Some(Offlining::start(p, elapsed.as_secs_f64()));
            }
        }
    }

    /// How long until it is due (a sampler's wake-up), if not started.
    pub fn due_in(&self, elapsed: Duration) -> Option<Duration> {
        let p = self.plan.as_ref().filter(|_| self.running.is_none())?;
        Some(p.at.saturating_sub(elapsed))
    }

    /// The note for the row in which every block has been tried.
    pub fn poll(&mut self) -> Option<Note> {
        let note = self.running.as_mut()?.poll()?;
        self.note = Some(note.clone());
        Some(note)
    }

    /// Waits for blocks still being offlined as the window ends (their
    /// outcome and migrations belong to this variant). True when it had to
    /// wait: the caller's last counters then predate the migrations.
    pub fn finish(&mut self) -> bool {
        match self.running.as_mut().filter(|o| o.pending()) {
            Some(o) => {
                self.note = Some(o.finish());
                true
            }
            None => false,
        }
    }

    /// The variant's notes (what was offlined, what could not be put
    /// back), after putting every block back online for the next variant.
    pub fn end(mut self) -> Vec<Note> {
        self.finish();
        let mut notes: Vec<Note> = self.note.take().into_iter().collect();
        if let Some(p) = &self.plan {
            for e in p.put_back() {
                crate::errln!("tierbench run: warning: {e}");
                notes.push(Note::PutBack(e));
            }
        }
        notes
    }
}

/// The kernel's answer in a form a changelog can quote: `EBUSY (Device
/// or resource busy)`, as the policy probe names errnos.
fn refusal(e: &KnobError) -> String {
    match e {
        KnobError::Io { err, .. } => match err.raw_os_error() {
            Some(code) => Errno(code).to_string(),
            None => err.to_string(),
        },
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::note::outcomes_text;

    #[test]
    fn blocks_of_the_slow_node_are_found_with_their_zone() {
        let sys = SysRoot::at(format!(
            "{}/tests/data/cxl-type3-6.12",
            env!("CARGO_MANIFEST_DIR")
        ));
        let p = OfflinePlan::resolve(&sys, &"1".parse().unwrap(), Duration::from_secs(3)).unwrap();
        assert!(!p.blocks.is_empty(), "{p:?}");
        assert!(
            p.blocks
                .iter()
                .all(|b| b.node == 1 && b.was == "online_movable"),
            "{p:?}"
        );
        let e = OfflinePlan::resolve(&sys, &NodeSet::new(), Duration::from_secs(3)).unwrap_err();
        assert!(e.contains("needs a slow node"), "{e}");
    }

    #[test]
    fn a_block_is_a_knob_the_state_file_can_name() {
        let k: Knob = "memory_block.40".parse().unwrap();
        assert_eq!(k, Knob::MemoryBlock(40));
        assert_eq!(k.to_string(), "memory_block.40");
        assert!(k.validate("online_movable").is_ok() && k.validate("offline").is_ok());
        assert!(k.validate("gone").is_err());
    }

    #[test]
    fn outcomes_read_as_a_changelog_line() {
        let t = outcomes_text(&[
            Outcome {
                block: 32,
                seconds: 0.812,
                refused: None,
            },
            Outcome {
                block: 33,
                seconds: 1.5,
                refused: Some("EBUSY (Device or resource busy (os error 16))".into()),
            },
        ]);
        assert_eq!(
            t,
            "memory32 offline in 0.81 s, memory33 refused after 1.50 s: EBUSY (Device or \
             resource busy (os error 16))"
        );
    }
}
