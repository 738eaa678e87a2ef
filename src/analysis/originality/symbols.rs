//! Notes as the index compares them: one onset-ordered sequence per piece, and
//! one symbol per pair of consecutive notes for each [`CopyKind`].

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::analysis::{AnalysisNote, GRID_PER_BEAT, grid_steps};

/// Inter-onset intervals longer than this many grid steps (16 beats) all compare
/// equal: a rest of four bars or more is "a long rest", however long.
const LONGEST_DISTINCT_GAP: u64 = 16 * GRID_PER_BEAT as u64;

/// Ends a training piece in the text the automata are built from. No pair of notes
/// has this symbol, so no match runs from one piece into the next.
pub const PIECE_END: u32 = u32::MAX;

/// What counts as the same run of notes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CopyKind {
    /// The same pitches with the same onset pattern (inter-onset intervals on the grid).
    Exact,
    /// The same intervals between successive pitches and the same onset pattern, at
    /// any transposition: a copy a third higher is still a copy.
    Transposed,
    /// The same pitches in the same onset order, whatever the rhythm: a copy in
    /// other note values, or a chord played as an arpeggio, is still a copy.
    OnsetOrder,
}

impl CopyKind {
    pub const ALL: [CopyKind; 3] = [CopyKind::Exact, CopyKind::Transposed, CopyKind::OnsetOrder];

    /// The symbol of the step from note `from` to note `to`. A run of k notes
    /// matches when its k − 1 steps' symbols do: pitches (or intervals) and gaps
    /// inside the run, never the gap before it.
    pub fn symbol(self, from: SequencedNote, to: SequencedNote) -> u32 {
        let gap = to.onset.saturating_sub(from.onset).min(LONGEST_DISTINCT_GAP + 1) as u32;
        let (from_pitch, to_pitch) = (u32::from(from.pitch), u32::from(to.pitch));
        match self {
            CopyKind::Exact => from_pitch << 24 | to_pitch << 16 | gap,
            CopyKind::Transposed => (to_pitch + 128 - from_pitch) << 16 | gap,
            CopyKind::OnsetOrder => from_pitch << 8 | to_pitch,
        }
    }

    /// The pitch a step of symbol `symbol` after `from` lands on, when the step
    /// takes `gap` grid steps (`symbol`'s inverse, for masking).
    pub fn pitch_after(self, from: SequencedNote, gap: u64, symbol: u32) -> Option<u8> {
        let pitch = match self {
            CopyKind::Exact => (symbol >> 16) & 0x7f,
            CopyKind::Transposed => ((symbol >> 16) + u32::from(from.pitch)).checked_sub(128)?,
            CopyKind::OnsetOrder => symbol & 0xff,
        };
        let to =
            SequencedNote { onset: from.onset + gap, pitch: u8::try_from(pitch).ok().filter(|&p| p < 128)? };
        (self.symbol(from, to) == symbol).then_some(to.pitch)
    }
}

/// A note as the index sees it: its pitch and its onset on the grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SequencedNote {
    /// Grid steps from the start (ordered first: the sequence is by onset, then pitch).
    pub onset: u64,
    pub pitch: u8,
}

impl SequencedNote {
    pub fn new(pitch: u8, start_beat: f64) -> SequencedNote {
        SequencedNote { onset: grid_steps(start_beat), pitch }
    }
}

/// The notes in onset order: by grid onset, then pitch from low to high (a chord is
/// read bottom up, as the `events` decoder writes it). Notes of the same pitch at
/// the same onset are one note (a unison of two parts sounds one pitch). Each
/// note comes with the index of the first `notes` entry it stands for.
pub fn onset_sequence<'a>(notes: impl IntoIterator<Item = &'a AnalysisNote>) -> Vec<(SequencedNote, usize)> {
    let mut sequence: Vec<(SequencedNote, usize)> = notes
        .into_iter()
        .enumerate()
        .map(|(index, note)| (SequencedNote::new(note.pitch, note.start_beat), index))
        .collect();
    sequence.sort_unstable();
    sequence.dedup_by_key(|(note, _)| *note);
    sequence
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_symbol_leads_back_to_its_pitch() {
        let from = SequencedNote { onset: 48, pitch: 64 };
        for kind in CopyKind::ALL {
            for pitch in 0..128u8 {
                for gap in [0, 1, 12, LONGEST_DISTINCT_GAP, LONGEST_DISTINCT_GAP + 50] {
                    let to = SequencedNote { onset: from.onset + gap, pitch };
                    let symbol = kind.symbol(from, to);
                    assert_ne!(symbol, PIECE_END);
                    assert_eq!(kind.pitch_after(from, gap, symbol), Some(pitch), "{kind:?} {pitch} {gap}");
                }
            }
        }
        let step = CopyKind::Exact.symbol(from, SequencedNote { onset: 60, pitch: 67 });
        assert_eq!(CopyKind::Exact.pitch_after(from, 24, step), None, "another gap is another symbol");
        let transposed = SequencedNote { onset: 0, pitch: 68 };
        let third = CopyKind::Transposed.symbol(from, SequencedNote { onset: 60, pitch: 67 });
        assert_eq!(CopyKind::Transposed.pitch_after(transposed, 12, third), Some(71));
    }
}
