//! Controls for evaluating attributions (Hooker et al. 2019): a random ranking and a Sobel
//! edge detector, neither of which looks at the model.

use super::common::{example_keys, normals, sample_rng, setup};
use crate::{Attribution, Attributor, Error, Explainable, Result, Target};
use candle_core::Tensor;

/// Standard normal noise per feature, seeded per example (by its values and `seed`: an
/// example gets the same map wherever it sits in a batch).
#[derive(Debug, Clone, Default)]
pub struct RandomAttribution {
    pub seed: u64,
}

impl Attributor for RandomAttribution {
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
        let (n, f) = (x.dim(0)?, x.elem_count() / x.dim(0)?);
        let mut v = Vec::with_capacity(n * f);
        for key in example_keys(x, self.seed)? {
            normals(&mut sample_rng(key, 0), f, &mut v);
        }
        let attr = Tensor::from_vec(v, x.dims(), x.device())?.to_dtype(x.dtype())?;
        let out = crate::batch::scores(model, x, &s.seed)?;
        Attribution::finish(&s.p, "Random attribution", attr, out, None, None)
    }
}

/// Gradient magnitude of the image itself, `sqrt(Gx² + Gy²)` per channel with 3×3 Sobel
/// kernels; borders replicate the edge pixels (zero padding would draw a frame around any
/// image whose background is not 0). Inputs must be `(B, C, H, W)`.
#[derive(Debug, Clone, Default)]
pub struct SobelEdge;

impl Attributor for SobelEdge {
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
        let (_, c, _, _) = x.dims4().map_err(|_| Error::InputShape {
            expected: "(batch, channels, height, width) for the Sobel control".into(),
            got: x.dims().to_vec(),
        })?;
        let kx = Tensor::new(&[[-1f32, 0., 1.], [-2., 0., 2.], [-1., 0., 1.]], x.device())?
            .to_dtype(x.dtype())?;
        let ky = kx.t()?.contiguous()?;
        let k = |t: Tensor| t.reshape((1, 1, 3, 3))?.repeat((c, 1, 1, 1));
        let (xc, kx, ky) = crate::baseline::in_f32_if_half(x, &k(kx)?, &k(ky)?)?;
        let xp = xc.pad_with_same(2, 1, 1)?.pad_with_same(3, 1, 1)?;
        let gx = xp.conv2d(&kx, 0, 1, 1, c)?;
        let gy = xp.conv2d(&ky, 0, 1, 1, c)?;
        let attr = (gx.sqr()? + gy.sqr()?)?.sqrt()?.to_dtype(x.dtype())?;
        let out = crate::batch::scores(model, x, &s.seed)?;
        Attribution::finish(&s.p, "Sobel edge control", attr, out, None, None)
    }
}
