//! Builds `tests/c/abi_test.c` against `include/oxidase.h` and the engine's shared
//! library, feeds it bitcode made by `llvm-as-19`, and runs it: the ABI works without
//! Julia.

use std::path::{Path, PathBuf};
use std::process::Command;

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn llvm_bin(tool: &str) -> PathBuf {
    let prefix = std::env::var("LLVM_SYS_191_PREFIX").unwrap_or_else(|_| "/usr/lib/llvm-19".into());
    Path::new(&prefix).join("bin").join(tool)
}

#[test]
fn c_program_uses_the_abi() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // The cdylib sits next to the test executable's deps directory.
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let lib = profile_dir.join("liboxidase.so");
    assert!(lib.exists(), "{} missing (cargo builds the cdylib with the tests)", lib.display());
    let tmp = std::env::temp_dir().join(format!("oxidase-abi-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let bc = tmp.join("abi_test.bc");
    let bin = tmp.join("abi_test");
    run(Command::new(llvm_bin("llvm-as")).arg(root.join("tests/c/abi_test.ll")).arg("-o").arg(&bc));
    run(Command::new("cc")
        .arg(root.join("tests/c/abi_test.c"))
        .arg("-I")
        .arg(root.join("include"))
        .arg("-L")
        .arg(profile_dir)
        .arg(format!("-Wl,-rpath,{}", profile_dir.display()))
        .arg("-loxidase")
        .arg("-lm")
        .arg("-Wall")
        .arg("-Werror")
        .arg("-o")
        .arg(&bin));
    run(Command::new(&bin).arg(&bc));
    let _ = std::fs::remove_dir_all(&tmp);
}
