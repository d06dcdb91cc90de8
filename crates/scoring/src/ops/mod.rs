//! Standard ONNX operators where tract's own numbers differ from onnxruntime's, or that tract
//! lacks, registered over tract's; and the ONNX loader that carries them and the ai.onnx.ml
//! operators of [`crate::ml`].

mod loss;
mod reduce;

use tract_onnx::model::OnnxOpRegister;

/// tract's ONNX loader with wafer's operators over tract's own.
pub(crate) fn onnx() -> tract_onnx::Onnx {
    let mut onnx = tract_onnx::onnx();
    register(&mut onnx.op_register);
    crate::ml::register(&mut onnx.op_register);
    onnx
}

/// Registers the standard operators this module fixes or adds.
fn register(reg: &mut OnnxOpRegister) {
    reg.insert("ReduceLogSumExp", reduce::log_sum_exp);
    reg.insert("NegativeLogLikelihoodLoss", loss::negative_log_likelihood);
    reg.insert("SoftmaxCrossEntropyLoss", loss::softmax_cross_entropy);
}
