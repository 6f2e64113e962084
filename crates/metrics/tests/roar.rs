//! ROAR / KAR on data where the informative features are known.

mod common;
use candle_core::{DType, Tensor};
use candle_explain_core::nn::{Linear, Sequential};
use candle_explain_core::{Activation, Explainable};
use candle_explain_metrics::{Error, Roar};
use candle_explain_models::train::TrainConfig;
use candle_nn::VarBuilder;
use common::uniform;

/// y = [x0 + x1 + x2 + x3 > 0]: only the first 4 of 20 features matter.
fn data(n: usize, seed: u64) -> anyhow::Result<(Tensor, Tensor)> {
    let x = uniform(&[n, 20], -1.0, 1.0, seed);
    let y = x.narrow(1, 0, 4)?.sum(1)?.gt(0.0)?.to_dtype(DType::U32)?;
    Ok((x, y))
}

fn build(vb: VarBuilder) -> candle_explain_core::Result<Box<dyn Explainable>> {
    Ok(Box::new(
        Sequential::new()
            .push(Linear::load(vb.pp("fc1"), 20, 16)?)
            .push(Activation::Relu)
            .push(Linear::load(vb.pp("fc2"), 16, 2)?),
    ))
}

#[test]
fn an_oracle_ranking_beats_a_random_one() -> anyhow::Result<()> {
    let (xtr, ytr) = data(2000, 1)?;
    let (xte, yte) = data(500, 2)?;
    // The oracle marks the informative features; the control ranks at random.
    let mut o = vec![0f32; 20];
    o[..4].fill(1.0);
    let oracle = |n: usize| {
        Tensor::new(o.as_slice(), xtr.device())
            .unwrap()
            .unsqueeze(0)
            .unwrap()
            .repeat((n, 1))
            .unwrap()
    };
    let (otr, ote) = (oracle(2000), oracle(500));
    let (rtr, rte) = (
        uniform(&[2000, 20], 0.0, 1.0, 3),
        uniform(&[500, 20], 0.0, 1.0, 4),
    );
    let cfg = TrainConfig {
        epochs: 15,
        batch_size: 64,
        learning_rate: 1e-2,
        ..Default::default()
    };
    let roar = Roar {
        fractions: vec![0.2],
        repeats: 2,
        keep: false,
        train: cfg.clone(),
    };
    let o_roar = roar
        .evaluate(&build, (&xtr, &ytr), &otr, (&xte, &yte), &ote)?
        .mean()[0];
    let r_roar = roar
        .evaluate(&build, (&xtr, &ytr), &rtr, (&xte, &yte), &rte)?
        .mean()[0];
    assert!(
        o_roar < 0.65,
        "removing the informative features leaves chance: {o_roar}"
    );
    assert!(
        r_roar > 0.8,
        "removing 20 % at random keeps most of the signal: {r_roar}"
    );
    let kar = Roar { keep: true, ..roar };
    let o_kar = kar
        .evaluate(&build, (&xtr, &ytr), &otr, (&xte, &yte), &ote)?
        .mean()[0];
    let r_kar = kar
        .evaluate(&build, (&xtr, &ytr), &rtr, (&xte, &yte), &rte)?
        .mean()[0];
    assert!(
        o_kar > 0.9 && o_kar > r_kar + 0.1,
        "keeping the informative features: {o_kar} vs random {r_kar}"
    );
    Ok(())
}

#[test]
fn bad_input() -> anyhow::Result<()> {
    let (x, y) = data(10, 1)?;
    let a = x.clone();
    for r in [
        Roar {
            fractions: vec![1.0],
            ..Default::default()
        },
        Roar {
            fractions: vec![],
            ..Default::default()
        },
        Roar {
            repeats: 0,
            ..Default::default()
        },
    ] {
        assert!(matches!(
            r.evaluate(&build, (&x, &y), &a, (&x, &y), &a),
            Err(Error::InvalidParameter { .. })
        ));
    }
    assert!(matches!(
        Roar::default().evaluate(&build, (&x, &y), &a.narrow(1, 0, 5)?, (&x, &y), &a),
        Err(Error::InvalidParameter { .. })
    ));
    Ok(())
}

/// One retraining on its own (as a dataset job's task runs it) is exactly that point of the
/// whole evaluation.
#[test]
fn one_retraining_is_the_evaluations_point() -> anyhow::Result<()> {
    let (xtr, ytr) = data(300, 5)?;
    let (xte, yte) = data(100, 6)?;
    let (atr, ate) = (
        uniform(&[300, 20], 0.0, 1.0, 7),
        uniform(&[100, 20], 0.0, 1.0, 8),
    );
    let roar = Roar {
        fractions: vec![0.3, 0.6],
        repeats: 2,
        keep: true,
        train: TrainConfig {
            epochs: 2,
            ..Default::default()
        },
    };
    let all = roar.evaluate(&build, (&xtr, &ytr), &atr, (&xte, &yte), &ate)?;
    for (i, &t) in roar.fractions.iter().enumerate() {
        for r in 0..2 {
            let one = roar.retrain_once(&build, (&xtr, &ytr), &atr, (&xte, &yte), &ate, t, r)?;
            assert_eq!(one.to_bits(), all.accuracy[i][r].to_bits(), "t {t} repeat {r}");
        }
    }
    assert!(roar
        .retrain_once(&build, (&xtr, &ytr), &atr, (&xte, &yte), &ate, 1.0, 0)
        .is_err());
    Ok(())
}
