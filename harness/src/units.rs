//! Sizes and durations as users spell them (`256M`, `1.5G`, `500ms`, `2m`),
//! with the bounds every option shares, so a typo can neither overflow the
//! arithmetic nor ask for a run that outlives the machine.

use std::time::Duration;

/// A duration written as seconds (`plan.duration_s` in system.json).
pub fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// An optional duration written as seconds, or `null`.
pub fn secs_opt<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&d.as_secs_f64()),
        None => s.serialize_none(),
    }
}

/// Parses sizes like `256M`, `1G`, `4096`, `1.5GiB` (binary units).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| {
        format!("bad size {s:?}: write a number with an optional unit, e.g. 256M or 1G")
    })?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        u => {
            return Err(format!(
                "bad size unit {u:?} in {s:?}: use K, M, G or T (powers of 1024)"
            ))
        }
    };
    let bytes = n * mult as f64;
    if bytes >= MAX_SIZE as f64 {
        return Err(format!(
            "size {s:?} is larger than any machine's memory: give less than {}T",
            MAX_SIZE >> 40
        ));
    }
    Ok(bytes as u64)
}

/// The largest size any option takes (1 PiB): beyond any machine's memory,
/// and far from where byte arithmetic overflows.
pub const MAX_SIZE: u64 = 1 << 50;

/// The longest duration any option takes (7 days): longer than any
/// benchmark, and far from where adding it to the clock overflows.
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Parses durations like `10s`, `500ms`, `2m`, `1.5` (seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("bad duration {s:?}: write e.g. 10s, 500ms or 2m"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        u => {
            return Err(format!(
                "bad duration unit {u:?} in {s:?}: use ms, s, m or h"
            ))
        }
    };
    if secs > MAX_DURATION.as_secs_f64() {
        return Err(format!(
            "duration {s:?} is too long: at most {}h (7 days)",
            MAX_DURATION.as_secs() / 3600
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("256M").unwrap(), 256 << 20);
        assert_eq!(parse_size("1.5G").unwrap(), 3 << 29);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("12Q").is_err());
        assert!(parse_size("99999999T")
            .unwrap_err()
            .contains("larger than any machine"));
        // The bound is exclusive, and the message says so.
        assert!(parse_size("1024T").unwrap_err().contains("less than 1024T"));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("100000000000000000000s")
            .unwrap_err()
            .contains("too long"));
    }
}
