//! A dataset job on a real Slurm (`scripts/slurm-local.sh` starts a one-node cluster; `.ci/run`
//! runs it first): a 4-task `sbatch --array` explain-dataset job, one task cancelled
//! mid-way, the array resubmitted, the shards merged and compared with the one-process run.
//!
//! Without a Slurm to talk to the test says so and passes, unless
//! `CANDLE_EXPLAIN_REQUIRE_SLURM=1` (set by `.ci/run`), where that is a failure.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_candle-explain");

fn sh(cmd: &str, args: &[&str]) -> String {
    let o = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(
        o.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn slurm_is_up() -> bool {
    Command::new("sinfo")
        .args(["-h", "-o", "%T"])
        .output()
        .is_ok_and(|o| o.status.success() && !o.stdout.is_empty())
}

/// Waits until none of `job`'s tasks is pending or running.
fn wait_for(job: &str, limit: Duration) {
    let t0 = Instant::now();
    while !sh("squeue", &["-h", "-j", job, "-o", "%i %T"]).is_empty() {
        assert!(t0.elapsed() < limit, "job {job} still queued after {limit:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn exists_within(path: &Path, limit: Duration) {
    let t0 = Instant::now();
    while !path.exists() {
        assert!(t0.elapsed() < limit, "{} not there after {limit:?}", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn merged(dir: &Path) -> Vec<u8> {
    // safetensors orders tensors by dtype and name, so equal results are equal bytes.
    std::fs::read(dir.join("merged.safetensors")).expect("merged")
}

#[test]
fn a_slurm_array_with_a_cancelled_task_merges_to_the_one_process_result() {
    if !slurm_is_up() {
        let why = "no Slurm answers (sinfo); start one with scripts/slurm-local.sh";
        assert!(
            std::env::var_os("CANDLE_EXPLAIN_REQUIRE_SLURM").is_none(),
            "CANDLE_EXPLAIN_REQUIRE_SLURM is set but {why}"
        );
        eprintln!("skipped: {why}");
        return;
    }
    let root = std::env::temp_dir().join(format!("candle-explain-slurm-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let (dir, reference) = (root.join("array"), root.join("one"));
    let job = [
        "explain-dataset", "--model", "digits-cnn", "--methods", "saliency,integrated-gradients",
        "--steps", "48", "--limit", "192", "--shard-size", "8",
    ];
    // The array's script: no --shard, each task reads its place from Slurm's environment.
    let script = root.join("explain.sbatch");
    std::fs::write(
        &script,
        format!(
            "#!/bin/bash\n#SBATCH --array=0-3\n#SBATCH --cpus-per-task=1\nexport RAYON_NUM_THREADS=1\nexec {BIN} {} --out {}\n",
            job.join(" "),
            dir.display()
        ),
    )
    .unwrap();
    let submit = || -> String {
        sh(
            "sbatch",
            &[
                "--parsable",
                "--chdir",
                env!("CARGO_MANIFEST_DIR"),
                &format!("--output={}/slurm-%A_%a.out", root.display()),
                script.to_str().unwrap(),
            ],
        )
    };
    let first = submit();
    // Task 2 owns shards 2, 6, 10, …: cancel it once its first shard is written.
    exists_within(&dir.join("shards/shard-00002.json"), Duration::from_secs(120));
    sh("scancel", &[&format!("{first}_2")]);
    wait_for(&first, Duration::from_secs(120));
    let unfinished: Vec<PathBuf> = [2, 6, 10, 14, 18, 22]
        .iter()
        .map(|k| dir.join(format!("shards/shard-{k:05}.json")))
        .filter(|p| !p.exists())
        .collect();
    assert!(!unfinished.is_empty(), "task 2 finished before it was cancelled");
    let o = Command::new(BIN).args(["merge", dir.to_str().unwrap()]).output().unwrap();
    assert!(!o.status.success(), "a merge with task 2's shards missing must fail");
    // Resubmit the same array: tasks 0, 1 and 3 find their shards done, task 2 finishes.
    let second = submit();
    wait_for(&second, Duration::from_secs(120));
    let log = std::fs::read_to_string(root.join(format!("slurm-{second}_2.out"))).unwrap();
    assert!(log.contains("Slurm array task 2"), "{log}");
    assert!(log.contains(&format!("{} to do", unfinished.len())), "{log}");
    sh(BIN, &["merge", dir.to_str().unwrap()]);
    // The same job in one process, here.
    let mut one: Vec<&str> = job.to_vec();
    let r = reference.to_str().unwrap();
    one.extend(["--out", r]);
    sh(BIN, &one);
    assert!(merged(&dir) == merged(&reference), "the array's merge differs from one process");
    std::fs::remove_dir_all(&root).ok();
}
