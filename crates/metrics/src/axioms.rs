//! IG's axioms as checks on any attribution method (Lundstrom, Huang & Razaviyayn 2022;
//! Sundararajan et al. 2017; PAPERS.md §4). Each check builds a model from the given one and
//! compares attributions:
//!
//! - completeness: `Σ_i A_i = F(x) − F(0)` (the checker assumes a zero baseline);
//! - dummy: a feature appended to the input that the model ignores gets 0;
//! - linearity: `A(aF + bG) = a·A(F) + b·A(G)`, with `G(x) = F(s ⊙ x)` for a fixed scale `s`;
//! - symmetry preservation: for `F_s(x) = F(x) + F(x with features i, j swapped)` and
//!   `x_i = x_j`, `A_i = A_j`;
//! - implementation invariance: `F'(x) = F(relu(x) − relu(−x))` computes the same function
//!   through two more ReLUs (which rules see); `A(F') = A(F)`;
//! - affine scale invariance: with `T(x) = s ⊙ x + d` per feature and `F' = F ∘ T⁻¹`,
//!   `A(F', T(x), T(x̄)) = A(F, x, x̄)`. `check_axioms` keeps the baseline at zero, so it checks
//!   the pure scaling `d = 0` (negative scales included); [`check_affine_invariance`] takes a
//!   method factory that accepts a baseline and checks a shift too.
//!
//! [`check_monomial`] checks the closed form on monomials `F = Π x_i^{a_i}` at a zero
//! baseline: `A_i = a_i / Σ_j a_j · F(x)` (Lundstrom & Razaviyayn's characterisation).
//!
//! [`check_positivity`] checks non-decreasing positivity: where `F` is non-decreasing from
//! the zero baseline to `x` (in every feature, over the box between them), every `A_i ≥ 0`.
//! The premise belongs to the model, so the caller brings a model where it holds (a network
//! with non-negative weights and non-decreasing activations, at inputs ≥ 0); the check
//! verifies it on sampled points of the box and refuses a model where it fails.
//!
//! Inputs are `(batch, features)`; the model is explained for one class. Every check reports
//! its largest violation over the batch, relative to the largest |F(x) − F(0)|.
//!
//! Limits: the ReLU split changes the implementation without changing Rescale's multipliers
//! at a zero baseline, so DeepLIFT passes it (it breaks implementation invariance on other
//! rewrites).

use crate::{invalid, Result};
use candle_core::{DType, Tensor};
use candle_explain_core::{Activation, Attributor, Baseline, Explainable, RuleCtx, Target};

#[derive(Debug, Clone, PartialEq)]
pub struct AxiomReport {
    pub completeness: f64,
    pub dummy: f64,
    pub linearity: f64,
    pub symmetry: f64,
    pub implementation_invariance: f64,
    /// Pure per-feature scaling (`d = 0`).
    pub affine_scale: f64,
}

impl AxiomReport {
    /// `(axiom, holds)` for every axiom at tolerance `tol` (relative violation).
    pub fn holds(&self, tol: f64) -> Vec<(&'static str, bool)> {
        vec![
            ("completeness", self.completeness <= tol),
            ("dummy", self.dummy <= tol),
            ("linearity", self.linearity <= tol),
            ("symmetry", self.symmetry <= tol),
            (
                "implementation invariance",
                self.implementation_invariance <= tol,
            ),
            ("affine scale invariance", self.affine_scale <= tol),
        ]
    }
}

struct Dummy<'a>(&'a dyn Explainable);
impl Explainable for Dummy<'_> {
    fn forward_with(&self, x: &Tensor, ctx: &RuleCtx) -> candle_explain_core::Result<Tensor> {
        let f = x.dim(1)? - 1;
        self.0.forward_with(&x.narrow(1, 0, f)?, ctx)
    }
}

struct Scaled<'a>(&'a dyn Explainable, Tensor);
impl Explainable for Scaled<'_> {
    fn forward_with(&self, x: &Tensor, ctx: &RuleCtx) -> candle_explain_core::Result<Tensor> {
        self.0.forward_with(&x.broadcast_mul(&self.1)?, ctx)
    }
}

struct Combination<'a> {
    f: &'a dyn Explainable,
    g: &'a dyn Explainable,
    a: f64,
    b: f64,
}
impl Explainable for Combination<'_> {
    fn forward_with(&self, x: &Tensor, ctx: &RuleCtx) -> candle_explain_core::Result<Tensor> {
        Ok(((self.f.forward_with(x, ctx)? * self.a)? + (self.g.forward_with(x, ctx)? * self.b)?)?)
    }
}

struct Symmetrized<'a>(&'a dyn Explainable, Tensor);
impl Explainable for Symmetrized<'_> {
    fn forward_with(&self, x: &Tensor, ctx: &RuleCtx) -> candle_explain_core::Result<Tensor> {
        let swapped = x.index_select(&self.1, 1)?;
        Ok((self.0.forward_with(x, ctx)? + self.0.forward_with(&swapped, ctx)?)?)
    }
}

struct ReluSplit<'a>(&'a dyn Explainable);
impl Explainable for ReluSplit<'_> {
    fn forward_with(&self, x: &Tensor, ctx: &RuleCtx) -> candle_explain_core::Result<Tensor> {
        let pos = ctx.activation(Activation::Relu, x)?;
        let neg = ctx.activation(Activation::Relu, &x.neg()?)?;
        self.0.forward_with(&(pos - neg)?, ctx)
    }
}

/// `F'(x') = F((x' − d) / s)`: the model seen through `T(x) = s ⊙ x + d`.
struct Affine<'a> {
    f: &'a dyn Explainable,
    scale: Tensor,
    shift: Tensor,
}
impl Explainable for Affine<'_> {
    fn forward_with(&self, x: &Tensor, ctx: &RuleCtx) -> candle_explain_core::Result<Tensor> {
        self.f.forward_with(
            &x.broadcast_sub(&self.shift)?.broadcast_div(&self.scale)?,
            ctx,
        )
    }
}

/// A fixed map with negative and positive scales, and shifts, over `f` features.
fn affine_map(f: usize, x: &Tensor) -> Result<(Tensor, Tensor)> {
    let s: Vec<f32> = (0..f).map(|i| [2.5f32, -0.5, 1.5, -3.0][i % 4]).collect();
    let d: Vec<f32> = (0..f).map(|i| [0.7f32, -1.2, 0.0, 2.0][i % 4]).collect();
    let t = |v: Vec<f32>| -> Result<Tensor> {
        Ok(Tensor::from_vec(v, (1, f), x.device())?.to_dtype(x.dtype())?)
    };
    Ok((t(s)?, t(d)?))
}

/// `F(x) = Π_i x_i^{a_i}` (one output).
struct Monomial(Vec<f64>);
impl Explainable for Monomial {
    fn forward_with(&self, x: &Tensor, _ctx: &RuleCtx) -> candle_explain_core::Result<Tensor> {
        let mut out = x.narrow(1, 0, 1)?.ones_like()?;
        for (i, &a) in self.0.iter().enumerate() {
            out = (out * x.narrow(1, i, 1)?.powf(a)?)?;
        }
        Ok(out)
    }
}

/// Largest violation of `A_i = a_i / Σ_j a_j · F(x)` on `F = Π x_i^{a_i}` over `x (batch,
/// features)` with positive entries, relative to the largest `|F(x)|`; the method must use a
/// zero baseline. Exponents must be ≥ 1 so that `F` is differentiable at the baseline.
pub fn check_monomial(method: &dyn Attributor, exponents: &[f64], x: &Tensor) -> Result<f64> {
    let (_, f) = batch_features(x, "the monomial check")?;
    if f != exponents.len() {
        return Err(invalid(
            "exponents",
            format!(
                "one exponent per feature: {f} features, {} exponents",
                exponents.len()
            ),
        ));
    }
    if let Some(a) = exponents.iter().find(|a| !(**a >= 1.0 && a.is_finite())) {
        return Err(invalid(
            "exponents",
            format!("must be finite and ≥ 1, got {a}"),
        ));
    }
    if x.to_dtype(DType::F64)?
        .flatten_all()?
        .min(0)?
        .to_scalar::<f64>()?
        <= 0.0
    {
        return Err(invalid("x", "the monomial check needs positive inputs"));
    }
    let m = Monomial(exponents.to_vec());
    let a = method.attribute(&m, x, &Target::Class(0))?.attributions;
    let fx = candle_explain_core::batch::logits(&m, x)?;
    let total: f64 = exponents.iter().sum();
    let share = Tensor::from_vec(
        exponents.iter().map(|a| a / total).collect::<Vec<_>>(),
        (1, f),
        x.device(),
    )?
    .to_dtype(x.dtype())?;
    let want = fx.broadcast_mul(&share)?;
    Ok(max_abs(&(a - want)?)? / max_abs(&fx)?.max(1e-12))
}

/// Non-decreasing positivity at a zero baseline: the largest `−A_i` (0 when every
/// attribution is ≥ 0), relative to the largest `|F(x) − F(0)|`. The premise is checked
/// first on 64 points per example (32 on the straight path, 32 drawn in the box between 0 and
/// `x`): `∂F/∂x_i · x_i ≥ 0` at each, up to 1e-9 of the gradient's scale; a model where it
/// fails is an error, not a result.
pub fn check_positivity(
    method: &dyn Attributor,
    model: &dyn Explainable,
    x: &Tensor,
    class: usize,
) -> Result<f64> {
    let (b, f) = batch_features(x, "the positivity check")?;
    let t = Target::Class(class);
    // Points z = u ⊙ x, u in [0, 1]: the path (u constant per row) and the box (u per feature).
    let path = Tensor::arange(1u32, 33, x.device())?.to_dtype(DType::F64)?.affine(1.0 / 32.0, 0.0)?.reshape((32, 1))?;
    let mut points = vec![];
    for r in 0..b {
        let xr = x.narrow(0, r, 1)?;
        let box_u = crate::perturb::hash_keys(&(32 * r..32 * r + 32), f, 7, x.device())?;
        let u = Tensor::cat(&[&path.broadcast_as((32, f))?.contiguous()?, &box_u], 0)?.to_dtype(x.dtype())?;
        points.push(u.broadcast_mul(&xr)?);
    }
    let z = Tensor::cat(&points, 0)?;
    let grad = candle_explain_core::methods::Saliency::signed().attribute(model, &z, &t)?.attributions;
    let xs = x.repeat((1, 64))?.reshape((b * 64, f))?;
    let slope = (grad.abs()?.flatten_all()?.max(0)?.to_dtype(DType::F64)?.to_scalar::<f64>()?).max(1e-12);
    let worst = (&grad * &xs)?.flatten_all()?.min(0)?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
    if worst < -1e-9 * slope * max_abs(&xs)?.max(1e-12) {
        return Err(invalid(
            "model",
            format!("F is not non-decreasing from 0 to x (∂F/∂x_i · x_i = {worst:.3e} at a sampled point): positivity has no premise here"),
        ));
    }
    let a = method.attribute(model, x, &t)?.attributions;
    let scale = relative_scale(model, x, class)?;
    let most_negative = a.flatten_all()?.min(0)?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
    Ok((-most_negative).max(0.0) / scale)
}

/// Affine scale invariance with a shift: `method(baseline)` must build the method with that
/// baseline. Compares `A(F, x, 0)` with `A(F ∘ T⁻¹, T(x), T(0))`, `T(x) = s ⊙ x + d`; returns the
/// largest violation relative to the largest `|F(x) − F(0)|`.
pub fn check_affine_invariance(
    method: &dyn Fn(Baseline) -> Box<dyn Attributor>,
    model: &dyn Explainable,
    x: &Tensor,
    class: usize,
) -> Result<f64> {
    let (_, f) = batch_features(x, "the axiom checks")?;
    let t = Target::Class(class);
    let (s, d) = affine_map(f, x)?;
    let a = method(Baseline::Zero).attribute(model, x, &t)?;
    let moved = Affine {
        f: model,
        scale: s.clone(),
        shift: d.clone(),
    };
    let b = method(Baseline::Tensor(d.clone())).attribute(
        &moved,
        &x.broadcast_mul(&s)?.broadcast_add(&d)?,
        &t,
    )?;
    let scale = relative_scale(model, x, class)?;
    Ok(max_abs(&(b.attributions - a.attributions)?)? / scale)
}

/// `(batch, features)` of `x`, or an error saying that `check` needs that shape.
fn batch_features(x: &Tensor, check: &str) -> Result<(usize, usize)> {
    x.dims2()
        .map_err(|_| invalid("x", format!("{check}: inputs must be (batch, features), got {:?}", x.dims())))
}

fn relative_scale(model: &dyn Explainable, x: &Tensor, class: usize) -> Result<f64> {
    let score = |x: &Tensor| -> Result<Tensor> {
        Ok(candle_explain_core::batch::logits(model, x)?
            .narrow(1, class, 1)?
            .squeeze(1)?)
    };
    Ok(max_abs(&(score(x)? - score(&x.zeros_like()?)?)?)?.max(1e-12))
}

fn max_abs(t: &Tensor) -> Result<f64> {
    Ok(t.abs()?
        .flatten_all()?
        .max(0)?
        .to_dtype(DType::F64)?
        .to_scalar::<f64>()?)
}

/// Checks the axioms for `method` on `model` at `x (batch, features)` for `class`.
pub fn check_axioms(
    method: &dyn Attributor,
    model: &dyn Explainable,
    x: &Tensor,
    class: usize,
) -> Result<AxiomReport> {
    let (_, f) = batch_features(x, "the axiom checks")?;
    if f < 2 {
        return Err(invalid(
            "x",
            "the symmetry check needs at least two features",
        ));
    }
    let t = Target::Class(class);
    let attr = |m: &dyn Explainable, x: &Tensor| -> Result<Tensor> {
        Ok(method.attribute(m, x, &t)?.attributions)
    };
    let score = |m: &dyn Explainable, x: &Tensor| -> Result<Tensor> {
        Ok(candle_explain_core::batch::logits(m, x)?
            .narrow(1, class, 1)?
            .squeeze(1)?)
    };
    let a = attr(model, x)?;
    let total = (score(model, x)? - score(model, &x.zeros_like()?)?)?;
    let scale = max_abs(&total)?.max(1e-12);
    let rel = |t: Tensor| -> Result<f64> { Ok(max_abs(&t)? / scale) };
    let completeness = rel((a.sum(1)? - &total)?)?;
    // Dummy: a constant-1 extra feature.
    let xd = Tensor::cat(&[x, &x.ones_like()?.narrow(1, 0, 1)?], 1)?;
    let dummy = rel(attr(&Dummy(model), &xd)?.narrow(1, f, 1)?)?;
    // Linearity with G(x) = F(s ⊙ x).
    let s = Tensor::from_vec(
        (0..f)
            .map(|i| 0.5 + (i % 3) as f32 * 0.4)
            .collect::<Vec<_>>(),
        (1, f),
        x.device(),
    )?
    .to_dtype(x.dtype())?;
    let g = Scaled(model, s);
    let (ca, cb) = (0.7, -1.3);
    let combined = attr(
        &Combination {
            f: model,
            g: &g,
            a: ca,
            b: cb,
        },
        x,
    )?;
    let linearity = rel((combined - ((&a * ca)? + (attr(&g, x)? * cb)?)?)?)?;
    // Symmetry in features 0 and 1, at points where x_0 = x_1.
    let mut perm: Vec<u32> = (0..f as u32).collect();
    perm.swap(0, 1);
    let sym = Symmetrized(model, Tensor::new(perm, x.device())?);
    let xs = Tensor::cat(
        &[
            &x.narrow(1, 0, 1)?,
            &x.narrow(1, 0, 1)?,
            &x.narrow(1, 2, f - 2)?,
        ],
        1,
    )?;
    let asym = attr(&sym, &xs)?;
    let symmetry = rel((asym.narrow(1, 0, 1)? - asym.narrow(1, 1, 1)?)?)?;
    let implementation_invariance = rel((attr(&ReluSplit(model), x)? - &a)?)?;
    let (s, _) = affine_map(f, x)?;
    let scaled = Affine {
        f: model,
        scale: s.clone(),
        shift: s.zeros_like()?,
    };
    let affine_scale = rel((attr(&scaled, &x.broadcast_mul(&s)?)? - &a)?)?;
    Ok(AxiomReport {
        completeness,
        dummy,
        linearity,
        symmetry,
        implementation_invariance,
        affine_scale,
    })
}
