//! Keeping a decoder from copying: which next notes would extend a run copied from
//! the training data beyond N notes.

use std::sync::Arc;

use super::automaton::Match;
use super::index::OriginalityIndex;
use super::symbols::{CopyKind, PIECE_END, SequencedNote};

/// Follows a piece as it is generated, note by note, and names the pitches that
/// may not come next.
///
/// Notes must arrive in onset order, a chord from its lowest note up (as the
/// `events` decoder writes them); a repeat of the last note (same onset and pitch)
/// is ignored, as [`OriginalityIndex::lookup`] merges unisons. Then no run the
/// lookup reports for the notes pushed is longer than `max_copied_notes`, for the
/// kinds guarded, as long as every note pushed was allowed.
///
/// Cost per step, per kind guarded: `push` follows one edge (a binary search over a
/// state's edges, plus suffix links, amortised constant); `forbidden_pitches`
/// walks suffix links up to the state of the last N notes and reads its edges, one
/// per distinct continuation of those notes in the training data (a handful for
/// N ≥ 3). With N = 1 that state is the root, whose edges are every distinct step
/// of the training data.
#[derive(Debug, Clone)]
pub struct CopyGuard {
    index: Arc<OriginalityIndex>,
    /// Steps (pairs of notes) a run may have: one less than its notes.
    max_steps: u32,
    matches: Vec<(CopyKind, Match)>,
    last: Option<SequencedNote>,
}

impl CopyGuard {
    /// A guard for an empty piece. `max_copied_notes` below 1 counts as 1 (no two
    /// consecutive notes as in the training data).
    pub fn new(index: Arc<OriginalityIndex>, max_copied_notes: u32, kinds: &[CopyKind]) -> CopyGuard {
        let mut kinds = kinds.to_vec();
        kinds.sort_unstable();
        kinds.dedup();
        CopyGuard {
            index,
            max_steps: max_copied_notes.max(1) - 1,
            matches: kinds.into_iter().map(|kind| (kind, Match::NONE)).collect(),
            last: None,
        }
    }

    /// The pitches that, as the next note at `start_beat`, would make a run of more
    /// than `max_copied_notes` notes copied from one training piece.
    pub fn forbidden_pitches(&self, start_beat: f64) -> PitchSet {
        let mut forbidden = PitchSet::default();
        let Some(last) = self.last else { return forbidden };
        let gap = SequencedNote::new(0, start_beat).onset.saturating_sub(last.onset);
        for &(kind, matched) in &self.matches {
            let automaton = self.index.automaton(kind);
            let Some(followers) = automaton.followers(matched, self.max_steps) else { continue };
            let pitches = followers.iter().filter(|&&symbol| symbol != PIECE_END);
            for pitch in pitches.filter_map(|&symbol| kind.pitch_after(last, gap, symbol)) {
                forbidden.insert(pitch);
            }
        }
        forbidden
    }

    /// The next note of the piece.
    pub fn push(&mut self, pitch: u8, start_beat: f64) {
        let note = SequencedNote::new(pitch, start_beat);
        if let Some(last) = self.last.filter(|&last| last != note) {
            for (kind, matched) in &mut self.matches {
                *matched = self.index.automaton(*kind).extend(*matched, kind.symbol(last, note));
            }
        }
        self.last = Some(note);
    }
}

/// A set of MIDI pitches (0..=127).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PitchSet(u128);

impl PitchSet {
    pub fn contains(self, pitch: u8) -> bool {
        pitch < 128 && self.0 & (1 << pitch) != 0
    }

    fn insert(&mut self, pitch: u8) {
        self.0 |= 1 << pitch;
    }

    pub fn iter(self) -> impl Iterator<Item = u8> {
        (0..128).filter(move |&pitch| self.contains(pitch))
    }
}
