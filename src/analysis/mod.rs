//! Knowing what was made: how much of a piece is copied from the training data,
//! and how its music compares with a reference set.
//!
//! - [`originality`]: an index of the training pieces that finds the longest run of
//!   consecutive notes a query copies from one of them (exactly, transposed, or by
//!   pitch order alone), and a [`originality::CopyGuard`] that lets a decoder mask
//!   notes that would copy more than N in a row.
//! - [`voice_leading`]: part-writing faults (parallel fifths and octaves, voice
//!   crossings, notes out of range) of a piece in voices.
//! - [`statistics`]: per-piece musical features in the manner of MGEval (Yang &
//!   Lerch 2020) and their comparison between two sets of pieces.
//!
//! Both read notes as [`AnalysisNote`]s, in beats, so scores of any resolution and
//! the generator's notes compare alike. This layer sits above `midi` and imports
//! nothing else of the crate but `shared`.

mod notes;
pub mod originality;
pub mod statistics;
pub mod voice_leading;

pub use notes::{AnalysisNote, GRID_PER_BEAT, TrainingNote, TrainingPiece, grid_steps, notes_of};
