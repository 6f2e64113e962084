//! DeepSHAP in Captum's form (`DeepLiftShap`; shap's `DeepExplainer`): DeepLIFT's Rescale
//! against every baseline of a distribution, averaged. The (example, baseline) pairs are rows
//! of one DeepLIFT run (chunked by its batching); completeness holds against the mean
//! baseline output: `Σ_i R_i = S(x) − mean_b S(x̄_b)` (tested).

use super::common::{completeness_delta, setup};
use crate::{Attribution, Attributor, Baseline, Batching, Error, Explainable, Result, Target};
use candle_core::Tensor;

#[derive(Debug, Clone)]
pub struct DeepShap {
    /// The baseline distribution: `(n_baselines, features…)`.
    pub baselines: Tensor,
    pub batching: Batching,
}

impl DeepShap {
    pub fn new(baselines: Tensor) -> Self {
        Self {
            baselines,
            batching: Batching::default(),
        }
    }
}

impl Attributor for DeepShap {
    fn attribute(
        &self,
        model: &dyn Explainable,
        input: &Tensor,
        target: &Target,
    ) -> Result<Attribution> {
        let s = setup(model, input, target)?;
        let model = &*s.model;
        let x = &s.p.x;
        let bl = self
            .baselines
            .to_device(x.device())?
            .to_dtype(x.dtype())?
            .contiguous()?;
        if bl.rank() != x.rank() || bl.dims()[1..] != x.dims()[1..] || bl.dim(0)? == 0 {
            return Err(Error::BaselineShape {
                expected: x.dims().to_vec(),
                got: bl.dims().to_vec(),
            });
        }
        crate::validate::check_finite(&bl, "baselines")?;
        let (n, nb) = (x.dim(0)?, bl.dim(0)?);
        let rows = crate::validate::rows(n, nb, "DeepSHAP: examples × baselines")?;
        let dev = x.device();
        // Row r is example r / nb against baseline r % nb.
        let ex = crate::batch::example_index(&(0..rows), nb, dev)?;
        let bi: Vec<u32> = (0..rows).map(|r| (r % nb) as u32).collect();
        let xr = x.index_select(&ex, 0)?;
        let br = bl.index_select(&Tensor::new(bi, dev)?, 0)?;
        let seeds = s.seed.index_select(&ex, 0)?;
        let rows_model = crate::batch::view(model, &ex)?;
        let dl = super::deeplift::DeepLift {
            baseline: Baseline::Tensor(br),
            batching: self.batching.clone(),
            ..Default::default()
        }
        .attribute(&*rows_model, &xr, &Target::Seed(seeds))?;
        let mean = |t: &Tensor| -> Result<Tensor> {
            let mut d = vec![n, nb];
            d.extend_from_slice(&t.dims()[1..]);
            Ok(t.reshape(d)?.mean(1)?)
        };
        let attr = mean(&dl.attributions)?;
        let base_out =
            mean(&dl.baseline_output.ok_or_else(|| {
                Error::Unsupported("DeepLIFT returned no baseline output".into())
            })?)?;
        let out = crate::methods::common::chunked_scores(model, x, &s.seed, &self.batching)?;
        let delta = completeness_delta(&attr, &out, Some(&base_out))?;
        Attribution::finish(&s.p, "DeepSHAP", attr, out, Some(base_out), Some(delta))
    }
}
