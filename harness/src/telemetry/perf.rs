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

/// The events counted, by their CSV names.
pub const EVENTS: [&str; 4] = ["task_clock_ns", "page_faults", "cycles", "instructions"];

fn builder(name: &str) -> Builder<'static> {
    match name {
        "task_clock_ns" => Builder::new(Software::TASK_CLOCK),
        "page_faults" => Builder::new(Software::PAGE_FAULTS),
        "cycles" => Builder::new(Hardware::CPU_CYCLES),
        "instructions" => Builder::new(Hardware::INSTRUCTIONS),
        other => unreachable!("unknown perf event {other}"),
    }
}

/// One event's state: counting, or why not.
pub enum Slot {
    Open(Counter),
    Unsupported(String),
}

pub struct PerfCounters {
    slots: Vec<(&'static str, Slot)>,
}

/// A reading: `None` where the event could not be counted.
#[derive(Debug, Clone, Serialize)]
pub struct PerfReading {
    pub name: &'static str,
    pub value: Option<u64>,
    pub status: String,
}

impl PerfCounters {
    /// Opens every event for this process and threads it starts later.
    pub fn open() -> Self {
        let slots = EVENTS
            .into_iter()
            .map(|name| {
                let slot = match builder(name).inherit(true).build() {
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
                        name,
                        value: Some(v),
                        status: "ok".into(),
                    },
                    Err(e) => PerfReading {
                        name,
                        value: None,
                        status: describe(&e),
                    },
                },
                Slot::Unsupported(why) => PerfReading {
                    name,
                    value: None,
                    status: why.clone(),
                },
            })
            .collect()
    }
}

fn describe(e: &std::io::Error) -> String {
    let errno = crate::mempolicy::Errno(e.raw_os_error().unwrap_or(0));
    format!("unsupported ({})", errno.name())
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
        let task = readings.iter().find(|r| r.name == "task_clock_ns").unwrap();
        if task.value.is_none() {
            eprintln!("skip: perf events unavailable here ({})", task.status);
            return;
        }
        assert!(task.value.unwrap() > 0);
        for r in &readings {
            assert_eq!(r.value.is_some(), r.status == "ok", "{r:?}");
        }
    }
}
