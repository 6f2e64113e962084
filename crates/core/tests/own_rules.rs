//! A rule written outside the core crate, as a user would: a layer rule and an activation
//! rule, put in a composite that selects layers by name with globs, checked against a
//! dense-matrix computation of the same relevance (f64, by hand).

use candle_core::{DType, Device, Tensor};
use candle_explain_core::composite::{Composite, LayerKind, Selector};
use candle_explain_core::nn::{Linear, Named, Sequential};
use candle_explain_core::prelude::*;
use candle_explain_core::rule::{ActivationInput, Group, LayerInput, Propagation, Rule, Term};
use candle_explain_core::{Activation, LayerRule};

/// z⁺ without the bias: positive weights on the positive part of the input.
#[derive(Debug)]
struct ZPlusNoBias {
    /// A mutation switch: keep the bias (the test checks that this is caught).
    keep_bias: bool,
}

impl Rule for ZPlusNoBias {
    fn name(&self) -> String {
        "z+ without bias".into()
    }
    fn layer(&self, l: &LayerInput) -> candle_core::Result<Propagation> {
        let bias = match self.keep_bias {
            true => l.bias.map(|b| b.relu()).transpose()?,
            false => None,
        };
        let term = Term::new(l.input.relu()?, l.weight.relu()?, bias);
        Ok(Propagation::Terms(vec![Group::new(vec![term])]))
    }
}

/// Only positive relevance passes a nonlinearity.
#[derive(Debug)]
struct PositiveOnly;

impl Rule for PositiveOnly {
    fn name(&self) -> String {
        "positive relevance only".into()
    }
    fn activation(&self, _: &ActivationInput, grad: &Tensor) -> candle_core::Result<Tensor> {
        grad.relu()
    }
}

const IN: usize = 5;
const HID: usize = 4;
const OUT: usize = 3;

fn matrix(rows: usize, cols: usize, k: f64) -> Vec<f64> {
    (0..rows * cols)
        .map(|i| ((i as f64 + 1.0) * k).sin())
        .collect()
}

/// `encoder = [Linear(IN → HID), ReLU]`, then `head = Linear(HID → OUT)`, in f64.
fn model(dev: &Device) -> anyhow::Result<Sequential> {
    let t = |v: Vec<f64>, s: &[usize]| Tensor::from_vec(v, s, dev);
    let encoder = Sequential::new()
        .push(Linear::new(
            t(matrix(HID, IN, 0.7), &[HID, IN])?,
            Some(t(matrix(1, HID, 1.9), &[HID])?),
        ))
        .push(Activation::Relu);
    Ok(Sequential::new()
        .push(Named {
            name: "encoder".into(),
            layer: encoder,
        })
        .push(
            Linear::new(
                t(matrix(OUT, HID, 1.3), &[OUT, HID])?,
                Some(t(matrix(1, OUT, 0.4), &[OUT])?),
            )
            .with_name("head"),
        ))
}

fn stab(z: f64, eps: f64) -> f64 {
    z + if z >= 0.0 { eps } else { -eps }
}

/// The same relevance, written out: ε on the head, positive-only through the ReLU, z⁺
/// without bias on the encoder's linear layer.
fn reference(x: &[f64], class: usize, eps: f64) -> Vec<f64> {
    let (a, ab) = (matrix(HID, IN, 0.7), matrix(1, HID, 1.9));
    let (b, bb) = (matrix(OUT, HID, 1.3), matrix(1, OUT, 0.4));
    let z: Vec<f64> = (0..HID)
        .map(|j| (0..IN).map(|i| a[j * IN + i] * x[i]).sum::<f64>() + ab[j])
        .collect();
    let h: Vec<f64> = z.iter().map(|v| v.max(0.0)).collect();
    let y: Vec<f64> = (0..OUT)
        .map(|k| (0..HID).map(|j| b[k * HID + j] * h[j]).sum::<f64>() + bb[k])
        .collect();
    let r_out: Vec<f64> = (0..OUT)
        .map(|k| if k == class { y[k] } else { 0.0 })
        .collect();
    let r_h: Vec<f64> = (0..HID)
        .map(|j| {
            h[j] * (0..OUT)
                .map(|k| b[k * HID + j] * r_out[k] / stab(y[k], eps))
                .sum::<f64>()
        })
        .collect();
    let r_z: Vec<f64> = r_h.iter().map(|v| v.max(0.0)).collect();
    (0..IN)
        .map(|i| {
            (0..HID)
                .map(|j| {
                    let zp: f64 = (0..IN)
                        .map(|m| x[m].max(0.0) * a[j * IN + m].max(0.0))
                        .sum();
                    x[i].max(0.0) * a[j * IN + i].max(0.0) * r_z[j] / stab(zp, 1e-6)
                })
                .sum::<f64>()
        })
        .collect()
}

fn composite(keep_bias: bool, eps: f64) -> Composite {
    Composite::new(ActRule::Pass)
        .with(
            Selector::name("encoder.*").and_kind(LayerKind::Linear),
            ZPlusNoBias { keep_bias },
        )
        .with(
            Selector::name("encoder.*").and_kind(LayerKind::Activation),
            PositiveOnly,
        )
        .with(Selector::name("h?ad"), LayerRule::Epsilon(eps))
}

#[test]
fn own_rules_selected_by_name_match_the_dense_reference() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let m = model(&dev)?;
    let x: Vec<f64> = (0..IN)
        .map(|i| 0.3 + 0.5 * ((i as f64) * 2.1).cos().abs())
        .collect();
    let xt = Tensor::from_vec(x.clone(), (1, IN), &dev)?;
    let eps = 0.05;
    for class in 0..OUT {
        let got: Vec<f64> = Lrp::new(composite(false, eps))
            .attribute(&m, &xt, &Target::Class(class))?
            .attributions
            .to_dtype(DType::F64)?
            .flatten_all()?
            .to_vec1()?;
        let want = reference(&x, class, eps);
        for (g, w) in got.iter().zip(&want) {
            assert!(
                (g - w).abs() < 1e-12 * (1.0 + w.abs()),
                "class {class}: {got:?} vs {want:?}"
            );
        }
        // The mutated rule (bias kept) is caught: its relevance differs from the reference.
        let mutated: Vec<f64> = Lrp::new(composite(true, eps))
            .attribute(&m, &xt, &Target::Class(class))?
            .attributions
            .to_dtype(DType::F64)?
            .flatten_all()?
            .to_vec1()?;
        let d: f64 = mutated.iter().zip(&want).map(|(a, b)| (a - b).abs()).sum();
        assert!(
            d > 1e-6,
            "class {class}: the mutated rule gave the reference's relevance"
        );
    }
    Ok(())
}

/// A rule on an op it has no backward for is an error naming both, not a silent gradient.
#[test]
fn a_rule_on_the_wrong_op_is_an_error() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let m = model(&dev)?;
    let x = Tensor::ones((1, IN), DType::F64, &dev)?;
    let c = Composite::new(ActRule::Pass).with(Selector::name("head"), PositiveOnly);
    let e = Lrp::new(c)
        .attribute(&m, &x, &Target::Class(0))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("positive relevance only") && e.contains("Linear"),
        "{e}"
    );
    Ok(())
}

/// `Selector::last` (the layer that gives the output, known from one forward) and a name
/// select the same layer here, so they give the same relevance; `first` is the encoder's.
#[test]
fn first_and_last_select_by_position() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let m = model(&dev)?;
    let x = Tensor::from_vec(
        (0..IN).map(|i| 0.2 + i as f64 * 0.1).collect(),
        (1, IN),
        &dev,
    )?;
    let by_name = composite(false, 0.05);
    let by_position = Composite::new(ActRule::Pass)
        .with(Selector::first(), ZPlusNoBias { keep_bias: false })
        .with(
            Selector::name("encoder.*").and_kind(LayerKind::Activation),
            PositiveOnly,
        )
        .with(Selector::last(), LayerRule::Epsilon(0.05));
    let a = Lrp::new(by_name)
        .attribute(&m, &x, &Target::Class(1))?
        .attributions;
    let b = Lrp::new(by_position)
        .attribute(&m, &x, &Target::Class(1))?
        .attributions;
    let d = (a - &b)?.abs()?.max_all()?.to_scalar::<f64>()?;
    assert!(d < 1e-12, "by name and by position differ by {d}");
    // `last` is not `first`: with ε on the first layer instead, the result changes.
    let swapped = Composite::new(ActRule::Pass)
        .with(Selector::last(), ZPlusNoBias { keep_bias: false })
        .with(
            Selector::name("encoder.*").and_kind(LayerKind::Activation),
            PositiveOnly,
        )
        .with(Selector::first(), LayerRule::Epsilon(0.05));
    let c = Lrp::new(swapped)
        .attribute(&m, &x, &Target::Class(1))?
        .attributions;
    assert!((c - b)?.abs()?.max_all()?.to_scalar::<f64>()? > 1e-6);
    Ok(())
}

/// Names survive canonizing, and a name alone selects linear / conv layers only.
#[test]
fn names_survive_folding_and_select_layers() -> anyhow::Result<()> {
    use candle_explain_core::canonize::fold_linear_batch_norm;
    use candle_explain_core::nn::BatchNorm;
    let dev = Device::Cpu;
    let lin = Linear::new(Tensor::ones((2, 3), DType::F64, &dev)?, None).with_name("encoder.0");
    let ones = Tensor::ones(2, DType::F64, &dev)?;
    let bn = BatchNorm {
        weight: ones.clone(),
        bias: ones.zeros_like()?,
        running_mean: ones.zeros_like()?,
        running_var: ones,
        eps: 1e-5,
    };
    assert_eq!(
        fold_linear_batch_norm(&lin, &bn)?.name.as_deref(),
        Some("encoder.0")
    );
    let c = Composite::new(ActRule::Pass).with(Selector::name("encoder.*"), LayerRule::ZPlus);
    assert_eq!(
        c.rule_named(LayerKind::Linear, 0, "encoder.0"),
        LayerRule::ZPlus
    );
    Ok(())
}
