//! The compile cache: (bitcode hash, request) → derivative address. Lookups share a read
//! lock; compilation holds one lock for the whole compile, so each key is compiled
//! once even when several threads ask for it at the same time.

use crate::error::Result;
use crate::pipeline::Compiled;
use crate::request::Request;
use parking_lot::{Mutex, RwLock};
use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;

#[derive(PartialEq, Eq, Hash)]
struct Key {
    ir_hash: u64,
    ir_len: usize,
    request: Request,
}

static ENTRIES: LazyLock<RwLock<HashMap<Key, Compiled>>> = LazyLock::new(|| RwLock::new(HashMap::new()));
static FLAGS: LazyLock<RwLock<HashMap<usize, u32>>> = LazyLock::new(|| RwLock::new(HashMap::new()));
static COMPILING: Mutex<()> = Mutex::new(());
static COMPILED: AtomicU64 = AtomicU64::new(0);

/// The derivative for `req` on `bitcode`, compiled on the first request.
pub fn get_or_compile(bitcode: &[u8], req: &Request) -> Result<Compiled> {
    let mut h = DefaultHasher::new();
    bitcode.hash(&mut h);
    let key = Key { ir_hash: h.finish(), ir_len: bitcode.len(), request: req.clone() };
    if let Some(&c) = ENTRIES.read().get(&key) {
        return Ok(c);
    }
    let _compiling = COMPILING.lock();
    if let Some(&c) = ENTRIES.read().get(&key) {
        return Ok(c);
    }
    let (owned, request) = (bitcode.to_vec(), req.clone());
    let c = crate::isolate::run(move || crate::pipeline::compile(&owned, &request))??;
    COMPILED.fetch_add(1, Ordering::Relaxed);
    FLAGS.write().insert(c.addr, c.flags);
    ENTRIES.write().insert(key, c);
    Ok(c)
}

/// The `OX_FLAG_*` flags of a compiled derivative; `None` for an unknown address.
pub fn flags_of(addr: usize) -> Option<u32> {
    FLAGS.read().get(&addr).copied()
}

/// Number of derivatives compiled so far (cache misses that succeeded).
pub fn compile_count() -> u64 {
    COMPILED.load(Ordering::Relaxed)
}
