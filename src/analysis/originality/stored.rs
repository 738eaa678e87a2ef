//! The index as a model artifact stores it: the training pieces' onset sequences,
//! from which [`OriginalityIndex::build`] makes the automata again when the model
//! is loaded.
//!
//! The automata are 15.7 MB in memory for the 410 chorales (25 MB as JSON), while
//! the notes they are built from are three small numbers each: (onset gap, pitch,
//! bar gap). Stored so, the index costs about 8 bytes of JSON per training note,
//! and rebuilding it is linear in the notes (0.5 s for the 410 chorales on a debug
//! build). Nothing is lost: the index reads a note's onset on the grid, its pitch
//! and its bar, and nothing else.

use serde::{Deserialize, Serialize};

use super::index::{IndexError, MAX_INDEXED_NOTES, OriginalityIndex};
use super::symbols::onset_sequence;
use crate::analysis::{AnalysisNote, GRID_PER_BEAT, TrainingNote, TrainingPiece};

/// The training pieces' notes as the index reads them (see the module doc).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Unchecked")]
pub struct IndexedCorpus {
    pieces: Vec<StoredPiece>,
}

/// One piece's onset sequence (unisons merged), as three arrays of one length.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct StoredPiece {
    name: String,
    /// Grid steps (24 per beat) from the previous note's onset (the first: from 0).
    onsets: Vec<u64>,
    pitches: Vec<u8>,
    /// Bars from the previous note's bar (the first: from bar 1); a note of an
    /// onset can round onto a bar line from the bar before, so one may be negative.
    bars: Vec<i64>,
}

#[derive(Deserialize)]
struct Unchecked {
    pieces: Vec<StoredPiece>,
}

impl TryFrom<Unchecked> for IndexedCorpus {
    type Error = String;

    fn try_from(raw: Unchecked) -> Result<IndexedCorpus, String> {
        let mut notes = 0usize;
        for piece in &raw.pieces {
            let length = piece.pitches.len();
            if piece.onsets.len() != length || piece.bars.len() != length {
                return Err(format!(
                    "originality corpus: piece `{}` has arrays of unequal length",
                    piece.name
                ));
            }
            if piece.pitches.iter().any(|&pitch| pitch > 127) {
                return Err(format!("originality corpus: piece `{}` has a pitch above 127", piece.name));
            }
            let onsets = piece.onsets.iter().try_fold(0u64, |sum, &gap| sum.checked_add(gap));
            let mut bar = 1i64;
            let bars_in_range = piece.bars.iter().all(|&gap| {
                bar = bar.saturating_add(gap);
                (1..=i64::from(u32::MAX)).contains(&bar)
            });
            if onsets.is_none_or(|end| end > u64::from(u32::MAX)) || !bars_in_range {
                return Err(format!("originality corpus: piece `{}` runs past the end of time", piece.name));
            }
            notes += length;
        }
        if notes > MAX_INDEXED_NOTES {
            return Err(IndexError::TooManyNotes { notes }.to_string());
        }
        Ok(IndexedCorpus { pieces: raw.pieces })
    }
}

impl IndexedCorpus {
    /// The onset sequences of `pieces` (pieces without notes left out).
    pub fn of(pieces: &[TrainingPiece]) -> IndexedCorpus {
        let pieces = pieces
            .iter()
            .filter_map(|piece| {
                let sequence = onset_sequence(piece.notes.iter().map(|training| &training.note));
                if sequence.is_empty() {
                    return None;
                }
                let (mut onset, mut bar) = (0u64, 1i64);
                let mut stored = StoredPiece {
                    name: piece.name.clone(),
                    onsets: Vec::with_capacity(sequence.len()),
                    pitches: Vec::with_capacity(sequence.len()),
                    bars: Vec::with_capacity(sequence.len()),
                };
                for &(note, index) in &sequence {
                    let note_bar = i64::from(piece.notes[index].bar);
                    stored.onsets.push(note.onset - onset);
                    stored.pitches.push(note.pitch);
                    stored.bars.push(note_bar - bar);
                    (onset, bar) = (note.onset, note_bar);
                }
                Some(stored)
            })
            .collect();
        IndexedCorpus { pieces }
    }

    pub fn pieces(&self) -> usize {
        self.pieces.len()
    }

    /// Training notes (unisons merged).
    pub fn notes(&self) -> usize {
        self.pieces.iter().map(|piece| piece.pitches.len()).sum()
    }

    /// The index of these pieces.
    pub fn index(&self) -> Result<OriginalityIndex, IndexError> {
        let pieces: Vec<TrainingPiece> = self
            .pieces
            .iter()
            .map(|piece| {
                let (mut onset, mut bar) = (0u64, 1i64);
                let notes = (0..piece.pitches.len())
                    .map(|i| {
                        onset += piece.onsets[i];
                        bar += piece.bars[i];
                        let note = AnalysisNote {
                            pitch: piece.pitches[i],
                            program: 0,
                            start_beat: onset as f64 / GRID_PER_BEAT,
                            duration_beats: 0.0,
                        };
                        TrainingNote { note, bar: bar as u32 }
                    })
                    .collect();
                TrainingPiece { name: piece.name.clone(), notes }
            })
            .collect();
        OriginalityIndex::build(&pieces)
    }
}
