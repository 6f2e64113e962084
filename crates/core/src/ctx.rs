//! The rule context: what a model asks for every operation a rule may replace.

use crate::activation::Activation;
use crate::composite::{Composite, LayerKind};
use crate::layer_rules::{in_f32_on_cpu, Affine, LayerBackward, LayerRule, SumShare};
use crate::ops::conv::{conv2d_input_grad, flipped_kernel, ConvGeometry};
use crate::ops::pool::{
    max_pool, max_pool_input_grad, max_pool_no_grad, max_pool_rescale_grad, PoolGeometry,
};
use crate::ops::{boundary, InputGrad};
use crate::rules::{ActBackward, ActRule};
use crate::Result;
use candle_core::Tensor;
use std::cell::{Cell, RefCell};
use std::sync::{Arc, Mutex};

/// Stabiliser of DeepLIFT's max-pool rule (Captum's value).
const POOL_RESCALE_EPS: f64 = 1e-10;

mod sequence;

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
/// input gradient through ops of ours that never touch the weights' gradients), and the
/// record/replay pair for DeepLIFT.
///
/// Operations are identified by the order in which the forward asks for them, so a model's
/// forward must ask for the same operations in the same order for the baseline and the input.
pub struct RuleCtx {
    mode: Mode,
    /// Baseline inputs of each nonlinearity / pool, in call order (Rescale only).
    refs: Vec<Tensor>,
    records: RefCell<Vec<Tensor>>,
    cursor: Cell<usize>,
    probe_bytes: Cell<usize>,
    /// Rules for linear / conv layers (LRP); exact gradients when `None`.
    composite: Option<Composite>,
    layer_index: Cell<usize>,
    /// Names of the taps to keep (Grad-CAM), what was kept, and every name seen.
    capture: Vec<String>,
    captured: RefCell<Vec<Captured>>,
    seen: RefCell<Vec<String>>,
    /// Batch statistics in BatchNorm (and their running averages updated): training only.
    training: bool,
}

impl RuleCtx {
    fn new(mode: Mode, refs: Vec<Tensor>) -> Self {
        Self {
            mode,
            refs,
            records: RefCell::new(vec![]),
            cursor: Cell::new(0),
            probe_bytes: Cell::new(0),
            composite: None,
            layer_index: Cell::new(0),
            capture: vec![],
            captured: RefCell::new(vec![]),
            seen: RefCell::new(vec![]),
            training: false,
        }
    }

    /// Ordinary forward; gradients by Candle's autograd (weights included).
    pub fn plain() -> Self {
        Self::new(Mode::Plain, vec![])
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
        Ok(Self::new(Mode::Rule(rule), vec![]))
    }

    /// Layer rules from a composite (LRP), and its rule for the nonlinearities.
    pub fn composite(c: Composite) -> Result<Self> {
        c.validate()?;
        let mut ctx = Self::rule(c.activation)?;
        ctx.composite = Some(c);
        Ok(ctx)
    }

    /// Also keep the values the model taps under these names (see [`RuleCtx::tap`]).
    pub fn capturing(mut self, names: &[&str]) -> Self {
        self.capture = names.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Marks an intermediate value with a name (models use PyTorch's module names, e.g.
    /// `conv_layers.7`). Identity; contexts built with [`RuleCtx::capturing`] keep it.
    pub fn tap(&self, name: &str, t: &Tensor) -> Result<Tensor> {
        self.seen.borrow_mut().push(name.to_string());
        if !self.capture.iter().any(|c| c == name) {
            return Ok(t.clone());
        }
        // Candle's backward drops intermediate gradients as it goes: a pass-through boundary
        // records the gradient that flows through this point instead.
        let grad = Arc::new(Mutex::new(None));
        let out = boundary(t, &t.detach(), GradTap(grad.clone()))?;
        self.captured.borrow_mut().push(Captured {
            name: name.to_string(),
            value: t.detach(),
            grad,
        });
        Ok(out)
    }

    /// The value tapped under `name` in the last forward and the gradient that reached it in
    /// the last backward (`None` before any backward, or when nothing flowed through it),
    /// or an error naming the taps the model offers.
    pub fn captured(&self, name: &str) -> Result<(Tensor, Option<Tensor>)> {
        if let Some(c) = self.captured.borrow().iter().rev().find(|c| c.name == name) {
            let g = c
                .grad
                .lock()
                .map_err(|_| {
                    crate::Error::Unsupported("a tap's gradient lock was poisoned".into())
                })?
                .clone();
            return Ok((c.value.clone(), g));
        }
        let seen = self.seen.borrow();
        Err(crate::Error::InvalidParameter {
            name: "layer",
            reason: if seen.is_empty() {
                format!("no layer named {name:?}: this model marks no layers (RuleCtx::tap)")
            } else {
                format!(
                    "no layer named {name:?}; the model's layers are: {}",
                    seen.join(", ")
                )
            },
        })
    }

    /// The rule of the next linear / conv layer, counting it.
    fn next_layer_rule(&self, kind: LayerKind) -> LayerRule {
        let i = self.layer_index.get();
        self.layer_index.set(i + 1);
        self.composite
            .as_ref()
            .map_or(LayerRule::Gradient, |c| c.rule_for(kind, i))
    }

    /// A forward-only context that records what DeepLIFT's Rescale needs.
    pub fn recording() -> Self {
        Self::new(Mode::Record, vec![])
    }

    /// DeepLIFT Rescale against the activations recorded by a [`RuleCtx::recording`] pass.
    pub fn rescale(recorded: RuleCtx, threshold: f64) -> Self {
        Self::new(
            Mode::Rule(ActRule::Rescale { threshold }),
            recorded.records.into_inner(),
        )
    }

    /// A forward-only context on the fastest kernels: for perturbation methods and scores.
    pub fn inference() -> Self {
        Self::new(Mode::Inference, vec![])
    }

    /// A forward-only context that measures activation memory.
    pub fn probe() -> Self {
        Self::new(Mode::Probe, vec![])
    }

    /// Bytes of all intermediates seen by a probe forward.
    pub fn probed_bytes(&self) -> usize {
        self.probe_bytes.get()
    }

    /// The rule this context applies to nonlinearities, if any.
    pub fn act_rule(&self) -> Option<ActRule> {
        match self.mode {
            Mode::Rule(r) => Some(r),
            _ => None,
        }
    }

    fn count(&self, t: &Tensor) {
        if let Mode::Probe = self.mode {
            self.probe_bytes
                .set(self.probe_bytes.get() + t.elem_count() * t.dtype().size_in_bytes());
        }
    }

    fn next_ref(&self, what: &str) -> Result<Tensor> {
        let i = self.cursor.get();
        self.cursor.set(i + 1);
        self.refs.get(i).cloned().ok_or_else(|| {
            crate::Error::Unsupported(format!(
                "DeepLIFT replay: the forward asked for {what} #{i} but the baseline pass recorded only {} operations; \
                 the model's forward must run the same operations for baseline and input",
                self.refs.len()
            ))
        })
    }

    fn check_ref(&self, r: &Tensor, z: &Tensor) -> Result<()> {
        if r.dims() != z.dims() {
            return Err(crate::Error::Unsupported(format!(
                "DeepLIFT replay: baseline activation {:?} does not match the input's {:?}",
                r.dims(),
                z.dims()
            )));
        }
        Ok(())
    }

    /// `f(z)` for an elementwise nonlinearity.
    pub fn activation(&self, act: Activation, z: &Tensor) -> Result<Tensor> {
        match self.mode {
            Mode::Plain | Mode::Inference => Ok(act.forward(z)?),
            Mode::Probe => {
                let a = act.forward(z)?;
                self.count(&a);
                Ok(a)
            }
            Mode::Record => {
                self.records.borrow_mut().push(z.detach());
                Ok(act.forward(z)?)
            }
            Mode::Rule(rule) => {
                let zref = match rule {
                    ActRule::Rescale { .. } => {
                        let r = self.next_ref("a nonlinearity")?;
                        self.check_ref(&r, z)?;
                        Some(r)
                    }
                    _ => None,
                };
                let back = ActBackward { act, rule, zref };
                if crate::ops::cpu_act_smooth::SmoothActCpu::applies(act, z) {
                    return Ok(crate::ops::fused1(
                        &z.contiguous()?,
                        crate::ops::cpu_act_smooth::SmoothActCpu(act),
                        back,
                    )?);
                }
                let a = act.forward(&z.detach())?;
                Ok(boundary(z, &a, back)?)
            }
        }
    }

    /// `x · wᵀ + b` over the last dimension of `x` (PyTorch's `Linear`; `w` is `(out, in)`).
    pub fn linear(&self, x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
        let y = match self.mode {
            Mode::Plain => return Ok(linear_fwd(x, w, b)?),
            Mode::Rule(_) => {
                let rule = self.next_layer_rule(LayerKind::Linear);
                let back = LayerBackward::new(Affine::Linear, rule, w, b);
                match linear_cpu_args(x, w, b)? {
                    Some((x, w, b)) => {
                        crate::ops::fused3(&x, &w, &b, crate::ops::cpu_linear::LinearCpu, back)?
                    }
                    None => boundary(x, &linear_fwd(&x.detach(), w, b)?, back)?,
                }
            }
            Mode::Record | Mode::Probe | Mode::Inference => linear_fwd(x, w, b)?,
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
        let y = match self.mode {
            Mode::Plain if self.training => return Ok(conv_fwd_train(x, w, b, g)?),
            Mode::Plain => return Ok(conv_fwd(x, w, b, g)?),
            Mode::Rule(_) => {
                let rule = self.next_layer_rule(LayerKind::Conv2d);
                let mut back = LayerBackward::new(Affine::Conv(g), rule, w, b);
                let y = match rule {
                    LayerRule::ZPlus => match conv_with_zplus(&x.detach(), w, b, g)? {
                        Some((y, zplus)) => {
                            back.zplus = Some(zplus);
                            y
                        }
                        None => conv_fwd_no_grad(&x.detach(), w, b, g)?,
                    },
                    _ => conv_fwd_no_grad(&x.detach(), w, b, g)?,
                };
                boundary(x, &y, back)?
            }
            Mode::Record | Mode::Probe | Mode::Inference => conv_fwd_no_grad(x, w, b, g)?,
        };
        self.count(&y);
        Ok(y)
    }

    /// The rule of a pool or sum under this context's composite, checked against what the
    /// layer accepts.
    fn unindexed_rule(&self, kind: LayerKind) -> Result<LayerRule> {
        let rule = self
            .composite
            .as_ref()
            .map_or(LayerRule::Gradient, |c| c.rule_for_unindexed(kind));
        if !kind.accepts(&rule) {
            return Err(crate::error::invalid(
                "composite",
                format!("rule {} cannot be applied to a {kind:?} layer (it has no weights): use gradient or epsilon", rule.name()),
            ));
        }
        Ok(rule)
    }

    /// Average pooling (PyTorch's `nn.AvgPool2d(k, s)`): a linear layer without weights.
    pub fn avg_pool2d(&self, x: &Tensor, p: PoolGeometry) -> Result<Tensor> {
        let y = match self.mode {
            Mode::Plain => return Ok(crate::ops::pool::avg_pool(x, p)?),
            Mode::Rule(_) => {
                let y = crate::ops::pool::avg_pool(&x.detach(), p)?;
                let rule = self.unindexed_rule(LayerKind::AvgPool2d)?;
                let unit = Tensor::ones(1, x.dtype(), x.device())?;
                boundary(
                    x,
                    &y,
                    LayerBackward::new(Affine::AvgPool(p), rule, &unit, None),
                )?
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
        if let Mode::Rule(_) = self.mode {
            if let LayerRule::Epsilon(eps) = self.unindexed_rule(LayerKind::Sum)? {
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
    /// passes through scaled. Fold BatchNorms into their convs (`canonize`) before LRP.
    pub fn channel_affine(&self, x: &Tensor, scale: &Tensor, shift: &Tensor) -> Result<Tensor> {
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
        let y = match self.mode {
            // Differentiable by autograd: max over a window axis routes to the maximum.
            Mode::Plain => return Ok(max_pool(x, p)?),
            Mode::Record => {
                self.records.borrow_mut().push(x.detach());
                max_pool_no_grad(x, p)?
            }
            Mode::Probe | Mode::Inference => max_pool_no_grad(x, p)?,
            Mode::Rule(rule) => {
                let y = max_pool_no_grad(&x.detach(), p)?;
                let xref = match rule {
                    ActRule::Rescale { .. } => {
                        let r = self.next_ref("a max-pool")?;
                        self.check_ref(&r, x)?;
                        Some(r)
                    }
                    _ => None,
                };
                boundary(x, &y, PoolBackward { p, xref })?
            }
        };
        self.count(&y);
        Ok(y)
    }
}

struct Captured {
    name: String,
    value: Tensor,
    grad: Arc<Mutex<Option<Tensor>>>,
}

/// Identity backward that keeps a copy of the gradient passing through.
struct GradTap(Arc<Mutex<Option<Tensor>>>);

impl InputGrad for GradTap {
    fn name(&self) -> &'static str {
        "candle-explain-tap"
    }
    fn input_grad(&self, _x: &Tensor, _y: &Tensor, grad: &Tensor) -> candle_core::Result<Tensor> {
        if let Ok(mut g) = self.0.lock() {
            *g = Some(grad.clone());
        }
        Ok(grad.clone())
    }
}

/// `(x, w, b)` ready for the fused CPU linear kernel (contiguous, one dtype of f32 / f64, a
/// zero bias when there is none), or `None` where it does not apply.
fn linear_cpu_args(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
) -> candle_core::Result<Option<(Tensor, Tensor, Tensor)>> {
    let fits = |t: &Tensor| crate::ops::cpu_conv::applies(t) && t.dtype() == x.dtype();
    if !fits(x) || !fits(w) || !b.is_none_or(fits) || x.rank() == 0 {
        return Ok(None);
    }
    let b = match b {
        Some(b) => b.contiguous()?,
        None => Tensor::zeros(w.dim(0)?, w.dtype(), w.device())?,
    };
    Ok(Some((x.contiguous()?, w.contiguous()?, b)))
}

pub(crate) fn linear_fwd(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
) -> candle_core::Result<Tensor> {
    // Forward only (nothing tracks a gradient): the fused kernel, bias included.
    if !x.track_op() && !w.track_op() && !b.is_some_and(|b| b.track_op()) {
        if let Some((x, w, b)) = linear_cpu_args(x, w, b)? {
            return crate::ops::forward3(&x, &w, &b, crate::ops::cpu_linear::LinearCpu);
        }
    }
    if let Some(r) = in_f32_on_cpu(x, w, b, linear_fwd) {
        return r;
    }
    // One (rows × in)·(in × out) gemm over all leading dimensions: a broadcast batched
    // matmul runs one small gemm per batch entry.
    let y = match x.rank() {
        2 => x.matmul(&w.t()?)?,
        _ => {
            let mut dims = x.dims().to_vec();
            let rows = x.elem_count() / dims[dims.len() - 1];
            let y = x.contiguous()?.reshape((rows, ()))?.matmul(&w.t()?)?;
            *dims.last_mut().expect("rank ≥ 3") = w.dim(0)?;
            y.reshape(dims)?
        }
    };
    Ok(match b {
        Some(b) => y.broadcast_add(b)?,
        None => y,
    })
}

pub(crate) fn conv_fwd(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    g: ConvGeometry,
) -> candle_core::Result<Tensor> {
    if let Some(r) = in_f32_on_cpu(x, w, b, |x, w, b| conv_fwd(x, w, b, g)) {
        return r;
    }
    let y = x.conv2d(w, g.padding, g.stride, g.dilation, g.groups)?;
    Ok(match b {
        Some(b) => y.broadcast_add(&b.reshape((1, b.elem_count(), 1, 1))?)?,
        None => y,
    })
}

/// A conv differentiable w.r.t. input and kernel on our CPU kernels where they apply.
fn conv_fwd_train(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    g: ConvGeometry,
) -> candle_core::Result<Tensor> {
    if !crate::ops::cpu_conv::applies(x) || x.dtype() != w.dtype() {
        return conv_fwd(x, w, b, g);
    }
    let y = x
        .contiguous()?
        .apply_op2(&w.contiguous()?, crate::ops::cpu_conv::Conv2dTrainCpu(g))?;
    Ok(match b {
        Some(b) => y.broadcast_add(&b.reshape((1, b.elem_count(), 1, 1))?)?,
        None => y,
    })
}

/// A conv whose result needs no autograd: our CPU kernel where it applies.
/// `(Wx + b, W⁺x + b⁺)` from one im2col and two gemms, for an input that is ≥ 0 (after a
/// ReLU, or pixels in [0, 1]): there z⁺'s normaliser is `W⁺x + b⁺`, which would otherwise
/// cost a second convolution in the backward. `None` where the stacked CPU kernel does not
/// apply or the input has a negative entry.
fn conv_with_zplus(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    g: ConvGeometry,
) -> candle_core::Result<Option<(Tensor, Tensor)>> {
    let fits = |t: &Tensor| crate::ops::cpu_conv::applies(t) && t.dtype() == x.dtype();
    if g.groups != 1 || !fits(x) || !fits(w) || !b.is_none_or(fits) {
        return Ok(None);
    }
    if x.flatten_all()?
        .min(0)?
        .to_dtype(candle_core::DType::F64)?
        .to_scalar::<f64>()?
        < 0.0
    {
        return Ok(None);
    }
    let cout = w.dim(0)?;
    let b = match b {
        Some(b) => b.clone(),
        None => Tensor::zeros(cout, w.dtype(), w.device())?,
    };
    let wk = Tensor::cat(&[w, &w.relu()?], 0)?;
    let bk = Tensor::cat(&[&b, &b.relu()?], 0)?;
    let both = x.contiguous()?.apply_op3_no_bwd(
        &wk,
        &bk,
        &crate::ops::cpu_conv::Conv2dStackedCpu { g, parts: 2 },
    )?;
    Ok(Some((both.get(0)?, both.get(1)?)))
}

pub(crate) fn conv_fwd_no_grad(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    g: ConvGeometry,
) -> candle_core::Result<Tensor> {
    // Half precision runs our f32 kernel.
    if let Some(r) = in_f32_on_cpu(x, w, b, |x, w, b| conv_fwd_no_grad(x, w, b, g)) {
        return r;
    }
    if !crate::ops::cpu_conv::applies(x) || x.dtype() != w.dtype() {
        return conv_fwd(x, w, b, g);
    }
    match b {
        Some(b) if b.dtype() == x.dtype() => x.contiguous()?.apply_op3_no_bwd(
            &w.contiguous()?,
            &b.contiguous()?,
            &crate::ops::cpu_conv::Conv2dBiasCpu(g),
        ),
        Some(b) => x
            .contiguous()?
            .apply_op2_no_bwd(&w.contiguous()?, &crate::ops::cpu_conv::Conv2dCpu(g))?
            .broadcast_add(&b.reshape((1, b.elem_count(), 1, 1))?),
        None => x
            .contiguous()?
            .apply_op2_no_bwd(&w.contiguous()?, &crate::ops::cpu_conv::Conv2dCpu(g)),
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

/// Gradient w.r.t. a conv's input `(…, in_hw)`: the CPU kernel where it applies, else the
/// generic path.
pub(crate) fn conv_input_grad(
    grad: &Tensor,
    w: &Tensor,
    g: ConvGeometry,
    in_hw: (usize, usize),
) -> candle_core::Result<Tensor> {
    if let Some(r) = in_f32_on_cpu(grad, w, None, |grad, w, _| {
        conv_input_grad(grad, w, g, in_hw)
    }) {
        return r;
    }
    if crate::ops::cpu_conv::applies(grad) && grad.dtype() == w.dtype() {
        let op = crate::ops::cpu_conv::Conv2dInputGradCpu { g, in_hw };
        return grad.contiguous()?.apply_op2_no_bwd(&w.contiguous()?, &op);
    }
    let (_, _, kh, kw) = w.dims4()?;
    conv2d_input_grad(grad, &flipped_kernel(w, g.groups)?, (kh, kw), g, in_hw)
}
