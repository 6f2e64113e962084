//! The trainer on real digits: an MLP learns the shipped MNIST subset.

use candle_core::{DType, Device, Tensor};
use candle_explain_core::nn::{Flatten, Linear, Sequential};
use candle_explain_core::Activation;
use candle_explain_models::data::load_mnist_csv;
use candle_explain_models::train::{accuracy, save, train, OptimizerKind, TrainConfig};
use candle_explain_models::DigitsCnn;
use candle_nn::{VarBuilder, VarMap};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

fn mlp(vb: VarBuilder) -> Sequential {
    Sequential::new()
        .push(Flatten)
        .push(Linear::load(vb.pp("fc1"), 784, 64).unwrap())
        .push(Activation::Relu)
        .push(Linear::load(vb.pp("fc2"), 64, 10).unwrap())
}

/// Every fifth digit is held out (the file is sorted by class, so all classes are in both).
fn split() -> anyhow::Result<(Tensor, Tensor, Tensor, Tensor)> {
    let dev = Device::Cpu;
    let d = load_mnist_csv(format!("{ROOT}/weights/data/mnist_5k.csv.gz"), &dev)?;
    let x = DigitsCnn::normalize(&d.images)?;
    let y = Tensor::new(d.labels.iter().map(|&l| l as u32).collect::<Vec<_>>(), &dev)?;
    let pick = |test: bool| {
        Tensor::new(
            (0..5000u32)
                .filter(|i| (i % 5 == 0) == test)
                .collect::<Vec<_>>(),
            &dev,
        )
    };
    let (tr, te) = (pick(false)?, pick(true)?);
    Ok((
        x.index_select(&tr, 0)?,
        y.index_select(&tr, 0)?,
        x.index_select(&te, 0)?,
        y.index_select(&te, 0)?,
    ))
}

#[test]
fn an_mlp_learns_the_digits() -> anyhow::Result<()> {
    let (xtr, ytr, xte, yte) = split()?;
    let vars = VarMap::new();
    let m = mlp(VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu));
    candle_explain_models::train::init_seeded(&vars, 0)?;
    let r = train(
        &m,
        &vars,
        &xtr,
        &ytr,
        Some((&xte, &yte)),
        &TrainConfig {
            epochs: 4,
            seed: 7,
            ..Default::default()
        },
    )?;
    let (losses, acc) = (r.losses, r.accuracy);
    assert!(losses.windows(2).all(|w| w[1] < w[0]), "losses {losses:?}");
    eprintln!("held-out accuracy per epoch: {acc:?}");
    assert!(*acc.last().unwrap() >= 0.85, "held-out accuracy {acc:?}");
    // The checkpoint reloads to the same model.
    let path = std::env::temp_dir().join(format!("ce-train-{}.safetensors", std::process::id()));
    save(&vars, &path)?;
    let reloaded =
        mlp(unsafe { VarBuilder::from_mmaped_safetensors(&[&path], DType::F32, &Device::Cpu)? });
    let a = accuracy(&reloaded, &xte, &yte, 256)?;
    assert!(
        (a - acc.last().unwrap()).abs() < 1e-9,
        "reloaded accuracy {a} vs {acc:?}"
    );
    std::fs::remove_file(&path)?;
    Ok(())
}

#[test]
fn bad_training_input() -> anyhow::Result<()> {
    let vars = VarMap::new();
    let m = mlp(VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu));
    let x = Tensor::zeros((4, 1, 28, 28), DType::F32, &Device::Cpu)?;
    let y = Tensor::zeros(3, DType::U32, &Device::Cpu)?;
    assert!(train(&m, &vars, &x, &y, None, &TrainConfig::default()).is_err());
    let y = Tensor::zeros(4, DType::U32, &Device::Cpu)?;
    assert!(train(
        &m,
        &vars,
        &x,
        &y,
        None,
        &TrainConfig {
            batch_size: 0,
            ..Default::default()
        }
    )
    .is_err());
    assert!(train(
        &m,
        &vars,
        &x,
        &y,
        None,
        &TrainConfig {
            optimizer: OptimizerKind::Sgd,
            learning_rate: -1.0,
            ..Default::default()
        }
    )
    .is_err());
    Ok(())
}

/// Seeded initialisation: the same seed gives the same weights, every weight lies within
/// ±1/√fan_in (a bias by its weight's fan-in), and constant variables keep their values.
#[test]
fn seeded_init_is_reproducible_and_bounded() -> anyhow::Result<()> {
    let draw = |seed: u64| -> anyhow::Result<VarMap> {
        let vars = VarMap::new();
        let vb = VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu);
        mlp(vb.clone());
        vb.get_with_hints(5, "norm.weight", candle_nn::Init::Const(1.0))?;
        candle_explain_models::train::init_seeded(&vars, seed)?;
        Ok(vars)
    };
    let (a, b, c) = (draw(3)?, draw(3)?, draw(4)?);
    let (a, b, c) = (
        a.data().lock().unwrap(),
        b.data().lock().unwrap(),
        c.data().lock().unwrap(),
    );
    let mut differs = false;
    for (name, v) in a.iter() {
        let (va, vb, vc) = (
            v.flatten_all()?.to_vec1::<f32>()?,
            b[name].flatten_all()?.to_vec1::<f32>()?,
            c[name].flatten_all()?.to_vec1::<f32>()?,
        );
        assert_eq!(va, vb, "{name}: same seed, different values");
        differs |= va != vc;
        let fan: usize = if v.rank() >= 2 {
            v.dims()[1..].iter().product()
        } else {
            a.get(&name.replace(".bias", ".weight"))
                .map_or(1, |w| w.dims()[1..].iter().product())
        };
        if name == "norm.weight" {
            assert!(
                va.iter().all(|&x| x == 1.0),
                "a constant variable was redrawn"
            );
        } else {
            let bound = 1.0 / (fan as f32).sqrt() * 1.0001;
            assert!(
                va.iter().all(|x| x.abs() <= bound),
                "{name}: outside ±1/√{fan}"
            );
        }
    }
    assert!(differs, "a different seed gave the same weights");
    Ok(())
}
