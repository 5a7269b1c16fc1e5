#!/usr/bin/env bash
# The main job: set up what is missing, build the engine, and run the seed tutorial's
# examples, printed like a REPL session.
set -euo pipefail
cd "$(dirname "$0")/.."
export LLVM_SYS_191_PREFIX="${LLVM_SYS_191_PREFIX:-/usr/lib/llvm-19}"
bash deps/bootstrap.sh
julia --project=. -e 'using Pkg; Pkg.resolve(); Pkg.build()' >/dev/null
julia --project=. julia/tutorial.jl
