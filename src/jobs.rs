//! Dataset-scale jobs: the pieces a cluster engine (a Slurm array, a Kubernetes indexed Job,
//! one process per GPU) needs to run one explanation job as many independent tasks.
//!
//! - [`plan`]: the dataset cut into shards of a fixed size by a stable rule, and which shards
//!   a task owns (round robin). Shards are fixed by the job, tasks only divide them, so the
//!   merged result is bitwise the same whatever the number of tasks.
//! - [`task`]: which task this process is: `--shard i/N` or the engine's environment.
//! - [`manifest`]: each finished shard's manifest (counts, SHA-256, the job's hash), written
//!   atomically after its results, so that a rerun skips finished shards and a merge refuses
//!   shards of another job.
//!
//! The CLI's `explain-dataset`, `evaluate-dataset` and `merge` drive them; `docs/scale-out.md`
//! has the recipes.

pub mod manifest;
pub mod plan;
pub mod task;

/// What can go wrong in a job: a message that names the file or the setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("{0}")]
    Invalid(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T> = std::result::Result<T, JobError>;

pub(crate) fn io_error(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> JobError + '_ {
    move |source| JobError::Io {
        path: path.display().to_string(),
        source,
    }
}
