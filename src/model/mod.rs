//! Models: networks (tch), their optimizers, artifacts and weights on disk, and the
//! record of their training. Nothing here imports the training loop (`train`).

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
pub mod training_record;
pub mod weights;
