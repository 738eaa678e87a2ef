//! One verdict on MIDI bytes, wherever they come from: a dataset upload, a primer,
//! `fugue train --data`. The same bytes get the same answer and the same reason.

use super::read::{ReadError, read};
use super::score::Score;

/// Why a file gives fugue nothing to learn from or continue.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Unusable {
    #[error(transparent)]
    Unreadable(#[from] ReadError),
    #[error("no notes")]
    NoNotes,
    #[error("drums only (drums are excluded)")]
    DrumsOnly,
}

/// Reads the file within the reader's bounds, leaves drum parts out unless
/// `include_drums`, and requires a note to be left.
pub fn read_usable(bytes: &[u8], include_drums: bool) -> Result<Score, Unusable> {
    let mut score = read(bytes)?;
    let had_notes = score.note_count() > 0;
    if !include_drums {
        score.parts.retain(|part| !part.is_drum);
    }
    match score.note_count() {
        0 if had_notes => Err(Unusable::DrumsOnly),
        0 => Err(Unusable::NoNotes),
        _ => Ok(score),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::midi::{Part, write};

    fn file(channel: u8) -> Vec<u8> {
        let note = crate::midi::Note { pitch: 36, velocity: 90, start: 0, duration: 96 };
        let mut part = Part::new(channel, 0, vec![note]);
        part.is_drum = channel == 9;
        write(&Score::of_parts(96, vec![part]))
    }

    #[test]
    fn drums_count_only_when_kept() {
        assert_eq!(read_usable(&file(9), false), Err(Unusable::DrumsOnly));
        assert_eq!(read_usable(&file(9), true).unwrap().note_count(), 1);
        assert_eq!(read_usable(&file(0), false).unwrap().note_count(), 1);
    }

    #[test]
    fn an_empty_or_unreadable_file_says_why() {
        assert_eq!(read_usable(&write(&Score::of_parts(96, Vec::new())), true), Err(Unusable::NoNotes));
        let unreadable = read_usable(b"not midi", true).unwrap_err();
        assert_eq!(unreadable.to_string(), "not a MIDI file (no MThd header)");
    }
}
