//! Each finished shard's manifest, and the atomic writes that make a killed task lose at
//! most the shard it was working on.
//!
//! A shard `k` of a job folder is `shards/shard-0000k.safetensors` (its results) and
//! `shards/shard-0000k.json` (this manifest), written in that order, each to a temporary name
//! and renamed into place. A shard counts as done only when its manifest is there, names this
//! job's hash and the results file still has the manifest's SHA-256.

use super::{io_error, JobError, Result};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ShardManifest {
    /// The job's hash ([`job_hash`]): shards of another job are refused.
    pub job: String,
    pub shard: usize,
    pub shards: usize,
    /// The shard's first example (dataset order) and how many it holds.
    pub start: usize,
    pub count: usize,
    /// The results file (a name in the same folder), its size and SHA-256.
    pub file: String,
    pub bytes: u64,
    pub sha256: String,
    /// Seconds the shard took, and the task that made it.
    pub seconds: f64,
    pub task: String,
    /// Anything the results file cannot hold (e.g. the tokens of a text shard).
    #[serde(default)]
    pub extra: serde_json::Value,
}

/// The state of one shard in a job folder.
#[derive(Debug)]
pub enum ShardState {
    Done(Box<ShardManifest>),
    Missing,
    /// Half-written or altered: redone on the next run.
    Corrupt(String),
    /// Made by another job (its hash): never overwritten, refused by the merge.
    Foreign(String),
}

/// SHA-256 of the canonical JSON of a job's definition (serde_json sorts object keys), as
/// hex. Everything that changes results belongs in the definition; where results go and how
/// many tasks share the work do not.
pub fn job_hash(definition: &serde_json::Value) -> String {
    sha256_bytes(definition.to_string().as_bytes())
}

pub fn sha256_bytes(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(io_error(path))?;
    let mut h = Sha256::new();
    std::io::copy(&mut file, &mut h).map_err(io_error(path))?;
    Ok(hex(&h.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn shard_stem(k: usize) -> String {
    format!("shard-{k:05}")
}

/// A temporary name beside `path`, unique to this process, so that concurrent tasks never
/// write the same temporary file.
pub fn temporary(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp-{}", std::process::id()));
    path.with_file_name(name)
}

/// Moves a finished temporary file into place: a reader sees the old file or the whole new
/// one, never part of it (rename within one folder is atomic on POSIX file systems).
pub fn publish(tmp: &Path, path: &Path) -> Result<()> {
    std::fs::File::open(tmp)
        .and_then(|f| f.sync_all())
        .map_err(io_error(tmp))?;
    std::fs::rename(tmp, path).map_err(io_error(path))
}

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temporary(path);
    std::fs::write(&tmp, bytes).map_err(io_error(&tmp))?;
    publish(&tmp, path)
}

impl ShardManifest {
    /// Writes the manifest of a results file already in place (`dir/<file>`), checksumming it.
    #[allow(clippy::too_many_arguments)]
    pub fn write(
        dir: &Path,
        job: &str,
        (shard, shards): (usize, usize),
        (start, count): (usize, usize),
        seconds: f64,
        task: &str,
        extra: serde_json::Value,
    ) -> Result<Self> {
        let file = format!("{}.safetensors", shard_stem(shard));
        let path = dir.join(&file);
        let bytes = std::fs::metadata(&path).map_err(io_error(&path))?.len();
        let m = Self {
            job: job.to_string(),
            shard,
            shards,
            start,
            count,
            sha256: sha256_file(&path)?,
            file,
            bytes,
            seconds,
            task: task.to_string(),
            extra,
        };
        let json = serde_json::to_vec_pretty(&m)
            .map_err(|e| JobError::Invalid(format!("shard manifest: {e}")))?;
        write_atomic(&dir.join(format!("{}.json", shard_stem(shard))), &json)?;
        Ok(m)
    }

    /// What shard `k` of `dir` is, for the job hashed `job`.
    pub fn state(dir: &Path, k: usize, job: &str) -> Result<ShardState> {
        let path = dir.join(format!("{}.json", shard_stem(k)));
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ShardState::Missing),
            Err(e) => return Err(io_error(&path)(e)),
        };
        let m: Self = match serde_json::from_str(&text) {
            Ok(m) => m,
            Err(e) => return Ok(ShardState::Corrupt(format!("{}: {e}", path.display()))),
        };
        if m.job != job {
            return Ok(ShardState::Foreign(m.job));
        }
        if m.shard != k {
            return Ok(ShardState::Corrupt(format!(
                "{} describes shard {}",
                path.display(),
                m.shard
            )));
        }
        let results = dir.join(&m.file);
        if !results.exists() {
            return Ok(ShardState::Corrupt(format!("{} is missing", results.display())));
        }
        let sha = sha256_file(&results)?;
        if sha != m.sha256 {
            return Ok(ShardState::Corrupt(format!(
                "{}: SHA-256 {sha} is not the manifest's {}",
                results.display(),
                m.sha256
            )));
        }
        Ok(ShardState::Done(Box::new(m)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shard_is_done_only_when_its_manifest_and_checksum_agree() {
        let dir = std::env::temp_dir().join(format!("ce-manifest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let job = job_hash(&serde_json::json!({"b": 1, "a": [1, 2]}));
        // Key order does not change the hash (serde_json sorts keys).
        assert_eq!(job, job_hash(&serde_json::json!({"a": [1, 2], "b": 1})));
        assert!(matches!(ShardManifest::state(&dir, 3, &job).unwrap(), ShardState::Missing));
        write_atomic(&dir.join("shard-00003.safetensors"), b"results").unwrap();
        ShardManifest::write(&dir, &job, (3, 4), (30, 10), 0.5, "0/1", serde_json::Value::Null)
            .unwrap();
        assert!(matches!(ShardManifest::state(&dir, 3, &job).unwrap(), ShardState::Done(_)));
        assert!(matches!(
            ShardManifest::state(&dir, 3, "another").unwrap(),
            ShardState::Foreign(_)
        ));
        std::fs::write(dir.join("shard-00003.safetensors"), b"resulta").unwrap();
        assert!(matches!(
            ShardManifest::state(&dir, 3, &job).unwrap(),
            ShardState::Corrupt(_)
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
