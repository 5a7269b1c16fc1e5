//! After optimization: calls whose results nobody reads. A reverse derivative's forward
//! sweep often computes a value only to drop it, and LLVM keeps the work when it sits
//! behind a call:
//!
//! - `sum(abs2, x)` reduces by pairwise recursion. The callee's augmented forward
//!   function `h.aug` still adds up the partial sums, which the derivative never
//!   returns: dead-argument elimination counts the recursive calls' results as used,
//!   since they feed an `fadd`. A call of `h.aug` whose result is unused now calls
//!   `h.aug.noret`, a copy of `h.aug` returning poison, in which dead-code elimination
//!   deletes what only fed the result; the recursive calls inside it lose their uses
//!   and call `h.aug.noret` in turn.
//! - `sum(sin, x)` calls Base's `sin` in the forward sweep. LLVM keeps an unused call of
//!   it because it may throw a `DomainError`. The derivative must still throw where
//!   the primal does, so an unused call of one of Base's elementary functions becomes
//!   the test of its argument: the function is called only outside the range where it
//!   cannot throw (`sin` of a non-finite number, `log` of a negative one), which is the
//!   `Domain` of its row in the math table (`rules::math`).
//!
//! The two repeat until nothing changes.

use crate::error::{Error, Result};
use crate::llvm::{passes, Built, Call, Function, Module, Opcode, RealPredicate};
use crate::rules::math::{lookup, Callee, Domain};
use std::collections::HashMap;

/// Name prefix of the domain checks.
const CHECK_PREFIX: &str = "ox.check.";

/// Rewrites unused calls as above. Returns whether anything changed; then
/// `passes::CLEAN_UP` inlines the domain checks and deletes what only fed the
/// dropped results.
pub fn drop_unused_results(m: &Module) -> Result<bool> {
    let mut noret: HashMap<Function, Function> = HashMap::new();
    let mut checks: HashMap<Function, Function> = HashMap::new();
    let mut any = false;
    loop {
        let mut changed = false;
        for f in m.functions() {
            let name = f.name();
            if name.ends_with(".aug") && !f.return_type().is_void() {
                for call in unused_calls(f).into_iter().map(Call::as_value) {
                    let copy = match noret.get(&f) {
                        Some(&copy) => copy,
                        None => {
                            let copy = returning_poison(m, f, &format!("{name}.noret"))?;
                            noret.insert(f, copy);
                            copy
                        }
                    };
                    call.set_operand(call.num_operands() - 1, copy.as_value());
                    changed = true;
                }
            } else if name.starts_with(crate::names::JULIA_MATH_PREFIX) {
                let Some(Callee::Math(math)) = lookup(&name) else { continue };
                let domain = math.domain;
                // (The check's own call of `f` is unused too, and stays.)
                let in_check =
                    |call: Call| call.as_value().parent_block().parent_function().name().starts_with(CHECK_PREFIX);
                for site in unused_calls(f).into_iter().filter(|&c| !in_check(c)) {
                    let call = site.as_value();
                    if domain == Domain::Everywhere {
                        call.erase();
                    } else {
                        let check = match checks.get(&f) {
                            Some(&check) => check,
                            None => {
                                let check = emit_check(m, f, domain)?;
                                checks.insert(f, check);
                                check
                            }
                        };
                        let b = m.builder();
                        b.before(call)?;
                        b.call(check, &(0..site.call_arg_count()).map(|k| call.operand(k)).collect::<Vec<_>>())?;
                        call.erase();
                    }
                    changed = true;
                }
            }
        }
        if !changed {
            return Ok(any);
        }
        any = true;
        crate::stage::Stage::DeadResults.verify(m)?;
        passes::run(m, "function(adce)").map_err(Error::Internal)?;
    }
}

/// Calls of `f` (as the callee) whose result has no use.
fn unused_calls(f: Function) -> Vec<Call> {
    f.users()
        .into_iter()
        .filter(|u| u.opcode() == Opcode::LLVMCall)
        .filter_map(|u| u.as_call())
        .filter(|c| c.called_operand() == f.as_value() && c.as_value().users().is_empty())
        .collect()
}

/// A copy of `f` returning poison.
fn returning_poison<'ctx>(m: &'ctx Module, f: Function<'ctx>, name: &str) -> Built<Function<'ctx>> {
    let g = m.clone_function(f, name)?;
    let poison = m.poison(f.return_type());
    for bb in g.blocks() {
        if let Some(ret) = bb.terminator().filter(|t| t.opcode() == Opcode::LLVMRet) {
            ret.set_operand(0, poison);
        }
    }
    Ok(g)
}

/// `void ox.check.f(args...)`: calls `f` when its first argument is outside `domain`
/// (NaN included), inlined into its callers by the clean-up's `always-inline`.
fn emit_check<'ctx>(m: &'ctx Module, f: Function<'ctx>, domain: Domain) -> Built<Function<'ctx>> {
    let params: Vec<_> = f.params().iter().map(|p| p.ty()).collect();
    let check = m.add_inline_helper(&format!("{CHECK_PREFIX}{}", f.name()), m.fn_type(m.void(), &params));
    let (entry, slow, done) =
        (m.append_block(check, "entry"), m.append_block(check, "outside"), m.append_block(check, "done"));
    let b = m.builder();
    b.at_end(entry);
    let x = check.params()[0];
    let ty = x.ty();
    let c = |v: f64| m.const_real(ty, v);
    let fabs = || b.intrinsic("llvm.fabs", &[x]).map(|c| c.as_value());
    let inside = match domain {
        Domain::Everywhere => m.const_int(m.int(1), 1),
        Domain::Finite => b.fcmp(RealPredicate::LLVMRealOLT, fabs()?, c(f64::INFINITY))?,
        Domain::NonNegative => b.fcmp(RealPredicate::LLVMRealOGE, x, c(0.0))?,
        Domain::AboveMinusOne => b.fcmp(RealPredicate::LLVMRealOGE, x, c(-1.0))?,
        Domain::UnitInterval => b.fcmp(RealPredicate::LLVMRealOLE, fabs()?, c(1.0))?,
    };
    b.cond_br(inside, done, slow)?;
    b.at_end(slow);
    b.call(f, &check.params())?.match_call_conv();
    b.br(done)?;
    b.at_end(done);
    b.ret_void()?;
    Ok(check)
}

#[cfg(test)]
mod tests {
    use crate::llvm::{Context, Module, OwnedModule};

    /// The rewrite and the pipeline's clean-up after it.
    fn run(m: &Module) {
        if super::drop_unused_results(m).unwrap() {
            crate::llvm::passes::run(m, crate::llvm::passes::CLEAN_UP).unwrap();
        }
    }

    /// A pairwise reduction of `sin` over an array, as the engine's `h.aug` computes it,
    /// with a side effect (the tape) that must stay.
    const REDUCTION: &str = r#"
declare void @jl_throw(ptr) noreturn
declare double @llvm.sin.f64(double)
declare double @llvm.fabs.f64(double)

define internal fastcc double @ox.julia.sin.julia_sin_1(double %x) noinline {
  %a = call double @llvm.fabs.f64(double %x)
  %inf = fcmp oeq double %a, 0x7FF0000000000000
  br i1 %inf, label %throw, label %ok
throw:
  call void @jl_throw(ptr null)
  unreachable
ok:
  %s = call double @llvm.sin.f64(double %x)
  ret double %s
}

define internal fastcc double @h.aug(ptr %p, i64 %n, ptr %tape) {
entry:
  %small = icmp slt i64 %n, 2
  br i1 %small, label %leaf, label %split
leaf:
  %v = load double, ptr %p
  %s = call fastcc double @ox.julia.sin.julia_sin_1(double %v)
  store i64 %n, ptr %tape
  ret double %s
split:
  %h = ashr i64 %n, 1
  %a = call fastcc double @h.aug(ptr %p, i64 %h, ptr %tape)
  %q = getelementptr double, ptr %p, i64 %h
  %r = sub i64 %n, %h
  %b = call fastcc double @h.aug(ptr %q, i64 %r, ptr %tape)
  %c = fadd double %a, %b
  ret double %c
}
"#;

    /// The printed definition of function `name`.
    fn body(text: &str, name: &str) -> String {
        let head = format!("@{name}(");
        let start = text
            .match_indices("define ")
            .map(|(i, _)| i)
            .find(|&i| text[i..].lines().next().is_some_and(|l| l.contains(&head)))
            .unwrap_or_else(|| panic!("no {name} in\n{text}"));
        text[start..].split("\n}").next().unwrap().to_string()
    }

    /// The reduction called from `top`, which returns `returned` (`%u`, the call's
    /// result, or a constant), after the rewrite: the module's text.
    fn rewritten(returned: &str) -> String {
        let ir = format!("{REDUCTION}\ndefine double @top(ptr %p, i64 %n, ptr %t) {{\n  %u = call fastcc double @h.aug(ptr %p, i64 %n, ptr %t)\n  ret double {returned}\n}}\n");
        let ctx = Context::create();
        let m = OwnedModule::parse_ir(&ctx, &ir).unwrap();
        run(&m);
        m.verify().unwrap();
        m.print()
    }

    #[test]
    fn unused_result_calls_a_copy_returning_poison() {
        let text = rewritten("0.0");
        assert!(body(&text, "top").contains("@h.aug.noret("), "{text}");
        let noret = body(&text, "h.aug.noret");
        // The recursion now calls the copy, the partial sums are gone, the tape stays.
        assert!(noret.contains("call fastcc double @h.aug.noret(") && !noret.contains("@h.aug("), "{noret}");
        assert!(!noret.contains("fadd") && noret.contains("store i64"), "{noret}");
        // `sin` is called only when its argument is not finite (it would throw).
        assert!(noret.contains("@llvm.fabs.f64") && noret.contains("0x7FF0000000000000"), "{noret}");
        assert!(noret.contains("call fastcc double @ox.julia.sin.julia_sin_1("), "{noret}");
        // Nothing calls the original any more.
        assert!(!text.contains("define internal fastcc double @h.aug("), "{text}");
    }

    #[test]
    fn used_result_is_kept() {
        let text = rewritten("%u");
        assert!(
            !text.contains("h.aug.noret") && !text.contains("ox.check") && body(&text, "h.aug").contains("fadd"),
            "{text}"
        );
    }

    #[test]
    fn unused_exp_is_deleted_and_log_checked() {
        let ctx = Context::create();
        let m = OwnedModule::parse_ir(
            &ctx,
            r#"
define internal fastcc double @ox.julia.exp.julia_exp_1(double %x) noinline {
  call void @side()
  ret double %x
}
define internal fastcc double @ox.julia.log.julia_log_2(double %x) noinline {
  call void @side()
  ret double %x
}
declare void @side()
define void @top(double %x) {
  %e = call fastcc double @ox.julia.exp.julia_exp_1(double %x)
  %l = call fastcc double @ox.julia.log.julia_log_2(double %x)
  ret void
}
"#,
        )
        .unwrap();
        run(&m);
        m.verify().unwrap();
        let top = body(&m.print(), "top");
        assert!(!top.contains("julia_exp_1"), "{top}");
        // `log` is called only outside x ≥ 0, in the check's block.
        let outside = top.split("outside").nth(2).unwrap_or_else(|| panic!("no check in {top}"));
        assert!(top.contains("fcmp ult double %x, 0.0"), "{top}");
        assert!(outside.contains("call fastcc double @ox.julia.log.julia_log_2(double %x)"), "{top}");
    }
}
