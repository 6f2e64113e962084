//! ROAR and KAR (Hooker, Erhan, Kindermans & Kim 2019; PAPERS.md §2): remove (or keep) the
//! fraction t of each example's elements an attribution ranks highest, replacing the rest by
//! the per-channel mean of the training data, in both training and test data; retrain a
//! fresh model on the modified data and report its test accuracy. A better attribution makes
//! ROAR accuracy fall faster (and KAR accuracy stay higher). Ranking is by |attribution| per
//! element (the authors square the map, which orders the same way).

use crate::{invalid, ModelBuilder, Result};
use candle_core::{DType, Tensor};
use candle_explain_models::train::{accuracy, init_seeded, train, TrainConfig};
use candle_nn::{VarBuilder, VarMap};

#[derive(Debug, Clone)]
pub struct Roar {
    /// Fractions t of the elements to remove (ROAR) or keep (KAR).
    pub fractions: Vec<f64>,
    /// Retrainings per fraction (error bars).
    pub repeats: usize,
    /// KAR instead of ROAR.
    pub keep: bool,
    pub train: TrainConfig,
}

impl Default for Roar {
    fn default() -> Self {
        Self {
            fractions: vec![0.1, 0.3, 0.5, 0.7, 0.9],
            repeats: 3,
            keep: false,
            train: TrainConfig::default(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct RoarReport {
    pub fractions: Vec<f64>,
    /// `[fraction][repeat]` test accuracies.
    pub accuracy: Vec<Vec<f64>>,
}

impl RoarReport {
    pub fn mean(&self) -> Vec<f64> {
        self.accuracy
            .iter()
            .map(|a| a.iter().sum::<f64>() / a.len() as f64)
            .collect()
    }
}

/// Mean of `x` over every dimension but the channel one (dim 1), shaped to broadcast.
fn channel_mean(x: &Tensor) -> Result<Tensor> {
    let dims: Vec<usize> = (0..x.rank()).filter(|&d| d != 1).collect();
    let mut m = x.clone();
    for &d in dims.iter().rev() {
        m = m.mean_keepdim(d)?;
    }
    Ok(m)
}

/// Replaces (or, with `keep`, keeps) the top-`t` fraction of every example's elements.
fn degrade(x: &Tensor, attr: &Tensor, t: f64, keep: bool, fill: &Tensor) -> Result<Tensor> {
    let n = x.dim(0)?;
    let f = x.elem_count() / n;
    let k = ((t * f as f64).round() as usize).min(f);
    let a = attr
        .abs()?
        .to_dtype(DType::F32)?
        .flatten_from(1)?
        .contiguous()?;
    // Rank 0 = most relevant; ties broken by position.
    let ranks = a
        .neg()?
        .arg_sort_last_dim(true)?
        .to_dtype(DType::F32)?
        .arg_sort_last_dim(true)?
        .to_dtype(DType::F32)?;
    let top = ranks.lt(k as f64)?.to_dtype(x.dtype())?.reshape(x.dims())?;
    let replace = if keep { top.affine(-1.0, 1.0)? } else { top };
    Ok((x + (fill.broadcast_as(x.dims())? - x)?.mul(&replace)?)?)
}

impl Roar {
    /// `build` makes a fresh model on a `VarMap`-backed builder; `attr_train` / `attr_test` are
    /// the attributions (of a model trained on the clean data) for every training and test
    /// example.
    #[allow(clippy::too_many_arguments)]
    pub fn evaluate(
        &self,
        build: &ModelBuilder,
        (x_train, y_train): (&Tensor, &Tensor),
        attr_train: &Tensor,
        (x_test, y_test): (&Tensor, &Tensor),
        attr_test: &Tensor,
    ) -> Result<RoarReport> {
        if self.repeats == 0 || self.fractions.is_empty() {
            return Err(invalid("roar", "need at least one fraction and one repeat"));
        }
        check_shapes(x_train, attr_train, x_test, attr_test)?;
        let fill = channel_mean(x_train)?;
        let mut report = RoarReport {
            fractions: self.fractions.clone(),
            accuracy: vec![],
        };
        for &t in &self.fractions {
            check_fraction(t)?;
            let (tr, te) = (
                degrade(x_train, attr_train, t, self.keep, &fill)?,
                degrade(x_test, attr_test, t, self.keep, &fill)?,
            );
            let accs = (0..self.repeats)
                .map(|r| self.fit(build, (&tr, y_train), (&te, y_test), r))
                .collect::<Result<Vec<_>>>()?;
            report.accuracy.push(accs);
        }
        Ok(report)
    }

    /// One point of [`Roar::evaluate`]: the test accuracy of retraining `repeat` (its seed is
    /// the config's plus `repeat`) at fraction `t`, exactly as `evaluate` computes it. Dataset
    /// jobs run each retraining as a separate task with it.
    #[allow(clippy::too_many_arguments)]
    pub fn retrain_once(
        &self,
        build: &ModelBuilder,
        (x_train, y_train): (&Tensor, &Tensor),
        attr_train: &Tensor,
        (x_test, y_test): (&Tensor, &Tensor),
        attr_test: &Tensor,
        t: f64,
        repeat: usize,
    ) -> Result<f64> {
        check_fraction(t)?;
        check_shapes(x_train, attr_train, x_test, attr_test)?;
        let fill = channel_mean(x_train)?;
        let tr = degrade(x_train, attr_train, t, self.keep, &fill)?;
        let te = degrade(x_test, attr_test, t, self.keep, &fill)?;
        self.fit(build, (&tr, y_train), (&te, y_test), repeat)
    }

    /// Trains a fresh model on `train` (seed + `repeat`) and returns its accuracy on `test`.
    fn fit(
        &self,
        build: &ModelBuilder,
        (x, y): (&Tensor, &Tensor),
        (x_test, y_test): (&Tensor, &Tensor),
        repeat: usize,
    ) -> Result<f64> {
        let vars = VarMap::new();
        let model = build(VarBuilder::from_varmap(&vars, x.dtype(), x.device()))?;
        let cfg = TrainConfig {
            seed: self.train.seed.wrapping_add(repeat as u64),
            ..self.train.clone()
        };
        // Candle's CPU init is unseeded: without this, a repeat's seed fixed only the
        // shuffling, and no retraining could be rerun (or split across tasks) exactly.
        init_seeded(&vars, cfg.seed)?;
        train(model.as_ref(), &vars, x, y, None, &cfg)?;
        Ok(accuracy(model.as_ref(), x_test, y_test, 512)?)
    }
}

fn check_fraction(t: f64) -> Result<()> {
    if !(t > 0.0 && t < 1.0) {
        return Err(invalid(
            "fractions",
            format!("each fraction must be in (0, 1), got {t}"),
        ));
    }
    Ok(())
}

fn check_shapes(x_train: &Tensor, attr_train: &Tensor, x_test: &Tensor, attr_test: &Tensor) -> Result<()> {
    if attr_train.dims() != x_train.dims() || attr_test.dims() != x_test.dims() {
        return Err(invalid(
            "attributions",
            "must have the shapes of the training and test inputs",
        ));
    }
    Ok(())
}
