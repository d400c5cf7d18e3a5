//! Sharded collection: `atlas collect --shard i/N` collects one of N disjoint parts of the image
//! list, so that N machines (a Slurm array, a Kubernetes Indexed Job) can share one run, and
//! `atlas merge` ([`super::merge`]) joins the parts into the run an unsharded collection writes.
//!
//! Shards are numbered from 0 (`0/4` … `3/4`), as `SLURM_ARRAY_TASK_ID` (with `--array=0-3`) and
//! Kubernetes' `JOB_COMPLETION_INDEX` count. A shard takes whole chunks: the chunks
//! `⌊i·C/N⌋ .. ⌊(i+1)·C/N⌋` of the run's C chunks. Whole chunks keep every batch exactly as the
//! unsharded run forms it (the batches of a chunk never cross its end), so a shard's rows are
//! computed from the same batches, and the positions depend only on (seed, image, layer): the
//! merged rows are the unsharded rows, byte for byte.
use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// Shard `index` of `count` (0-based).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    /// The chunks of a run of `num_chunks` chunks that this shard collects: consecutive, and
    /// the shards' ranges tile `0..num_chunks` with sizes differing by at most one. With more
    /// shards than chunks some shards are empty.
    pub fn chunks(&self, num_chunks: usize) -> Range<usize> {
        let bound = |i: usize| i * num_chunks / self.count;
        bound(self.index)..bound(self.index + 1)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = anyhow::Error;

    /// `i/N` with `0 ≤ i < N`.
    fn from_str(s: &str) -> Result<Self> {
        let (index, count) = s
            .split_once('/')
            .with_context(|| format!("{s:?} is not a shard: write i/N, e.g. 0/4"))?;
        let parse = |part: &str, what: &str| -> Result<usize> {
            part.trim()
                .parse()
                .with_context(|| format!("{s:?}: {what} {part:?} is not a whole number"))
        };
        let shard = Shard {
            index: parse(index, "shard index")?,
            count: parse(count, "shard count")?,
        };
        if shard.count == 0 {
            bail!("{s:?}: the shard count must be at least 1");
        }
        if shard.index >= shard.count {
            bail!(
                "{s:?}: shards are numbered from 0, so shard indices of {} shards are 0 to {}",
                shard.count,
                shard.count - 1
            );
        }
        Ok(shard)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse_from_0_and_reject_the_rest() {
        assert_eq!(
            "0/4".parse::<Shard>().unwrap(),
            Shard { index: 0, count: 4 }
        );
        assert_eq!("3/4".parse::<Shard>().unwrap().to_string(), "3/4");
        for bad in ["4/4", "1/0", "1", "a/2", "-1/2", "1/2/3"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn shard_ranges_tile_the_chunks_evenly() {
        for num_chunks in 0..20 {
            for count in 1..8 {
                let ranges: Vec<Range<usize>> = (0..count)
                    .map(|index| Shard { index, count }.chunks(num_chunks))
                    .collect();
                assert_eq!(ranges[0].start, 0);
                assert_eq!(ranges[count - 1].end, num_chunks);
                for pair in ranges.windows(2) {
                    assert_eq!(pair[0].end, pair[1].start, "{ranges:?}");
                }
                let sizes: Vec<usize> = ranges.iter().map(ExactSizeIterator::len).collect();
                let (min, max) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
                assert!(
                    max - min <= 1,
                    "{num_chunks} chunks, {count} shards: {sizes:?}"
                );
            }
        }
    }
}
