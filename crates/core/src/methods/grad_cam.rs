//! Grad-CAM (Selvaraju et al. 2017) on a named layer, and Guided Grad-CAM.
//!
//! For the feature maps `A (B, K, h, w)` a model taps under `layer` (see `RuleCtx::tap`):
//! `α_k = mean_{h,w} ∂S_c/∂A_k`, `cam = relu(Σ_k α_k A_k)`, upsampled (nearest, as Captum's
//! default) to the input's height and width. The result is `(B, 1, H, W)`; it broadcasts
//! over the input's channels. Guided Grad-CAM multiplies it into guided backprop.

use super::common::setup;
use crate::rules::ActRule;
use crate::validate::check_output;
use crate::{Attribution, Attributor, Batching, Error, Explainable, Result, RuleCtx, Target};
use candle_core::{Tensor, Var};

#[derive(Debug, Clone)]
pub struct GradCam {
    /// The tapped layer, e.g. `conv_layers.7` for the digits CNN's last ReLU.
    pub layer: String,
    /// Keep only positive evidence (the paper's ReLU); off gives the signed map.
    pub relu: bool,
    pub batching: Batching,
}

impl GradCam {
    pub fn new(layer: &str) -> Self {
        Self {
            layer: layer.to_string(),
            relu: true,
            batching: Batching::default(),
        }
    }

    /// The map at the layer's resolution `(B, 1, h, w)` and the score per row.
    fn layer_map(
        &self,
        model: &dyn Explainable,
        x: &Tensor,
        seed: &Tensor,
        rule: ActRule,
    ) -> Result<(Tensor, Tensor)> {
        let ctx = RuleCtx::rule(rule)?.capturing(&[&self.layer]);
        let var = Var::from_tensor(&x.detach())?;
        let out = model.forward_with(var.as_tensor(), &ctx)?;
        check_output(&out, x.dim(0)?)?;
        let (a, _) = ctx.captured(&self.layer)?;
        if a.rank() != 4 {
            return Err(Error::InvalidParameter {
                name: "layer",
                reason: format!(
                    "Grad-CAM needs (batch, channels, h, w) feature maps; {:?} is {:?}",
                    self.layer,
                    a.dims()
                ),
            });
        }
        let scores = (&out * seed)?.sum(1)?;
        scores.sum_all()?.backward()?;
        let da = ctx.captured(&self.layer)?.1.unwrap_or(a.zeros_like()?);
        let alpha = da.mean_keepdim((2, 3))?;
        let cam = a.detach().broadcast_mul(&alpha)?.sum_keepdim(1)?;
        Ok((if self.relu { cam.relu()? } else { cam }, scores.detach()))
    }
}

fn upsample_to(cam: &Tensor, x: &Tensor) -> Result<Tensor> {
    let (h, w) = match x.dims() {
        [_, _, h, w] => (*h, *w),
        d => {
            return Err(Error::InputShape {
                expected: "(batch, channels, height, width) to upsample a Grad-CAM map onto".into(),
                got: d.to_vec(),
            })
        }
    };
    Ok(if cam.dims()[2..] == [h, w] {
        cam.clone()
    } else {
        cam.upsample_nearest2d(h, w)?
    })
}

impl Attributor for GradCam {
    fn attribute(
        &self,
        model: &dyn Explainable,
        input: &Tensor,
        target: &Target,
    ) -> Result<Attribution> {
        let s = setup(model, input, target)?;
        // The model for the rows of the (possibly class-expanded) batch.
        let model = &*s.model;
        let x = &s.p.x;
        let per = self.batching.rows_per_chunk(model, x, true)?;
        let (mut maps, mut outs) = (vec![], vec![]);
        self.batching.run(x.dim(0)?, per, "grad-cam", |r| {
            let (xr, sr) = (
                x.narrow(0, r.start, r.len())?,
                s.seed.narrow(0, r.start, r.len())?,
            );
            let rows = crate::batch::view_range(model, &r, x.device())?;
            let (cam, out) = self.layer_map(&*rows, &xr, &sr, ActRule::Gradient)?;
            maps.push(upsample_to(&cam, &xr)?);
            outs.push(out);
            Ok(())
        })?;
        Attribution::finish(
            &s.p,
            "Grad-CAM",
            Tensor::cat(&maps, 0)?,
            Tensor::cat(&outs, 0)?,
            None,
            None,
        )
    }
}

/// Guided Grad-CAM: guided backprop ⊙ the upsampled Grad-CAM map.
#[derive(Debug, Clone)]
pub struct GuidedGradCam(pub GradCam);

impl Attributor for GuidedGradCam {
    fn attribute(
        &self,
        model: &dyn Explainable,
        input: &Tensor,
        target: &Target,
    ) -> Result<Attribution> {
        let cam = self.0.attribute(model, input, target)?;
        let guided = super::gradient::GuidedBackprop {
            batching: self.0.batching.clone(),
        }
        .attribute(model, input, target)?;
        let mut res = guided.clone();
        res.attributions = guided.attributions.broadcast_mul(&cam.attributions)?;
        Ok(res)
    }
}
