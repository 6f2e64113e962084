//! Seconds per attributed token of a language model's continuation: AttnLRP, CP-LRP,
//! Gradient × Input, IG-32 and token ablation, on a decoder folder (the benchmark's
//! GPT-2-small- and Llama-shaped random models: `benches/llm_make_model.py`), a prompt of
//! `--prompt-len` seeded random ids and a forced continuation of `--targets` ids; plus one
//! forward + backward of the whole sequence (the reference cost) and the peak resident
//! memory. The Python twin is `benches/llm_attribution.py`; `benches/llm_compare.sh` runs
//! both in one session. Prints one JSON object.
//!
//! ```text
//! cargo run --release --example llm_speed -- --model assets/bench-llm/gpt2-small [--prompt-len 256] [--targets 32] [--methods attnlrp,integrated-gradients] [--dtype f32|bf16|f16]
//! ```

#[global_allocator]
static GLOBAL: candle_explain::alloc::Allocator = candle_explain::alloc::Allocator;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use candle_explain::core::Batching;
use candle_explain::models::decoder::attribution::{
    attribute_continuation, LlmMethod, Score, Sources, TokenBaseline,
};
use candle_explain::models::CausalLm;
use clap::Parser;
use std::time::Instant;

#[derive(Parser)]
struct Args {
    #[arg(long)]
    model: String,
    #[arg(long, default_value_t = 256)]
    prompt_len: usize,
    #[arg(long, default_value_t = 32)]
    targets: usize,
    #[arg(long, value_delimiter = ',', default_value = "attnlrp,cp-lrp,gradient-x-input,integrated-gradients,ablation")]
    methods: Vec<String>,
    #[arg(long, default_value_t = 32)]
    steps: usize,
    #[arg(long, default_value = "f32")]
    dtype: String,
    /// In bf16 / f16: also run each method in f32 and report the error of the half-precision
    /// matrix against it (max |half − f32| / max |f32|).
    #[arg(long)]
    against_f32: bool,
    /// Memory budget of one chunk, MiB.
    #[arg(long, default_value_t = 4096)]
    memory_mb: usize,
}

/// Seeded ids in [10, vocab − 10) (an LCG: the timing does not depend on which ids).
fn ids(n: usize, vocab: usize, seed: u64) -> Vec<u32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (10 + (s >> 33) as usize % (vocab - 20)) as u32
        })
        .collect()
}

fn peak_mb() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = s.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn main() -> Result<()> {
    candle_explain::alloc::retain_freed_memory();
    let a = Args::parse();
    let dtype = match a.dtype.as_str() {
        "f32" => DType::F32,
        "bf16" => DType::BF16,
        "f16" => DType::F16,
        d => bail!("--dtype {d}"),
    };
    let dev = Device::Cpu;
    let lm = CausalLm::from_dir(&a.model, dtype, &dev).with_context(|| a.model.clone())?;
    let reference = match a.against_f32 && dtype != DType::F32 {
        true => Some(CausalLm::from_dir(&a.model, DType::F32, &dev)?),
        false => None,
    };
    let v = lm.config.vocab_size;
    let (prompt, targets) = (ids(a.prompt_len, v, 0), ids(a.targets, v, 1));
    let batching = Batching::with_budget(a.memory_mb << 20);
    // The reference: one forward of the whole sequence and one backward from the last
    // target's log-probability (the gradient, on the same kernels), after a warm-up run
    // (page faults of the memory-mapped weights, allocations).
    let seq: Vec<u32> = prompt.iter().chain(&targets).copied().collect();
    let (p_all, last) = (&seq[..seq.len() - 1], &seq[seq.len() - 1..]);
    let fwd_bwd_once = || -> Result<f64> {
        let t0 = Instant::now();
        attribute_continuation(&lm, p_all, last, &LlmMethod::GradientXInput, Score::LogProb, Sources::Prompt, &[], &batching)?;
        Ok(t0.elapsed().as_secs_f64())
    };
    fwd_bwd_once()?;
    let fwd_bwd = fwd_bwd_once()?;
    let mut out = serde_json::json!({
        "model": a.model, "prompt_len": a.prompt_len, "targets": a.targets, "dtype": a.dtype,
        "threads": candle_core::utils::get_num_threads(), "fwd_bwd_seconds": fwd_bwd,
    });
    for name in &a.methods {
        let method = match name.as_str() {
            "attnlrp" => LlmMethod::AttnLrp { epsilon: 1e-10 },
            "cp-lrp" => LlmMethod::CpLrp { epsilon: 1e-10 },
            "gradient-x-input" => LlmMethod::GradientXInput,
            "saliency" => LlmMethod::Saliency,
            "integrated-gradients" => LlmMethod::IntegratedGradients { steps: a.steps, baseline: TokenBaseline::Zero },
            "ablation" => LlmMethod::Ablation { baseline: TokenBaseline::Token(0), features: Default::default() },
            m => bail!("unknown method {m}"),
        };
        // Captum's sources: the prompt; earlier targets stay as they are.
        let t0 = Instant::now();
        let r = attribute_continuation(&lm, &prompt, &targets, &method, Score::LogProb, Sources::Prompt, &[], &batching)?;
        let secs = t0.elapsed().as_secs_f64();
        let finite = r.matrix.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?.iter().all(|v| v.is_finite());
        if !finite {
            bail!("{name}: non-finite attributions");
        }
        out[name] = serde_json::json!({"seconds": secs, "seconds_per_token": secs / a.targets as f64, "per_token_over_fwd_bwd": secs / a.targets as f64 / fwd_bwd});
        if let Some(f32_lm) = &reference {
            let want = attribute_continuation(f32_lm, &prompt, &targets, &method, Score::LogProb, Sources::Prompt, &[], &batching)?.matrix;
            let got = r.matrix.to_dtype(DType::F32)?;
            let m = |t: &Tensor| -> Result<f32> { Ok(t.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?) };
            let err = m(&(&got - &want)?)? / m(&want)?.max(1e-12);
            out[name]["relative_error_vs_f32"] = serde_json::json!(err);
            eprintln!("{name}: {} vs f32, relative error {err:.2e}", a.dtype);
        }
        eprintln!("{name}: {secs:.2} s, {:.3} s per token ({:.2}x one forward + backward)", secs / a.targets as f64, secs / a.targets as f64 / fwd_bwd);
    }
    out["peak_memory_mb"] = serde_json::json!(peak_mb());
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
