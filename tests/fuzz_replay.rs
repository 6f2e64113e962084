//! Replays the fuzz corpus (`fuzz/corpus/<target>/`, grown by `cargo fuzz run`) through the
//! fuzzed entry points of `fuzz/harness.rs`, then seeded mutations of it (bit flips, byte
//! insertions and deletions, splices) for a fixed time per target. Any panic fails the test
//! and writes the input to `target/fuzz-failures/` for `cargo fuzz run <target> <file>`.

#[path = "../fuzz/harness.rs"]
mod harness;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Seconds of mutations per target after the corpus.
const MUTATION_SECONDS: u64 = 8;

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    let inputs: Vec<Vec<u8>> = files.iter().filter_map(|f| std::fs::read(f).ok()).collect();
    assert!(!inputs.is_empty(), "{}: empty corpus", dir.display());
    inputs
}

/// xorshift64*: a fixed sequence of mutations on every run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut v = corpus[rng.below(corpus.len())].clone();
    for _ in 0..1 + rng.below(4) {
        match rng.below(5) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = [0, 0xff, b'9', b'-', b'"', b'.'][rng.below(6)];
            }
            2 => {
                let i = rng.below(v.len() + 1);
                v.insert(i, rng.next() as u8);
            }
            3 if !v.is_empty() => {
                let i = rng.below(v.len());
                let n = 1 + rng.below(8.min(v.len() - i));
                v.drain(i..i + n);
            }
            _ => {
                let other = &corpus[rng.below(corpus.len())];
                let (i, j) = (rng.below(v.len() + 1), rng.below(other.len() + 1));
                v.truncate(i);
                v.extend_from_slice(&other[j..]);
            }
        }
    }
    v
}

fn run(target: &str, f: fn(&[u8])) {
    let inputs = corpus(target);
    let check = |input: &[u8], what: &str| {
        if std::panic::catch_unwind(|| f(input)).is_err() {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fuzz-failures");
            let _ = std::fs::create_dir_all(&dir);
            let path = dir.join(format!("{target}-{}", std::process::id()));
            let _ = std::fs::write(&path, input);
            panic!(
                "{target}: {what} panicked; input saved to {}",
                path.display()
            );
        }
    };
    for (i, input) in inputs.iter().enumerate() {
        check(input, &format!("corpus entry {i}"));
    }
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (start, mut n) = (Instant::now(), 0);
    while start.elapsed() < Duration::from_secs(MUTATION_SECONDS) {
        let input = mutate(&mut rng, &inputs);
        check(&input, &format!("mutation {n}"));
        n += 1;
    }
    eprintln!(
        "{target}: {} corpus entries, {n} mutations, no panic",
        inputs.len()
    );
}

#[test]
fn checkpoint_loading_never_panics() {
    run("load_checkpoint", harness::load_checkpoint);
}

#[test]
fn cli_methods_never_panic() {
    run("cli_method", harness::cli_method);
}
