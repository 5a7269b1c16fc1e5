//! Derivatives synthesized on several threads at once: every one is right, and none
//! crashes. Julia's calls compile one at a time (`cache.rs`), but the pipeline is a Rust
//! API the tests call on parallel threads, and LLVM's target machine, shared by every
//! pass pipeline, is not safe to use from two threads at once (it crashed here, in
//! `TargetLoweringBase::getTypeConversion`); `llvm::passes` serialises its use.

mod common;
use common::*;
use oxidase::request::{Activity::*, Mode};

/// Rosenbrock's gradient at (a, b) by hand: f = (1 - x)² + 100 (y - x²)².
fn rosenbrock_gradient(x: f64, y: f64) -> [f64; 2] {
    [-2.0 * (1.0 - x) - 400.0 * x * (y - x * x), 200.0 * (y - x * x)]
}

/// Synthesizes the reverse derivative of `comprehension(x) = sum([2v for v in x])`
/// (its array code meets the target's type legalization in LLVM's optimizer, where two
/// threads raced).
fn synthesize_comprehension() {
    synthesize_fixture("types_comprehension", vec![ghost(), array_arg(Duplicated)]).expect("derivative built");
}

#[test]
fn compiles_on_four_threads_at_once() {
    let threads: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                for k in 0..6 {
                    synthesize_comprehension();
                    let d = compile_fixture("rosenbrock", Mode::Reverse, &[Active, Active], Active);
                    let (x, y) = (0.5 + t as f64, -1.0 + k as f64);
                    let (_, g) = call_reverse(d, &[x, y]);
                    let want = rosenbrock_gradient(x, y);
                    assert_close(g[0], want[0], 1e-12, "∂f/∂x");
                    assert_close(g[1], want[1], 1e-12, "∂f/∂y");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a compiling thread panicked");
    }
}
