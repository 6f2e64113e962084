//! Which rule each operation gets: the names the forward is inside of (`RuleCtx::enter`),
//! the call order of linear / conv layers, and the composite's selectors, with the defaults
//! of `composite::defaults` where none matches.

use crate::composite::{defaults, Composite, LayerKind, Op};
use crate::rule::{RuleRef, Treatment};
use crate::{ActRule, Result};
use std::cell::{Cell, RefCell};

#[derive(Default)]
pub(crate) struct Selection {
    pub composite: Option<Composite>,
    /// Names entered, innermost last; an operation's name is the innermost one.
    names: RefCell<Vec<String>>,
    layer_index: Cell<usize>,
    /// Linear / conv layers of the model, when known (`Selector::last`).
    pub layer_count: Option<usize>,
}

impl Selection {
    pub fn enter(&self, name: &str) {
        self.names.borrow_mut().push(name.to_string());
    }

    pub fn enter_child(&self, child: &str) {
        let full = match self.names.borrow().last() {
            Some(parent) => format!("{parent}.{child}"),
            None => child.to_string(),
        };
        self.names.borrow_mut().push(full);
    }

    pub fn current_name(&self) -> Option<String> {
        self.names.borrow().last().cloned()
    }

    pub fn leave(&self) {
        self.names.borrow_mut().pop();
    }

    pub fn layers_seen(&self) -> usize {
        self.layer_index.get()
    }

    fn op(&self, kind: LayerKind, index: Option<usize>, f: impl FnOnce(&Op) -> RuleRef) -> RuleRef {
        let names = self.names.borrow();
        f(&Op {
            kind,
            index,
            count: self.layer_count,
            name: names.last().map(String::as_str),
        })
    }

    /// The rule of the next linear / conv layer, counting it.
    pub fn next_layer(&self, kind: LayerKind) -> RuleRef {
        let i = self.layer_index.get();
        self.layer_index.set(i + 1);
        match &self.composite {
            None => defaults::layer(),
            Some(c) => self.op(kind, Some(i), |op| {
                c.select(op).unwrap_or_else(defaults::layer)
            }),
        }
    }

    /// The rule of a nonlinearity: a selector of kind `Activation` that matches it, else the
    /// context's rule.
    pub fn activation(&self, context_rule: ActRule) -> RuleRef {
        match &self.composite {
            Some(c) => self.op(LayerKind::Activation, None, |op| {
                c.select(op).unwrap_or_else(|| RuleRef::new(context_rule))
            }),
            None => RuleRef::new(context_rule),
        }
    }

    /// How an average pool or a sum is treated (exact unless a selector says ε).
    pub fn parameter_free(&self, kind: LayerKind) -> Result<Treatment> {
        match &self.composite {
            None => defaults::parameter_free().treatment(kind),
            Some(c) => self
                .op(kind, None, |op| {
                    c.select(op).unwrap_or_else(defaults::parameter_free)
                })
                .treatment(kind),
        }
    }

    /// How LayerNorm, attention or a gate is treated under this context's rule.
    pub fn factor(&self, kind: LayerKind, context_rule: ActRule) -> Result<Treatment> {
        match &self.composite {
            None => Ok(defaults::factor_without_composite(context_rule)),
            Some(c) => self
                .op(kind, None, |op| {
                    c.select(op)
                        .unwrap_or_else(defaults::factor_under_composite)
                })
                .treatment(kind),
        }
    }
}
