//! The allocator our binaries use, and the one setting that matters for attribution work.
//!
//! A forward + backward through a model keeps every activation alive until the backward has
//! used it, then frees them all; the next batch allocates them again. Buffers of tens of MB
//! (BERT's FFN activations are 79 MB at 200 × 64 tokens) come from the OS as fresh pages, and
//! if the allocator hands freed ones back, every batch pays a page fault and a zeroing per
//! 4 KiB again: with mimalloc's default (return pages 10 ms after a free) half of the BERT
//! stack benchmark's time was the kernel's `clear_page` (5.54 s → 4.46 s per pass with
//! [`retain_freed_memory`], `benches/README.md`). glibc's malloc maps every block above
//! 32 MB separately and unmaps it on free, with the same cost and no setting to avoid it.
//!
//! Binaries declare `#[global_allocator] static GLOBAL: candle_explain::alloc::Allocator =
//! candle_explain::alloc::Allocator;` and call [`retain_freed_memory`] first thing in `main`.
//! Freed memory then stays with the process for reuse: its resident size stays at its peak
//! until it exits, which is what a batch job wants.

/// mimalloc, as the global allocator of our binaries.
pub use mimalloc::MiMalloc as Allocator;

/// mimalloc's `mi_option_purge_delay` (its position in `mi_option_e`; libmimalloc-sys
/// does not name it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Tells mimalloc never to return freed pages to the OS (purge delay −1), so large buffers
/// are reused without page faults. Takes effect for frees after the call; harmless when
/// mimalloc is not the global allocator (it then only changes an unused setting).
pub fn retain_freed_memory() {
    // SAFETY: sets one of mimalloc's integer options; any value is valid for it.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sets_the_purge_delay() {
        super::retain_freed_memory();
        // SAFETY: reads an integer option.
        assert_eq!(
            unsafe { libmimalloc_sys::mi_option_get(super::MI_OPTION_PURGE_DELAY) },
            -1
        );
    }
}
