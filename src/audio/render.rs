//! A score played through the synthesizer, a chunk at a time.
//!
//! Every part plays on its own channel with its program (drums on channel 10,
//! which the synthesizer gives the drum bank), each note at its velocity from its
//! onset to its end, at the score's tempos. The audio lasts as long as the music:
//! from the start to the end of the last note, with the last 10 ms faded out so
//! the cut does not click.

use std::sync::Arc;

use rustysynth::{SoundFont, Synthesizer, SynthesizerSettings};

use crate::midi::{Score, assign_channels};

/// Frames per second of the output.
pub const SAMPLE_RATE: u32 = 44_100;
/// Interleaved channels of the output: left, right.
pub const CHANNELS: usize = 2;
/// Frames per chunk (93 ms): what one call to [`Render::next_chunk`] makes, and so,
/// with the font, all the memory a render holds besides the score's events.
pub const CHUNK_FRAMES: usize = 4096;
/// Voices sounding at once before the synthesizer steals the oldest.
const POLYPHONY: usize = 256;
/// The fade at the end: 10 ms.
const FADE_FRAMES: u64 = SAMPLE_RATE as u64 / 100;

/// A note starting or ending at a frame, on a channel.
#[derive(Debug, Clone, Copy)]
struct Event {
    frame: u64,
    /// Note-offs (0) sort before note-ons (1) at a frame, so a repeated pitch restarts.
    on: bool,
    channel: u8,
    program: u8,
    key: u8,
    velocity: u8,
}

/// A render in progress; [`Render::next_chunk`] until it answers `false`.
pub struct Render {
    synth: Synthesizer,
    events: Vec<Event>,
    next_event: usize,
    frame: u64,
    total_frames: u64,
    programs: [Option<u8>; 16],
    left: Vec<f32>,
    right: Vec<f32>,
}

impl Render {
    pub fn new(font: &Arc<SoundFont>, score: &Score) -> Render {
        let mut settings = SynthesizerSettings::new(SAMPLE_RATE as i32);
        settings.maximum_polyphony = POLYPHONY;
        let synth = Synthesizer::new(font, &settings)
            .expect("the settings are within rustysynth's ranges: this is a bug");
        // Channels the General MIDI way: a part of its own per channel, drums on 10.
        let mut parts = score.parts.clone();
        assign_channels(&mut parts);
        let tempo = score.tempo_map();
        let frame_at = |tick: u64| (tempo.seconds(tick) * f64::from(SAMPLE_RATE)).round() as u64;
        let mut events = Vec::with_capacity(score.note_count() * 2);
        for part in &parts {
            for note in &part.notes {
                let event = Event {
                    frame: frame_at(note.start),
                    on: true,
                    channel: part.channel,
                    program: part.program,
                    key: note.pitch.min(127),
                    velocity: note.velocity.clamp(1, 127),
                };
                events.push(event);
                events.push(Event { frame: frame_at(note.end()), on: false, ..event });
            }
        }
        events.sort_by_key(|event| (event.frame, event.on));
        let total_frames = frame_at(score.end_tick());
        Render {
            synth,
            events,
            next_event: 0,
            frame: 0,
            total_frames,
            programs: [None; 16],
            left: vec![0.0; CHUNK_FRAMES],
            right: vec![0.0; CHUNK_FRAMES],
        }
    }

    /// Frames in the whole render.
    pub fn total_frames(&self) -> u64 {
        self.total_frames
    }

    /// Seconds of audio in the whole render.
    pub fn seconds(&self) -> f64 {
        self.total_frames as f64 / f64::from(SAMPLE_RATE)
    }

    /// Appends the next chunk (at most [`CHUNK_FRAMES`] frames) to `out` as
    /// interleaved 16-bit samples; `false` once the render is complete.
    pub fn next_chunk(&mut self, out: &mut Vec<i16>) -> bool {
        let end = (self.frame + CHUNK_FRAMES as u64).min(self.total_frames);
        if self.frame >= end {
            return false;
        }
        let start = self.frame;
        let mut written = 0usize;
        while self.frame < end {
            self.play_events_due();
            // Up to the next event, or the chunk's end.
            let until =
                self.events.get(self.next_event).map_or(end, |event| event.frame.clamp(self.frame + 1, end));
            let n = (until - self.frame) as usize;
            self.synth.render(&mut self.left[written..written + n], &mut self.right[written..written + n]);
            written += n;
            self.frame = until;
        }
        let fade_from = self.total_frames.saturating_sub(FADE_FRAMES);
        out.reserve(written * CHANNELS);
        for i in 0..written {
            let frame = start + i as u64;
            let gain = if frame >= fade_from {
                (self.total_frames - frame) as f32 / FADE_FRAMES as f32
            } else {
                1.0
            };
            out.push(to_i16(self.left[i] * gain));
            out.push(to_i16(self.right[i] * gain));
        }
        true
    }

    fn play_events_due(&mut self) {
        while let Some(&event) = self.events.get(self.next_event).filter(|event| event.frame <= self.frame) {
            let channel = i32::from(event.channel);
            if event.on {
                if self.programs[usize::from(event.channel)] != Some(event.program) {
                    self.synth.process_midi_message(channel, 0xC0, i32::from(event.program), 0);
                    self.programs[usize::from(event.channel)] = Some(event.program);
                }
                self.synth.note_on(channel, i32::from(event.key), i32::from(event.velocity));
            } else {
                self.synth.note_off(channel, i32::from(event.key));
            }
            self.next_event += 1;
        }
    }
}

fn to_i16(sample: f32) -> i16 {
    (sample * 32767.0).round().clamp(-32768.0, 32767.0) as i16
}
