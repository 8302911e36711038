//! Which kernel a guest boots: a path to an image (a bzImage a developer
//! built, or any vmlinuz), or a Debian series name (`6.1`, `6.12`,
//! `latest`) found among the kernels `scripts/fetch-kernel` unpacked into
//! the cache.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// A Debian kernel series `scripts/fetch-kernel` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Series {
    /// Debian 12's own 6.1.
    V6_1,
    /// Debian 12's 6.12 (bookworm-security).
    V6_12,
    /// The newest kernel in the cache.
    Latest,
}

impl Series {
    /// Whether a cached kernel's version (its directory's name, e.g.
    /// `6.12.117+deb12-amd64`) belongs to the series; the patterns are
    /// fetch-kernel's.
    fn holds(self, version: &str) -> bool {
        match self {
            Series::V6_1 => version
                .strip_prefix("6.1.0-")
                .is_some_and(|r| r.ends_with("-amd64")),
            Series::V6_12 => version
                .strip_prefix("6.12.")
                .is_some_and(|r| r.contains("+deb12")),
            Series::Latest => true,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Series::V6_1 => "6.1",
            Series::V6_12 => "6.12",
            Series::Latest => "latest",
        }
    }
}

/// What `--kernel` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelSource {
    Series(Series),
    Image(PathBuf),
}

impl FromStr for KernelSource {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "" => return Err("an empty kernel: give 6.1, 6.12, latest or a path".into()),
            "6.1" => KernelSource::Series(Series::V6_1),
            "6.12" => KernelSource::Series(Series::V6_12),
            "latest" => KernelSource::Series(Series::Latest),
            path => KernelSource::Image(PathBuf::from(path)),
        })
    }
}

impl fmt::Display for KernelSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KernelSource::Series(s) => f.write_str(s.name()),
            KernelSource::Image(p) => write!(f, "{}", p.display()),
        }
    }
}

/// A kernel found: its image and a short name for directories and columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kernel {
    pub image: PathBuf,
    pub label: String,
}

/// `$TIERBENCH_CACHE/kernels` (default `~/.cache/tierbench/kernels`), as
/// fetch-kernel writes it.
pub fn cache_dir() -> PathBuf {
    let base = std::env::var_os("TIERBENCH_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
            Path::new(&home).join(".cache/tierbench")
        });
    base.join("kernels")
}

impl KernelSource {
    /// Finds the image. A series takes the newest version of it in `cache`.
    pub fn resolve(&self, cache: &Path) -> Result<Kernel, String> {
        match self {
            KernelSource::Image(p) => {
                super::qemu::check_kernel_image(p)
                    .map_err(|why| format!("--kernel {}: {why}", p.display()))?;
                Ok(Kernel {
                    image: p.clone(),
                    label: image_label(p),
                })
            }
            KernelSource::Series(series) => {
                let mut found: Vec<(String, PathBuf)> = std::fs::read_dir(cache)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .filter_map(|e| {
                        let version = e.file_name().to_string_lossy().into_owned();
                        let image = find_image(&e.path().join("root"))?;
                        series.holds(&version).then_some((version, image))
                    })
                    .collect();
                found.sort_by(|a, b| version_cmp(&a.0, &b.0));
                let (version, image) = found.pop().ok_or_else(|| {
                    format!(
                        "--kernel {}: no such kernel in {}: fetch it with `scripts/fetch-kernel {}`",
                        series.name(),
                        cache.display(),
                        series.name()
                    )
                })?;
                Ok(Kernel {
                    image,
                    label: version.trim_end_matches("-amd64").to_string(),
                })
            }
        }
    }
}

/// `boot/vmlinuz-*` (Debian 12) or `usr/lib/modules/*/vmlinuz` (Debian 13).
fn find_image(root: &Path) -> Option<PathBuf> {
    let boot = std::fs::read_dir(root.join("boot")).ok().and_then(|d| {
        d.flatten().map(|e| e.path()).find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
    });
    boot.or_else(|| {
        std::fs::read_dir(root.join("usr/lib/modules"))
            .ok()?
            .flatten()
            .map(|e| e.path().join("vmlinuz"))
            .find(|p| p.is_file())
    })
}

/// A name for a kernel given by path: `vmlinuz-6.12.117+deb12-amd64` ->
/// `6.12.117+deb12`; a build tree's `arch/x86/boot/bzImage` -> the tree's
/// directory name (the base and the patched tree of a changelog differ
/// there).
fn image_label(p: &Path) -> String {
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Some(v) = name.strip_prefix("vmlinuz-") {
        return v.trim_end_matches("-amd64").to_string();
    }
    let tree = p
        .ancestors()
        .nth(4)
        .filter(|_| p.ends_with("arch/x86/boot/bzImage"))
        .and_then(|t| t.file_name());
    let parent = p.parent().and_then(|d| d.file_name());
    match (tree, parent) {
        (Some(t), _) => t.to_string_lossy().into_owned(),
        // usr/lib/modules/VERSION/vmlinuz
        (None, Some(d)) if name == "vmlinuz" => {
            d.to_string_lossy().trim_end_matches("-amd64").to_string()
        }
        _ => name,
    }
}

/// Compares dotted versions number by number (`6.12.9` < `6.12.117`).
fn version_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let parts = |s: &str| -> Vec<u64> {
        s.split(|c: char| !c.is_ascii_digit())
            .filter(|p| !p.is_empty())
            .map(|p| p.parse().unwrap_or(0))
            .collect()
    };
    parts(a).cmp(&parts(b))
}

/// Labels made unique by a `-2`, `-3` suffix, in order.
pub fn unique_labels(kernels: &[Kernel]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for k in kernels {
        let mut label = k.label.clone();
        let mut n = 1;
        while out.contains(&label) {
            n += 1;
            label = format!("{}-{n}", k.label);
        }
        out.push(label);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache_with(versions: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (v, image) in versions {
            let p = dir.path().join(v).join("root").join(image);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b"").unwrap();
        }
        dir
    }

    #[test]
    fn series_take_the_newest_cached_version() {
        let cache = cache_with(&[
            ("6.1.0-9-amd64", "boot/vmlinuz-6.1.0-9-amd64"),
            ("6.1.0-57-amd64", "boot/vmlinuz-6.1.0-57-amd64"),
            ("6.12.9+deb12-amd64", "boot/vmlinuz-6.12.9+deb12-amd64"),
            ("6.12.117+deb12-amd64", "boot/vmlinuz-6.12.117+deb12-amd64"),
            (
                "7.3.4+deb13-amd64",
                "usr/lib/modules/7.3.4+deb13-amd64/vmlinuz",
            ),
        ]);
        let got = |s: &str| {
            s.parse::<KernelSource>()
                .unwrap()
                .resolve(cache.path())
                .unwrap()
        };
        assert_eq!(got("6.1").label, "6.1.0-57");
        assert_eq!(got("6.12").label, "6.12.117+deb12");
        let latest = got("latest");
        assert_eq!(latest.label, "7.3.4+deb13");
        assert!(latest.image.ends_with("7.3.4+deb13-amd64/vmlinuz"));
    }

    #[test]
    fn a_missing_kernel_says_how_to_get_it() {
        let cache = cache_with(&[]);
        let e = "6.12"
            .parse::<KernelSource>()
            .unwrap()
            .resolve(cache.path())
            .unwrap_err();
        assert!(e.contains("scripts/fetch-kernel 6.12"), "{e}");
        let e = "/no/such/bzImage"
            .parse::<KernelSource>()
            .unwrap()
            .resolve(cache.path())
            .unwrap_err();
        assert!(
            e.starts_with("--kernel /no/such/bzImage: no such file"),
            "{e}"
        );
    }

    #[test]
    fn labels_name_the_tree_or_the_version_and_stay_unique() {
        assert_eq!(
            image_label(Path::new("/src/linux-patched/arch/x86/boot/bzImage")),
            "linux-patched"
        );
        assert_eq!(
            image_label(Path::new("/c/root/boot/vmlinuz-6.1.0-57-amd64")),
            "6.1.0-57"
        );
        let k = |l: &str| Kernel {
            image: PathBuf::new(),
            label: l.into(),
        };
        assert_eq!(unique_labels(&[k("a"), k("a"), k("b")]), ["a", "a-2", "b"]);
    }
}
