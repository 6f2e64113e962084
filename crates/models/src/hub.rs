//! Hugging Face hub ids resolved through the local hub cache, the layout `huggingface_hub`
//! and the `hf-hub` crate write (`<cache>/models--{org}--{name}/refs/{revision}` holds a
//! commit hash, `snapshots/{hash}/` the files). Nothing is downloaded: these machines cannot
//! reach the hub, so every lookup is offline, as `HF_HUB_OFFLINE=1` asks; a missing model is
//! an error that says where it was looked for and how to put it there.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// The hub cache: `HF_HUB_CACHE`, `HUGGINGFACE_HUB_CACHE`, `$HF_HOME/hub`, then
/// `~/.cache/huggingface/hub` (the order of `huggingface_hub`).
pub fn cache_dir() -> PathBuf {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("HF_HUB_CACHE")
        .or_else(|| var("HUGGINGFACE_HUB_CACHE"))
        .or_else(|| var("HF_HOME").map(|h| h.join("hub")))
        .unwrap_or_else(|| {
            var("HOME")
                .unwrap_or_else(|| PathBuf::from("."))
                .join(".cache/huggingface/hub")
        })
}

/// The snapshot folder of model `repo_id` (`org/name`) at `revision` (a branch or tag such as
/// `main`, or a 40-character commit hash) in [`cache_dir`].
pub fn snapshot(repo_id: &str, revision: &str) -> Result<PathBuf> {
    snapshot_in(&cache_dir(), repo_id, revision)
}

/// [`snapshot`] in a given cache folder.
pub fn snapshot_in(cache: &Path, repo_id: &str, revision: &str) -> Result<PathBuf> {
    let bad = |reason: String| -> Error {
        candle_explain_core::Error::InvalidParameter {
            name: "repo_id",
            reason,
        }
        .into()
    };
    let parts: Vec<&str> = repo_id.split('/').collect();
    if parts.len() != 2
        || parts
            .iter()
            .any(|p| p.is_empty() || *p == "." || *p == "..")
    {
        return Err(bad(format!(
            "{repo_id:?} is not a hub id of the form org/name"
        )));
    }
    let repo = cache.join(format!("models--{}--{}", parts[0], parts[1]));
    let missing = |what: String| {
        Error::MissingFile(format!(
        "{what} (hub cache {}; offline: nothing is downloaded — fetch it elsewhere with `huggingface-cli download {repo_id}` and copy the cache, set HF_HUB_CACHE, or pass a local folder)",
        cache.display()
    ))
    };
    if !repo.is_dir() {
        return Err(missing(format!("{repo_id} is not in the cache")));
    }
    let commit = if revision.len() == 40 && revision.chars().all(|c| c.is_ascii_hexdigit()) {
        revision.to_string()
    } else {
        let r = repo.join("refs").join(revision);
        std::fs::read_to_string(&r)
            .map_err(|_| {
                missing(format!(
                    "{repo_id} has no revision {revision:?} in the cache ({})",
                    r.display()
                ))
            })?
            .trim()
            .to_string()
    };
    let dir = repo.join("snapshots").join(&commit);
    if !dir.is_dir() {
        return Err(missing(format!(
            "{repo_id} at {revision} (commit {commit}) has no snapshot"
        )));
    }
    Ok(dir)
}
