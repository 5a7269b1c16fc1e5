#!/usr/bin/env bash
# Every test of Oxidase, from a fresh Debian 12 machine with Rust: bootstrap, lint,
# cargo tests (engine, rules, C-ABI program), the Julia package's tests, and the
# documentation's examples. Exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."
export LLVM_SYS_191_PREFIX="${LLVM_SYS_191_PREFIX:-/usr/lib/llvm-19}"
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"

step() { echo; echo "==> $*"; }

step "bootstrap"
bash deps/bootstrap.sh

step "cargo fmt --check"
cargo fmt --check

step "cargo clippy -- -D warnings"
cargo clippy --all-targets -- -D warnings

step "cargo test"
cargo build --quiet          # the C-ABI test links the cdylib of this profile
cargo test

step "Pkg.build (release engine)"
julia --project=. -e 'using Pkg; Pkg.resolve(); Pkg.build()'   # (resolve: a checkout's Manifest.toml may predate a new dependency)

step "Pkg.test"
julia --project=. -e 'using Pkg; Pkg.test()'

step "documentation examples"
julia --project=. julia/run_doctests.jl

echo
echo "all tests passed"
