//! The walks the extraction (`src/extract.jl`) makes over Julia's module of a call graph
//! before it writes the bitcode: which functions the entry may call, what their names
//! say (a function printing a value, a nested differentiation, Base's elementary
//! functions of floats alone), which bodies nothing reaches, and which objects the
//! runtime's generic calls name. Done here, compiled ahead of time, rather than in
//! Julia, whose package code Julia 1.5 compiles anew in every session: these walks cost
//! a session's first gradients some 40 ms of that compilation. The module is Julia's
//! (LLVM 9 in Julia 1.5), reached through `llvm::julia_llvm`.

use crate::llvm::julia_llvm::{JValue, JuliaLlvm};
use std::collections::HashSet;

/// The instructions of `function`, block after block; with `skip_throwing`, not those
/// of the blocks that end in `unreachable` (they build an error and throw it).
fn instructions_of(llvm: &JuliaLlvm, function: JValue, skip_throwing: bool) -> Vec<JValue> {
    let mut found = Vec::new();
    for block in llvm.blocks(function) {
        if skip_throwing && llvm.ends_unreachable(block) {
            continue;
        }
        found.extend(llvm.instructions(block));
    }
    found
}

/// The functions `roots` may call, transitively, on a path that returns (calls in
/// blocks that end in `unreachable` build an error and throw it), the roots first. The
/// calls of a function whose name starts with one of `stop_prefixes` are not followed
/// (a nested differentiation's body, which its rule replaces). A call through a cast of
/// the function (`bitcast (@f to ...)`, a `japi1_` call) counts.
pub fn called_functions(llvm: &JuliaLlvm, roots: &[JValue], stop_prefixes: &[String]) -> Vec<JValue> {
    let mut seen: Vec<JValue> = roots.to_vec();
    let mut known: HashSet<JValue> = roots.iter().copied().collect();
    let mut work: Vec<JValue> = roots.to_vec();
    while let Some(function) = work.pop() {
        for i in instructions_of(llvm, function, true) {
            if !llvm.is_call(i) {
                continue;
            }
            let mut callee = llvm.called_value(i);
            while llvm.is_constant_expr(callee) {
                callee = llvm.operand(callee, 0);
            }
            if llvm.is_function(callee) && known.insert(callee) {
                seen.push(callee);
                let name = llvm.name(callee);
                if !stop_prefixes.iter().any(|p| name.starts_with(p.as_str())) {
                    work.push(callee);
                }
            }
        }
    }
    seen
}

/// What the names of the functions a root calls say (`names_called`).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct NamesCalled {
    /// Per substring asked for, whether some called function's name holds it.
    pub substrings: Vec<bool>,
    /// Per prefix asked for, whether some called function's name starts with it.
    pub prefixes: Vec<bool>,
    /// The called functions, other than the first root, whose name starts with the float
    /// prefix and that take and return floats of one type alone, with that type's kind
    /// (`julia_llvm::DOUBLE_KIND` or `FLOAT_KIND`).
    pub float_functions: Vec<(JValue, i32)>,
}

/// The patterns `names_called` looks for in the called functions' names.
#[derive(Debug, Default)]
pub struct NamePatterns {
    /// Prefixes of the functions whose calls are not followed (`called_functions`).
    pub stop_prefixes: Vec<String>,
    /// Substrings looked for (the names of functions declared inactive: Julia names a
    /// method's code after its function, `julia_string_42`, `japi1_print_to_string_7`).
    pub substrings: Vec<String>,
    /// Prefixes looked for.
    pub prefixes: Vec<String>,
    /// The prefix of the functions whose float signature is reported (Julia's name for a
    /// method's specialized code, `julia_`).
    pub float_prefix: String,
}

/// Which of `patterns` the names of the functions `roots` call hold (`called_functions`),
/// and the called functions of floats alone.
pub fn names_called(llvm: &JuliaLlvm, roots: &[JValue], patterns: &NamePatterns) -> NamesCalled {
    let mut found = NamesCalled {
        substrings: vec![false; patterns.substrings.len()],
        prefixes: vec![false; patterns.prefixes.len()],
        float_functions: Vec::new(),
    };
    for f in called_functions(llvm, roots, &patterns.stop_prefixes) {
        let name = llvm.name(f);
        for (hit, s) in found.substrings.iter_mut().zip(&patterns.substrings) {
            *hit |= name.contains(s.as_str());
        }
        for (hit, p) in found.prefixes.iter_mut().zip(&patterns.prefixes) {
            *hit |= name.starts_with(p.as_str());
        }
        if Some(&f) != roots.first() && !patterns.float_prefix.is_empty() && name.starts_with(&patterns.float_prefix) {
            let kind = llvm.float_kind(f);
            if kind != 0 {
                found.float_functions.push((f, kind));
            }
        }
    }
    found
}

/// Deletes the bodies of the functions in `module` that neither `root` nor a function
/// whose name starts with one of `kept_prefixes` (those the engine finds by name:
/// `oxidase.latest.`, `oxidase.invoke.`, rule calls) can reach through the operands of
/// its instructions (calls, and functions passed as values, through at most four
/// constant expressions), nor a global's initializer. Julia's passes would go over them
/// for nothing, and the engine drops them anyway. Returns how many bodies it deleted.
pub fn drop_unreachable(llvm: &JuliaLlvm, module: JValue, root: JValue, kept_prefixes: &[String]) -> usize {
    let mut live: HashSet<JValue> = HashSet::new();
    let mut work: Vec<JValue> = Vec::new();
    reach(llvm, &mut live, &mut work, root, 0);
    let functions = llvm.functions(module);
    for &f in &functions {
        let name = llvm.name(f);
        if kept_prefixes.iter().any(|p| name.starts_with(p.as_str())) {
            reach(llvm, &mut live, &mut work, f, 0);
        }
    }
    for g in llvm.globals(module) {
        let init = llvm.initializer(g);
        if !init.is_null() {
            reach(llvm, &mut live, &mut work, init, 0);
        }
    }
    while let Some(f) = work.pop() {
        for i in instructions_of(llvm, f, false) {
            for op in llvm.operands(i) {
                reach(llvm, &mut live, &mut work, op, 0);
            }
        }
    }
    let mut deleted = 0;
    for f in functions {
        if !llvm.is_declaration(f) && !live.contains(&f) {
            llvm.delete_body(f);
            deleted += 1;
        }
    }
    deleted
}

/// `drop_unreachable`'s step: the functions among `v` and its operands, through constant
/// expressions, become live, the new ones to be walked too.
fn reach(llvm: &JuliaLlvm, live: &mut HashSet<JValue>, work: &mut Vec<JValue>, v: JValue, depth: usize) {
    if v.is_null() {
        return;
    }
    if llvm.is_function(v) {
        if live.insert(v) {
            work.push(v);
        }
    } else if depth < 4 && llvm.is_constant_expr(v) {
        for op in llvm.operands(v) {
            reach(llvm, live, work, op, depth + 1);
        }
    }
}

/// The calls whose operands hold `function` (a declaration such as `jl_invoke`),
/// directly or through a constant cast of it to the call's type.
fn calls_using(llvm: &JuliaLlvm, function: JValue) -> Vec<JValue> {
    let mut calls = Vec::new();
    let mut users = vec![function];
    while let Some(v) = users.pop() {
        for user in llvm.users(v) {
            if llvm.is_constant_expr(user) {
                users.push(user);
            } else if llvm.is_call(user) {
                calls.push(user);
            }
        }
    }
    calls
}

/// The literal addresses among the operands of the calls to the function named `callee`
/// (`jl_invoke(F, args, nargs, mi)`, whose method instance codegen writes as a constant
/// address), each once, in increasing order; none when the module has no such
/// function. The caller turns them into the objects they are.
pub fn call_operand_addresses(llvm: &JuliaLlvm, module: JValue, callee: &std::ffi::CStr) -> Vec<u64> {
    let function = llvm.named_function(module, callee);
    if function.is_null() {
        return Vec::new();
    }
    let mut found: Vec<u64> = Vec::new();
    for call in calls_using(llvm, function) {
        for op in llvm.operands(call) {
            if let Some(address) = llvm.literal_address(op, 8) {
                if address != 0 {
                    found.push(address);
                }
            }
        }
    }
    found.sort_unstable();
    found.dedup();
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use inkwell::context::Context;
    use inkwell::memory_buffer::MemoryBuffer;
    use inkwell::values::AsValueRef;

    fn with_module(ir: &str, test: impl FnOnce(&JuliaLlvm, &inkwell::module::Module)) {
        let llvm = JuliaLlvm::this_process().expect("LLVM 19's C API in the test process");
        let ctx = Context::create();
        let buf = MemoryBuffer::create_from_memory_range_copy(ir.as_bytes(), "walks");
        let module = ctx.create_module_from_ir(buf).expect("test IR parses");
        test(&llvm, &module);
    }

    fn function(module: &inkwell::module::Module, name: &str) -> JValue {
        JValue(module.get_function(name).expect(name).as_value_ref().cast())
    }

    fn names(llvm: &JuliaLlvm, fs: &[JValue]) -> Vec<String> {
        fs.iter().map(|&f| llvm.name(f)).collect()
    }

    const GRAPH: &str = r#"
        declare void @jl_throw(ptr)
        declare double @julia_sin_3(double)
        declare double @julia_pow_4(double, i64)
        define double @julia_helper_2(double %x) {
          %y = call double @julia_sin_3(double %x)
          ret double %y
        }
        define double @julia_print_to_string_9(double %x) {
          ret double %x
        }
        define double @julia_autodiff_deferred_5(double %x) {
          %y = call double @julia_inner_6(double %x)
          ret double %y
        }
        define double @julia_inner_6(double %x) {
          ret double %x
        }
        define double @julia_unused_7(double %x) {
          %y = call double @julia_helper_2(double %x)
          ret double %y
        }
        define double @julia_f_1(double %x, i1 %c) {
        entry:
          br i1 %c, label %err, label %ok
        err:
          call double @julia_print_to_string_9(double %x)
          call void @jl_throw(ptr null)
          unreachable
        ok:
          %a = call double @julia_helper_2(double %x)
          %b = call double @julia_pow_4(double %a, i64 2)
          %d = call double @julia_autodiff_deferred_5(double %b)
          ret double %d
        }
    "#;

    #[test]
    fn calls_on_throwing_paths_are_not_followed_nor_into_stop_prefixes() {
        with_module(GRAPH, |llvm, m| {
            let root = function(m, "julia_f_1");
            let stop = vec!["julia_autodiff_deferred_".to_string()];
            let mut called = names(llvm, &called_functions(llvm, &[root], &stop));
            called.sort();
            assert_eq!(
                called,
                ["julia_autodiff_deferred_5", "julia_f_1", "julia_helper_2", "julia_pow_4", "julia_sin_3"]
            );
            // Without the stop prefix, the nested call's callee is reached too.
            let all = names(llvm, &called_functions(llvm, &[root], &[]));
            assert!(all.iter().any(|n| n == "julia_inner_6"));
            assert!(!all.iter().any(|n| n == "julia_print_to_string_9" || n == "julia_unused_7"));
        });
    }

    #[test]
    fn names_called_reports_patterns_and_functions_of_floats_alone() {
        with_module(GRAPH, |llvm, m| {
            let root = function(m, "julia_f_1");
            let patterns = NamePatterns {
                stop_prefixes: vec!["julia_autodiff_deferred_".into()],
                substrings: vec!["print_to_string".into(), "sin".into(), "show".into()],
                prefixes: vec!["julia_autodiff_deferred_".into(), "julia__range_".into()],
                float_prefix: "julia_".into(),
            };
            let found = names_called(llvm, &[root], &patterns);
            // `print_to_string` is called on the throwing path only.
            assert_eq!(found.substrings, [false, true, false]);
            assert_eq!(found.prefixes, [true, false]);
            // `pow` takes an integer, the root is not reported.
            let mut floats: Vec<(String, i32)> =
                found.float_functions.iter().map(|&(f, k)| (llvm.name(f), k)).collect();
            floats.sort();
            assert_eq!(
                floats,
                [
                    ("julia_autodiff_deferred_5".to_string(), 3),
                    ("julia_helper_2".to_string(), 3),
                    ("julia_sin_3".to_string(), 3)
                ]
            );
        });
    }

    #[test]
    fn unreachable_bodies_are_deleted_and_reachable_ones_kept() {
        let ir = r#"
            @table = global ptr @julia_in_table_4
            declare void @ext()
            define void @julia_in_table_4() { ret void }
            define void @julia_passed_3() { ret void }
            define void @julia_dead_5() {
              call void @julia_dead_callee_6()
              ret void
            }
            define void @julia_dead_callee_6() { ret void }
            define void @oxidase.latest.7() {
              call void @julia_kept_8()
              ret void
            }
            define void @julia_kept_8() { ret void }
            define void @julia_root_1(ptr %p) {
              store ptr @julia_passed_3, ptr %p
              call void @ext()
              ret void
            }
        "#;
        with_module(ir, |llvm, m| {
            let module = JValue(m.as_mut_ptr().cast());
            let root = function(m, "julia_root_1");
            let deleted = drop_unreachable(llvm, module, root, &["oxidase.".to_string()]);
            assert_eq!(deleted, 2);
            for (name, declaration) in [
                ("julia_root_1", false),
                ("julia_passed_3", false),
                ("julia_in_table_4", false),
                ("julia_dead_5", true),
                ("julia_dead_callee_6", true),
                ("oxidase.latest.7", false),
                ("julia_kept_8", false),
            ] {
                assert_eq!(llvm.is_declaration(function(m, name)), declaration, "{name}");
            }
            m.verify().expect("the module stays valid");
        });
    }

    #[test]
    fn literal_addresses_in_calls_of_a_function_are_found_once() {
        let ir = r#"
            declare ptr @jl_invoke(ptr, ptr, i32, ptr)
            declare ptr @other(ptr)
            define void @julia_f_1(ptr %args) {
              call ptr @jl_invoke(ptr inttoptr (i64 4096 to ptr), ptr %args, i32 1, ptr inttoptr (i64 8192 to ptr))
              call ptr @jl_invoke(ptr inttoptr (i64 4096 to ptr), ptr %args, i32 1, ptr inttoptr (i64 12288 to ptr))
              call ptr @other(ptr inttoptr (i64 16384 to ptr))
              ret void
            }
        "#;
        with_module(ir, |llvm, m| {
            let module = JValue(m.as_mut_ptr().cast());
            assert_eq!(call_operand_addresses(llvm, module, c"jl_invoke"), [4096, 8192, 12288]);
            assert!(call_operand_addresses(llvm, module, c"jl_missing").is_empty());
        });
    }
}
