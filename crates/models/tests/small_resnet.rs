//! The small ResNet on Fashion-MNIST: the committed weights reproduce their reported test
//! accuracy, the canonized (BatchNorm-folded) model is the same function, LRP and Grad-CAM
//! run on it, and the trainer (training BatchNorm, our conv kernel gradient) learns.

mod common;
use candle_core::{DType, Device, Tensor, D};
use candle_explain_core::prelude::*;
use candle_explain_models::data::load_idx;
use candle_explain_models::train::{accuracy, train, TrainConfig};
use candle_explain_models::{SmallResNet, SmallResNetConfig};
use candle_nn::{VarBuilder, VarMap};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

fn fashion(split: &str, dev: &Device) -> (Tensor, Tensor) {
    let dir = candle_explain_models::assets::ensure("fashion-mnist")
        .unwrap_or_else(|e| panic!("{e}"))
        .display()
        .to_string();
    let d = load_idx(
        format!("{dir}/{split}-images-idx3-ubyte.gz"),
        format!("{dir}/{split}-labels-idx1-ubyte.gz"),
        dev,
    )
    .unwrap_or_else(|e| {
        panic!("Fashion-MNIST is fetched by scripts/fetch-assets.sh fashion-mnist: {e}")
    });
    let y = Tensor::new(d.labels.as_slice(), dev)
        .and_then(|t| t.to_dtype(DType::U32))
        .expect("labels");
    (SmallResNet::normalize(&d.images).expect("normalize"), y)
}

fn model(dev: &Device) -> SmallResNet {
    SmallResNet::from_file(
        format!("{ROOT}/weights/fashion_resnet.safetensors"),
        SmallResNetConfig::fashion_mnist(),
        dev,
    )
    .expect("weights/fashion_resnet.safetensors is committed")
}

/// A composite with the BatchNorm canonizer runs on the folded model by itself: the same
/// relevance as LRP on `canonized()`; without the canonizer the unfolded model is explained
/// as it is (BatchNorm's gradient), which differs.
#[test]
fn composites_fold_batch_norms_through_their_canonizer() -> anyhow::Result<()> {
    use candle_explain_core::composite::Canonizer;
    let dev = Device::Cpu;
    let (x, _) = fashion("t10k", &dev);
    let x = x.narrow(0, 0, 4)?;
    let t = Target::Class(3);
    let m = model(&dev);
    let with = Lrp::new(Composite::epsilon_plus().with_canonizer(Canonizer::MergeBatchNorm))
        .attribute(&m, &x, &t)?
        .attributions;
    let folded = Lrp::new(Composite::epsilon_plus())
        .attribute(&m.canonized()?, &x, &t)?
        .attributions;
    let unfolded = Lrp::new(Composite::epsilon_plus())
        .attribute(&m, &x, &t)?
        .attributions;
    let d = |a: &Tensor, b: &Tensor| -> anyhow::Result<f32> {
        Ok((a - b)?.abs()?.max_all()?.to_scalar::<f32>()?)
    };
    assert!(
        d(&with, &folded)? < 1e-5,
        "canonizer vs folded: {}",
        d(&with, &folded)?
    );
    assert!(d(&with, &unfolded)? > 1e-3, "the canonizer changed nothing");
    Ok(())
}

/// weights/README.md: 91.02 % on the 10,000 test images, as measured after training.
#[test]
fn reproduces_the_reported_test_accuracy() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let (x, y) = fashion("t10k", &dev);
    let acc = accuracy(&model(&dev), &x, &y, 500)?;
    assert!(
        (acc - 0.9102).abs() < 5e-4,
        "test accuracy {acc}, reported 0.9102"
    );
    Ok(())
}

#[test]
fn canonized_model_is_the_same_function() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let (x, y) = fashion("t10k", &dev);
    let (x, y) = (x.narrow(0, 0, 16)?, y.narrow(0, 0, 16)?);
    let (m, c) = (model(&dev), model(&dev).canonized()?);
    let diff = (m.forward(&x)? - c.forward(&x)?)?
        .abs()?
        .max_all()?
        .to_scalar::<f32>()?;
    assert!(diff < 1e-4, "logits differ by {diff}");
    let target = Target::PerExample(
        y.to_vec1::<u32>()?
            .into_iter()
            .map(|v| v as usize)
            .collect(),
    );
    let (g1, g2) = (
        Saliency::signed().attribute(&m, &x, &target)?,
        Saliency::signed().attribute(&c, &x, &target)?,
    );
    let gdiff = (g1.attributions - g2.attributions)?
        .abs()?
        .max_all()?
        .to_scalar::<f32>()?;
    assert!(gdiff < 1e-4, "input gradients differ by {gdiff}");
    // LRP on the canonized model: every conv is one affine layer, relevance passes the
    // residual sums by Zennit's Norm rule; the biases absorb a share, so the relevance
    // total is below the output, and positive for the true class on correctly classified
    // images.
    let lrp = Lrp::new(Composite::epsilon_plus()).attribute(&c, &x, &target)?;
    assert_eq!(lrp.attributions.dims(), x.dims());
    let totals = lrp.attributions.flatten_from(1)?.sum(1)?.to_vec1::<f32>()?;
    assert!(
        totals.iter().filter(|t| **t > 0.0).count() >= 12,
        "relevance totals {totals:?}"
    );
    // Grad-CAM on the last stage's output (7×7).
    let cam = GradCam::new("layer3").attribute(&c, &x, &target)?;
    assert_eq!(cam.attributions.dims(), x.dims());
    assert!(GradCam::new("layer9")
        .attribute(&c, &x, &target)
        .unwrap_err()
        .to_string()
        .contains("layer3"));
    Ok(())
}

/// Two epochs on 3,000 training images take a fresh model well past chance (10 %). The
/// initialisation is seeded (`init_seeded`), so the run is reproducible: 63.6 % with seed 7
/// (76.3 % and 70.8 % with seeds 1 and 2); unseeded, runs ended between 43 % and 75 %.
#[test]
fn the_trainer_learns_fashion_mnist() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let (x, y) = fashion("train", &dev);
    let (xt, yt) = fashion("t10k", &dev);
    let vars = VarMap::new();
    let m = SmallResNet::load(
        VarBuilder::from_varmap(&vars, DType::F32, &dev),
        SmallResNetConfig::fashion_mnist(),
    )?;
    candle_explain_models::train::init_seeded(&vars, 7)?;
    let before = vars.data().lock().expect("vars")["bn1.running_mean"].to_vec1::<f32>()?;
    let cfg = TrainConfig {
        epochs: 2,
        batch_size: 64,
        learning_rate: 2e-3,
        seed: 3,
        ..Default::default()
    };
    let r = train(
        &m,
        &vars,
        &x.narrow(0, 0, 3000)?,
        &y.narrow(0, 0, 3000)?,
        Some((&xt.narrow(0, 0, 1000)?, &yt.narrow(0, 0, 1000)?)),
        &cfg,
    )?;
    assert!(
        r.accuracy[1] > 0.5,
        "accuracy after two epochs on 3,000 images: {:?}",
        r.accuracy
    );
    // Training mode moved the running statistics the evaluation uses.
    let after = vars.data().lock().expect("vars")["bn1.running_mean"].to_vec1::<f32>()?;
    assert!(
        before.iter().zip(&after).any(|(a, b)| (a - b).abs() > 1e-3),
        "running mean did not move: {after:?}"
    );
    let pred = m.forward(&xt.narrow(0, 0, 8)?)?.argmax(D::Minus1)?;
    assert_eq!(pred.dims(), &[8]);
    Ok(())
}

/// Every core method on two test images with the canonized ResNet (residual sums, average
/// pooling); quadrants are the groups.
///
/// Guided IG's completeness is not asserted here: its path moves the features with the
/// smallest gradient by up to 2·max_dist of their range in one jump, credited with the
/// gradient taken before the jump, and on this model that bias does not shrink with more
/// steps (measured with the defaults: error 9.8 at 16 steps, 16.8 at 200, 17.5 at 800, for
/// an output change of 1.3; with fraction = 1 or max_dist = 0, the straight line, 0.02 at
/// 200). That is PAIR's algorithm as published (`golden_guided_ig` matches it); the method
/// reports the error as its delta.
#[test]
fn every_method_runs_on_the_resnet() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let (x, y) = fashion("t10k", &dev);
    let x = x.narrow(0, 0, 2)?;
    let t = Target::PerExample(
        y.narrow(0, 0, 2)?
            .to_vec1::<u32>()?
            .into_iter()
            .map(|v| v as usize)
            .collect(),
    );
    let cells: Vec<u32> = (0..784u32)
        .map(|k| (k / 28) / 14 * 2 + (k % 28) / 14)
        .collect();
    let groups = Tensor::from_vec(cells, (1, 1, 28, 28), &dev)?;
    common::smoke_except(
        &model(&dev).canonized()?,
        &x,
        &t,
        &groups,
        &[1, 7, 7],
        "fashion resnet",
        &["guided IG"],
    )
}

#[test]
fn bad_configs_and_inputs() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let vb = || VarBuilder::zeros(DType::F32, &dev);
    for bad in [
        SmallResNetConfig {
            widths: vec![],
            ..SmallResNetConfig::fashion_mnist()
        },
        SmallResNetConfig {
            blocks_per_stage: 0,
            ..SmallResNetConfig::fashion_mnist()
        },
        SmallResNetConfig {
            input_size: 0,
            ..SmallResNetConfig::fashion_mnist()
        },
    ] {
        assert!(SmallResNet::load(vb(), bad).is_err());
    }
    // A checkpoint of another architecture names the missing tensor.
    let e = SmallResNet::from_file(
        format!("{ROOT}/weights/digits_cnn.safetensors"),
        SmallResNetConfig::fashion_mnist(),
        &dev,
    )
    .unwrap_err();
    assert!(e.to_string().contains("conv1"), "{e}");
    let m = model(&dev);
    let wrong = Tensor::zeros((2, 3, 28, 28), DType::F32, &dev)?;
    assert!(m.forward(&wrong).is_err());
    Ok(())
}
