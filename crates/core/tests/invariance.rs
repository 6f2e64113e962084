//! Batch invariance (a batch gives what its examples give one by one), chunk invariance
//! (the memory budget never changes results) and seeded determinism.

mod common;
use candle_core::{Device, Tensor};
use candle_explain_core::prelude::*;
use candle_explain_core::test_device;
use common::*;

fn methods(b: Batching) -> Vec<(&'static str, Box<dyn Attributor>)> {
    let ids: Vec<u32> = (0..144)
        .map(|i| ((i / 12) / 6 * 2 + (i % 12) / 6) as u32)
        .collect();
    let mask = Tensor::from_vec(ids, (1, 12, 12), &Device::Cpu).unwrap();
    vec![
        (
            "saliency",
            Box::new(Saliency {
                abs: false,
                batching: b.clone(),
            }),
        ),
        (
            "ig",
            Box::new(
                IntegratedGradients::new(9)
                    .with_baseline(Baseline::Constant(0.1))
                    .with_batching(b.clone()),
            ),
        ),
        (
            "deeplift",
            Box::new(DeepLift {
                batching: b.clone(),
                ..Default::default()
            }),
        ),
        (
            "lrp",
            Box::new(EpsilonLrp {
                epsilon: 0.01,
                batching: b.clone(),
            }),
        ),
        (
            "occlusion",
            Box::new(Occlusion {
                batching: b.clone(),
                ..Occlusion::new(&[1, 3, 3], &[1, 2, 2])
            }),
        ),
        (
            "ablation",
            Box::new(FeatureAblation {
                batching: b.clone(),
                ..FeatureAblation::new(mask.clone())
            }),
        ),
        (
            "shapley",
            Box::new(ShapleyValues {
                batching: b.clone(),
                ..ShapleyValues::exact(mask)
            }),
        ),
    ]
}

fn batch_invariance(dev: &Device) -> anyhow::Result<()> {
    let m = cnn(Activation::Relu, true, 1, dev);
    let x = uniform(&[4, 1, 12, 12], 0.0, 1.0, 2, dev);
    let classes = vec![0, 2, 1, 2];
    for (name, method) in methods(Batching::default()) {
        let all = method.attribute(&m, &x, &Target::PerExample(classes.clone()))?;
        for b in 0..4 {
            let one = method.attribute(&m, &x.narrow(0, b, 1)?, &Target::Class(classes[b]))?;
            assert_close(
                &one.attributions,
                &all.attributions.narrow(0, b, 1)?,
                1e-5,
                &format!("{name}: example {b}"),
            );
        }
    }
    Ok(())
}
test_device!(batch_invariance, batch_cpu, batch_cuda, batch_metal);

fn chunk_invariance(dev: &Device) -> anyhow::Result<()> {
    let m = cnn(Activation::Relu, true, 3, dev);
    let x = uniform(&[3, 1, 12, 12], 0.0, 1.0, 4, dev);
    let t = Target::Class(1);
    let reference: Vec<Tensor> = methods(Batching::default())
        .iter()
        .map(|(_, a)| a.attribute(&m, &x, &t).unwrap().attributions)
        .collect();
    for b in [
        Batching::with_max_rows(1),
        Batching::with_max_rows(5),
        Batching::with_budget(200_000),
    ] {
        for ((name, method), r) in methods(b.clone()).iter().zip(&reference) {
            assert_close(
                &method.attribute(&m, &x, &t)?.attributions,
                r,
                1e-5,
                &format!("{name} with {b:?}"),
            );
        }
    }
    // Seeded methods too: the randomness is drawn per row, not per chunk.
    let bl = uniform(&[4, 1, 12, 12], 0.0, 1.0, 5, dev);
    let gs = |b: Batching| GradientShap {
        batching: b,
        ..GradientShap::new(bl.clone(), 6, 0.1, 7)
    };
    let a = gs(Batching::default()).attribute(&m, &x, &t)?;
    let b = gs(Batching::with_max_rows(4)).attribute(&m, &x, &t)?;
    assert_close(
        &a.attributions,
        &b.attributions,
        1e-5,
        "gradient shap chunked",
    );
    Ok(())
}
test_device!(chunk_invariance, chunk_cpu, chunk_cuda, chunk_metal);

/// The budget really chunks: a tiny budget means one row per chunk.
#[test]
fn budget_sets_rows_per_chunk() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let m = cnn(Activation::Relu, true, 3, &dev);
    let x = uniform(&[1, 1, 12, 12], 0.0, 1.0, 4, &dev);
    assert_eq!(Batching::with_budget(1).rows_per_chunk(&m, &x, true)?, 1);
    let big = Batching::with_budget(1 << 30).rows_per_chunk(&m, &x, true)?;
    let half = Batching::with_budget(1 << 29).rows_per_chunk(&m, &x, true)?;
    assert!(
        big > 1000 && (big / 2).abs_diff(half) <= 1,
        "{big} vs {half}"
    );
    assert_eq!(
        Batching {
            max_rows: Some(7),
            ..Batching::default()
        }
        .rows_per_chunk(&m, &x, true)?,
        7
    );
    Ok(())
}

fn seeded_methods_are_deterministic(dev: &Device) -> anyhow::Result<()> {
    let m = cnn(Activation::Relu, true, 3, dev);
    let x = uniform(&[2, 1, 12, 12], 0.0, 1.0, 4, dev);
    let t = Target::Class(0);
    let bl = uniform(&[3, 1, 12, 12], 0.0, 1.0, 5, dev);
    let run = |seed: u64| -> anyhow::Result<Vec<Tensor>> {
        Ok(vec![
            NoiseTunnel::smooth_grad(Saliency::signed(), 5, seed)
                .attribute(&m, &x, &t)?
                .attributions,
            NoiseTunnel::new(
                IntegratedGradients::new(4),
                NoiseKind::VarGrad,
                3,
                0.2,
                seed,
            )
            .attribute(&m, &x, &t)?
            .attributions,
            GradientShap::new(bl.clone(), 4, 0.1, seed)
                .attribute(&m, &x, &t)?
                .attributions,
            RandomAttribution { seed }
                .attribute(&m, &x, &t)?
                .attributions,
            IntegratedGradients::new(4)
                .with_baseline(Baseline::UniformNoise {
                    low: 0.0,
                    high: 1.0,
                    seed,
                })
                .attribute(&m, &x, &t)?
                .attributions,
        ])
    };
    let (a, b, c) = (run(1)?, run(1)?, run(2)?);
    for i in 0..a.len() {
        assert_close(&a[i], &b[i], 0.0, &format!("method {i}: same seed"));
        assert!(
            max_abs(&(&a[i] - &c[i])?) > 1e-6,
            "method {i}: a different seed must change the result"
        );
    }
    Ok(())
}
test_device!(
    seeded_methods_are_deterministic,
    seeded_cpu,
    seeded_cuda,
    seeded_metal
);
