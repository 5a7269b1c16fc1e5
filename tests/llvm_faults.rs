//! A fault inside LLVM never ends the process. The child that reads bitcode first
//! (`llvm::sandbox`) is made to crash, abort, hit a fatal error, run out of memory,
//! panic and hang (`OXIDASE_INJECT_CHECK`); each is a `BadIr` error here and the next
//! compile works. Then an LLVM fatal error on the compile worker (`OXIDASE_INJECT_FATAL`)
//! is an `OX_ERR_INTERNAL` status through the C ABI, later compiles are refused, and a
//! derivative compiled before still runs. One test: the injections are process-wide.

use oxidase::error::Error;
use oxidase::ffi::*;
use oxidase::llvm::{Context, OwnedModule};
use oxidase::request::{Activity, ArgSpec, Layout, Mode, Passing, Request};
use std::ffi::CStr;

fn float(activity: Activity) -> ArgSpec {
    ArgSpec { passing: Passing::Value, activity, type_tree: vec![(0, Layout::F64)] }
}

fn request(mode: Mode) -> Request {
    let (act, ret) = match mode {
        Mode::Reverse => (Activity::Active, Activity::Active),
        Mode::Forward => (Activity::Duplicated, Activity::Duplicated),
    };
    Request {
        entry: "f".into(),
        mode,
        width: 1,
        args: vec![float(act), float(act)],
        ret,
        primal_unused: false,
        writer_bitcode: false,
    }
}

/// Compiles through the C ABI: the status and the message.
fn c_compile(bc: &[u8], mode: u32, act: u32) -> (i32, String, Option<OxDerivativeFn>) {
    let tree = OxTypeEntry { offset: 0, kind: OX_TT_FLOAT64, depth: 0 };
    let arg = OxArg { passing: OX_PASS_VALUE, activity: act, type_tree: &tree, type_tree_len: 1 };
    let args = [arg, OxArg { passing: OX_PASS_VALUE, activity: act, type_tree: &tree, type_tree_len: 1 }];
    let req =
        OxRequest { entry: c"f".as_ptr(), mode, width: 1, args: args.as_ptr(), nargs: 2, ret_activity: act, flags: 0 };
    let mut out: Option<OxDerivativeFn> = None;
    let mut msg = std::ptr::null_mut();
    let status =
        unsafe { oxidase_compile(bc.as_ptr(), bc.len(), &req, &mut out as *mut _ as *mut OxDerivativeFn, &mut msg) };
    let text =
        if msg.is_null() { String::new() } else { unsafe { CStr::from_ptr(msg) }.to_string_lossy().into_owned() };
    unsafe { oxidase_free_message(msg) };
    (status, text, out)
}

#[test]
fn llvm_faults_are_errors_and_the_process_goes_on() {
    let ctx = Context::create();
    let bc = OwnedModule::parse_ir(&ctx, include_str!("c/abi_test.ll")).unwrap().to_bitcode();
    let req = request(Mode::Reverse);
    for (inject, expected) in [
        ("segv", "signal 11, SIGSEGV"),
        ("abort", "signal 6, SIGABRT"),
        ("fatal", "LLVM fatal error: injected fatal error"),
        ("oom", "LLVM ran out of memory: injected"),
        ("panic", "injected panic in the bitcode check"),
        ("hang", "did not finish within 300 ms, twice"),
    ] {
        std::env::set_var("OXIDASE_INJECT_CHECK", inject);
        // Short for the hang; ample for the rest (a panic outside Julia runs the default
        // hook, which may symbolize a backtrace).
        std::env::set_var("OXIDASE_CHECK_TIMEOUT_MS", if inject == "hang" { "300" } else { "20000" });
        match oxidase::pipeline::compile(&bc, &req) {
            Err(Error::BadIr(m)) => assert!(m.contains(expected), "{inject}: {m}"),
            other => panic!("{inject}: {:?}", other.map(|_| ())),
        }
    }
    std::env::remove_var("OXIDASE_INJECT_CHECK");
    std::env::remove_var("OXIDASE_CHECK_TIMEOUT_MS");

    // The same bytes compile now, and the derivative is right:
    // f(x, y) = x sin y + e^x / y; df/dx = sin y + e^x / y.
    let (status, msg, d) = c_compile(&bc, OX_MODE_REVERSE, OX_ACTIVE);
    assert_eq!(status, OX_OK, "{msg}");
    let d = d.unwrap();
    let (mut x, mut y, mut dx, mut dy, mut ret, mut seed) = (0.5f64, 2.0f64, 0.0f64, 0.0f64, 0.0f64, 1.0f64);
    let call = |x: &mut f64, y: &mut f64, dx: &mut f64, dy: &mut f64, ret: &mut f64, seed: &mut f64| unsafe {
        let args = [x as *mut f64 as *mut _, y as *mut f64 as *mut _];
        let shadows = [dx as *mut f64 as *mut _, dy as *mut f64 as *mut _];
        d(args.as_ptr(), shadows.as_ptr(), ret as *mut f64 as *mut _, seed as *mut f64 as *mut _)
    };
    assert_eq!(call(&mut x, &mut y, &mut dx, &mut dy, &mut ret, &mut seed), OX_OK);
    let expected_dx = 2.0f64.sin() + 0.5f64.exp() / 2.0;
    assert!((dx - expected_dx).abs() < 1e-12, "{dx} vs {expected_dx}");

    // An LLVM fatal error on the compile worker: an internal error, not an exit.
    std::env::set_var("OXIDASE_INJECT_FATAL", "1");
    let (status, msg, _) = c_compile(&bc, OX_MODE_FORWARD, OX_DUPLICATED);
    std::env::remove_var("OXIDASE_INJECT_FATAL");
    assert_eq!(status, OX_ERR_INTERNAL, "{msg}");
    assert!(msg.contains("LLVM fatal error: OXIDASE_INJECT_FATAL is set"), "{msg}");
    // LLVM's state is unknown after it: new compiles are refused...
    let (status, msg, _) = c_compile(&bc[..], OX_MODE_FORWARD, OX_DUPLICATED);
    assert_eq!(status, OX_ERR_INTERNAL, "{msg}");
    assert!(msg.contains("an earlier compile stopped LLVM"), "{msg}");
    // ...and what was compiled before still works (and is still found in the cache).
    let (status, _, again) = c_compile(&bc, OX_MODE_REVERSE, OX_ACTIVE);
    assert_eq!(status, OX_OK);
    assert_eq!(again.map(|f| f as usize), Some(d as usize));
    dx = 0.0;
    assert_eq!(call(&mut x, &mut y, &mut dx, &mut dy, &mut ret, &mut seed), OX_OK);
    assert!((dx - expected_dx).abs() < 1e-12);
}
