//! Audio: a [`Score`](crate::midi::Score) played through a General MIDI SoundFont
//! and written as a WAV or FLAC stream, in chunks, so that any length renders in the same
//! small memory.
//!
//! The synthesizer is `rustysynth` (pure Rust, MIT): SF2 fonts, every channel's
//! program, drums on channel 10 (bank 128), reverb and chorus.

mod flac;
mod render;
mod soundfont;
mod wav;

pub use flac::FlacWriter;
pub use render::{CHANNELS, CHUNK_FRAMES, Render, SAMPLE_RATE};
pub use soundfont::{FontError, SoundFont, load_font};
pub use wav::{WAV_HEADER_BYTES, wav_header, wav_len};
