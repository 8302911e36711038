//! Files the user names by a short name: host profiles (`qemu-dram-cxl`)
//! and scenarios (`promote-hot`).
//!
//! A path (anything with a `/` or ending in `.toml`) is taken as given. A
//! bare name is looked up, first match wins, in
//!
//! 1. the current directory, laid out as the source tree is
//!    (`hosts/NAME.toml`, `bench/scenarios/NAME.toml`),
//! 2. `$XDG_CONFIG_HOME/tierbench/{hosts,scenarios}/` (default `~/.config`),
//! 3. the install location: `../share/tierbench/{hosts,scenarios}/` beside
//!    the binary (`/usr/bin` -> `/usr/share`, also for a package unpacked
//!    into another root), then `/usr/share/tierbench/`,
//! 4. the copies built into this binary, so a binary copied on its own
//!    still knows the shipped profiles and scenarios.

use std::fmt;
use std::path::{Path, PathBuf};

/// What kind of named file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Host,
    Scenario,
}

impl Kind {
    /// The folder in a checkout, relative to its top.
    fn checkout_folder(self) -> &'static str {
        match self {
            Kind::Host => "hosts",
            Kind::Scenario => "bench/scenarios",
        }
    }

    /// The folder under the config and install directories.
    pub fn folder(self) -> &'static str {
        match self {
            Kind::Host => "hosts",
            Kind::Scenario => "scenarios",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Kind::Host => "host profile",
            Kind::Scenario => "scenario",
        }
    }

    /// The shipped files, built into the binary.
    pub fn built_in(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Kind::Host => BUILT_IN_HOSTS,
            Kind::Scenario => BUILT_IN_SCENARIOS,
        }
    }

    /// The built-in copy of `name`, if one is shipped.
    pub fn built_in_text(self, name: &str) -> Option<&'static str> {
        self.built_in()
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, text)| *text)
    }
}

const BUILT_IN_HOSTS: &[(&str, &str)] = &[
    (
        "qemu-dram-cxl",
        include_str!("../../hosts/qemu-dram-cxl.toml"),
    ),
    (
        "qemu-2socket-cxl",
        include_str!("../../hosts/qemu-2socket-cxl.toml"),
    ),
    (
        "qemu-4node-3tier",
        include_str!("../../hosts/qemu-4node-3tier.toml"),
    ),
    (
        "qemu-cxl-type3",
        include_str!("../../hosts/qemu-cxl-type3.toml"),
    ),
    (
        "qemu-cxl-type3-x2",
        include_str!("../../hosts/qemu-cxl-type3-x2.toml"),
    ),
    (
        "qemu-cxl-port-near",
        include_str!("../../hosts/qemu-cxl-port-near.toml"),
    ),
    (
        "qemu-cxl-port-far",
        include_str!("../../hosts/qemu-cxl-port-far.toml"),
    ),
    (
        "qemu-cxl-3tier",
        include_str!("../../hosts/qemu-cxl-3tier.toml"),
    ),
    (
        "qemu-cxl-interleave-x2",
        include_str!("../../hosts/qemu-cxl-interleave-x2.toml"),
    ),
    (
        "qemu-cpuless-no-hmat",
        include_str!("../../hosts/qemu-cpuless-no-hmat.toml"),
    ),
    ("single-node", include_str!("../../hosts/single-node.toml")),
    (
        "lab-template",
        include_str!("../../hosts/lab-template.toml"),
    ),
];

const BUILT_IN_SCENARIOS: &[(&str, &str)] = &[
    (
        "promote-hot",
        include_str!("../../bench/scenarios/promote-hot.toml"),
    ),
    (
        "fill-fast",
        include_str!("../../bench/scenarios/fill-fast.toml"),
    ),
    (
        "latency-bandwidth",
        include_str!("../../bench/scenarios/latency-bandwidth.toml"),
    ),
    (
        "first-look",
        include_str!("../../bench/scenarios/first-look.toml"),
    ),
    (
        "redis-push",
        include_str!("../../bench/scenarios/redis-push.toml"),
    ),
    (
        "mechanisms",
        include_str!("../../bench/scenarios/mechanisms.toml"),
    ),
    (
        "pingpong",
        include_str!("../../bench/scenarios/pingpong.toml"),
    ),
];

/// Where a named file was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    File(PathBuf),
    BuiltIn,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File(p) => write!(f, "{}", p.display()),
            Origin::BuiltIn => f.write_str("built into the binary"),
        }
    }
}

/// A named file's text and where it came from.
#[derive(Debug, Clone)]
pub struct Named {
    pub name: String,
    pub origin: Origin,
    pub text: String,
}

impl Named {
    /// A path for messages and records: the file, or `built-in/NAME.toml`.
    pub fn path(&self) -> PathBuf {
        match &self.origin {
            Origin::File(p) => p.clone(),
            Origin::BuiltIn => PathBuf::from(format!("built-in/{}.toml", self.name)),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NamedError {
    #[error("{what} {path}: {source}")]
    Read {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("no {what} named {name:?} (looked in {looked}); known: {known}; or give a path")]
    NotFound {
        what: &'static str,
        name: String,
        looked: String,
        known: String,
    },
}

/// The directories searched for bare names, in order (the built-in
/// copies come after them).
pub fn search_dirs(kind: Kind) -> Vec<PathBuf> {
    let mut dirs = vec![PathBuf::from(kind.checkout_folder())];
    if let Some(config) = config_home() {
        dirs.push(config.join("tierbench").join(kind.folder()));
    }
    if let Some(share) = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("share/tierbench")))
    {
        dirs.push(share.join(kind.folder()));
    }
    let system = Path::new("/usr/share/tierbench").join(kind.folder());
    if !dirs.contains(&system) {
        dirs.push(system);
    }
    dirs
}

fn config_home() -> Option<PathBuf> {
    match std::env::var_os("XDG_CONFIG_HOME") {
        Some(x) if !x.is_empty() => Some(PathBuf::from(x)),
        _ => std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")),
    }
}

fn is_path(spec: &str) -> bool {
    spec.contains('/') || spec.ends_with(".toml")
}

fn read(kind: Kind, path: &Path) -> Result<String, NamedError> {
    crate::userfile::read_capped(path, crate::userfile::TEXT_MAX).map_err(|source| {
        NamedError::Read {
            what: kind.what(),
            path: path.display().to_string(),
            source,
        }
    })
}

/// Finds `spec`: a path as given, or a bare name in the search order.
pub fn find(kind: Kind, spec: &str) -> Result<Named, NamedError> {
    if is_path(spec) {
        let path = PathBuf::from(spec);
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        return Ok(Named {
            name,
            text: read(kind, &path)?,
            origin: Origin::File(path),
        });
    }
    let dirs = search_dirs(kind);
    for dir in &dirs {
        let path = dir.join(format!("{spec}.toml"));
        if path.is_file() {
            return Ok(Named {
                name: spec.to_string(),
                text: read(kind, &path)?,
                origin: Origin::File(path),
            });
        }
    }
    if let Some(text) = kind.built_in_text(spec) {
        return Ok(Named {
            name: spec.to_string(),
            origin: Origin::BuiltIn,
            text: text.to_string(),
        });
    }
    Err(NamedError::NotFound {
        what: kind.what(),
        name: spec.to_string(),
        looked: dirs
            .iter()
            .map(|d| format!("{}/", d.display()))
            .chain(["the built-in copies".to_string()])
            .collect::<Vec<_>>()
            .join(", "),
        known: list(kind)
            .iter()
            .map(|l| l.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// One name `tierbench hosts` / `scenarios` lists.
#[derive(Debug, Clone)]
pub struct Listed {
    pub name: String,
    /// The copy a bare name loads.
    pub origin: Origin,
    /// Copies further down the search order that this one hides.
    pub shadowed: Vec<Origin>,
}

/// Every name found, in name order, with the copy that wins.
pub fn list(kind: Kind) -> Vec<Listed> {
    let mut found: Vec<Listed> = Vec::new();
    let mut add = |name: String, origin: Origin| match found.iter_mut().find(|l| l.name == name) {
        Some(l) => l.shadowed.push(origin),
        None => found.push(Listed {
            name,
            origin,
            shadowed: Vec::new(),
        }),
    };
    for dir in search_dirs(kind) {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        for path in paths {
            if path.extension().is_some_and(|e| e == "toml") {
                if let Some(stem) = path.file_stem() {
                    add(stem.to_string_lossy().into_owned(), Origin::File(path));
                }
            }
        }
    }
    for (name, _) in kind.built_in() {
        add(name.to_string(), Origin::BuiltIn);
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file shipped in the source tree is built in, under its stem,
    /// with the same text: a new profile or scenario cannot be forgotten.
    #[test]
    fn every_shipped_file_is_built_in() {
        for kind in [Kind::Host, Kind::Scenario] {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join(kind.checkout_folder());
            let mut shipped = 0;
            for e in std::fs::read_dir(&dir).unwrap().flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "toml") {
                    shipped += 1;
                    let stem = p.file_stem().unwrap().to_string_lossy().into_owned();
                    let text = kind
                        .built_in_text(&stem)
                        .unwrap_or_else(|| panic!("{} is not built in", p.display()));
                    assert_eq!(text, std::fs::read_to_string(&p).unwrap());
                }
            }
            assert_eq!(shipped, kind.built_in().len(), "{}", dir.display());
        }
    }

    #[test]
    fn a_path_is_taken_as_given_and_a_missing_name_says_where_it_looked() {
        let e = find(Kind::Host, "/nonexistent/x.toml").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("host profile /nonexistent/x.toml: "),
            "{e}"
        );
        let e = find(Kind::Scenario, "no-such-scenario")
            .unwrap_err()
            .to_string();
        assert!(e.contains("bench/scenarios/"), "{e}");
        assert!(e.contains("built-in copies"), "{e}");
        assert!(e.contains("promote-hot"), "{e}");
    }

    #[test]
    fn built_in_copies_are_the_last_resort() {
        let n = find(Kind::Host, "qemu-dram-cxl").unwrap();
        assert_eq!(n.name, "qemu-dram-cxl");
        assert!(n.text.contains("[[node]]"));
        let listed = list(Kind::Scenario);
        let hot = listed.iter().find(|l| l.name == "promote-hot").unwrap();
        // Either a file (tests run from the checkout) with the built-in
        // copy behind it, or the built-in copy itself.
        assert!(hot.origin == Origin::BuiltIn || hot.shadowed.contains(&Origin::BuiltIn));
    }
}
