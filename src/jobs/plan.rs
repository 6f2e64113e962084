//! The stable rule that cuts a dataset into shards and gives them to tasks.

use super::task::Task;
use super::{JobError, Result};
use std::ops::Range;

/// `examples` cut into consecutive shards of `shard_size` (the last one may be shorter).
/// The shard size is part of the job, not of the run: the examples a shard holds, and so the
/// batches its methods see, never depend on how many tasks share the work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub examples: usize,
    pub shard_size: usize,
}

impl Plan {
    pub fn new(examples: usize, shard_size: usize) -> Result<Self> {
        if examples == 0 {
            return Err(JobError::Invalid("the dataset has no examples".into()));
        }
        if shard_size == 0 {
            return Err(JobError::Invalid("shard_size must be at least 1".into()));
        }
        Ok(Self {
            examples,
            shard_size,
        })
    }

    pub fn shards(&self) -> usize {
        self.examples.div_ceil(self.shard_size)
    }

    /// The examples of shard `k` (dataset order).
    pub fn range(&self, k: usize) -> Range<usize> {
        let start = (k * self.shard_size).min(self.examples);
        start..(start + self.shard_size).min(self.examples)
    }

    /// The shards task `i` of `n` runs: `i, i + n, i + 2n, …`. Round robin, not blocks, so
    /// that tasks share the cost evenly when example costs drift along the dataset (sorted
    /// text lengths, say).
    pub fn owned(&self, task: &Task) -> Vec<usize> {
        (task.index..self.shards()).step_by(task.count).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_the_dataset_once_whatever_the_task_count() {
        let plan = Plan::new(1003, 100).unwrap();
        assert_eq!(plan.shards(), 11);
        assert_eq!(plan.range(10), 1000..1003);
        for n in [1, 2, 3, 4, 11, 16] {
            let mut seen = vec![0; plan.examples];
            for i in 0..n {
                for k in plan.owned(&Task::new(i, n).unwrap()) {
                    for e in plan.range(k) {
                        seen[e] += 1;
                    }
                }
            }
            assert!(seen.iter().all(|&c| c == 1), "{n} tasks");
        }
        assert!(Plan::new(0, 4).is_err() && Plan::new(4, 0).is_err());
    }
}
