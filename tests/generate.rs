//! `candle-explain generate` end to end on the tiny decoder checkpoints of
//! `crates/models/tests/data/hf` (random weights: the text is nonsense, the numbers are
//! checked against the library, which is checked against Captum and LXT).

use std::path::{Path, PathBuf};
use std::process::Command;

fn model(name: &str) -> String {
    format!("{}/crates/models/tests/data/hf/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn out_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("candle-explain-generate-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn run(args: &[&str]) -> (bool, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_candle-explain")).args(args).output().expect("runs");
    (o.status.success(), String::from_utf8_lossy(&o.stderr).into_owned())
}

fn json(p: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).expect("written")).expect("JSON")
}

#[test]
fn every_method_writes_a_matrix_a_page_and_tensors() {
    let prompt = "The old cat slept on the warm mat by the";
    for method in ["attnlrp", "cp-lrp", "integrated-gradients", "gradient-x-input", "saliency", "ablation", "shapley"] {
        let out = out_dir(method);
        let o = out.to_str().unwrap();
        let (ok, err) = run(&["generate", "--model", &model("llama"), "--prompt", prompt, "--max-new-tokens", "5", "--method", method, "--steps", "8", "--out", o]);
        assert!(ok, "{method}: {err}");
        let r = json(&out.join("result.json"));
        let (p, ids) = (r["prompt_len"].as_u64().unwrap() as usize, r["ids"].as_array().unwrap().len());
        assert_eq!(ids, p + 5, "{method}: greedy, no stop token in 5 steps");
        let m = r["matrix"].as_array().unwrap();
        assert_eq!(m.len(), 5);
        for (k, row) in m.iter().enumerate() {
            let row: Vec<f64> = row.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
            assert_eq!(row.len(), ids - 1);
            // The BOS is skipped, the future is invisible, something earlier matters.
            assert_eq!(row[0], 0.0, "{method}: BOS attributed");
            assert!(row[p + k..].iter().all(|v| *v == 0.0), "{method}: row {k} sees the future");
            assert!(row[1..p + k].iter().any(|v| *v != 0.0), "{method}: row {k} is all zero");
        }
        let html = std::fs::read_to_string(out.join("generation.html")).unwrap();
        assert_eq!(html.matches("class=\"tok gen\"").count(), 5, "{method}");
        assert!(html.contains(method) && html.contains("−max"));
        let t = candle_core::safetensors::load(out.join("attributions.safetensors"), &candle_core::Device::Cpu).unwrap();
        assert_eq!(t["matrix"].dims(), &[5, ids - 1]);
        std::fs::remove_dir_all(out).ok();
    }
}

#[test]
fn a_given_continuation_on_gpt2_and_a_chat_prompt() {
    let out = out_dir("forced");
    let o = out.to_str().unwrap();
    let (ok, err) = run(&["generate", "--model", &model("gpt2"), "--prompt", "The old cat", "--continuation", " slept on the mat", "--method", "integrated-gradients", "--sources", "prompt", "--out", o]);
    assert!(ok, "{err}");
    let r = json(&out.join("result.json"));
    assert_eq!(r["continuation"], " slept on the mat");
    assert_eq!(r["stop"], "given");
    let p = r["prompt_len"].as_u64().unwrap() as usize;
    // Sources: the prompt only, so the earlier targets get nothing.
    for row in r["matrix"].as_array().unwrap() {
        assert!(row.as_array().unwrap()[p..].iter().all(|v| v.as_f64() == Some(0.0)));
    }
    // A contrast with the continuation itself explains a function that is 0 everywhere.
    let (ok, err) = run(&["generate", "--model", &model("gpt2"), "--prompt", "The old cat", "--continuation", " slept on the mat", "--contrast", " slept on the mat", "--method", "gradient-x-input", "--out", o]);
    assert!(ok, "{err}");
    let r = json(&out.join("result.json"));
    assert!(r["scores"].as_array().unwrap().iter().all(|v| v.as_f64() == Some(0.0)), "{}", r["scores"]);
    assert!(r["matrix"].as_array().unwrap().iter().flat_map(|row| row.as_array().unwrap()).all(|v| v.as_f64() == Some(0.0)));
    let (ok, err) = run(&["generate", "--model", &model("gpt2"), "--prompt", "The old cat", "--continuation", " slept on the mat", "--contrast", " sat", "--out", o]);
    assert!(!ok && err.contains("one alternative token per generated token"), "{err}");
    let (ok, err) = run(&["generate", "--model", &model("qwen2"), "--prompt", "Where did the cat sleep?", "--chat", "--max-new-tokens", "3", "--out", o]);
    assert!(ok, "{err}");
    let r = json(&out.join("result.json"));
    // The ChatML template writes its default system turn, the user's, and opens the answer.
    let text = r["prompt_text"].as_str().unwrap();
    assert!(text.contains("<|im_start|>user\nWhere did the cat sleep?<|im_end|>") && text.ends_with("<|im_start|>assistant\n"), "{text}");
    std::fs::remove_dir_all(out).ok();
}

/// Shapley values of the prompt's words: one column per word in `span_matrix`, each the
/// value every token of the word shows in `matrix`; the values of a target add up to its
/// score minus the score with every word replaced (each sampled order telescopes), which the
/// exact values (`--permutations 0`) share.
#[test]
fn shapley_values_of_words() {
    let out = out_dir("words");
    let o = out.to_str().unwrap();
    let run_with = |perms: &str| {
        let (ok, err) = run(&["generate", "--model", &model("gpt2"), "--prompt", "The unbelievable cat, isn't it", "--continuation", " slept on", "--method", "shapley", "--spans", "words", "--sources", "prompt", "--permutations", perms, "--out", o]);
        assert!(ok, "{err}");
        json(&out.join("result.json"))
    };
    let sampled = run_with("5");
    let text: Vec<&str> = sampled["span_text"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(text, ["The", " unbelievable", " cat", ",", " isn't", " it"]);
    let spans = sampled["spans"].as_array().unwrap();
    let row_sums = |r: &serde_json::Value| -> Vec<f64> {
        r["span_matrix"].as_array().unwrap().iter().map(|row| row.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).sum()).collect()
    };
    for (row, m) in sampled["span_matrix"].as_array().unwrap().iter().zip(sampled["matrix"].as_array().unwrap()) {
        for (v, s) in row.as_array().unwrap().iter().zip(spans) {
            let (a, b) = (s[0].as_u64().unwrap() as usize, s[1].as_u64().unwrap() as usize);
            assert!(m.as_array().unwrap()[a..b].iter().all(|t| t == v), "every token of a word holds its value");
        }
    }
    let exact = run_with("0");
    for (s, e) in row_sums(&sampled).iter().zip(row_sums(&exact)) {
        assert!((s - e).abs() < 1e-4 * e.abs().max(1.0), "5 orders sum to {s}, the exact values to {e}");
    }
    std::fs::remove_dir_all(out).ok();
}

#[test]
fn bad_requests_say_what_was_expected() {
    let o = out_dir("bad");
    let o = o.to_str().unwrap();
    let llama = model("llama");
    for (args, want) in [
        (vec!["--method", "lime"], "one of attnlrp"),
        (vec!["--baseline", "99999"], "the vocabulary has"),
        (vec!["--chat"], "no chat_template"),
        (vec!["--max-new-tokens", "0"], "at least 1"),
        (vec!["--score", "odds"], "log-prob, prob or logit"),
        (vec!["--spans", "sentences"], "tokens or words"),
        (vec!["--method", "shapley", "--permutations", "0", "--continuation", " a b c d e f g h i j k l m n o p q"], "at most 16"),
    ] {
        let mut a = vec!["generate", "--model", llama.as_str(), "--prompt", "The cat", "--out", o];
        a.extend(args.iter());
        let (ok, err) = run(&a);
        assert!(!ok && err.contains(want), "{args:?}: {err}");
    }
    let (ok, err) = run(&["generate", "--model", "/no/such/folder", "--prompt", "x", "--out", o]);
    assert!(!ok && err.contains("neither a folder nor a hub id"), "{err}");
}

/// The built-in model (`weights/tiny-llama`, trained by `examples/train_tiny_llama` on
/// public-domain prose) prefers real English to the same words shuffled, by a wide margin,
/// and the CLI uses it by default.
#[test]
fn the_built_in_model_knows_english_and_is_the_default() {
    use candle_core::{DType, Device, Tensor, D};
    use candle_explain::models::decoder::DecoderTokenizer;
    use candle_explain::models::CausalLm;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("weights/tiny-llama");
    let lm = CausalLm::from_dir(&dir, DType::F32, &Device::Cpu).expect("the built-in model is committed");
    let tok = DecoderTokenizer::from_dir(&dir, &lm).expect("its tokenizer");
    let log_prob = |text: &str| -> f32 {
        let ids = tok.encode(text, false).unwrap();
        let x = lm.embed(&Tensor::new(ids.as_slice(), &Device::Cpu).unwrap().unsqueeze(0).unwrap()).unwrap();
        let logits = lm.forward_embeds(&x, None, None, None, &candle_explain::core::RuleCtx::inference()).unwrap();
        let lp = candle_nn::ops::log_softmax(&logits.squeeze(0).unwrap(), D::Minus1).unwrap();
        let lp: Vec<Vec<f32>> = lp.to_vec2().unwrap();
        (1..ids.len()).map(|i| lp[i - 1][ids[i] as usize]).sum::<f32>() / (ids.len() - 1) as f32
    };
    let real = "She was the youngest of the two daughters of a most affectionate, indulgent father, and had been mistress of his house from a very early period.";
    let mut words: Vec<&str> = real.split(' ').collect();
    words.reverse();
    let shuffled = words.join(" ");
    let (a, b) = (log_prob(real), log_prob(&shuffled));
    assert!(a > b + 1.0, "per-token log-probability: real {a:.3}, reversed words {b:.3}");
    let out = out_dir("builtin");
    let (ok, err) = run(&["generate", "--prompt", "It is a truth universally acknowledged", "--max-new-tokens", "8", "--out", out.to_str().unwrap()]);
    assert!(ok, "{err}");
    let r = json(&out.join("result.json"));
    assert_eq!(r["model"], "tiny-llama");
    // AttnLRP by default, one row per generated token (up to 8: it may stop at <|endoftext|>).
    let rows = r["matrix"].as_array().map(Vec::len).unwrap_or(0);
    assert!(rows >= 1 && rows == r["targets"].as_array().unwrap().len(), "{rows} rows");
    assert_eq!(r["method"], "attnlrp");
    std::fs::remove_dir_all(out).ok();
}
