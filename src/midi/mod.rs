//! MIDI in and out: standard MIDI files ⇄ [`Score`], fugue's internal music.

mod gm;
mod read;
mod score;
mod usable;
mod write;

pub use gm::{DRUM_CHANNEL, assign_channels, program_name};
pub use read::{
    MAX_BEATS, MAX_FILE_BYTES, MAX_NOTES_PER_FILE, MAX_SECONDS, MAX_SOUNDING_BEATS, ReadError, read,
};
pub use score::{KeySignature, Note, Part, Score, TempoChange, TempoMap, TimeSignature};
pub use usable::{Unusable, read_usable};
pub use write::write;
