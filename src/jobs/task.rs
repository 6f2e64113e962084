//! Which task of a job this process is: `--shard i/N`, or read from the engine that started
//! it (a Slurm array, a Kubernetes indexed Job, a launcher that starts one process per GPU).

use super::{JobError, Result};

/// Task `index` of `count` (0-based), and where that came from (printed in logs and written
/// in each shard's manifest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    pub index: usize,
    pub count: usize,
    pub source: String,
}

impl Task {
    pub fn new(index: usize, count: usize) -> Result<Self> {
        if count == 0 || index >= count {
            return Err(JobError::Invalid(format!(
                "task {index} of {count}: need 0 <= index < count"
            )));
        }
        Ok(Self {
            index,
            count,
            source: "--shard".into(),
        })
    }

    /// `"i/N"`, as `--shard` takes it.
    pub fn parse(spec: &str) -> Result<Self> {
        let bad = || JobError::Invalid(format!("--shard {spec:?}: expected i/N, e.g. 0/4"));
        let (i, n) = spec.split_once('/').ok_or_else(bad)?;
        let (i, n) = (
            i.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        Self::new(i, n)
    }

    /// The task the environment names, if any, looked up through `var` (`std::env::var` in
    /// the CLI, a map in tests):
    /// - Slurm arrays: `SLURM_ARRAY_TASK_ID` among `SLURM_ARRAY_TASK_MIN`..`MAX` in steps of
    ///   `SLURM_ARRAY_TASK_STEP`, `SLURM_ARRAY_TASK_COUNT` tasks (`--array=0-15`, `1-16`,
    ///   `0-30:2` all work);
    /// - Kubernetes indexed Jobs: `JOB_COMPLETION_INDEX`, with the completions count in
    ///   `CANDLE_EXPLAIN_TASK_COUNT` (Kubernetes does not export it; the manifest sets it);
    /// - one process per GPU: `LOCAL_RANK` of `LOCAL_WORLD_SIZE` (torchrun's names).
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Option<Self>> {
        let num = |name: &str| -> Result<Option<usize>> {
            var(name)
                .map(|v| {
                    v.trim().parse::<usize>().map_err(|_| {
                        JobError::Invalid(format!("{name}={v:?} is not a non-negative integer"))
                    })
                })
                .transpose()
        };
        let need = |name: &str, what: &str| -> Result<usize> {
            num(name)?.ok_or_else(|| JobError::Invalid(format!("{what} is set but {name} is not")))
        };
        if let Some(id) = num("SLURM_ARRAY_TASK_ID")? {
            let min = num("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
            let step = num("SLURM_ARRAY_TASK_STEP")?.unwrap_or(1).max(1);
            let count = need("SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_ID")?;
            if id < min || (id - min) % step != 0 {
                return Err(JobError::Invalid(format!(
                    "SLURM_ARRAY_TASK_ID={id} is not on the array's grid (min {min}, step {step})"
                )));
            }
            let mut t = Self::new((id - min) / step, count)?;
            t.source = format!("Slurm array task {id}");
            return Ok(Some(t));
        }
        if let Some(i) = num("JOB_COMPLETION_INDEX")? {
            let count = need(
                "CANDLE_EXPLAIN_TASK_COUNT",
                "JOB_COMPLETION_INDEX (a Kubernetes indexed Job)",
            )?;
            let mut t = Self::new(i, count)?;
            t.source = format!("Kubernetes completion index {i}");
            return Ok(Some(t));
        }
        if let Some(rank) = num("LOCAL_RANK")? {
            let count = need("LOCAL_WORLD_SIZE", "LOCAL_RANK")?;
            let mut t = Self::new(rank, count)?;
            t.source = format!("local rank {rank}");
            return Ok(Some(t));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn engines_name_the_task() {
        assert_eq!(Task::parse("2/4").unwrap().index, 2);
        assert!(Task::parse("4/4").is_err() && Task::parse("x").is_err());
        assert_eq!(Task::from_env(env(&[])).unwrap(), None);
        let slurm = env(&[
            ("SLURM_ARRAY_TASK_ID", "7"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
            ("SLURM_ARRAY_TASK_STEP", "2"),
            ("SLURM_ARRAY_TASK_COUNT", "5"),
        ]);
        let t = Task::from_env(slurm).unwrap().unwrap();
        assert_eq!((t.index, t.count), (3, 5));
        let k8s = env(&[("JOB_COMPLETION_INDEX", "1"), ("CANDLE_EXPLAIN_TASK_COUNT", "3")]);
        assert_eq!(Task::from_env(k8s).unwrap().unwrap().index, 1);
        let err = Task::from_env(env(&[("JOB_COMPLETION_INDEX", "1")])).unwrap_err();
        assert!(err.to_string().contains("CANDLE_EXPLAIN_TASK_COUNT"), "{err}");
        let torch = env(&[("LOCAL_RANK", "1"), ("LOCAL_WORLD_SIZE", "2")]);
        assert_eq!(Task::from_env(torch).unwrap().unwrap().count, 2);
        assert!(Task::from_env(env(&[("SLURM_ARRAY_TASK_ID", "x")])).is_err());
    }
}
