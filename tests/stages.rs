//! The stages' switches for bug reports, seen from outside (`rust-src/stage.rs`):
//! `OXIDASE_VERIFY=1` verifies after every stage of a release build, and
//! `OXIDASE_PRINT` prints the analyses it names. Both are read from the environment, so
//! the test runs this binary again as a child with them set and reads its stderr.

mod common;

use common::compile_fixture;
use oxidase::request::{Activity::*, Mode};
use std::process::Command;

/// Compiles both derivatives of the Rosenbrock fixture: in the child below, with every
/// stage verified and the analyses printed; in the ordinary run, a plain compile.
#[test]
fn compile_rosenbrock() {
    compile_fixture("rosenbrock", Mode::Reverse, &[Active, Active], Active);
    compile_fixture("rosenbrock", Mode::Forward, &[Duplicated, Duplicated], Duplicated);
}

/// Runs `compile_rosenbrock` alone in a child with `env`; its stderr.
fn child_stderr(env: &[(&str, &str)]) -> String {
    let mut child = Command::new(std::env::current_exe().unwrap());
    child.args(["--exact", "compile_rosenbrock", "--nocapture", "--test-threads=1"]);
    child.env_remove("OXIDASE_PRINT").env_remove("OXIDASE_DUMP_IR").env_remove("OXIDASE_VERIFY");
    child.envs(env.iter().copied());
    let out = child.output().expect("the test binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "the child compiles:\n{stderr}");
    stderr
}

#[test]
fn prints_the_analyses_asked_for() {
    let stderr = child_stderr(&[("OXIDASE_PRINT", "activity,untracked"), ("OXIDASE_VERIFY", "1")]);
    let section = |header: &str| -> Vec<String> {
        let mut lines = stderr.lines().skip_while(|l| !l.starts_with(header)).skip(1);
        lines.by_ref().take_while(|l| !l.starts_with("; ----")).map(str::to_string).collect()
    };
    let activity = section("; ---- oxidase: activity in ");
    // rosenbrock(x, y) = (1 - x)^2 + 100 (y - x^2)^2: its arithmetic is active.
    assert!(activity.iter().any(|l| l.contains("fsub double")), "the activity of rosenbrock:\n{stderr}");
    assert!(activity.iter().any(|l| l.contains("fmul double")), "the activity of rosenbrock:\n{stderr}");
    assert!(activity.iter().all(|l| !l.contains("ret ")), "one line per active value:\n{stderr}");
    assert!(stderr.contains("; ---- oxidase: untracked data in "), "the untracked data of rosenbrock:\n{stderr}");
    assert!(!stderr.contains("; ---- oxidase: prepared ----"), "no IR dump without OXIDASE_DUMP_IR:\n{stderr}");

    let only_activity = child_stderr(&[("OXIDASE_PRINT", "activity")]);
    assert!(only_activity.contains("; ---- oxidase: activity in "), "{only_activity}");
    assert!(!only_activity.contains("untracked data"), "only the analyses named are printed:\n{only_activity}");

    let quiet = child_stderr(&[]);
    assert!(!quiet.contains("; ---- oxidase:"), "nothing is printed by default:\n{quiet}");
}

/// The C ABI's `oxidase_compile_timings` lists the steps of the compiles so far, in
/// order, each with its seconds added up: parsing, every stage that ran, the JIT.
#[test]
fn compile_timings_name_every_step() {
    compile_fixture("rosenbrock", Mode::Reverse, &[Active, Active], Active);
    compile_fixture("rosenbrock", Mode::Forward, &[Duplicated, Duplicated], Duplicated);
    let text = oxidase::ffi::oxidase_compile_timings();
    assert!(!text.is_null(), "the engine makes the text");
    // SAFETY: a C string from the engine, freed once below.
    let lines = unsafe { std::ffi::CStr::from_ptr(text) }.to_string_lossy().into_owned();
    // SAFETY: from the engine, not used after.
    unsafe { oxidase::ffi::oxidase_free_message(text) };
    let steps: Vec<(&str, f64)> = lines
        .lines()
        .map(|l| {
            let (step, seconds) = l.split_once(' ').expect("`step seconds`");
            (step, seconds.parse().expect("seconds"))
        })
        .collect();
    let names: Vec<&str> = steps.iter().map(|(s, _)| *s).collect();
    for step in ["parse", "ingest", "analyze", "forward", "reverse", "finish", "optimize", "jit"] {
        assert!(names.contains(&step), "{step} in\n{lines}");
    }
    assert_eq!(names.first(), Some(&"parse"), "in the order they first ran:\n{lines}");
    assert!(names.iter().position(|s| *s == "ingest") < names.iter().position(|s| *s == "optimize"), "{lines}");
    assert!(steps.iter().all(|(_, s)| s.is_finite() && *s >= 0.0), "{lines}");
    assert!(steps.iter().any(|(s, t)| *s == "jit" && *t > 0.0), "machine code takes time:\n{lines}");
    let mut unique = names.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "each step once, its times added up:\n{lines}");
}
