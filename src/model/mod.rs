//! Models: artifacts on disk (and, with training, the networks themselves).

pub mod artifact;
