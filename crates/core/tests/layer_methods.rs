//! Layer and neuron attribution against theory: Layer IG is complete at the layer and, at a
//! layer that is the input itself, equals IG; a model linear after the layer makes
//! Gradient × Activation and Internal Influence closed forms; the neuron gradient matches
//! finite differences and Neuron IG is complete for the neuron.

mod common;
use candle_core::{DType, Device, Tensor};
use candle_explain_core::nn::{Linear, Named, Sequential};
use candle_explain_core::prelude::*;
use common::{assert_close, uniform};

/// `head(relu(W₁ x + b₁))` with the hidden activation tapped as "hidden" (and the input as
/// "input"): f64, 5 → 4 → 3.
fn model(dev: &Device) -> Sequential {
    let l = |o: usize, i: usize, s: u64| {
        Linear::new(
            uniform(&[o, i], -1.0, 1.0, s, dev)
                .to_dtype(DType::F64)
                .unwrap(),
            Some(
                uniform(&[o], -0.5, 0.5, s + 9, dev)
                    .to_dtype(DType::F64)
                    .unwrap(),
            ),
        )
    };
    Sequential::new()
        .push(Named {
            name: "input".into(),
            layer: Activation::Identity,
        })
        .push(Named {
            name: "hidden".into(),
            layer: Sequential::new().push(l(4, 5, 1)).push(Activation::Relu),
        })
        .push(l(3, 4, 2))
}

fn x(dev: &Device) -> Tensor {
    uniform(&[3, 5], -1.0, 1.0, 7, dev)
        .to_dtype(DType::F64)
        .unwrap()
}

#[test]
fn layer_ig_is_complete_and_equals_ig_at_the_input() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let (m, x) = (model(&dev), x(&dev));
    let t = Target::PerExample(vec![0, 1, 2]);
    // A baseline whose hidden activation is not 0, so that a − ā and a differ.
    let lig = LayerIntegratedGradients::new("hidden", 32)
        .with_baseline(Baseline::Constant(0.5))
        .attribute(&m, &x, &t)?;
    let base_hidden = lig.baseline_output.as_ref().expect("S(x̄)");
    assert!(common::max_abs(base_hidden) > 0.0);
    assert_eq!(lig.attributions.dims(), &[3, 4]);
    let delta = common::max_abs(lig.delta.as_ref().expect("delta"));
    // The quadrature's α are f32 (as IG's), hence 1e-7 rather than f64's rounding.
    assert!(delta < 1e-7, "complete at the layer: {delta}");
    let at_input = LayerIntegratedGradients::new("input", 32).attribute(&m, &x, &t)?;
    let ig = IntegratedGradients::new(32).attribute(&m, &x, &t)?;
    assert_close(
        &at_input.attributions,
        &ig.attributions,
        1e-12,
        "layer IG at the input = IG",
    );
    // An unknown layer names the model's taps.
    let e = LayerIntegratedGradients::new("nope", 4)
        .attribute(&m, &x, &t)
        .unwrap_err()
        .to_string();
    assert!(e.contains("hidden") && e.contains("input"), "{e}");
    Ok(())
}

#[test]
fn a_linear_head_makes_layer_methods_closed_forms() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let (m, x) = (model(&dev), x(&dev));
    let w2 = uniform(&[3, 4], -1.0, 1.0, 2, &dev).to_dtype(DType::F64)?;
    let b1 = uniform(&[4], -0.5, 0.5, 10, &dev).to_dtype(DType::F64)?;
    let w1 = uniform(&[4, 5], -1.0, 1.0, 1, &dev).to_dtype(DType::F64)?;
    let hidden = (x.matmul(&w1.t()?)?.broadcast_add(&b1)?).relu()?;
    // S = W₂[c]·h + b: ∂S/∂h = W₂[c] everywhere.
    let row = w2.get(1)?.unsqueeze(0)?.broadcast_as((3, 4))?;
    let gxa = LayerGradientXActivation::new("hidden").attribute(&m, &x, &Target::Class(1))?;
    assert_close(
        &gxa.attributions,
        &(&hidden * &row)?,
        1e-12,
        "gradient × activation",
    );
    let ii = InternalInfluence::new("hidden", 8).attribute(&m, &x, &Target::Class(1))?;
    assert_close(
        &ii.attributions,
        &row.contiguous()?,
        1e-7,
        "internal influence",
    );
    Ok(())
}

#[test]
fn neuron_methods_match_differences_and_are_complete() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let (m, x) = (model(&dev), x(&dev));
    let g = NeuronGradient::new("hidden", 2).attribute(&m, &x, &Target::Class(0))?;
    // Central differences of hidden unit 2 in every input direction.
    let unit = |x: &Tensor| -> anyhow::Result<Vec<f64>> {
        let ctx = RuleCtx::inference().capturing(&["hidden"]);
        m.forward_with(x, &ctx)?;
        Ok(ctx
            .captured("hidden")?
            .0
            .narrow(1, 2, 1)?
            .squeeze(1)?
            .to_vec1()?)
    };
    let h = 1e-6;
    let got: Vec<Vec<f64>> = g.attributions.to_vec2()?;
    for i in 0..5 {
        let e = Tensor::zeros((3, 5), DType::F64, &dev)?
            .slice_assign(&[0..3, i..i + 1], &Tensor::full(h, (3, 1), &dev)?)?;
        let (up, down) = (unit(&(&x + &e)?)?, unit(&(&x - &e)?)?);
        for b in 0..3 {
            let fd = (up[b] - down[b]) / (2.0 * h);
            assert!(
                (fd - got[b][i]).abs() < 1e-6,
                "example {b}, input {i}: {} vs {fd}",
                got[b][i]
            );
        }
    }
    // Complete in the limit: the ReLU's kink on the path leaves O(1/steps).
    let delta = |steps: usize| -> anyhow::Result<f32> {
        let nig = NeuronIntegratedGradients::new("hidden", 2, steps).attribute(
            &m,
            &x,
            &Target::Class(0),
        )?;
        Ok(common::max_abs(nig.delta.as_ref().expect("delta")))
    };
    let (coarse, fine) = (delta(64)?, delta(1024)?);
    assert!(
        coarse < 2e-2 && fine < coarse / 4.0,
        "neuron IG deltas {coarse} (64 steps), {fine} (1024)"
    );
    assert!(NeuronGradient::new("hidden", 4)
        .attribute(&m, &x, &Target::Class(0))
        .is_err());
    Ok(())
}

/// `S = W₂[c]·h + b` after the layer: conductance on a path from x̄ to x telescopes to
/// `W₂[c] ⊙ (h(x) − h(x̄))` whatever the steps, and chunking (a step and its successor in
/// different chunks) changes nothing.
#[test]
fn layer_conductance_telescopes_behind_a_linear_head() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let (m, x) = (model(&dev), x(&dev));
    let w2 = uniform(&[3, 4], -1.0, 1.0, 2, &dev).to_dtype(DType::F64)?;
    let b1 = uniform(&[4], -0.5, 0.5, 10, &dev).to_dtype(DType::F64)?;
    let w1 = uniform(&[4, 5], -1.0, 1.0, 1, &dev).to_dtype(DType::F64)?;
    let hidden = |x: &Tensor| -> anyhow::Result<Tensor> {
        Ok((x.matmul(&w1.t()?)?.broadcast_add(&b1)?).relu()?)
    };
    let xbar = Tensor::full(0.5f64, (3, 5), &dev)?;
    let row = w2.get(1)?.unsqueeze(0)?.broadcast_as((3, 4))?;
    let want = ((hidden(&x)? - hidden(&xbar)?)? * &row)?;
    let lc = LayerConductance::new("hidden", 7)
        .with_quadrature(Quadrature::RiemannTrapezoid)
        .with_baseline(Baseline::Constant(0.5));
    let whole = lc.attribute(&m, &x, &Target::Class(1))?;
    assert_close(&whole.attributions, &want, 1e-7, "conductance, one chunk");
    assert!(common::max_abs(whole.delta.as_ref().expect("delta")) < 1e-7);
    for rows in [1, 3, 5] {
        let mut chunked = lc.clone();
        chunked.batching = Batching::with_max_rows(rows);
        let c = chunked.attribute(&m, &x, &Target::Class(1))?;
        assert_close(&c.attributions, &whole.attributions, 1e-12, "chunked");
    }
    Ok(())
}

/// Every path passes through the hidden layer: the neurons' conductances add up to
/// Integrated Gradients with the same quadrature.
#[test]
fn neuron_conductances_add_up_to_ig() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let (m, x) = (model(&dev), x(&dev));
    let t = Target::PerExample(vec![2, 0, 1]);
    let mut sum = x.zeros_like()?;
    for j in 0..4 {
        let mut nc = NeuronConductance::new("hidden", j, 16);
        nc.batching = Batching::with_max_rows(5);
        sum = (sum + nc.attribute(&m, &x, &t)?.attributions)?;
    }
    let ig = IntegratedGradients::new(16)
        .with_quadrature(Quadrature::RiemannTrapezoid)
        .attribute(&m, &x, &t)?;
    assert_close(&sum, &ig.attributions, 1e-7, "Σ_j conductance_j = IG");
    Ok(())
}

/// Latent relevance: at a layer that is the input it is the method itself; DeepLIFT is
/// complete at a hidden layer.
#[test]
fn latent_relevance_at_the_input_is_the_method() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let (m, x) = (model(&dev), x(&dev));
    let t = Target::PerExample(vec![0, 1, 2]);
    let comp = Composite::new(ActRule::Pass).with(Selector::any(), LayerRule::Epsilon(1e-6));
    let at_input = LayerLrp::new("input", comp.clone()).attribute(&m, &x, &t)?;
    let lrp = Lrp::new(comp).attribute(&m, &x, &t)?;
    assert_close(
        &at_input.attributions,
        &lrp.attributions,
        1e-12,
        "layer LRP at the input",
    );
    let b = Baseline::Constant(0.25);
    let dl = DeepLift::default()
        .with_baseline(b.clone())
        .attribute(&m, &x, &t)?;
    let at_input = LayerDeepLift::new("input")
        .with_baseline(b.clone())
        .attribute(&m, &x, &t)?;
    assert_close(
        &at_input.attributions,
        &dl.attributions,
        1e-12,
        "layer DeepLIFT at the input",
    );
    let hidden = LayerDeepLift::new("hidden")
        .with_baseline(b)
        .attribute(&m, &x, &t)?;
    assert_eq!(hidden.attributions.dims(), &[3, 4]);
    let delta = common::max_abs(hidden.delta.as_ref().expect("delta"));
    assert!(delta < 1e-10, "DeepLIFT complete at the layer: {delta}");
    Ok(())
}
