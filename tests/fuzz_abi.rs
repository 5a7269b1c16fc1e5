//! The engine's entry point under random and mutated input: bitcode bytes and request
//! descriptions. Whatever it gets, `pipeline::compile` returns a value (a derivative or
//! an error) and never panics or crashes; the C ABI turns an error into a status.
//! (A longer run: `PROPTEST_CASES=5000 cargo test --test fuzz_abi`.)

mod common;
use common::*;
use oxidase::llvm::Module;
use oxidase::request::{Activity, ArgSpec, Leaf, Mode, Passing, Request};
use proptest::prelude::*;

fn valid_bitcode() -> Vec<u8> {
    Module::parse_ir(include_str!("c/abi_test.ll")).unwrap().to_bitcode()
}

/// The seed corpus for mutations: the checked-in IR fixtures (captured from Julia, and
/// the C-ABI test's own), as bitcode.
fn corpus() -> &'static [(String, Vec<u8>)] {
    static CORPUS: std::sync::OnceLock<Vec<(String, Vec<u8>)>> = std::sync::OnceLock::new();
    CORPUS.get_or_init(|| {
        let mut out = vec![("f".to_string(), valid_bitcode())];
        for name in ["rosenbrock", "sinexplog", "series", "rosenbrock_inp", "sumsq", "special_one"] {
            let (text, entry) = fixture(name);
            out.push((entry, Module::parse_ir(&text).unwrap().to_bitcode()));
        }
        out
    })
}

fn activity() -> impl Strategy<Value = Activity> {
    prop_oneof![Just(Activity::Const), Just(Activity::Active), Just(Activity::Duplicated)]
}

fn arg() -> impl Strategy<Value = ArgSpec> {
    let passing = prop_oneof![Just(Passing::Ghost), Just(Passing::Value), Just(Passing::Boxed)];
    let leaf = prop_oneof![
        Just(Leaf::F64),
        Just(Leaf::F32),
        Just(Leaf::Integer),
        Just(Leaf::Pointer),
        Just(Leaf::ArrayF64),
        Just(Leaf::ArrayFieldsF64)
    ];
    (passing, activity(), proptest::collection::vec((0u64..64, leaf), 0..3))
        .prop_map(|(passing, activity, type_tree)| ArgSpec { passing, activity, type_tree })
}

fn request() -> impl Strategy<Value = Request> {
    let mode = prop_oneof![Just(Mode::Forward), Just(Mode::Reverse)];
    let entry = prop_oneof![Just("f".to_string()), "[a-z]{0,8}"];
    (entry, mode, 0u32..4, proptest::collection::vec(arg(), 0..5), activity(), any::<bool>()).prop_map(
        |(entry, mode, width, args, ret, primal_unused)| Request { entry, mode, width, args, ret, primal_unused },
    )
}

/// Two float parameters, as `f` in the fixture has, with random activities and trees:
/// requests that get past validation and exercise the whole pipeline.
fn plausible_request() -> impl Strategy<Value = Request> {
    let mode = prop_oneof![Just(Mode::Forward), Just(Mode::Reverse)];
    let float = || {
        (activity(), prop_oneof![Just(vec![(0, Leaf::F64)]), Just(vec![]), Just(vec![(0, Leaf::F32)])])
            .prop_map(|(activity, type_tree)| ArgSpec { passing: Passing::Value, activity, type_tree })
    };
    (mode, 1u32..5, float(), float(), activity(), any::<bool>()).prop_map(|(mode, width, a, b, ret, primal_unused)| {
        Request { entry: "f".into(), mode, width, args: vec![a, b], ret, primal_unused }
    })
}

/// 64 cases per property by default; `PROPTEST_CASES` for a longer run.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(64);
    ProptestConfig { cases, ..ProptestConfig::default() }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn random_bytes_are_an_error(bytes in proptest::collection::vec(any::<u8>(), 0..512), req in request()) {
        prop_assert!(oxidase::pipeline::compile(&bytes, &req).is_err());
    }

    #[test]
    fn mutated_bitcode_never_crashes(which in any::<usize>(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
                                     cut in any::<usize>(), mut req in request()) {
        let (entry, seed) = &corpus()[which % corpus().len()];
        req.entry = entry.clone();
        let mut bc = seed.clone();
        for (at, byte) in flips {
            let n = bc.len();
            bc[at % n] ^= byte;
        }
        bc.truncate(cut % (bc.len() + 1));
        let _ = oxidase::pipeline::compile(&bc, &req);
    }

    /// Valid programs the fixtures do not contain: arithmetic opcodes swapped and
    /// constants changed in the fixtures' text; they compile or are refused, in both modes.
    #[test]
    fn mutated_programs_compile_or_refuse(which in 0usize..6, swaps in proptest::collection::vec((any::<usize>(), 0usize..4), 1..6),
                                          reverse in any::<bool>()) {
        let names = ["rosenbrock", "sinexplog", "series", "rosenbrock_inp", "sumsq", "rosenbrock"];
        let (text, entry) = fixture(names[which]);
        let ops = ["fadd double", "fsub double", "fmul double", "fdiv double"];
        let mut lines: Vec<String> = text.lines().map(String::from).collect();
        let candidates: Vec<usize> = (0..lines.len()).filter(|&i| ops.iter().any(|o| lines[i].contains(o))).collect();
        for (at, op) in swaps {
            if candidates.is_empty() { break; }
            let i = candidates[at % candidates.len()];
            for o in ops {
                if lines[i].contains(o) {
                    lines[i] = lines[i].replacen(o, ops[op], 1);
                    break;
                }
            }
        }
        let Ok(m) = Module::parse_ir(&lines.join("\n")) else { return Ok(()) };
        let arg = |a| ArgSpec { passing: if names[which].ends_with("inp") || names[which] == "sumsq" { Passing::Boxed } else { Passing::Value }, activity: a, type_tree: vec![] };
        let (act, ret, mode) = if reverse {
            (if names[which].ends_with("inp") || names[which] == "sumsq" { Activity::Duplicated } else { Activity::Active }, Activity::Active, Mode::Reverse)
        } else {
            (Activity::Duplicated, Activity::Duplicated, Mode::Forward)
        };
        let nparams = m.function(&entry).map(|f| f.params().len()).unwrap_or(0);
        let mut args = vec![ghost()];
        args.extend((0..nparams).map(|k| if k == 0 { arg(act) } else { ArgSpec { passing: Passing::Value, activity: Activity::Const, type_tree: vec![] } }));
        let req = Request { entry, mode, width: 1, args, ret, primal_unused: false };
        let _ = oxidase::pipeline::compile(&m.to_bitcode(), &req);
    }

    #[test]
    fn random_requests_on_valid_bitcode(req in request()) {
        let _ = oxidase::pipeline::compile(&valid_bitcode(), &req);
    }

    #[test]
    fn plausible_requests_compile_or_refuse(req in plausible_request()) {
        let _ = oxidase::pipeline::compile(&valid_bitcode(), &req);
    }
}

#[test]
fn bad_requests_through_the_c_abi_are_statuses() {
    use oxidase::ffi::*;
    let bc = valid_bitcode();
    let f64_tree = OxTypeEntry { offset: 0, kind: OX_TT_FLOAT64 };
    let bad_kind = OxArg { passing: 7, activity: OX_ACTIVE, type_tree: &f64_tree, type_tree_len: 1 };
    let req = OxRequest {
        entry: c"f".as_ptr(),
        mode: OX_MODE_REVERSE,
        width: 1,
        args: &bad_kind,
        nargs: 1,
        ret_activity: OX_ACTIVE,
        flags: 0,
    };
    let mut out: OxDerivativeFn = dummy;
    let mut msg = std::ptr::null_mut();
    let status = unsafe { oxidase_compile(bc.as_ptr(), bc.len(), &req, &mut out, &mut msg) };
    assert_eq!(status, OX_ERR_INVALID_REQUEST);
    assert!(!msg.is_null());
    unsafe { oxidase_free_message(msg) };
    // Null pointers are an error too, with a message naming them.
    for (bitcode, request) in [(std::ptr::null(), &req as *const OxRequest), (bc.as_ptr(), std::ptr::null())] {
        let mut msg = std::ptr::null_mut();
        let status = unsafe { oxidase_compile(bitcode, bc.len(), request, &mut out, &mut msg) };
        assert_eq!(status, OX_ERR_INVALID_REQUEST);
        assert!(!msg.is_null());
        let text = unsafe { std::ffi::CStr::from_ptr(msg) }.to_string_lossy().into_owned();
        assert!(text.contains("null"), "{text}");
        unsafe { oxidase_free_message(msg) };
    }
    // Without somewhere to put a failure's reason the call is refused, even for a request
    // that would compile (it used to succeed), and `*out_fn` is left alone.
    let f64_arg = || OxArg { passing: OX_PASS_VALUE, activity: OX_ACTIVE, type_tree: &f64_tree, type_tree_len: 1 };
    let xy = [f64_arg(), f64_arg()]; // f(x, y) of abi_test.ll
    let good = OxRequest { args: xy.as_ptr(), nargs: 2, ..req };
    let mut msg = std::ptr::null_mut();
    assert_eq!(
        unsafe { oxidase_compile(bc.as_ptr(), bc.len(), &good, &mut out, &mut msg) },
        OX_OK,
        "the request is valid"
    );
    let sentinel: OxDerivativeFn = dummy;
    let mut untouched = sentinel;
    let status = unsafe { oxidase_compile(bc.as_ptr(), bc.len(), &good, &mut untouched, std::ptr::null_mut()) };
    assert_eq!(status, OX_ERR_INVALID_REQUEST);
    assert_eq!(untouched as usize, sentinel as usize);
    let _ = ghost();
}

unsafe extern "C" fn dummy(
    _: *const *mut std::ffi::c_void,
    _: *const *mut std::ffi::c_void,
    _: *mut std::ffi::c_void,
    _: *mut std::ffi::c_void,
) -> i32 {
    0
}
