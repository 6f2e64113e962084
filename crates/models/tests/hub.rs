//! Hub ids through `hf-hub`, against a server on loopback that answers the way the hub does
//! (`/{org}/{name}/resolve/{revision}/{file}`, a `Range: bytes=0-0` probe answered with the
//! size in `Content-Range`, the blob's `ETag` and the commit in `X-Repo-Commit`, then the
//! file): a sharded checkpoint is downloaded into a fresh cache and loads; a second resolve
//! asks the server nothing; offline, the cache alone resolves it; a repo the server lacks is a
//! clear error.

use candle_core::{Device, Tensor};
use candle_explain_core::Explainable;
use candle_explain_models::hub::{resolve, snapshot_in};
use candle_explain_models::BertClassifier;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

const COMMIT: &str = "5a1d0c0ffee5a1d0c0ffee5a1d0c0ffee5a1d0c0";

fn local() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/hf/bert_sharded"
    ))
}

/// Serves the files of `local()` as repo `org/tiny-bert` at `main`; returns the endpoint and
/// the count of requests answered.
fn serve() -> (String, Arc<AtomicUsize>) {
    let files: HashMap<String, Vec<u8>> = std::fs::read_dir(local())
        .expect("the sharded checkpoint is committed")
        .map(|e| {
            let p = e.unwrap().path();
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    let listener = TcpListener::bind("127.0.0.1:0").expect("loopback");
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            seen.fetch_add(1, Ordering::SeqCst);
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            let mut range = None;
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                if request.is_empty() {
                    request = line.clone();
                } else if let Some(r) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
                    range = r
                        .trim()
                        .split('-')
                        .next()
                        .and_then(|s| s.parse::<usize>().ok())
                        .map(|start| (start, r.trim().ends_with("-0")));
                }
                line.clear();
            }
            let path = request.split_whitespace().nth(1).unwrap_or("");
            let file = path
                .strip_prefix("/org/tiny-bert/resolve/main/")
                .and_then(|f| files.get(f));
            let mut out = stream;
            let Some(body) = file else {
                let _ = out.write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                continue;
            };
            // The blob's name: a hash of its bytes (the hub sends the git / LFS hash).
            let etag = format!(
                "{:016x}",
                body.iter()
                    .fold(0xcbf29ce484222325u64, |h, &b| (h ^ b as u64)
                        .wrapping_mul(0x100000001b3))
            );
            let (start, probe) = range.unwrap_or((0, false));
            let end = if probe {
                0
            } else {
                body.len().saturating_sub(1)
            };
            let part = &body[start.min(body.len())..(end + 1).min(body.len())];
            let head = format!(
                "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {start}-{end}/{}\r\nContent-Length: {}\r\nETag: \"{etag}\"\r\nX-Repo-Commit: {COMMIT}\r\nConnection: close\r\n\r\n",
                body.len(),
                part.len()
            );
            let _ = out.write_all(head.as_bytes());
            let _ = out.write_all(part);
        }
    });
    (endpoint, count)
}

#[test]
fn downloads_into_the_cache_then_works_offline() -> anyhow::Result<()> {
    let (endpoint, requests) = serve();
    let cache = std::env::temp_dir().join(format!("candle-explain-hub-dl-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cache);
    let dir = resolve(&cache, Some(&endpoint), "org/tiny-bert", "main")?;
    assert!(
        dir.starts_with(&cache) && dir.ends_with(COMMIT),
        "{}",
        dir.display()
    );
    let first = requests.load(Ordering::SeqCst);
    assert!(
        first >= 6,
        "config, tokenizer, index and three shards: {first} requests"
    );
    // The downloaded model is the local one.
    let dev = Device::Cpu;
    let (a, b) = (
        BertClassifier::from_dir(&dir, None, &dev)?,
        BertClassifier::from_dir(local(), None, &dev)?,
    );
    let ids = Tensor::new(&[[2u32, 40, 41, 42, 3]], &dev)?;
    let d = (a.forward(&a.embed(&ids)?)? - b.forward(&b.embed(&ids)?)?)?
        .abs()?
        .max_all()?
        .to_scalar::<f32>()?;
    assert_eq!(d, 0.0);
    // Again: everything is in the cache, the server is not asked.
    assert_eq!(
        resolve(&cache, Some(&endpoint), "org/tiny-bert", "main")?,
        dir
    );
    assert_eq!(requests.load(Ordering::SeqCst), first);
    // Offline, from the cache alone; a commit hash resolves too.
    assert_eq!(snapshot_in(&cache, "org/tiny-bert", "main")?, dir);
    assert_eq!(snapshot_in(&cache, "org/tiny-bert", COMMIT)?, dir);
    // What the server does not have, and what the cache does not have offline.
    let e = resolve(&cache, Some(&endpoint), "org/nothing", "main")
        .unwrap_err()
        .to_string();
    assert!(e.contains("no config.json") && e.contains(&endpoint), "{e}");
    let e = snapshot_in(&cache, "org/nothing", "main")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("not in the cache") && e.contains("offline"),
        "{e}"
    );
    std::fs::remove_dir_all(&cache).ok();
    Ok(())
}
