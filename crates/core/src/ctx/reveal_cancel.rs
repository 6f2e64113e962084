//! DeepLIFT's RevealCancel rule (Shrikumar, Greenside & Kundaje 2017, §3.5.3), as the
//! authors' `deeplift` package computes it: a linear layer splits its output's difference
//! from the reference into the part its positive input terms make and the part its negative
//! ones make, `Δz = P + N`,
//!
//! `P_j = Σ_i [d_i w_ji > 0] d_i w_ji`,  `N_j = Σ_i [d_i w_ji < 0] d_i w_ji`  (`d = x − x̄`),
//!
//! and the nonlinearity after it gives each part the average of its effect with and without
//! the other: `Δy⁺ = ½(f(z̄ + P) − f(z̄)) + ½(f(z̄ + N + P) − f(z̄ + N))` (and `Δy⁻` the other
//! way round), multipliers `s⁺ = Δy⁺ / P`, `s⁻ = Δy⁻ / N`. Backward, the two multipliers reach
//! each input through the weights of the matching sign — the input's own difference decides
//! which is which — and an input with `d_i = 0` takes their mean:
//!
//! `g_i = Σ_j [d_i > 0](m⁺_j w⁺_ji + m⁻_j w⁻_ji) + [d_i < 0](m⁺_j w⁻_ji + m⁻_j w⁺_ji) + [d_i = 0] ½(m⁺_j + m⁻_j) w_ji`.
//!
//! A convolution is the same with `w x` a convolution and `wᵀ m` its transpose (the package
//! does the same for its `Conv2D`). The pair (linear or conv layer, nonlinearity) becomes one
//! boundary from the layer's input to the nonlinearity's output; a nonlinearity that does not
//! directly follow one of them (after a norm, a sum or a pool) is an error.

use crate::layer_rules::Affine;
use crate::ops::InputGrad;
use crate::{Activation, Error, Result};
use candle_core::{Tensor, TensorId};
use std::cell::RefCell;

/// A linear or conv layer's output waiting for its nonlinearity.
pub(crate) struct Pending {
    /// The layer's map, its input (tracked: the boundary attaches to it) and its weight
    /// (`(out, in)`, or a conv's `(Cout, Cin/groups, kh, kw)`).
    map: Affine,
    x: Tensor,
    w: Tensor,
    /// `x − x̄`, and the output's positive and negative parts.
    d: Tensor,
    pos: Tensor,
    neg: Tensor,
}

#[derive(Default)]
pub(crate) struct RevealCancel {
    pending: RefCell<Vec<(TensorId, Pending)>>,
}

/// `t` nudged away from 0 by 1e-7 where `|t| < 0.5e-7` (the package's guard; 0 goes up).
fn nudge(t: &Tensor) -> candle_core::Result<Tensor> {
    let small = t.abs()?.lt(0.5e-7)?;
    let step = t.ge(0.0)?.where_cond(&t.ones_like()?, &t.ones_like()?.neg()?)?;
    small.where_cond(&(t + (step * 1e-7)?)?, t)
}

impl RevealCancel {
    /// After the layer `z = map(x; w) + b` (linear or conv) with the reference's input
    /// `xref`: remembers what the nonlinearity after it needs.
    pub fn affine(&self, map: Affine, x: &Tensor, xref: &Tensor, w: &Tensor, z: &Tensor) -> Result<()> {
        let d = (x.detach() - xref)?;
        let (wp, wn) = (w.relu()?, w.neg()?.relu()?.neg()?);
        let (dp, dn) = (d.relu()?, d.neg()?.relu()?.neg()?);
        let mm = |a: &Tensor, w: &Tensor| map.forward(a, w, None);
        let pos = (mm(&dp, &wp)? + mm(&dn, &wn)?)?;
        let neg = (mm(&dp, &wn)? + mm(&dn, &wp)?)?;
        let p = Pending { map, x: x.clone(), w: w.clone(), d, pos, neg };
        self.pending.borrow_mut().push((z.id(), p));
        Ok(())
    }

    /// `f(z)` for the nonlinearity after a linear layer, `zref` the reference's `z`: one
    /// boundary from the layer's input with RevealCancel's backward.
    pub fn activation(&self, act: Activation, z: &Tensor, zref: &Tensor) -> Result<Tensor> {
        let p = {
            let mut pending = self.pending.borrow_mut();
            let at = pending.iter().position(|(id, _)| *id == z.id()).ok_or_else(|| {
                Error::Unsupported(
                    "DeepLIFT RevealCancel: a nonlinearity whose input is not the output of a linear or conv layer (norms, sums and pools before a nonlinearity are not supported)".into(),
                )
            })?;
            pending.swap_remove(at).1
        };
        let f = |t: &Tensor| act.forward(t);
        let (pt, nt) = (nudge(&p.pos)?, nudge(&p.neg)?);
        let (zp, zn) = ((zref + &pt)?, (zref + &nt)?);
        let f0 = f(zref)?;
        let half = |a: Tensor, b: Tensor| -> candle_core::Result<Tensor> { (a + b)? * 0.5 };
        let up = half((f(&zp)? - &f0)?, (f(&(&zn + &pt)?)? - f(&zn)?)?)?;
        let down = half((f(&zn)? - &f0)?, (f(&(&zp + &nt)?)? - f(&zp)?)?)?;
        let back = Backward { map: p.map, w: p.w.detach(), d: p.d, s_pos: (up / pt)?, s_neg: (down / nt)? };
        let y = f(&z.detach())?;
        Ok(crate::ops::boundary(&p.x, &y, back)?)
    }
}

struct Backward {
    map: Affine,
    w: Tensor,
    d: Tensor,
    s_pos: Tensor,
    s_neg: Tensor,
}

impl InputGrad for Backward {
    fn name(&self) -> &'static str {
        "candle-explain-reveal-cancel"
    }

    fn input_grad(&self, x: &Tensor, _y: &Tensor, g: &Tensor) -> candle_core::Result<Tensor> {
        let (mp, mn) = ((g * &self.s_pos)?, (g * &self.s_neg)?);
        let (wp, wn) = (self.w.relu()?, self.w.neg()?.relu()?.neg()?);
        // `wᵀ m`: the map's transpose (a conv's is its input gradient).
        let back = |m: &Tensor, w: &Tensor| self.map.transpose(m, w, x);
        let a = (back(&mp, &wp)? + back(&mn, &wn)?)?;
        let b = (back(&mp, &wn)? + back(&mn, &wp)?)?;
        let c = (back(&(&mp + &mn)?, &self.w)? * 0.5)?;
        let zero = self.d.zeros_like()?;
        let pos = self.d.gt(&zero)?;
        let neg = self.d.lt(&zero)?;
        pos.where_cond(&a, &neg.where_cond(&b, &c)?)
    }
}
