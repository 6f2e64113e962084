//! Taps: named intermediate values a model marks (`RuleCtx::tap`), kept with the gradient
//! that flows through them (Grad-CAM's layer).

use crate::ops::{boundary, InputGrad};
use crate::Result;
use candle_core::Tensor;
use std::cell::RefCell;
use std::sync::{Arc, Mutex};

#[derive(Default)]
pub(crate) struct Taps {
    /// Names to keep.
    pub capture: Vec<String>,
    /// A value to put in place of the tapped one (layer methods that move a layer's
    /// activation along a path).
    pub replace: Option<(String, Tensor)>,
    kept: RefCell<Vec<Captured>>,
    /// Every name seen, for the error that lists them.
    seen: RefCell<Vec<String>>,
}

struct Captured {
    name: String,
    value: Tensor,
    /// The value still attached to the forward's graph (neuron methods differentiate it).
    live: Tensor,
    grad: Arc<Mutex<Option<Tensor>>>,
}

impl Taps {
    pub fn tap(&self, name: &str, t: &Tensor) -> Result<Tensor> {
        self.seen.borrow_mut().push(name.to_string());
        let t = match &self.replace {
            Some((n, v)) if n == name => {
                if v.dims() != t.dims() {
                    return Err(crate::Error::InvalidParameter {
                        name: "layer",
                        reason: format!(
                            "the value put in place of layer {name:?} is {:?}, the layer gives {:?}",
                            v.dims(),
                            t.dims()
                        ),
                    });
                }
                v
            }
            _ => t,
        };
        if !self.capture.iter().any(|c| c == name) {
            return Ok(t.clone());
        }
        // Candle's backward drops intermediate gradients as it goes: a pass-through boundary
        // records the gradient that flows through this point instead.
        let grad = Arc::new(Mutex::new(None));
        let out = boundary(t, &t.detach(), GradTap(grad.clone()))?;
        self.kept.borrow_mut().push(Captured {
            name: name.to_string(),
            value: t.detach(),
            live: t.clone(),
            grad,
        });
        Ok(out)
    }

    /// The value tapped under `name`, attached to the forward's graph.
    pub fn live(&self, name: &str) -> Result<Tensor> {
        self.captured(name)?;
        let kept = self.kept.borrow();
        let c = kept.iter().rev().find(|c| c.name == name);
        c.map(|c| c.live.clone())
            .ok_or_else(|| crate::Error::Unsupported(format!("layer {name:?} was not kept")))
    }

    /// Whether the forward passed a tap named `name`.
    pub fn seen(&self, name: &str) -> bool {
        self.seen.borrow().iter().any(|s| s == name)
    }

    pub fn captured(&self, name: &str) -> Result<(Tensor, Option<Tensor>)> {
        if let Some(c) = self.kept.borrow().iter().rev().find(|c| c.name == name) {
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
