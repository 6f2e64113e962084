//! The rule context: what a model asks for every operation a rule may replace.
//!
//! `RuleCtx` is a small facade over its parts:
//! - the mode ([`Mode`]): which forward this is (plain, inference, memory probe, DeepLIFT's
//!   recording of the baseline, or a rule pass), and each op's policy for it below;
//! - [`selection`]: which rule each op gets (names, call order, the composite, the defaults);
//! - [`tape`]: DeepLIFT's recorded baseline activations and their checked replay;
//! - [`probe`]: the chunker's memory reading;
//! - [`taps`]: named values kept with their gradients (Grad-CAM).
//!
//! Which kernel computes an op (CPU, CUDA, generic) is the op's own business (`ops::linear`,
//! `ops::conv`, …): the context never looks at the device.

use crate::activation::Activation;
use crate::composite::{Canonizer, Composite, LayerKind};
use crate::layer_rules::{Affine, LayerBackward, LayerRule, SumShare};
use crate::ops::conv::ConvGeometry;
use crate::ops::pool::{
    max_pool, max_pool_input_grad, max_pool_no_grad, max_pool_rescale_grad, PoolGeometry,
};
use crate::ops::{boundary, InputGrad};
use crate::rule::{RuleRef, Treatment};
use crate::rules::{ActBackward, ActRule, RuleActBackward};
use crate::Result;
use candle_core::Tensor;
use std::cell::Cell;

mod probe;
mod reveal_cancel;
mod selection;
mod sequence;
mod tape;
mod taps;

use tape::{Entry, Tape};

/// Stabiliser of DeepLIFT's max-pool rule (Captum's value).
const POOL_RESCALE_EPS: f64 = 1e-10;

#[derive(Debug, Clone)]
enum Mode {
    /// Ordinary ops, differentiable w.r.t. inputs *and* weights (prediction, training).
    Plain,
    /// Custom boundary ops whose backward is the rule's and returns only input gradients.
    Rule(ActRule),
    /// Forward only; stores the input of every nonlinearity and pool (DeepLIFT's baseline pass).
    Record,
    /// Forward only; counts the bytes of every intermediate (the chunker's memory probe).
    Probe,
    /// Forward only, on the fastest kernels (no gradient of anything).
    Inference,
}

/// The context a model's forward runs in.
///
/// One model definition serves every purpose: [`RuleCtx::plain`] for prediction and
/// training, [`RuleCtx::rule`] for the gradient family of methods (the backward of every
/// nonlinearity follows the rule; linear, conv and pooling layers backpropagate the exact
/// input gradient through ops of ours that never touch the weights' gradients),
/// [`RuleCtx::composite`] for LRP, and the record/replay pair for DeepLIFT.
///
/// Operations are identified by the order in which the forward asks for them (and by the
/// names it is inside of, [`RuleCtx::enter`]), so a model's forward must ask for the same
/// operations in the same order for the baseline and the input.
pub struct RuleCtx {
    mode: Mode,
    tape: Tape,
    probe: probe::Probe,
    select: selection::Selection,
    taps: taps::Taps,
    /// Batch statistics in BatchNorm (and their running averages updated): training only.
    training: bool,
    /// Rule-bearing operations (nonlinearities, linear / conv layers, pools, sums, LayerNorm,
    /// attention, gates) the forward asked this context for.
    routed: Cell<usize>,
    /// The forward declared it has none (`RuleCtx::rule_free`).
    rule_free: Cell<bool>,
    /// Inputs beside the attributed one for the rows being run (`WithInputs`), innermost last.
    inputs: std::cell::RefCell<Vec<Vec<(String, Tensor)>>>,
    /// AttnLRP (Achtibat et al. 2024): attention and gates share relevance evenly among the
    /// operands of their products ([`RuleCtx::attn_lrp`]).
    uniform_products: bool,
    /// A recording pass also keeps every linear and conv layer's input (for RevealCancel).
    record_linear_inputs: bool,
    /// DeepLIFT RevealCancel's state ([`RuleCtx::reveal_cancel`]).
    reveal_cancel: Option<reveal_cancel::RevealCancel>,
}

/// Withdraws the inputs given by [`RuleCtx::provide_inputs`] when dropped.
#[must_use = "the inputs apply until this guard is dropped"]
pub struct InputsGuard<'a>(&'a RuleCtx);

impl Drop for InputsGuard<'_> {
    fn drop(&mut self) {
        self.0.inputs.borrow_mut().pop();
    }
}

/// Leaves the name entered by [`RuleCtx::enter`] when dropped.
#[must_use = "the name applies until this guard is dropped"]
pub struct NameGuard<'a>(&'a RuleCtx);

impl Drop for NameGuard<'_> {
    fn drop(&mut self) {
        self.0.select.leave();
    }
}

impl RuleCtx {
    fn new(mode: Mode) -> Self {
        Self {
            mode,
            tape: Tape::default(),
            probe: probe::Probe::default(),
            select: selection::Selection::default(),
            taps: taps::Taps::default(),
            training: false,
            routed: Cell::new(0),
            rule_free: Cell::new(false),
            inputs: std::cell::RefCell::new(vec![]),
            uniform_products: false,
            record_linear_inputs: false,
            reveal_cancel: None,
        }
    }

    /// Ordinary forward; gradients by Candle's autograd (weights included).
    pub fn plain() -> Self {
        Self::new(Mode::Plain)
    }

    /// [`RuleCtx::plain`] for a training step: BatchNorm layers normalise with the batch's
    /// statistics and update their running averages in place (PyTorch's `model.train()`).
    pub fn training() -> Self {
        let mut ctx = Self::plain();
        ctx.training = true;
        ctx
    }

    /// Whether this is a training forward (see [`RuleCtx::training`]).
    pub fn is_training(&self) -> bool {
        self.training
    }

    /// Every nonlinearity's backward follows `rule`. `ActRule::Rescale` needs the baseline's
    /// activations: use [`RuleCtx::rescale`].
    pub fn rule(rule: ActRule) -> Result<Self> {
        if matches!(rule, ActRule::Rescale { .. }) {
            return Err(crate::error::invalid(
                "rule",
                "Rescale needs the baseline's activations: use RuleCtx::rescale",
            ));
        }
        Ok(Self::new(Mode::Rule(rule)))
    }

    /// AttnLRP (Achtibat et al. 2024) in gradient form, as LXT computes it: relevance is
    /// `x ⊙ ∂S/∂x` with the backward changed to
    /// - elementwise nonlinearities: the identity rule, `f(z) / (z + ε·sign z)`;
    /// - LayerNorm / RMSNorm: the normaliser held constant;
    /// - attention: the softmax differentiated exactly, and each product shared evenly
    ///   between its operands (the uniform rule): `q kᵀ` gives q and k half, `P v` gives P
    ///   and v half, so q and k get a quarter of their gradient and v half;
    /// - a gate `g ⊙ s` (SwiGLU): half to each operand;
    /// - linear layers: their gradient (the ε-rule, through the identity-rule factors).
    ///
    /// With `CausalLm`-style models on bias-free weights the relevance of the input sums to
    /// the explained logit up to what the softmax rule loses (the paper's rule is not
    /// conservative through the softmax).
    pub fn attn_lrp(epsilon: f64) -> Result<Self> {
        let mut ctx = Self::rule(ActRule::Epsilon(epsilon))?;
        ctx.uniform_products = true;
        Ok(ctx)
    }

    /// Layer rules from a composite (LRP), and its rule for the nonlinearities.
    pub fn composite(c: Composite) -> Result<Self> {
        c.validate()?;
        let mut ctx = Self::rule(c.activation)?;
        ctx.select.composite = Some(c);
        Ok(ctx)
    }

    /// The model has `n` linear / conv layers: what `Selector::last` needs.
    pub fn with_layer_count(mut self, n: usize) -> Self {
        self.select.layer_count = Some(n);
        self
    }

    /// Also keep the values the model taps under these names (see [`RuleCtx::tap`]).
    pub fn capturing(mut self, names: &[&str]) -> Self {
        self.taps.capture = names.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Operations asked of this context until the guard drops are named `name` (composites
    /// select rules by name). Layers loaded through a `VarBuilder` name themselves with their
    /// path; a model names other parts (an attention block, a residual sum) with this.
    pub fn enter(&self, name: &str) -> NameGuard<'_> {
        self.select.enter(name);
        NameGuard(self)
    }

    /// [`RuleCtx::enter`] for a part of the enclosing named part: `parent.child`, or `child`
    /// at the top (how `Sequential` names its layers by position).
    pub fn enter_child(&self, child: &str) -> NameGuard<'_> {
        self.select.enter_child(child);
        NameGuard(self)
    }

    /// The name operations get now (what composites match), if any.
    pub fn current_name(&self) -> Option<String> {
        self.select.current_name()
    }

    /// Puts `value` in place of the value the model taps under `name` (layer methods that
    /// move a layer's activation along a path); the forward continues from `value`.
    pub fn replacing(mut self, name: &str, value: Tensor) -> Self {
        self.taps.replace = Some((name.to_string(), value));
        self
    }

    /// The value tapped under `name` in the last forward, still attached to its graph (for
    /// gradients of a neuron w.r.t. the input), or the error naming the model's taps.
    pub fn captured_live(&self, name: &str) -> Result<Tensor> {
        self.taps.live(name)
    }

    /// Whether the last forward passed a tap named `name` (or the error naming the taps).
    pub fn require_tap(&self, name: &str) -> Result<()> {
        if self.taps.seen(name) {
            return Ok(());
        }
        self.taps.captured(name).map(|_| ())
    }

    /// Marks an intermediate value with a name (models use PyTorch's module names, e.g.
    /// `conv_layers.7`). Identity; contexts built with [`RuleCtx::capturing`] keep it.
    pub fn tap(&self, name: &str, t: &Tensor) -> Result<Tensor> {
        self.taps.tap(name, t)
    }

    /// The value tapped under `name` in the last forward and the gradient that reached it in
    /// the last backward (`None` before any backward, or when nothing flowed through it),
    /// or an error naming the taps the model offers.
    pub fn captured(&self, name: &str) -> Result<(Tensor, Option<Tensor>)> {
        self.taps.captured(name)
    }

    /// A forward-only context that records what DeepLIFT's Rescale needs.
    pub fn recording() -> Self {
        Self::new(Mode::Record)
    }

    /// A recording pass for [`RuleCtx::reveal_cancel`]: it keeps linear and conv layers' inputs too.
    pub fn recording_linear_inputs() -> Self {
        let mut ctx = Self::new(Mode::Record);
        ctx.record_linear_inputs = true;
        ctx
    }

    /// DeepLIFT RevealCancel against a [`RuleCtx::recording_linear_inputs`] pass of the
    /// reference (`ctx::reveal_cancel`): every nonlinearity must directly follow a linear
    /// or conv layer; max-pools take the Rescale pools' rule (Captum's; the package's default
    /// routes the multiplier to the input's maximum instead).
    pub fn reveal_cancel(recorded: RuleCtx, threshold: f64) -> Result<Self> {
        if !recorded.record_linear_inputs {
            return Err(crate::Error::Unsupported(
                "RevealCancel replays a RuleCtx::recording_linear_inputs pass, not a plain recording".into(),
            ));
        }
        let mut ctx = Self::rescale(recorded, threshold);
        ctx.reveal_cancel = Some(reveal_cancel::RevealCancel::default());
        Ok(ctx)
    }

    /// DeepLIFT Rescale against the activations recorded by a [`RuleCtx::recording`] pass.
    pub fn rescale(recorded: RuleCtx, threshold: f64) -> Self {
        let mut ctx = Self::new(Mode::Rule(ActRule::Rescale { threshold }));
        ctx.tape = Tape::replaying(recorded.tape.into_entries());
        ctx
    }

    /// After the forward of a [`RuleCtx::rescale`] context: an error unless it replayed
    /// every recorded operation (the input took the baseline's path through the model).
    pub fn finish_replay(&self) -> Result<()> {
        self.tape.finish()
    }

    /// A forward-only context on the fastest kernels: for perturbation methods and scores.
    pub fn inference() -> Self {
        Self::new(Mode::Inference)
    }

    /// A forward-only context that measures activation memory.
    pub fn probe() -> Self {
        Self::new(Mode::Probe)
    }

    /// Bytes of all intermediates seen by a probe forward.
    pub fn probed_bytes(&self) -> usize {
        self.probe.bytes()
    }

    /// The input named `name` given beside the attributed one (`WithInputs`), for the rows
    /// of this forward; `None` when the caller gave none by that name.
    pub fn input(&self, name: &str) -> Option<Tensor> {
        self.inputs
            .borrow()
            .last()
            .and_then(|v| v.iter().find(|(n, _)| n == name).map(|(_, t)| t.clone()))
    }

    /// Makes `inputs` what [`RuleCtx::input`] answers until the guard drops.
    pub fn provide_inputs(&self, inputs: &[(String, Tensor)]) -> InputsGuard<'_> {
        self.inputs.borrow_mut().push(inputs.to_vec());
        InputsGuard(self)
    }

    /// Declares that the forward has no operation a rule could replace (a polynomial probe,
    /// a linear map written with tensor ops on purpose): rule-based methods then run it with
    /// the plain gradient instead of refusing it (`Error::RulesNotApplied`).
    pub fn rule_free(&self) {
        self.rule_free.set(true);
    }

    /// How many rule-bearing operations the forward asked this context for.
    pub fn routed_ops(&self) -> usize {
        self.routed.get()
    }

    /// Linear and conv layers the forward asked for.
    pub fn layers_seen(&self) -> usize {
        self.select.layers_seen()
    }

    /// The rule this context applies to nonlinearities, if any.
    pub fn act_rule(&self) -> Option<ActRule> {
        match self.mode {
            Mode::Rule(r) => Some(r),
            _ => None,
        }
    }

    /// After a rule pass: an error when the rules cannot have applied because the model's
    /// forward routed nothing through this context (its result would silently be the plain
    /// gradient). Plain-gradient contexts pass.
    pub fn check_rules_applied(&self) -> Result<()> {
        let Mode::Rule(rule) = self.mode else {
            return Ok(());
        };
        let composite = self.select.composite.as_ref();
        if let Some(c) = composite {
            if c.needs_layer_count() && self.select.layer_count.is_none() {
                return Err(crate::error::invalid(
                    "composite",
                    "Selector::last needs the model's number of linear / conv layers: use Lrp \
                     (which counts them), or RuleCtx::composite(c)?.with_layer_count(n)",
                ));
            }
        }
        if self.rule_free.get() || (rule == ActRule::Gradient && composite.is_none()) {
            return Ok(());
        }
        // A composite that selects layers needs layers routed through the context; anything
        // else needs at least one rule-bearing op.
        let wants_layers = composite.is_some_and(|c| {
            c.layers
                .iter()
                .any(|(s, _)| s.kind != Some(LayerKind::Activation))
        });
        let applied = match wants_layers {
            true => self.select.layers_seen() > 0,
            false => self.routed.get() > 0,
        };
        if applied {
            return Ok(());
        }
        let method = match (rule, &self.select.composite) {
            (_, Some(_)) => "LRP (a composite)",
            (ActRule::Epsilon(_), None) => "ε-LRP",
            (ActRule::Rescale { .. }, None) => "DeepLIFT",
            (ActRule::GuidedBackprop, None) => "guided backprop (and Guided Grad-CAM)",
            (ActRule::Deconvnet, None) => "deconvnet",
            _ => "this rule",
        };
        Err(crate::Error::RulesNotApplied {
            method: method.to_string(),
        })
    }

    fn routed(&self) {
        self.routed.set(self.routed.get() + 1);
    }

    fn count(&self, t: &Tensor) {
        if let Mode::Probe = self.mode {
            self.probe.count(t);
        }
    }

    /// `f(z)` for an elementwise nonlinearity.
    pub fn activation(&self, act: Activation, z: &Tensor) -> Result<Tensor> {
        self.routed();
        // RevealCancel pairs the nonlinearity with the layer before it (`ctx::reveal_cancel`).
        if let (Mode::Rule(_), Some(rc)) = (&self.mode, &self.reveal_cancel) {
            let zref = self.tape.next(Entry::Activation, z)?;
            return rc.activation(act, z, &zref);
        }
        match self.mode {
            Mode::Plain | Mode::Inference => Ok(act.forward(z)?),
            Mode::Probe => {
                let a = act.forward(z)?;
                self.count(&a);
                Ok(a)
            }
            Mode::Record => {
                self.tape.record(Entry::Activation, z);
                Ok(act.forward(z)?)
            }
            Mode::Rule(rule) => {
                let chosen = self.select.activation(rule);
                let Some(&builtin) = chosen.downcast::<ActRule>() else {
                    return self.activation_by(act, z, chosen);
                };
                let zref = match builtin {
                    ActRule::Rescale { .. } => Some(self.tape.next(Entry::Activation, z)?),
                    _ => None,
                };
                let back = ActBackward {
                    act,
                    rule: builtin,
                    zref,
                };
                use crate::ops::activation::smooth::SmoothActCpu;
                if SmoothActCpu::applies(act.into(), z) {
                    return Ok(crate::ops::fused1(
                        &z.contiguous()?,
                        SmoothActCpu(act.into()),
                        back,
                    )?);
                }
                let a = act.forward(&z.detach())?;
                Ok(boundary(z, &a, back)?)
            }
        }
    }

    /// A nonlinearity under a rule of the user's.
    fn activation_by(&self, act: Activation, z: &Tensor, rule: RuleRef) -> Result<Tensor> {
        let zref = if rule.needs_reference() {
            Some(self.tape.next(Entry::Activation, z)?)
        } else {
            None
        };
        let a = act.forward(&z.detach())?;
        Ok(boundary(z, &a, RuleActBackward { act, rule, zref })?)
    }

    /// `x · wᵀ + b` over the last dimension of `x` (PyTorch's `Linear`; `w` is `(out, in)`).
    pub fn linear(&self, x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
        self.routed();
        let y = match self.mode {
            Mode::Plain => return Ok(crate::ops::linear::forward(x, w, b)?),
            Mode::Rule(_) => {
                let rule = self.select.next_layer(LayerKind::Linear);
                let back = LayerBackward::new(Affine::Linear, LayerKind::Linear, rule, w, b);
                let y = crate::ops::linear::forward_with_rule(x, w, b, back)?;
                if let Some(rc) = &self.reveal_cancel {
                    rc.affine(Affine::Linear, x, &self.tape.next(Entry::LinearInput, x)?, w, &y)?;
                }
                y
            }
            Mode::Record | Mode::Probe | Mode::Inference => {
                self.select.next_layer(LayerKind::Linear);
                if self.record_linear_inputs {
                    self.tape.record(Entry::LinearInput, x);
                }
                crate::ops::linear::forward(x, w, b)?
            }
        };
        self.count(&y);
        Ok(y)
    }

    /// 2-D convolution (`w` is `(Cout, Cin/groups, kh, kw)`, PyTorch's layout).
    pub fn conv2d(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        g: ConvGeometry,
    ) -> Result<Tensor> {
        self.routed();
        let y = match self.mode {
            Mode::Plain if self.training => return Ok(crate::train::conv_forward(x, w, b, g)?),
            Mode::Plain => return Ok(crate::ops::conv::forward(x, w, b, g)?),
            Mode::Rule(_) => {
                let rule = self.select.next_layer(LayerKind::Conv2d);
                let positive = rule.wants_positive_output();
                let mut back = LayerBackward::new(Affine::Conv(g), LayerKind::Conv2d, rule, w, b);
                let xd = x.detach();
                let y = match positive {
                    true => match crate::ops::conv::forward_with_positive(&xd, w, b, g)? {
                        Some((y, zplus)) => {
                            back.zplus = Some(zplus);
                            y
                        }
                        None => crate::ops::conv::forward_no_grad(&xd, w, b, g)?,
                    },
                    false => crate::ops::conv::forward_no_grad(&xd, w, b, g)?,
                };
                let y = boundary(x, &y, back)?;
                if let Some(rc) = &self.reveal_cancel {
                    rc.affine(Affine::Conv(g), x, &self.tape.next(Entry::LinearInput, x)?, w, &y)?;
                }
                y
            }
            Mode::Record | Mode::Probe | Mode::Inference => {
                self.select.next_layer(LayerKind::Conv2d);
                if self.record_linear_inputs {
                    self.tape.record(Entry::LinearInput, x);
                }
                crate::ops::conv::forward_no_grad(x, w, b, g)?
            }
        };
        self.count(&y);
        Ok(y)
    }

    /// Average pooling (PyTorch's `nn.AvgPool2d(k, s)`): a linear layer without weights.
    pub fn avg_pool2d(&self, x: &Tensor, p: PoolGeometry) -> Result<Tensor> {
        self.routed();
        let y = match self.mode {
            Mode::Plain => return Ok(crate::ops::pool::avg_pool(x, p)?),
            Mode::Rule(_) => {
                let y = crate::ops::pool::avg_pool(&x.detach(), p)?;
                let rule = match self.select.parameter_free(LayerKind::AvgPool2d)? {
                    Treatment::Exact => LayerRule::Gradient,
                    Treatment::Conservative { epsilon } => LayerRule::Epsilon(epsilon),
                };
                let unit = Tensor::ones(1, x.dtype(), x.device())?;
                let back = LayerBackward::new(
                    Affine::AvgPool(p),
                    LayerKind::AvgPool2d,
                    RuleRef::new(rule),
                    &unit,
                    None,
                );
                boundary(x, &y, back)?
            }
            Mode::Record | Mode::Probe | Mode::Inference => crate::ops::pool::avg_pool(x, p)?,
        };
        self.count(&y);
        Ok(y)
    }

    /// An explicit sum of two branches (a residual connection), so that a rule can attach:
    /// under a composite with ε for `LayerKind::Sum` (Zennit's Norm) each branch gets the
    /// relevance in proportion to its contribution; otherwise both get the gradient.
    pub fn add(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        self.routed();
        if let Mode::Rule(_) = self.mode {
            if let Treatment::Conservative { epsilon: eps } =
                self.select.parameter_free(LayerKind::Sum)?
            {
                let total = (a.detach() + b.detach())?;
                let a2 = boundary(
                    a,
                    &a.detach(),
                    SumShare {
                        total: total.clone(),
                        eps,
                    },
                )?;
                let b2 = boundary(b, &b.detach(), SumShare { total, eps })?;
                return Ok((a2 + b2)?);
            }
        }
        let y = (a + b)?;
        self.count(&y);
        Ok(y)
    }

    /// Per-channel affine map `x · scale + shift` (an eval-mode BatchNorm); the gradient
    /// passes through scaled. Under a composite that merges BatchNorms (the LRP presets), a
    /// model must fold them first (`Explainable::canonized`): this is then an error.
    pub fn channel_affine(&self, x: &Tensor, scale: &Tensor, shift: &Tensor) -> Result<Tensor> {
        self.routed();
        if let (Mode::Rule(_), Some(c)) = (&self.mode, &self.select.composite) {
            if c.canonizers.contains(&Canonizer::MergeBatchNorm) {
                return Err(crate::Error::Unsupported(
                    "the composite merges BatchNorms into the layer before them, but this model \
                     runs one unfolded: give the model an Explainable::canonized that folds \
                     them (canonize::fold_conv_batch_norm), or remove the canonizer"
                        .into(),
                ));
            }
        }
        let shape = |t: &Tensor| -> Result<Tensor> {
            let mut d = vec![1; x.rank()];
            d[1] = t.elem_count();
            Ok(t.reshape(d)?)
        };
        let (sc, sh) = (shape(scale)?, shape(shift)?);
        let y = x.broadcast_mul(&sc)?.broadcast_add(&sh)?;
        self.count(&y);
        Ok(y)
    }

    /// Max-pooling whose gradient goes to the first maximum of every window (PyTorch's
    /// convention; Candle's stock backward is wrong, see `ops::pool`). Under DeepLIFT the
    /// pool gets Captum's Rescale-style rule, which keeps completeness exact.
    pub fn max_pool2d(&self, x: &Tensor, p: PoolGeometry) -> Result<Tensor> {
        self.routed();
        let y = match self.mode {
            // Differentiable by autograd: max over a window axis routes to the maximum.
            Mode::Plain => return Ok(max_pool(x, p)?),
            Mode::Record => {
                self.tape.record(Entry::MaxPool, x);
                max_pool_no_grad(x, p)?
            }
            Mode::Probe | Mode::Inference => max_pool_no_grad(x, p)?,
            Mode::Rule(rule) => {
                let y = max_pool_no_grad(&x.detach(), p)?;
                let xref = match rule {
                    ActRule::Rescale { .. } => Some(self.tape.next(Entry::MaxPool, x)?),
                    _ => None,
                };
                boundary(x, &y, PoolBackward { p, xref })?
            }
        };
        self.count(&y);
        Ok(y)
    }
}

struct PoolBackward {
    p: PoolGeometry,
    xref: Option<Tensor>,
}

impl InputGrad for PoolBackward {
    fn name(&self) -> &'static str {
        "candle-explain-max-pool2d"
    }
    fn input_grad(&self, x: &Tensor, _y: &Tensor, grad: &Tensor) -> candle_core::Result<Tensor> {
        match &self.xref {
            None => max_pool_input_grad(x, self.p, grad),
            Some(xref) => max_pool_rescale_grad(x, xref, self.p, grad, POOL_RESCALE_EPS),
        }
    }
}
