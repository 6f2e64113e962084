//! LRP rules for linear and convolution layers (Bach et al. 2015; Montavon et al. 2017,
//! 2019), in Zennit's formulation: relevance `R` arriving at a layer's output goes back to
//! its input as
//!
//! `R_in = Σ_groups coef · Σ_terms sign · in_t ⊙ Lᵀ_t( mask ⊙ R / stab(Σ_terms sign · L_t(in_t)) )`
//!
//! where each term is the layer applied to a modified input with modified weights (and
//! bias), `Lᵀ` is the layer's transpose (its input gradient), and `stab(z) = z + ε·sign(z)`
//! with `sign(0) = +1`. A rule is only the table of its terms: each is a few lines below.

use crate::ops::conv::ConvGeometry;
use crate::ops::is_half;
use crate::ops::stabilize::stabilized_div;
use crate::ops::InputGrad;
use crate::rule::{Group, Propagation, RuleRef, Term};
use candle_core::{DType, Result, Tensor};

pub use crate::rule::DEFAULT_STABILIZER;

/// The rule applied to a linear or convolution layer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LayerRule {
    /// The exact gradient (no relevance rule).
    Gradient,
    /// LRP-ε: `x ⊙ Wᵀ(R / stab(Wx + b, ε))`; ε = 0 gives LRP-0.
    Epsilon(f64),
    /// z⁺ (= α1β0): positive contributions only, `W⁺x⁺ + W⁻x⁻ (+ b⁺)`.
    ZPlus,
    /// αβ with α − β = 1: α·(positive part) − β·(negative part).
    AlphaBeta { alpha: f64, beta: f64 },
    /// Generalised γ (Andéol et al. 2021, Zennit): weights `W + γ·W^±` chosen by the sign of
    /// the output.
    Gamma(f64),
    /// Relevance spread uniformly over the receptive field (weights and inputs set to 1).
    Flat,
    /// `W²` with unit inputs (for unbounded first layers).
    WSquare,
    /// z^B for inputs bounded in `[low, high]` (the first layer on pixels).
    ZBox { low: f64, high: f64 },
}

impl LayerRule {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Gradient => "gradient",
            Self::Epsilon(_) => "epsilon",
            Self::ZPlus => "zplus",
            Self::AlphaBeta { .. } => "alpha_beta",
            Self::Gamma(_) => "gamma",
            Self::Flat => "flat",
            Self::WSquare => "wsquare",
            Self::ZBox { .. } => "zbox",
        }
    }

    /// Checks the rule's parameters (α − β = 1, finite ε ≥ 0, low < high, …).
    pub fn validate(&self) -> crate::Result<()> {
        let bad = |reason: String| {
            Err(crate::error::invalid(
                "layer rule",
                format!("{}: {reason}", self.name()),
            ))
        };
        match *self {
            Self::Epsilon(e) if !(e >= 0.0 && e.is_finite()) => {
                bad(format!("ε must be finite and ≥ 0, got {e}"))
            }
            Self::AlphaBeta { alpha, beta }
                if !(alpha >= 0.0 && beta >= 0.0 && (alpha - beta - 1.0).abs() < 1e-12) =>
            {
                bad(format!(
                    "need α, β ≥ 0 and α − β = 1, got α = {alpha}, β = {beta}"
                ))
            }
            Self::Gamma(g) if !(g >= 0.0 && g.is_finite()) => {
                bad(format!("γ must be finite and ≥ 0, got {g}"))
            }
            Self::ZBox { low, high } if !(low < high && low.is_finite() && high.is_finite()) => {
                bad(format!("need finite low < high, got [{low}, {high}]"))
            }
            _ => Ok(()),
        }
    }
}

impl crate::rule::Rule for LayerRule {
    fn name(&self) -> String {
        LayerRule::name(self).to_string()
    }

    fn layer(&self, l: &crate::rule::LayerInput) -> Result<crate::rule::Propagation> {
        if *self == LayerRule::Gradient {
            return Ok(crate::rule::Propagation::Gradient);
        }
        Ok(crate::rule::Propagation::Terms(self.groups(l)?))
    }

    fn treatment(&self, kind: crate::rule::LayerKind) -> crate::Result<crate::rule::Treatment> {
        match *self {
            LayerRule::Gradient => Ok(crate::rule::Treatment::Exact),
            LayerRule::Epsilon(epsilon) => Ok(crate::rule::Treatment::Conservative { epsilon }),
            _ => Err(crate::error::invalid(
                "composite",
                format!(
                    "rule {} cannot be applied to a {kind:?} op: use gradient (exact) or epsilon (conservative)",
                    LayerRule::name(self)
                ),
            )),
        }
    }

    fn validate(&self) -> crate::Result<()> {
        LayerRule::validate(self)
    }

    fn wants_positive_output(&self) -> bool {
        *self == LayerRule::ZPlus
    }
}

/// The affine map a rule is applied to.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Affine {
    Linear,
    Conv(ConvGeometry),
    /// Average pooling; its "weight" is implicit (1/k² per window).
    AvgPool(crate::ops::pool::PoolGeometry),
}

impl Affine {
    pub(crate) fn forward(&self, x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
        match self {
            Affine::Linear => crate::ops::linear::forward(x, w, b),
            Affine::Conv(g) => crate::ops::conv::forward_no_grad(x, w, b, *g),
            Affine::AvgPool(p) => crate::ops::pool::avg_pool(x, *p),
        }
    }

    /// `input ⊙ Lᵀ g`, fused into the conv kernel on the CPU.
    fn transpose_times(
        &self,
        g: &Tensor,
        w: &Tensor,
        x: &Tensor,
        input: &Tensor,
    ) -> Result<Tensor> {
        if let Affine::Conv(geom) = self {
            if input.dims() == x.dims() {
                if let Some(r) = crate::ops::conv::input_grad_times(g, w, input, *geom)? {
                    return Ok(r);
                }
            }
        }
        input * self.transpose(g, w, x)?
    }

    /// `Lᵀ g`: the gradient w.r.t. the input (shaped like `x`) of `⟨L(x), g⟩`.
    pub(crate) fn transpose(&self, g: &Tensor, w: &Tensor, x: &Tensor) -> Result<Tensor> {
        match self {
            Affine::Linear => crate::ops::linear::input_grad(g, w, x),
            Affine::Conv(geom) => {
                let (_, _, h, wd) = x.dims4()?;
                crate::ops::conv::input_grad(g, w, *geom, (h, wd))
            }
            Affine::AvgPool(p) => {
                let (_, _, h, wd) = x.dims4()?;
                crate::ops::pool::avg_pool_input_grad(g, *p, (h, wd))
            }
        }
    }
}

#[derive(PartialEq, Clone, Copy)]
enum Part {
    Pos,
    Neg,
    Any,
}

fn pos(t: &Tensor) -> Result<Tensor> {
    t.relu()
}
fn neg(t: &Tensor) -> Result<Tensor> {
    t.neg()?.relu()?.neg()
}

/// The backward of a linear / conv layer (or an average pool) under a rule.
pub(crate) struct LayerBackward {
    pub affine: Affine,
    pub kind: crate::rule::LayerKind,
    pub rule: RuleRef,
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    /// z⁺'s normaliser `W⁺x + b⁺`, when the forward computed it alongside `Wx + b` (an input
    /// known to be ≥ 0, see `ops::conv::forward_with_positive`).
    pub zplus: Option<Tensor>,
}

impl LayerBackward {
    pub fn new(
        affine: Affine,
        kind: crate::rule::LayerKind,
        rule: RuleRef,
        weight: &Tensor,
        bias: Option<&Tensor>,
    ) -> Self {
        Self {
            affine,
            kind,
            rule,
            weight: weight.clone(),
            bias: bias.cloned(),
            zplus: None,
        }
    }
}

impl LayerRule {
    /// The built-in rules' term tables (Zennit's), with the terms that add exactly nothing
    /// dropped: after a ReLU the negative part of the input is identically zero.
    fn groups(&self, l: &crate::rule::LayerInput) -> Result<Vec<Group>> {
        let (x, z, w, b) = (l.input, l.output, l.weight, l.bias);
        let t = |sign: f64, input: Tensor, weight: Tensor, bias: Option<Tensor>| {
            (
                Part::Any,
                Term {
                    sign,
                    input,
                    weight,
                    bias,
                },
            )
        };
        let sign_split = matches!(
            self,
            LayerRule::ZPlus | LayerRule::AlphaBeta { .. } | LayerRule::Gamma(_)
        );
        let f = || x.flatten_all()?.to_dtype(candle_core::DType::F32);
        let min = if l.positive_output.is_some() {
            0.0
        } else if sign_split {
            f()?.min(0)?.to_scalar::<f32>()?
        } else {
            -1.0
        };
        let max = if sign_split && min < 0.0 {
            f()?.max(0)?.to_scalar::<f32>()?
        } else {
            1.0
        };
        let keep = |p: Part| !((min >= 0.0 && p == Part::Neg) || (max <= 0.0 && p == Part::Pos));
        let map_b = |f: fn(&Tensor) -> Result<Tensor>| b.map(f).transpose();
        // Each split is a pass over the activations. Rules without a sign split never read
        // them; for x ≥ 0 (after a ReLU) x is its own positive part and the negative terms are
        // dropped by `keep` (and symmetrically for x ≤ 0), so x stands in for both.
        let (xp, xn) = if !sign_split || min >= 0.0 || max <= 0.0 {
            (x.clone(), x.clone())
        } else {
            (pos(x)?, neg(x)?)
        };
        let (wp, wn) = (pos(w)?, neg(w)?);
        let tp = |input: Tensor, weight: Tensor, bias: Option<Tensor>| {
            (
                Part::Pos,
                Term {
                    sign: 1.0,
                    input,
                    weight,
                    bias,
                },
            )
        };
        let tn = |input: Tensor, weight: Tensor, bias: Option<Tensor>| {
            (
                Part::Neg,
                Term {
                    sign: 1.0,
                    input,
                    weight,
                    bias,
                },
            )
        };
        let group = |coef: f64, terms: Vec<(Part, Term)>, mask: Option<Tensor>| (coef, terms, mask);
        let groups = match *self {
            LayerRule::Gradient | LayerRule::Epsilon(_) => {
                vec![group(
                    1.0,
                    vec![t(1.0, x.clone(), w.clone(), b.cloned())],
                    None,
                )]
            }
            LayerRule::ZPlus => vec![group(
                1.0,
                vec![tp(xp, wp, map_b(pos)?), tn(xn, wn, None)],
                None,
            )],
            LayerRule::AlphaBeta { alpha, beta } => vec![
                group(
                    alpha,
                    vec![
                        tp(xp.clone(), wp.clone(), map_b(pos)?),
                        tn(xn.clone(), wn.clone(), None),
                    ],
                    None,
                ),
                group(-beta, vec![tp(xp, wn, map_b(neg)?), tn(xn, wp, None)], None),
            ],
            LayerRule::Gamma(g) => {
                let (w_up, w_dn) = ((w + (&wp * g)?)?, (w + (&wn * g)?)?);
                let (b_up, b_dn) = match b {
                    Some(b) => (Some((b + (pos(b)? * g)?)?), Some((b + (neg(b)? * g)?)?)),
                    None => (None, None),
                };
                let dt = z.dtype();
                vec![
                    group(
                        1.0,
                        vec![
                            tp(xp.clone(), w_up.clone(), b_up),
                            tn(xn.clone(), w_dn.clone(), None),
                        ],
                        Some(z.gt(0.0)?.to_dtype(dt)?),
                    ),
                    group(
                        1.0,
                        vec![tp(xp, w_dn, b_dn), tn(xn, w_up, None)],
                        Some(z.lt(0.0)?.to_dtype(dt)?),
                    ),
                ]
            }
            LayerRule::Flat => vec![group(
                1.0,
                vec![t(1.0, x.ones_like()?, w.ones_like()?, None)],
                None,
            )],
            LayerRule::WSquare => vec![group(
                1.0,
                vec![t(
                    1.0,
                    x.ones_like()?,
                    w.sqr()?,
                    b.map(|b| b.sqr()).transpose()?,
                )],
                None,
            )],
            LayerRule::ZBox { low, high } => vec![group(
                1.0,
                vec![
                    t(1.0, x.clone(), w.clone(), b.cloned()),
                    t(-1.0, x.ones_like()?.affine(low, 0.0)?, wp, map_b(pos)?),
                    t(-1.0, x.ones_like()?.affine(high, 0.0)?, wn, map_b(neg)?),
                ],
                None,
            )],
        };
        // ε normalises by the layer's own output, which the forward already computed, and
        // so does z⁺ when the forward stacked W⁺ beside W.
        let normaliser = match self {
            LayerRule::Epsilon(_) => Some(z.clone()),
            LayerRule::ZPlus => l.positive_output.cloned(),
            _ => None,
        };
        let stabilizer = match self {
            LayerRule::Epsilon(e) => *e,
            _ => DEFAULT_STABILIZER,
        };
        Ok(groups
            .into_iter()
            .map(|(coef, terms, mask)| Group {
                coef,
                terms: terms
                    .into_iter()
                    .filter(|(p, _)| keep(*p))
                    .map(|(_, t)| t)
                    .collect(),
                mask,
                normaliser: normaliser.clone(),
                stabilizer,
            })
            .filter(|g| !g.terms.is_empty())
            .collect())
    }
}

impl InputGrad for LayerBackward {
    fn name(&self) -> &'static str {
        "candle-explain-lrp-layer"
    }

    fn input_grad(&self, x: &Tensor, z: &Tensor, r: &Tensor) -> Result<Tensor> {
        let plain = self.rule.downcast::<LayerRule>() == Some(&LayerRule::Gradient);
        if plain {
            return self.affine.transpose(r, &self.weight, x);
        }
        // The rules divide by the layer's output, which half precision rounds coarsely near
        // zero: run them in f32 (the output recomputed there too) and round once at the end.
        if is_half(x.dtype()) {
            let up = |t: &Tensor| t.to_dtype(DType::F32);
            let f32_layer = LayerBackward::new(
                self.affine,
                self.kind,
                self.rule.clone(),
                &up(&self.weight)?,
                self.bias.as_ref().map(up).transpose()?.as_ref(),
            );
            let x32 = up(x)?;
            let z32 = self
                .affine
                .forward(&x32, &f32_layer.weight, f32_layer.bias.as_ref())?;
            return f32_layer
                .input_grad(&x32, &z32, &up(r)?)?
                .to_dtype(x.dtype());
        }
        let input = crate::rule::LayerInput {
            kind: self.kind,
            input: x,
            weight: &self.weight,
            bias: self.bias.as_ref(),
            output: z,
            positive_output: self.zplus.as_ref(),
        };
        let groups = match self.rule.layer(&input)? {
            Propagation::Gradient => return self.affine.transpose(r, &self.weight, x),
            Propagation::Terms(groups) => groups,
        };
        let mut acc: Option<Tensor> = None;
        for g in groups {
            let mut zg = g.normaliser.clone();
            let known = zg.is_some();
            for t in g.terms.iter().filter(|_| !known) {
                let o = (self.affine.forward(&t.input, &t.weight, t.bias.as_ref())? * t.sign)?;
                zg = Some(match zg {
                    None => o,
                    Some(a) => (a + o)?,
                });
            }
            let Some(zg) = zg else {
                continue;
            };
            let mut s = stabilized_div(r, &zg, g.stabilizer)?;
            if let Some(m) = &g.mask {
                s = (s * m)?;
            }
            for t in &g.terms {
                let c = self.affine.transpose_times(&s, &t.weight, x, &t.input)?;
                let c = if t.sign * g.coef == 1.0 {
                    c
                } else {
                    (c * (t.sign * g.coef))?
                };
                acc = Some(match acc {
                    None => c,
                    Some(a) => (a + c)?,
                });
            }
        }
        // No terms left means an all-zero input: it gets no relevance.
        match acc {
            Some(a) => Ok(a),
            None => x.zeros_like(),
        }
    }
}

/// Zennit's Norm rule for one summand of `y = a + b`: `R_a = a ⊙ R / stab(y)` (so the
/// summands share the relevance in proportion to their contribution).
pub(crate) struct SumShare {
    pub total: Tensor,
    pub eps: f64,
}

impl InputGrad for SumShare {
    fn name(&self) -> &'static str {
        "candle-explain-sum-norm"
    }
    fn input_grad(&self, a: &Tensor, _y: &Tensor, r: &Tensor) -> Result<Tensor> {
        if is_half(a.dtype()) {
            let up = |t: &Tensor| t.to_dtype(DType::F32);
            return (up(a)? * stabilized_div(&up(r)?, &up(&self.total)?, self.eps)?)?
                .to_dtype(a.dtype());
        }
        a * stabilized_div(r, &self.total, self.eps)?
    }
}

impl PartialEq<LayerRule> for RuleRef {
    fn eq(&self, other: &LayerRule) -> bool {
        self.downcast::<LayerRule>() == Some(other)
    }
}
