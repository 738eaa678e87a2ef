//! `fugue render song.mid --out song.wav`: a MIDI file played through the
//! SoundFont, written chunk by chunk (any length in the same memory).

use std::io::Write;

use anyhow::Context;

use crate::audio::{CHANNELS, CHUNK_FRAMES, Render, load_font, wav_header};
use crate::cli::args::RenderArgs;

pub fn render(args: &RenderArgs) -> anyhow::Result<()> {
    let bytes = std::fs::read(&args.midi).with_context(|| format!("reading {}", args.midi.display()))?;
    let score = crate::midi::read(&bytes).with_context(|| format!("reading {}", args.midi.display()))?;
    let font = load_font(&args.soundfont)?;
    let mut render = Render::new(&font, &score);
    let header = wav_header(render.total_frames()).context("the piece is too long for a WAV file")?;
    let file =
        std::fs::File::create(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let mut out = std::io::BufWriter::new(file);
    out.write_all(&header)?;
    let mut samples = Vec::with_capacity(CHUNK_FRAMES * CHANNELS);
    loop {
        samples.clear();
        if !render.next_chunk(&mut samples) {
            break;
        }
        for sample in &samples {
            out.write_all(&sample.to_le_bytes())?;
        }
    }
    out.flush()?;
    eprintln!("{}: {:.2} s of audio", args.out.display(), render.seconds());
    Ok(())
}
