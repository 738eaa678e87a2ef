//! FLAC, streamed: the header (`fLaC` and STREAMINFO with the total length) first,
//! then one frame per render chunk, each encoded on its own by `flacenc`, so a
//! FLAC file streams in the same bounded memory as a WAV. The MD5 of the samples
//! is left unset (zero means "not computed" in FLAC), since it is known only at
//! the end, after the header has gone out.

use flacenc::bitsink::ByteSink;
use flacenc::component::{BitRepr, Stream, StreamInfo};
use flacenc::config;
use flacenc::error::{Verified, Verify};
use flacenc::source::{Fill, FrameBuf};

use super::render::{CHANNELS, CHUNK_FRAMES, SAMPLE_RATE};

const BITS_PER_SAMPLE: usize = 16;

/// Encodes render chunks into FLAC frames.
pub struct FlacWriter {
    config: Verified<config::Encoder>,
    info: StreamInfo,
    framebuf: FrameBuf,
    frame_number: usize,
    samples: Vec<i32>,
}

impl FlacWriter {
    /// The writer and the stream's header, for a piece of `total_frames` frames.
    pub fn new(total_frames: u64) -> anyhow::Result<(FlacWriter, Vec<u8>)> {
        let mut stream = Stream::new(SAMPLE_RATE as usize, CHANNELS, BITS_PER_SAMPLE)?;
        let info = stream.stream_info_mut();
        info.set_block_sizes(CHUNK_FRAMES, CHUNK_FRAMES)?;
        info.set_frame_sizes(0, 0)?;
        info.set_total_samples(usize::try_from(total_frames)?);
        let mut sink = ByteSink::new();
        stream.write(&mut sink).map_err(|error| anyhow::anyhow!("writing the FLAC header: {error:?}"))?;
        let config = config::Encoder::default()
            .into_verified()
            .map_err(|(_, error)| anyhow::anyhow!("flacenc's default configuration: {error}"))?;
        let writer = FlacWriter {
            config,
            info: stream.stream_info().clone(),
            framebuf: FrameBuf::with_size(CHANNELS, CHUNK_FRAMES)?,
            frame_number: 0,
            samples: Vec::with_capacity(CHUNK_FRAMES * CHANNELS),
        };
        Ok((writer, sink.into_inner()))
    }

    /// One chunk of interleaved samples (at most [`CHUNK_FRAMES`] frames) as a FLAC frame.
    pub fn frame(&mut self, interleaved: &[i16]) -> anyhow::Result<Vec<u8>> {
        let frames = interleaved.len() / CHANNELS;
        anyhow::ensure!(frames > 0 && frames <= CHUNK_FRAMES, "{frames} frames in a FLAC frame");
        self.samples.clear();
        self.samples.extend(interleaved.iter().map(|&sample| i32::from(sample)));
        self.framebuf.resize(frames);
        self.framebuf.fill_interleaved(&self.samples).map_err(|error| anyhow::anyhow!("{error}"))?;
        let frame =
            flacenc::encode_fixed_size_frame(&self.config, &self.framebuf, self.frame_number, &self.info)
                .map_err(|error| anyhow::anyhow!("encoding a FLAC frame: {error}"))?;
        self.frame_number += 1;
        let mut sink = ByteSink::new();
        frame.write(&mut sink).map_err(|error| anyhow::anyhow!("writing a FLAC frame: {error:?}"))?;
        Ok(sink.into_inner())
    }
}
