//! What can go wrong while loading or running a model.

use thiserror::Error;

/// An error from loading or running a model. Messages name the input or output at fault.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum ScoringError {
    /// The ONNX bytes could not be parsed, typed or optimized.
    #[error("cannot load model: {0}")]
    Load(String),
    /// A tensor's shape does not hold as many elements as its data.
    #[error("input \"{input}\": shape {shape} holds {expected} elements, got {got}")]
    DataLength {
        /// The tensor's name.
        input: String,
        /// The declared shape.
        shape: String,
        /// How many elements the shape holds.
        expected: String,
        /// How many elements were given.
        got: usize,
    },
    /// A request names an input the model does not have.
    #[error("unknown input \"{input}\"; the model's inputs are {expected}")]
    UnknownInput {
        /// The name given.
        input: String,
        /// The model's input names.
        expected: String,
    },
    /// A model input was not given.
    #[error("missing input \"{input}\"")]
    MissingInput {
        /// The input's name.
        input: String,
    },
    /// The same input was given twice.
    #[error("input \"{input}\" given more than once")]
    DuplicateInput {
        /// The input's name.
        input: String,
    },
    /// An input has the wrong element type.
    #[error("input \"{input}\": expected datatype {expected}, got {got}")]
    DataType {
        /// The input's name.
        input: String,
        /// The model's datatype.
        expected: String,
        /// The given datatype.
        got: String,
    },
    /// An input has the wrong shape.
    #[error("input \"{input}\": expected shape {expected}, got {got}")]
    Shape {
        /// The input's name.
        input: String,
        /// The model's shape, with `N` for dynamic dimensions.
        expected: String,
        /// The given shape.
        got: String,
    },
    /// An input has no rows.
    #[error("input \"{input}\": empty batch (shape {shape})")]
    EmptyBatch {
        /// The input's name.
        input: String,
        /// The given shape.
        shape: String,
    },
    /// A requested output does not exist.
    #[error("unknown output \"{output}\"; the model's outputs are {expected}")]
    UnknownOutput {
        /// The name asked for.
        output: String,
        /// The model's output names.
        expected: String,
    },
    /// A raw record does not fit the model's feature spec; the message names row and field.
    #[error("{0}")]
    Record(String),
    /// The model failed while running.
    #[error("model failed: {0}")]
    Run(String),
}

impl ScoringError {
    /// Whether the caller is at fault (bad input), rather than the model.
    pub fn is_invalid_input(&self) -> bool {
        !matches!(self, ScoringError::Load(_) | ScoringError::Run(_))
    }
}
