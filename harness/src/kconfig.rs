//! The running kernel's build options the experiment relies on, read from
//! `/proc/config.gz` (CONFIG_IKCONFIG_PROC) or `/boot/config-RELEASE`
//! (Debian installs it beside the image; `tierbench vm` puts the guest
//! kernel's at `/boot/config`). Absent when neither exists: never guessed.

use std::collections::BTreeMap;
use std::io::Read;

use serde::Serialize;

use crate::sysfs::SysRoot;

/// What promotion, demotion, HMAT tiers and the CXL path need.
pub const OPTIONS: &[&str] = &[
    "CONFIG_NUMA",
    "CONFIG_NUMA_BALANCING",
    "CONFIG_MIGRATION",
    "CONFIG_ACPI_NUMA",
    "CONFIG_ACPI_HMAT",
    "CONFIG_HMEM_REPORTING",
    "CONFIG_MEMORY_HOTPLUG",
    "CONFIG_MHP_DEFAULT_ONLINE_TYPE_OFFLINE",
    "CONFIG_MHP_DEFAULT_ONLINE_TYPE_ONLINE_AUTO",
    "CONFIG_MHP_DEFAULT_ONLINE_TYPE_ONLINE_KERNEL",
    "CONFIG_MHP_DEFAULT_ONLINE_TYPE_ONLINE_MOVABLE",
    "CONFIG_TRANSPARENT_HUGEPAGE",
    "CONFIG_CXL_BUS",
    "CONFIG_CXL_ACPI",
    "CONFIG_CXL_PCI",
    "CONFIG_CXL_MEM",
    "CONFIG_CXL_PORT",
    "CONFIG_CXL_REGION",
    "CONFIG_DEV_DAX",
    "CONFIG_DEV_DAX_CXL",
    "CONFIG_DEV_DAX_HMEM",
    "CONFIG_DEV_DAX_KMEM",
];

/// `option`'s value in a config file's text: `y`, `m` or a value as set,
/// `n` where the file says "is not set", `None` where the file does not
/// know the option at all (the kernel predates it).
pub fn value<'a>(text: &'a str, option: &str) -> Option<&'a str> {
    text.lines().find_map(|l| {
        if let Some(v) = l.strip_prefix(option).and_then(|r| r.strip_prefix('=')) {
            return Some(v);
        }
        (l.strip_prefix("# ").and_then(|r| r.strip_prefix(option)) == Some(" is not set"))
            .then_some("n")
    })
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct KernelConfig {
    /// The file read, or `None` where none was found.
    pub source: Option<String>,
    /// Each of [`OPTIONS`]: `y`, `m`, a value, or `n` ("is not set" or
    /// missing from a config that was found).
    pub options: BTreeMap<String, String>,
}

impl KernelConfig {
    pub fn read(sys: &SysRoot, release: &str) -> Self {
        let gz = || -> Option<String> {
            let bytes = std::fs::read(sys.path("/proc/config.gz")).ok()?;
            let mut text = String::new();
            flate2::read::GzDecoder::new(&bytes[..])
                .read_to_string(&mut text)
                .ok()?;
            Some(text)
        };
        let found = gz()
            .map(|t| ("/proc/config.gz".to_string(), t))
            .or_else(|| {
                [format!("/boot/config-{release}"), "/boot/config".into()]
                    .into_iter()
                    .find_map(|p| sys.read(&p).ok().map(|t| (p, t)))
            });
        match found {
            Some((source, text)) => Self::parse(source, &text),
            None => Self::default(),
        }
    }

    fn parse(source: String, text: &str) -> Self {
        let options = OPTIONS
            .iter()
            .map(|o| (o.to_string(), value(text, o).unwrap_or("n").to_string()))
            .collect();
        Self {
            source: Some(source),
            options,
        }
    }

    /// `CXL_BUS=y CXL_ACPI=m ...`, short names, for one line of output.
    pub fn summary(&self) -> String {
        self.options
            .iter()
            .map(|(k, v)| format!("{}={v}", k.trim_start_matches("CONFIG_")))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_read_and_unset_ones_say_n() {
        let dir = tempfile::tempdir().unwrap();
        let boot = dir.path().join("boot");
        std::fs::create_dir_all(&boot).unwrap();
        std::fs::write(
            boot.join("config-6.12.1"),
            "CONFIG_NUMA=y\n# CONFIG_CXL_BUS is not set\nCONFIG_DEV_DAX_KMEM=m\n",
        )
        .unwrap();
        let c = KernelConfig::read(&SysRoot::at(dir.path()), "6.12.1");
        assert_eq!(c.source.as_deref(), Some("/boot/config-6.12.1"));
        assert_eq!(c.options["CONFIG_NUMA"], "y");
        assert_eq!(c.options["CONFIG_CXL_BUS"], "n");
        assert_eq!(c.options["CONFIG_DEV_DAX_KMEM"], "m");
        assert!(c.summary().contains("DEV_DAX_KMEM=m"));
        // A longer option with the same prefix is another option.
        let text = "CONFIG_NUMA_BALANCING=y\n# CONFIG_CXL_BUS is not set\n";
        assert_eq!(value(text, "CONFIG_NUMA"), None);
        assert_eq!(value(text, "CONFIG_NUMA_BALANCING"), Some("y"));
        assert_eq!(value(text, "CONFIG_CXL_BUS"), Some("n"));
        let none = KernelConfig::read(&SysRoot::at("/nonexistent"), "6.12.1");
        assert!(none.source.is_none() && none.options.is_empty());
    }
}
