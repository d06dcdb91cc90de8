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
    crate::ml::tract::register(&mut onnx.op_register);
    onnx
}

/// The standard operators written as wafer kernels, as (ONNX op type, builder).
pub(crate) const KERNELS: &[(&str, crate::ml::Builder)] = &[
    ("NegativeLogLikelihoodLoss", loss::negative_log_likelihood),
    ("SoftmaxCrossEntropyLoss", loss::softmax_cross_entropy),
];

/// Registers the standard operators this module fixes on tract's own terms.
fn register(reg: &mut OnnxOpRegister) {
    reg.insert("ReduceLogSumExp", reduce::log_sum_exp);
}
