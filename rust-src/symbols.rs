//! Names of code addresses in this process, via `dladdr`: Julia resolves `ccall`
//! targets (openlibm's `expm1`, `exp2`...) before handing us the IR, so the engine sees
//! only an address and asks the dynamic loader which symbol it is. `callee_name` names
//! any call target this way, for every layer that classifies calls.

use crate::llvm::Value;

/// C library functions Julia calls by name (`ccall(:memmove, ...)`), whose address is
/// that of an optimised variant glibc picks at load time, which `dladdr` cannot name.
const BY_DLSYM: &[&std::ffi::CStr] = &[c"memmove", c"memcpy", c"memset", c"memcmp"];

/// Name of the symbol resolving a call target: the function's name, or the symbol
/// behind an absolute address (Julia's `ccall`s arrive as `inttoptr` constants).
pub fn callee_name(callee: Value) -> Option<String> {
    if callee.is_function() {
        return Some(callee.name());
    }
    let addr = crate::llvm::const_address(callee)?;
    symbol_at(addr)
}

thread_local! {
    /// `symbol_at`'s answers on this thread. A compile runs on a thread of its own
    /// (`isolate::run`), so they live as long as one compile: the analyses ask about
    /// the same call targets again and again, and `dladdr` searches a library's whole
    /// symbol table (Julia's system image has tens of thousands), some 50 ms of an MLP
    /// loss's compile before.
    static NAMED: std::cell::RefCell<std::collections::HashMap<u64, Option<String>>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

/// The exported symbol starting exactly at `addr`, if any.
pub fn symbol_at(addr: u64) -> Option<String> {
    if let Some(known) = NAMED.with(|n| n.borrow().get(&addr).cloned()) {
        return known;
    }
    let name = look_up(addr);
    NAMED.with(|n| n.borrow_mut().insert(addr, name.clone()));
    name
}

fn look_up(addr: u64) -> Option<String> {
    named_at(addr).or_else(|| {
        BY_DLSYM.iter().find_map(|name| {
            // SAFETY: dlsym with a NUL-terminated name.
            let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) } as usize as u64;
            (p == addr).then(|| name.to_string_lossy().into_owned())
        })
    })
}

/// The address of exported symbol `name` in this process (a Julia runtime function the
/// derivative calls that the primal does not), if the process has it.
pub fn address_of(name: &str) -> Option<u64> {
    let name = std::ffi::CString::new(name).ok()?;
    // SAFETY: dlsym with a NUL-terminated name.
    let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) } as usize as u64;
    (p != 0).then_some(p)
}

fn named_at(addr: u64) -> Option<String> {
    let mut info = libc::Dl_info {
        dli_fname: std::ptr::null(),
        dli_fbase: std::ptr::null_mut(),
        dli_sname: std::ptr::null(),
        dli_saddr: std::ptr::null_mut(),
    };
    // SAFETY: dladdr only reads the address; `info` is a valid out-parameter.
    let found = unsafe { libc::dladdr(addr as usize as *const libc::c_void, &mut info) } != 0;
    if !found || info.dli_sname.is_null() || info.dli_saddr as usize as u64 != addr {
        return None;
    }
    // SAFETY: dli_sname points to a NUL-terminated string owned by the loader.
    Some(unsafe { std::ffi::CStr::from_ptr(info.dli_sname) }.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_a_libc_function() {
        // SAFETY: dlsym with a NUL-terminated name.
        let addr = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"malloc".as_ptr()) } as usize as u64;
        assert_ne!(addr, 0);
        assert_eq!(super::symbol_at(addr).as_deref(), Some("malloc"));
        assert_eq!(super::symbol_at(addr + 1), None);
        assert_eq!(super::address_of("malloc"), Some(addr));
        assert_eq!(super::address_of("no_such_symbol_here"), None);
    }
}
