//! Originality: how many consecutive notes of a piece are copied from one training
//! piece, and from where; and a guard that keeps a decoder under a copy limit.
//!
//! # What is compared
//!
//! A piece is read as one sequence of notes in **onset order**: every pitched note
//! of every part, by onset on a grid of 24 steps per beat (the `events` grid), and
//! at one onset from the lowest pitch up (a chord is read bottom up, as the decoder
//! writes it). Durations, velocities and parts are ignored; two notes of one pitch
//! at one onset (a unison of two parts) are one note. A **run** is a stretch of
//! consecutive notes of this sequence; it is copied when a training piece's
//! sequence holds the same stretch, compared in one of three ways ([`CopyKind`]):
//! - **exact**: the same pitches and the same **onset pattern**, i.e. the same
//!   inter-onset intervals between the run's successive notes, in grid steps (0
//!   between the notes of a chord; gaps longer than 16 beats all count as equal).
//!   The gap before the run's first note does not matter;
//! - **transposed**: the same onset pattern and the same intervals between
//!   successive pitches, so a copy a third higher is still a copy (and an exact
//!   copy is a transposed copy by 0 semitones);
//! - **onset order**: the same pitches in the same order, whatever the onset
//!   pattern: a copy in other note values, or a chord arpeggiated, still counts.
//!
//! # The index
//!
//! Each kind gives every pair of consecutive notes a `u32` symbol (pitches or
//! interval, and gap), so a run of k notes is a string of k − 1 symbols. The
//! training pieces' strings are joined, each closed by a symbol no query holds,
//! and a **suffix automaton** is built over the result for each kind. Following a
//! query through it yields, at each note, the longest copied run ending there
//! ("matching statistics"), so a lookup costs O(query notes) binary searches,
//! whatever the corpus size, and reports the piece and bar of the run's first
//! occurrence.
//!
//! Why a suffix automaton rather than hashed n-grams: it answers the longest run
//! exactly, with no largest n to choose and no hash collisions; its size is linear
//! in the training notes with a known worst case; and it is incremental: the
//! match after one more note is one edge away, and the continuations that would
//! make a run too long are the edges of one state. That is what the decoder's
//! [`CopyGuard`] needs at every step. (A suffix array would be smaller but answers
//! neither question in O(1) per note.)
//!
//! **Bound.** For n training notes each automaton has at most 2n states (16 bytes
//! each) and 3n edges (8 bytes each): at most 56n bytes per kind, 173n bytes for
//! the whole index with each note's pitch and bar; [`MAX_INDEXED_NOTES`] caps n
//! at a million. The 410 Bach chorales (`fugue bench originality`) make 117,489
//! notes, 550,366 states and 782,182 edges: 15.7 MB in memory (133 bytes per
//! note), 25 MB as JSON.
//!
//! The index is serde-serialisable; reading one checks every array against the
//! others, so a corrupt file is refused rather than making a lookup panic or loop.
//! A model artifact stores the smaller [`IndexedCorpus`] instead (the training
//! notes the automata are built from, about 8 bytes of JSON per note) and builds
//! the index from it when the model is loaded.

mod automaton;
mod guard;
mod index;
mod stored;
mod symbols;

pub use guard::{CopyGuard, PitchSet};
pub use index::{
    CopiedRun, CopyReport, Exclusion, IndexError, IndexSize, MAX_INDEXED_NOTES, OriginalityIndex,
};
pub use stored::IndexedCorpus;
pub use symbols::CopyKind;

#[cfg(test)]
mod tests;
