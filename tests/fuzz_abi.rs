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

fn activity() -> impl Strategy<Value = Activity> {
    prop_oneof![Just(Activity::Const), Just(Activity::Active), Just(Activity::Duplicated)]
}

fn arg() -> impl Strategy<Value = ArgSpec> {
    let passing = prop_oneof![Just(Passing::Ghost), Just(Passing::Value), Just(Passing::Boxed)];
    let leaf =
        prop_oneof![Just(Leaf::F64), Just(Leaf::F32), Just(Leaf::Integer), Just(Leaf::Pointer), Just(Leaf::ArrayF64)];
    (passing, activity(), proptest::collection::vec((0u64..64, leaf), 0..3))
        .prop_map(|(passing, activity, type_tree)| ArgSpec { passing, activity, type_tree })
}

fn request() -> impl Strategy<Value = Request> {
    let mode = prop_oneof![Just(Mode::Forward), Just(Mode::Reverse)];
    let entry = prop_oneof![Just("f".to_string()), "[a-z]{0,8}"];
    (entry, mode, 0u32..4, proptest::collection::vec(arg(), 0..5), activity())
        .prop_map(|(entry, mode, width, args, ret)| Request { entry, mode, width, args, ret })
}

/// Two float parameters, as `f` in the fixture has, with random activities and trees:
/// requests that get past validation and exercise the whole pipeline.
fn plausible_request() -> impl Strategy<Value = Request> {
    let mode = prop_oneof![Just(Mode::Forward), Just(Mode::Reverse)];
    let float = || {
        (activity(), prop_oneof![Just(vec![(0, Leaf::F64)]), Just(vec![]), Just(vec![(0, Leaf::F32)])])
            .prop_map(|(activity, type_tree)| ArgSpec { passing: Passing::Value, activity, type_tree })
    };
    (mode, 1u32..5, float(), float(), activity()).prop_map(|(mode, width, a, b, ret)| Request {
        entry: "f".into(),
        mode,
        width,
        args: vec![a, b],
        ret,
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
    fn mutated_bitcode_never_crashes(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
                                     cut in any::<usize>(), req in request()) {
        let mut bc = valid_bitcode();
        for (at, byte) in flips {
            let n = bc.len();
            bc[at % n] ^= byte;
        }
        bc.truncate(cut % (bc.len() + 1));
        let _ = oxidase::pipeline::compile(&bc, &req);
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
    };
    let mut out: OxDerivativeFn = dummy;
    let mut msg = std::ptr::null_mut();
    let status = unsafe { oxidase_compile(bc.as_ptr(), bc.len(), &req, &mut out, &mut msg) };
    assert_eq!(status, OX_ERR_INVALID_REQUEST);
    assert!(!msg.is_null());
    unsafe { oxidase_free_message(msg) };
    // Null pointers are an error too.
    let status = unsafe { oxidase_compile(std::ptr::null(), 0, &req, &mut out, std::ptr::null_mut()) };
    assert_eq!(status, OX_ERR_INVALID_REQUEST);
    let status = unsafe { oxidase_compile(bc.as_ptr(), bc.len(), std::ptr::null(), &mut out, std::ptr::null_mut()) };
    assert_eq!(status, OX_ERR_INVALID_REQUEST);
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
