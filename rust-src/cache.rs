//! The compile cache: (bitcode hash, request) → derivative address. Lookups share a read
//! lock; compilation holds one lock for the whole compile, so each key is compiled
//! once even when several threads ask for it at the same time.

use crate::error::Result;
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

static ENTRIES: LazyLock<RwLock<HashMap<Key, usize>>> = LazyLock::new(|| RwLock::new(HashMap::new()));
static COMPILING: Mutex<()> = Mutex::new(());
static COMPILED: AtomicU64 = AtomicU64::new(0);

/// The derivative for `req` on `bitcode`, compiled on the first request.
pub fn get_or_compile(bitcode: &[u8], req: &Request) -> Result<usize> {
    let mut h = DefaultHasher::new();
    bitcode.hash(&mut h);
    let key = Key { ir_hash: h.finish(), ir_len: bitcode.len(), request: req.clone() };
    if let Some(&addr) = ENTRIES.read().get(&key) {
        return Ok(addr);
    }
    let _compiling = COMPILING.lock();
    if let Some(&addr) = ENTRIES.read().get(&key) {
        return Ok(addr);
    }
    let addr = crate::pipeline::compile(bitcode, req)?;
    COMPILED.fetch_add(1, Ordering::Relaxed);
    ENTRIES.write().insert(key, addr);
    Ok(addr)
}

/// Number of derivatives compiled so far (cache misses that succeeded).
pub fn compile_count() -> u64 {
    COMPILED.load(Ordering::Relaxed)
}
