//! Julia names from LLVM names: `julia_rosenbrock_36` → `rosenbrock`,
//! `julia_YY.IOBufferYY.331_66` → `#IOBuffer#331`.

/// The Julia function name behind an LLVM function name.
pub fn julia_name(llvm: &str) -> String {
    let stripped =
        ["julia_", "japi1_", "japi3_", "jlcall_", "jfptr_"].iter().find_map(|p| llvm.strip_prefix(p)).unwrap_or(llvm);
    let base = match stripped.rfind('_') {
        Some(i) if i > 0 && stripped[i + 1..].chars().all(|c| c.is_ascii_digit()) && i + 1 < stripped.len() => {
            &stripped[..i]
        }
        _ => stripped,
    };
    base.replace("YY.", "#").replace("YY", "#")
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

#[cfg(test)]
mod tests {
    use super::julia_name;

    #[test]
    fn strips_prefix_and_counter() {
        assert_eq!(julia_name("julia_rosenbrock_36"), "rosenbrock");
        assert_eq!(julia_name("julia_f_45"), "f");
        assert_eq!(julia_name("julia_my_fun_2"), "my_fun");
        assert_eq!(julia_name("expm1"), "expm1");
    }
}
