//! perf event counters for the whole run, opened with `inherit` before the
//! workers start, so their counts fold into these when they exit.
//!
//! `perf-event2` is used rather than the card's `perf-event`: it is the
//! maintained fork (the original has had no release since 2020) with the
//! same API. Software events work in the virtual machines here; hardware
//! events answer ENOENT there and are recorded as unsupported.

use perf_event::events::{Hardware, Software};
use perf_event::{Builder, Counter};
use serde::Serialize;

/// The events counted for a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PerfEvent {
    #[serde(rename = "task_clock_ns")]
    TaskClock,
    PageFaults,
    Cycles,
    Instructions,
}

/// Every event, in CSV column order.
pub const EVENTS: [PerfEvent; 4] = [
    PerfEvent::TaskClock,
    PerfEvent::PageFaults,
    PerfEvent::Cycles,
    PerfEvent::Instructions,
];

impl PerfEvent {
    /// The CSV name (`perf.NAME`).
    pub fn name(self) -> &'static str {
        match self {
            PerfEvent::TaskClock => "task_clock_ns",
            PerfEvent::PageFaults => "page_faults",
            PerfEvent::Cycles => "cycles",
            PerfEvent::Instructions => "instructions",
        }
    }

    fn builder(self) -> Builder<'static> {
        match self {
            PerfEvent::TaskClock => Builder::new(Software::TASK_CLOCK),
            PerfEvent::PageFaults => Builder::new(Software::PAGE_FAULTS),
            PerfEvent::Cycles => Builder::new(Hardware::CPU_CYCLES),
            PerfEvent::Instructions => Builder::new(Hardware::INSTRUCTIONS),
        }
    }
}

impl std::fmt::Display for PerfEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether an event counts here, and if not, the errno that said so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PerfStatus {
    Ok,
    Unsupported(crate::mempolicy::Errno),
}

impl std::fmt::Display for PerfStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PerfStatus::Ok => f.write_str("ok"),
            PerfStatus::Unsupported(errno) => write!(f, "unsupported ({})", errno.name()),
        }
    }
}

impl Serialize for PerfStatus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One event's state: counting, or why not.
pub enum Slot {
    Open(Counter),
    Unsupported(PerfStatus),
}

pub struct PerfCounters {
    slots: Vec<(PerfEvent, Slot)>,
}

/// A reading: `None` where the event could not be counted.
#[derive(Debug, Clone, Serialize)]
pub struct PerfReading {
    pub name: PerfEvent,
    pub value: Option<u64>,
    pub status: PerfStatus,
}

impl PerfCounters {
    /// Opens every event for this process and threads it starts later.
    pub fn open() -> Self {
        let slots = EVENTS
            .into_iter()
            .map(|name| {
                let slot = match name.builder().inherit(true).build() {
                    Ok(c) => Slot::Open(c),
                    Err(e) => Slot::Unsupported(describe(&e)),
                };
                (name, slot)
            })
            .collect();
        Self { slots }
    }

    pub fn enable(&mut self) {
        for (_, slot) in &mut self.slots {
            if let Slot::Open(c) = slot {
                if let Err(e) = c.enable() {
                    *slot = Slot::Unsupported(describe(&e));
                }
            }
        }
    }

    pub fn read(&mut self) -> Vec<PerfReading> {
        self.slots
            .iter_mut()
            .map(|(name, slot)| match slot {
                Slot::Open(c) => match c.read() {
                    Ok(v) => PerfReading {
                        name: *name,
                        value: Some(v),
                        status: PerfStatus::Ok,
                    },
                    Err(e) => PerfReading {
                        name: *name,
                        value: None,
                        status: describe(&e),
                    },
                },
                Slot::Unsupported(why) => PerfReading {
                    name: *name,
                    value: None,
                    status: *why,
                },
            })
            .collect()
    }
}

fn describe(e: &std::io::Error) -> PerfStatus {
    PerfStatus::Unsupported(crate::mempolicy::Errno(e.raw_os_error().unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Software events count on every Linux; hardware events either count
    /// or say why not, never a made-up number.
    #[test]
    fn software_events_count_and_hardware_ones_say_why_not() {
        let mut pc = PerfCounters::open();
        pc.enable();
        let v: Vec<u8> = vec![1; 8 << 20];
        std::hint::black_box(&v);
        let readings = pc.read();
        let task = readings
            .iter()
            .find(|r| r.name == PerfEvent::TaskClock)
            .unwrap();
        if task.value.is_none() {
            crate::testing::skip(
                "software_events_count",
                &format!("perf events unavailable here ({})", task.status),
            );
            return;
        }
        assert!(task.value.unwrap() > 0);
        for r in &readings {
            assert_eq!(r.value.is_some(), r.status == PerfStatus::Ok, "{r:?}");
        }
    }
}
