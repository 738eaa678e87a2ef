//! Models: networks (tch), their optimizers, artifacts and weights on disk, and the
//! record of their training. Nothing here imports the training loop (`train`).

pub mod artifact;
pub mod fp16_gemm;
pub mod frozen_affine;
pub mod hyperparameters;
pub mod lstm;
pub mod melody_net;
pub mod meta_cache;
pub mod optim;
pub mod presets;
pub mod recipe;
pub mod registry;
pub mod roll_net;
pub mod sampling;
pub mod search;
pub mod seq2seq_net;
pub mod token_net;
pub mod training_record;
pub mod weights;
