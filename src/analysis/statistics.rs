//! Musical statistics of a piece, in the manner of MGEval (Yang & Lerch, "On the
//! evaluation of generative models in music", 2020), and the comparison of two
//! sets of pieces (generated ones against held-out files).
//!
//! Per piece ([`PieceStatistics`]), over every pitched note of every part:
//! - **pitch classes**: the share of notes on each pitch class, C first (12 bins);
//! - **pitch range**: highest minus lowest pitch, in semitones;
//! - **mean polyphony**: notes sounding at once, averaged over the time at least
//!   one sounds (the sum of note durations over the length of their union);
//! - **notes per beat**: notes over the beats from the first onset to the last end;
//! - **inter-onset intervals**: the gaps between successive distinct onsets
//!   (onsets on the 24-per-beat grid; a chord is one onset), in the bins of
//!   [`IOI_BIN_UPPER_BEATS`];
//! - **melodic intervals**: the melody is the top line, the highest pitch starting
//!   at each distinct onset; the histogram counts the absolute intervals between
//!   its successive notes, 0 to 12 semitones, with a 14th bin for wider leaps;
//! - **scale consistency**: the largest share of notes inside one major or
//!   harmonic-minor scale (natural minor has its relative major's pitch classes,
//!   so harmonic minor, with its leading tone, is the minor that adds something),
//!   and that scale.
//!
//! Histograms are normalised to sum to 1, or all 0 when there is nothing to count
//! (a one-onset piece has no intervals). A set's histogram is the mean of its
//! pieces' non-empty ones; two sets' histograms are compared by their
//! **overlap**, the histogram intersection Σ min(aᵢ, bᵢ): 1 for identical
//! histograms, 0 for disjoint ones. (MGEval instead estimates kernel densities of
//! pairwise distances and integrates their overlap; the intersection needs no
//! bandwidth, is exact for histograms and reads the same way.) Scalar features are
//! compared by their means.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::analysis::{AnalysisNote, GRID_PER_BEAT, grid_steps};

/// Upper edges of the inter-onset-interval bins, in beats, each bin holding the
/// gaps above the previous edge up to its own: 16ths and shorter, 8ths (and 8th
/// triplets), dotted 8ths (and quarter triplets), quarters, up to a dotted
/// quarter, halves, up to a dotted half, wholes, and longer.
pub const IOI_BIN_UPPER_BEATS: [f64; 9] = [0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, f64::INFINITY];

/// Melodic intervals of 0..=12 semitones, and wider.
const MELODIC_INTERVAL_BINS: usize = 14;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Major,
    HarmonicMinor,
}

impl Mode {
    /// Semitones above the tonic.
    fn degrees(self) -> [u8; 7] {
        match self {
            Mode::Major => [0, 2, 4, 5, 7, 9, 11],
            Mode::HarmonicMinor => [0, 2, 3, 5, 7, 8, 11],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Scale {
    /// Pitch class of the tonic, 0 = C.
    pub tonic: u8,
    pub mode: Mode,
}

impl Scale {
    fn contains(self, pitch_class: usize) -> bool {
        self.mode.degrees().iter().any(|&degree| (usize::from(self.tonic + degree)) % 12 == pitch_class)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PieceStatistics {
    pub notes: usize,
    /// Share of notes per pitch class, C first (12 bins).
    pub pitch_classes: Vec<f64>,
    pub lowest_pitch: u8,
    pub highest_pitch: u8,
    /// Semitones from the lowest pitch to the highest.
    pub pitch_range: u8,
    pub mean_polyphony: f64,
    pub notes_per_beat: f64,
    /// Share of inter-onset intervals per bin of [`IOI_BIN_UPPER_BEATS`].
    pub inter_onset_intervals: Vec<f64>,
    /// Share of the top line's intervals of 0, 1, …, 12 semitones and wider (14 bins).
    pub melodic_intervals: Vec<f64>,
    /// Share of notes in `best_scale`.
    pub scale_consistency: f64,
    pub best_scale: Scale,
}

impl PieceStatistics {
    /// None for a piece without notes.
    pub fn of(notes: &[AnalysisNote]) -> Option<PieceStatistics> {
        let lowest_pitch = notes.iter().map(|note| note.pitch).min()?;
        let highest_pitch = notes.iter().map(|note| note.pitch).max()?;
        let mut pitch_classes = [0u32; 12];
        for note in notes {
            pitch_classes[usize::from(note.pitch % 12)] += 1;
        }
        let (best_scale, in_scale) = best_scale(&pitch_classes);
        let top_line = top_line(notes);
        let onsets: Vec<u64> = top_line.iter().map(|&(onset, _)| onset).collect();
        Some(PieceStatistics {
            notes: notes.len(),
            pitch_classes: normalised(&pitch_classes),
            lowest_pitch,
            highest_pitch,
            pitch_range: highest_pitch - lowest_pitch,
            mean_polyphony: mean_polyphony(notes),
            notes_per_beat: notes_per_beat(notes),
            inter_onset_intervals: inter_onset_intervals(&onsets),
            melodic_intervals: melodic_intervals(&top_line),
            scale_consistency: f64::from(in_scale) / notes.len() as f64,
            best_scale,
        })
    }
}

/// Counts as shares of their total; all 0 when there are none.
fn normalised(counts: &[u32]) -> Vec<f64> {
    let total: u32 = counts.iter().sum();
    counts.iter().map(|&count| if total == 0 { 0.0 } else { f64::from(count) / f64::from(total) }).collect()
}

/// The scale holding the most notes and how many it holds; on a tie, major before
/// minor, then the lower tonic.
fn best_scale(pitch_classes: &[u32; 12]) -> (Scale, u32) {
    let scales = [Mode::Major, Mode::HarmonicMinor]
        .into_iter()
        .flat_map(|mode| (0..12).map(move |tonic| Scale { tonic, mode }));
    let held = |scale: Scale| (0..12).filter(|&class| scale.contains(class)).map(|c| pitch_classes[c]).sum();
    scales.fold((Scale { tonic: 0, mode: Mode::Major }, 0), |best, scale| {
        let notes = held(scale);
        if notes > best.1 { (scale, notes) } else { best }
    })
}

/// The sum of the notes' durations over the length of time at least one sounds.
fn mean_polyphony(notes: &[AnalysisNote]) -> f64 {
    let mut spans: Vec<(f64, f64)> =
        notes.iter().map(|note| (note.start_beat, note.start_beat + note.duration_beats)).collect();
    spans.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (mut sounding, mut current): (f64, Option<(f64, f64)>) = (0.0, None);
    for (start, end) in spans {
        current = match current {
            Some((from, to)) if start <= to => Some((from, to.max(end))),
            Some((from, to)) => {
                sounding += to - from;
                Some((start, end))
            }
            None => Some((start, end)),
        };
    }
    sounding += current.map_or(0.0, |(from, to)| to - from);
    let total: f64 = notes.iter().map(|note| note.duration_beats).sum();
    if sounding > 0.0 { total / sounding } else { 0.0 }
}

fn notes_per_beat(notes: &[AnalysisNote]) -> f64 {
    let first = notes.iter().map(|note| note.start_beat).fold(f64::INFINITY, f64::min);
    let last =
        notes.iter().map(|note| note.start_beat + note.duration_beats).fold(f64::NEG_INFINITY, f64::max);
    if last > first { notes.len() as f64 / (last - first) } else { 0.0 }
}

/// The highest pitch starting at each distinct onset (grid steps), in time order.
fn top_line(notes: &[AnalysisNote]) -> Vec<(u64, u8)> {
    let mut line: Vec<(u64, u8)> =
        notes.iter().map(|note| (grid_steps(note.start_beat), note.pitch)).collect();
    // Highest pitch first within an onset, so that dedup keeps it.
    line.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    line.dedup_by_key(|&mut (onset, _)| onset);
    line
}

fn inter_onset_intervals(onsets: &[u64]) -> Vec<f64> {
    let mut bins = [0u32; IOI_BIN_UPPER_BEATS.len()];
    for pair in onsets.windows(2) {
        let gap = (pair[1] - pair[0]) as f64;
        // On the grid, so the edges compare exactly.
        let bin = IOI_BIN_UPPER_BEATS.iter().position(|&edge| gap <= edge * GRID_PER_BEAT);
        bins[bin.unwrap_or(bins.len() - 1)] += 1;
    }
    normalised(&bins)
}

fn melodic_intervals(top_line: &[(u64, u8)]) -> Vec<f64> {
    let mut bins = [0u32; MELODIC_INTERVAL_BINS];
    for pair in top_line.windows(2) {
        bins[usize::from(pair[0].1.abs_diff(pair[1].1)).min(MELODIC_INTERVAL_BINS - 1)] += 1;
    }
    normalised(&bins)
}

/// The histogram intersection Σ min(aᵢ, bᵢ): 1 when two normalised histograms are
/// identical, 0 when they share nothing.
pub fn overlap(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x.min(*y)).sum()
}

/// A set of pieces summarised: mean histograms and mean scalar features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SetStatistics {
    pub pieces: usize,
    pub pitch_classes: Vec<f64>,
    pub inter_onset_intervals: Vec<f64>,
    pub melodic_intervals: Vec<f64>,
    pub mean_pitch_range: f64,
    pub mean_polyphony: f64,
    pub mean_notes_per_beat: f64,
    pub mean_scale_consistency: f64,
}

impl SetStatistics {
    pub fn of(pieces: &[PieceStatistics]) -> SetStatistics {
        let mean = |feature: fn(&PieceStatistics) -> f64| {
            if pieces.is_empty() {
                0.0
            } else {
                pieces.iter().map(feature).sum::<f64>() / pieces.len() as f64
            }
        };
        SetStatistics {
            pieces: pieces.len(),
            pitch_classes: mean_histogram(pieces.iter().map(|piece| &piece.pitch_classes), 12),
            inter_onset_intervals: mean_histogram(
                pieces.iter().map(|piece| &piece.inter_onset_intervals),
                IOI_BIN_UPPER_BEATS.len(),
            ),
            melodic_intervals: mean_histogram(
                pieces.iter().map(|piece| &piece.melodic_intervals),
                MELODIC_INTERVAL_BINS,
            ),
            mean_pitch_range: mean(|piece| f64::from(piece.pitch_range)),
            mean_polyphony: mean(|piece| piece.mean_polyphony),
            mean_notes_per_beat: mean(|piece| piece.notes_per_beat),
            mean_scale_consistency: mean(|piece| piece.scale_consistency),
        }
    }
}

/// The mean of the non-empty histograms (all 0 when none is).
fn mean_histogram<'a>(histograms: impl Iterator<Item = &'a Vec<f64>>, bins: usize) -> Vec<f64> {
    let mut sum = vec![0.0; bins];
    let mut counted = 0;
    for histogram in histograms.filter(|histogram| histogram.iter().any(|&share| share > 0.0)) {
        sum.iter_mut().zip(histogram).for_each(|(total, share)| *total += share);
        counted += 1;
    }
    sum.iter().map(|total| if counted == 0 { 0.0 } else { total / f64::from(counted) }).collect()
}

/// Generated pieces against reference (held-out) pieces.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SetComparison {
    pub pitch_class_overlap: f64,
    pub inter_onset_interval_overlap: f64,
    pub melodic_interval_overlap: f64,
    pub generated: SetStatistics,
    pub reference: SetStatistics,
}

impl SetComparison {
    pub fn of(generated: &[PieceStatistics], reference: &[PieceStatistics]) -> SetComparison {
        SetComparison::of_sets(SetStatistics::of(generated), SetStatistics::of(reference))
    }

    /// Two sets already summarised (a model keeps its held-out files' summary).
    pub fn of_sets(generated: SetStatistics, reference: SetStatistics) -> SetComparison {
        SetComparison {
            pitch_class_overlap: overlap(&generated.pitch_classes, &reference.pitch_classes),
            inter_onset_interval_overlap: overlap(
                &generated.inter_onset_intervals,
                &reference.inter_onset_intervals,
            ),
            melodic_interval_overlap: overlap(&generated.melodic_intervals, &reference.melodic_intervals),
            generated,
            reference,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(pitch: u8, start_beat: f64, duration_beats: f64) -> AnalysisNote {
        AnalysisNote { pitch, program: 0, start_beat, duration_beats }
    }

    /// C4+E4, G4, B3+C5, F#4, D4, C#4: six onsets over six beats.
    fn hand_built() -> Vec<AnalysisNote> {
        vec![
            note(60, 0.0, 1.0),
            note(64, 0.0, 1.0),
            note(67, 1.0, 1.0),
            note(59, 2.0, 1.0),
            note(72, 2.0, 2.0),
            note(66, 3.0, 0.5),
            note(62, 3.5, 0.5),
            note(61, 4.0, 2.0),
        ]
    }

    fn assert_close(actual: &[f64], expected: &[f64]) {
        assert_eq!(actual.len(), expected.len(), "{actual:?}");
        for (a, e) in actual.iter().zip(expected) {
            assert!((a - e).abs() < 1e-12, "{actual:?} against {expected:?}");
        }
    }

    #[test]
    fn a_hand_built_piece_has_the_hand_computed_statistics() {
        let stats = PieceStatistics::of(&hand_built()).unwrap();
        assert_eq!(stats.notes, 8);
        let e = 1.0 / 8.0;
        // C twice (60, 72); C#, D, E, F#, G, B once.
        assert_close(&stats.pitch_classes, &[2.0 * e, e, e, 0.0, e, 0.0, e, e, 0.0, 0.0, 0.0, e]);
        assert_eq!((stats.lowest_pitch, stats.highest_pitch, stats.pitch_range), (59, 72, 13));
        // 9 beats of notes over 6 beats of sound (0 to 6, never silent).
        assert!((stats.mean_polyphony - 1.5).abs() < 1e-12);
        assert!((stats.notes_per_beat - 8.0 / 6.0).abs() < 1e-12);
        // Onsets 0, 1, 2, 3, 3.5, 4: three quarters and two eighths.
        assert_close(&stats.inter_onset_intervals, &[0.0, 0.4, 0.0, 0.6, 0.0, 0.0, 0.0, 0.0, 0.0]);
        // Top line E4 G4 C5 F#4 D4 C#4: 3, 5, 6, 4 and 1 semitones.
        let fifth = 0.2;
        let mut melodic = [0.0; 14];
        for interval in [1, 3, 4, 5, 6] {
            melodic[interval] = fifth;
        }
        assert_close(&stats.melodic_intervals, &melodic);
        // G major holds all but the C#.
        assert_eq!(stats.best_scale, Scale { tonic: 7, mode: Mode::Major });
        assert!((stats.scale_consistency - 7.0 / 8.0).abs() < 1e-12);
    }

    #[test]
    fn a_leading_tone_makes_the_minor_scale_fit_best() {
        // A harmonic minor: A B C D E F G#.
        let notes: Vec<AnalysisNote> = [57, 59, 60, 62, 64, 65, 68, 69]
            .iter()
            .enumerate()
            .map(|(i, &p)| note(p, i as f64, 1.0))
            .collect();
        let stats = PieceStatistics::of(&notes).unwrap();
        assert_eq!(stats.best_scale, Scale { tonic: 9, mode: Mode::HarmonicMinor });
        assert_eq!(stats.scale_consistency, 1.0);
        assert_eq!(PieceStatistics::of(&[]), None);
    }

    #[test]
    fn sets_compare_by_histogram_overlap_and_mean_features() {
        let all_c = PieceStatistics::of(&[note(60, 0.0, 1.0), note(72, 1.0, 1.0)]).unwrap();
        let c_and_g = PieceStatistics::of(&[note(60, 0.0, 1.0), note(67, 2.0, 1.0)]).unwrap();
        // One note: no intervals to count, so it leaves those means alone.
        let lone_g = PieceStatistics::of(&[note(67, 0.0, 4.0)]).unwrap();
        assert_eq!(overlap(&all_c.pitch_classes, &all_c.pitch_classes), 1.0);
        assert_eq!(overlap(&all_c.pitch_classes, &c_and_g.pitch_classes), 0.5);

        let comparison = SetComparison::of(&[all_c], &[c_and_g, lone_g]);
        // Reference pitch classes: mean of (½ C, ½ G) and (all G) = ¼ C, ¾ G.
        assert!((comparison.reference.pitch_classes[0] - 0.25).abs() < 1e-12);
        assert!((comparison.reference.pitch_classes[7] - 0.75).abs() < 1e-12);
        assert!((comparison.pitch_class_overlap - 0.25).abs() < 1e-12);
        // Gaps: one beat (bin 3) against two beats (bin 5), the lone note not counted.
        assert_eq!(comparison.inter_onset_interval_overlap, 0.0);
        assert_eq!(comparison.reference.inter_onset_intervals[5], 1.0);
        // Melodic intervals: 12 against 7 semitones.
        assert_eq!(comparison.melodic_interval_overlap, 0.0);
        // Ranges 12 | 7 and 0: means 12 and 3.5.
        assert_eq!(
            (comparison.generated.mean_pitch_range, comparison.reference.mean_pitch_range),
            (12.0, 3.5)
        );
        assert_eq!(comparison.reference.pieces, 2);
    }
}
