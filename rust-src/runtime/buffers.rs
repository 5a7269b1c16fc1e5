//! The heap buffers a reverse-mode derivative owns during a call — its tape once it
//! outgrows the stack, the inputs saved for a BLAS call's reverse, and the shadow
//! elements an array shrink removed (`runtime::save_elements`) — recorded per
//! thread, so that a call that never returns can still give them back.
//!
//! A derivative frees what it allocated before it returns. But when its primal throws,
//! `jl_throw` longjmps out of the compiled code into the caller's `try`, past the frees:
//! without a record, every throwing call of a derivative with a heap tape leaked it
//! (measured: 380 MiB over 5,000 throwing calls of a 10⁴-iteration loop). So the
//! derivative gets and gives back these buffers through the functions below (their
//! addresses are constants in its code), which keep the live ones in a per-thread stack.
//! A caller that can be left by a non-local exit takes `oxidase_buffers_mark()` before
//! the call and, when the call does not come back, `oxidase_buffers_release(mark)` frees
//! what the call left (Julia does so for every derivative compiled with
//! `OX_FLAG_RELEASE_ON_THROW`, `src/call.jl`). Marks nest: a derivative whose primal
//! runs another derivative (through the Julia runtime) leaves its own buffers below the
//! inner call's mark. A call that returns leaves the stack as it found it.
//!
//! Only the slow paths come here (a tape's first move to the heap, its doublings, its
//! free; one BLAS call's save and last reverse; a shrink of an array of references): a derivative whose tape stays on its
//! stack never calls them, and the warm call of one that does calls them once or twice.

use std::cell::{Cell, RefCell};

use crate::runtime::blas::Saved;

/// One live buffer.
enum Owned {
    /// A tape's heap buffer, from `malloc`/`realloc`, and its size in bytes.
    Tape(*mut u8, usize),
    /// A BLAS call's saved inputs, from `Box::into_raw`.
    Blas(*mut Saved),
    /// The shadow elements a shrink removed (`runtime::save_elements`), from `malloc`.
    Elements(*mut u8),
}

impl Owned {
    fn addr(&self) -> usize {
        match self {
            Owned::Tape(p, _) => *p as usize,
            Owned::Blas(p) => *p as usize,
            Owned::Elements(p) => *p as usize,
        }
    }
}

thread_local! {
    /// This thread's live buffers, oldest first.
    static LIVE: RefCell<Vec<Owned>> = const { RefCell::new(Vec::new()) };
    /// `LIVE`'s length, for `oxidase_buffers_mark`, which runs before every call of a
    /// derivative that may throw: a plain word needs no lazy initialization nor borrow
    /// (measured: a call of 3.4 ns from Julia, 4.0 through the `RefCell`).
    static COUNT: Cell<usize> = const { Cell::new(0) };
}

/// Runs `f` on this thread's record; `None` once the thread is being torn down (the
/// buffer then goes unrecorded, as before this record existed: never a panic).
fn with_live<R>(f: impl FnOnce(&mut Vec<Owned>) -> R) -> Option<R> {
    LIVE.try_with(|l| {
        l.try_borrow_mut().ok().map(|mut l| {
            let r = f(&mut l);
            COUNT.set(l.len());
            r
        })
    })
    .ok()
    .flatten()
}

/// Removes the record of the buffer at `addr` (searched from the newest: the buffer
/// a derivative gives back is almost always the last it took), returning it.
fn forget(addr: usize) -> Option<Owned> {
    with_live(|l| l.iter().rposition(|o| o.addr() == addr).map(|k| l.remove(k))).flatten()
}

/// The largest tape buffer a thread keeps for its next call (`Spare`).
const SPARE_LIMIT: usize = 1 << 30;

/// A thread's spare tape buffer: the largest one its derivatives gave back (up to
/// `SPARE_LIMIT`), which the next call's tape takes instead of a fresh `malloc`. A warm
/// call whose tape outgrows glibc's largest `mmap` threshold (32 MiB) otherwise maps
/// fresh pages on every call and faults each one in, zeroed: the determinant by minors
/// at ℓ = 9 (a 47 MiB tape) took 12,000 page faults a call, and its gradient / primal went
/// from 3.9 at ℓ = 8 to 13. Freed when the thread ends.
struct Spare(Cell<(*mut u8, usize)>);

impl Drop for Spare {
    fn drop(&mut self) {
        // SAFETY: the spare is a `malloc`ed buffer no derivative uses (or null).
        unsafe { libc::free(self.0.get().0 as *mut libc::c_void) }
    }
}

thread_local! {
    static SPARE: Spare = const { Spare(Cell::new((std::ptr::null_mut(), 0))) };
}

/// The spare buffer, taken, if it holds `bytes`.
fn take_spare(bytes: usize) -> Option<(*mut u8, usize)> {
    SPARE
        .try_with(|s| {
            let (p, size) = s.0.get();
            (!p.is_null() && size >= bytes).then(|| {
                s.0.set((std::ptr::null_mut(), 0));
                (p, size)
            })
        })
        .ok()
        .flatten()
}

/// Keeps `p` (of `size` bytes, given back by a derivative) as the spare if it is the
/// largest, freeing the other.
///
/// # Safety
/// `p` must be a `malloc`ed buffer nothing uses any more.
unsafe fn park(p: *mut u8, size: usize) {
    let freed = if size > SPARE_LIMIT {
        p
    } else {
        SPARE
            .try_with(|s| {
                let (old, old_size) = s.0.get();
                if size > old_size {
                    s.0.set((p, size));
                    old
                } else {
                    p
                }
            })
            .unwrap_or(p)
    };
    libc::free(freed as *mut libc::c_void);
}

/// `malloc(bytes)` for a tape, recorded: the thread's spare buffer when it holds
/// `bytes`.
///
/// # Safety
/// As `malloc`; the result is given back with `tape_realloc` or `tape_free`.
pub unsafe extern "C" fn tape_alloc(bytes: u64) -> *mut u8 {
    let (p, size) = match take_spare(bytes as usize) {
        Some(spare) => spare,
        None => (libc::malloc(bytes as usize) as *mut u8, bytes as usize),
    };
    if !p.is_null() {
        with_live(|l| l.push(Owned::Tape(p, size)));
    }
    p
}

/// `realloc(p, bytes)` of a tape, its record following the move; `p` itself when its
/// buffer (the spare `tape_alloc` gave) already holds `bytes`.
///
/// # Safety
/// `p` must come from `tape_alloc` or `tape_realloc` and not have been freed.
pub unsafe extern "C" fn tape_realloc(p: *mut u8, bytes: u64) -> *mut u8 {
    let bytes = bytes as usize;
    let size = with_live(|l| {
        l.iter().rev().find_map(|o| match o {
            Owned::Tape(q, size) if *q == p => Some(*size),
            _ => None,
        })
    })
    .flatten();
    if size.is_some_and(|size| size >= bytes) {
        return p;
    }
    let q = libc::realloc(p as *mut libc::c_void, bytes) as *mut u8;
    if !q.is_null() {
        with_live(|l| {
            if let Some(o) = l.iter_mut().rev().find(|o| o.addr() == p as usize) {
                *o = Owned::Tape(q, bytes);
            }
        });
    }
    q
}

/// Gives back a tape: kept as the thread's spare if it is the largest (`Spare`), else
/// freed; its record goes.
///
/// # Safety
/// `p` must come from `tape_alloc` or `tape_realloc` and not have been freed.
pub unsafe extern "C" fn tape_free(p: *mut u8) {
    match forget(p as usize) {
        Some(Owned::Tape(_, size)) => park(p, size),
        _ => libc::free(p as *mut libc::c_void),
    }
}

/// Records the saved inputs of a BLAS call (`blas::blas_save`).
pub(crate) fn own_saved(p: *mut Saved) {
    with_live(|l| l.push(Owned::Blas(p)));
}

/// Forgets them before `blas::blas_reverse` frees them.
pub(crate) fn disown_saved(p: *mut Saved) {
    forget(p as usize);
}

/// Records a block of saved shadow elements (`runtime::save_elements`).
pub(crate) fn own_elements(p: *mut u8) {
    with_live(|l| l.push(Owned::Elements(p)));
}

/// Forgets it before `runtime::restore_elements` frees it.
pub(crate) fn disown_elements(p: *mut u8) {
    forget(p as usize);
}

/// How many buffers this thread's derivatives hold now: the mark to give
/// `oxidase_buffers_release` if the call about to start does not return.
pub fn mark() -> usize {
    COUNT.get()
}

/// Frees the buffers this thread's derivatives took since `mark` (from
/// `oxidase_buffers_mark` before a call that was left by a non-local exit, such as
/// Julia's `jl_throw`). Returns how many it freed.
///
/// # Safety
/// No derivative started on this thread after `mark` was taken may still be running:
/// it would go on using buffers freed here.
pub unsafe fn release(mark: usize) -> usize {
    let left = with_live(|l| l.split_off(mark.min(l.len()))).unwrap_or_default();
    let n = left.len();
    for o in left.into_iter().rev() {
        match o {
            // SAFETY: the record holds only buffers taken (`tape_alloc`/`tape_realloc`,
            // `save_elements`: `malloc`ed) and not yet given back (`tape_free` and
            // `restore_elements` forget a buffer before freeing it), each once, and `split_off` removed these from it. That no
            // derivative still running uses them is this function's documented
            // precondition, which it cannot check: `release` is safe to call but frees
            // live buffers when given a mark taken before a call still in progress.
            Owned::Tape(p, _) | Owned::Elements(p) => unsafe { libc::free(p as *mut libc::c_void) },
            // SAFETY: as above; a `Blas` record is the `Box::into_raw` of `blas_save`,
            // recorded by `own_saved` and forgotten by `disown_saved` before
            // `blas_reverse` frees it, so it is freed here only if still owned.
            Owned::Blas(p) => drop(unsafe { Box::from_raw(p) }),
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_frees_what_was_taken_after_the_mark_only() {
        // SAFETY: every buffer passed to `tape_realloc`/`tape_free` comes from
        // `tape_alloc`/`tape_realloc` and is given back at most once (`a`'s old address
        // is not reused after the realloc; `_b` is freed by `release`, not again).
        unsafe {
            let outer = tape_alloc(64);
            let m0 = mark();
            let a = tape_alloc(64);
            let a = tape_realloc(a, 4096);
            let _b = tape_alloc(128);
            assert_eq!(mark(), m0 + 2);
            assert_eq!(release(m0), 2); // (no derivative is running)
            assert_eq!(mark(), m0);
            // A call that returns gives back what it took: the stack is as before.
            let c = tape_alloc(64);
            tape_free(c);
            assert_eq!(mark(), m0);
            let _ = a;
            tape_free(outer);
            assert_eq!(mark(), m0 - 1);
        }
    }

    #[test]
    fn a_mark_beyond_the_record_releases_nothing() {
        // SAFETY: no derivative is running on this thread.
        assert_eq!(unsafe { release(usize::MAX) }, 0);
    }

    /// A tape given back is the next call's, if it is large enough: no fresh pages for
    /// a warm call (a test thread of its own, so that its spare starts empty).
    #[test]
    fn the_largest_tape_given_back_serves_the_next_call() {
        std::thread::spawn(|| {
            // SAFETY: each buffer comes from `tape_alloc`/`tape_realloc` and is given
            // back once; writes stay within the size asked for.
            unsafe {
                let m0 = mark();
                let a = tape_alloc(1 << 20);
                let a = tape_realloc(a, 4 << 20);
                a.add((4 << 20) - 1).write(7);
                tape_free(a);
                assert_eq!(mark(), m0, "given back, no longer recorded");
                // A smaller tape takes the spare, and grows in it without moving.
                let b = tape_alloc(4096);
                assert_eq!(b, a);
                assert_eq!(tape_realloc(b, 2 << 20), b);
                assert_eq!(tape_realloc(b, 4 << 20), b);
                // Meanwhile a second tape gets a buffer of its own.
                let c = tape_alloc(4096);
                assert_ne!(c, b);
                // Beyond the spare's size, it moves.
                let c = tape_realloc(c, 8 << 20);
                c.write(1);
                c.add((8 << 20) - 1).write(2);
                assert_eq!(mark(), m0 + 2);
                tape_free(b);
                tape_free(c);
                // The larger one stays: a tape of 8 MiB takes it.
                let d = tape_alloc(8 << 20);
                assert_eq!(d, c);
                tape_free(d);
                // A buffer left after a throw is freed, not kept.
                let m1 = mark();
                let _e = tape_alloc(16 << 20);
                assert_eq!(release(m1), 1);
                assert_eq!(tape_alloc(8 << 20), d, "the spare is still the 8 MiB one");
                tape_free(d);
                assert_eq!(mark(), m0);
            }
        })
        .join()
        .expect("the test thread");
    }
}
