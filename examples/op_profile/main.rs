//! Times each op of the BERT stack bench (`benches/benchmarks/op_stacks.rs`: 200 sequences of
//! 64 tokens, hidden 384, 12 heads, FFN 1536) in isolation, forward alone and forward +
//! input gradient, in a gradient context: the per-op profile `benches/README.md` cites.
//! Shares matter more than absolute times: isolated calls do not share caches the way a
//! whole pass does.
//!
//! ```text
//! cargo run --release --example op_profile -- [--reps N]
//! ```

#[global_allocator]
static GLOBAL: candle_explain::alloc::Allocator = candle_explain::alloc::Allocator;

use anyhow::Result;
use candle_core::{DType, Device, Tensor, Var};
use candle_explain::core::{ActRule, Activation, RuleCtx};
use std::time::{Duration, Instant};

const BATCH: usize = 200;
const SEQ: usize = 64;
const HIDDEN: usize = 384;
const HEADS: usize = 12;
const FFN: usize = 1536;

/// Median time of `reps` calls after one warm-up call.
fn median(reps: usize, mut f: impl FnMut() -> Result<()>) -> Result<Duration> {
    f()?;
    let mut times = (0..reps)
        .map(|_| {
            let t = Instant::now();
            f().map(|_| t.elapsed())
        })
        .collect::<Result<Vec<_>>>()?;
    times.sort();
    Ok(times[times.len() / 2])
}

fn main() -> Result<()> {
    candle_explain::alloc::retain_freed_memory();
    let reps = match std::env::args().skip_while(|a| a != "--reps").nth(1) {
        Some(n) => n.parse()?,
        None => 5,
    };
    let dev = Device::Cpu;
    let randn = |shape: &[usize], sd: f64| Tensor::randn(0f32, sd as f32, shape, &dev);
    let x = Var::from_tensor(&randn(&[BATCH, SEQ, HIDDEN], 1.0)?)?;
    let xf = Var::from_tensor(&randn(&[BATCH, SEQ, FFN], 1.0)?)?;
    let (w, w_up, w_down) = (
        randn(&[HIDDEN, HIDDEN], 0.05)?,
        randn(&[FFN, HIDDEN], 0.05)?,
        randn(&[HIDDEN, FFN], 0.05)?,
    );
    let (b, b_up) = (
        Tensor::zeros(HIDDEN, DType::F32, &dev)?,
        Tensor::zeros(FFN, DType::F32, &dev)?,
    );
    let gamma = Tensor::ones(HIDDEN, DType::F32, &dev)?;
    let heads = |t: &Tensor| -> candle_core::Result<Tensor> {
        t.reshape((BATCH, SEQ, HEADS, HIDDEN / HEADS))?
            .transpose(1, 2)
    };
    let scale = 1.0 / ((HIDDEN / HEADS) as f64).sqrt();

    // (name, per layer, op) with the op's output from a fresh gradient context.
    type Op<'a> = Box<dyn Fn(&RuleCtx) -> candle_explain::core::Result<Tensor> + 'a>;
    let ops: Vec<(&str, usize, Op)> = vec![
        (
            "linear 384→384 (q, k, v, out)",
            4,
            Box::new(|c| c.linear(&x, &w, Some(&b))),
        ),
        (
            "linear 384→1536",
            1,
            Box::new(|c| c.linear(&x, &w_up, Some(&b_up))),
        ),
        (
            "linear 1536→384",
            1,
            Box::new(|c| c.linear(&xf, &w_down, Some(&b))),
        ),
        (
            "GELU (erf) on 1536",
            1,
            Box::new(|c| c.activation(Activation::Gelu, &xf)),
        ),
        (
            "attention, 12 heads",
            1,
            Box::new(|c| {
                let h = heads(&x)?;
                c.attention(&h, &h, &h, None, scale)
            }),
        ),
        (
            "LayerNorm",
            2,
            Box::new(|c| c.layer_norm(&x, &gamma, Some(&b), 1e-12)),
        ),
        ("residual add", 2, Box::new(|c| c.add(&x, &x))),
    ];
    let mut rows = Vec::new();
    for (name, per_layer, op) in &ops {
        let fwd = median(reps, || {
            op(&RuleCtx::rule(ActRule::Gradient)?)?;
            Ok(())
        })?;
        let both = median(reps, || {
            op(&RuleCtx::rule(ActRule::Gradient)?)?
                .sum_all()?
                .backward()?;
            Ok(())
        })?;
        rows.push((name, *per_layer as f64 * both.as_secs_f64(), fwd, both));
    }
    let total: f64 = rows.iter().map(|r| r.1).sum();
    println!(
        "{:<32} {:>10} {:>14} {:>16} {:>7}",
        "op", "fwd ms", "fwd+bwd ms", "× per layer, ms", "share"
    );
    for (name, layer, fwd, both) in rows {
        println!(
            "{name:<32} {:>10.1} {:>14.1} {:>16.1} {:>6.0}%",
            fwd.as_secs_f64() * 1e3,
            both.as_secs_f64() * 1e3,
            layer * 1e3,
            100.0 * layer / total
        );
    }
    println!(
        "one layer, sum of the ops: {:.0} ms (× 6 layers: {:.2} s)",
        total * 1e3,
        6.0 * total
    );
    Ok(())
}
