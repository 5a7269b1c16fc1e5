//! Two tiers of machine code for large derivatives. LLVM's `default<O2>` and optimized
//! instruction selection take most of a large derivative's compile (0.2 s of an MLP
//! loss's, 0.65 s of an RK4 solver's with broadcasting), and the first call waits for
//! them. So a derivative of `QUICK_FROM` instructions or more is first compiled
//! quickly — a few cheap passes (`pipeline::Optimization::Quick`) and unoptimized machine code
//! (`jit::quick`) — and handed out at once, while a thread of its own compiles the same
//! synthesized module optimized (`pipeline::optimized_tier`, `jit::background`). When that is
//! done, the derivative's `OxTierSlot` holds the optimized code's address and flags.
//! The Julia side runs the quick code at the derivative's first call and the optimized
//! code from the second on, waiting for it there if needed (`Tier::wait`; src/call.jl,
//! `tier_up!`): the two may differ in the derivative's last bits (reassociated adjoint
//! sums, vector math functions), so which call runs which must not depend on timing.
//!
//! Both tiers are the same derivative (one synthesized module, verified before either
//! is made): each call runs entirely in one tier, so switching between calls is safe.
//! The optimized code's flags are those known before optimization and those of its own
//! module: its optimization only removes heap buffers and calls, so they are the quick
//! code's or fewer.
//!
//! Whatever stops the optimizing thread (an engine panic, an LLVM fatal error, which
//! then stops every later compile as in the foreground) leaves the quick code in use;
//! `failures` counts such ends. `wait` blocks until no optimizing thread runs (tests,
//! benchmarks, and the process's exit, which must not tear LLVM down under one).
//! `OXIDASE_TIERS` picks the policy: unset or `auto` (by size), `optimized` (never
//! tiered: one optimized compile, as before tiers), `quick` (every derivative quick,
//! never upgraded: for tests of the quick code) or `always` (every derivative tiered).

use crate::codes::OxTierSlot;
use crate::error::Result;
use crate::llvm::orc::Tracker;
use crate::llvm::Module;
use parking_lot::{Condvar, Mutex};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Once};

/// Instructions (after synthesis) from which a derivative is compiled in two tiers.
/// The logistic loss of docs/performance.md, 3,100 instructions, took 190 ms to optimize
/// and JIT at `-O2` and 50 ms quickly; the derivative of `sin(x) * exp(y)`, 700, took 5
/// ms: that small, the quick tier saves little and the optimizing thread only adds work.
pub const QUICK_FROM: usize = 2000;

/// How a derivative is compiled (`OXIDASE_TIERS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Optimized only.
    Optimized,
    /// Quick first, then optimized.
    Tiered,
    /// Quick only.
    Quick,
}

/// The policy for a synthesized module `m`.
pub fn policy(m: &Module) -> Policy {
    match std::env::var("OXIDASE_TIERS").as_deref() {
        Ok("optimized") => Policy::Optimized,
        Ok("quick") => Policy::Quick,
        Ok("always") => Policy::Tiered,
        _ if instruction_count(m) >= QUICK_FROM => Policy::Tiered,
        _ => Policy::Optimized,
    }
}

fn instruction_count(m: &Module) -> usize {
    m.functions().into_iter().flat_map(|g| g.blocks()).map(|b| b.instructions().len()).sum()
}

/// The slot the caller polls: `optimized` becomes the optimized code's address (zero
/// until then), written after `flags`. Same layout as `OxTierSlot`.
#[repr(C)]
struct Slot {
    optimized: AtomicU64,
    flags: AtomicU32,
}

const _: () = assert!(std::mem::size_of::<Slot>() == std::mem::size_of::<OxTierSlot>());

enum State {
    Compiling,
    Ready(Tracker),
    Failed,
    Released,
}

/// A derivative's optimizing tier: its slot and the optimized code, once made.
pub struct Tier {
    slot: Slot,
    state: Mutex<State>,
}

/// Optimizing threads running, and the signal that one ended.
static RUNNING: Mutex<usize> = Mutex::new(0);
static ENDED: Condvar = Condvar::new();
static FAILURES: AtomicUsize = AtomicUsize::new(0);

impl Tier {
    /// The slot's address, valid while the tier is (the cache holds it until the
    /// derivative's last holder releases it).
    pub fn slot(&self) -> *const OxTierSlot {
        &self.slot as *const Slot as *const OxTierSlot
    }

    /// Starts the optimizing thread on `optimize`, which makes the optimized code in
    /// `jit::background` (`pipeline::optimized_tier`): its address, its flags and its
    /// tracker. `None` when no thread could be started: the quick code stays.
    pub fn start(optimize: impl FnOnce() -> Result<(usize, u32, Tracker)> + Send + 'static) -> Option<Arc<Tier>> {
        static AT_EXIT: Once = Once::new();
        AT_EXIT.call_once(|| {
            // SAFETY: `wait_at_exit` is an `extern "C" fn()` that never unwinds.
            unsafe { libc::atexit(wait_at_exit) };
        });
        let tier = Arc::new(Tier {
            slot: Slot { optimized: AtomicU64::new(0), flags: AtomicU32::new(0) },
            state: Mutex::new(State::Compiling),
        });
        *RUNNING.lock() += 1;
        let done = tier.clone();
        let started = crate::isolate::spawn("oxidase-optimize", optimize, move |out| done.end(out.and_then(|r| r)));
        match started {
            Ok(()) => Some(tier),
            Err(_) => {
                ended();
                None
            }
        }
    }

    fn end(&self, out: Result<(usize, u32, Tracker)>) {
        {
            let mut state = self.state.lock();
            match (out, &*state) {
                (Ok((addr, flags, tracker)), State::Compiling) => {
                    self.slot.flags.store(flags, Ordering::Relaxed);
                    self.slot.optimized.store(addr as u64, Ordering::Release);
                    *state = State::Ready(tracker);
                }
                (Ok((_, _, tracker)), _) => {
                    // Released while it was compiled: nobody will call it.
                    if let Ok(jit) = crate::jit::background() {
                        let _ = jit.remove(&tracker);
                    }
                }
                (Err(_), _) => {
                    FAILURES.fetch_add(1, Ordering::Relaxed);
                    if matches!(*state, State::Compiling) {
                        *state = State::Failed;
                    }
                }
            }
        }
        ended();
    }

    /// The derivative's last holder let go of it: frees the optimized code (or has the
    /// thread free it when it is done).
    pub fn release(&self) -> Result<()> {
        let previous = std::mem::replace(&mut *self.state.lock(), State::Released);
        if let State::Ready(tracker) = previous {
            crate::jit::background()?.remove(&tracker)?;
        }
        Ok(())
    }
}

fn ended() {
    let mut running = RUNNING.lock();
    *running -= 1;
    ENDED.notify_all();
}

impl Tier {
    /// Blocks until this tier's thread has ended (its code ready, or failed).
    pub fn wait(&self) {
        let mut running = RUNNING.lock();
        while matches!(*self.state.lock(), State::Compiling) {
            ENDED.wait(&mut running);
        }
    }
}

/// Blocks until no optimizing thread runs.
pub fn wait() {
    let mut running = RUNNING.lock();
    while *running > 0 {
        ENDED.wait(&mut running);
    }
}

/// Optimizing threads that ended without optimized code, in the process so far.
pub fn failures() -> usize {
    FAILURES.load(Ordering::Relaxed)
}

extern "C" fn wait_at_exit() {
    // A panic cannot unwind out of an `atexit` handler; `wait` does not panic.
    wait();
}

impl std::fmt::Debug for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tier({:#x})", self.slot.optimized.load(Ordering::Relaxed))
    }
}
