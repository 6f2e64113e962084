//! Dataset jobs end to end (`explain-dataset`, `evaluate-dataset`, `merge`): sharded runs
//! equal the one-process run bit for bit, a killed task resumes where it stopped, and the
//! merge refuses what is not this job's or not finished.

use candle_core::{Device, Tensor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_candle-explain"))
}

fn out_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("candle-explain-jobs-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn run(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let o = bin().args(args).envs(env.iter().copied()).output().expect("the binary runs");
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn ok(args: &[&str]) -> String {
    let (success, out, err) = run(args, &[]);
    assert!(success, "{args:?} failed: {err}");
    out
}

fn fails(args: &[&str]) -> String {
    let (success, _, err) = run(args, &[]);
    assert!(!success, "{args:?} should fail");
    err
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn merged(dir: &Path) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(dir.join("merged.safetensors"), &Device::Cpu)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("readable")).expect("JSON")
}

/// Every tensor of `a` equals `b`'s bit for bit (f32 compared as bits, so -0 ≠ 0, NaN = NaN).
fn assert_bitwise_equal(a: &HashMap<String, Tensor>, b: &HashMap<String, Tensor>) {
    let mut names: Vec<_> = a.keys().collect();
    names.sort();
    assert_eq!(names.len(), b.len(), "tensor names differ");
    for name in names {
        let (x, y) = (&a[name], &b[name]);
        assert_eq!(x.dims(), y.dims(), "{name}");
        let bits = |t: &Tensor| -> Vec<u32> {
            match t.dtype() {
                candle_core::DType::F32 => t.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().map(|v| v.to_bits()).collect(),
                _ => t.flatten_all().unwrap().to_dtype(candle_core::DType::U32).unwrap().to_vec1::<u32>().unwrap(),
            }
        };
        assert!(bits(x) == bits(y), "{name} differs");
    }
}

fn shard_manifests(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("shards"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
                .count()
        })
        .unwrap_or(0)
}

const DIGITS_JOB: &[&str] = &[
    "--model",
    "digits-cnn",
    "--methods",
    "saliency,integrated-gradients",
    "--steps",
    "16",
    "--limit",
    "90",
    "--shard-size",
    "16",
];

#[test]
fn shards_merge_to_the_one_process_result_bit_for_bit() {
    let (one, four, env) = (out_dir("one"), out_dir("four"), out_dir("env"));
    let with_out = |dir: &Path, extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = ["evaluate-dataset"].iter().chain(DIGITS_JOB).map(|s| s.to_string()).collect();
        v.extend(["--metrics".into(), "deletion".into(), "--out".into(), dir.display().to_string()]);
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let a = with_out(&one, &[]);
    ok(&args(&a));
    // Four tasks, one after another (as an array whose tasks run at different times), then
    // the merge.
    for i in 0..4 {
        let s = format!("{i}/4");
        let a = with_out(&four, &["--shard", &s]);
        let out = ok(&args(&a));
        assert!(out.contains(&format!("task {i}/4")), "{out}");
    }
    assert!(!four.join("merged.safetensors").exists(), "array tasks do not merge");
    ok(&["merge", four.to_str().unwrap()]);
    let (m1, m4) = (merged(&one), merged(&four));
    assert_bitwise_equal(&m1, &m4);
    assert_eq!(m1["attributions.integrated-gradients"].dims(), &[90, 1, 28, 28]);
    assert_eq!(m1["deletion_aopc.saliency"].dims(), &[90]);
    let idx: Vec<u32> = m1["index"].to_vec1().unwrap();
    assert_eq!(idx, (0..90).collect::<Vec<u32>>(), "dataset order");
    let j = json(&one.join("merged.json"));
    assert_eq!(j["shards"], 6);
    assert!(j["methods"]["integrated-gradients"]["deletion_aopc"]["mean"].is_f64(), "{j}");
    // The same job from a Slurm array's environment (ids 1..2, as `--array=1-2`).
    for id in ["1", "2"] {
        let a = with_out(&env, &[]);
        let (success, out, err) = run(
            &args(&a),
            &[("SLURM_ARRAY_TASK_ID", id), ("SLURM_ARRAY_TASK_MIN", "1"), ("SLURM_ARRAY_TASK_COUNT", "2")],
        );
        assert!(success, "{err}");
        assert!(out.contains(&format!("Slurm array task {id}")), "{out}");
    }
    ok(&["merge", env.to_str().unwrap()]);
    assert_bitwise_equal(&m1, &merged(&env));
    for d in [one, four, env] {
        std::fs::remove_dir_all(d).ok();
    }
}

#[test]
fn a_killed_task_resumes_and_the_merge_refuses_what_is_not_this_job() {
    let (dir, other) = (out_dir("killed"), out_dir("other"));
    let job: Vec<String> = [
        "explain-dataset", "--model", "digits-cnn", "--methods", "integrated-gradients", "--steps",
        "64", "--limit", "192", "--shard-size", "8", "--out",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([dir.display().to_string()])
    .collect();
    let mut child = bin().args(&job).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
    // Kill it (SIGKILL: no chance to clean up) once its second shard is done.
    let second = dir.join("shards/shard-00001.json");
    let t0 = std::time::Instant::now();
    while !second.exists() {
        assert!(t0.elapsed().as_secs() < 300, "no shard after 300 s");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let done = shard_manifests(&dir);
    assert!((2..24).contains(&done), "{done} of 24 shards done when killed");
    let err = fails(&["merge", dir.to_str().unwrap()]);
    assert!(err.contains("are not finished"), "{err}");
    // A corrupted finished shard is noticed (checksum) and redone.
    let s0 = dir.join("shards/shard-00000.safetensors");
    let mut bytes = std::fs::read(&s0).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&s0, bytes).unwrap();
    let job_args: Vec<&str> = job.iter().map(String::as_str).collect();
    let (success, out, err) = run(&job_args, &[]);
    assert!(success, "{err}");
    assert!(err.contains("shard 0:") && err.contains("SHA-256"), "{err}");
    assert!(out.contains(&format!("{} finished", done - 1)), "the rerun skips finished shards: {out}");
    let resumed = merged(&dir);
    // The same job uninterrupted, in one go.
    let mut fresh = job.clone();
    *fresh.last_mut().unwrap() = other.display().to_string();
    ok(&fresh.iter().map(String::as_str).collect::<Vec<_>>());
    assert_bitwise_equal(&resumed, &merged(&other));

    // Another job (IG with 32 steps) is refused in this folder, and its shards by the merge.
    let mut another = job.clone();
    another[6] = "32".into();
    let err = fails(&another.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(err.contains("holds job"), "{err}");
    let third = out_dir("third");
    *another.last_mut().unwrap() = third.display().to_string();
    another.extend(["--shard".into(), "0/24".into()]);
    ok(&another.iter().map(String::as_str).collect::<Vec<_>>());
    for ext in ["json", "safetensors"] {
        let f = format!("shards/shard-00000.{ext}");
        std::fs::copy(third.join(&f), dir.join(&f)).unwrap();
    }
    let err = fails(&["merge", dir.to_str().unwrap()]);
    assert!(err.contains("shard 0 belongs to job"), "{err}");
    for d in [dir, other, third] {
        std::fs::remove_dir_all(d).ok();
    }
}

/// A job file (TOML) over a text dataset (JSON lines with labels) on a Hugging Face BERT
/// folder: ragged token scores, the tokens in merged.json, targets from the labels.
#[test]
fn a_job_file_explains_a_text_dataset() {
    let dir = out_dir("text");
    std::fs::create_dir_all(&dir).unwrap();
    let model = concat!(env!("CARGO_MANIFEST_DIR"), "/crates/models/tests/data/hf/bert");
    let texts = [
        "a wonderful film with a great cast",
        "dull and far too long",
        "the plot is thin but the acting is good",
        "i loved it",
        "not worth the ticket",
    ];
    let data: String = texts
        .iter()
        .enumerate()
        .map(|(i, t)| serde_json::json!({"text": t, "label": i % 3}).to_string() + "\n")
        .collect();
    std::fs::write(dir.join("reviews.jsonl"), data).unwrap();
    let job = format!(
        "model = {model:?}\ndata = {:?}\nmethods = [\"saliency\", \"integrated-gradients\"]\ntarget = \"label\"\nshard_size = 2\n\n[params]\nsteps = 8\n",
        dir.join("reviews.jsonl").display().to_string()
    );
    std::fs::write(dir.join("job.toml"), job).unwrap();
    let out = dir.join("run");
    let (o, j) = (out.to_str().unwrap(), dir.join("job.toml"));
    ok(&["explain-dataset", "--job", j.to_str().unwrap(), "--out", o, "--processes", "2"]);
    let m = merged(&out);
    let lengths: Vec<u32> = m["length"].to_vec1().unwrap();
    assert_eq!(lengths.len(), 5);
    let total: u32 = lengths.iter().sum();
    assert_eq!(m["token_scores.integrated-gradients"].dims(), &[total as usize]);
    assert_eq!(m["target"].to_vec1::<u32>().unwrap(), vec![0, 1, 2, 0, 1], "targets are the labels");
    let r = json(&out.join("merged.json"));
    assert_eq!(r["tokens"].as_array().map(Vec::len), Some(5));
    assert_eq!(r["tokens"][3][1], "i", "[CLS] i loved it [SEP]: {}", r["tokens"][3]);
    // Flags beside --job are refused, and so are unknown fields and bad parameters.
    let err = fails(&["explain-dataset", "--job", j.to_str().unwrap(), "--out", o, "--steps", "9"]);
    assert!(err.contains("[params]"), "{err}");
    std::fs::write(dir.join("bad.toml"), "model = \"digits-cnn\"\nmethods = [\"saliency\"]\nshards = 4\n").unwrap();
    let err = fails(&["explain-dataset", "--job", dir.join("bad.toml").to_str().unwrap(), "--out", o]);
    assert!(err.contains("unknown field") && err.contains("shards"), "{err}");
    std::fs::write(dir.join("bad.json"), r#"{"model": "digits-cnn", "methods": ["saliency"], "params": {"steps": "many"}}"#).unwrap();
    let err = fails(&["explain-dataset", "--job", dir.join("bad.json").to_str().unwrap(), "--out", o]);
    assert!(err.contains("steps") && err.contains("many"), "{err}");
    let err = fails(&["explain-dataset", "--model", "digits-cnn", "--target", "label", "--data", dir.join("reviews.jsonl").to_str().unwrap(), "--out", o]);
    assert!(err.contains("\"image\""), "{err}");
    std::fs::remove_dir_all(dir).ok();
}

/// ROAR / KAR as one job: two tasks run one after another (the first finds the second's
/// attribution shards missing and runs them itself), each runs its half of the
/// retrainings, and the second writes the report, equal to the one-process run's.
#[test]
fn roar_splits_its_retrainings_between_tasks() {
    let (one, two) = (out_dir("roar-one"), out_dir("roar-two"));
    let job = [
        "roar", "--methods", "saliency,random", "--fractions", "0.3,0.7", "--repeats", "1",
        "--modes", "roar", "--epochs", "1", "--train-limit", "192", "--test-limit", "64",
        "--shard-size", "64",
    ];
    let with = |dir: &Path, shard: Option<&str>| -> Vec<String> {
        let mut v: Vec<String> = job.iter().map(|s| s.to_string()).collect();
        v.extend(["--out".into(), dir.display().to_string()]);
        if let Some(s) = shard {
            v.extend(["--shard".into(), s.into()]);
        }
        v
    };
    ok(&args(&with(&one, None)));
    let first = ok(&args(&with(&two, Some("0/2"))));
    assert!(first.contains("of other tasks are not finished; running them here"), "{first}");
    assert!(first.contains("runs 2 of them") && first.contains("2 of 4 retrainings are not finished"), "{first}");
    assert!(!two.join("roar.json").exists());
    let second = ok(&args(&with(&two, Some("1/2"))));
    assert!(second.contains("0 to do") && second.contains("all 4 retrainings done"), "{second}");
    let (a, b) = (json(&one.join("roar.json")), json(&two.join("roar.json")));
    assert_eq!(a["results"], b["results"], "retrainings are seeded: the same accuracies");
    assert_eq!(b["results"]["roar"]["saliency"][1]["fraction"], 0.7);
    assert!(two.join("roar.svg").exists());
    // A rerun has nothing left to do.
    let again = ok(&args(&with(&two, Some("1/2"))));
    assert!(again.contains("runs 0 of them"), "{again}");
    for d in [one, two] {
        std::fs::remove_dir_all(d).ok();
    }
}
