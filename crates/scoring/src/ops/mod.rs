//! Standard ONNX operators where tract's own numbers differ from onnxruntime's, registered
//! over tract's; and the ONNX loader that carries them and the kernels of [`crate::ml`] (the
//! ai.onnx.ml operators, and the standard ones tract lacks).

mod reduce;

use tract_onnx::model::OnnxOpRegister;

/// tract's ONNX loader with wafer's operators over tract's own.
pub(crate) fn onnx() -> tract_onnx::Onnx {
    let mut onnx = tract_onnx::onnx();
    register(&mut onnx.op_register);
    crate::ml::tract::register(&mut onnx.op_register);
    onnx
}

/// Registers the standard operators this module fixes on tract's own terms.
fn register(reg: &mut OnnxOpRegister) {
    reg.insert("ReduceLogSumExp", reduce::log_sum_exp);
}
