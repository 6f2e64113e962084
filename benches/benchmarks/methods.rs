//! The core methods (LRP and Guided IG included) on the MNIST CNN (conv32-conv64-maxpool-fc128-fc10, 28×28, batch 32),
//! the configuration of `benches/captum_cpu.py`, plus the passes the IG-overhead target is
//! measured against: 50 × 32 rows of forward + backward-to-input in one batch, through our
//! ops (`fwd_bwd_1600_ours`) and through Candle's stock autograd (`fwd_bwd_1600_stock`).

use super::{bench_dtype, device, precision, sync, uniform, var_builder};
use candle_core::Tensor;
use candle_explain::core::batch::gradient;
use candle_explain::models::MnistCnn;
use candle_explain::prelude::*;
use criterion::{criterion_group, Criterion, Throughput};
use std::hint::black_box;

fn mnist_cnn(dev: &candle_core::Device) -> MnistCnn {
    MnistCnn::load(mnist_vb(dev)).expect("model")
}

/// The bench's weights (PyTorch-style init, seeded), under `MnistCnn`'s names.
fn mnist_vb(dev: &candle_core::Device) -> candle_nn::VarBuilder<'static> {
    var_builder(
        &[
            ("conv1.weight", &[32, 1, 3, 3], 9),
            ("conv1.bias", &[32], 9),
            ("conv2.weight", &[64, 32, 3, 3], 288),
            ("conv2.bias", &[64], 288),
            ("fc1.weight", &[128, 9216], 9216),
            ("fc1.bias", &[128], 9216),
            ("fc2.weight", &[10, 128], 128),
            ("fc2.bias", &[10], 128),
        ],
        dev,
    )
}

fn bench_methods(c: &mut Criterion) {
    let dev = device();
    let model = mnist_cnn(&dev);
    let batch = 32;
    let x = uniform(&[batch, 1, 28, 28], 1.0, 99, &dev)
        .affine(0.5, 0.5)
        .and_then(|x| x.to_dtype(bench_dtype()))
        .unwrap();
    let t = Target::PerExample((0..batch).map(|i| i % 10).collect());
    let mut g = c.benchmark_group(format!(
        "mnist_cnn_b{batch}{}_{}",
        precision(),
        if dev.is_cpu() { "cpu" } else { "gpu" }
    ));
    g.sample_size(10);
    g.throughput(Throughput::Elements(batch as u64));
    let methods: Vec<(&str, Box<dyn Attributor>)> = vec![
        ("saliency", Box::new(Saliency::signed())),
        ("ig50", Box::new(IntegratedGradients::new(50))),
        ("deeplift", Box::new(DeepLift::default())),
        (
            "smoothgrad20",
            Box::new(NoiseTunnel::smooth_grad(Saliency::signed(), 20, 0)),
        ),
        (
            "lrp_epsilon_plus",
            Box::new(Lrp::new(Composite::epsilon_plus())),
        ),
        (
            "lrp_epsilon_gamma_box",
            Box::new(Lrp::new(Composite::epsilon_gamma_box(-0.5, 3.0))),
        ),
        (
            "guided_ig50",
            Box::new(GuidedIntegratedGradients {
                steps: 50,
                ..Default::default()
            }),
        ),
    ];
    for (name, m) in &methods {
        g.bench_function(*name, |b| {
            b.iter(|| {
                let r = m.attribute(&model, black_box(&x), &t).unwrap();
                sync(&dev);
                r
            })
        });
    }
    // The same network and weights as plain `candle_nn` layers in a closure, explained as
    // it is (`AnyModel`: Candle's autograd, checked once against finite differences). The
    // pool is our `MaxPool2d` used as a Candle `Module`: Candle's own max-pool backward is
    // wrong (1/(k·k)) and the check would refuse the model.
    let vb = mnist_vb(&dev);
    let conv = |name: &str, i, o| {
        candle_nn::conv2d(i, o, 3, Default::default(), vb.pp(name)).expect("conv")
    };
    let (c1, c2) = (conv("conv1", 1, 32), conv("conv2", 32, 64));
    let f1 = candle_nn::linear(9216, 128, vb.pp("fc1")).expect("fc1");
    let f2 = candle_nn::linear(128, 10, vb.pp("fc2")).expect("fc2");
    let pool = candle_explain::core::nn::MaxPool2d::new(2);
    let any = AnyModel::new(move |x: &Tensor| {
        use candle_core::Module;
        let h = Module::forward(&pool, &c2.forward(&c1.forward(x)?.relu()?)?.relu()?)?;
        f2.forward(&f1.forward(&h.flatten_from(1)?)?.relu()?)
    })
    .with_input_shape(&[1, 28, 28]);
    let ig = IntegratedGradients::new(50);
    let (a, b) = (
        ig.attribute(&any, &x, &t).unwrap(),
        ig.attribute(&model, &x, &t).unwrap(),
    );
    let d = (a.attributions - b.attributions)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap();
    assert!(
        d.to_dtype(candle_core::DType::F32)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
            < 1e-3,
        "the two paths agree"
    );
    g.bench_function("ig50_any_model", |b| {
        b.iter(|| {
            let r = ig.attribute(&any, black_box(&x), &t).unwrap();
            sync(&dev);
            r
        })
    });
    // 50 × 32 rows in one forward + backward to the input.
    let rows = Tensor::cat(&vec![x.clone(); 50], 0).unwrap();
    let seed = Tensor::ones((rows.dim(0).unwrap(), 10), x.dtype(), &dev).unwrap();
    g.bench_function("fwd_bwd_1600_ours", |b| {
        b.iter(|| {
            let ctx = RuleCtx::rule(ActRule::Gradient).unwrap();
            let r = gradient(&model, &rows, &seed, &ctx).unwrap();
            sync(&dev);
            r
        })
    });
    g.bench_function("fwd_bwd_1600_stock", |b| {
        b.iter(|| {
            let r = gradient(&model, &rows, &seed, &RuleCtx::plain()).unwrap();
            sync(&dev);
            r
        })
    });
    g.finish();
}

criterion_group!(benches, bench_methods);
