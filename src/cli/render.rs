//! `fugue render song.mid --out song.wav` (or `song.flac`): a MIDI file played
//! through the SoundFont, written chunk by chunk (any length in the same memory).

use std::io::Write;

use anyhow::Context;

use crate::audio::{CHANNELS, CHUNK_FRAMES, FlacWriter, Render, load_font, wav_header};
use crate::cli::args::RenderArgs;

pub fn render(args: &RenderArgs) -> anyhow::Result<()> {
    let bytes = std::fs::read(&args.midi).with_context(|| format!("reading {}", args.midi.display()))?;
    let score = crate::midi::read(&bytes).with_context(|| format!("reading {}", args.midi.display()))?;
    let font = load_font(&args.soundfont)?;
    let mut render = Render::new(&font, &score);
    let flac = args.out.extension().is_some_and(|extension| extension.eq_ignore_ascii_case("flac"));
    let file =
        std::fs::File::create(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let mut writer = if flac {
        let (writer, header) = FlacWriter::new(render.total_frames())?;
        out.write_all(&header)?;
        Some(writer)
    } else {
        out.write_all(&wav_header(render.total_frames()).context("the piece is too long for a WAV file")?)?;
        None
    };
    let mut samples = Vec::with_capacity(CHUNK_FRAMES * CHANNELS);
    loop {
        samples.clear();
        if !render.next_chunk(&mut samples) {
            break;
        }
        match writer.as_mut() {
            Some(writer) => out.write_all(&writer.frame(&samples)?)?,
            None => {
                for sample in &samples {
                    out.write_all(&sample.to_le_bytes())?;
                }
            }
        }
    }
    out.flush()?;
    eprintln!("{}: {:.2} s of audio", args.out.display(), render.seconds());
    Ok(())
}
