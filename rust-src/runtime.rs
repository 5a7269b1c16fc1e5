//! Helpers the derivative code calls by address: work that is a loop in any language
//! and clearer written once here than emitted as IR.

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

#[cfg(test)]
mod tests {
    #[test]
    fn memmove_adjoint_with_overlap() {
        // memmove(a + 1, a, 2 elements): reverse moves a'[1..3] back onto a'[0..2].
        let mut a = [1.0f64, 10.0, 100.0, 1000.0];
        unsafe { super::memcpy_adjoint_f64(a.as_mut_ptr().add(1), a.as_mut_ptr(), 16) };
        assert_eq!(a, [11.0, 100.0, 0.0, 1000.0]);
    }
}
