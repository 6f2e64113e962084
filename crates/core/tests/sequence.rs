//! LayerNorm, attention and LSTM: forward and exact input gradients equal PyTorch's
//! (`scripts/golden/sequence_torch.py` made `tests/data/sequence_torch.safetensors`), the
//! inference path equals the differentiable one, and the conservative rules conserve
//! relevance on a bias-free transformer block and an LSTM (Ali et al. 2022; Arras et al. 2017).

mod common;
use candle_core::{DType, Device, Tensor, Var};
use candle_explain_core::layer_rules::DEFAULT_STABILIZER;
use candle_explain_core::nn::{LayerNorm, Lstm, LstmDirection};
use candle_explain_core::prelude::*;
use candle_explain_core::test_device;
use candle_nn::VarBuilder;
use common::*;
use std::collections::HashMap;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/");

fn golden(dev: &Device, dt: DType) -> anyhow::Result<HashMap<String, Tensor>> {
    let g = candle_core::safetensors::load(format!("{DIR}sequence_torch.safetensors"), dev)?;
    Ok(g.into_iter()
        .map(|(k, v)| (k, v.to_dtype(dt).unwrap()))
        .collect())
}

/// The gradient of `Σ f(x) ⊙ readout` w.r.t. the inputs, in an exact gradient context.
fn grads(
    inputs: &[&Tensor],
    readout: &Tensor,
    f: impl Fn(&[Tensor], &RuleCtx) -> candle_explain_core::Result<Tensor>,
) -> anyhow::Result<(Tensor, Vec<Tensor>)> {
    let vars: Vec<Var> = inputs
        .iter()
        .map(|t| Var::from_tensor(t))
        .collect::<candle_core::Result<_>>()?;
    let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let y = f(&ts, &RuleCtx::rule(ActRule::Gradient)?)?;
    let g = (&y * readout)?.sum_all()?.backward()?;
    Ok((
        y.detach(),
        ts.iter()
            .map(|t| g.get(t).expect("gradient").clone())
            .collect(),
    ))
}

fn ops_match_pytorch(dev: &Device) -> anyhow::Result<()> {
    for (dt, tol) in [(DType::F64, 1e-9f32), (DType::F32, 2e-5)] {
        let g = golden(dev, dt)?;
        let ln = LayerNorm::new(g["ln_weight"].clone(), Some(g["ln_bias"].clone()), 1e-5);
        let (y, gr) = grads(&[&g["ln_x"]], &g["ln_readout"], |x, c| {
            ln.forward_with(&x[0], c)
        })?;
        assert_close(&y, &g["ln_y"], tol, "layer norm forward");
        assert_close(&gr[0], &g["ln_grad"], tol, "layer norm input gradient");
        // The fused inference kernel gives the same forward.
        assert_close(
            &ln.forward_with(&g["ln_x"], &RuleCtx::inference())?,
            &g["ln_y"],
            tol,
            "layer norm inference",
        );

        let mask = &g["att_mask"];
        let att = |t: &[Tensor], c: &RuleCtx| c.attention(&t[0], &t[1], &t[2], Some(mask), 0.4);
        let (y, gr) = grads(
            &[&g["att_q"], &g["att_k"], &g["att_v"]],
            &g["att_readout"],
            att,
        )?;
        assert_close(&y, &g["att_y"], tol, "attention forward");
        for (i, name) in ["att_gq", "att_gk", "att_gv"].iter().enumerate() {
            assert_close(&gr[i], &g[*name], tol, name);
        }
        let inf = RuleCtx::inference().attention(
            &g["att_q"],
            &g["att_k"],
            &g["att_v"],
            Some(mask),
            0.4,
        )?;
        assert_close(&inf, &g["att_y"], tol, "attention inference");

        let lstm = Lstm::load(
            VarBuilder::from_tensors(g.clone(), dt, dev).pp("lstm"),
            4,
            3,
            2,
            true,
        )?;
        let (h, gr) = grads(&[&g["lstm_x"]], &g["lstm_readout"], |x, c| {
            lstm.forward(&x[0], c)
        })?;
        assert_close(&h, &g["lstm_h"], tol, "lstm forward");
        assert_close(&gr[0], &g["lstm_grad"], tol, "lstm input gradient");
        assert_close(
            &lstm.forward(&g["lstm_x"], &RuleCtx::inference())?,
            &g["lstm_h"],
            tol,
            "lstm inference",
        );
    }
    Ok(())
}
test_device!(
    ops_match_pytorch,
    ops_match_pytorch_cpu,
    ops_match_pytorch_cuda,
    ops_match_pytorch_metal
);

/// One pre-LN transformer block without biases, read out at the first token (BERT's [CLS]):
/// `x₁ = x + O·attn(LN(x))`, `x₂ = x₁ + W₂ gelu(W₁ LN(x₁))`, logits `C·x₂[0]`.
struct Block {
    ln1: LayerNorm,
    ln2: LayerNorm,
    wq: Tensor,
    wk: Tensor,
    wv: Tensor,
    wo: Tensor,
    w1: Tensor,
    w2: Tensor,
    cls: Tensor,
    heads: usize,
}

impl Block {
    fn new(d: usize, heads: usize, classes: usize) -> Self {
        let w = |r, c, s| uniform(&[r, c], -0.5, 0.5, s, &Device::Cpu);
        let ln = |s| LayerNorm::new(uniform(&[d], 0.5, 1.5, s, &Device::Cpu), None, 1e-5);
        Self {
            ln1: ln(1),
            ln2: ln(2),
            wq: w(d, d, 3),
            wk: w(d, d, 4),
            wv: w(d, d, 5),
            wo: w(d, d, 6),
            w1: w(2 * d, d, 7),
            w2: w(d, 2 * d, 8),
            cls: w(classes, d, 9),
            heads,
        }
    }
}

impl Explainable for Block {
    fn forward_with(&self, x: &Tensor, c: &RuleCtx) -> candle_explain_core::Result<Tensor> {
        let (b, l, d) = x.dims3()?;
        let hd = d / self.heads;
        let split = |t: Tensor| -> candle_explain_core::Result<Tensor> {
            Ok(t.reshape((b, l, self.heads, hd))?
                .transpose(1, 2)?
                .contiguous()?)
        };
        let h = self.ln1.forward_with(x, c)?;
        let (q, k, v) = (
            split(c.linear(&h, &self.wq, None)?)?,
            split(c.linear(&h, &self.wk, None)?)?,
            split(c.linear(&h, &self.wv, None)?)?,
        );
        let a = c
            .attention(&q, &k, &v, None, 1.0 / (hd as f64).sqrt())?
            .transpose(1, 2)?
            .reshape((b, l, d))?;
        let x1 = c.add(x, &c.linear(&a, &self.wo, None)?)?;
        let m = c.linear(
            &c.activation(
                Activation::Gelu,
                &c.linear(&self.ln2.forward_with(&x1, c)?, &self.w1, None)?,
            )?,
            &self.w2,
            None,
        )?;
        let x2 = c.add(&x1, &m)?;
        c.linear(&x2.narrow(1, 0, 1)?.squeeze(1)?, &self.cls, None)
    }
}

/// An LSTM classifier read out at the last step, with zero bias on the cell input (the
/// signal) so that only the gates, which get no relevance, have biases.
struct LstmClassifier {
    lstm: LstmDirection,
    out: Tensor,
}

impl LstmClassifier {
    fn new(input: usize, hidden: usize) -> Self {
        let mut b = uniform(&[4 * hidden], -0.5, 0.5, 13, &Device::Cpu)
            .to_vec1::<f32>()
            .unwrap();
        b[2 * hidden..3 * hidden].iter_mut().for_each(|v| *v = 0.0);
        let lstm = LstmDirection {
            weight_ih: uniform(&[4 * hidden, input], -0.7, 0.7, 11, &Device::Cpu),
            weight_hh: uniform(&[4 * hidden, hidden], -0.7, 0.7, 12, &Device::Cpu),
            bias_ih: Some(Tensor::new(b, &Device::Cpu).unwrap()),
            bias_hh: None,
        };
        Self {
            lstm,
            out: uniform(&[2, hidden], -1.0, 1.0, 14, &Device::Cpu),
        }
    }
}

impl Explainable for LstmClassifier {
    fn forward_with(&self, x: &Tensor, c: &RuleCtx) -> candle_explain_core::Result<Tensor> {
        let h = self.lstm.forward(x, c, false)?;
        let t = h.dim(1)?;
        c.linear(&h.narrow(1, t - 1, 1)?.squeeze(1)?, &self.out, None)
    }
}

fn conservative_lrp() -> Composite {
    Composite::new(ActRule::Pass)
        .with(Selector::kind(LayerKind::Linear), LayerRule::Epsilon(1e-9))
        .with(Selector::kind(LayerKind::Sum), LayerRule::Epsilon(1e-9))
}

fn relative_conservation(a: &Attribution) -> anyhow::Result<f32> {
    let sum = a.attributions.flatten_from(1)?.sum(1)?;
    Ok(max_abs(&(&sum - &a.output)?) / max_abs(&a.output))
}

/// Under LRP (relevance flows backward) and under ε-LRP as a modified gradient (the factors
/// detached), both bias-free models conserve relevance and the two formulations agree; the
/// exact gradient × input does not conserve.
#[test]
fn conservative_rules_conserve_relevance() -> anyhow::Result<()> {
    let block = Block::new(8, 2, 3);
    let xb = uniform(&[2, 5, 8], -1.0, 1.0, 20, &Device::Cpu);
    let lstm = LstmClassifier::new(3, 4);
    let xl = uniform(&[2, 6, 3], -1.0, 1.0, 21, &Device::Cpu);
    let t = Target::PerExample(vec![1, 0]);
    for (name, model, x) in [
        ("transformer block", &block as &dyn Explainable, &xb),
        ("lstm", &lstm, &xl),
    ] {
        let lrp = Lrp::new(conservative_lrp()).attribute(model, x, &t)?;
        let c = relative_conservation(&lrp)?;
        assert!(
            c < 1e-4,
            "{name}: LRP relevance sums off the logit by {c} (relative)"
        );
        let eps = EpsilonLrp::new(1e-9).attribute(model, x, &t)?;
        let c = relative_conservation(&eps)?;
        assert!(c < 1e-4, "{name}: ε-LRP (gradient form) off by {c}");
        let diff = max_abs(&(&lrp.attributions - &eps.attributions)?) / max_abs(&lrp.attributions);
        assert!(
            diff < 1e-3,
            "{name}: the relevance and gradient formulations differ by {diff}"
        );
        let gxi = InputXGradient::default().attribute(model, x, &t)?;
        let c = relative_conservation(&gxi)?;
        assert!(
            c > 1e-2,
            "{name}: exact Gradient × Input should not conserve, off by only {c}"
        );
    }
    Ok(())
}

/// The LRP presets hold attention, LayerNorm and gates constant by default; asking for the
/// gradient makes them exact, and a weight rule on them is a clear error.
#[test]
fn composite_rules_for_sequence_ops() -> anyhow::Result<()> {
    let block = Block::new(8, 2, 3);
    let x = uniform(&[1, 4, 8], -1.0, 1.0, 22, &Device::Cpu);
    let t = Target::Class(2);
    let conservative = Lrp::new(conservative_lrp()).attribute(&block, &x, &t)?;
    let explicit = conservative_lrp()
        .with(
            Selector::kind(LayerKind::Attention),
            LayerRule::Epsilon(DEFAULT_STABILIZER),
        )
        .with(
            Selector::kind(LayerKind::LayerNorm),
            LayerRule::Epsilon(DEFAULT_STABILIZER),
        );
    let same = Lrp::new(explicit).attribute(&block, &x, &t)?;
    assert!(max_abs(&(&conservative.attributions - &same.attributions)?) < 1e-4);
    let exact = conservative_lrp().with(Selector::kind(LayerKind::Attention), LayerRule::Gradient);
    let exact = Lrp::new(exact).attribute(&block, &x, &t)?;
    assert!(
        max_abs(&(&conservative.attributions - &exact.attributions)?) > 1e-4,
        "the exact attention backward changes the relevance"
    );
    let bad = conservative_lrp().with(Selector::kind(LayerKind::LayerNorm), LayerRule::ZPlus);
    let err = Lrp::new(bad)
        .attribute(&block, &x, &t)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("LayerNorm") && err.contains("gradient"),
        "{err}"
    );
    Ok(())
}

/// Saliency with the exact ops equals central finite differences of the plain forward.
#[test]
fn exact_gradients_match_finite_differences() -> anyhow::Result<()> {
    let block = Block::new(4, 2, 2);
    let x = uniform(&[1, 3, 4], -1.0, 1.0, 23, &Device::Cpu).to_dtype(DType::F64)?;
    let block64 = Block {
        ln1: LayerNorm::new(block.ln1.weight.to_dtype(DType::F64)?, None, 1e-5),
        ln2: LayerNorm::new(block.ln2.weight.to_dtype(DType::F64)?, None, 1e-5),
        wq: block.wq.to_dtype(DType::F64)?,
        wk: block.wk.to_dtype(DType::F64)?,
        wv: block.wv.to_dtype(DType::F64)?,
        wo: block.wo.to_dtype(DType::F64)?,
        w1: block.w1.to_dtype(DType::F64)?,
        w2: block.w2.to_dtype(DType::F64)?,
        cls: block.cls.to_dtype(DType::F64)?,
        heads: 2,
    };
    let g = Saliency::signed()
        .attribute(&block64, &x, &Target::Class(1))?
        .attributions
        .flatten_all()?
        .to_vec1::<f64>()?;
    let xv = x.flatten_all()?.to_vec1::<f64>()?;
    let f = |v: &[f64]| -> anyhow::Result<f64> {
        let t = Tensor::from_vec(v.to_vec(), x.dims(), &Device::Cpu)?;
        Ok(block64
            .forward_with(&t, &RuleCtx::plain())?
            .get(0)?
            .get(1)?
            .to_scalar::<f64>()?)
    };
    let h = 1e-5;
    for i in 0..xv.len() {
        let (mut up, mut dn) = (xv.clone(), xv.clone());
        up[i] += h;
        dn[i] -= h;
        let fd = (f(&up)? - f(&dn)?) / (2.0 * h);
        assert!(
            (fd - g[i]).abs() < 1e-6,
            "feature {i}: finite difference {fd}, gradient {}",
            g[i]
        );
    }
    Ok(())
}

/// The CPU attention kernel reads q, k, v and the gradient through their strides: on
/// transposed heads (as a transformer makes them), Lq ≠ Lk, d ≠ dv, batch 1 and 3, rank 3
/// and 4, with a broadcast mask, its forward and input gradients equal Candle's autograd
/// through the composed ops (`RuleCtx::plain`). Held-constant weights (`Epsilon` nonlinearity
/// rule: the softmax detached) give v alone a gradient, the composed one with q, k detached.
#[test]
fn attention_kernel_matches_composed_ops_on_strided_heads() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    for (case, batch) in [1usize, 3].iter().enumerate() {
        let b = *batch;
        let s = 10 * case as u64;
        let f64s =
            |shape: &[usize], seed: u64| uniform(shape, -1.5, 1.5, seed, &dev).to_dtype(DType::F64);
        // (b, L, heads, d) projections viewed as (b, heads, L, d).
        let q = f64s(&[b, 5, 3, 4], s + 1)?.transpose(1, 2)?;
        let k = f64s(&[b, 7, 3, 4], s + 2)?.transpose(1, 2)?;
        let v = f64s(&[b, 7, 3, 6], s + 3)?.transpose(1, 2)?;
        let readout = f64s(&[b, 3, 5, 6], s + 4)?;
        // Varies by query row (like a causal mask), broadcast over the heads.
        let mut m = vec![0f64; b * 5 * 7];
        m[2] = -1e4;
        m[7 + 4] = -1e4;
        m[b * 35 - 1] = -1e4;
        let mask = Tensor::from_vec(m, (b, 1, 5, 7), &dev)?;
        for (q, k, v, mask, readout) in [
            (
                q.clone(),
                k.clone(),
                v.clone(),
                Some(&mask),
                readout.clone(),
            ),
            // Rank 3 (heads flattened into the batch), no mask, a transposed gradient.
            (
                f64s(&[5, 3 * b, 4], s + 5)?.transpose(0, 1)?,
                f64s(&[7, 3 * b, 4], s + 6)?.transpose(0, 1)?,
                f64s(&[7, 3 * b, 6], s + 7)?.transpose(0, 1)?,
                None,
                readout.flatten_to(1)?,
            ),
        ] {
            assert!(!q.is_contiguous() && !v.is_contiguous());
            let readout = readout.t()?.contiguous()?.t()?;
            let run =
                |ctx: &RuleCtx, detach_qk: bool| -> anyhow::Result<(Tensor, Vec<Option<Tensor>>)> {
                    let vars = [&q, &k, &v].map(|t| Var::from_tensor(t).unwrap());
                    let (qt, kt) = if detach_qk {
                        (vars[0].as_tensor().detach(), vars[1].as_tensor().detach())
                    } else {
                        (vars[0].as_tensor().clone(), vars[1].as_tensor().clone())
                    };
                    let y = ctx.attention(&qt, &kt, vars[2].as_tensor(), mask, 0.7)?;
                    let g = y.mul(&readout)?.sum_all()?.backward()?;
                    Ok((
                        y,
                        vars.iter().map(|v| g.get(v.as_tensor()).cloned()).collect(),
                    ))
                };
            let (y, g) = run(&RuleCtx::rule(ActRule::Gradient)?, false)?;
            let (y_ref, g_ref) = run(&RuleCtx::plain(), false)?;
            assert_close(&y, &y_ref, 1e-12, "attention forward");
            for (i, (a, r)) in g.iter().zip(&g_ref).enumerate() {
                let (a, r) = (
                    a.as_ref().expect("gradient"),
                    r.as_ref().expect("reference"),
                );
                assert_close(a, r, 1e-12, &format!("attention input gradient {i}"));
            }
            let (y, g) = run(&RuleCtx::rule(ActRule::Epsilon(0.0))?, false)?;
            let (_, g_ref) = run(&RuleCtx::plain(), true)?;
            assert_close(&y, &y_ref, 1e-12, "attention forward, weights constant");
            assert!(g[0].is_none() && g[1].is_none(), "q and k get no gradient");
            assert_close(
                g[2].as_ref().expect("v"),
                g_ref[2].as_ref().expect("v"),
                1e-12,
                "v gradient, weights constant",
            );
            let inf = RuleCtx::inference().attention(&q, &k, &v, mask, 0.7)?;
            assert_close(&inf, &y_ref, 1e-12, "attention inference");
        }
    }
    // Bad shapes are errors: no keys, or q and k of different head sizes.
    let q = uniform(&[2, 3, 4], -1.0, 1.0, 1, &dev);
    let ctx = RuleCtx::rule(ActRule::Gradient)?;
    let empty = Tensor::zeros((2, 0, 4), DType::F32, &dev)?;
    assert!(ctx.attention(&q, &empty, &empty, None, 1.0).is_err());
    let k5 = uniform(&[2, 3, 5], -1.0, 1.0, 2, &dev);
    assert!(ctx.attention(&q, &k5, &k5, None, 1.0).is_err());
    Ok(())
}
