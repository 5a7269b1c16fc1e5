//! BLAS calls on differentiated arrays (`dot`, `gemv`, `gemm`; `crate::runtime::blas`
//! holds their derivatives, by op code): forward mode calls `blas_tangent` per batch
//! lane; reverse mode saves copies of the inputs right after the call (a record pushed
//! on the tape) and calls `blas_reverse` with each lane's shadows at the call's place in
//! the reverse sweep.

use super::{Family, Flow};
use crate::llvm::Value;

/// A BLAS call of op code `.0` (`crate::runtime::blas`).
pub struct Blas(pub u32);

impl Family for Blas {
    fn sources(&self, _: Value) -> Vec<Value> {
        Vec::new()
    }
    fn varied(&self, _: Value, _: &Flow) -> bool {
        true
    }
    /// A call writing an output array writes derivatives into its shadow.
    fn is_sink(&self, _: Value, _: &Flow) -> bool {
        crate::runtime::blas::output_arg(self.0).is_some()
    }
    fn writes_memory(&self, _: Value) -> bool {
        true
    }
}
