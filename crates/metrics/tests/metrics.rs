//! Sensitivity-n and pixel flipping on models where the answers are known.

mod common;
use candle_core::{DType, Device, Tensor};
use candle_explain_core::nn::{Flatten, Linear, Sequential};
use candle_explain_core::prelude::*;
use candle_explain_metrics::perturb::{hash_keys, smallest_k_masks};
use candle_explain_metrics::{Error, FlipOrder, PixelFlipping, SensitivityN};
use common::{cnn, uniform};

fn linear() -> (Sequential, Tensor) {
    let w = uniform(&[3, 36], -1.0, 1.0, 1);
    (
        Sequential::new()
            .push(Flatten)
            .push(Linear::new(w.clone(), Some(uniform(&[3], -1.0, 1.0, 2)))),
        w,
    )
}

/// On S = w·x + b with a zero baseline, removing S drops the score by Σ_{i∈S} w_i x_i, which
/// is exactly Gradient × Input summed over S: the correlation is 1 at every n.
#[test]
fn gradient_times_input_is_sensitivity_n_on_linear_models() -> anyhow::Result<()> {
    let (m, _) = linear();
    let x = uniform(&[3, 1, 6, 6], -1.0, 1.0, 6);
    let t = Target::PerExample(vec![0, 1, 2]);
    let a = InputXGradient::default()
        .attribute(&m, &x, &t)?
        .attributions;
    let ns = SensitivityN::log_grid(36, 6, 0.8)?;
    let r = SensitivityN::new(ns.clone(), 30, 7).evaluate(&m, &x, &a, &t)?;
    for (n, c) in r.n.iter().zip(&r.correlation) {
        assert!((c - 1.0).abs() < 1e-5, "n = {n}: correlation {c}");
    }
    // Random attributions do not correlate.
    let rnd = RandomAttribution { seed: 3 }
        .attribute(&m, &x, &t)?
        .attributions;
    let r = SensitivityN::new(ns, 30, 7).evaluate(&m, &x, &rnd, &t)?;
    let mean = r.correlation.iter().sum::<f64>() / r.correlation.len() as f64;
    assert!(
        mean.abs() < 0.5,
        "random attributions: mean correlation {mean}"
    );
    Ok(())
}

/// Occlusion-1 is the drop of removing one feature: correlation 1 at n = 1 by construction.
#[test]
fn occlusion_one_is_exact_at_n_one() -> anyhow::Result<()> {
    let m = cnn();
    let x = uniform(&[2, 1, 6, 6], 0.0, 1.0, 8);
    let t = Target::Class(1);
    let a = Occlusion::single(3).attribute(&m, &x, &t)?.attributions;
    let r = SensitivityN::new(vec![1, 4], 40, 2).evaluate(&m, &x, &a, &t)?;
    assert!((r.correlation[0] - 1.0).abs() < 1e-5, "{:?}", r.correlation);
    assert!(
        r.correlation[1] < 1.0 - 1e-4,
        "a nonlinear model breaks it beyond n = 1"
    );
    Ok(())
}

/// Over feature groups: ablating one group is exactly its FeatureAblation value, so that
/// method's grouped Sensitivity-1 is 1 (per-example masks too), while per pixel it is not;
/// one group per element gives the element-wise result bit for bit.
#[test]
fn sensitivity_n_over_feature_groups() -> anyhow::Result<()> {
    let m = cnn();
    let x = uniform(&[2, 1, 6, 6], 0.0, 1.0, 8);
    let t = Target::Class(1);
    let dev = Device::Cpu;
    // Example 0: 2 × 2 blocks; example 1: rows of the image (6 groups of 6).
    let blocks: Vec<u32> = (0..36).map(|k| ((k / 6 / 2) * 3 + (k % 6) / 2) as u32).collect();
    let rows: Vec<u32> = (0..36).map(|k| (k / 6) as u32).collect();
    let mask = Tensor::from_vec([blocks, rows].concat(), (2, 1, 6, 6), &dev)?;
    let a = FeatureAblation::new(mask.clone()).attribute(&m, &x, &t)?.attributions;
    let grouped = SensitivityN { feature_mask: Some(mask), ..SensitivityN::new(vec![1, 3], 40, 2) };
    let r = grouped.evaluate(&m, &x, &a, &t)?;
    for e in 0..2 {
        assert!((r.per_example[e][0] - 1.0).abs() < 1e-5, "example {e}: {:?}", r.per_example);
    }
    let per_pixel = SensitivityN::new(vec![1], 40, 2).evaluate(&m, &x, &a, &t)?;
    assert!(per_pixel.correlation[0] < 0.99, "per pixel: {:?}", per_pixel.correlation);
    let s = SensitivityN::new(vec![1, 4, 20], 12, 5);
    let own = Tensor::arange(0u32, 36, &dev)?.reshape((1, 6, 6))?;
    let a = Saliency::signed().attribute(&m, &x, &t)?.attributions;
    let r1 = s.evaluate(&m, &x, &a, &t)?;
    let r2 = SensitivityN { feature_mask: Some(own), ..s.clone() }.evaluate(&m, &x, &a, &t)?;
    assert_eq!(r1.per_example, r2.per_example);
    // More groups asked for than there are: an error that counts groups.
    let e = SensitivityN { feature_mask: Some(Tensor::zeros((1, 6, 6), DType::U32, &dev)?), ..s }
        .evaluate(&m, &x, &a, &t)
        .unwrap_err();
    assert!(e.to_string().contains("feature groups"), "{e}");
    Ok(())
}

#[test]
fn masks_hold_exactly_n_features_and_do_not_depend_on_chunks() -> anyhow::Result<()> {
    let keys = hash_keys(&(10..16), 50, 3, &Device::Cpu)?;
    let m = smallest_k_masks(&keys, &[1, 5, 20, 49, 50, 0])?;
    assert_eq!(m.sum(1)?.to_vec1::<f32>()?, vec![1., 5., 20., 49., 50., 0.]);
    // The same row gets the same keys whatever range it is computed in.
    let k2 = hash_keys(&(12..14), 50, 3, &Device::Cpu)?;
    assert_eq!(
        keys.narrow(0, 2, 2)?.to_vec2::<f64>()?,
        k2.to_vec2::<f64>()?
    );
    // Keys look uniform.
    let big: Vec<f64> = hash_keys(&(0..200), 100, 1, &Device::Cpu)?
        .flatten_all()?
        .to_vec1()?;
    let mean = big.iter().sum::<f64>() / big.len() as f64;
    assert!(
        (mean - 0.5).abs() < 0.01 && big.iter().all(|v| (0.0..1.0).contains(v)),
        "mean {mean}"
    );
    let (m, _) = linear();
    let x = uniform(&[2, 1, 6, 6], -1.0, 1.0, 9);
    let a = Saliency::signed()
        .attribute(&m, &x, &Target::Class(0))?
        .attributions;
    let s = SensitivityN::new(vec![3, 10], 12, 5);
    let r1 = s.evaluate(&m, &x, &a, &Target::Class(0))?;
    let r2 = SensitivityN {
        batching: Batching::with_max_rows(7),
        ..s
    }
    .evaluate(&m, &x, &a, &Target::Class(0))?;
    assert_eq!(r1.per_example, r2.per_example);
    Ok(())
}

/// Deletion on a linear model: after removing the top-k features (by attribution), the score
/// is S(x) minus their contributions; insertion adds them to S(0) = b.
#[test]
fn pixel_flipping_on_a_linear_model() -> anyhow::Result<()> {
    let (m, _) = linear();
    let x = uniform(&[1, 1, 6, 6], -1.0, 1.0, 10);
    let t = Target::Class(2);
    let a = InputXGradient::default()
        .attribute(&m, &x, &t)?
        .attributions;
    let mut contrib: Vec<f64> = a.flatten_all()?.to_dtype(DType::F64)?.to_vec1()?;
    contrib.sort_by(|p, q| q.partial_cmp(p).unwrap());
    let full = m.forward(&x)?.to_dtype(DType::F64)?.to_vec2::<f64>()?[0][2];
    let bias = full - contrib.iter().sum::<f64>();
    let steps = 6;
    let del = PixelFlipping::deletion(steps).evaluate(&m, &x, &a, &t)?;
    let ins = PixelFlipping::insertion(steps).evaluate(&m, &x, &a, &t)?;
    let mut aopc = 0.0;
    for k in 0..=steps {
        let top: f64 = contrib[..k * 6].iter().sum();
        assert!(
            (del.scores[0][k] - (full - top)).abs() < 1e-4,
            "deletion step {k}"
        );
        assert!(
            (ins.scores[0][k] - (bias + top)).abs() < 1e-4,
            "insertion step {k}"
        );
        aopc += top / (steps + 1) as f64;
    }
    assert!((del.aopc[0] - aopc).abs() < 1e-4);
    assert_eq!(del.fractions.first(), Some(&0.0));
    assert_eq!(del.fractions.last(), Some(&1.0));
    // MoRF falls faster than LeRF for a faithful map.
    let lerf = PixelFlipping {
        order: FlipOrder::LeastRelevantFirst,
        ..PixelFlipping::deletion(steps)
    }
    .evaluate(&m, &x, &a, &t)?;
    assert!(del.aopc[0] > lerf.aopc[0]);
    Ok(())
}

#[test]
fn bad_input() -> anyhow::Result<()> {
    let (m, _) = linear();
    let x = uniform(&[2, 1, 6, 6], -1.0, 1.0, 11);
    let a = x.clone();
    let t = Target::Class(0);
    fn invalid<T>(r: Result<T, Error>) -> bool {
        matches!(r, Err(Error::InvalidParameter { .. }))
    }
    assert!(invalid(
        SensitivityN::new(vec![37], 10, 0).evaluate(&m, &x, &a, &t)
    ));
    assert!(invalid(
        SensitivityN::new(vec![0], 10, 0).evaluate(&m, &x, &a, &t)
    ));
    assert!(invalid(
        SensitivityN::new(vec![], 10, 0).evaluate(&m, &x, &a, &t)
    ));
    assert!(invalid(
        SensitivityN::new(vec![3], 1, 0).evaluate(&m, &x, &a, &t)
    ));
    assert!(invalid(SensitivityN::new(vec![3], 10, 0).evaluate(
        &m,
        &x,
        &a.narrow(0, 0, 1)?,
        &t
    )));
    assert!(invalid(SensitivityN::log_grid(36, 5, 1.5)));
    assert!(invalid(SensitivityN::log_grid(36, 5, 0.0)));
    assert!(invalid(PixelFlipping::deletion(0).evaluate(&m, &x, &a, &t)));
    assert!(invalid(PixelFlipping::deletion(4).evaluate(
        &m,
        &x,
        &a,
        &Target::Classes(vec![0, 1])
    )));
    assert!(matches!(
        PixelFlipping::deletion(4).evaluate(&m, &x, &a, &Target::Class(5)),
        Err(Error::Explain(_))
    ));
    let nan = Tensor::full(f32::NAN, (2, 1, 6, 6), &Device::Cpu)?;
    assert!(matches!(
        PixelFlipping::deletion(4).evaluate(&m, &nan, &a, &t),
        Err(Error::Explain(_))
    ));
    Ok(())
}
