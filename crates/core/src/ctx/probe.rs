//! The chunker's memory probe: bytes of every intermediate a forward produces. (Whether any
//! operation went through the context at all is `RuleCtx::routed_ops`: a model that routed
//! none gives no reading, which the chunker must not take as "0 bytes per row".)

use candle_core::Tensor;
use std::cell::Cell;

#[derive(Default)]
pub(crate) struct Probe {
    bytes: Cell<usize>,
}

impl Probe {
    pub fn count(&self, t: &Tensor) {
        self.bytes
            .set(self.bytes.get() + t.elem_count() * t.dtype().size_in_bytes());
    }

    /// Memory an op keeps beside its output (attention weights for the backward).
    pub fn add(&self, bytes: usize) {
        self.bytes.set(self.bytes.get() + bytes);
    }

    pub fn bytes(&self) -> usize {
        self.bytes.get()
    }
}
