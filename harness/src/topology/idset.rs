//! Sets of small integer ids (NUMA nodes, CPUs) in the kernel's list form.
//!
//! The kernel prints node and CPU lists as `0-3,5` (`cpulist`, `nodelist`,
//! `/sys/devices/system/node/online`); users type them the same way. One
//! generic type holds the parsing and printing; `NodeSet` and `CpuSet` are
//! distinct instantiations so a CPU mask cannot be passed where a node mask
//! is expected.

use std::collections::BTreeSet;
use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

/// Marker for sets of NUMA node ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct NodeKind;
/// Marker for sets of CPU (PU) ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct CpuKind;

/// A set of NUMA node ids, printed as `0-3,5`.
pub type NodeSet = IdSet<NodeKind>;
/// A set of CPU ids, printed as `0-3,5`.
pub type CpuSet = IdSet<CpuKind>;

/// Ids above this are refused when parsing: the kernel's own limits are
/// 1024 nodes (NODES_SHIFT 10) and 8192 CPUs on distribution kernels.
pub const MAX_ID: u32 = 8191;

#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IdSet<K> {
    ids: BTreeSet<u32>,
    kind: PhantomData<K>,
}

impl<K> Default for IdSet<K> {
    fn default() -> Self {
        Self {
            ids: BTreeSet::new(),
            kind: PhantomData,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad id list {input:?}: {reason} (expected a list like `0-3,5`)")]
pub struct IdListError {
    input: String,
    reason: String,
}

impl<K> IdSet<K> {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn single(id: u32) -> Self {
        Self::from_iter([id])
    }
    pub fn insert(&mut self, id: u32) {
        self.ids.insert(id);
    }
    pub fn contains(&self, id: u32) -> bool {
        self.ids.contains(&id)
    }
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
    pub fn len(&self) -> usize {
        self.ids.len()
    }
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.ids.iter().copied()
    }
    pub fn first(&self) -> Option<u32> {
        self.ids.first().copied()
    }
    pub fn last(&self) -> Option<u32> {
        self.ids.last().copied()
    }
    pub fn union(&self, other: &Self) -> Self {
        self.ids.union(&other.ids).copied().collect()
    }
    pub fn difference(&self, other: &Self) -> Self {
        self.ids.difference(&other.ids).copied().collect()
    }
    pub fn is_subset(&self, other: &Self) -> bool {
        self.ids.is_subset(&other.ids)
    }
    /// The set as a kernel bitmap of `words` 64-bit words (the layout
    /// `mbind`/`set_mempolicy` take).
    pub fn to_mask(&self, words: usize) -> Vec<u64> {
        let mut mask = vec![0u64; words];
        for id in self.iter() {
            let (w, b) = (id as usize / 64, id % 64);
            if w < words {
                mask[w] |= 1 << b;
            }
        }
        mask
    }
    /// The inverse of [`IdSet::to_mask`].
    pub fn from_mask(mask: &[u64]) -> Self {
        let mut set = Self::new();
        for (w, word) in mask.iter().enumerate() {
            for b in 0..64 {
                if word & (1 << b) != 0 {
                    set.insert((w * 64 + b) as u32);
                }
            }
        }
        set
    }
}

impl<K> FromIterator<u32> for IdSet<K> {
    fn from_iter<I: IntoIterator<Item = u32>>(iter: I) -> Self {
        Self {
            ids: iter.into_iter().collect(),
            kind: PhantomData,
        }
    }
}

impl<K> FromStr for IdSet<K> {
    type Err = IdListError;

    /// Parses `0-3,5` (and the empty string, which the kernel prints for an
    /// empty list, e.g. a CPU-less node's `cpulist`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason: String| IdListError {
            input: s.to_string(),
            reason,
        };
        let num = |t: &str| -> Result<u32, IdListError> {
            let n: u32 = t
                .trim()
                .parse()
                .map_err(|_| err(format!("{t:?} is not a number")))?;
            if n > MAX_ID {
                return Err(err(format!("{n} is above the largest id {MAX_ID}")));
            }
            Ok(n)
        };
        let mut set = Self::new();
        let trimmed = s.trim();
        if trimmed.is_empty() {
            return Ok(set);
        }
        for part in trimmed.split(',') {
            match part.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (num(a)?, num(b)?);
                    if a > b {
                        return Err(err(format!("range {a}-{b} runs backwards")));
                    }
                    (a..=b).for_each(|i| set.insert(i));
                }
                None => set.insert(num(part)?),
            }
        }
        Ok(set)
    }
}

impl<K> fmt::Display for IdSet<K> {
    /// Prints the kernel's compact form: runs of consecutive ids as ranges.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut iter = self.iter().peekable();
        while let Some(start) = iter.next() {
            let mut end = start;
            while iter.peek() == Some(&(end + 1)) {
                end = iter.next().expect("peeked");
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            if start == end {
                write!(f, "{start}")?;
            } else {
                write!(f, "{start}-{end}")?;
            }
        }
        Ok(())
    }
}

impl<K> fmt::Debug for IdSet<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{{self}}}")
    }
}

impl<K> serde::Serialize for IdSet<K> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

/// Read back in the kernel's list form it is written in (`0-1,3`).
impl<'de, K> serde::Deserialize<'de> for IdSet<K> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <String as serde::Deserialize>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_kernel_lists() {
        for (input, printed) in [
            ("0-3,5", "0-3,5"),
            ("5,0,1,2,3", "0-3,5"),
            ("0", "0"),
            ("", ""),
            ("\n", ""),
            ("0-0", "0"),
            ("1,3,5-7\n", "1,3,5-7"),
        ] {
            let set: NodeSet = input.parse().unwrap();
            assert_eq!(set.to_string(), printed, "input {input:?}");
        }
    }

    #[test]
    fn rejects_malformed_lists() {
        for bad in ["a", "1-", "-1", "3-1", "1,,2", "99999", "0x1"] {
            let err = bad.parse::<NodeSet>().unwrap_err();
            assert!(err.to_string().contains("expected a list"), "{bad}: {err}");
        }
    }

    #[test]
    fn mask_round_trip() {
        let set: NodeSet = "0,2,63-65,1023".parse().unwrap();
        let mask = set.to_mask(16);
        assert_eq!(mask[0], 1 | 4 | (1 << 63));
        assert_eq!(mask[1], 0b11);
        assert_eq!(NodeSet::from_mask(&mask), set);
    }
}
