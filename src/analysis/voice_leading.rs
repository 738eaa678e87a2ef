//! Part-writing faults of a piece in voices, as harmony teaching counts them:
//! parallel fifths and octaves, voice crossings, and notes outside a voice's range.
//!
//! The piece is read at every onset of any voice: each voice sounds the note it
//! holds there (its highest, if it holds several), or rests. Between two such
//! moments, two voices that both move, in the same direction, from one perfect
//! fifth (or octave, or unison, compound or not) to another of the same kind move
//! in parallel. Two voices cross at a moment where the one written higher sounds
//! lower.

use super::AnalysisNote;

/// The four voices' usual ranges (MIDI pitches, inclusive), highest voice first:
/// soprano C4–G5, alto G3–D5, tenor C3–G4, bass E2–C4.
pub const SATB_RANGES: [(u8, u8); 4] = [(60, 79), (55, 74), (48, 67), (40, 60)];

/// Faults counted in one piece.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VoiceLeading {
    pub notes: usize,
    pub parallel_fifths: usize,
    pub parallel_octaves: usize,
    pub crossings: usize,
    pub out_of_range: usize,
}

impl VoiceLeading {
    /// Counts the faults of `voices` (highest first); `ranges` gives each voice's
    /// range, and voices beyond it have none.
    pub fn of(voices: &[Vec<AnalysisNote>], ranges: &[(u8, u8)]) -> VoiceLeading {
        let mut moments: Vec<f64> = voices.iter().flatten().map(|note| note.start_beat).collect();
        moments.sort_by(f64::total_cmp);
        moments.dedup_by(|a, b| (*a - *b).abs() < 1e-9);
        let sounding: Vec<Vec<Option<u8>>> =
            moments.iter().map(|&at| voices.iter().map(|voice| held(voice, at)).collect()).collect();
        let mut faults = VoiceLeading {
            notes: voices.iter().map(Vec::len).sum(),
            out_of_range: voices
                .iter()
                .zip(ranges)
                .map(|(voice, &(low, high))| {
                    voice.iter().filter(|n| !(low..=high).contains(&n.pitch)).count()
                })
                .sum(),
            ..VoiceLeading::default()
        };
        for (index, now) in sounding.iter().enumerate() {
            for upper in 0..now.len() {
                for lower in upper + 1..now.len() {
                    if let (Some(high), Some(low)) = (now[upper], now[lower])
                        && high < low
                    {
                        faults.crossings += 1;
                    }
                    let Some(before) = index.checked_sub(1).map(|i| &sounding[i]) else { continue };
                    let (Some(a0), Some(b0), Some(a1), Some(b1)) =
                        (before[upper], before[lower], now[upper], now[lower])
                    else {
                        continue;
                    };
                    let same_direction = (a1 > a0 && b1 > b0) || (a1 < a0 && b1 < b0);
                    let class = |a: u8, b: u8| a.abs_diff(b) % 12;
                    if same_direction && class(a0, b0) == class(a1, b1) {
                        match class(a1, b1) {
                            7 => faults.parallel_fifths += 1,
                            0 => faults.parallel_octaves += 1,
                            _ => {}
                        }
                    }
                }
            }
        }
        faults
    }

    pub fn add(&mut self, other: &VoiceLeading) {
        self.notes += other.notes;
        self.parallel_fifths += other.parallel_fifths;
        self.parallel_octaves += other.parallel_octaves;
        self.crossings += other.crossings;
        self.out_of_range += other.out_of_range;
    }

    /// `count` per 100 notes.
    pub fn per_100_notes(&self, count: usize) -> f64 {
        100.0 * count as f64 / self.notes.max(1) as f64
    }
}

/// The pitch a voice holds at `at`: its highest note sounding there.
fn held(voice: &[AnalysisNote], at: f64) -> Option<u8> {
    voice
        .iter()
        .filter(|note| note.start_beat <= at + 1e-9 && at + 1e-9 < note.start_beat + note.duration_beats)
        .map(|note| note.pitch)
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn voice(notes: &[(u8, f64, f64)]) -> Vec<AnalysisNote> {
        notes
            .iter()
            .map(|&(pitch, start_beat, duration_beats)| AnalysisNote {
                pitch,
                program: 52,
                start_beat,
                duration_beats,
            })
            .collect()
    }

    #[test]
    fn parallels_crossings_and_ranges_are_counted_as_taught() {
        // G4 A4 B4 over C3 D3 E3: a twelfth (a compound fifth) each time, rising:
        // two parallel fifths.
        let soprano = voice(&[(67, 0.0, 1.0), (69, 1.0, 1.0), (71, 2.0, 1.0)]);
        let bass = voice(&[(48, 0.0, 1.0), (50, 1.0, 1.0), (52, 2.0, 1.0)]);
        let faults = VoiceLeading::of(&[soprano, bass], &SATB_RANGES[..]);
        assert_eq!(faults.parallel_fifths, 2);
        assert_eq!((faults.parallel_octaves, faults.crossings), (0, 0));
        assert_eq!(
            faults.out_of_range, 3,
            "the lower voice is read as the alto, and C3 to E3 lie below its G3"
        );

        // Octaves in contrary motion are no parallels; a held note does not move.
        let upper = voice(&[(72, 0.0, 1.0), (60, 1.0, 2.0)]);
        let lower = voice(&[(60, 0.0, 1.0), (72, 1.0, 1.0), (67, 2.0, 1.0)]);
        let faults = VoiceLeading::of(&[upper, lower], &[]);
        assert_eq!((faults.parallel_octaves, faults.parallel_fifths), (0, 0));
        // At beats 1 and 2 the upper voice sings below the lower: two crossings.
        assert_eq!(faults.crossings, 2);
        assert_eq!(faults.out_of_range, 0, "no ranges given");

        let octaves = VoiceLeading::of(
            &[voice(&[(72, 0.0, 1.0), (74, 1.0, 1.0)]), voice(&[(60, 0.0, 1.0), (62, 1.0, 1.0)])],
            &[],
        );
        assert_eq!(octaves.parallel_octaves, 1);
        assert_eq!(octaves.per_100_notes(octaves.parallel_octaves), 25.0);
    }
}
