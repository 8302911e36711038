//! Kernel modules a guest needs (the CXL and DAX drivers Debian builds as
//! modules): found on the host in the kernel's modules tree, ordered so
//! each comes after what it depends on (the `depends=` of its `.modinfo`,
//! as depmod reads it), carried in the initramfs, and loaded by the guest's
//! init with finit_module(2) before anything else runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The drivers that turn a CXL type-3 device into a node: the ACPI CEDT
/// windows, the PCI device, the memory device and its endpoint, the DAX
/// device of a region, and kmem, which onlines it as system RAM. Each with
/// the kernel option that builds it.
pub const CXL_DRIVERS: &[(&str, &str)] = &[
    ("cxl_acpi", "CONFIG_CXL_ACPI"),
    ("cxl_pci", "CONFIG_CXL_PCI"),
    ("cxl_mem", "CONFIG_CXL_MEM"),
    ("device_dax", "CONFIG_DEV_DAX"),
    ("dax_cxl", "CONFIG_DEV_DAX_CXL"),
    ("kmem", "CONFIG_DEV_DAX_KMEM"),
];

/// Where the guest finds the modules.
pub const GUEST_DIR: &str = "/lib/modules/tierbench";

/// A module file to carry: its name and the host file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    pub name: String,
    pub path: PathBuf,
}

impl Module {
    pub fn guest_path(&self) -> String {
        format!("{GUEST_DIR}/{}.ko", self.name)
    }
}

/// The modules tree of a kernel image: Debian 12's `boot/vmlinuz-V` ->
/// `lib/modules/V`, Debian 13's `usr/lib/modules/V/vmlinuz` -> its own
/// directory. A built tree's bzImage has none here.
pub fn tree_of(image: &Path) -> Option<PathBuf> {
    let name = image.file_name()?.to_string_lossy().into_owned();
    let dir = image.parent()?;
    let tree = match name.strip_prefix("vmlinuz-") {
        Some(v) => dir.parent()?.join("lib/modules").join(v),
        None if name == "vmlinuz" => dir.to_path_buf(),
        None => return None,
    };
    tree.join("kernel").is_dir().then_some(tree)
}

/// Module names compare with `-` and `_` alike, as the kernel's do.
fn canonical(name: &str) -> String {
    name.replace('-', "_")
}

/// Every uncompressed `.ko` under `tree`, by module name.
fn index(tree: &Path) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    let mut stack = vec![tree.join("kernel")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Some(stem) = p
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".ko"))
            {
                out.insert(canonical(stem), p);
            }
        }
    }
    out
}

/// The `depends=` list of a module's `.modinfo` section.
pub fn depends(ko: &[u8]) -> Vec<String> {
    const KEY: &[u8] = b"\0depends=";
    let Some(at) = ko.windows(KEY.len()).position(|w| w == KEY) else {
        return Vec::new();
    };
    let rest = &ko[at + KEY.len()..];
    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    String::from_utf8_lossy(&rest[..end])
        .split(',')
        .filter(|d| !d.is_empty())
        .map(canonical)
        .collect()
}

/// Why the guest cannot get a driver it needs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MissingModule {
    #[error(
        "the kernel has no {module} ({option} is neither =y in its config nor a module in \
         {tree}): fetch it with scripts/fetch-kernel, which keeps the CXL and DAX modules, or \
         build it with {option}=y"
    )]
    NotBuilt {
        module: String,
        option: String,
        tree: String,
    },
    /// The config found does not know the option at all: the kernel
    /// predates the driver.
    #[error(
        "the kernel has no {module}: its config does not know {option} at all (the driver is \
         newer than this kernel): boot a newer kernel, e.g. --kernel 6.12"
    )]
    Predates { module: String, option: String },
}

/// The modules to load for `wanted`, dependencies first. A wanted driver
/// built into the kernel (`=y` in `config`) needs no file; one that is
/// neither built in nor found is an error naming its option.
pub fn resolve(
    tree: Option<&Path>,
    config: &str,
    wanted: &[(&str, &str)],
) -> Result<Vec<Module>, MissingModule> {
    let files = tree.map(index).unwrap_or_default();
    let built_in = |option: &str| crate::kconfig::value(config, option) == Some("y");
    let mut order: Vec<Module> = Vec::new();
    for (name, option) in wanted {
        if built_in(option) {
            continue;
        }
        if !files.contains_key(*name) {
            let known = crate::kconfig::value(config, option).is_some();
            if !config.is_empty() && !known {
                return Err(MissingModule::Predates {
                    module: name.to_string(),
                    option: option.to_string(),
                });
            }
            return Err(MissingModule::NotBuilt {
                module: name.to_string(),
                option: option.to_string(),
                tree: tree.map_or("(no modules tree beside the image)".into(), |t| {
                    t.display().to_string()
                }),
            });
        }
        visit(name, &files, &mut order, 0);
    }
    Ok(order)
}

/// Depth-first: a module's dependencies go in before it. A dependency not
/// among the kept files is built in (depmod's view: it is not a module).
fn visit(name: &str, files: &BTreeMap<String, PathBuf>, order: &mut Vec<Module>, depth: usize) {
    let Some(path) = files.get(name) else { return };
    if depth > 32 || order.iter().any(|m| m.name == name) {
        return;
    }
    for dep in depends(&std::fs::read(path).unwrap_or_default()) {
        visit(&dep, files, order, depth + 1);
    }
    order.push(Module {
        name: name.to_string(),
        path: path.clone(),
    });
}

/// Guest side: loads a module file. Loaded already (built in, or by an
/// earlier entry) is not an error.
pub fn load(path: &str) -> Result<(), String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{path}: {e}"))?;
    use std::os::fd::AsRawFd;
    let params = c"";
    // SAFETY: the fd is open for the call; params is a NUL-terminated string.
    let rc = unsafe { libc::syscall(libc::SYS_finit_module, file.as_raw_fd(), params.as_ptr(), 0) };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EEXIST) {
            return Err(format!("finit_module({path}): {e}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ko(depends: &str) -> Vec<u8> {
        let mut v = b"\x7fELF...license=GPL\0".to_vec();
        v.extend_from_slice(format!("depends={depends}\0name=x\0").as_bytes());
        v
    }

    #[test]
    fn dependencies_come_first_and_once() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("lib/modules/7.3.4+deb13-amd64");
        let put = |rel: &str, deps: &str| {
            let p = tree.join("kernel").join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, ko(deps)).unwrap();
        };
        put("drivers/nvdimm/libnvdimm.ko", "");
        put("drivers/cxl/cxl_pmem.ko", "libnvdimm");
        put("drivers/cxl/cxl_acpi.ko", "cxl_pmem");
        put("drivers/cxl/cxl_mem.ko", "");
        put("drivers/cxl/cxl_pci.ko", "cxl_mem");
        put("drivers/dax/device_dax.ko", "");
        put("drivers/dax/hmem/dax_hmem.ko", "");
        put("drivers/dax/dax_cxl.ko", "dax_hmem");
        put("drivers/dax/kmem.ko", "");
        let image = tree.join("vmlinuz");
        std::fs::write(&image, b"").unwrap();
        assert_eq!(tree_of(&image).as_deref(), Some(tree.as_path()));
        let names: Vec<String> = resolve(Some(&tree), "", CXL_DRIVERS)
            .unwrap()
            .into_iter()
            .map(|m| m.name)
            .collect();
        assert_eq!(
            names,
            [
                "libnvdimm",
                "cxl_pmem",
                "cxl_acpi",
                "cxl_mem",
                "cxl_pci",
                "device_dax",
                "dax_hmem",
                "dax_cxl",
                "kmem"
            ]
        );
        // Built in: no file needed; missing: named with its option.
        let names = resolve(
            Some(&tree),
            "CONFIG_DEV_DAX_KMEM=y\n",
            &[("kmem", "CONFIG_DEV_DAX_KMEM")],
        )
        .unwrap();
        assert!(names.is_empty());
        std::fs::remove_file(tree.join("kernel/drivers/dax/kmem.ko")).unwrap();
        let e = resolve(Some(&tree), "CONFIG_DEV_DAX_KMEM=m\n", CXL_DRIVERS).unwrap_err();
        assert!(
            matches!(&e, MissingModule::NotBuilt { module, .. } if module == "kmem"),
            "{e}"
        );
        assert!(e.to_string().contains("CONFIG_DEV_DAX_KMEM=y"), "{e}");
        // 6.1's config has no CONFIG_DEV_DAX_CXL line at all.
        std::fs::remove_file(tree.join("kernel/drivers/dax/dax_cxl.ko")).unwrap();
        let e = resolve(
            Some(&tree),
            "CONFIG_CXL_BUS=y\n",
            &[("dax_cxl", "CONFIG_DEV_DAX_CXL")],
        )
        .unwrap_err();
        assert!(matches!(e, MissingModule::Predates { .. }), "{e}");
        assert!(
            e.to_string().contains("does not know CONFIG_DEV_DAX_CXL"),
            "{e}"
        );
    }

    #[test]
    fn modinfo_depends_is_read() {
        assert_eq!(depends(&ko("a,b-c")), ["a", "b_c"]);
        assert!(depends(&ko("")).is_empty());
        assert!(depends(b"no modinfo here").is_empty());
    }
}
