//! Helpers the derivative code calls by address: work that is a loop in any language
//! and clearer written once here than emitted as IR.

pub mod blas;
pub mod buffers;
pub mod hooks;

use crate::julia::ArrayHeader as JlArray;

/// The addresses of every function here the derivative code calls: none of them throws.
pub fn addresses() -> [usize; 18] {
    [
        note_callee_refusal as *const () as usize,
        take_callee_refusal as *const () as usize,
        save_elements as *const () as usize,
        restore_elements as *const () as usize,
        array_write_barrier as *const () as usize,
        memcpy_adjoint_f64 as *const () as usize,
        memcpy_adjoint_f32 as *const () as usize,
        zero_array as *const () as usize,
        zero_array_end as *const () as usize,
        zero_array_range as *const () as usize,
        array_accumulate_f64 as *const () as usize,
        array_accumulate_f32 as *const () as usize,
        blas::blas_tangent as *const () as usize,
        blas::blas_save as *const () as usize,
        blas::blas_reverse as *const () as usize,
        buffers::tape_alloc as *const () as usize,
        buffers::tape_realloc as *const () as usize,
        buffers::tape_free as *const () as usize,
    ]
}

thread_local! {
    /// The first refusal a callee's derivative function met as it ran on this thread
    /// (`diagnostics::refuse_when`), which the entry that called it reports as its
    /// status when it returns (`take_callee_refusal`); 0 for none.
    static CALLEE_REFUSAL: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Notes refusal `code` (`diagnostics::register`) when `refused` is not 0: a callee's
/// derivative function met, as it ran, a construct the derivative cannot follow. The
/// first one noted stays until the entry takes it.
pub extern "C" fn note_callee_refusal(refused: u8, code: u32) {
    if refused != 0 {
        CALLEE_REFUSAL.with(|c| {
            if c.get() == 0 {
                c.set(code)
            }
        });
    }
}

/// The refusal callees noted on this thread since the last call (0 for none), cleared:
/// called by an entry whose callees may note one, when it starts (a call that threw
/// may have left one) and when it returns.
pub extern "C" fn take_callee_refusal() -> u32 {
    CALLEE_REFUSAL.with(|c| c.replace(0))
}

/// Reverse of `memcpy(dst, src, nbytes)` on Float64 data: `src' += dst'`, `dst' = 0`,
/// element by element (correct for overlapping `memmove` too: `dst'` is read whole
/// before anything is written).
///
/// # Safety
/// `dst` and `src` must be valid for `nbytes` bytes of `f64`s.
pub unsafe extern "C" fn memcpy_adjoint_f64(dst: *mut f64, src: *mut f64, nbytes: usize) {
    memcpy_adjoint(dst, src, nbytes / 8)
}

/// Reverse of `memcpy(dst, src, nbytes)` on Float32 data; see `memcpy_adjoint_f64`.
///
/// # Safety
/// `dst` and `src` must be valid for `nbytes` bytes of `f32`s.
pub unsafe extern "C" fn memcpy_adjoint_f32(dst: *mut f32, src: *mut f32, nbytes: usize) {
    memcpy_adjoint(dst, src, nbytes / 4)
}

unsafe fn memcpy_adjoint<T: Copy + Default + std::ops::AddAssign>(dst: *mut T, src: *mut T, n: usize) {
    if n == 0 || dst == src {
        return;
    }
    let moved: Vec<T> = (0..n).map(|i| dst.add(i).read_unaligned()).collect();
    for i in 0..n {
        dst.add(i).write_unaligned(T::default());
    }
    for (i, d) in moved.into_iter().enumerate() {
        let mut s = src.add(i).read_unaligned();
        s += d;
        src.add(i).write_unaligned(s);
    }
}

/// Zeroes an array's data: a fresh shadow starts with derivative zero. An array of
/// references (arrays, struct objects, structs holding them) is left as it is: a fresh one holds none yet, and
/// the shadow of a copy of one holds the very shadows of the original's elements (their
/// derivatives live there, not in the array).
///
/// # Safety
/// `a` must be a live Julia array.
pub unsafe extern "C" fn zero_array(a: *mut JlArray) {
    let a = &*a;
    // (Elements that hold references beside numbers are never zeroed: a copy of such an
    // array is refused before it runs, and its references must stay valid until then.)
    if a.holds_references() {
        return;
    }
    std::ptr::write_bytes(a.data, 0, a.length * a.elsize as usize);
}

/// Zeroes the last `n` elements of an array's data: the elements `jl_array_grow_end`
/// added to a shadow.
///
/// # Safety
/// `a` must be a live Julia array of bits elements.
pub unsafe extern "C" fn zero_array_end(a: *mut JlArray, n: usize) {
    let length = (*a).length;
    zero_array_range(a, length - n.min(length), n);
}

/// Zeroes `n` elements of an array's data from 0-based index `first` on: the elements
/// `jl_array_grow_beg` or `jl_array_grow_at` added to a shadow.
///
/// # Safety
/// `a` must be a live Julia array of bits elements.
pub unsafe extern "C" fn zero_array_range(a: *mut JlArray, first: usize, n: usize) {
    let a = &*a;
    let first = first.min(a.length);
    let n = n.min(a.length - first);
    let size = a.elsize as usize;
    std::ptr::write_bytes(a.data.add(first * size), 0, n * size);
}

/// `first` for `save_elements` and `restore_elements`: the last `n` elements.
pub const LAST: usize = usize::MAX;

/// Before a shrink of shadow array `a` in reverse mode's forward sweep: a copy of the `n`
/// elements it is about to lose, from 0-based index `first` on (`LAST`: the last `n`),
/// when they are, or hold, references (the shadows of arrays or struct objects, which
/// the adjoints of earlier reads and the caller's shadow need back when the reverse
/// sweep undoes the shrink: `restore_elements`). The copy is a `malloc`ed block that
/// links `prev` (the copy of another lane, or null), which is returned when there is
/// nothing to copy. The block is in this thread's buffer record (`buffers`) until the
/// undo frees it: a call left by a throw before the undo does not leak it.
///
/// # Safety
/// `a` must be a live Julia array, `prev` null or a block this function returned.
pub unsafe extern "C" fn save_elements(a: *mut JlArray, first: usize, n: usize, prev: *mut u8) -> *mut u8 {
    let a = &*a;
    if !a.holds_references() || n == 0 {
        return prev;
    }
    let first = if first == LAST { a.length.saturating_sub(n) } else { first.min(a.length) };
    let n = n.min(a.length - first);
    let size = a.elsize as usize;
    let header = 2 * std::mem::size_of::<usize>();
    let bytes = header + n * size;
    let block = libc::malloc(bytes) as *mut u8;
    if block.is_null() {
        // (Out of memory, as Rust's own allocations do: an undo without the saved
        // elements would lose their derivatives without a word.)
        std::alloc::handle_alloc_error(std::alloc::Layout::from_size_align_unchecked(bytes, 8));
    }
    std::ptr::write(block as *mut *mut u8, prev);
    std::ptr::write((block as *mut usize).add(1), n);
    std::ptr::copy_nonoverlapping(a.data.add(first * size), block.add(header), n * size);
    // (Recorded: a call that throws before the undo gives it back, `buffers::release`.)
    buffers::own_elements(block);
    block
}

/// After the reverse sweep undid that shrink (the elements back, zeroed): the saved
/// elements back in place, the block freed; returns the block it linked. Does nothing
/// and returns `saved` when `a` holds no references (nothing was saved for it).
///
/// # Safety
/// `a` must be a live Julia array, `saved` null or a block `save_elements` returned for
/// the same shrink of the same array.
pub unsafe extern "C" fn restore_elements(a: *mut JlArray, first: usize, saved: *mut u8) -> *mut u8 {
    let a = &*a;
    if !a.holds_references() || saved.is_null() {
        return saved;
    }
    let n = std::ptr::read((saved as *const usize).add(1));
    let prev = std::ptr::read(saved as *const *mut u8);
    let first = if first == LAST { a.length.saturating_sub(n) } else { first.min(a.length) };
    let n = n.min(a.length - first);
    let size = a.elsize as usize;
    let header = 2 * std::mem::size_of::<usize>();
    std::ptr::copy_nonoverlapping(saved.add(header), a.data.add(first * size), n * size);
    buffers::disown_elements(saved);
    libc::free(saved as *mut libc::c_void);
    prev
}

/// The collector's write barrier for a reference `child` stored into the data of array
/// `a` (a shadow array of arrays the caller made, which may be old): queues the array's
/// owner with `queue_root` (the runtime's `jl_gc_queue_root`) when Julia's `jl_gc_wb`
/// would. A null `child` needs none.
///
/// # Safety
/// `a` must be a live Julia array, `child` null or a live Julia object, `queue_root`
/// the runtime's `jl_gc_queue_root`.
pub unsafe extern "C" fn array_write_barrier(
    a: *mut JlArray,
    child: *const u8,
    queue_root: unsafe extern "C" fn(*mut u8),
) {
    if !child.is_null() {
        object_write_barrier(JlArray::owner(a), child, queue_root)
    }
}

/// The collector's write barrier for a reference `child` stored into a field of heap
/// object `parent` (a shadow `Core.Box`, which may be old): queues `parent` with
/// `queue_root` when Julia's `jl_gc_wb` would. A null `child` needs none.
///
/// # Safety
/// `parent` must be a live Julia object, `child` null or a live Julia object,
/// `queue_root` the runtime's `jl_gc_queue_root`.
pub unsafe extern "C" fn object_write_barrier(
    parent: *mut u8,
    child: *const u8,
    queue_root: unsafe extern "C" fn(*mut u8),
) {
    if child.is_null() {
        return;
    }
    if crate::julia::write_barrier_needed(parent, child) {
        queue_root(parent);
    }
}

/// Reverse of `b = copy(a)` on shadows: `a' += b'`, `b' = 0`, number by number: every
/// `Float64` of the elements (numbers, or isbits structs of them, an integer beside them
/// holding zero in a shadow). A copy of an array of references (arrays, struct
/// objects) is shallow: its shadow holds the very shadows the original's does, which
/// received the adjoints themselves; there is nothing to add. Elements stored inline
/// that hold references, perhaps beside numbers (immutable structs holding an array and
/// a float), cannot be added up as numbers: returns 0 for them, and the derivative
/// stops with an error (`rules::memory::ArrayCopy`); 1 otherwise.
///
/// # Safety
/// `src` and `dst` must be live Julia arrays of the same length and element type.
pub unsafe extern "C" fn array_accumulate_f64(src: *mut JlArray, dst: *mut JlArray) -> u8 {
    let (s, d) = (&*src, &*dst);
    if d.holds_inline_references() {
        return 0;
    }
    if !d.holds_references() {
        memcpy_adjoint(d.data as *mut f64, s.data as *mut f64, d.length * d.elsize as usize / 8);
    }
    1
}

/// `array_accumulate_f64` for arrays whose numbers are `Float32`s.
///
/// # Safety
/// As `array_accumulate_f64`.
pub unsafe extern "C" fn array_accumulate_f32(src: *mut JlArray, dst: *mut JlArray) -> u8 {
    let (s, d) = (&*src, &*dst);
    if d.holds_inline_references() {
        return 0;
    }
    if !d.holds_references() {
        memcpy_adjoint(d.data as *mut f32, s.data as *mut f32, d.length * d.elsize as usize / 4);
    }
    1
}

#[cfg(test)]
mod tests {
    use crate::julia::ArrayHeader;

    #[test]
    fn a_callee_refusal_is_the_first_noted_and_taken_once() {
        assert_eq!(super::take_callee_refusal(), 0);
        super::note_callee_refusal(0, 5);
        assert_eq!(super::take_callee_refusal(), 0, "a check that passed notes nothing");
        super::note_callee_refusal(1, 7);
        super::note_callee_refusal(1, 9);
        assert_eq!(super::take_callee_refusal(), 7, "the first refusal is reported");
        assert_eq!(super::take_callee_refusal(), 0, "and taken");
        // (Per thread: another thread's refusal is not this one's.)
        std::thread::spawn(|| super::note_callee_refusal(1, 3)).join().unwrap();
        assert_eq!(super::take_callee_refusal(), 0);
    }

    #[test]
    fn saved_elements_are_restored_and_released_with_the_buffers() {
        let mut data = [11usize, 12, 13, 14];
        let mut a =
            ArrayHeader { data: data.as_mut_ptr() as *mut u8, length: 4, flags: ArrayHeader::PTR_ARRAY, elsize: 8 };
        let a: *mut ArrayHeader = &mut a;
        // SAFETY: `a` is an array header of 4 pointer-sized elements in `data`, which
        // outlives every call; blocks are given back once each (restored, or released
        // with no derivative running).
        unsafe {
            let mark = super::buffers::mark();
            let saved = super::save_elements(a, super::LAST, 2, std::ptr::null_mut());
            assert_eq!(super::buffers::mark(), mark + 1);
            // The shrink, its undo (elements back, zeroed), the restore.
            (*a).length = 2;
            (*a).length = 4;
            data[2] = 0;
            data[3] = 0;
            assert!(super::restore_elements(a, super::LAST, saved).is_null());
            assert_eq!(data, [11, 12, 13, 14]);
            assert_eq!(super::buffers::mark(), mark);
            // Two lanes' blocks, left by a throw before the undo: released.
            let first = super::save_elements(a, 0, 1, std::ptr::null_mut());
            let _second = super::save_elements(a, 0, 1, first);
            assert_eq!(super::buffers::mark(), mark + 2);
            assert_eq!(super::buffers::release(mark), 2);
            assert_eq!(super::buffers::mark(), mark);
        }
    }

    #[test]
    fn memmove_adjoint_with_overlap() {
        // memmove(a + 1, a, 2 elements): reverse moves a'[1..3] back onto a'[0..2].
        let mut a = [1.0f64, 10.0, 100.0, 1000.0];
        // SAFETY: `a` holds 4 doubles; `a + 1` and `a` are both valid for the 16 bytes
        // (2 doubles) the call reads and writes.
        unsafe { super::memcpy_adjoint_f64(a.as_mut_ptr().add(1), a.as_mut_ptr(), 16) };
        assert_eq!(a, [11.0, 100.0, 0.0, 1000.0]);
    }
}
