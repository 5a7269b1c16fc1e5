//! The stages of a compile, and what runs between them. `pipeline::synthesize` turns
//! Julia's module into a derivative in the fixed sequence of `Stage`s below; after each
//! one it calls `Stage::after`, which runs LLVM's verifier when every stage is checked:
//! in debug builds (`cargo test` without `--release`), in this crate's unit tests, and
//! in a release build with `OXIDASE_VERIFY=1`. A stage that leaves broken IR then names
//! itself: `internal error: stage rewrite: generated IR does not verify: ...`.
//!
//! Three stages hand on a function under construction, which the verifier rejects:
//! `Frame` moves the primal's body into the derivative function, whose returns still
//! return the primal's value until `Forward` or `Reverse` rewrites them, and `Analyze`
//! and `Diagnostics` work on that function. They are verified together with the
//! differentiation stage that completes it, whose message names them.
//!
//! Three checks run in every build, because nothing after them would stop a broken
//! module before the JIT: after `Finish` (the synthesized module), after `LaneOrder`
//! when it rewrote something, and after each round of `DeadResults` (`Stage::verify`).
//!
//! For bug reports, two environment variables print what the stages see, on stderr:
//! `OXIDASE_DUMP_IR=1` the module after `Prepare`, after `Finish` and after the last
//! stage (and the untracked-data analysis), `OXIDASE_PRINT=activity,untracked,uses,types,memory,elements` the
//! named analyses of each function the engine differentiates (`Printed`).

use crate::error::{Error, Result};
use crate::llvm::Module;
use std::cell::RefCell;
use std::time::Instant;

/// A stage of `pipeline::synthesize`, in the order they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// `ingest::inline`: the call graph inlined into the entry, the rest dropped.
    Ingest,
    /// `ingest::Inlined::rewrite`: stack slots forwarded, splat calls made explicit,
    /// integer-typed float data reinterpreted (`reinterpret`).
    Rewrite,
    /// Loops in simplified form, the primal's math calls kept scalar.
    Prepare,
    /// `transform::Frame::build`: the derivative function and its arguments; the
    /// primal's body moves into it and the emptied primal is deleted.
    Frame,
    /// Memory and activity analysis (which may retype bit copies of floats).
    Analyze,
    /// `diagnostics::insert`: checks where a derivative would be lost at run time.
    Diagnostics,
    /// `transform::forward`: tangents.
    Forward,
    /// `transform::reverse`: the forward sweep, tape and reverse sweep.
    Reverse,
    /// `transform::calls`: the derivative functions of the callees kept as calls.
    Callees,
    /// `diagnostics::lower`, helpers made internal: the module the engine synthesized,
    /// verified in every build.
    Finish,
    /// LLVM's `default<O2>`.
    Optimize,
    /// `transform::lane_order`: lane reversals folded.
    LaneOrder,
    /// `transform::dead_results`: unused results dropped.
    DeadResults,
    /// `llvm::passes::CLEAN_UP` after the two rewrites.
    CleanUp,
}

impl Stage {
    /// The stage's name in messages and dumps.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Ingest => "ingest",
            Stage::Rewrite => "rewrite",
            Stage::Prepare => "prepare",
            Stage::Frame => "frame",
            Stage::Analyze => "analyze",
            Stage::Diagnostics => "diagnostics",
            Stage::Forward => "forward",
            Stage::Reverse => "reverse",
            Stage::Callees => "callees",
            Stage::Finish => "finish",
            Stage::Optimize => "optimize",
            Stage::LaneOrder => "lane-order",
            Stage::DeadResults => "dead-results",
            Stage::CleanUp => "clean-up",
        }
    }

    /// Whether the stage leaves a module the verifier can judge (see the module docs).
    fn leaves_whole_functions(self) -> bool {
        !matches!(self, Stage::Frame | Stage::Analyze | Stage::Diagnostics)
    }

    /// The stage in messages: with the stages checked together with it.
    fn described(self) -> String {
        match self {
            Stage::Forward | Stage::Reverse => {
                format!("stage {} (or frame, analyze, diagnostics before it)", self.name())
            }
            _ => format!("stage {}", self.name()),
        }
    }

    /// Runs the verifier on `m`, which this stage just changed; its report becomes an
    /// internal error naming the stage.
    pub fn verify(self, m: &Module) -> Result<()> {
        m.verify().map_err(|e| Error::Internal(format!("{}: generated IR does not verify: {e}", self.described())))
    }

    /// What runs after the stage: `verify` when every stage is checked
    /// (`verify_every_stage`) and the stage leaves whole functions.
    pub fn after(self, m: &Module) -> Result<()> {
        if verify_every_stage() && self.leaves_whole_functions() {
            self.verify(m)
        } else {
            Ok(())
        }
    }

    /// Runs `work` as this stage on `m`, then `after`; both count as the stage's time
    /// (`timed`).
    pub fn run<T>(self, m: &Module, work: impl FnOnce() -> Result<T>) -> Result<T> {
        timed(self.name(), || {
            let out = work()?;
            self.after(m)?;
            Ok(out)
        })
    }
}

/// Whether the verifier runs after every stage: debug builds, unit tests, and
/// `OXIDASE_VERIFY=1`. A release build otherwise verifies only where the module docs
/// say (the verifier costs about as much as a stage).
pub fn verify_every_stage() -> bool {
    cfg!(debug_assertions) || cfg!(test) || std::env::var_os("OXIDASE_VERIFY").is_some_and(|v| v == "1")
}

thread_local! {
    /// The steps of the compile running on this thread, with their wall-clock seconds,
    /// in the order each first ran.
    static CLOCK: RefCell<Vec<(&'static str, f64)>> = const { RefCell::new(Vec::new()) };
}

/// Runs `work`, adding its wall-clock time to this thread's compile under `step` (a
/// stage's name, or `parse`, `jit`...). Steps do not nest: each second counts once.
pub fn timed<T>(step: &'static str, work: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = work();
    let seconds = start.elapsed().as_secs_f64();
    CLOCK.with(|c| {
        let mut c = c.borrow_mut();
        match c.iter_mut().find(|(s, _)| *s == step) {
            Some(entry) => entry.1 += seconds,
            None => c.push((step, seconds)),
        }
    });
    out
}

/// This thread's steps since the last call (which it clears).
pub fn take_timings() -> Vec<(&'static str, f64)> {
    CLOCK.with(|c| std::mem::take(&mut *c.borrow_mut()))
}

/// With `OXIDASE_DUMP_IR` set, prints the module as it is after `stage`.
pub fn dump(stage: &str, m: &Module) {
    if dumping() {
        eprintln!("; ---- oxidase: {stage} ----\n{}", m.print());
    }
}

fn dumping() -> bool {
    std::env::var_os("OXIDASE_DUMP_IR").is_some()
}

/// An analysis whose text printer `OXIDASE_PRINT` can ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Printed {
    /// `analysis::activity::Activity::print`: the active instructions (`activity`).
    Activity,
    /// `analysis::untracked::Untracked::print`: derivative data the engine lost track
    /// of (`untracked`; also printed with `OXIDASE_DUMP_IR`), once per round of the
    /// activity analysis.
    Untracked,
    /// `analysis::uses::Uses::print`: what the reverse sweep's forward half pushes and
    /// where the reverse sweep gets each value its partials need (`uses`).
    Uses,
    /// `analysis::types::Types::print`: what each value holds, byte by byte (`types`).
    Types,
    /// `analysis::memory::Memory::print`: the pointers with a shadow and what the memory
    /// they point to holds (`memory`), once per round of the analysis.
    Memory,
    /// `analysis::elements::Elements::print`: the loads of every field of one array
    /// element whose adjoints the reverse sweep adds as one vector (`elements`).
    Elements,
}

impl Printed {
    /// The analysis's name in `OXIDASE_PRINT` and in the printed header.
    pub fn name(self) -> &'static str {
        match self {
            Printed::Activity => "activity",
            Printed::Untracked => "untracked data",
            Printed::Uses => "uses plan",
            Printed::Types => "type analysis",
            Printed::Memory => "shadow memory",
            Printed::Elements => "element loads",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Printed::Activity => "activity",
            Printed::Untracked => "untracked",
            Printed::Uses => "uses",
            Printed::Types => "types",
            Printed::Memory => "memory",
            Printed::Elements => "elements",
        }
    }

    /// Whether this analysis is printed: `OXIDASE_PRINT` lists it (comma-separated).
    pub fn wanted(self) -> bool {
        (self == Printed::Untracked && dumping())
            || std::env::var("OXIDASE_PRINT").is_ok_and(|list| list.split(',').any(|k| k.trim() == self.key()))
    }

    /// Prints the analysis of `function` when it is `wanted`, and hands it to a test
    /// that `collect`s this analysis; `text` runs only then.
    pub fn print(self, function: &str, text: impl FnOnce() -> String) {
        let print = self.wanted();
        let collecting = COLLECTED.with(|c| c.borrow().as_ref().is_some_and(|(p, _)| *p == self));
        if !print && !collecting {
            return;
        }
        let text = text();
        if print {
            eprintln!("; ---- oxidase: {} in {function} ----\n{text}", self.name());
        }
        COLLECTED.with(|c| {
            if let Some((_, v)) = c.borrow_mut().as_mut() {
                v.push(text);
            }
        });
    }
}

thread_local! {
    /// The analysis a test collects on this thread, and its texts so far.
    static COLLECTED: std::cell::RefCell<Option<(Printed, Vec<String>)>> = const { std::cell::RefCell::new(None) };
}

/// Runs `f` and returns, with its result, the texts of analysis `printed` made on this
/// thread meanwhile (for golden tests: the entry's, then its callees').
pub fn collect<T>(printed: Printed, f: impl FnOnce() -> T) -> (T, Vec<String>) {
    COLLECTED.with(|c| *c.borrow_mut() = Some((printed, Vec::new())));
    let r = f();
    let texts = COLLECTED.with(|c| c.borrow_mut().take()).map(|(_, v)| v).unwrap_or_default();
    (r, texts)
}

#[cfg(test)]
mod tests {
    use super::Stage;
    use crate::error::Error;
    use crate::llvm::{Context, OwnedModule};

    /// A stage that leaves a terminator in the middle of a block is named in the error.
    #[test]
    fn a_broken_stage_names_itself() {
        let ctx = Context::create();
        let m = OwnedModule::parse_ir(
            &ctx,
            "define double @f(double %x) {\n  %y = fadd double %x, %x\n  ret double %y\n}\n",
        )
        .expect("parses");
        assert!(Stage::Rewrite.after(&m).is_ok(), "the module verifies before the stage");
        let broken = Stage::Rewrite.run(&m, || {
            let f = m.function("f").unwrap();
            let add = f.entry_block().unwrap().instructions()[0];
            let b = m.builder();
            b.before(add)?;
            b.ret(f.params()[0])?;
            Ok(())
        });
        match broken {
            Err(Error::Internal(msg)) => {
                assert!(msg.starts_with("stage rewrite: generated IR does not verify: "), "{msg}");
                assert!(msg.contains("Terminator found in the middle of a basic block"), "{msg}");
            }
            other => panic!("expected an internal error naming the stage, got {other:?}"),
        }
        // The stages that leave the derivative function under construction are named
        // with the stage that completes it.
        assert!(Stage::Frame.after(&m).is_ok(), "a function under construction is not judged");
        match Stage::Reverse.verify(&m) {
            Err(Error::Internal(msg)) => assert!(
                msg.starts_with(
                    "stage reverse (or frame, analyze, diagnostics before it): generated IR does not verify"
                ),
                "{msg}"
            ),
            other => panic!("expected an internal error naming the stages, got {other:?}"),
        }
    }
}
