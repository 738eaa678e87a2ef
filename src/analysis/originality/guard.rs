//! Keeping a decoder from copying: which next notes would extend a run copied from
//! the training data beyond N notes.

use std::sync::Arc;

use super::automaton::Match;
use super::index::OriginalityIndex;
use super::symbols::{CopyKind, PIECE_END, SequencedNote};

/// Follows a piece as it is generated, note by note, and names the pitches that
/// may not come next.
///
/// Notes must arrive in onset order; the notes of one onset (a chord) may come in
/// any order: a model with parts writes its soprano before its bass, while the
/// lookup reads a chord bottom up. The guard keeps the chord being written apart
/// and checks a new note of it where it falls in the chord, with the chord's
/// later notes after it. A repeat of a note (same onset and pitch) is ignored, as
/// [`OriginalityIndex::lookup`] merges unisons. Then no run the lookup reports for
/// the notes pushed is longer than `max_copied_notes`, for the kinds guarded, as
/// long as every note pushed was allowed.
///
/// Cost per step, per kind guarded: `push` follows one edge (a binary search over a
/// state's edges, plus suffix links, amortised constant); `forbidden` at a new
/// onset walks suffix links up to the state of the last N notes and reads its
/// edges, one per distinct continuation of those notes in the training data (a
/// handful for N ≥ 3); inside a chord of k notes it follows at most k + 1 edges per
/// candidate pitch. With N = 1 that state is the root, whose edges are every
/// distinct step of the training data.
#[derive(Debug, Clone)]
pub struct CopyGuard {
    index: Arc<OriginalityIndex>,
    /// Steps (pairs of notes) a run may have: one less than its notes.
    max_steps: u32,
    /// Per kind guarded, the match after every note before the chord.
    committed: Vec<(CopyKind, Match)>,
    /// The last note before the chord.
    before: Option<SequencedNote>,
    /// The chord being written: its onset and its pitches, ascending.
    chord: Option<(u64, Vec<u8>)>,
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
            committed: kinds.into_iter().map(|kind| (kind, Match::NONE)).collect(),
            before: None,
            chord: None,
        }
    }

    /// The most notes a copied run may have.
    pub fn max_copied_notes(&self) -> u32 {
        self.max_steps + 1
    }

    /// The pitches that, as the next note at `start_beat`, would make a run of more
    /// than `max_copied_notes` notes copied from one training piece.
    pub fn forbidden_pitches(&self, start_beat: f64) -> PitchSet {
        self.forbidden(start_beat, PitchSet::ALL)
    }

    /// [`CopyGuard::forbidden_pitches`], asked only about `candidates` (the pitches
    /// the decoder would allow otherwise): inside a chord each one costs a few
    /// steps, so a decoder asks about the few it could take.
    pub fn forbidden(&self, start_beat: f64, candidates: PitchSet) -> PitchSet {
        let onset = SequencedNote::new(0, start_beat).onset;
        match &self.chord {
            Some((at, pitches)) if *at == onset => self.forbidden_in_chord(onset, pitches, candidates),
            _ => self.forbidden_after(onset),
        }
    }

    /// At a new onset: the followers of the last N − 1 steps, after the chord.
    fn forbidden_after(&self, onset: u64) -> PitchSet {
        let mut forbidden = PitchSet::default();
        let (matches, last) = self.after_chord();
        let Some(last) = last else { return forbidden };
        let gap = onset.saturating_sub(last.onset);
        for (kind, matched) in matches {
            let automaton = self.index.automaton(kind);
            let Some(followers) = automaton.followers(matched, self.max_steps) else { continue };
            let pitches = followers.iter().filter(|&&symbol| symbol != PIECE_END);
            for pitch in pitches.filter_map(|&symbol| kind.pitch_after(last, gap, symbol)) {
                forbidden.insert(pitch);
            }
        }
        forbidden
    }

    /// Inside the chord at `onset`: each candidate where it falls among the
    /// chord's pitches, and the chord's later notes after it.
    fn forbidden_in_chord(&self, onset: u64, chord: &[u8], candidates: PitchSet) -> PitchSet {
        let mut forbidden = PitchSet::default();
        for (kind, committed) in &self.committed {
            let automaton = self.index.automaton(*kind);
            // The match and last note after the chord's first i notes.
            let mut prefixes = Vec::with_capacity(chord.len() + 1);
            let (mut matched, mut last) = (*committed, self.before);
            prefixes.push((matched, last));
            for &pitch in chord {
                let note = SequencedNote { onset, pitch };
                if let Some(from) = last {
                    matched = automaton.extend(matched, kind.symbol(from, note));
                }
                last = Some(note);
                prefixes.push((matched, last));
            }
            for pitch in candidates.iter() {
                if forbidden.contains(pitch) {
                    continue;
                }
                let Err(at) = chord.binary_search(&pitch) else { continue };
                let (mut matched, mut last) = prefixes[at];
                let notes = std::iter::once(pitch).chain(chord[at..].iter().copied());
                for note in notes.map(|pitch| SequencedNote { onset, pitch }) {
                    if let Some(from) = last {
                        matched = automaton.extend(matched, kind.symbol(from, note));
                    }
                    last = Some(note);
                    if matched.length > self.max_steps {
                        forbidden.insert(pitch);
                        break;
                    }
                }
            }
        }
        forbidden
    }

    /// The matches and the last note once the chord is read, bottom up.
    fn after_chord(&self) -> (Vec<(CopyKind, Match)>, Option<SequencedNote>) {
        let mut matches = self.committed.clone();
        let mut last = self.before;
        if let Some((onset, chord)) = &self.chord {
            for &pitch in chord {
                let note = SequencedNote { onset: *onset, pitch };
                if let Some(from) = last {
                    for (kind, matched) in &mut matches {
                        *matched = self.index.automaton(*kind).extend(*matched, kind.symbol(from, note));
                    }
                }
                last = Some(note);
            }
        }
        (matches, last)
    }

    /// The next note of the piece.
    pub fn push(&mut self, pitch: u8, start_beat: f64) {
        let onset = SequencedNote::new(pitch, start_beat).onset;
        match &mut self.chord {
            Some((at, chord)) if *at == onset => {
                if let Err(position) = chord.binary_search(&pitch) {
                    chord.insert(position, pitch);
                }
            }
            _ => {
                (self.committed, self.before) = self.after_chord();
                self.chord = Some((onset, vec![pitch]));
            }
        }
    }
}

/// A set of MIDI pitches (0..=127).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PitchSet(u128);

impl PitchSet {
    pub const ALL: PitchSet = PitchSet(u128::MAX);

    pub fn contains(self, pitch: u8) -> bool {
        pitch < 128 && self.0 & (1 << pitch) != 0
    }

    pub fn insert(&mut self, pitch: u8) {
        if pitch < 128 {
            self.0 |= 1 << pitch;
        }
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = u8> {
        (0..128).filter(move |&pitch| self.contains(pitch))
    }
}
