//! Shared test harness: compiles LLVM IR fixtures through the same pipeline Julia uses
//! and calls the derivatives through the C-ABI signature.
#![allow(dead_code)]

use oxidase::ffi::OxDerivativeFn;
use oxidase::llvm::{Context, Module, OwnedModule};
use oxidase::request::{Activity, ArgSpec, Layout, Mode, Passing, Request};
use std::collections::HashSet;
use std::ffi::c_void;
use std::sync::Mutex;

/// Reads `tests/fixtures/NAME.ll`; returns (text, entry name from the `; entry:` line).
pub fn fixture(name: &str) -> (String, String) {
    let path = format!("{}/tests/fixtures/{name}.ll", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let entry = text
        .lines()
        .find_map(|l| l.strip_prefix("; entry: "))
        .unwrap_or_else(|| panic!("{path} has no `; entry:` line"))
        .trim()
        .to_string();
    (text, entry)
}

/// Synthesizes (without compiling) the reverse derivative of fixture `name` for
/// arguments `args` and an active `Float64` result: what the golden tests of the
/// analyses collect the printers of (`oxidase::stage::collect`).
pub fn synthesize_fixture(name: &str, args: Vec<ArgSpec>) -> Result<u32, oxidase::error::Error> {
    let (text, entry) = fixture(name);
    let ctx = Context::create();
    let m = OwnedModule::parse_ir(&ctx, &text).expect("fixture parses");
    let req = Request {
        entry,
        mode: Mode::Reverse,
        width: 1,
        args,
        ret: Activity::Active,
        primal_unused: false,
        writer_bitcode: false,
    };
    let jit = oxidase::jit::global().expect("jit");
    oxidase::pipeline::synthesize(&m, &req, "d", &jit.data_layout(), &jit.triple())
}

extern "C" fn runtime_stub() {
    eprintln!("a Julia runtime function was called in a test without Julia");
    std::process::abort();
}

/// Leaving an exception handler that was never entered (fixtures with a `try`): nothing
/// to do without Julia.
extern "C" fn runtime_noop() {}

/// The collector's allocation of an object of `osize` bytes with its tag word before it
/// (heap objects the fixtures build): zeroed memory that is never freed (tests are
/// short), returned past the tag.
extern "C" fn pool_alloc(_ptls: *mut c_void, _pool: i32, osize: i32) -> *mut u8 {
    let words = vec![0u64; (osize as usize).div_ceil(8)].leak();
    // SAFETY: the allocation holds at least the tag word (`osize` counts it).
    unsafe { (words.as_mut_ptr() as *mut u8).add(8) }
}

static STUB_DATA: [u64; 64] = [0; 64];

/// Without Julia in the process, Julia runtime symbols the fixtures refer to (on error
/// paths) are defined as stubs that abort, so the JIT can link the module.
pub fn define_runtime_stubs(m: &Module) {
    static DEFINED: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    let mut guard = DEFINED.lock().unwrap();
    let defined = guard.get_or_insert_with(HashSet::new);
    let mut syms: Vec<(String, usize)> = Vec::new();
    let is_runtime =
        |n: &str| n.starts_with("jl_") || n.starts_with("ijl_") || n == "__stack_chk_guard" || n == "__stack_chk_fail";
    for f in m.functions() {
        let n = f.name();
        if f.is_declaration() && is_runtime(&n) && !defined.contains(&n) {
            let stub = if n == "jl_pop_handler" {
                runtime_noop as *const () as usize
            } else if n == "jl_gc_pool_alloc" {
                pool_alloc as *const () as usize
            } else {
                runtime_stub as *const () as usize
            };
            syms.push((n, stub));
        }
    }
    for g in m.globals() {
        let n = g.name();
        if g.is_declaration() && is_runtime(&n) && !defined.contains(&n) {
            syms.push((n, STUB_DATA.as_ptr() as usize));
        }
    }
    if syms.is_empty() {
        return;
    }
    let refs: Vec<(&str, usize)> = syms.iter().map(|(n, a)| (n.as_str(), *a)).collect();
    oxidase::jit::define_absolute_everywhere(&refs).unwrap();
    defined.extend(syms.into_iter().map(|(n, _)| n));
}

/// A by-value float argument with the given activity.
pub fn float_arg(activity: Activity) -> ArgSpec {
    ArgSpec { passing: Passing::Value, activity, type_tree: vec![(0, Layout::F64)] }
}

/// The function itself, a singleton.
pub fn ghost() -> ArgSpec {
    ArgSpec { passing: Passing::Ghost, activity: Activity::Const, type_tree: vec![] }
}

/// Compiles a derivative of an IR text (LLVM 19 syntax).
pub fn compile_text(
    text: &str,
    entry: &str,
    mode: Mode,
    args: Vec<ArgSpec>,
    ret: Activity,
) -> Result<OxDerivativeFn, oxidase::error::Error> {
    compile_batch(text, entry, mode, 1, args, ret)
}

/// `compile_text` with `width` tangents (forward) or cotangents (reverse) per value.
pub fn compile_batch(
    text: &str,
    entry: &str,
    mode: Mode,
    width: u32,
    args: Vec<ArgSpec>,
    ret: Activity,
) -> Result<OxDerivativeFn, oxidase::error::Error> {
    compile_request(
        text,
        &Request { entry: entry.into(), mode, width, args, ret, primal_unused: false, writer_bitcode: false },
    )
}

/// Compiles the derivative `req` asks for from IR text.
pub fn compile_request(text: &str, req: &Request) -> Result<OxDerivativeFn, oxidase::error::Error> {
    let ctx = Context::create();
    let m = OwnedModule::parse_ir(&ctx, text).expect("fixture parses");
    define_runtime_stubs(&m);
    let c = oxidase::cache::get_or_compile(&m.to_bitcode(), req)?;
    Ok(unsafe { std::mem::transmute::<usize, OxDerivativeFn>(c.addr) })
}

/// Compiles the derivative of a fixture, every argument a Float64 passed by value (after
/// a ghost for the function itself) with activity `act`.
pub fn compile_fixture(name: &str, mode: Mode, acts: &[Activity], ret: Activity) -> OxDerivativeFn {
    let (text, entry) = fixture(name);
    let mut args = vec![ghost()];
    args.extend(acts.iter().map(|&a| float_arg(a)));
    compile_text(&text, &entry, mode, args, ret).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// A pointer to `x` for the ABI's pointer arrays.
pub fn ptr<T>(x: &mut T) -> *mut c_void {
    x as *mut T as *mut c_void
}

/// The null pointer standing for a ghost argument or an unused shadow.
pub const NONE: *mut c_void = std::ptr::null_mut();

/// Calls a derivative of a function returning Float64; returns the status. In reverse
/// mode `dret` is the seed, in forward mode it receives the tangent.
pub fn invoke(d: OxDerivativeFn, args: &[*mut c_void], shadows: &[*mut c_void], ret: &mut f64, dret: &mut f64) -> i32 {
    assert_eq!(args.len(), shadows.len());
    // SAFETY: every pointer is valid for the derivative's reads and writes (the caller
    // builds them from live locals with `ptr`).
    unsafe { d(args.as_ptr(), shadows.as_ptr(), ptr(ret), ptr(dret)) }
}

/// Calls a reverse-mode derivative of f(x...) -> Float64 with seed 1: (primal, gradient).
pub fn call_reverse(d: OxDerivativeFn, xs: &[f64]) -> (f64, Vec<f64>) {
    let mut xs = xs.to_vec();
    let mut grads = vec![0.0f64; xs.len()];
    let args: Vec<*mut c_void> = std::iter::once(NONE).chain(xs.iter_mut().map(ptr)).collect();
    let shadows: Vec<*mut c_void> = std::iter::once(NONE).chain(grads.iter_mut().map(ptr)).collect();
    let (mut ret, mut seed) = (0.0, 1.0);
    assert_eq!(invoke(d, &args, &shadows, &mut ret, &mut seed), 0);
    (ret, grads)
}

/// Calls a forward-mode derivative of f(x...) -> Float64: (primal, tangent).
pub fn call_forward(d: OxDerivativeFn, xs: &[f64], dxs: &[f64]) -> (f64, f64) {
    let mut xs = xs.to_vec();
    let mut dxs = dxs.to_vec();
    let args: Vec<*mut c_void> = std::iter::once(NONE).chain(xs.iter_mut().map(ptr)).collect();
    let shadows: Vec<*mut c_void> = std::iter::once(NONE).chain(dxs.iter_mut().map(ptr)).collect();
    let (mut ret, mut dret) = (0.0, 0.0);
    assert_eq!(invoke(d, &args, &shadows, &mut ret, &mut dret), 0);
    (ret, dret)
}

/// Checks the derivatives of `f(x, n)` (a `Float64` and a constant `Int64`) compiled in
/// reverse (`rev`), forward (`fwd`) and batch forward mode with two lanes (`batch`, whose
/// second tangent is 3): the primal and each derivative against `primal` and
/// `derivative` (`what` names the case in a failure).
#[allow(clippy::too_many_arguments)]
pub fn check_scalar_modes(
    (rev, fwd, batch): (OxDerivativeFn, OxDerivativeFn, OxDerivativeFn),
    x: f64,
    n: i64,
    primal: f64,
    derivative: f64,
    what: &str,
) {
    let (mut xv, mut nv, mut dx) = (x, n, 0.0);
    let (mut y, mut seed) = (0.0, 1.0);
    assert_eq!(invoke(rev, &[NONE, ptr(&mut xv), ptr(&mut nv)], &[NONE, ptr(&mut dx), NONE], &mut y, &mut seed), 0);
    assert_close(y, primal, 1e-12, &format!("{what}: primal"));
    assert_close(dx, derivative, 1e-12, &format!("{what}: reverse"));

    let (mut xv, mut nv, mut tx) = (x, n, 1.0);
    let (mut y, mut t) = (0.0, 0.0);
    assert_eq!(invoke(fwd, &[NONE, ptr(&mut xv), ptr(&mut nv)], &[NONE, ptr(&mut tx), NONE], &mut y, &mut t), 0);
    assert_close(y, primal, 1e-12, &format!("{what}: forward primal"));
    assert_close(t, derivative, 1e-12, &format!("{what}: forward"));

    let (mut xv, mut nv, mut tx) = (x, n, [1.0, 3.0]);
    let mut ts = [0.0f64; 2];
    let mut y = 0.0;
    // SAFETY: the pointers come from live locals; the derivative writes two tangents
    // through `ts`.
    let status = unsafe {
        batch(
            [NONE, ptr(&mut xv), ptr(&mut nv)].as_ptr(),
            [NONE, ptr(&mut tx), NONE].as_ptr(),
            ptr(&mut y),
            ts.as_mut_ptr() as *mut c_void,
        )
    };
    assert_eq!(status, 0);
    assert_close(ts[0], derivative, 1e-12, &format!("{what}: batch lane 1"));
    assert_close(ts[1], 3.0 * derivative, 1e-12, &format!("{what}: batch lane 2"));
}

/// Compiles fixture function `name(x::Float64, n::Int)` (a `Float64` result) in `mode`:
/// `x` and the result `Active` in reverse mode, `Duplicated` in forward mode; `n` a
/// constant integer.
pub fn compile_scalar_and_count(text: &str, name: &str, mode: Mode, width: u32) -> OxDerivativeFn {
    let int = ArgSpec { passing: Passing::Value, activity: Activity::Const, type_tree: vec![(0, Layout::Integer)] };
    let (x, ret) = if mode == Mode::Reverse {
        (Activity::Active, Activity::Active)
    } else {
        (Activity::Duplicated, Activity::Duplicated)
    };
    compile_batch(text, name, mode, width, vec![ghost(), float_arg(x), int], ret)
        .unwrap_or_else(|e| panic!("{mode:?}: {e}"))
}

/// Every mode of fixture `name(x, n)` (`compile_scalar_and_count`) at each `x` and `n`,
/// against its analytic derivative, itself checked against central differences of the
/// primal.
pub fn check_scalar_and_count(
    text: &str,
    name: &str,
    primal: fn(f64, i64) -> f64,
    derivative: fn(f64, i64) -> f64,
    xs: &[f64],
    ns: &[i64],
) {
    let compile = |mode, width| compile_scalar_and_count(text, name, mode, width);
    let fns = (compile(Mode::Reverse, 1), compile(Mode::Forward, 1), compile(Mode::Forward, 2));
    for &x in xs {
        for &n in ns {
            let h = 1e-6;
            let central = (primal(x + h, n) - primal(x - h, n)) / (2.0 * h);
            assert_close(derivative(x, n), central, 1e-6, "the analytic derivative");
            check_scalar_modes(fns, x, n, primal(x, n), derivative(x, n), &format!("x = {x}, n = {n}"));
        }
    }
}

/// Central finite difference of g at x along coordinate i.
pub fn central_difference(g: &dyn Fn(&[f64]) -> f64, x: &[f64], i: usize) -> f64 {
    let h = 1e-6 * x[i].abs().max(1.0);
    let mut xp = x.to_vec();
    let mut xm = x.to_vec();
    xp[i] += h;
    xm[i] -= h;
    (g(&xp) - g(&xm)) / (2.0 * h)
}

/// |a - b| <= tol * max(1, |b|).
pub fn assert_close(a: f64, b: f64, tol: f64, what: &str) {
    assert!((a - b).abs() <= tol * b.abs().max(1.0), "{what}: got {a}, expected {b}");
}

/// The fields of Julia 1.5's `jl_array_t` that compiled code reads (data pointer at 0,
/// length at 8, number of rows at 24), so array IR runs without Julia.
#[repr(C)]
pub struct FakeArray {
    data: *mut f64,
    length: usize,
    flags: u64,
    nrows: usize,
    maxsize: usize,
    storage: Vec<f64>,
}

impl FakeArray {
    /// A vector holding `values`.
    pub fn new(values: &[f64]) -> Box<FakeArray> {
        let mut storage = values.to_vec();
        let data = storage.as_mut_ptr();
        Box::new(FakeArray {
            data,
            length: values.len(),
            flags: 0,
            nrows: values.len(),
            maxsize: values.len(),
            storage,
        })
    }
    /// A vector of `values.len() / 2` elements of two floats each (`struct Two; a::Float64;
    /// b::Float64; end`), `values` holding them in order.
    pub fn pairs(values: &[f64]) -> Box<FakeArray> {
        let mut a = FakeArray::new(values);
        a.length = values.len() / 2;
        a.nrows = a.length;
        a.maxsize = a.length;
        a
    }
    /// The current contents.
    pub fn values(&self) -> Vec<f64> {
        self.storage.clone()
    }
}

/// An array argument (a boxed object) with the given activity.
pub fn array_arg(activity: Activity) -> ArgSpec {
    ArgSpec { passing: Passing::Boxed, activity, type_tree: vec![(0, Layout::array_of(Layout::F64))] }
}

/// Calls a derivative of `f(x::Vector{Float64}) -> Float64` with `Duplicated(x, dx)`:
/// in reverse mode `dx` accumulates the gradient (seed 1), in forward mode it is the
/// direction. Returns (primal, return tangent, dx afterwards).
pub fn call_array(d: OxDerivativeFn, x: &[f64], dx: &[f64]) -> (f64, f64, Vec<f64>) {
    let (x, dx) = (FakeArray::new(x), FakeArray::new(dx));
    let (mut xp, mut dxp) = (&*x as *const FakeArray as *mut c_void, &*dx as *const FakeArray as *mut c_void);
    let (mut ret, mut dret) = (0.0, 1.0);
    assert_eq!(invoke(d, &[NONE, ptr(&mut xp)], &[NONE, ptr(&mut dxp)], &mut ret, &mut dret), 0);
    (ret, dret, dx.values())
}

/// The arguments of the fixtures: the function, then `arrays` arrays, all `Duplicated`.
pub fn arrays(n: usize) -> Vec<ArgSpec> {
    std::iter::once(ghost()).chain((0..n).map(|_| array_arg(Activity::Duplicated))).collect()
}

/// `rk4_last!` of the fixture, in Rust: the last element of `y` after ten RK4 steps.
pub fn rk4_last(x: &[f64]) -> f64 {
    let n = x.len();
    let h = 0.1;
    let z = |i: usize, v: &[f64]| if i == 0 { x[0] } else { x[i] * v[i - 1] };
    let mut y = vec![0.0; n];
    for _ in 0..10 {
        let k1: Vec<f64> = (0..n).map(|i| z(i, &y)).collect();
        let t: Vec<f64> = (0..n).map(|i| y[i] + h / 2.0 * k1[i]).collect();
        let k2: Vec<f64> = (0..n).map(|i| z(i, &t)).collect();
        let t: Vec<f64> = (0..n).map(|i| y[i] + h / 2.0 * k2[i]).collect();
        let k3: Vec<f64> = (0..n).map(|i| z(i, &t)).collect();
        let t: Vec<f64> = (0..n).map(|i| y[i] + h * k3[i]).collect();
        let k4: Vec<f64> = (0..n).map(|i| z(i, &t)).collect();
        for i in 0..n {
            y[i] += h / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]);
        }
    }
    y[n - 1]
}

/// Calls derivative `d` of a fixture whose arguments are arrays, with the arrays'
/// values `vals` and their shadows' `dvals` (an active result seeded with 1): (primal,
/// return tangent, the shadows afterwards).
pub fn call_arrays(d: OxDerivativeFn, vals: &[Vec<f64>], dvals: &[Vec<f64>]) -> (f64, f64, Vec<Vec<f64>>) {
    let primal: Vec<Box<FakeArray>> = vals.iter().map(|a| FakeArray::new(a)).collect();
    let shadow: Vec<Box<FakeArray>> = dvals.iter().map(|a| FakeArray::new(a)).collect();
    let mut pp: Vec<*mut c_void> = primal.iter().map(|a| &**a as *const FakeArray as *mut _).collect();
    let mut sp: Vec<*mut c_void> = shadow.iter().map(|a| &**a as *const FakeArray as *mut _).collect();
    let args: Vec<*mut c_void> = std::iter::once(NONE).chain(pp.iter_mut().map(ptr)).collect();
    let shadows: Vec<*mut c_void> = std::iter::once(NONE).chain(sp.iter_mut().map(ptr)).collect();
    let (mut ret, mut dret) = (0.0, 1.0);
    assert_eq!(invoke(d, &args, &shadows, &mut ret, &mut dret), 0);
    (ret, dret, shadow.iter().map(|a| a.values()).collect())
}

/// Calls a derivative of the RK4 fixture with `x` (direction or gradient `dx`) and six
/// scratch arrays with zero shadows: (primal, return tangent, dx afterwards).
pub fn call_rk4(d: OxDerivativeFn, x: &[f64], dx: &[f64]) -> (f64, f64, Vec<f64>) {
    let n = x.len();
    let vals: Vec<Vec<f64>> = std::iter::once(x.to_vec()).chain((0..6).map(|_| vec![0.0; n])).collect();
    let dvals: Vec<Vec<f64>> = std::iter::once(dx.to_vec()).chain((0..6).map(|_| vec![0.0; n])).collect();
    let (ret, dret, shadows) = call_arrays(d, &vals, &dvals);
    (ret, dret, shadows[0].clone())
}
