//! Models: networks (tch), their optimizers, and artifacts on disk.

pub mod artifact;
pub mod lstm;
pub mod melody;
pub mod optim;
pub mod pianoroll;
pub mod presets;
pub mod registry;
pub mod sampling;
pub mod seq2seq;
pub mod tokens;
