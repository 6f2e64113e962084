//! The library cases of the bad-input campaign (issue 15), table-driven where they can be:
//! non-finite results are errors that name the method and the example, counts that cannot
//! be served are rejected before anything is allocated, views are accepted, sampling methods
//! give an example the same result wherever it sits in the batch, and sparse group ids cost
//! one pass per group used.

mod common;
use candle_core::{DType, Device, Tensor};
use candle_explain_core::prelude::*;
use candle_explain_core::{Activation, Error, Explainable, RuleCtx};
use common::{assert_close, cnn, uniform};
use std::cell::Cell;

fn x4(b: usize, seed: u64) -> Tensor {
    uniform(&[b, 1, 12, 12], -1.0, 1.0, seed, &Device::Cpu)
}

/// Wraps a model: adds `nan_at` (a NaN logit for examples whose first value is above it) and
/// counts forward calls, failing after `fail_after` of them.
struct Wrapped<M> {
    inner: M,
    nan_above: Option<f64>,
    calls: Cell<usize>,
    fail_after: usize,
}

impl<M: Explainable> Wrapped<M> {
    fn new(inner: M) -> Self {
        Self {
            inner,
            nan_above: None,
            calls: Cell::new(0),
            fail_after: usize::MAX,
        }
    }
}

impl<M: Explainable> Explainable for Wrapped<M> {
    fn forward_with(&self, x: &Tensor, ctx: &RuleCtx) -> candle_explain_core::Result<Tensor> {
        self.calls.set(self.calls.get() + 1);
        if self.calls.get() > self.fail_after {
            return Err(Error::Unsupported("stopped by the test".into()));
        }
        let out = self.inner.forward_with(x, ctx)?;
        let Some(t) = self.nan_above else {
            return Ok(out);
        };
        // Rows whose first input value is above t get NaN in every logit.
        let first = x.flatten_from(1)?.narrow(1, 0, 1)?;
        let bad = first.gt(t)?.broadcast_as(out.shape())?;
        let nan = Tensor::full(f32::NAN, out.shape(), out.device())?.to_dtype(out.dtype())?;
        Ok(bad.where_cond(&nan, &out)?)
    }
    fn input_shape(&self) -> Option<Vec<usize>> {
        self.inner.input_shape()
    }
}

fn methods(dev: &Device) -> Vec<(&'static str, Box<dyn Attributor>)> {
    let mask = Tensor::arange(0u32, 144, dev)
        .unwrap()
        .reshape((1, 12, 12))
        .unwrap()
        .affine(1.0 / 36.0, 0.0)
        .unwrap()
        .floor()
        .unwrap();
    let bg = uniform(&[4, 1, 12, 12], -1.0, 1.0, 99, dev);
    vec![
        ("saliency", Box::new(Saliency::signed())),
        ("ig", Box::new(IntegratedGradients::new(8))),
        ("deeplift", Box::new(DeepLift::default())),
        ("lrp", Box::new(Lrp::new(Composite::epsilon_plus()))),
        (
            "smoothgrad",
            Box::new(NoiseTunnel::smooth_grad(Saliency::signed(), 6, 3)),
        ),
        (
            "vargrad",
            Box::new(NoiseTunnel::new(
                Saliency::signed(),
                NoiseKind::VarGrad,
                6,
                0.2,
                3,
            )),
        ),
        ("gradient_shap", Box::new(GradientShap::new(bg, 6, 0.1, 5))),
        (
            "occlusion",
            Box::new(Occlusion::new(&[1, 4, 4], &[1, 2, 2])),
        ),
        (
            "feature_ablation",
            Box::new(FeatureAblation::new(mask.clone())),
        ),
        (
            "shapley_exact",
            Box::new(ShapleyValues::exact(mask.clone())),
        ),
        (
            "shapley_sampling",
            Box::new(ShapleyValues::sampling(mask, 5, 7)),
        ),
        ("ggig", Box::new(GeometricallyGuidedIg::default())),
        ("guided_ig", Box::new(GuidedIntegratedGradients::default())),
        (
            "blur_ig",
            Box::new(BlurIntegratedGradients {
                steps: 8,
                ..Default::default()
            }),
        ),
        ("random", Box::new(RandomAttribution { seed: 1 })),
        ("sobel", Box::new(SobelEdge)),
    ]
}

/// Finding 4: a view (a transposed layout, as an HWC → CHW permute gives) gets every method
/// the contiguous input's result.
#[test]
fn views_are_accepted_by_every_method() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let model = cnn(Activation::Relu, true, 1, &dev);
    let x = x4(3, 2);
    // The same values laid out W-major, seen through a transposed view.
    let wh = x.transpose(2, 3)?.contiguous()?;
    let view = wh.transpose(2, 3)?;
    assert!(!view.is_contiguous());
    let t = Target::PerExample(vec![0, 1, 2]);
    for (name, m) in methods(&dev) {
        let a = m.attribute(&model, &x, &t)?;
        let b = m
            .attribute(&model, &view, &t)
            .map_err(|e| anyhow::anyhow!("{name} on a view: {e}"))?;
        assert_close(&b.attributions, &a.attributions, 1e-6, name);
    }
    Ok(())
}

/// Finding 6: noise and sampling are seeded per example: an example's result is the same
/// alone, first or last in a batch, whatever the other examples are.
#[test]
fn sampling_methods_do_not_depend_on_the_batch() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let model = cnn(Activation::Relu, true, 1, &dev);
    let (a, b, c) = (x4(1, 10), x4(1, 11), x4(1, 12));
    let ab = Tensor::cat(&[&a, &b], 0)?;
    let cba = Tensor::cat(&[&c, &b, &a], 0)?;
    for (name, m) in methods(&dev) {
        let alone = m.attribute(&model, &a, &Target::Class(1))?.attributions;
        let first = m
            .attribute(&model, &ab, &Target::Class(1))?
            .attributions
            .narrow(0, 0, 1)?;
        let last = m
            .attribute(&model, &cba, &Target::Class(1))?
            .attributions
            .narrow(0, 2, 1)?;
        assert_close(&first, &alone, 1e-5, &format!("{name}: first in a batch"));
        assert_close(&last, &alone, 1e-5, &format!("{name}: last in a batch"));
    }
    // Different examples still get different noise.
    let r = RandomAttribution { seed: 1 }.attribute(&model, &ab, &Target::Class(0))?;
    let d = (r.attributions.get(0)? - r.attributions.get(1)?)?
        .abs()?
        .sum_all()?;
    assert!(d.to_scalar::<f32>()? > 1.0);
    Ok(())
}

/// Finding 1: a model returning NaN, a baseline that overflows the dtype: errors naming the
/// method, the example and what to try, never a NaN attribution.
#[test]
fn non_finite_results_are_errors() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let mut model = Wrapped::new(cnn(Activation::Relu, true, 1, &dev));
    // Example 1 of 3 gets NaN logits (its first value is set to 5).
    model.nan_above = Some(4.0);
    let x = x4(3, 4);
    let x = x.slice_assign(
        &[1..2, 0..1, 0..1, 0..1],
        &Tensor::full(5f32, (1, 1, 1, 1), &dev)?,
    )?;
    for (name, m) in methods(&dev) {
        let e = match m.attribute(&model, &x, &Target::Class(0)) {
            Ok(a) => panic!(
                "{name}: returned {:?} for a NaN model",
                a.attributions.dims()
            ),
            Err(e) => e.to_string(),
        };
        assert!(e.contains("NaN or infinite"), "{name}: {e}");
        assert!(e.contains("[1]"), "{name} names the example: {e}");
    }
    // Example 0 alone is fine.
    let ok = Saliency::signed().attribute(&model, &x.narrow(0, 0, 1)?, &Target::Class(0))?;
    assert_eq!(
        candle_explain_core::validate::non_finite_count(&ok.attributions)?,
        0
    );
    // Baseline::Constant(1e300) does not fit in f32.
    let model = cnn(Activation::Relu, true, 1, &dev);
    let e = IntegratedGradients::new(4)
        .with_baseline(Baseline::Constant(1e300))
        .attribute(&model, &x, &Target::Class(0))
        .unwrap_err()
        .to_string();
    assert!(e.contains("does not fit") && e.contains("F32"), "{e}");
    Ok(())
}

/// Finding 1: f16 DeepLIFT through max-pools (exact ties x = x̄ in the pooled maps) is
/// finite and agrees with f32.
#[test]
fn half_precision_deeplift_through_max_pools_is_finite() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let x = x4(4, 8).relu()?; // many exact zeros: ties with the zero baseline
    let m32 = cnn(Activation::Relu, true, 1, &dev);
    let a32 = DeepLift::default().attribute(&m32, &x, &Target::Class(2))?;
    let m16 = common::cnn_dt(Activation::Relu, true, 1, &dev, DType::F16);
    let a16 = DeepLift::default().attribute(&m16, &x.to_dtype(DType::F16)?, &Target::Class(2))?;
    assert_close(
        &a16.attributions.to_dtype(DType::F32)?,
        &a32.attributions,
        2e-2,
        "f16 vs f32",
    );
    Ok(())
}

/// Finding 3: counts that overflow or cannot be computed are rejected up front; sampling
/// methods allocate nothing in proportion to their sample count before they start.
#[test]
fn absurd_counts_are_errors_not_aborts_or_hangs() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let model = cnn(Activation::Relu, true, 1, &dev);
    let x = x4(2, 1);
    let t = Target::Class(0);
    let start = std::time::Instant::now();
    let cases: Vec<(Box<dyn Attributor>, &str)> = vec![
        (Box::new(IntegratedGradients::new(usize::MAX)), "O(n²)"),
        (Box::new(IntegratedGradients::new(1_000_000_000)), "O(n²)"),
        (
            Box::new(IntegratedGradients::new(usize::MAX).with_quadrature(Quadrature::RiemannLeft)),
            "available",
        ),
        (
            Box::new(NoiseTunnel::smooth_grad(Saliency::signed(), usize::MAX, 0)),
            "examples × samples",
        ),
        (
            Box::new(GradientShap::new(x.clone(), usize::MAX, 0.0, 0)),
            "examples × samples",
        ),
        (
            Box::new(BlurIntegratedGradients {
                steps: usize::MAX,
                ..Default::default()
            }),
            "examples × steps",
        ),
        (
            Box::new(GeometricallyGuidedIg {
                scales: usize::MAX,
                ..Default::default()
            }),
            "examples × scales",
        ),
        (
            Box::new(ShapleyValues::sampling(
                Tensor::zeros((1, 12, 12), DType::U32, &dev)?,
                usize::MAX,
                0,
            )),
            "permutations",
        ),
    ];
    for (m, expect) in cases {
        let e = m.attribute(&model, &x, &t).unwrap_err().to_string();
        assert!(e.contains(expect), "expected {expect:?} in {e}");
    }
    assert!(
        start.elapsed().as_secs() < 20,
        "rejected up front, not after work"
    );
    // 10^12 permutations: the sweep starts (and here is stopped by the model) without
    // allocating per permutation. Before, this aborted the process.
    let mut stop = Wrapped::new(cnn(Activation::Relu, true, 1, &dev));
    stop.fail_after = 5;
    let mask = Tensor::arange(0u32, 144, &dev)?.reshape((1, 12, 12))?;
    let e = ShapleyValues::sampling(mask.affine(1.0 / 36.0, 0.0)?.floor()?, 1_000_000_000_000, 0)
        .attribute(&stop, &x, &t)
        .unwrap_err()
        .to_string();
    assert!(e.contains("stopped by the test"), "{e}");
    let e = NoiseTunnel::smooth_grad(Saliency::signed(), 1_000_000_000_000, 0)
        .attribute(
            &Wrapped {
                fail_after: 5,
                ..Wrapped::new(cnn(Activation::Relu, true, 1, &dev))
            },
            &x,
            &t,
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("stopped by the test"), "{e}");
    Ok(())
}

/// Finding 7: group ids are labels, not a range: {0, 65535} are two groups, two passes.
#[test]
fn sparse_group_ids_cost_one_pass_per_group() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let x = x4(1, 3);
    let mut ids = vec![0u32; 144];
    ids[72..].iter_mut().for_each(|v| *v = 65_535);
    let sparse = Tensor::from_vec(ids.clone(), (1, 12, 12), &dev)?;
    let dense = Tensor::from_vec(
        ids.iter().map(|&v| (v > 0) as u32).collect::<Vec<_>>(),
        (1, 12, 12),
        &dev,
    )?;
    let model = Wrapped::new(cnn(Activation::Relu, true, 1, &dev));
    let a = FeatureAblation::new(sparse.clone()).attribute(&model, &x, &Target::Class(0))?;
    let calls = model.calls.get();
    assert!(calls <= 6, "{calls} forward calls for two groups");
    let b = FeatureAblation::new(dense.clone()).attribute(&model, &x, &Target::Class(0))?;
    assert_eq!(common::vec1(&a.attributions), common::vec1(&b.attributions));
    let s = ShapleyValues::exact(sparse).attribute(&model, &x, &Target::Class(0))?;
    let d = ShapleyValues::exact(dense).attribute(&model, &x, &Target::Class(0))?;
    assert_eq!(common::vec1(&s.attributions), common::vec1(&d.attributions));
    Ok(())
}

/// Finding 7: bf16 Blur IG and the Sobel control run on the CPU (Candle's CPU convolution has
/// no bf16 matmul) and agree with f32.
#[test]
fn bf16_blur_ig_and_sobel_run() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let x = x4(2, 5);
    let m32 = cnn(Activation::Relu, true, 1, &dev);
    let m16 = common::cnn_dt(Activation::Relu, true, 1, &dev, DType::BF16);
    let blur = BlurIntegratedGradients {
        steps: 8,
        ..Default::default()
    };
    for (name, m) in [("blur ig", &blur as &dyn Attributor), ("sobel", &SobelEdge)] {
        let a = m.attribute(&m32, &x, &Target::Class(0))?.attributions;
        let b = m
            .attribute(&m16, &x.to_dtype(DType::BF16)?, &Target::Class(0))
            .map_err(|e| anyhow::anyhow!("{name}: {e}"))?
            .attributions;
        assert_eq!(b.dtype(), DType::BF16);
        assert_close(&b.to_dtype(DType::F32)?, &a, 0.1, name);
    }
    Ok(())
}

/// Finding 2: SmoothGrad's chunks hold a bounded number of noisy copies: with a budget of one
/// row per chunk, the inner method never sees more than one row at a time, and the result is
/// the unchunked one.
#[test]
fn noise_tunnel_explains_its_samples_chunk_by_chunk() -> anyhow::Result<()> {
    struct Widest(Cell<usize>);
    impl Attributor for Widest {
        fn attribute(
            &self,
            model: &dyn Explainable,
            input: &Tensor,
            target: &Target,
        ) -> candle_explain_core::Result<Attribution> {
            self.0.set(self.0.get().max(input.dim(0)?));
            Saliency::signed().attribute(model, input, target)
        }
    }
    let dev = Device::Cpu;
    let model = cnn(Activation::Relu, true, 1, &dev);
    let x = x4(3, 6);
    let whole = NoiseTunnel::smooth_grad(Widest(Cell::new(0)), 50, 2);
    let a = whole.attribute(&model, &x, &Target::Class(1))?;
    assert_eq!(whole.inner.0.get(), 150, "one chunk by default");
    let chunked = NoiseTunnel::smooth_grad(Widest(Cell::new(0)), 50, 2)
        .with_batching(Batching::with_max_rows(7));
    let b = chunked.attribute(&model, &x, &Target::Class(1))?;
    assert_eq!(chunked.inner.0.get(), 7);
    assert_close(&b.attributions, &a.attributions, 1e-6, "chunked SmoothGrad");
    Ok(())
}
