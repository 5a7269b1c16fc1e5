//! Derivatives of the BLAS calls behind Julia's `x' * y` (`dot`), `A * x` (`gemv`),
//! `A * B` (`gemm`), `A * A'` (`syrk`), `Symmetric(A) * x` (`symv`), a triangular view
//! times `x` (`trmv`), `axpy!`, `axpby!`, `BLAS.scal!` and `BLAS.ger!` on Float64/Float32
//! arrays. Julia calls the Fortran interface
//! (`ddot_64_(n::Ref, x::Ptr, incx::Ref, ...)`); the derivative code passes the call's
//! arguments and the shadows of its array arguments as two arrays of machine words.
//!
//! - forward mode: `blas_tangent` returns `ṙ` (dot) or updates the output's shadow
//!   (`ẏ ← α op(Ȧ) x + α op(A) ẋ + β ẏ`, likewise for gemm), after the primal call;
//! - reverse mode: `blas_save` copies what the reverse needs (scalars and input arrays,
//!   which later code may overwrite) right after the call, and `blas_reverse` applies the
//!   adjoint at the same point of the reverse sweep, then frees the copy:
//!   dot `x̄ += r̄ y, ȳ += r̄ x`; gemv `x̄ += α op(A)ᵀ ȳ, Ā += α (ȳ xᵀ or x ȳᵀ), ȳ ← β ȳ`;
//!   gemm `Ā += α C̄ op(B)ᵀ` (transposed for op(A) = Aᵀ), `B̄ += α op(A)ᵀ C̄`, `C̄ ← β C̄`;
//!   symv (`y ← α S x + β y`, S symmetric, one triangle of A stored) as gemv with
//!   `Ā += α ȳ xᵀ` folded onto the stored triangle; trmv (`x ← P x₀`, P = op(T)):
//!   `P̄ += x̄ x₀ᵀ` on the elements read, `x̄₀ = Pᵀ x̄`; axpy, axpby (`y ← α x + β y₀`):
//!   `x̄ += α ȳ`, `ȳ₀ = β ȳ`; scal (`x ← α x₀`): `x̄₀ = α x̄`; ger (`A ← α x yᵀ + A₀`):
//!   `x̄ += α Ā y`, `ȳ += α Āᵀ x`; and `ᾱ` by the same products with the adjoint;
//!   syrk (`C ← α op(A) op(A)ᵀ + β C` on one triangle of `C`, which is all it writes):
//!   for each `(i, j)` of that triangle, `op(Ā)ᵢ += α C̄ᵢⱼ op(A)ⱼ`,
//!   `op(Ā)ⱼ += α C̄ᵢⱼ op(A)ᵢ` (rows), `C̄ᵢⱼ ← β C̄ᵢⱼ`;
//! - a differentiated `β` (`KEEP_OLD`): `ẏ += β̇ y₀` and `β̄ += ⟨ȳ, y₀⟩` over the
//!   elements written, `y₀` read before the call overwrites it.
//!
//! Loops, not calls back into BLAS: correct for any strides, fast enough next to the
//! primal call, and without a second BLAS to link.

/// Which BLAS routine, and in which precision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum BlasOp {
    /// `ddot`.
    Dot = 0,
    /// `dgemv`.
    Gemv = 1,
    /// `dgemm`.
    Gemm = 2,
    /// `dsyrk`.
    Syrk = 3,
    /// `dsymv`.
    Symv = 4,
    /// `dtrmv` (in place: `x ← op(T) x`).
    Trmv = 5,
    /// `daxpy` (`y ← α x + y`).
    Axpy = 6,
    /// `dscal` (in place: `x ← α x`).
    Scal = 7,
    /// `daxpby` (`y ← α x + β y`).
    Axpby = 8,
    /// `dger` (`A ← α x yᵀ + A`).
    Ger = 9,
}

/// Flag on the op code: single precision (`sdot`...).
pub const SINGLE: u32 = 16;

/// Flag on the op code: `β` carries a derivative (its `Ref` slot has a shadow). Its
/// terms need the output's old contents `y₀`, which the call overwrites: the rule then
/// computes the tangent (`… + β̇ y₀`) and makes the copy for the reverse sweep
/// (`β̄ += ⟨ȳ, y₀⟩`, `blas_save` keeps `y₀`) just before the call.
pub const KEEP_OLD: u32 = 32;

/// The routine of an op code, without its flags.
fn routine(op: u32) -> u32 {
    op & !(SINGLE | KEEP_OLD)
}

/// The routine and precision behind a Fortran BLAS symbol (`ddot_64_`, `sgemv_`...).
pub fn lookup(name: &str) -> Option<u32> {
    let base = name.trim_end_matches('_').trim_end_matches("_64");
    // (By prefix, not by byte offset: a name need not start with an ASCII character.)
    let (single, op) = if let Some(op) = base.strip_prefix('d') {
        (0, op)
    } else if let Some(op) = base.strip_prefix('s') {
        (SINGLE, op)
    } else {
        return None;
    };
    let op = match op {
        "dot" => BlasOp::Dot,
        "gemv" => BlasOp::Gemv,
        "gemm" => BlasOp::Gemm,
        "syrk" => BlasOp::Syrk,
        "symv" => BlasOp::Symv,
        "trmv" => BlasOp::Trmv,
        "axpy" => BlasOp::Axpy,
        "scal" => BlasOp::Scal,
        "axpby" => BlasOp::Axpby,
        "ger" => BlasOp::Ger,
        _ => return None,
    };
    Some(op as u32 | single)
}

/// Argument positions of the array operands (whose shadows are passed), per routine.
pub fn array_args(op: u32) -> &'static [usize] {
    match routine(op) {
        0 => &[1, 3],
        1 => &[4, 6, 9],
        3 => &[5, 8],
        4 => &[3, 5, 8],
        5 => &[4, 6],
        6 => &[2, 4],
        7 => &[2],
        8 => &[2, 5],
        9 => &[3, 5, 7],
        _ => &[6, 8, 11],
    }
}

/// The positions of the scalars `α` and `β` (`y ← α op(A) x + β y`), each passed by
/// reference (a `Ref` slot, whose shadow holds the number's tangent or adjoint), where
/// the routine has them.
pub fn scalar_args(op: u32) -> (Option<usize>, Option<usize>) {
    match routine(op) {
        1 => (Some(3), Some(8)),
        2 => (Some(5), Some(10)),
        3 => (Some(4), Some(7)),
        4 => (Some(2), Some(7)),
        6 | 7 => (Some(1), None),
        8 => (Some(1), Some(4)),
        9 => (Some(2), None),
        _ => (None, None),
    }
}

/// Whether the routine overwrites an input it needs for its derivative (`trmv`'s `x`):
/// `blas_save` is then called before the call, and forward mode reads that copy
/// (`blas_tangent_saved`).
pub fn in_place(op: u32) -> bool {
    [BlasOp::Trmv as u32, BlasOp::Scal as u32].contains(&routine(op))
}

/// The output array argument (written by the call), if any.
pub fn output_arg(op: u32) -> Option<usize> {
    match routine(op) {
        1 => Some(9),
        2 => Some(11),
        3 => Some(8),
        4 => Some(8),
        5 => Some(6),
        6 => Some(4),
        7 => Some(2),
        8 => Some(5),
        9 => Some(7),
        _ => None,
    }
}

trait Float: Copy + Default + std::ops::Add<Output = Self> + std::ops::Mul<Output = Self> + std::ops::AddAssign {
    fn from_f64(x: f64) -> Self;
    fn to_f64(self) -> f64;
}
impl Float for f64 {
    fn from_f64(x: f64) -> Self {
        x
    }
    fn to_f64(self) -> f64 {
        self
    }
}
impl Float for f32 {
    fn from_f64(x: f64) -> Self {
        x as f32
    }
    fn to_f64(self) -> f64 {
        self as f64
    }
}

unsafe fn int(a: u64) -> i64 {
    *(a as *const i64)
}
unsafe fn scalar<T: Float>(a: u64) -> T {
    *(a as *const T)
}
unsafe fn transposed(a: u64) -> bool {
    matches!(*(a as *const u8), b'T' | b't' | b'C' | b'c')
}

/// A strided vector or a column-major matrix in memory.
#[derive(Clone, Copy)]
struct Mat<T> {
    p: *mut T,
    rows: usize,
    cols: usize,
    ld: usize,
    trans: bool,
}

impl<T: Float> Mat<T> {
    /// Element (i, j) of op(M).
    unsafe fn at(&self, i: usize, j: usize) -> *mut T {
        let (r, c) = if self.trans { (j, i) } else { (i, j) };
        self.p.add(r + c * self.ld)
    }
    unsafe fn get(&self, i: usize, j: usize) -> T {
        *self.at(i, j)
    }
    /// Rows and columns of op(M).
    fn shape(&self) -> (usize, usize) {
        if self.trans {
            (self.cols, self.rows)
        } else {
            (self.rows, self.cols)
        }
    }
    /// A dense copy of the stored matrix (ld = rows).
    unsafe fn copy(&self) -> (Vec<T>, Mat<T>) {
        let mut v = Vec::with_capacity(self.rows * self.cols);
        for c in 0..self.cols {
            for r in 0..self.rows {
                v.push(*self.p.add(r + c * self.ld));
            }
        }
        let m = Mat { p: v.as_mut_ptr(), rows: self.rows, cols: self.cols, ld: self.rows.max(1), trans: self.trans };
        (v, m)
    }
}

/// A vector of `n` elements with stride `inc` as an n×1 matrix (positive strides).
fn vector<T>(p: u64, n: usize, inc: i64) -> Mat<T> {
    Mat { p: p as *mut T, rows: n, cols: 1, ld: inc.unsigned_abs() as usize, trans: false }.strided()
}

impl<T> Mat<T> {
    /// A vector stored with stride `ld` is the `rows` elements p[0], p[ld], ...: viewed as
    /// a 1×rows matrix transposed (element (i, 0) at p[i·ld]).
    fn strided(self) -> Mat<T> {
        Mat { p: self.p, rows: 1, cols: self.rows, ld: self.ld, trans: true }
    }
}

/// What the reverse sweep needs of one call.
pub struct Saved {
    op: u32,
    scalars: [f64; 2],
    dims: [usize; 3],
    trans: [bool; 2],
    inc: [i64; 3],
    data: [Vec<u8>; 2],
    /// With `KEEP_OLD`: the elements the call writes, and their old contents in
    /// `Written::elements`' order.
    kept: Option<(Written, Vec<u8>)>,
}

/// The elements a routine with `β` writes: its output `y` (gemv, symv, axpby) or `C`
/// (gemm; one triangle for syrk), as the call's arguments lay it out.
#[derive(Clone, Copy, Debug)]
enum Written {
    Vector { n: usize, inc: i64 },
    Matrix { rows: usize, cols: usize, ld: usize },
    Triangle { n: usize, ld: usize, upper: bool },
}

impl Written {
    /// The output of the call whose arguments are `args`, for a routine with `β`.
    unsafe fn read<T: Float>(op: u32, args: *const u64) -> Option<Written> {
        Some(match routine(op) {
            1 => {
                let g = Gemv::<T>::read(args);
                Written::Vector { n: g.a.shape().0, inc: g.incy }
            }
            2 => {
                let g = Gemm::<T>::read(args);
                Written::Matrix { rows: g.c.rows, cols: g.c.cols, ld: g.c.ld }
            }
            3 => {
                let g = Syrk::<T>::read(args);
                Written::Triangle { n: g.c.rows, ld: g.c.ld, upper: g.upper }
            }
            4 => {
                let g = Symv::<T>::read(args);
                Written::Vector { n: g.n, inc: g.incy }
            }
            8 => {
                let v = Vectors::<T>::read(op, args);
                Written::Vector { n: v.n, inc: v.incy }
            }
            _ => return None,
        })
    }

    /// The addresses of the elements written, in one fixed order, in the array at `p`
    /// laid out as the output is (a shadow has its primal's layout).
    unsafe fn elements<T: Float>(self, p: u64) -> Vec<*mut T> {
        match self {
            Written::Vector { n, inc } => {
                let v = vector::<T>(p, n, inc);
                (0..n).map(|i| v.at(i, 0)).collect()
            }
            Written::Matrix { rows, cols, ld } => {
                let m = Mat { p: p as *mut T, rows, cols, ld, trans: false };
                (0..cols).flat_map(|j| (0..rows).map(move |i| (i, j))).map(|(i, j)| m.at(i, j)).collect()
            }
            Written::Triangle { n, ld, upper } => {
                let m = Mat { p: p as *mut T, rows: n, cols: n, ld, trans: false };
                (0..n)
                    .flat_map(|j| (0..n).filter(move |&i| if upper { i <= j } else { i >= j }).map(move |i| (i, j)))
                    .map(|(i, j)| m.at(i, j))
                    .collect()
            }
        }
    }
}

/// `ẏ += β̇ y₀` over the elements the call writes, before it (`KEEP_OLD`; `y₀` is the
/// output's primal, not yet overwritten).
unsafe fn add_beta_tangent<T: Float>(op: u32, args: *const u64, shadows: *const u64) {
    let (Some(out), (_, Some(b))) = (output_arg(op), scalar_args(op)) else { return };
    let (dy, dbeta) = (*shadows.add(out), scalar_tangent::<T>(*shadows.add(b)));
    let (Some(dbeta), Some(w)) = (dbeta.filter(|_| dy != 0), Written::read::<T>(op, args)) else { return };
    for (t, y) in w.elements::<T>(dy).into_iter().zip(w.elements::<T>(*args.add(out))) {
        *t += dbeta * *y;
    }
}

/// `β̄ += ⟨ȳ, y₀⟩` over the elements the call wrote (`KEEP_OLD`), `ȳ` the output's
/// adjoint before the reverse scales it by `β`.
unsafe fn add_beta_adjoint<T: Float>(sv: &Saved, shadows: *const u64) {
    let Some((w, old)) = &sv.kept else { return };
    let (Some(out), (_, Some(b))) = (output_arg(sv.op), scalar_args(sv.op)) else { return };
    let (dy, dbeta) = (*shadows.add(out), *shadows.add(b));
    if dy == 0 || dbeta == 0 {
        return;
    }
    let old = old.as_ptr() as *const T;
    let mut d = T::default();
    for (k, y) in w.elements::<T>(dy).into_iter().enumerate() {
        d += *y * *old.add(k);
    }
    add_scalar_adjoint(dbeta, d);
}

unsafe fn bytes<T: Float>(m: &Mat<T>) -> Vec<u8> {
    let (v, _) = m.copy();
    let mut out = vec![0u8; v.len() * std::mem::size_of::<T>()];
    std::ptr::copy_nonoverlapping(v.as_ptr() as *const u8, out.as_mut_ptr(), out.len());
    out
}

/// Forward mode. See the module documentation.
///
/// # Safety
/// `args` and `shadows` hold the call's arguments and the shadows of its array
/// arguments (0 where there is none), as Julia's BLAS `ccall` passes them.
pub unsafe extern "C" fn blas_tangent(op: u32, args: *const u64, shadows: *const u64) -> f64 {
    if op & SINGLE != 0 {
        tangent_and_beta::<f32>(op, args, shadows)
    } else {
        tangent_and_beta::<f64>(op, args, shadows)
    }
}

unsafe fn tangent_and_beta<T: Float>(op: u32, args: *const u64, shadows: *const u64) -> f64 {
    let t = tangent::<T>(op, args, shadows);
    if op & KEEP_OLD != 0 {
        add_beta_tangent::<T>(op, args, shadows);
    }
    t
}

unsafe fn tangent<T: Float>(op: u32, args: *const u64, shadows: *const u64) -> f64 {
    let a = |k: usize| *args.add(k);
    let s = |k: usize| *shadows.add(k);
    match routine(op) {
        0 => {
            let n = int(a(0)).max(0) as usize;
            let (x, y) = (vector::<T>(a(1), n, int(a(2))), vector::<T>(a(3), n, int(a(4))));
            let mut t = T::default();
            for i in 0..n {
                if s(1) != 0 {
                    t += *vector::<T>(s(1), n, int(a(2))).at(i, 0) * y.get(i, 0);
                }
                if s(3) != 0 {
                    t += x.get(i, 0) * *vector::<T>(s(3), n, int(a(4))).at(i, 0);
                }
            }
            t.to_f64()
        }
        1 => {
            let g = Gemv::<T>::read(args);
            if s(9) == 0 {
                return 0.0;
            }
            let (rows, cols) = g.a.shape();
            let dy = vector::<T>(s(9), rows, g.incy);
            let dalpha = scalar_tangent::<T>(s(3));
            for i in 0..rows {
                let (mut acc, mut product) = (T::default(), T::default());
                for j in 0..cols {
                    if s(4) != 0 {
                        acc += Mat { p: s(4) as *mut T, ..g.a }.get(i, j) * g.x.get(j, 0);
                    }
                    if s(6) != 0 {
                        acc += g.a.get(i, j) * *vector::<T>(s(6), cols, g.incx).at(j, 0);
                    }
                    if dalpha.is_some() {
                        product += g.a.get(i, j) * g.x.get(j, 0);
                    }
                }
                let scaled = dalpha.map_or(T::default(), |d| d * product);
                *dy.at(i, 0) = g.alpha * acc + g.beta * *dy.at(i, 0) + scaled;
            }
            0.0
        }
        // (In place: its tangent needs the copy made before the call, `blas_tangent_saved`.)
        5 | 7 => 0.0,
        // axpy, axpby: ẏ ← α̇ x + α ẋ + β ẏ (β = 1 for axpy).
        6 | 8 => {
            let v = Vectors::<T>::read(op, args);
            if s(v.out) == 0 {
                return 0.0;
            }
            let dy = vector::<T>(s(v.out), v.n, v.incy);
            let dx = vector::<T>(s(2), v.n, v.incx);
            let dalpha = scalar_tangent::<T>(s(1));
            for i in 0..v.n {
                let mut t = v.beta * *dy.at(i, 0);
                if s(2) != 0 {
                    t += v.alpha * dx.get(i, 0);
                }
                if let Some(d) = dalpha {
                    t += d * v.x.get(i, 0);
                }
                *dy.at(i, 0) = t;
            }
            0.0
        }
        // ger: Ȧ ← Ȧ + α̇ x yᵀ + α (ẋ yᵀ + x ẏᵀ).
        9 => {
            let g = Ger::<T>::read(args);
            if s(7) == 0 {
                return 0.0;
            }
            let da = Mat { p: s(7) as *mut T, ..g.a };
            let (dx, dy) = (vector::<T>(s(3), g.a.rows, g.incx), vector::<T>(s(5), g.a.cols, g.incy));
            let dalpha = scalar_tangent::<T>(s(2));
            for j in 0..g.a.cols {
                for i in 0..g.a.rows {
                    let mut t = T::default();
                    if s(3) != 0 {
                        t += g.alpha * dx.get(i, 0) * g.y.get(j, 0);
                    }
                    if s(5) != 0 {
                        t += g.alpha * g.x.get(i, 0) * dy.get(j, 0);
                    }
                    if let Some(d) = dalpha {
                        t += d * g.x.get(i, 0) * g.y.get(j, 0);
                    }
                    *da.at(i, j) += t;
                }
            }
            0.0
        }
        4 => {
            let g = Symv::<T>::read(args);
            if s(8) == 0 {
                return 0.0;
            }
            let dy = vector::<T>(s(8), g.n, g.incy);
            let da = Mat { p: s(3) as *mut T, ..g.a };
            let dx = vector::<T>(s(5), g.n, g.incx);
            let dalpha = scalar_tangent::<T>(s(2));
            for i in 0..g.n {
                let (mut acc, mut product) = (T::default(), T::default());
                for j in 0..g.n {
                    if s(3) != 0 {
                        acc += g.sym(&da, i, j) * g.x.get(j, 0);
                    }
                    if s(5) != 0 {
                        acc += g.sym(&g.a, i, j) * dx.get(j, 0);
                    }
                    if dalpha.is_some() {
                        product += g.sym(&g.a, i, j) * g.x.get(j, 0);
                    }
                }
                let scaled = dalpha.map_or(T::default(), |d| d * product);
                *dy.at(i, 0) = g.alpha * acc + g.beta * *dy.at(i, 0) + scaled;
            }
            0.0
        }
        3 => {
            let g = Syrk::<T>::read(args);
            if s(8) == 0 {
                return 0.0;
            }
            let (n, k) = g.a.shape();
            let dc = Mat { p: s(8) as *mut T, ..g.c };
            let da = Mat { p: s(5) as *mut T, ..g.a };
            let dalpha = scalar_tangent::<T>(s(4));
            for (i, j) in g.triangle(n) {
                let (mut acc, mut product) = (T::default(), T::default());
                if s(5) != 0 {
                    for l in 0..k {
                        acc += da.get(i, l) * g.a.get(j, l) + g.a.get(i, l) * da.get(j, l);
                    }
                }
                if dalpha.is_some() {
                    for l in 0..k {
                        product += g.a.get(i, l) * g.a.get(j, l);
                    }
                }
                let scaled = dalpha.map_or(T::default(), |d| d * product);
                *dc.at(i, j) = g.alpha * acc + g.beta * dc.get(i, j) + scaled;
            }
            0.0
        }
        _ => {
            let g = Gemm::<T>::read(args);
            if s(11) == 0 {
                return 0.0;
            }
            let (m, k) = g.a.shape();
            let n = g.b.shape().1;
            let dc = Mat { p: s(11) as *mut T, rows: g.c.rows, cols: g.c.cols, ld: g.c.ld, trans: false };
            let dalpha = scalar_tangent::<T>(s(5));
            for i in 0..m {
                for j in 0..n {
                    let (mut acc, mut product) = (T::default(), T::default());
                    for l in 0..k {
                        if s(6) != 0 {
                            acc += Mat { p: s(6) as *mut T, ..g.a }.get(i, l) * g.b.get(l, j);
                        }
                        if s(8) != 0 {
                            acc += g.a.get(i, l) * Mat { p: s(8) as *mut T, ..g.b }.get(l, j);
                        }
                        if dalpha.is_some() {
                            product += g.a.get(i, l) * g.b.get(l, j);
                        }
                    }
                    let scaled = dalpha.map_or(T::default(), |d| d * product);
                    *dc.at(i, j) = g.alpha * acc + g.beta * *dc.at(i, j) + scaled;
                }
            }
            0.0
        }
    }
}

/// The tangent of `α` held in the shadow of its `Ref` slot (`shadow`, 0 for none).
unsafe fn scalar_tangent<T: Float>(shadow: u64) -> Option<T> {
    (shadow != 0).then(|| *(shadow as *const T))
}

/// Adds `d` into the adjoint of `α` held in the shadow of its `Ref` slot (`shadow`, 0
/// for none).
unsafe fn add_scalar_adjoint<T: Float>(shadow: u64, d: T) {
    if shadow != 0 {
        *(shadow as *mut T) += d;
    }
}

struct Gemv<T> {
    a: Mat<T>,
    x: Mat<T>,
    alpha: T,
    beta: T,
    incx: i64,
    incy: i64,
}

impl<T: Float> Gemv<T> {
    unsafe fn read(args: *const u64) -> Gemv<T> {
        let a = |k: usize| *args.add(k);
        let trans = transposed(a(0));
        let (m, n) = (int(a(1)).max(0) as usize, int(a(2)).max(0) as usize);
        let amat = Mat { p: a(4) as *mut T, rows: m, cols: n, ld: int(a(5)).max(1) as usize, trans };
        let xlen = if trans { m } else { n };
        let (incx, incy) = (int(a(7)), int(a(10)));
        Gemv { a: amat, x: vector(a(6), xlen, incx), alpha: scalar(a(3)), beta: scalar(a(8)), incx, incy }
    }
}

struct Gemm<T> {
    a: Mat<T>,
    b: Mat<T>,
    c: Mat<T>,
    alpha: T,
    beta: T,
}

impl<T: Float> Gemm<T> {
    unsafe fn read(args: *const u64) -> Gemm<T> {
        let a = |k: usize| *args.add(k);
        let (ta, tb) = (transposed(a(0)), transposed(a(1)));
        let (m, n, k) = (int(a(2)).max(0) as usize, int(a(3)).max(0) as usize, int(a(4)).max(0) as usize);
        let (ar, ac) = if ta { (k, m) } else { (m, k) };
        let (br, bc) = if tb { (n, k) } else { (k, n) };
        Gemm {
            a: Mat { p: a(6) as *mut T, rows: ar, cols: ac, ld: int(a(7)).max(1) as usize, trans: ta },
            b: Mat { p: a(8) as *mut T, rows: br, cols: bc, ld: int(a(9)).max(1) as usize, trans: tb },
            c: Mat { p: a(11) as *mut T, rows: m, cols: n, ld: int(a(12)).max(1) as usize, trans: false },
            alpha: scalar(a(5)),
            beta: scalar(a(10)),
        }
    }
}

/// `symv`: `y ← α S x + β y`, `S` the symmetric n×n matrix whose `upper` (or lower)
/// triangle `A` holds (the other is not read).
struct Symv<T> {
    a: Mat<T>,
    x: Mat<T>,
    n: usize,
    alpha: T,
    beta: T,
    incx: i64,
    incy: i64,
    upper: bool,
}

impl<T: Float> Symv<T> {
    unsafe fn read(args: *const u64) -> Symv<T> {
        let a = |k: usize| *args.add(k);
        let upper = matches!(*(a(0) as *const u8), b'U' | b'u');
        let n = int(a(1)).max(0) as usize;
        let (incx, incy) = (int(a(6)), int(a(9)));
        Symv {
            a: Mat { p: a(3) as *mut T, rows: n, cols: n, ld: int(a(4)).max(1) as usize, trans: false },
            x: vector(a(5), n, incx),
            n,
            alpha: scalar(a(2)),
            beta: scalar(a(7)),
            incx,
            incy,
            upper,
        }
    }

    /// Whether element (i, j) is in the triangle `m` holds.
    fn stored(&self, i: usize, j: usize) -> bool {
        if self.upper {
            i <= j
        } else {
            i >= j
        }
    }

    /// Element (i, j) of the symmetric matrix whose triangle `m` holds.
    unsafe fn sym(&self, m: &Mat<T>, i: usize, j: usize) -> T {
        if self.stored(i, j) {
            m.get(i, j)
        } else {
            m.get(j, i)
        }
    }
}

/// `axpy` (`y ← α x + y`), `axpby` (`y ← α x + β y`) and `scal` (`x ← α x`, read as
/// `y ← α x` with `y` the same vector): `out` is the written vector's argument.
struct Vectors<T> {
    x: Mat<T>,
    n: usize,
    alpha: T,
    beta: T,
    incx: i64,
    incy: i64,
    out: usize,
}

impl<T: Float> Vectors<T> {
    unsafe fn read(op: u32, args: *const u64) -> Vectors<T> {
        let a = |k: usize| *args.add(k);
        let n = int(a(0)).max(0) as usize;
        let incx = int(a(3));
        let (beta, incy, out) = match routine(op) {
            6 => (T::from_f64(1.0), int(a(5)), 4),
            8 => (scalar(a(4)), int(a(6)), 5),
            _ => (T::default(), incx, 2),
        };
        Vectors { x: vector(a(2), n, incx), n, alpha: scalar(a(1)), beta, incx, incy, out }
    }
}

/// `ger`: `A ← α x yᵀ + A`, `A` m×n.
struct Ger<T> {
    a: Mat<T>,
    x: Mat<T>,
    y: Mat<T>,
    alpha: T,
    incx: i64,
    incy: i64,
}

impl<T: Float> Ger<T> {
    unsafe fn read(args: *const u64) -> Ger<T> {
        let a = |k: usize| *args.add(k);
        let (m, n) = (int(a(0)).max(0) as usize, int(a(1)).max(0) as usize);
        let (incx, incy) = (int(a(4)), int(a(6)));
        Ger {
            a: Mat { p: a(7) as *mut T, rows: m, cols: n, ld: int(a(8)).max(1) as usize, trans: false },
            x: vector(a(3), m, incx),
            y: vector(a(5), n, incy),
            alpha: scalar(a(2)),
            incx,
            incy,
        }
    }
}

/// `trmv`: `x ← P x`, `P = op(T)`, `T` the n×n triangle (`upper` or lower) of `A`, with
/// ones on its diagonal when `unit` (then `A`'s diagonal is not read).
struct Trmv<T> {
    a: Mat<T>,
    n: usize,
    upper: bool,
    unit: bool,
    incx: i64,
}

impl<T: Float> Trmv<T> {
    unsafe fn read(args: *const u64) -> Trmv<T> {
        let a = |k: usize| *args.add(k);
        let upper = matches!(*(a(0) as *const u8), b'U' | b'u');
        let unit = matches!(*(a(2) as *const u8), b'U' | b'u');
        let n = int(a(3)).max(0) as usize;
        let trans = transposed(a(1));
        Trmv {
            a: Mat { p: a(4) as *mut T, rows: n, cols: n, ld: int(a(5)).max(1) as usize, trans },
            n,
            upper,
            unit,
            incx: int(a(7)),
        }
    }

    /// Whether element (i, j) of `op(T)` is read from `A` (in the triangle, off the
    /// diagonal when it is unit).
    fn stored(&self, i: usize, j: usize) -> bool {
        let (r, c) = if self.a.trans { (j, i) } else { (i, j) };
        (if self.upper { r <= c } else { r >= c }) && !(self.unit && r == c)
    }

    /// Element (i, j) of `op(T)` with `m` (`A` or its shadow) in `A`'s place; the unit
    /// diagonal's ones are `one` (zero for a tangent).
    unsafe fn element(&self, m: &Mat<T>, i: usize, j: usize, one: T) -> T {
        if self.unit && i == j {
            one
        } else if self.stored(i, j) {
            m.get(i, j)
        } else {
            T::default()
        }
    }
}

/// Forward mode for a routine that overwrites an input (`in_place`): its tangent from
/// `saved`, the copy `blas_save` made before the call; the last lane frees it.
///
/// # Safety
/// As `blas_tangent`; `saved` comes from `blas_save` for the same call, made before it.
pub unsafe extern "C" fn blas_tangent_saved(saved: *mut Saved, args: *const u64, shadows: *const u64, last: u32) {
    match ((*saved).op & SINGLE != 0, routine((*saved).op) == BlasOp::Scal as u32) {
        (true, true) => scal_tangent::<f32>(&*saved, args, shadows),
        (false, true) => scal_tangent::<f64>(&*saved, args, shadows),
        (true, false) => trmv_tangent::<f32>(&*saved, args, shadows),
        (false, false) => trmv_tangent::<f64>(&*saved, args, shadows),
    }
    if last != 0 {
        crate::runtime::buffers::disown_saved(saved);
        drop(Box::from_raw(saved));
    }
}

/// `scal`: `ẋ ← α ẋ₀ + α̇ x₀` (x₀ the saved copy of `x` before the call).
unsafe fn scal_tangent<T: Float>(sv: &Saved, args: *const u64, shadows: *const u64) {
    let s = |k: usize| *shadows.add(k);
    if s(2) == 0 {
        return;
    }
    let v = Vectors::<T>::read(sv.op, args);
    let x0 = vector::<T>(sv.data[0].as_ptr() as u64, v.n, 1);
    let dx = vector::<T>(s(2), v.n, v.incx);
    let dalpha = scalar_tangent::<T>(s(1));
    for i in 0..v.n {
        *dx.at(i, 0) = v.alpha * dx.get(i, 0) + dalpha.map_or(T::default(), |d| d * x0.get(i, 0));
    }
}

/// `ẋ ← P ẋ₀ + Ṗ x₀` (x₀ the saved copy of `x` before the call).
unsafe fn trmv_tangent<T: Float>(sv: &Saved, args: *const u64, shadows: *const u64) {
    let s = |k: usize| *shadows.add(k);
    if s(6) == 0 {
        return;
    }
    let g = Trmv::<T>::read(args);
    let n = g.n;
    let x0 = vector::<T>(sv.data[1].as_ptr() as u64, n, 1);
    let dx = vector::<T>(s(6), n, g.incx);
    let da = Mat { p: s(4) as *mut T, ..g.a };
    let dx0: Vec<T> = (0..n).map(|j| dx.get(j, 0)).collect();
    for i in 0..n {
        let mut acc = T::default();
        for (j, &d) in dx0.iter().enumerate() {
            acc += g.element(&g.a, i, j, T::from_f64(1.0)) * d;
            if s(4) != 0 {
                acc += g.element(&da, i, j, T::default()) * x0.get(j, 0);
            }
        }
        *dx.at(i, 0) = acc;
    }
}

/// `syrk`: `C ← α op(A) op(A)ᵀ + β C` on the `upper` (or lower) triangle of `C` (n×n),
/// `op(A)` n×k.
struct Syrk<T> {
    a: Mat<T>,
    c: Mat<T>,
    alpha: T,
    beta: T,
    upper: bool,
}

impl<T: Float> Syrk<T> {
    unsafe fn read(args: *const u64) -> Syrk<T> {
        let a = |k: usize| *args.add(k);
        let upper = matches!(*(a(0) as *const u8), b'U' | b'u');
        let trans = transposed(a(1));
        let (n, k) = (int(a(2)).max(0) as usize, int(a(3)).max(0) as usize);
        let (ar, ac) = if trans { (k, n) } else { (n, k) };
        Syrk {
            a: Mat { p: a(5) as *mut T, rows: ar, cols: ac, ld: int(a(6)).max(1) as usize, trans },
            c: Mat { p: a(8) as *mut T, rows: n, cols: n, ld: int(a(9)).max(1) as usize, trans: false },
            alpha: scalar(a(4)),
            beta: scalar(a(7)),
            upper,
        }
    }

    /// The elements `(i, j)` of the triangle of an n×n matrix that `syrk` writes.
    fn triangle(&self, n: usize) -> impl Iterator<Item = (usize, usize)> {
        let upper = self.upper;
        (0..n).flat_map(move |j| (0..n).filter(move |&i| if upper { i <= j } else { i >= j }).map(move |i| (i, j)))
    }
}

/// Reverse mode, forward sweep: copies what `blas_reverse` needs.
///
/// # Safety
/// As `blas_tangent`; the result must go to `blas_reverse`, the last time with `last`
/// set (once per batch lane).
pub unsafe extern "C" fn blas_save(op: u32, args: *const u64) -> *mut Saved {
    let mut saved = if op & SINGLE != 0 { save::<f32>(op, args) } else { save::<f64>(op, args) };
    if op & KEEP_OLD != 0 {
        saved.kept = if op & SINGLE != 0 { kept::<f32>(op, args) } else { kept::<f64>(op, args) };
    }
    let p = Box::into_raw(Box::new(saved));
    // Recorded, so that a call whose primal throws before the reverse sweep frees it.
    crate::runtime::buffers::own_saved(p);
    p
}

/// The elements a call with `KEEP_OLD` writes and their contents now (before it).
unsafe fn kept<T: Float>(op: u32, args: *const u64) -> Option<(Written, Vec<u8>)> {
    let (out, w) = (output_arg(op)?, Written::read::<T>(op, args)?);
    let old: Vec<T> = w.elements::<T>(*args.add(out)).into_iter().map(|y| *y).collect();
    let mut bytes = vec![0u8; old.len() * std::mem::size_of::<T>()];
    std::ptr::copy_nonoverlapping(old.as_ptr() as *const u8, bytes.as_mut_ptr(), bytes.len());
    Some((w, bytes))
}

unsafe fn save<T: Float>(op: u32, args: *const u64) -> Saved {
    let a = |k: usize| *args.add(k);
    match routine(op) {
        0 => {
            let n = int(a(0)).max(0) as usize;
            let (x, y) = (vector::<T>(a(1), n, int(a(2))), vector::<T>(a(3), n, int(a(4))));
            Saved {
                op,
                scalars: [0.0; 2],
                dims: [n, 0, 0],
                trans: [false; 2],
                inc: [int(a(2)), int(a(4)), 0],
                data: [bytes(&x), bytes(&y)],
                kept: None,
            }
        }
        1 => {
            let g = Gemv::<T>::read(args);
            Saved {
                op,
                scalars: [g.alpha.to_f64(), g.beta.to_f64()],
                dims: [g.a.rows, g.a.cols, 0],
                trans: [g.a.trans, false],
                inc: [g.incx, g.incy, g.a.ld as i64],
                data: [bytes(&Mat { trans: false, ..g.a }), bytes(&g.x)],
                kept: None,
            }
        }
        6..=8 => {
            // (axpy and axpby after the call, scal before it: x is what they read.)
            let v = Vectors::<T>::read(op, args);
            Saved {
                op,
                scalars: [v.alpha.to_f64(), v.beta.to_f64()],
                dims: [v.n, 0, 0],
                trans: [false; 2],
                inc: [v.incx, v.incy, 0],
                data: [bytes(&v.x), Vec::new()],
                kept: None,
            }
        }
        9 => {
            let g = Ger::<T>::read(args);
            Saved {
                op,
                scalars: [g.alpha.to_f64(), 0.0],
                dims: [g.a.rows, g.a.cols, 0],
                trans: [false; 2],
                inc: [g.incx, g.incy, g.a.ld as i64],
                data: [bytes(&g.x), bytes(&g.y)],
                kept: None,
            }
        }
        5 => {
            let g = Trmv::<T>::read(args);
            let x = vector::<T>(a(6), g.n, g.incx);
            Saved {
                op,
                scalars: [0.0; 2],
                dims: [g.n, 0, 0],
                trans: [g.a.trans, g.upper],
                inc: [g.incx, g.a.ld as i64, i64::from(g.unit)],
                data: [bytes(&Mat { trans: false, ..g.a }), bytes(&x)],
                kept: None,
            }
        }
        4 => {
            let g = Symv::<T>::read(args);
            Saved {
                op,
                scalars: [g.alpha.to_f64(), g.beta.to_f64()],
                dims: [g.n, 0, 0],
                trans: [g.upper, false],
                inc: [g.incx, g.incy, g.a.ld as i64],
                data: [bytes(&g.a), bytes(&g.x)],
                kept: None,
            }
        }
        3 => {
            let g = Syrk::<T>::read(args);
            Saved {
                op,
                scalars: [g.alpha.to_f64(), g.beta.to_f64()],
                dims: [g.c.rows, g.a.shape().1, 0],
                trans: [g.a.trans, g.upper],
                inc: [g.a.ld as i64, g.c.ld as i64, 0],
                data: [bytes(&Mat { trans: false, ..g.a }), Vec::new()],
                kept: None,
            }
        }
        _ => {
            let g = Gemm::<T>::read(args);
            Saved {
                op,
                scalars: [g.alpha.to_f64(), g.beta.to_f64()],
                dims: [g.c.rows, g.c.cols, g.a.shape().1],
                trans: [g.a.trans, g.b.trans],
                inc: [g.a.ld as i64, g.b.ld as i64, g.c.ld as i64],
                data: [bytes(&Mat { trans: false, ..g.a }), bytes(&Mat { trans: false, ..g.b })],
                kept: None,
            }
        }
    }
}

/// Reverse mode, reverse sweep: accumulates the adjoints into the shadows (`d` is the
/// adjoint of dot's result; one batch lane per call) and, when `last` is nonzero, frees
/// the saved copy.
///
/// # Safety
/// `saved` comes from `blas_save` for the same call and was not freed; `shadows` as in
/// `blas_tangent` (the shadows have the leading dimensions of the primal arrays).
pub unsafe extern "C" fn blas_reverse(saved: *mut Saved, shadows: *const u64, d: f64, last: u32) {
    if (*saved).op & SINGLE != 0 {
        reverse::<f32>(&*saved, shadows, d)
    } else {
        reverse::<f64>(&*saved, shadows, d)
    }
    if last != 0 {
        crate::runtime::buffers::disown_saved(saved);
        drop(Box::from_raw(saved));
    }
}

unsafe fn reverse<T: Float>(sv: &Saved, shadows: *const u64, d: f64) {
    // (β's adjoint first, from the output's adjoint before it is scaled by β.)
    add_beta_adjoint::<T>(sv, shadows);
    let s = |k: usize| *shadows.add(k);
    let data = |i: usize| sv.data[i].as_ptr() as *mut T;
    match routine(sv.op) {
        0 => {
            let n = sv.dims[0];
            let d = T::from_f64(d);
            // Copies are dense (stride 1).
            let (x, y) = (vector::<T>(data(0) as u64, n, 1), vector::<T>(data(1) as u64, n, 1));
            for i in 0..n {
                if s(1) != 0 {
                    *vector::<T>(s(1), n, sv.inc[0]).at(i, 0) += d * y.get(i, 0);
                }
                if s(3) != 0 {
                    *vector::<T>(s(3), n, sv.inc[1]).at(i, 0) += d * x.get(i, 0);
                }
            }
        }
        1 => {
            let (rows, cols, trans) = (sv.dims[0], sv.dims[1], sv.trans[0]);
            let (alpha, beta) = (T::from_f64(sv.scalars[0]), T::from_f64(sv.scalars[1]));
            let amat = Mat { p: data(0), rows, cols, ld: rows.max(1), trans };
            let (m, n) = amat.shape();
            let x = vector::<T>(data(1) as u64, n, 1);
            if s(9) == 0 {
                return;
            }
            let dy = vector::<T>(s(9), m, sv.inc[1]);
            let lda = sv.inc[2].max(1) as usize;
            let mut dalpha = T::default();
            for i in 0..m {
                let yb = *dy.at(i, 0);
                for j in 0..n {
                    if s(3) != 0 {
                        dalpha += yb * amat.get(i, j) * x.get(j, 0);
                    }
                    if s(4) != 0 {
                        *Mat { p: s(4) as *mut T, rows, cols, ld: lda, trans }.at(i, j) += alpha * yb * x.get(j, 0);
                    }
                    if s(6) != 0 {
                        *vector::<T>(s(6), n, sv.inc[0]).at(j, 0) += alpha * amat.get(i, j) * yb;
                    }
                }
            }
            add_scalar_adjoint(s(3), dalpha);
            for i in 0..m {
                *dy.at(i, 0) = beta * *dy.at(i, 0);
            }
        }
        6..=8 => {
            // y = α x + β y₀: x̄ += α ȳ, ᾱ += ⟨ȳ, x⟩, ȳ₀ = β ȳ (scal: y is x, x̄₀ = α x̄).
            let n = sv.dims[0];
            let (alpha, beta) = (T::from_f64(sv.scalars[0]), T::from_f64(sv.scalars[1]));
            let scal = routine(sv.op) == BlasOp::Scal as u32;
            let out = match routine(sv.op) {
                6 => 4,
                8 => 5,
                _ => 2,
            };
            if s(out) == 0 {
                return;
            }
            let x = vector::<T>(data(0) as u64, n, 1);
            let dy = vector::<T>(s(out), n, sv.inc[1]);
            let dx = vector::<T>(s(2), n, sv.inc[0]);
            let mut dalpha = T::default();
            for i in 0..n {
                let yb = dy.get(i, 0);
                dalpha += yb * x.get(i, 0);
                if scal {
                    *dy.at(i, 0) = alpha * yb;
                } else {
                    if s(2) != 0 {
                        *dx.at(i, 0) += alpha * yb;
                    }
                    *dy.at(i, 0) = beta * yb;
                }
            }
            add_scalar_adjoint(s(1), dalpha);
        }
        9 => {
            // A = α x yᵀ + A₀: x̄ += α Ā y, ȳ += α Āᵀ x, ᾱ += ⟨Ā, x yᵀ⟩, Ā₀ = Ā.
            let (m, n) = (sv.dims[0], sv.dims[1]);
            if s(7) == 0 {
                return;
            }
            let alpha = T::from_f64(sv.scalars[0]);
            let (x, y) = (vector::<T>(data(0) as u64, m, 1), vector::<T>(data(1) as u64, n, 1));
            let da = Mat { p: s(7) as *mut T, rows: m, cols: n, ld: sv.inc[2].max(1) as usize, trans: false };
            let (dx, dy) = (vector::<T>(s(3), m, sv.inc[0]), vector::<T>(s(5), n, sv.inc[1]));
            let mut dalpha = T::default();
            for j in 0..n {
                for i in 0..m {
                    let ab = da.get(i, j);
                    if s(3) != 0 {
                        *dx.at(i, 0) += alpha * ab * y.get(j, 0);
                    }
                    if s(5) != 0 {
                        *dy.at(j, 0) += alpha * ab * x.get(i, 0);
                    }
                    dalpha += ab * x.get(i, 0) * y.get(j, 0);
                }
            }
            add_scalar_adjoint(s(2), dalpha);
        }
        5 => {
            // x = P x₀: P̄ += x̄ x₀ᵀ on the elements read from A, x̄₀ = Pᵀ x̄.
            let n = sv.dims[0];
            if s(6) == 0 {
                return;
            }
            let (trans, upper, unit) = (sv.trans[0], sv.trans[1], sv.inc[2] != 0);
            let a = Mat { p: data(0), rows: n, cols: n, ld: n.max(1), trans };
            let g = Trmv { a, n, upper, unit, incx: sv.inc[0] };
            let x0 = vector::<T>(data(1) as u64, n, 1);
            let dx = vector::<T>(s(6), n, sv.inc[0]);
            let da = Mat { p: s(4) as *mut T, rows: n, cols: n, ld: sv.inc[1].max(1) as usize, trans };
            let xb: Vec<T> = (0..n).map(|i| dx.get(i, 0)).collect();
            for j in 0..n {
                let mut acc = T::default();
                for (i, &b) in xb.iter().enumerate() {
                    acc += g.element(&a, i, j, T::from_f64(1.0)) * b;
                    if s(4) != 0 && g.stored(i, j) {
                        *da.at(i, j) += b * x0.get(j, 0);
                    }
                }
                *dx.at(j, 0) = acc;
            }
        }
        4 => {
            let n = sv.dims[0];
            let (alpha, beta) = (T::from_f64(sv.scalars[0]), T::from_f64(sv.scalars[1]));
            if s(8) == 0 {
                return;
            }
            // (The copies are dense: A with leading dimension n, x with stride 1.)
            let a = Mat { p: data(0), rows: n, cols: n, ld: n.max(1), trans: false };
            let x = vector::<T>(data(1) as u64, n, 1);
            let g = Symv { a, x, n, alpha, beta, incx: sv.inc[0], incy: sv.inc[1], upper: sv.trans[0] };
            let dy = vector::<T>(s(8), n, sv.inc[1]);
            let dx = vector::<T>(s(5), n, sv.inc[0]);
            let da = Mat { p: s(3) as *mut T, rows: n, cols: n, ld: sv.inc[2].max(1) as usize, trans: false };
            let mut dalpha = T::default();
            for i in 0..n {
                let yb = *dy.at(i, 0);
                for j in 0..n {
                    if s(5) != 0 {
                        *dx.at(j, 0) += alpha * g.sym(&a, i, j) * yb;
                    }
                    if s(3) != 0 {
                        // (S[i, j] and S[j, i] are one stored element.)
                        let (r, c) = if g.stored(i, j) { (i, j) } else { (j, i) };
                        *da.at(r, c) += alpha * yb * x.get(j, 0);
                    }
                    if s(2) != 0 {
                        dalpha += yb * g.sym(&a, i, j) * x.get(j, 0);
                    }
                }
            }
            add_scalar_adjoint(s(2), dalpha);
            for i in 0..n {
                *dy.at(i, 0) = beta * *dy.at(i, 0);
            }
        }
        3 => {
            let (n, k, trans, upper) = (sv.dims[0], sv.dims[1], sv.trans[0], sv.trans[1]);
            let (alpha, beta) = (T::from_f64(sv.scalars[0]), T::from_f64(sv.scalars[1]));
            let (ar, ac) = if trans { (k, n) } else { (n, k) };
            let amat = Mat { p: data(0), rows: ar, cols: ac, ld: ar.max(1), trans };
            if s(8) == 0 {
                return;
            }
            let ld = |i: usize| sv.inc[i].max(1) as usize;
            let dc = Mat { p: s(8) as *mut T, rows: n, cols: n, ld: ld(1), trans: false };
            let da = Mat { p: s(5) as *mut T, rows: ar, cols: ac, ld: ld(0), trans };
            let g = Syrk { a: amat, c: dc, alpha, beta, upper };
            let mut dalpha = T::default();
            for (i, j) in g.triangle(n) {
                let cb = alpha * dc.get(i, j);
                if s(5) != 0 {
                    for l in 0..k {
                        *da.at(i, l) += cb * amat.get(j, l);
                        *da.at(j, l) += cb * amat.get(i, l);
                    }
                }
                if s(4) != 0 {
                    for l in 0..k {
                        dalpha += dc.get(i, j) * amat.get(i, l) * amat.get(j, l);
                    }
                }
                *dc.at(i, j) = beta * dc.get(i, j);
            }
            add_scalar_adjoint(s(4), dalpha);
        }
        _ => {
            let (m, n, k) = (sv.dims[0], sv.dims[1], sv.dims[2]);
            let (ta, tb) = (sv.trans[0], sv.trans[1]);
            let (alpha, beta) = (T::from_f64(sv.scalars[0]), T::from_f64(sv.scalars[1]));
            let (ar, ac) = if ta { (k, m) } else { (m, k) };
            let (br, bc) = if tb { (n, k) } else { (k, n) };
            let amat = Mat { p: data(0), rows: ar, cols: ac, ld: ar.max(1), trans: ta };
            let bmat = Mat { p: data(1), rows: br, cols: bc, ld: br.max(1), trans: tb };
            if s(11) == 0 {
                return;
            }
            let ld = |i: usize| sv.inc[i].max(1) as usize;
            let dc = Mat { p: s(11) as *mut T, rows: m, cols: n, ld: ld(2), trans: false };
            let da = Mat { p: s(6) as *mut T, rows: ar, cols: ac, ld: ld(0), trans: ta };
            let db = Mat { p: s(8) as *mut T, rows: br, cols: bc, ld: ld(1), trans: tb };
            let mut dalpha = T::default();
            for i in 0..m {
                for j in 0..n {
                    let cb = alpha * dc.get(i, j);
                    for l in 0..k {
                        if s(6) != 0 {
                            *da.at(i, l) += cb * bmat.get(l, j);
                        }
                        if s(8) != 0 {
                            *db.at(l, j) += amat.get(i, l) * cb;
                        }
                        if s(5) != 0 {
                            dalpha += dc.get(i, j) * amat.get(i, l) * bmat.get(l, j);
                        }
                    }
                }
            }
            add_scalar_adjoint(s(5), dalpha);
            for i in 0..m {
                for j in 0..n {
                    *dc.at(i, j) = beta * dc.get(i, j);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `syrk` (`C ← α op(A) op(A)ᵀ + β C` on one triangle) against its definition: the
    /// tangent against central differences of the primal, and the adjoint against the
    /// tangent by the dot-product identity ⟨C̄, Ċ⟩ = ᾱ α̇ + ⟨Ā, Ȧ⟩ + ⟨C̄₀, Ċ₀⟩, for both
    /// triangles and both transposes, with a leading dimension larger than the rows.
    /// A differentiated `β` (`KEEP_OLD`), alone: before the call, the tangent adds
    /// `β̇ y₀` on the elements the call writes (syrk: one triangle of `C`, with `ldc > n`;
    /// axpby: `y` with stride 3) and nothing elsewhere; the copy made there gives the
    /// reverse `β̄ = ⟨ȳ, y₀⟩` over those elements, and `ȳ ← β ȳ`.
    #[test]
    fn a_differentiated_beta_reads_the_old_output() {
        let (n, ldc, inc) = (3usize, 5usize, 3usize);
        let (alpha, beta, dbeta) = (1.5f64, -0.5f64, 0.7f64);
        let (ni, ki, ldci, lda, inci) = (n as i64, 2i64, ldc as i64, 3i64, inc as i64);
        let a: Vec<f64> = (0..3 * n).map(|i| ((i * 7 % 11) as f64 - 5.0) / 4.0).collect();
        let ptr = |v: &i64| v as *const i64 as u64;
        for (op, len) in [(BlasOp::Syrk, ldc * n), (BlasOp::Axpby, n * inc)] {
            let y0: Vec<f64> = (0..len).map(|i| ((i * 5 % 7) as f64 - 3.0) / 2.0).collect();
            let written: Vec<usize> = match op {
                BlasOp::Syrk => (0..n).flat_map(|j| (0..=j).map(move |i| i + j * ldc)).collect(),
                _ => (0..n).map(|i| i * inc).collect(),
            };
            let (uplo, trans) = (b'U', b'N');
            let mut y = y0.clone();
            let (pa, py) = (a.as_ptr() as u64, y.as_mut_ptr() as u64);
            let (al, be) = (&alpha as *const f64 as u64, &beta as *const f64 as u64);
            let (args, out, kb): (Vec<u64>, usize, usize) = match op {
                BlasOp::Syrk => {
                    let (u, t) = (&uplo as *const u8 as u64, &trans as *const u8 as u64);
                    (vec![u, t, ptr(&ni), ptr(&ki), al, pa, ptr(&lda), be, py, ptr(&ldci)], 8, 7)
                }
                _ => (vec![ptr(&ni), al, pa, ptr(&1), be, py, ptr(&inci)], 5, 4),
            };
            let op = op as u32 | KEEP_OLD;
            // Tangent.
            let mut dy = vec![0.0f64; len];
            let mut shadows = vec![0u64; args.len()];
            shadows[out] = dy.as_mut_ptr() as u64;
            shadows[kb] = &dbeta as *const f64 as u64;
            // SAFETY: the words point at live locals laid out as the Fortran routine takes them.
            unsafe { blas_tangent(op, args.as_ptr(), shadows.as_ptr()) };
            for (k, t) in dy.iter().enumerate() {
                let want = if written.contains(&k) { dbeta * y0[k] } else { 0.0 };
                assert!((t - want).abs() < 1e-15, "{op}: tangent at {k}: {t} against {want}");
            }
            // Adjoint.
            let ybar0: Vec<f64> = (0..len).map(|i| ((i * 3 % 5) as f64 - 2.0) / 3.0).collect();
            let (mut ybar, mut betabar) = (ybar0.clone(), 0.0f64);
            let mut shadows = vec![0u64; args.len()];
            shadows[out] = ybar.as_mut_ptr() as u64;
            shadows[kb] = &mut betabar as *mut f64 as u64;
            // SAFETY: as above; the copy is made before the (omitted) call, and freed by the reverse.
            unsafe {
                let saved = blas_save(op, args.as_ptr());
                y.iter_mut().for_each(|v| *v = f64::NAN);
                blas_reverse(saved, shadows.as_ptr(), 0.0, 1);
            }
            let want: f64 = written.iter().map(|&k| ybar0[k] * y0[k]).sum();
            assert!((betabar - want).abs() < 1e-14, "{op}: β̄ {betabar} against {want}");
            for &k in &written {
                assert!((ybar[k] - beta * ybar0[k]).abs() < 1e-15, "{op}: ȳ at {k}");
            }
        }
    }

    #[test]
    fn syrk_tangent_and_adjoint() {
        let (n, k, alpha, beta) = (3usize, 2usize, 1.5f64, 0.5f64);
        for (uplo, trans) in [(b'U', b'N'), (b'L', b'N'), (b'U', b'T'), (b'L', b'T')] {
            let (ar, ac) = if trans == b'N' { (n, k) } else { (k, n) };
            let (lda, ldc) = (ar + 1, n + 2);
            let a: Vec<f64> = (0..lda * ac).map(|i| ((i * 7 % 11) as f64 - 5.0) / 4.0).collect();
            let c0: Vec<f64> = (0..ldc * n).map(|i| ((i * 5 % 7) as f64 - 3.0) / 2.0).collect();
            let da: Vec<f64> = (0..lda * ac).map(|i| ((i * 3 % 5) as f64 - 2.0) / 3.0).collect();
            let dc0: Vec<f64> = (0..ldc * n).map(|i| ((i * 2 % 9) as f64 - 4.0) / 5.0).collect();
            let dalpha = 0.7f64;
            let primal = |alpha: f64, a: &[f64], c: &mut [f64]| {
                let op = |i: usize, l: usize| if trans == b'N' { a[i + l * lda] } else { a[l + i * lda] };
                for j in 0..n {
                    for i in 0..n {
                        if (uplo == b'U' && i <= j) || (uplo == b'L' && i >= j) {
                            let dot: f64 = (0..k).map(|l| op(i, l) * op(j, l)).sum();
                            c[i + j * ldc] = alpha * dot + beta * c[i + j * ldc];
                        }
                    }
                }
            };
            let (ni, ki, ldai, ldci) = (n as i64, k as i64, lda as i64, ldc as i64);
            let words = |a: &[f64], c: &mut [f64]| -> [u64; 10] {
                [
                    &uplo as *const u8 as u64,
                    &trans as *const u8 as u64,
                    &ni as *const i64 as u64,
                    &ki as *const i64 as u64,
                    &alpha as *const f64 as u64,
                    a.as_ptr() as u64,
                    &ldai as *const i64 as u64,
                    &beta as *const f64 as u64,
                    c.as_mut_ptr() as u64,
                    &ldci as *const i64 as u64,
                ]
            };
            // Tangent: Ċ after the call, against central differences along α̇, Ȧ, Ċ₀.
            let mut c = c0.clone();
            let mut dc = dc0.clone();
            let args = words(&a, &mut c);
            let mut shadows = [0u64; 10];
            shadows[4] = &dalpha as *const f64 as u64;
            shadows[5] = da.as_ptr() as u64;
            shadows[8] = dc.as_mut_ptr() as u64;
            primal(alpha, &a, &mut c);
            // SAFETY: the words point at live locals laid out as Fortran `dsyrk` takes them.
            unsafe { blas_tangent(BlasOp::Syrk as u32, args.as_ptr(), shadows.as_ptr()) };
            let h = 1e-6;
            let shifted = |s: f64| {
                let a: Vec<f64> = a.iter().zip(&da).map(|(x, d)| x + s * d).collect();
                let mut c: Vec<f64> = c0.iter().zip(&dc0).map(|(x, d)| x + s * d).collect();
                primal(alpha + s * dalpha, &a, &mut c);
                c
            };
            let (up, down) = (shifted(h), shifted(-h));
            for i in 0..ldc * n {
                assert!((dc[i] - (up[i] - down[i]) / (2.0 * h)).abs() < 1e-6, "{uplo} {trans} tangent at {i}");
            }
            // Adjoint: seed C̄, run the reverse, compare inner products.
            let cbar: Vec<f64> = (0..ldc * n).map(|i| ((i * 4 % 13) as f64 - 6.0) / 7.0).collect();
            let mut c = c0.clone();
            let args = words(&a, &mut c);
            // SAFETY: as above; the saved copy is freed by the last reverse.
            let saved = unsafe { blas_save(BlasOp::Syrk as u32, args.as_ptr()) };
            let mut abar = vec![0.0; lda * ac];
            let mut alphabar = 0.0f64;
            let mut cb = cbar.clone();
            let mut shadows = [0u64; 10];
            shadows[4] = &mut alphabar as *mut f64 as u64;
            shadows[5] = abar.as_mut_ptr() as u64;
            shadows[8] = cb.as_mut_ptr() as u64;
            // SAFETY: `saved` comes from `blas_save` above.
            unsafe { blas_reverse(saved, shadows.as_ptr(), 0.0, 1) };
            let lhs: f64 = cbar.iter().zip(&dc).map(|(x, y)| x * y).sum();
            let rhs: f64 = abar.iter().zip(&da).map(|(x, y)| x * y).sum::<f64>()
                + cb.iter().zip(&dc0).map(|(x, y)| x * y).sum::<f64>()
                + alphabar * dalpha;
            assert!((lhs - rhs).abs() < 1e-10, "{uplo} {trans}: {lhs} vs {rhs}");
        }
    }

    /// `axpy`, `axpby`, `scal` and `ger` the same way: each tangent against central
    /// differences along α̇ and the arrays' tangents, and each adjoint by the dot-product
    /// identity (⟨ū, u̇⟩ summed over the written array on one side, over α and the
    /// inputs, the written array's old contents included, on the other). Strides 2 and 3.
    #[test]
    fn vector_updates_tangent_and_adjoint() {
        let n = 3usize;
        let (incx, incy) = (2usize, 3usize);
        let (ni, incxi, incyi, mi, ldai) = (n as i64, incx as i64, incy as i64, 2i64, 3i64);
        let fill = |len: usize, k: usize| -> Vec<f64> { (0..len).map(|i| ((i * k % 11) as f64 - 5.0) / 4.0).collect() };
        let (alpha, beta, dalpha) = (1.5f64, -0.5f64, 0.7f64);
        for op in [BlasOp::Axpy, BlasOp::Axpby, BlasOp::Scal, BlasOp::Ger] {
            // The arrays (x, y, A), their tangents, and the written array's index.
            let (m, ld) = (mi as usize, ldai as usize);
            let x0 = fill(n.max(m) * incx, 7);
            let y0 = fill(n * incy, 5);
            let a0 = fill(ld * n, 3);
            let (dx0, dy0, da0) = (fill(n.max(m) * incx, 2), fill(n * incy, 4), fill(ld * n, 6));
            let primal = |al: f64, x: &mut [f64], y: &mut [f64], a: &mut [f64]| match op {
                BlasOp::Axpy => (0..n).for_each(|i| y[i * incy] += al * x[i * incx]),
                BlasOp::Axpby => (0..n).for_each(|i| y[i * incy] = al * x[i * incx] + beta * y[i * incy]),
                BlasOp::Scal => (0..n).for_each(|i| x[i * incx] *= al),
                _ => (0..n).for_each(|j| (0..m).for_each(|i| a[i + j * ld] += al * x[i * incx] * y[j * incy])),
            };
            let words = |x: &mut [f64], y: &mut [f64], a: &mut [f64]| -> Vec<u64> {
                let (px, py, pa) = (x.as_mut_ptr() as u64, y.as_mut_ptr() as u64, a.as_mut_ptr() as u64);
                let (al, be) = (&alpha as *const f64 as u64, &beta as *const f64 as u64);
                let r = |v: &i64| v as *const i64 as u64;
                match op {
                    BlasOp::Axpy => vec![r(&ni), al, px, r(&incxi), py, r(&incyi)],
                    BlasOp::Axpby => vec![r(&ni), al, px, r(&incxi), be, py, r(&incyi)],
                    BlasOp::Scal => vec![r(&ni), al, px, r(&incxi)],
                    _ => vec![r(&mi), r(&ni), al, px, r(&incxi), py, r(&incyi), pa, r(&ldai)],
                }
            };
            // (Where the shadows go, by argument: α, x, y, A.)
            let (ka, kx, ky, kaa) = match op {
                BlasOp::Axpy => (1, 2, 4, usize::MAX),
                BlasOp::Axpby => (1, 2, 5, usize::MAX),
                BlasOp::Scal => (1, 2, usize::MAX, usize::MAX),
                _ => (2, 3, 5, 7),
            };
            let in_place = op == BlasOp::Scal;
            // Tangent.
            let (mut x, mut y, mut a) = (x0.clone(), y0.clone(), a0.clone());
            let (mut dx, mut dy, mut da) = (dx0.clone(), dy0.clone(), da0.clone());
            let args = words(&mut x, &mut y, &mut a);
            let mut shadows = vec![0u64; args.len()];
            shadows[ka] = &dalpha as *const f64 as u64;
            shadows[kx] = dx.as_mut_ptr() as u64;
            if ky != usize::MAX {
                shadows[ky] = dy.as_mut_ptr() as u64;
            }
            if kaa != usize::MAX {
                shadows[kaa] = da.as_mut_ptr() as u64;
            }
            // SAFETY: the words point at live locals laid out as the Fortran routine takes
            // them; an in-place routine's copy is made before the call and freed by its tangent.
            let saved = in_place.then(|| unsafe { blas_save(op as u32, args.as_ptr()) });
            primal(alpha, &mut x, &mut y, &mut a);
            match saved {
                // SAFETY: as above.
                Some(sv) => unsafe { blas_tangent_saved(sv, args.as_ptr(), shadows.as_ptr(), 1) },
                // SAFETY: as above.
                None => unsafe {
                    blas_tangent(op as u32, args.as_ptr(), shadows.as_ptr());
                },
            }
            let h = 1e-6;
            let shifted = |t: f64| {
                let sh = |v: &[f64], d: &[f64]| -> Vec<f64> { v.iter().zip(d).map(|(p, q)| p + t * q).collect() };
                let (mut x, mut y, mut a) = (sh(&x0, &dx0), sh(&y0, &dy0), sh(&a0, &da0));
                primal(alpha + t * dalpha, &mut x, &mut y, &mut a);
                match op {
                    BlasOp::Scal => x,
                    BlasOp::Ger => a,
                    _ => y,
                }
            };
            let (up, down) = (shifted(h), shifted(-h));
            let (written, written0): (&[f64], &[f64]) = match op {
                BlasOp::Scal => (&dx, &dx0),
                BlasOp::Ger => (&da, &da0),
                _ => (&dy, &dy0),
            };
            for k in 0..up.len() {
                assert!((written[k] - (up[k] - down[k]) / (2.0 * h)).abs() < 1e-6, "{op:?}: tangent at {k}");
            }
            // Adjoint.
            let (mut x, mut y, mut a) = (x0.clone(), y0.clone(), a0.clone());
            let args = words(&mut x, &mut y, &mut a);
            // SAFETY: as above; the reverse frees the copy.
            let saved = in_place.then(|| unsafe { blas_save(op as u32, args.as_ptr()) });
            primal(alpha, &mut x, &mut y, &mut a);
            // SAFETY: as above (after the call for the others, as the rule makes it).
            let saved = saved.unwrap_or_else(|| unsafe { blas_save(op as u32, args.as_ptr()) });
            let wbar = fill(written.len(), 9);
            let (mut xb, mut yb, mut ab, mut alphabar) =
                (vec![0.0; dx0.len()], vec![0.0; dy0.len()], vec![0.0; da0.len()], 0.0f64);
            match op {
                BlasOp::Scal => xb = wbar.clone(),
                BlasOp::Ger => ab = wbar.clone(),
                _ => yb = wbar.clone(),
            }
            let mut shadows = vec![0u64; args.len()];
            shadows[ka] = &mut alphabar as *mut f64 as u64;
            shadows[kx] = xb.as_mut_ptr() as u64;
            if ky != usize::MAX {
                shadows[ky] = yb.as_mut_ptr() as u64;
            }
            if kaa != usize::MAX {
                shadows[kaa] = ab.as_mut_ptr() as u64;
            }
            // SAFETY: `saved` comes from `blas_save` above.
            unsafe { blas_reverse(saved, shadows.as_ptr(), 0.0, 1) };
            let dot = |u: &[f64], v: &[f64]| -> f64 { u.iter().zip(v).map(|(p, q)| p * q).sum() };
            let lhs = dot(&wbar, written);
            let _ = written0;
            let rhs = alphabar * dalpha
                + dot(&xb, &dx0)
                + if ky != usize::MAX { dot(&yb, &dy0) } else { 0.0 }
                + if kaa != usize::MAX { dot(&ab, &da0) } else { 0.0 };
            assert!((lhs - rhs).abs() < 1e-10, "{op:?}: {lhs} vs {rhs}");
        }
    }

    /// `trmv` (`x ← op(T) x` in place, T one triangle of A, unit diagonal or not) the
    /// same way, from the copy `blas_save` makes before the call: the tangent against
    /// central differences along Ȧ, ẋ₀, and the adjoint by ⟨x̄, ẋ⟩ = ⟨Ā, Ȧ⟩ + ⟨x̄₀, ẋ₀⟩.
    #[test]
    fn trmv_tangent_and_adjoint() {
        let (n, lda, incx) = (3usize, 4usize, 2usize);
        for (uplo, trans, diag) in [(b'U', b'N', b'N'), (b'L', b'N', b'U'), (b'U', b'T', b'U'), (b'L', b'T', b'N')] {
            let a: Vec<f64> = (0..lda * n).map(|i| ((i * 7 % 11) as f64 - 5.0) / 4.0).collect();
            let x0: Vec<f64> = (0..n * incx).map(|i| ((i * 5 % 7) as f64 - 3.0) / 2.0).collect();
            let da: Vec<f64> = (0..lda * n).map(|i| ((i * 2 % 9) as f64 - 4.0) / 5.0).collect();
            let dx0: Vec<f64> = (0..n * incx).map(|i| ((i * 4 % 13) as f64 - 6.0) / 7.0).collect();
            let primal = |a: &[f64], x: &mut [f64]| {
                let t = |r: usize, c: usize| {
                    let inside = if uplo == b'U' { r <= c } else { r >= c };
                    if diag == b'U' && r == c {
                        1.0
                    } else if inside {
                        a[r + c * lda]
                    } else {
                        0.0
                    }
                };
                let p = |i: usize, j: usize| if trans == b'N' { t(i, j) } else { t(j, i) };
                let old: Vec<f64> = (0..n).map(|j| x[j * incx]).collect();
                for i in 0..n {
                    x[i * incx] = (0..n).map(|j| p(i, j) * old[j]).sum();
                }
            };
            let (ni, ldai, incxi) = (n as i64, lda as i64, incx as i64);
            let words = |a: &[f64], x: &mut [f64]| -> [u64; 8] {
                [
                    &uplo as *const u8 as u64,
                    &trans as *const u8 as u64,
                    &diag as *const u8 as u64,
                    &ni as *const i64 as u64,
                    a.as_ptr() as u64,
                    &ldai as *const i64 as u64,
                    x.as_mut_ptr() as u64,
                    &incxi as *const i64 as u64,
                ]
            };
            let tag = format!("{} {} {}", uplo as char, trans as char, diag as char);
            let mut x = x0.clone();
            let mut dx = dx0.clone();
            let args = words(&a, &mut x);
            // SAFETY: the words point at live locals laid out as Fortran `dtrmv` takes them;
            // the copy is made before the call, as the rule makes it, and freed by the tangent.
            let saved = unsafe { blas_save(BlasOp::Trmv as u32, args.as_ptr()) };
            primal(&a, &mut x);
            let mut shadows = [0u64; 8];
            shadows[4] = da.as_ptr() as u64;
            shadows[6] = dx.as_mut_ptr() as u64;
            // SAFETY: `saved` comes from `blas_save` above, for this call.
            unsafe { blas_tangent_saved(saved, args.as_ptr(), shadows.as_ptr(), 1) };
            let h = 1e-6;
            let shifted = |t: f64| {
                let a: Vec<f64> = a.iter().zip(&da).map(|(p, q)| p + t * q).collect();
                let mut x: Vec<f64> = x0.iter().zip(&dx0).map(|(p, q)| p + t * q).collect();
                primal(&a, &mut x);
                x
            };
            let (up, down) = (shifted(h), shifted(-h));
            for i in 0..n {
                let k = i * incx;
                assert!((dx[k] - (up[k] - down[k]) / (2.0 * h)).abs() < 1e-6, "{tag}: tangent at {i}");
            }
            let xbar: Vec<f64> = (0..n * incx).map(|i| ((i * 3 % 5) as f64 - 2.0) / 3.0).collect();
            let mut x = x0.clone();
            let args = words(&a, &mut x);
            // SAFETY: as above; the reverse frees the copy.
            let saved = unsafe { blas_save(BlasOp::Trmv as u32, args.as_ptr()) };
            primal(&a, &mut x);
            let mut abar = vec![0.0; lda * n];
            let mut xb = xbar.clone();
            let mut shadows = [0u64; 8];
            shadows[4] = abar.as_mut_ptr() as u64;
            shadows[6] = xb.as_mut_ptr() as u64;
            // SAFETY: `saved` comes from `blas_save` above.
            unsafe { blas_reverse(saved, shadows.as_ptr(), 0.0, 1) };
            let lhs: f64 = (0..n).map(|i| xbar[i * incx] * dx[i * incx]).sum();
            let rhs: f64 = abar.iter().zip(&da).map(|(p, q)| p * q).sum::<f64>()
                + (0..n).map(|j| xb[j * incx] * dx0[j * incx]).sum::<f64>();
            assert!((lhs - rhs).abs() < 1e-10, "{tag}: {lhs} vs {rhs}");
        }
    }

    /// `symv` (`y ← α S x + β y`, S symmetric from one stored triangle of A, the other
    /// triangle garbage the call must not read) the same way: the tangent against
    /// central differences along α̇, Ȧ, ẋ, ẏ₀, and the adjoint by the dot-product
    /// identity ⟨ȳ, ẏ⟩ = ᾱ α̇ + ⟨Ā, Ȧ⟩ + ⟨x̄, ẋ⟩ + ⟨ȳ₀, ẏ₀⟩, with strides and a leading
    /// dimension larger than n.
    #[test]
    fn symv_tangent_and_adjoint() {
        let (n, alpha, beta, dalpha) = (3usize, 1.5f64, 0.5f64, -0.7f64);
        let (lda, incx, incy) = (n + 1, 2usize, 3usize);
        for uplo in [b'U', b'L'] {
            let a: Vec<f64> = (0..lda * n).map(|i| ((i * 7 % 11) as f64 - 5.0) / 4.0).collect();
            let x: Vec<f64> = (0..n * incx).map(|i| ((i * 5 % 7) as f64 - 3.0) / 2.0).collect();
            let y0: Vec<f64> = (0..n * incy).map(|i| ((i * 3 % 5) as f64 - 2.0) / 3.0).collect();
            let da: Vec<f64> = (0..lda * n).map(|i| ((i * 2 % 9) as f64 - 4.0) / 5.0).collect();
            let dx: Vec<f64> = (0..n * incx).map(|i| ((i * 4 % 13) as f64 - 6.0) / 7.0).collect();
            let dy0: Vec<f64> = (0..n * incy).map(|i| ((i * 6 % 5) as f64 - 2.0) / 3.0).collect();
            let stored = |i: usize, j: usize| if uplo == b'U' { i <= j } else { i >= j };
            let primal = |alpha: f64, a: &[f64], x: &[f64], y: &mut [f64]| {
                let sym = |i: usize, j: usize| if stored(i, j) { a[i + j * lda] } else { a[j + i * lda] };
                for i in 0..n {
                    let sx: f64 = (0..n).map(|j| sym(i, j) * x[j * incx]).sum();
                    y[i * incy] = alpha * sx + beta * y[i * incy];
                }
            };
            let (ni, ldai, incxi, incyi) = (n as i64, lda as i64, incx as i64, incy as i64);
            let words = |a: &[f64], x: &[f64], y: &mut [f64]| -> [u64; 10] {
                [
                    &uplo as *const u8 as u64,
                    &ni as *const i64 as u64,
                    &alpha as *const f64 as u64,
                    a.as_ptr() as u64,
                    &ldai as *const i64 as u64,
                    x.as_ptr() as u64,
                    &incxi as *const i64 as u64,
                    &beta as *const f64 as u64,
                    y.as_mut_ptr() as u64,
                    &incyi as *const i64 as u64,
                ]
            };
            let mut y = y0.clone();
            let mut dy = dy0.clone();
            let args = words(&a, &x, &mut y);
            let mut shadows = [0u64; 10];
            shadows[2] = &dalpha as *const f64 as u64;
            shadows[3] = da.as_ptr() as u64;
            shadows[5] = dx.as_ptr() as u64;
            shadows[8] = dy.as_mut_ptr() as u64;
            primal(alpha, &a, &x, &mut y);
            // SAFETY: the words point at live locals laid out as Fortran `dsymv` takes them.
            unsafe { blas_tangent(BlasOp::Symv as u32, args.as_ptr(), shadows.as_ptr()) };
            let h = 1e-6;
            let shifted = |t: f64| {
                let shift = |v: &[f64], d: &[f64]| -> Vec<f64> { v.iter().zip(d).map(|(p, q)| p + t * q).collect() };
                let mut y = shift(&y0, &dy0);
                primal(alpha + t * dalpha, &shift(&a, &da), &shift(&x, &dx), &mut y);
                y
            };
            let (up, down) = (shifted(h), shifted(-h));
            for i in 0..n {
                let k = i * incy;
                assert!((dy[k] - (up[k] - down[k]) / (2.0 * h)).abs() < 1e-6, "{uplo} tangent at {i}");
            }
            let ybar: Vec<f64> = (0..n * incy).map(|i| ((i * 4 % 9) as f64 - 4.0) / 5.0).collect();
            let mut y = y0.clone();
            let args = words(&a, &x, &mut y);
            // SAFETY: as above; the saved copy is freed by the last reverse.
            let saved = unsafe { blas_save(BlasOp::Symv as u32, args.as_ptr()) };
            let (mut abar, mut xbar, mut alphabar) = (vec![0.0; lda * n], vec![0.0; n * incx], 0.0f64);
            let mut yb = ybar.clone();
            let mut shadows = [0u64; 10];
            shadows[2] = &mut alphabar as *mut f64 as u64;
            shadows[3] = abar.as_mut_ptr() as u64;
            shadows[5] = xbar.as_mut_ptr() as u64;
            shadows[8] = yb.as_mut_ptr() as u64;
            // SAFETY: `saved` comes from `blas_save` above.
            unsafe { blas_reverse(saved, shadows.as_ptr(), 0.0, 1) };
            let dot = |u: &[f64], v: &[f64]| -> f64 { u.iter().zip(v).map(|(p, q)| p * q).sum() };
            let lhs: f64 = (0..n).map(|i| ybar[i * incy] * dy[i * incy]).sum();
            let rhs = alphabar * dalpha
                + dot(&abar, &da)
                + (0..n).map(|j| xbar[j * incx] * dx[j * incx]).sum::<f64>()
                + (0..n).map(|i| yb[i * incy] * dy0[i * incy]).sum::<f64>();
            assert!((lhs - rhs).abs() < 1e-10, "{uplo}: {lhs} vs {rhs}");
        }
    }

    #[test]
    fn names() {
        assert_eq!(lookup("ddot_64_"), Some(BlasOp::Dot as u32));
        assert_eq!(lookup("sgemv_"), Some(BlasOp::Gemv as u32 | SINGLE));
        assert_eq!(lookup("dgemm_64_"), Some(BlasOp::Gemm as u32));
        assert_eq!(lookup("ssyrk_64_"), Some(BlasOp::Syrk as u32 | SINGLE));
        assert_eq!(lookup("daxpy_64_"), Some(BlasOp::Axpy as u32));
        assert_eq!(lookup("dtrmv_64_"), Some(BlasOp::Trmv as u32));
        assert_eq!(lookup("ssymv_"), Some(BlasOp::Symv as u32 | SINGLE));
        assert_eq!(lookup("dtrsv_64_"), None);
        assert_eq!(lookup("memcpy"), None);
        assert_eq!(lookup("dsyrk_64_"), Some(BlasOp::Syrk as u32));
        // A multi-byte first character (the bit-flip fuzzer found it panicking).
        assert_eq!(lookup("\u{ec}lvm.sin.f64"), None);
        assert_eq!(lookup(""), None);
    }
}
