//! Julia names from LLVM names: `julia_rosenbrock_36` → `rosenbrock`,
//! `julia_YY.IOBufferYY.331_66` → `#IOBuffer#331`; and the names and the attribute
//! `ingest` gives the functions it marks, which the layers below it (`rules`,
//! `analysis`, `transform`) recognise.

/// The string attribute marking functions differentiated call by call (their body
/// moves into derivative functions later, so "has a body" cannot tell them apart).
pub const RECURSIVE: &str = "oxidase-recursive";

/// The name prefix of the functions `ingest::splat_calls` makes: `oxidase.splat.<n>`.
pub const SPLAT_PREFIX: &str = "oxidase.splat.";
/// The name prefix of the functions `ingest::splat_calls` makes of a call Julia
/// dispatches when it runs (`jl_apply_generic(F, args, n)`): `oxidase.dynamic.<n>(F,
/// value₁, …, valueₙ)`, differentiated like a splat call, by a runtime hook that picks
/// the method (`rules::Rule::Splat`).
pub const DYNAMIC_PREFIX: &str = "oxidase.dynamic.";

/// Whether `name` is a function `ingest::splat_calls` makes, a splat call's
/// (`SPLAT_PREFIX`) or a dynamic call's (`DYNAMIC_PREFIX`): both are differentiated by
/// the runtime hook (`rules::Rule::Splat`).
pub fn is_hook_call(name: &str) -> bool {
    name.starts_with(SPLAT_PREFIX) || name.starts_with(DYNAMIC_PREFIX)
}
/// The generic entry of a closure's method that Julia calls through `invokelatest`,
/// named by the extraction after the closure's type (its address follows): a
/// `Threads.@threads` loop's `threadsfor_fun` (`src/extract.jl`, `ingest::latest_calls`).
pub const LATEST_PREFIX: &str = "oxidase.latest.";
/// The generic entries the extraction adds for the tasks a function makes
/// (`Threads.@spawn`, `@async`, `schedule(Task(f))`): `oxidase.spawn.new` makes the
/// object standing for a task, `oxidase.spawn.<address of the closure's type>` runs the
/// closure and stores its result there (`src/extract.jl`, `ingest::spawn_calls`).
pub const SPAWN_PREFIX: &str = "oxidase.spawn.";
/// The generic entry of a method instance Julia calls through `jl_invoke`, compiled for
/// any number of trailing arguments of one type, which the extraction adds to the
/// module: `oxidase.invoke.<address of the instance>.<its LLVM name>` (`src/extract.jl`,
/// `ingest::invoke_calls`).
pub const INVOKE_PREFIX: &str = "oxidase.invoke.";

/// The name prefix the Julia package gives the functions with a user-defined rule
/// (`EnzymeRules`): `oxidase.rule.<site>.julia_f_12`, where `<site>` names the
/// specialization for the package's runtime hook (`rules::calls::custom`).
pub const RULE_PREFIX: &str = "oxidase.rule.";

/// The string attribute the Julia package puts on a function with a user-defined rule
/// (`RULE_PREFIX`) that returns an `Array{Float64}`: the call's result is an array with
/// a shadow the rule makes (`rules::calls::custom`). On a rule returning a struct
/// through memory (`sret`): the struct holds arrays of `Float64` (`rule_sret_result`).
pub const RULE_RESULT_ARRAY_F64: &str = "oxidase-rule-result-array-f64";

/// The string attribute the Julia package puts on a function whose rule is one of the
/// package's own (linear algebra, nested differentiation): the rule never resizes the
/// arrays the call is handed, whatever the function's own body does
/// (`analysis::memory`'s `may_resize`).
pub const RULE_KEEPS_SIZES: &str = "oxidase-rule-keeps-sizes";

/// Like `RULE_RESULT_ARRAY_F64`, for a rule returning an `Array{Float32}`.
pub const RULE_RESULT_ARRAY_F32: &str = "oxidase-rule-result-array-f32";

/// The string attribute the Julia package puts on a function without a derivative
/// (`INACTIVE_PREFIX`) whose result is an `Array` of integers or `Bool`s (`sortperm`):
/// memory that never holds a float (`integer_array_result`).
pub const RESULT_INTEGER_ARRAY: &str = "oxidase-result-integer-array";

/// The string attribute the Julia package puts on a function without a derivative
/// (`INACTIVE_PREFIX`) whose result is a `String` or a `Symbol` (`string("k", i)`): a
/// name, immutable and without a derivative (`name_result`, `analysis::memory::is_name`).
pub const RESULT_NAME: &str = "oxidase-result-name";

/// Whether `i` is a call of a function without a derivative that returns a `String` or
/// a `Symbol` (`RESULT_NAME`).
pub fn name_result(i: crate::llvm::Value) -> bool {
    inactive_result_marked(i, RESULT_NAME)
}

/// Whether `i` is a call of a function without a derivative (`INACTIVE_PREFIX`) that
/// returns a pointer and carries string attribute `attr`.
fn inactive_result_marked(i: crate::llvm::Value, attr: &str) -> bool {
    i.opcode_if_instruction() == Some(crate::llvm::Opcode::LLVMCall)
        && i.ty().is_pointer()
        && i.as_call()
            .and_then(|c| c.called_function())
            .is_some_and(|f| f.name().starts_with(INACTIVE_PREFIX) && f.has_string_attr(attr))
}

/// Whether `i` is a call of a function without a derivative that returns an array of
/// integers or `Bool`s (`RESULT_INTEGER_ARRAY`).
pub fn integer_array_result(i: crate::llvm::Value) -> bool {
    inactive_result_marked(i, RESULT_INTEGER_ARRAY)
}

/// The array type of the result of call `i` of a function with a user-defined rule
/// that returns an array (`RULE_RESULT_ARRAY_F64`, `_F32`): `Leaf::ArrayF64` or
/// `Leaf::ArrayF32`. `None` for any other instruction.
pub fn rule_array_result(i: crate::llvm::Value) -> Option<crate::request::Leaf> {
    use crate::request::Leaf;
    if i.opcode_if_instruction() != Some(crate::llvm::Opcode::LLVMCall) || !i.ty().is_pointer() {
        return None;
    }
    let f = i.as_call()?.called_function().filter(|f| f.name().starts_with(RULE_PREFIX))?;
    if f.has_string_attr(RULE_RESULT_ARRAY_F64) {
        Some(Leaf::ArrayF64)
    } else if f.has_string_attr(RULE_RESULT_ARRAY_F32) {
        Some(Leaf::ArrayF32)
    } else {
        None
    }
}

/// What the result of rule call `i` holds when the rule returns it through memory
/// (`sret`: a struct or tuple Julia stores inline), for the shadow of the caller's
/// buffer: numbers of one float type, with integers beside them or not (`logabsdet`'s
/// tuple, a float range; the buffer's shadow holds their tangents or adjoints), or arrays of floats beside integers (a factorization
/// object, `RULE_RESULT_ARRAY_F64`/`_F32`: the shadow holds the arrays' shadows, which
/// the rule makes). `None` for any other call or result.
pub fn rule_sret_result(i: crate::llvm::Value) -> Option<RuleSret> {
    if i.opcode_if_instruction() != Some(crate::llvm::Opcode::LLVMCall) {
        return None;
    }
    let f = i.as_call()?.called_function().filter(|f| f.name().starts_with(RULE_PREFIX))?;
    let ty = f.sret_type()?;
    if f.has_string_attr(RULE_RESULT_ARRAY_F64) {
        Some(RuleSret::Arrays { f32: false })
    } else if f.has_string_attr(RULE_RESULT_ARRAY_F32) {
        Some(RuleSret::Arrays { f32: true })
    } else {
        ty.numbers_aggregate().map(|_| RuleSret::Floats)
    }
}

/// What a rule's result returned through memory holds (`rule_sret_result`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleSret {
    /// Numbers of one float type, with integers beside them (a float range's length
    /// and offset), which carry no derivative and are read from the primal.
    Floats,
    /// Arrays of `Float32` (`f32`) or `Float64`, beside data without derivatives.
    Arrays {
        /// The arrays' element type is `Float32`.
        f32: bool,
    },
}

/// The name prefix the Julia package gives the functions declared without derivative
/// (its printing and logging functions, and `EnzymeRules.inactive`):
/// `oxidase.inactive.julia_f_12`.
pub const INACTIVE_PREFIX: &str = "oxidase.inactive.";

/// The site of a function with a user-defined rule, from its name
/// (`oxidase.rule.<site>.…`).
pub fn rule_site(name: &str) -> Option<u64> {
    let rest = name.strip_prefix(RULE_PREFIX)?;
    rest.split('.').next()?.parse().ok()
}

/// The LLVM name a function had before the Julia package marked it (`RULE_PREFIX`,
/// `INACTIVE_PREFIX`).
fn unmarked(llvm: &str) -> &str {
    if let Some(rest) = llvm.strip_prefix(RULE_PREFIX) {
        return rest.split_once('.').map_or(rest, |(_, name)| name);
    }
    llvm.strip_prefix(INACTIVE_PREFIX).unwrap_or(llvm)
}

/// The string attribute the Julia package gives a Base elementary function's code when
/// Julia has compiled that method already: the address of its machine code, in decimal
/// (`src/extract.jl`, `link_native_code!`). `ingest` then calls that code instead of
/// compiling the function's body again in every derivative that calls it.
pub const NATIVE_CODE: &str = "oxidase-native";

/// Prefix `ingest` gives Base's elementary functions it keeps as calls:
/// `ox.julia.exp.julia_exp_123`.
pub const JULIA_MATH_PREFIX: &str = "ox.julia.";

/// The declaration `ingest::link_native_code` puts in place of a Base elementary
/// function whose machine code Julia has (`NATIVE_CODE`): `ox.julia.sin.native.<address>`,
/// an absolute symbol for the JIT (`jit::Jit::add`), so to every analysis a declared
/// `ox.` function, which writes no memory the program reads.
pub fn native_code_name(base: &str, address: usize) -> String {
    format!("{JULIA_MATH_PREFIX}{base}.native.{address}")
}

/// The address in a name `native_code_name` made.
pub fn native_code_address(name: &str) -> Option<usize> {
    let rest = name.strip_prefix(JULIA_MATH_PREFIX)?;
    let (_, address) = rest.split_once(".native.")?;
    address.parse().ok()
}

/// The Julia function name behind an LLVM function name.
pub fn julia_name(llvm: &str) -> String {
    let stripped = crate::julia::current().strip_method_prefix(unmarked(llvm));
    let base = match stripped.rfind('_') {
        Some(i) if i > 0 && stripped[i + 1..].chars().all(|c| c.is_ascii_digit()) && i + 1 < stripped.len() => {
            &stripped[..i]
        }
        _ => stripped,
    };
    unmangle(base)
}

/// Julia's object-file names spell ASCII punctuation as a token and a dot (`f!` is
/// `fNOT.`, `a.b` is `aDOT.b`); no token is a suffix of another, so the token before
/// each dot is unambiguous. Table measured on Julia 1.5 (`julia_f<c>g_N` for each `c`).
const MANGLED: [(&str, char); 30] = [
    ("NOT", '!'),
    ("DQT", '"'),
    ("YY", '#'),
    ("REM", '%'),
    ("AND", '&'),
    ("SQT", '\''),
    ("LPR", '('),
    ("RPR", ')'),
    ("MUL", '*'),
    ("SUM", '+'),
    ("2C", ','),
    ("SUB", '-'),
    ("DOT", '.'),
    ("DIV", '/'),
    ("COL", ':'),
    ("3B", ';'),
    ("LT", '<'),
    ("EQ", '='),
    ("GT", '>'),
    ("QQ", '?'),
    ("AT", '@'),
    ("LBR", '['),
    ("RDV", '\\'),
    ("RBR", ']'),
    ("POW", '^'),
    ("TIC", '`'),
    ("LCR", '{'),
    ("OR", '|'),
    ("RCR", '}'),
    ("TLD", '~'),
];

fn unmangle(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut pieces = name.split('.').peekable();
    while let Some(piece) = pieces.next() {
        out.push_str(piece);
        if pieces.peek().is_none() {
            break;
        }
        match MANGLED.iter().find(|(token, _)| out.ends_with(token)) {
            Some((token, c)) => {
                out.truncate(out.len() - token.len());
                out.push(*c);
            }
            None => out.push('.'),
        }
    }
    // Older names spell `#` as a bare `YY`.
    out.replace("YY", "#")
}

/// `" (at float.jl:454, inlined from special/exp.jl:112, from REPL[3]:1)"`: where an
/// instruction comes from, innermost frame first; empty without debug information.
pub fn where_(inst: crate::llvm::Value) -> String {
    let frames: Vec<String> = inst.source_chain().into_iter().filter(|l| l.line > 0).map(|l| l.to_string()).collect();
    match frames.split_first() {
        None => String::new(),
        Some((first, [])) => format!(" (at {first})"),
        Some((first, rest)) => format!(" (at {first}, inlined from {})", rest.join(", from ")),
    }
}

/// The string attribute of a splat's or dynamic call's helper function (`ingest::
/// splat_calls`) whose result's other types ingestion ruled out (`analysis::memory::refused_type_checks`),
/// its value the leaf the result is read as: the hook is told, and refuses any other.
pub const ASSERTED_RESULT: &str = "oxidase-asserted-result";

/// The leaf `ASSERTED_RESULT` gives call `call`'s result, if any.
pub fn asserted_result(call: crate::llvm::Value) -> Option<crate::request::Leaf> {
    let f = call.as_call()?.called_function()?;
    match f.string_attr_value(ASSERTED_RESULT)?.as_str() {
        "ArrayF64" => Some(crate::request::Leaf::ArrayF64),
        "ArrayF32" => Some(crate::request::Leaf::ArrayF32),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::julia_name;

    #[test]
    fn strips_prefix_and_counter() {
        assert_eq!(julia_name("julia_rosenbrock_36"), "rosenbrock");
        assert_eq!(julia_name("julia_f_45"), "f");
        assert_eq!(julia_name("julia_my_fun_2"), "my_fun");
        assert_eq!(julia_name("expm1"), "expm1");
        assert_eq!(julia_name("oxidase.rule.12.julia_myf_3"), "myf");
        assert_eq!(julia_name("oxidase.inactive.julia_logNOT._8"), "log!");
    }

    #[test]
    fn rule_sites() {
        assert_eq!(super::rule_site("oxidase.rule.12.julia_myf_3"), Some(12));
        assert_eq!(super::rule_site("julia_myf_3"), None);
    }

    #[test]
    fn unmangles_punctuation() {
        assert_eq!(julia_name("julia_cpNOT._31"), "cp!");
        assert_eq!(julia_name("julia_aDOT.bSUB.c_39"), "a.b-c");
        assert_eq!(julia_name("julia_YY.IOBufferYY.331_66"), "#IOBuffer#331");
        assert_eq!(julia_name("julia_fSUM.g_55"), "f+g");
        assert_eq!(julia_name("julia_fEQ.EQ._2"), "f==");
        assert_eq!(julia_name("julia_∇f_33"), "∇f");
    }
}
