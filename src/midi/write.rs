//! [`Score`] → standard MIDI file (format 1).
//!
//! Track 0 is the conductor (time signatures, key signatures, tempos and program
//! changes); every part follows as its own track with its name and notes, on the
//! part's channel; a drum part always on channel 10 (index 9), where General MIDI
//! plays drums. Parts keep the channels they have: [`assign_channels`] gives
//! decoded parts theirs, and a score read from a file writes back as it was.
//!
//! [`assign_channels`]: super::assign_channels At equal
//! ticks note-offs come before note-ons, so a repeated pitch is not cut short.
//!
//! Program changes sit in the conductor, per channel, where the program of the notes
//! starting there changes: a program change belongs to a channel, not to a track, so
//! parts sharing a channel with different programs (as the reader makes them) must
//! not each announce theirs at tick 0. The fuzzer found that one.

use midly::num::{u4, u7, u15, u24, u28};
use midly::{Format, Header, MetaMessage, MidiMessage, Smf, Timing, TrackEvent, TrackEventKind};

use super::gm::DRUM_CHANNEL;
use super::score::{Part, Score};

pub fn write(score: &Score) -> Vec<u8> {
    let header =
        Header::new(Format::Parallel, Timing::Metrical(u15::new(score.ticks_per_beat.clamp(1, 0x7fff))));
    let mut smf = Smf::new(header);
    smf.tracks.push(with_deltas(conductor_events(score)));
    for part in &score.parts {
        smf.tracks.push(with_deltas(part_events(part)));
    }
    let mut bytes = Vec::new();
    smf.write_std(&mut bytes).expect("writing into a Vec cannot fail: this is a bug");
    bytes
}

/// An event at an absolute tick; `order` breaks ties within a tick.
type Timed<'a> = (u64, u8, TrackEventKind<'a>);

fn conductor_events(score: &Score) -> Vec<Timed<'_>> {
    let mut events = Vec::new();
    for signature in &score.time_signatures {
        let power = signature.denominator.max(1).ilog2() as u8;
        // 24 MIDI clocks per metronome click and 8 32nd notes per beat: the usual values.
        let meta = MetaMessage::TimeSignature(signature.numerator, power, 24, 8);
        events.push((signature.tick, 0, TrackEventKind::Meta(meta)));
    }
    for key in &score.key_signatures {
        events.push((key.tick, 1, TrackEventKind::Meta(MetaMessage::KeySignature(key.sharps, key.minor))));
    }
    for tempo in &score.tempos {
        let micros = u24::new(tempo.micros_per_beat.clamp(1, 0xff_ffff));
        events.push((tempo.tick, 2, TrackEventKind::Meta(MetaMessage::Tempo(micros))));
    }
    events.extend(program_changes(score));
    events
}

/// Per channel, a program change before the first note and wherever the program
/// of the notes starting at a tick differs from the one in force.
fn program_changes(score: &Score) -> Vec<Timed<'static>> {
    let mut onsets: Vec<(u8, u64, u8)> = score
        .parts
        .iter()
        .flat_map(|part| {
            part.notes.iter().map(move |note| (channel_of(part), note.start, part.program.min(127)))
        })
        .collect();
    onsets.sort_unstable();
    onsets.dedup();
    let mut in_force: [Option<u8>; 16] = [None; 16];
    let mut events = Vec::new();
    for (channel, tick, program) in onsets {
        if in_force[usize::from(channel)] != Some(program) {
            in_force[usize::from(channel)] = Some(program);
            let message = MidiMessage::ProgramChange { program: u7::new(program) };
            events.push((tick, 3, TrackEventKind::Midi { channel: u4::new(channel), message }));
        }
    }
    events
}

fn part_events(part: &Part) -> Vec<Timed<'_>> {
    let channel = u4::new(channel_of(part));
    let midi = |message| TrackEventKind::Midi { channel, message };
    let mut events = Vec::with_capacity(2 + part.notes.len() * 2);
    if let Some(name) = &part.name {
        events.push((0, 0, TrackEventKind::Meta(MetaMessage::TrackName(name.as_bytes()))));
    }
    for note in &part.notes {
        let key = u7::new(note.pitch.min(127));
        let vel = u7::new(note.velocity.clamp(1, 127));
        events.push((note.end(), 2, midi(MidiMessage::NoteOff { key, vel: u7::new(0) })));
        events.push((note.start, 3, midi(MidiMessage::NoteOn { key, vel })));
    }
    events
}

fn channel_of(part: &Part) -> u8 {
    if part.is_drum { DRUM_CHANNEL } else { part.channel.min(15) }
}

/// Sorts by (tick, order), converts to delta times and ends the track.
fn with_deltas(mut events: Vec<Timed<'_>>) -> Vec<TrackEvent<'_>> {
    // Stable: notes of one tick keep the order of the part's (start, pitch) sort.
    events.sort_by_key(|&(tick, order, _)| (tick, order));
    let end = events.last().map_or(0, |&(tick, _, _)| tick);
    events.push((end, u8::MAX, TrackEventKind::Meta(MetaMessage::EndOfTrack)));
    let mut track = Vec::with_capacity(events.len());
    let mut now = 0u64;
    for (tick, _, kind) in events {
        let mut delta = tick - now;
        // A gap longer than one delta can hold is bridged by empty text events,
        // which readers ignore.
        while delta > u64::from(u28::max_value().as_int()) {
            let step = u28::max_value();
            track.push(TrackEvent { delta: step, kind: TrackEventKind::Meta(MetaMessage::Text(b"")) });
            delta -= u64::from(step.as_int());
        }
        track.push(TrackEvent { delta: u28::new(delta as u32), kind });
        now = tick;
    }
    track
}
