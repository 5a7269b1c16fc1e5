//! The compile cache: (bitcode hash, request) → derivative address, with the
//! derivative's flags, its JIT code's tracker and how many holders it has. Every
//! `get_or_compile` that returns a derivative counts one holder more, every `release`
//! one less, and the last release frees the derivative's code (the Julia side releases
//! each `CompiledDerivative` it lets go of: src/autodiff.jl). The cache is consulted on
//! cache misses of the Julia side only, so one lock guards it; compilation holds another
//! for the whole compile, so each key is compiled once even when several threads ask for
//! it at the same time.

use crate::error::Result;
use crate::llvm::orc::Tracker;
use crate::request::Request;
use crate::tier::Tier;
use parking_lot::Mutex;
use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};

#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    ir_hash: u64,
    ir_len: usize,
    request: Request,
}

/// A derivative in the JIT.
struct Live {
    key: Key,
    flags: u32,
    holders: usize,
    tracker: Tracker,
    /// The JIT that holds the code at the derivative's address.
    jit: &'static crate::jit::Jit,
    /// Its optimizing tier, when it was compiled quickly first (`crate::tier`).
    tier: Option<Arc<Tier>>,
}

#[derive(Default)]
struct State {
    addresses: HashMap<Key, usize>,
    live: HashMap<usize, Live>,
}

static STATE: LazyLock<Mutex<State>> = LazyLock::new(|| Mutex::new(State::default()));
static COMPILING: Mutex<()> = Mutex::new(());
static COMPILED: AtomicU64 = AtomicU64::new(0);

/// A derivative: its address and flags.
#[derive(Clone, Copy, Debug)]
pub struct Derivative {
    /// Address of the derivative function.
    pub addr: usize,
    /// `OX_FLAG_*` bits.
    pub flags: u32,
}

/// The derivative for `req` on `bitcode`, compiled on the first request; the caller
/// holds it until it `release`s it.
pub fn get_or_compile(bitcode: &[u8], req: &Request) -> Result<Derivative> {
    let mut h = DefaultHasher::new();
    bitcode.hash(&mut h);
    let key = Key { ir_hash: h.finish(), ir_len: bitcode.len(), request: req.clone() };
    if let Some(d) = hold(&key) {
        return Ok(d);
    }
    let _compiling = COMPILING.lock();
    if let Some(d) = hold(&key) {
        return Ok(d);
    }
    let (owned, request) = (bitcode.to_vec(), req.clone());
    let c = crate::isolate::run(move || crate::pipeline::compile(&owned, &request))??;
    COMPILED.fetch_add(1, Ordering::Relaxed);
    let d = Derivative { addr: c.addr, flags: c.flags };
    let mut state = STATE.lock();
    state.addresses.insert(key.clone(), c.addr);
    state.live.insert(c.addr, Live { key, flags: c.flags, holders: 1, tracker: c.tracker, jit: c.jit, tier: c.tier });
    Ok(d)
}

/// The cached derivative of `key`, with one holder more.
fn hold(key: &Key) -> Option<Derivative> {
    let mut state = STATE.lock();
    let addr = *state.addresses.get(key)?;
    let live = state.live.get_mut(&addr)?;
    live.holders += 1;
    Some(Derivative { addr, flags: live.flags })
}

/// One holder of the derivative at `addr` lets go of it; the last frees its code, which
/// nothing may run afterwards. False for an address the cache does not hold.
pub fn release(addr: usize) -> Result<bool> {
    let gone = {
        let mut state = STATE.lock();
        let Some(live) = state.live.get_mut(&addr) else { return Ok(false) };
        live.holders -= 1;
        if live.holders > 0 {
            return Ok(true);
        }
        let live = state.live.remove(&addr).expect("present");
        state.addresses.remove(&live.key);
        live
    };
    if let Some(tier) = &gone.tier {
        tier.release()?;
    }
    gone.jit.remove(&gone.tracker)?;
    Ok(true)
}

/// Blocks until the optimizing tier of the derivative at `addr` has ended (its code in
/// the slot, or failed); at once when it has none.
pub fn wait_for_tier(addr: usize) {
    let tier = STATE.lock().live.get(&addr).and_then(|l| l.tier.clone());
    if let Some(tier) = tier {
        tier.wait();
    }
}

/// The tier slot of the derivative at `addr` (`crate::tier`), when it has one.
pub fn tier_of(addr: usize) -> Option<*const crate::codes::OxTierSlot> {
    STATE.lock().live.get(&addr)?.tier.as_ref().map(|t| t.slot())
}

/// The `OX_FLAG_*` flags of a compiled derivative; `None` for an unknown address.
pub fn flags_of(addr: usize) -> Option<u32> {
    STATE.lock().live.get(&addr).map(|l| l.flags)
}

/// Number of derivatives compiled so far (cache misses that succeeded).
pub fn compile_count() -> u64 {
    COMPILED.load(Ordering::Relaxed)
}

/// Number of derivatives whose code is in the JIT now (compiled and not yet released
/// by all their holders).
pub fn live_count() -> usize {
    STATE.lock().live.len()
}
