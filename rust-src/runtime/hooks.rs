//! Functions of the caller's runtime that derivatives call back into: the Julia package
//! registers them (`oxidase_set_runtime_hooks`) when it loads. Today one pair, for
//! splatting (`rules::Rule::Splat`): Julia picks the splatted call's method only when it
//! runs, so its derivative is taken then, by the package's own `autodiff`.
//!
//! - `splat_call(mode, args, shadows, n, width, out, handle) -> result`: calls
//!   `args[1](flattened args[2..n]...)` (`args[0]` is `iterate`), where `shadows[l·n + k]`
//!   is lane `l`'s shadow of `args[k]` (NULL: no derivative). It writes the address of
//!   lane `l`'s result shadow, a boxed float, into `*out[l]`: in mode 0 (forward) the
//!   result's tangent; in mode 1 (the reverse sweep's forward half) a zero adjoint, and
//!   `*handle` names the record `splat_reverse` needs. It returns the boxed result.
//! - `splat_reverse(handle)`: adds each lane's result adjoint, times the partials at the
//!   recorded arguments, into the shadows of the collections.
//!
//! Either may throw a Julia exception (a `longjmp` past the derivative: the caller
//! releases its buffers, `OX_FLAG_RELEASE_ON_THROW`). The records live in a frame the
//! caller opens around every call of a derivative flagged `OX_FLAG_RUNTIME_HOOKS`.

use std::sync::atomic::{AtomicUsize, Ordering};

static SPLAT_CALL: AtomicUsize = AtomicUsize::new(0);
static SPLAT_REVERSE: AtomicUsize = AtomicUsize::new(0);

/// Registers the splat hooks (0 unregisters).
pub fn set_splat(call: usize, reverse: usize) {
    SPLAT_CALL.store(call, Ordering::Release);
    SPLAT_REVERSE.store(reverse, Ordering::Release);
}

/// The splat hooks `(call, reverse)`, when both are registered.
pub fn splat() -> Option<(usize, usize)> {
    let (c, r) = (SPLAT_CALL.load(Ordering::Acquire), SPLAT_REVERSE.load(Ordering::Acquire));
    (c != 0 && r != 0).then_some((c, r))
}

/// Whether `addr` is a registered hook (a derivative calling it gets
/// `OX_FLAG_RUNTIME_HOOKS`).
pub fn is_hook(addr: usize) -> bool {
    addr != 0 && (addr == SPLAT_CALL.load(Ordering::Acquire) || addr == SPLAT_REVERSE.load(Ordering::Acquire))
}
