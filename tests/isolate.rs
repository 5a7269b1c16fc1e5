//! A panic inside the engine is an error, and the engine keeps working (`isolate.rs`).
//! Runs without libtest's harness: the parked worker keeps std's panic-hook lock, which
//! the harness would wait for when it restores its hook at the end.

fn main() {
    let e = oxidase::isolate::run(|| -> u32 { panic!("deliberate") }).unwrap_err().to_string();
    assert!(e.contains("engine panicked: deliberate"), "{e}");
    assert!(e.contains("tests/isolate.rs"), "{e}");
    assert_eq!(oxidase::isolate::run(|| 6 * 7).unwrap(), 42);
    // Panics elsewhere still reach the previous hook and unwind as usual.
    assert!(std::panic::catch_unwind(|| panic!("not on a worker")).is_err());
    println!("isolate: a panic on a worker is an error; the next run works");
}
