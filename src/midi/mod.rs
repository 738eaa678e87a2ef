//! MIDI in and out: standard MIDI files ⇄ [`Score`], fugue's internal music.

mod read;
mod score;
mod write;

pub use read::{MAX_FILE_BYTES, MAX_NOTES_PER_FILE, ReadError, read};
pub use score::{KeySignature, Note, Part, Score, TempoChange, TempoMap, TimeSignature};
pub use write::write;
