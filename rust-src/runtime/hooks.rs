//! Functions of the caller's runtime that derivatives call back into: the Julia package
//! registers them (`oxidase_set_runtime_hooks`, `oxidase_set_rule_hooks`) when it loads.
//! Two pairs. Splatting (`rules::Rule::Splat`): Julia picks the splatted call's method
//! only when it runs, so its derivative is taken then, by the package's own `autodiff`.
//! User-defined rules (`rules::Rule::Custom`): the rule is Julia code, run by the hook.
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
//! - `rule_call(mode, site, args, shadows, n, width, flags, ret, tangents, handle)`: runs
//!   the rule for the specialization `site` names (`names::rule_site`) on the call's `n`
//!   operands, `args[k]` the address of operand `k`'s value and `shadows[l·n + k]` that
//!   of lane `l`'s tangent or shadow (NULL: none; `rules::calls::custom`). Mode 0
//!   (`EnzymeRules.forward`) writes the primal result into `*ret` and lane `l`'s tangent
//!   into `*tangents[l]`; mode 1 (`augmented_primal`) writes the primal and names its
//!   record in `*handle`. `flags`: 1, the primal is used; 2, the result's derivative is
//!   wanted.
//! - `rule_reverse(handle, dret, dargs)`: runs `EnzymeRules.reverse` with the result's
//!   adjoint `*dret[l]` (NULL: none) and writes the adjoint of float operand `k` into
//!   `*dargs[l·n + k]` (NULL: not wanted).
//!
//! - `stop(code)`: raises the error of diagnostic status `code` (a construct refused
//!   where it is reached) and does not return: the derivative goes no further than the
//!   construct, whose shadows may not exist (`diagnostics::lower`).
//!
//! Any hook may throw a Julia exception (a `longjmp` past the derivative: the caller
//! releases its buffers, `OX_FLAG_RELEASE_ON_THROW`). The records live in a frame the
//! caller opens around every call of a derivative flagged `OX_FLAG_RUNTIME_HOOKS`.

use std::sync::atomic::{AtomicUsize, Ordering};

static SPLAT_CALL: AtomicUsize = AtomicUsize::new(0);
static SPLAT_REVERSE: AtomicUsize = AtomicUsize::new(0);
static RULE_CALL: AtomicUsize = AtomicUsize::new(0);
static RULE_REVERSE: AtomicUsize = AtomicUsize::new(0);
static STOP: AtomicUsize = AtomicUsize::new(0);

/// Registers the stop hook (0 unregisters): `stop(code)` raises the caller's error for
/// diagnostic status `code` and does not return (`diagnostics::lower`).
pub fn set_stop(stop: usize) {
    STOP.store(stop, Ordering::Release);
}

/// The stop hook, when registered.
pub fn stop() -> Option<usize> {
    Some(STOP.load(Ordering::Acquire)).filter(|&s| s != 0)
}

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

/// Registers the custom-rule hooks (0 unregisters).
pub fn set_rules(call: usize, reverse: usize) {
    RULE_CALL.store(call, Ordering::Release);
    RULE_REVERSE.store(reverse, Ordering::Release);
}

/// The custom-rule hooks `(call, reverse)`, when both are registered.
pub fn rules() -> Option<(usize, usize)> {
    let (c, r) = (RULE_CALL.load(Ordering::Acquire), RULE_REVERSE.load(Ordering::Acquire));
    (c != 0 && r != 0).then_some((c, r))
}

/// Whether `addr` is a registered hook (a derivative calling it gets
/// `OX_FLAG_RUNTIME_HOOKS`).
pub fn is_hook(addr: usize) -> bool {
    addr != 0
        && [&SPLAT_CALL, &SPLAT_REVERSE, &RULE_CALL, &RULE_REVERSE, &STOP]
            .iter()
            .any(|h| addr == h.load(Ordering::Acquire))
}
