//! The mempolicy system calls, called through `libc::syscall`.
//!
//! The card named libnuma-sys for these; its latest release (0.0.9, 2018)
//! does not build with current Rust (it asks for the removed
//! `static-nobundle` link kind) and its bundled numactl predates
//! MPOL_PREFERRED_MANY. The calls are a small, stable kernel ABI, so they are
//! made directly here and nowhere else.

use std::fmt;

/// Bits in every node mask passed to the kernel. Distribution kernels use
/// NODES_SHIFT=10 (1024 nodes); `get_mempolicy` refuses a mask smaller than
/// `nr_node_ids`, so the mask is sized for the largest.
pub const MASK_BITS: usize = 1024;
pub const MASK_WORDS: usize = MASK_BITS / 64;

/// An errno value; not an exhaustive enum, since a kernel may return codes
/// this crate does not name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub i32);

impl Errno {
    pub const EINVAL: Errno = Errno(libc::EINVAL);
    pub const EPERM: Errno = Errno(libc::EPERM);
    pub const ENOENT: Errno = Errno(libc::ENOENT);

    pub fn last() -> Self {
        Errno(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }
    /// The symbolic name, e.g. `EINVAL`.
    pub fn name(self) -> String {
        let known = [
            (libc::EINVAL, "EINVAL"),
            (libc::EPERM, "EPERM"),
            (libc::ENOENT, "ENOENT"),
            (libc::EFAULT, "EFAULT"),
            (libc::ENOMEM, "ENOMEM"),
            (libc::EIO, "EIO"),
            (libc::ENOSYS, "ENOSYS"),
            (libc::EACCES, "EACCES"),
            (libc::ENODEV, "ENODEV"),
            (libc::EOPNOTSUPP, "EOPNOTSUPP"),
            (libc::E2BIG, "E2BIG"),
            (libc::ESRCH, "ESRCH"),
            (libc::EBUSY, "EBUSY"),
            (libc::EAGAIN, "EAGAIN"),
            (libc::EINTR, "EINTR"),
        ];
        known
            .iter()
            .find(|(n, _)| *n == self.0)
            .map(|(_, s)| s.to_string())
            .unwrap_or_else(|| format!("errno {}", self.0))
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = std::io::Error::from_raw_os_error(self.0);
        let text = text.to_string();
        let text = text.split(" (os error").next().unwrap_or(&text);
        write!(f, "{} ({})", self.name(), text)
    }
}

/// A failed system call: which one, and what the kernel answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{call}: {errno}")]
pub struct SysError {
    pub call: &'static str,
    pub errno: Errno,
}

fn check(call: &'static str, ret: libc::c_long) -> Result<libc::c_long, SysError> {
    if ret < 0 {
        Err(SysError {
            call,
            errno: Errno::last(),
        })
    } else {
        Ok(ret)
    }
}

/// `maxnode` as the kernel wants it: one more than the mask's bits (the
/// kernel's get_nodes() drops the last bit; libnuma passes size + 1 too).
const MAXNODE: libc::c_ulong = MASK_BITS as libc::c_ulong + 1;

pub fn set_mempolicy(mode: i32, mask: &[u64; MASK_WORDS]) -> Result<(), SysError> {
    // SAFETY: mask points at MASK_WORDS words, which covers MAXNODE - 1 bits.
    let ret = unsafe { libc::syscall(libc::SYS_set_mempolicy, mode, mask.as_ptr(), MAXNODE) };
    check("set_mempolicy", ret).map(drop)
}

/// `get_mempolicy` for the calling thread (`addr == None`) or for the VMA
/// holding `addr` (MPOL_F_ADDR). Returns the mode word (mode | mode flags)
/// and the node mask.
pub fn get_mempolicy(addr: Option<*const u8>) -> Result<(i32, [u64; MASK_WORDS]), SysError> {
    const MPOL_F_ADDR: libc::c_ulong = 1 << 1;
    let mut mode: libc::c_int = 0;
    // One spare word: the kernel copies ALIGN(maxnode - 1, 64) bits.
    let mut mask = [0u64; MASK_WORDS + 1];
    let (ptr, flags) = match addr {
        Some(a) => (a, MPOL_F_ADDR),
        None => (std::ptr::null(), 0),
    };
    // SAFETY: mode and mask are valid for writes of the sizes the kernel
    // uses for MAXNODE; addr is only looked up, never dereferenced here.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_get_mempolicy,
            &mut mode as *mut libc::c_int,
            mask.as_mut_ptr(),
            MAXNODE,
            ptr,
            flags,
        )
    };
    check("get_mempolicy", ret)?;
    let mut out = [0u64; MASK_WORDS];
    out.copy_from_slice(&mask[..MASK_WORDS]);
    Ok((mode, out))
}

/// # Safety
/// `addr..addr+len` must be a mapping owned by the caller (the kernel checks
/// it is mapped, but changing the policy of someone else's memory is a
/// logic error the kernel cannot see).
pub unsafe fn mbind(
    addr: *mut u8,
    len: usize,
    mode: i32,
    mask: &[u64; MASK_WORDS],
    flags: u32,
) -> Result<(), SysError> {
    // SAFETY: mask points at MASK_WORDS words (MAXNODE - 1 bits); the
    // range is the caller's mapping (this function's contract).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mbind,
            addr,
            len,
            mode,
            mask.as_ptr(),
            MAXNODE,
            flags as libc::c_ulong,
        )
    };
    check("mbind", ret).map(drop)
}

/// `move_pages(0, ..., nodes = NULL, ...)`: asks which node each page is on
/// without moving anything. `status[i]` gets the node, or `-errno` (ENOENT:
/// not populated, EFAULT: not mapped).
pub fn query_pages(pages: &[*const u8], status: &mut [i32]) -> Result<(), SysError> {
    assert_eq!(pages.len(), status.len());
    // SAFETY: pages and status hold `len` elements; nodes is NULL, so the
    // kernel only reports placement and moves nothing.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_move_pages,
            0,
            pages.len() as libc::c_ulong,
            pages.as_ptr(),
            std::ptr::null::<i32>(),
            status.as_mut_ptr(),
            0,
        )
    };
    check("move_pages", ret).map(drop)
}
