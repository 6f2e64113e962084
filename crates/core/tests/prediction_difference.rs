//! Prediction Difference analysis against its definition computed by brute force (one
//! forward per perturbed image, in f64), and conditional sampling on data whose frame
//! determines the window.

mod common;

use candle_core::{DType, Device, Module, Tensor};
use candle_explain_core::nn::{Flatten, Linear, Sequential};
use candle_explain_core::prelude::*;
use common::{cnn, uniform};

/// `log₂ odds` of class `c` from logits, in f64.
fn log_odds(logits: &[f32], c: usize) -> f64 {
    let z: Vec<f64> = logits.iter().map(|&v| v as f64).collect();
    let others: f64 = z.iter().enumerate().filter(|(i, _)| *i != c).map(|(_, v)| (v - z[c]).exp()).sum();
    -others.ln() / std::f64::consts::LN_2
}

fn prob(logits: &[f32], c: usize) -> f64 {
    let z: Vec<f64> = logits.iter().map(|&v| v as f64).collect();
    1.0 / z.iter().map(|v| (v - z[c]).exp()).sum::<f64>()
}

/// Marginal sampling over every data image is a finite sum: the method equals the paper's
/// formula evaluated image by image, window by window (k = 3, stride 2, so the last row and
/// column are covered by no window and get 0), with and without the Laplace correction; the
/// chunk size does not change the result.
#[test]
fn marginal_sampling_over_every_image_equals_the_definition() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let model = cnn(Activation::Relu, true, 3, &dev);
    let x = uniform(&[2, 1, 12, 12], -1.0, 1.0, 1, &dev);
    let data = uniform(&[4, 1, 12, 12], -1.0, 1.0, 2, &dev);
    let classes = [0usize, 2];
    let (k, stride) = (3, 2);
    for laplace in [None, Some(50usize)] {
        let lo = |logits: &[f32], c: usize| match laplace {
            None => log_odds(logits, c),
            Some(n) => {
                let p = (prob(logits, c) * n as f64 + 1.0) / (n as f64 + 3.0);
                (p / (1.0 - p)).log2()
            }
        };
        let mut want = vec![0f64; 2 * 144];
        for (b, &c) in classes.iter().enumerate() {
            let xb: Vec<f32> = x.get(b)?.flatten_all()?.to_vec1()?;
            let full = lo(&Module::forward(&model, &x.narrow(0, b, 1)?)?.flatten_all()?.to_vec1::<f32>()?, c);
            let mut sum = vec![0f64; 144];
            let mut cover = vec![0f64; 144];
            for i0 in (0..=12 - k).step_by(stride) {
                for j0 in (0..=12 - k).step_by(stride) {
                    let mut p = 0.0;
                    for m in 0..4 {
                        let d: Vec<f32> = data.get(m)?.flatten_all()?.to_vec1()?;
                        let mut img = xb.clone();
                        for i in i0..i0 + k {
                            for j in j0..j0 + k {
                                img[i * 12 + j] = d[i * 12 + j];
                            }
                        }
                        let logits = Module::forward(&model, &Tensor::from_vec(img, (1, 1, 12, 12), &dev)?)?.flatten_all()?.to_vec1::<f32>()?;
                        p += prob(&logits, c) / 4.0;
                    }
                    let we = full
                        - match laplace {
                            None => (p / (1.0 - p)).log2(),
                            Some(n) => {
                                let p = (p * n as f64 + 1.0) / (n as f64 + 3.0);
                                (p / (1.0 - p)).log2()
                            }
                        };
                    for i in i0..i0 + k {
                        for j in j0..j0 + k {
                            sum[i * 12 + j] += we;
                            cover[i * 12 + j] += 1.0;
                        }
                    }
                }
            }
            for i in 0..144 {
                want[b * 144 + i] = if cover[i] > 0.0 { sum[i] / cover[i] } else { 0.0 };
            }
        }
        let want = Tensor::from_vec(want, (2, 1, 12, 12), &dev)?.to_dtype(DType::F32)?;
        let target = Target::PerExample(classes.to_vec());
        let mut runs = vec![];
        for rows in [None, Some(7)] {
            let mut pd = PredictionDifference::marginal(data.clone(), k, None);
            pd.stride = stride;
            pd.laplace = laplace;
            if let Some(r) = rows {
                pd.batching = Batching::with_max_rows(r);
            }
            let a = pd.attribute(&model, &x, &target)?.attributions;
            let e = common::max_abs(&(&a - &want)?) / common::max_abs(&want);
            assert!(e < 1e-4, "laplace {laplace:?}: differs from the definition by {e}");
            assert_eq!(a.get(0)?.get(0)?.get(11)?.to_vec1::<f32>()?, vec![0f32; 12], "the uncovered last row is 0");
            runs.push(a);
        }
        // Batches of another size sum in another order inside the model: rounding only.
        assert!(common::max_abs(&(&runs[0] - &runs[1])?) < 1e-5 * common::max_abs(&want), "chunking changed the result");
    }
    Ok(())
}

/// Images that are planes, `a_c + b·i + e·j` per channel (plus 0.5 % noise), three channels:
/// the frame around a window, wherever it is clipped by the border, tells the window's
/// values, so conditional samples reproduce them and every weight of evidence is about 0,
/// while marginal samples (other images' planes) move the prediction. A frame read from the
/// wrong pixels (an index slip at a border) would predict the wrong plane. The draws are
/// seeded: chunking gives the same values (to the model's rounding); another seed does not.
#[test]
fn conditional_sampling_knows_what_the_frame_determines() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let model = Sequential::new()
        .push(Flatten)
        .push(Linear::new(uniform(&[16, 3 * 144], -0.3, 0.3, 1, &dev), Some(uniform(&[16], -0.1, 0.1, 2, &dev))))
        .push(Activation::Relu)
        .push(Linear::new(uniform(&[3, 16], -1.0, 1.0, 3, &dev), None));
    let planes = |n: usize, seed: u64| -> anyhow::Result<Tensor> {
        let ramp = |axis: usize| -> anyhow::Result<Tensor> {
            let v: Vec<f32> = (0..144).map(|k| [k / 12, k % 12][axis] as f32 / 12.0).collect();
            Ok(Tensor::from_vec(v, (1, 1, 12, 12), &dev)?)
        };
        let (a, b, e) = (uniform(&[n, 3, 1, 1], -1.0, 1.0, seed, &dev), uniform(&[n, 1, 1, 1], -1.0, 1.0, seed + 1, &dev), uniform(&[n, 1, 1, 1], -1.0, 1.0, seed + 2, &dev));
        let img = a.broadcast_add(&ramp(0)?.broadcast_mul(&b)?)?.broadcast_add(&ramp(1)?.broadcast_mul(&e)?)?;
        Ok((img + uniform(&[n, 3, 12, 12], -0.005, 0.005, seed + 3, &dev))?)
    };
    let data = planes(60, 10)?;
    let x = planes(2, 20)?;
    let t = Target::Class(1);
    let mut cond = PredictionDifference::conditional(data.clone(), 3);
    cond.samples = Some(4);
    let a = cond.attribute(&model, &x, &t)?.attributions;
    let marg = PredictionDifference::marginal(data.clone(), 3, Some(4)).attribute(&model, &x, &t)?.attributions;
    let (c, m) = (common::max_abs(&a), common::max_abs(&marg));
    eprintln!("max |WE|: conditional {c}, marginal {m}");
    assert!(m > 0.05 && c < 0.01 * m, "conditional {c}, marginal {m}");
    cond.batching = Batching::with_max_rows(5);
    let again = cond.attribute(&model, &x, &t)?.attributions;
    assert!(common::max_abs(&(&a - &again)?) < 1e-5 * m, "chunking changed the draws");
    cond.seed = 9;
    let other = cond.attribute(&model, &x, &t)?.attributions;
    assert!(common::max_abs(&(&a - &other)?) > 0.0, "another seed, other draws");
    Ok(())
}

#[test]
fn bad_requests_are_errors() {
    let dev = Device::Cpu;
    let model = cnn(Activation::Relu, true, 3, &dev);
    let x = uniform(&[1, 1, 12, 12], -1.0, 1.0, 1, &dev);
    let data = uniform(&[3, 1, 12, 12], -1.0, 1.0, 2, &dev);
    let t = Target::Class(0);
    let err = |pd: PredictionDifference, t: &Target| pd.attribute(&model, &x, t).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err(PredictionDifference::marginal(data.clone(), 13, None), &t).contains("window"));
    assert!(err(PredictionDifference::marginal(uniform(&[3, 1, 10, 10], 0.0, 1.0, 3, &dev), 3, None), &t).contains("shaped like the input"));
    assert!(err(PredictionDifference::marginal(data.clone(), 3, Some(0)), &t).contains("at least 1"));
    let mut wide = PredictionDifference::conditional(data.clone(), 3);
    wide.sampling = PdSampling::Conditional { data: data.clone(), padding: 5 };
    assert!(err(wide, &t).contains("fit the image"));
    let mut none = PredictionDifference::conditional(data.clone(), 3);
    none.samples = None;
    assert!(err(none, &t).contains("number of samples"));
    assert!(err(PredictionDifference::marginal(uniform(&[0, 1, 12, 12], 0.0, 1.0, 3, &dev), 3, None), &t).contains("no images"));
    let mix = Target::Seed(Tensor::new(&[[0.5f32, 0.5, 0.0]], &dev).unwrap());
    assert!(err(PredictionDifference::marginal(data.clone(), 3, None), &mix).contains("one class"));
}
