//! LRP layer rules and composites.

mod common;
use candle_core::{DType, Device, Tensor, Var};
use candle_explain_core::ops::conv::ConvGeometry;
use candle_explain_core::prelude::*;
use candle_explain_core::{test_device, Error};
use common::*;

/// One affine layer as a dense matrix `M (n_out, n_in)` plus bias per output, built by applying
/// Candle's own conv / matmul to the basis vectors (independent of the rule code).
struct Dense {
    m: Vec<Vec<f64>>,
    b: Vec<f64>,
}

fn dense(
    apply: &dyn Fn(&Tensor) -> Tensor,
    in_shape: &[usize],
    bias_per_out: &dyn Fn(usize) -> f64,
) -> Dense {
    let n_in: usize = in_shape.iter().product();
    let mut shape = vec![n_in];
    shape.extend_from_slice(in_shape);
    let eye = Tensor::eye(n_in, DType::F64, &Device::Cpu)
        .unwrap()
        .reshape(shape)
        .unwrap();
    let cols: Vec<Vec<f64>> = apply(&eye).flatten_from(1).unwrap().to_vec2().unwrap();
    let n_out = cols[0].len();
    let m = (0..n_out)
        .map(|j| (0..n_in).map(|i| cols[i][j]).collect())
        .collect();
    Dense {
        m,
        b: (0..n_out).map(bias_per_out).collect(),
    }
}

fn stab(z: f64, e: f64) -> f64 {
    z + if z >= 0.0 { e } else { -e }
}

/// The rules written out over the dense matrix, one output j and input i at a time.
fn dense_rule(rule: LayerRule, d: &Dense, x: &[f64], r: &[f64]) -> Vec<f64> {
    let (n_out, n_in) = (d.m.len(), x.len());
    let p = |v: f64| v.max(0.0);
    let n = |v: f64| v.min(0.0);
    let mut out = vec![0.0; n_in];
    // A term: (sign, input_i, weight_ji, bias_j).
    type T<'a> = (
        f64,
        &'a dyn Fn(usize) -> f64,
        &'a dyn Fn(usize, usize) -> f64,
        &'a dyn Fn(usize) -> f64,
    );
    let apply =
        |coef: f64, terms: &[T], mask: &dyn Fn(usize) -> f64, eps: f64, out: &mut Vec<f64>| {
            for j in 0..n_out {
                let z: f64 = terms
                    .iter()
                    .map(|(s, xin, w, b)| {
                        s * ((0..n_in).map(|i| xin(i) * w(j, i)).sum::<f64>() + b(j))
                    })
                    .sum();
                let sj = mask(j) * r[j] / stab(z, eps);
                for i in 0..n_in {
                    out[i] += coef
                        * terms
                            .iter()
                            .map(|(s, xin, w, _)| s * xin(i) * w(j, i))
                            .sum::<f64>()
                        * sj;
                }
            }
        };
    let (xv, m, b) = (
        |i: usize| x[i],
        |j: usize, i: usize| d.m[j][i],
        |j: usize| d.b[j],
    );
    let (xp, xn) = (|i: usize| p(x[i]), |i: usize| n(x[i]));
    let (wp, wn) = (
        |j: usize, i: usize| p(d.m[j][i]),
        |j: usize, i: usize| n(d.m[j][i]),
    );
    let (bp, bn, b0) = (|j: usize| p(d.b[j]), |j: usize| n(d.b[j]), |_: usize| 0.0);
    let all = |_: usize| 1.0;
    match rule {
        LayerRule::Epsilon(e) => apply(1.0, &[(1.0, &xv, &m, &b)], &all, e, &mut out),
        LayerRule::ZPlus => apply(
            1.0,
            &[(1.0, &xp, &wp, &bp), (1.0, &xn, &wn, &b0)],
            &all,
            1e-6,
            &mut out,
        ),
        LayerRule::AlphaBeta { alpha, beta } => {
            apply(
                alpha,
                &[(1.0, &xp, &wp, &bp), (1.0, &xn, &wn, &b0)],
                &all,
                1e-6,
                &mut out,
            );
            apply(
                -beta,
                &[(1.0, &xp, &wn, &bn), (1.0, &xn, &wp, &b0)],
                &all,
                1e-6,
                &mut out,
            );
        }
        LayerRule::Gamma(g) => {
            let z: Vec<f64> = (0..n_out)
                .map(|j| (0..n_in).map(|i| x[i] * d.m[j][i]).sum::<f64>() + d.b[j])
                .collect();
            let (wu, wd) = (
                |j: usize, i: usize| d.m[j][i] + g * p(d.m[j][i]),
                |j: usize, i: usize| d.m[j][i] + g * n(d.m[j][i]),
            );
            let (bu, bd) = (
                |j: usize| d.b[j] + g * p(d.b[j]),
                |j: usize| d.b[j] + g * n(d.b[j]),
            );
            let (up, dn) = (
                |j: usize| (z[j] > 0.0) as u8 as f64,
                |j: usize| (z[j] < 0.0) as u8 as f64,
            );
            apply(
                1.0,
                &[(1.0, &xp, &wu, &bu), (1.0, &xn, &wd, &b0)],
                &up,
                1e-6,
                &mut out,
            );
            apply(
                1.0,
                &[(1.0, &xp, &wd, &bd), (1.0, &xn, &wu, &b0)],
                &dn,
                1e-6,
                &mut out,
            );
        }
        LayerRule::Flat => {
            // Connectivity: 1 where the layer connects j and i (a zero weight still connects).
            let conn = |j: usize, i: usize| (d.m[j][i] != 0.0) as u8 as f64;
            apply(1.0, &[(1.0, &all, &conn, &b0)], &all, 1e-6, &mut out)
        }
        LayerRule::WSquare => {
            let (w2, b2) = (
                |j: usize, i: usize| d.m[j][i] * d.m[j][i],
                |j: usize| d.b[j] * d.b[j],
            );
            apply(1.0, &[(1.0, &all, &w2, &b2)], &all, 1e-6, &mut out)
        }
        LayerRule::ZBox { low, high } => {
            let (l, h) = (|_: usize| low, |_: usize| high);
            apply(
                1.0,
                &[
                    (1.0, &xv, &m, &b),
                    (-1.0, &l, &wp, &bp),
                    (-1.0, &h, &wn, &bn),
                ],
                &all,
                1e-6,
                &mut out,
            )
        }
        LayerRule::Gradient => unreachable!(),
    }
    out
}

const RULES: [LayerRule; 9] = [
    LayerRule::Epsilon(1e-6),
    LayerRule::Epsilon(0.25),
    LayerRule::ZPlus,
    LayerRule::AlphaBeta {
        alpha: 2.0,
        beta: 1.0,
    },
    LayerRule::AlphaBeta {
        alpha: 1.0,
        beta: 0.0,
    },
    LayerRule::Gamma(0.25),
    LayerRule::Flat,
    LayerRule::WSquare,
    LayerRule::ZBox {
        low: -1.5,
        high: 2.0,
    },
];

/// Runs one layer under one rule through the context: relevance `r` in, relevance out.
fn through_ctx(
    rule: LayerRule,
    x: &Tensor,
    r: &Tensor,
    layer: &dyn Fn(&Tensor, &RuleCtx) -> candle_explain_core::Result<Tensor>,
) -> anyhow::Result<Tensor> {
    let ctx = RuleCtx::composite(Composite::new(ActRule::Pass).with(Selector::any(), rule))?;
    let v = Var::from_tensor(x)?;
    let y = layer(v.as_tensor(), &ctx)?;
    Ok((&y * r)?
        .sum_all()?
        .backward()?
        .get(v.as_tensor())
        .unwrap()
        .clone())
}

#[test]
fn every_rule_matches_its_dense_matrix_reference() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let f64t = |t: Tensor| t.to_dtype(DType::F64).unwrap();
    // Linear layers of several shapes.
    for (k, (i, o)) in [(5, 4), (7, 3), (3, 8)].into_iter().enumerate() {
        let w = f64t(uniform(&[o, i], -1.0, 1.0, 10 + k as u64, &dev));
        let b = f64t(uniform(&[o], -0.5, 0.5, 20 + k as u64, &dev));
        let x = f64t(uniform(&[2, i], -1.0, 1.5, 30 + k as u64, &dev));
        let r = f64t(uniform(&[2, o], -1.0, 1.0, 40 + k as u64, &dev));
        let bv: Vec<f64> = b.to_vec1()?;
        let d = dense(&|e| e.matmul(&w.t().unwrap()).unwrap(), &[i], &|j| bv[j]);
        for rule in RULES {
            let got: Vec<Vec<f64>> =
                through_ctx(rule, &x, &r, &|x, c| c.linear(x, &w, Some(&b)))?.to_vec2()?;
            let (xs, rs): (Vec<Vec<f64>>, Vec<Vec<f64>>) = (x.to_vec2()?, r.to_vec2()?);
            for row in 0..2 {
                let expect = dense_rule(rule, &d, &xs[row], &rs[row]);
                for (a, e) in got[row].iter().zip(&expect) {
                    assert!(
                        (a - e).abs() < 1e-5 * e.abs().max(1.0),
                        "linear {i}→{o} {rule:?}: {a} vs {e}"
                    );
                }
            }
        }
    }
    // Convolutions with padding, stride, dilation.
    let geoms = [
        (
            3,
            4,
            3,
            (7, 7),
            ConvGeometry {
                padding: 1,
                stride: 2,
                ..Default::default()
            },
        ),
        (2, 3, 3, (6, 5), ConvGeometry::default()),
        (
            2,
            2,
            2,
            (6, 6),
            ConvGeometry {
                padding: 1,
                dilation: 2,
                ..Default::default()
            },
        ),
    ];
    for (k, (cin, cout, ks, (h, wd), g)) in geoms.into_iter().enumerate() {
        let w = f64t(uniform(
            &[cout, cin, ks, ks],
            -1.0,
            1.0,
            50 + k as u64,
            &dev,
        ));
        let b = f64t(uniform(&[cout], -0.5, 0.5, 60 + k as u64, &dev));
        let x_mixed = f64t(uniform(&[1, cin, h, wd], -1.0, 1.5, 70 + k as u64, &dev));
        let y_shape = x_mixed
            .conv2d(&w, g.padding, g.stride, g.dilation, 1)?
            .dims()
            .to_vec();
        let r = f64t(uniform(&y_shape, -1.0, 1.0, 80 + k as u64, &dev));
        let per_ch = y_shape[2] * y_shape[3];
        let bv: Vec<f64> = b.to_vec1()?;
        let d = dense(
            &|e| e.conv2d(&w, g.padding, g.stride, g.dilation, 1).unwrap(),
            &[cin, h, wd],
            &|j| bv[j / per_ch],
        );
        // Flat needs connectivity, not weights: rebuild M with an all-ones kernel.
        let d_conn = dense(
            &|e| {
                e.conv2d(&w.ones_like().unwrap(), g.padding, g.stride, g.dilation, 1)
                    .unwrap()
            },
            &[cin, h, wd],
            &|_| 0.0,
        );
        // A non-negative input (after a ReLU) takes z⁺'s stacked forward (W and W⁺ in one
        // pass); a mixed-sign one the general path.
        for x in [&x_mixed, &x_mixed.relu()?] {
            for rule in RULES {
                let got: Vec<f64> = through_ctx(rule, x, &r, &|x, c| c.conv2d(x, &w, Some(&b), g))?
                    .flatten_all()?
                    .to_vec1()?;
                let dm = if rule == LayerRule::Flat { &d_conn } else { &d };
                let expect = dense_rule(
                    rule,
                    dm,
                    &x.flatten_all()?.to_vec1()?,
                    &r.flatten_all()?.to_vec1()?,
                );
                for (a, e) in got.iter().zip(&expect) {
                    assert!(
                        (a - e).abs() < 1e-5 * e.abs().max(1.0),
                        "conv case {k} {rule:?}: {a} vs {e}"
                    );
                }
            }
        }
    }
    Ok(())
}

/// On bias-free ReLU networks relevance is conserved layer by layer: Σ R_in = S_c(x) for
/// ε → 0, z⁺ and the presets built from them, and for α2β1 and γ.
fn conservation_without_biases(dev: &Device) -> anyhow::Result<()> {
    let m = cnn(Activation::Relu, false, 4, dev);
    let x = uniform(&[3, 1, 12, 12], 0.0, 1.0, 5, dev);
    for c in [
        Composite::new(ActRule::Pass).with(Selector::any(), LayerRule::Epsilon(1e-9)),
        Composite::epsilon_plus(),
        Composite::epsilon_plus_flat(),
        Composite::epsilon_alpha2_beta1(),
        Composite::epsilon_gamma_box(0.0, 1.0),
        Composite::new(ActRule::Pass).with(Selector::any(), LayerRule::ZPlus),
    ] {
        let r = Lrp::new(c.clone()).attribute(&m, &x, &Target::Class(1))?;
        let scale = max_abs(&r.output).max(1e-3);
        let d = max_abs(r.delta.as_ref().unwrap());
        assert!(
            d < 1e-4 * scale.max(1.0),
            "{c:?}: conservation error {d} (output scale {scale})"
        );
    }
    // With biases it is not conserved (so the check above can fail).
    let mb = cnn(Activation::Relu, true, 4, dev);
    let r = Lrp::new(Composite::epsilon_plus()).attribute(&mb, &x, &Target::Class(1))?;
    assert!(max_abs(r.delta.as_ref().unwrap()) > 1e-3);
    Ok(())
}
test_device!(
    conservation_without_biases,
    conserve_cpu,
    conserve_cuda,
    conserve_metal
);

/// ε everywhere (ε → 0) is Ancona's ε-LRP scaled by the output relevance: with one-hot
/// seeds the two formulations agree up to that factor (here the relevance at the output is
/// the logit, as in Zennit with `attr_output = one_hot · output`).
fn epsilon_composite_equals_ancona_epsilon_lrp(dev: &Device) -> anyhow::Result<()> {
    let m = cnn(Activation::Relu, true, 6, dev);
    let x = uniform(&[2, 1, 12, 12], 0.0, 1.0, 7, dev);
    let t = Target::Class(2);
    let z = Lrp::new(Composite::new(ActRule::Pass).with(Selector::any(), LayerRule::Epsilon(1e-9)))
        .attribute(&m, &x, &t)?;
    let a = EpsilonLrp::new(1e-9).attribute(&m, &x, &t)?;
    assert_close(
        &z.attributions,
        &a.attributions,
        1e-4,
        "ε composite vs ε-LRP",
    );
    // Guided backprop as a composite: the guided gradient times the output relevance.
    let gb = Lrp::new(Composite::guided_backprop()).attribute(&m, &x, &t)?;
    let plain = GuidedBackprop::default().attribute(&m, &x, &t)?;
    assert_close(
        &gb.attributions,
        &plain
            .attributions
            .broadcast_mul(&plain.output.reshape((2, 1, 1, 1))?)?,
        1e-4,
        "guided composite",
    );
    Ok(())
}
test_device!(
    epsilon_composite_equals_ancona_epsilon_lrp,
    eps_comp_cpu,
    eps_comp_cuda,
    eps_comp_metal
);

#[test]
fn bad_rules_are_clear_errors() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let m = cnn(Activation::Relu, true, 1, &dev);
    let x = uniform(&[1, 1, 12, 12], 0.0, 1.0, 2, &dev);
    for rule in [
        LayerRule::AlphaBeta {
            alpha: 2.0,
            beta: 0.5,
        },
        LayerRule::AlphaBeta {
            alpha: -1.0,
            beta: -2.0,
        },
        LayerRule::ZBox {
            low: 1.0,
            high: 0.0,
        },
        LayerRule::Epsilon(-1.0),
        LayerRule::Gamma(f64::NAN),
    ] {
        let c = Composite::new(ActRule::Pass).with(Selector::any(), rule);
        let e = Lrp::new(c).attribute(&m, &x, &Target::Class(0));
        assert!(
            matches!(e, Err(Error::InvalidParameter { .. })),
            "{rule:?}: {e:?}"
        );
    }
    Ok(())
}
