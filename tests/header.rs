//! `include/oxidase.h` is generated from `rust-src/ffi.rs` by cbindgen and checked in.
//! This test regenerates it and fails when the checked-in header is stale;
//! `OXIDASE_BLESS=1 cargo test --test header` rewrites it.

#[test]
fn header_is_generated_from_ffi_rs() {
    let root = env!("CARGO_MANIFEST_DIR");
    let config = cbindgen::Config::from_file(format!("{root}/cbindgen.toml")).expect("cbindgen.toml");
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_config(config)
        .with_src(format!("{root}/rust-src/ffi.rs"))
        .generate()
        .expect("cbindgen generates the header")
        .write(&mut generated);
    let generated = String::from_utf8(generated).unwrap();
    let path = format!("{root}/include/oxidase.h");
    if std::env::var_os("OXIDASE_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let checked_in = std::fs::read_to_string(&path).unwrap();
    assert!(
        checked_in == generated,
        "include/oxidase.h is stale: run `OXIDASE_BLESS=1 cargo test --test header`\n--- generated ---\n{generated}"
    );
}
