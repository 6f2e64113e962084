//! Hugging Face hub ids (`org/name`) resolved to a local snapshot folder through the `hf-hub`
//! crate: files already in the hub cache are used as they are (the layout `huggingface_hub`
//! writes: `models--{org}--{name}/refs/{revision}` → `snapshots/{commit}/`), missing ones are
//! downloaded from `HF_ENDPOINT` (default `https://huggingface.co`) with a progress bar, unless
//! `HF_HUB_OFFLINE` is set. The cache is `HF_HUB_CACHE`, `HUGGINGFACE_HUB_CACHE`,
//! `$HF_HOME/hub`, then `~/.cache/huggingface/hub` (`huggingface_hub`'s order).
//!
//! A model is `config.json`, the weights (`model.safetensors`, or the shards named by
//! `model.safetensors.index.json`, or else `pytorch_model.bin`), and where the repo has them
//! `tokenizer.json` and `preprocessor_config.json`.

use crate::error::{Error, Result};
use hf_hub::api::sync::ApiBuilder;
use hf_hub::{Cache, Repo, RepoType};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// The hub cache folder (see the module's documentation).
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

/// `HF_HUB_OFFLINE` set to 1 / true / yes / on.
pub fn offline() -> bool {
    std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "1" | "true" | "yes" | "on"
        )
    })
}

/// The snapshot folder of model `repo_id` at `revision` (a branch, tag or commit hash):
/// from the cache, downloading what is missing unless offline.
pub fn snapshot(repo_id: &str, revision: &str) -> Result<PathBuf> {
    let endpoint = match offline() {
        true => None,
        false => Some(
            std::env::var("HF_ENDPOINT")
                .ok()
                .filter(|e| !e.is_empty())
                .unwrap_or_else(|| "https://huggingface.co".into()),
        ),
    };
    resolve(&cache_dir(), endpoint.as_deref(), repo_id, revision)
}

/// [`snapshot`] of a spec `org/name` or `org/name@revision` (the CLI's and examples' form;
/// the revision defaults to `main`).
pub fn snapshot_spec(spec: &str) -> Result<PathBuf> {
    let (id, revision) = spec.split_once('@').unwrap_or((spec, "main"));
    snapshot(id, revision)
}

/// [`snapshot`] from the given cache folder only (offline).
pub fn snapshot_in(cache: &Path, repo_id: &str, revision: &str) -> Result<PathBuf> {
    resolve(cache, None, repo_id, revision)
}

/// [`snapshot`] with an explicit cache folder and endpoint (`None`: offline).
pub fn resolve(
    cache: &Path,
    endpoint: Option<&str>,
    repo_id: &str,
    revision: &str,
) -> Result<PathBuf> {
    check_id(repo_id)?;
    let repo = Repo::with_revision(repo_id.into(), RepoType::Model, revision.into());
    let local = Cache::new(cache.to_path_buf());
    let api = match endpoint {
        None => None,
        Some(e) => Some(
            ApiBuilder::from_cache(local.clone())
                .with_endpoint(e.to_string())
                .with_progress(std::io::stderr().is_terminal())
                .build()
                .map_err(|e| hub_error(repo_id, &e.to_string()))?,
        ),
    };
    let repo_dir = cache.join(repo.folder_name());
    // The commit the revision points at in the cache, once known.
    let commit_of = || -> Option<String> {
        match is_commit(revision) {
            true => Some(revision.to_string()),
            false => std::fs::read_to_string(repo_dir.join("refs").join(revision))
                .ok()
                .map(|c| c.trim().to_string())
                .filter(|c| is_commit(c)),
        }
    };
    // One file: `None` when the repo does not have it (404), an error when it cannot be got.
    let fetch = |file: &str| -> Result<Option<PathBuf>> {
        // A commit hash names its snapshot folder directly (no ref to follow).
        if is_commit(revision) {
            let p = repo_dir.join("snapshots").join(revision).join(file);
            if p.exists() {
                return Ok(Some(p));
            }
        } else if let Some(p) = local.repo(repo.clone()).get(file) {
            return Ok(Some(p));
        }
        // A file the repo lacks at this commit, as `huggingface_hub` records it, so that a
        // second run asks the server nothing.
        let absent = commit_of().map(|c| repo_dir.join(".no_exist").join(c).join(file));
        if absent.as_ref().is_some_and(|p| p.exists()) {
            return Ok(None);
        }
        let Some(api) = &api else { return Ok(None) };
        match api.repo(repo.clone()).get(file) {
            Ok(p) => Ok(Some(p)),
            Err(hf_hub::api::sync::ApiError::RequestError(e))
                if matches!(*e, ureq::Error::Status(404, _)) =>
            {
                if let Some(p) = commit_of().map(|c| repo_dir.join(".no_exist").join(c).join(file))
                {
                    if let Some(dir) = p.parent() {
                        let _ = std::fs::create_dir_all(dir).and_then(|_| std::fs::write(&p, b""));
                    }
                }
                Ok(None)
            }
            Err(e) => Err(hub_error(repo_id, &format!("{file}: {e}"))),
        }
    };
    let missing = |what: String| -> Error {
        let place = match endpoint {
            Some(e) => format!("hub cache {}, endpoint {e}", cache.display()),
            None => format!(
                "hub cache {}; offline: nothing is downloaded (unset HF_HUB_OFFLINE to download, set HF_HUB_CACHE, or pass a local folder)",
                cache.display()
            ),
        };
        Error::MissingFile(format!("{what} ({place})"))
    };
    let config = fetch("config.json")?.ok_or_else(|| {
        missing(match (endpoint, repo_dir.is_dir()) {
            (None, false) => format!("{repo_id} is not in the cache"),
            (None, true) => {
                format!("{repo_id} has no revision {revision:?} with a config.json in the cache")
            }
            (Some(_), _) => format!("{repo_id} at {revision} has no config.json"),
        })
    })?;
    let mut files = vec![config];
    for optional in ["tokenizer.json", "preprocessor_config.json"] {
        files.extend(fetch(optional)?);
    }
    match fetch("model.safetensors")? {
        Some(w) => files.push(w),
        None => match fetch("model.safetensors.index.json")? {
            Some(index) => {
                for shard in crate::checkpoint::index_shards(&index)? {
                    files.push(fetch(&shard)?.ok_or_else(|| {
                        missing(format!(
                            "{repo_id} at {revision}: the shard {shard} named by its index"
                        ))
                    })?);
                }
                files.push(index);
            }
            // Older repos have only a PyTorch pickle.
            None => files.push(fetch("pytorch_model.bin")?.ok_or_else(|| {
                missing(format!(
                    "{repo_id} at {revision} has neither model.safetensors, model.safetensors.index.json nor pytorch_model.bin"
                ))
            })?),
        },
    }
    // Files cached from an older commit and files downloaded at the branch's new one land in
    // different snapshot folders: a model must not mix them.
    let folder = files[0].parent().map(Path::to_path_buf);
    if let Some(other) = files
        .iter()
        .find(|f| f.parent().map(Path::to_path_buf) != folder)
    {
        return Err(hub_error(
            repo_id,
            &format!(
                "{revision} resolves to files of two commits ({} and {}): delete {} to download \
                 it again, or name one commit (org/name@<hash>)",
                files[0].display(),
                other.display(),
                repo_dir.display()
            ),
        ));
    }
    folder.ok_or_else(|| missing(format!("{repo_id}: a snapshot folder")))
}

fn is_commit(revision: &str) -> bool {
    revision.len() == 40 && revision.chars().all(|c| c.is_ascii_hexdigit())
}

fn check_id(repo_id: &str) -> Result<()> {
    let parts: Vec<&str> = repo_id.split('/').collect();
    if parts.len() != 2
        || parts
            .iter()
            .any(|p| p.is_empty() || *p == "." || *p == "..")
    {
        return Err(candle_explain_core::Error::InvalidParameter {
            name: "repo_id",
            reason: format!("{repo_id:?} is not a hub id of the form org/name"),
        }
        .into());
    }
    Ok(())
}

fn hub_error(repo_id: &str, e: &str) -> Error {
    Error::MissingFile(format!("{repo_id}: the hub download failed: {e}"))
}
