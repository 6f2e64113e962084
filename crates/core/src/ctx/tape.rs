//! DeepLIFT's tape: the baseline's inputs of every nonlinearity and max-pool, recorded in
//! call order by a forward of the baseline and replayed by the input's forward. A replay that
//! asks for another kind of operation, for more operations than were recorded, or for fewer
//! (checked by [`Tape::finish`]) is an error: the model's forward took another path for the
//! input than for the baseline, and Rescale's multipliers would pair the wrong activations.

use crate::{Error, Result};
use candle_core::Tensor;
use std::cell::{Cell, RefCell};

/// What an entry of the tape was recorded for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Entry {
    Activation,
    MaxPool,
    /// A linear or conv layer's input (RevealCancel).
    LinearInput,
}

impl Entry {
    fn what(self) -> &'static str {
        match self {
            Entry::Activation => "a nonlinearity",
            Entry::MaxPool => "a max-pool",
            Entry::LinearInput => "a linear or conv layer",
        }
    }
}

#[derive(Default)]
pub(crate) struct Tape {
    recorded: RefCell<Vec<(Entry, Tensor)>>,
    cursor: Cell<usize>,
}

impl Tape {
    /// A tape to replay.
    pub fn replaying(entries: Vec<(Entry, Tensor)>) -> Self {
        Self {
            recorded: RefCell::new(entries),
            cursor: Cell::new(0),
        }
    }

    pub fn record(&self, kind: Entry, t: &Tensor) {
        self.recorded.borrow_mut().push((kind, t.detach()));
    }

    pub fn into_entries(self) -> Vec<(Entry, Tensor)> {
        self.recorded.into_inner()
    }

    /// The next recorded entry, which must be of `kind` and shaped like `like`.
    pub fn next(&self, kind: Entry, like: &Tensor) -> Result<Tensor> {
        let i = self.cursor.get();
        self.cursor.set(i + 1);
        let rec = self.recorded.borrow();
        let (k, t) = rec.get(i).ok_or_else(|| {
            mismatch(format!(
                "the forward asked for {} #{i} but the baseline pass recorded only {} operations",
                kind.what(),
                rec.len()
            ))
        })?;
        if *k != kind {
            return Err(mismatch(format!(
                "operation #{i} is {} for the input but was {} for the baseline",
                kind.what(),
                k.what()
            )));
        }
        if t.dims() != like.dims() {
            return Err(mismatch(format!(
                "operation #{i} ({}): the baseline's activation {:?} does not match the input's {:?}",
                kind.what(),
                t.dims(),
                like.dims()
            )));
        }
        Ok(t.clone())
    }

    /// After the replayed forward: every recorded entry must have been used.
    pub fn finish(&self) -> Result<()> {
        let (used, n) = (self.cursor.get(), self.recorded.borrow().len());
        if used != n {
            return Err(mismatch(format!(
                "the input's forward ran {used} recorded operations but the baseline's ran {n}"
            )));
        }
        Ok(())
    }
}

fn mismatch(what: String) -> Error {
    Error::Unsupported(format!(
        "DeepLIFT replay: {what}; the model's forward must run the same operations for the \
         baseline and the input (does it branch on its input?)"
    ))
}
