//! Files the user names by a short name (`qemu-dram-cxl`, `promote-hot`):
//! a path as given; a bare name is looked up as `FOLDER/NAME.toml` under
//! the current directory, then in the source tree this binary was built
//! from.

use std::path::{Path, PathBuf};

pub fn resolve(spec: &str, folder: &str) -> PathBuf {
    let p = Path::new(spec);
    if p.exists() || spec.contains('/') || spec.ends_with(".toml") {
        return p.to_path_buf();
    }
    let local = Path::new(folder).join(format!("{spec}.toml"));
    if local.exists() {
        return local;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../{folder}/{spec}.toml"))
}
