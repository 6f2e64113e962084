//! Harsanyi dividends and Deng et al.'s allocation principles on models whose interactions
//! are known in closed form: an additive (linear) model has none, `x₀x₁ + 2x₂` has exactly one
//! pairwise interaction, and Shapley values from the sweep obey every principle.

mod common;
use candle_core::{Device, Tensor};
use candle_explain_core::nn::{Flatten, Linear, Sequential};
use candle_explain_core::prelude::*;
use candle_explain_metrics::{Error, HarsanyiInteractions};
use common::{cnn, uniform};

/// `F(x) = x₀·x₁ + 2·x₂` (one output).
struct Product;
impl Explainable for Product {
    fn forward_with(&self, x: &Tensor, _ctx: &RuleCtx) -> candle_explain_core::Result<Tensor> {
        Ok(((x.narrow(1, 0, 1)? * x.narrow(1, 1, 1)?)? + (x.narrow(1, 2, 1)? * 2.0)?)?)
    }
}

fn product_input() -> Tensor {
    Tensor::new(&[[1.5f32, -0.8, 0.7], [0.4, 2.0, -1.1]], &Device::Cpu).unwrap()
}

fn columns() -> Tensor {
    Tensor::new(&[0u32, 1, 2], &Device::Cpu).unwrap()
}

#[test]
fn a_product_of_two_features_has_one_pairwise_interaction() -> anyhow::Result<()> {
    let x = product_input();
    let r = HarsanyiInteractions::new(columns()).evaluate(&Product, &x, &Target::Class(0))?;
    let xv: Vec<Vec<f32>> = x.to_vec2()?;
    for (e, d) in r.dividends.iter().enumerate() {
        let (x0, x1, x2) = (xv[e][0] as f64, xv[e][1] as f64, xv[e][2] as f64);
        // Bit i set = player i present: {0,1} is 0b011, {2} is 0b100.
        let want = [0.0, 0.0, 0.0, x0 * x1, 2.0 * x2, 0.0, 0.0, 0.0];
        for (s, (got, want)) in d.iter().zip(want).enumerate() {
            assert!(
                (got - want).abs() < 1e-5,
                "example {e}, S = {s:03b}: I(S) = {got}, expected {want}"
            );
        }
        assert!(
            (d.iter().sum::<f64>() - r.values[e][7]).abs() < 1e-5,
            "dividends sum to v(N)"
        );
    }
    Ok(())
}

#[test]
fn an_additive_model_has_no_interactions() -> anyhow::Result<()> {
    let w = uniform(&[2, 12], -1.0, 1.0, 1);
    let m = Sequential::new()
        .push(Flatten)
        .push(Linear::new(w.clone(), Some(uniform(&[2], -1.0, 1.0, 2))));
    let x = uniform(&[3, 1, 3, 4], -1.0, 1.0, 3);
    let mask = Tensor::new(&[[0u32, 0, 1, 1], [2, 2, 3, 3], [4, 4, 4, 4]], &Device::Cpu)?
        .reshape((1, 3, 4))?;
    let r = HarsanyiInteractions::new(mask.clone()).evaluate(&m, &x, &Target::Class(1))?;
    // Independent effects: the group sums of w₁ ⊙ x.
    let wx = x
        .flatten_from(1)?
        .broadcast_mul(&w.narrow(0, 1, 1)?)?
        .reshape(x.dims())?;
    let sums = r.group_sums(&wx, &mask)?;
    for (e, d) in r.dividends.iter().enumerate() {
        for (s, v) in d.iter().enumerate().skip(1) {
            let want = if s.count_ones() == 1 {
                sums[e][s.trailing_zeros() as usize]
            } else {
                0.0
            };
            assert!(
                (v - want).abs() < 1e-5,
                "example {e}, S = {s:05b}: {v} vs {want}"
            );
        }
    }
    Ok(())
}

/// 2×2 superpixels of a 6×6 image: 9 players.
fn superpixels() -> Tensor {
    let ids: Vec<u32> = (0..36)
        .map(|k| ((k / 6) / 2 * 3 + (k % 6) / 2) as u32)
        .collect();
    Tensor::from_vec(ids, (1, 1, 6, 6), &Device::Cpu).unwrap()
}

#[test]
fn shapley_values_from_the_sweep_are_fair_and_match_the_shapley_method() -> anyhow::Result<()> {
    let (m, mask) = (cnn(), superpixels());
    let x = uniform(&[2, 1, 6, 6], -1.0, 1.0, 6);
    let t = Target::PerExample(vec![0, 2]);
    let r = HarsanyiInteractions::new(mask.clone()).evaluate(&m, &x, &t)?;
    assert!(
        r.dividends.iter().any(|d| d
            .iter()
            .enumerate()
            .any(|(s, v)| s.count_ones() > 1 && v.abs() > 1e-3)),
        "the CNN has interactions"
    );
    let phi = r.shapley();
    for e in r.allocation_errors(&phi)? {
        assert!(e.approximation < 1e-9 && e.unfairness < 1e-9, "{e:?}");
    }
    // The Shapley method gives every feature its group's value: any one pixel reads it.
    let method: Vec<Vec<f32>> = ShapleyValues::exact(mask.clone())
        .attribute(&m, &x, &t)?
        .attributions
        .flatten_from(1)?
        .to_vec2()?;
    for (e, p) in phi.iter().enumerate() {
        for (g, v) in p.iter().enumerate() {
            let pixel = (g / 3) * 12 + (g % 3) * 2;
            assert!(
                (v - method[e][pixel] as f64).abs() < 1e-5,
                "example {e}, group {g}: {v} vs {}",
                method[e][pixel]
            );
        }
    }
    // Occlusion-1 (feature ablation) hands every interaction to each member in full.
    let ablation: Vec<Vec<f64>> = FeatureAblation::new(mask.clone())
        .attribute(&m, &x, &t)?
        .attributions
        .flatten_from(1)?
        .to_vec2::<f32>()?
        .iter()
        .map(|row| {
            (0..9)
                .map(|g| row[(g / 3) * 12 + (g % 3) * 2] as f64)
                .collect()
        })
        .collect();
    let err = r.allocation_errors(&ablation)?;
    assert!(err.iter().any(|e| e.unfairness > 1e-3), "{err:?}");
    Ok(())
}

#[test]
fn allocation_errors_of_gradient_x_input_and_integrated_gradients_on_a_product(
) -> anyhow::Result<()> {
    let x = product_input();
    let h = HarsanyiInteractions::new(columns());
    let r = h.evaluate(&Product, &x, &Target::Class(0))?;
    let xv: Vec<Vec<f32>> = x.to_vec2()?;
    let scale =
        |e: usize| (xv[e][0] as f64 * xv[e][1] as f64).abs() + (2.0 * xv[e][2] as f64).abs();
    // IG splits x₀x₁ equally (exact with Gauss–Legendre on a quadratic): fair and complete.
    let ig = IntegratedGradients {
        quadrature: Quadrature::GaussLegendre,
        ..IntegratedGradients::new(8)
    };
    let a = ig.attribute(&Product, &x, &Target::Class(0))?.attributions;
    let pe = h.principle_errors(&ig, &r, &x, &a, 16)?;
    for e in r.allocation_errors(&r.group_sums(&a, &columns())?)? {
        assert!(e.approximation < 1e-6 && e.unfairness < 1e-6, "IG: {e:?}");
    }
    assert!(
        pe.approximation
            .iter()
            .chain(&pe.independent)
            .chain(&pe.interaction)
            .all(|v| *v < 1e-5),
        "IG: {pe:?}"
    );
    assert!(
        pe.coverage.iter().all(|c| (c - 1.0).abs() < 1e-9),
        "both effects probed: {pe:?}"
    );
    // Gradient × Input gives x₀x₁ to both x₀ and x₁: the interaction is counted twice.
    let gxi = InputXGradient::default();
    let a = gxi.attribute(&Product, &x, &Target::Class(0))?.attributions;
    let pe = h.principle_errors(&gxi, &r, &x, &a, 16)?;
    for (e, err) in r
        .allocation_errors(&r.group_sums(&a, &columns())?)?
        .iter()
        .enumerate()
    {
        let want = (xv[e][0] as f64 * xv[e][1] as f64).abs() / scale(e);
        assert!(
            (err.approximation - want).abs() < 1e-6,
            "G×I approximation {err:?}, expected {want}"
        );
        assert!(
            (err.unfairness - want).abs() < 1e-6,
            "G×I unfairness {err:?}, expected {want}"
        );
        assert!(
            (pe.interaction[e] - want).abs() < 1e-5 && pe.independent[e] < 1e-6,
            "G×I principles {pe:?}"
        );
    }
    // The probes have nothing a rule replaces, so DeepLIFT and ε-LRP read as Gradient × Input
    // there (they declare themselves rule-free; they are not refused as "rules not applied").
    for (name, m) in [
        ("DeepLIFT", &DeepLift::default() as &dyn Attributor),
        ("ε-LRP", &EpsilonLrp::default()),
    ] {
        let p = h.principle_errors(m, &r, &x, &a, 16)?;
        for e in 0..p.interaction.len() {
            assert!(
                (p.interaction[e] - pe.interaction[e]).abs() < 1e-6
                    && (p.independent[e] - pe.independent[e]).abs() < 1e-6,
                "{name}: {p:?} vs G×I {pe:?}"
            );
        }
    }
    Ok(())
}

#[test]
fn bad_input_is_a_clear_error() -> anyhow::Result<()> {
    let x = uniform(&[1, 17], -1.0, 1.0, 1);
    let m = Sequential::new().push(Linear::new(uniform(&[2, 17], -1.0, 1.0, 2), None));
    let ids = Tensor::arange(0u32, 17, &Device::Cpu)?;
    let err = HarsanyiInteractions::new(ids)
        .evaluate(&m, &x, &Target::Class(0))
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidParameter {
                name: "feature_mask",
                ..
            }
        ) && err.to_string().contains("at most 16"),
        "{err}"
    );
    // 2^n values over the memory budget.
    let mut h = HarsanyiInteractions::new(columns());
    h.batching.budget_bytes = 100;
    let err = h
        .evaluate(&Product, &product_input(), &Target::Class(0))
        .unwrap_err();
    assert!(err.to_string().contains("budget"), "{err}");
    // Attributions of the wrong shape or player count.
    let r = HarsanyiInteractions::new(columns()).evaluate(
        &Product,
        &product_input(),
        &Target::Class(0),
    )?;
    assert!(r.allocation_errors(&[vec![0.0; 3]]).is_err());
    assert!(r
        .group_sums(
            &uniform(&[2, 4], 0.0, 1.0, 3),
            &Tensor::new(&[0u32, 1, 2, 3], &Device::Cpu)?
        )
        .is_err());
    // A feature mask that does not fit the input.
    let err = HarsanyiInteractions::new(Tensor::new(&[0u32, 1], &Device::Cpu)?)
        .evaluate(&Product, &product_input(), &Target::Class(0))
        .unwrap_err();
    assert!(err.to_string().contains("feature_mask"), "{err}");
    // Probes need one baseline for all examples.
    let h = HarsanyiInteractions {
        baseline: Baseline::ChannelMean,
        ..HarsanyiInteractions::new(columns())
    };
    let x = product_input();
    let err = h
        .principle_errors(&InputXGradient::default(), &r, &x, &x, 4)
        .unwrap_err();
    assert!(err.to_string().contains("one baseline"), "{err}");
    Ok(())
}
