// Compose: the request form, the WebSocket stream into the piano roll, playback,
// downloads and past compositions.

import { ApiProblem, api, clearErrors, showError, socket } from "./api.js";
import { PianoRoll } from "./roll.js";
import { MidiOut } from "./midiout.js";
import { SoundFontSynth } from "./sfsynth.js";

// Request fields → the id suffix of the error line beside their control.
const FIELDS = {
  model: "model", temperature: "temperature", length: "length", seed: "seed", key: "key", scale: "key",
  tempo_bpm: "tempo", program: "program", primer: "primer", pitch_range: "key",
};

const $ = (id) => document.getElementById(id);

export class Composer {
  constructor() {
    this.roll = new PianoRoll($("roll"), $("roll-legend"));
    this.synth = new SoundFontSynth();
    this.synth.midiOut = new MidiOut($("midi-out"));
    this.synth.midiOut.init();
    this.current = null;
    $("compose-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.generate();
    });
    $("temperature").addEventListener("input", () => {
      $("temperature-value").textContent = Number($("temperature").value).toFixed(2);
    });
    $("speed").addEventListener("input", () => {
      $("speed-value").textContent = `${Number($("speed").value).toFixed(2)}×`;
    });
    $("play").addEventListener("click", () => this.play());
    $("stop").addEventListener("click", () => this.stop());
    $("download").addEventListener("click", () => this.download(this.current));
    $("download-audio").addEventListener("click", () => this.download(this.current, "audio"));
  }

  async request() {
    const unit = $("length-unit").value;
    const length = Number($("length").value);
    const body = {
      model: $("model").value || undefined,
      temperature: Number($("temperature").value),
      length: { [unit]: unit === "seconds" ? length : Math.round(length) },
      program: Number($("program").value),
      pacing: $("realtime").checked ? "realtime" : "fast",
    };
    if ($("seed").value !== "") body.seed = Number($("seed").value);
    if ($("key").value) {
      body.key = $("key").value;
      body.scale = $("scale").value;
    }
    if ($("tempo").value !== "") body.tempo_bpm = Number($("tempo").value);
    const primer = $("primer").files[0];
    if (primer) {
      const bytes = new Uint8Array(await primer.arrayBuffer());
      let binary = "";
      for (const byte of bytes) binary += String.fromCharCode(byte);
      body.primer = { midi_base64: btoa(binary) };
    }
    return body;
  }

  async generate() {
    const form = $("compose-form");
    clearErrors(form);
    this.stop();
    const body = await this.request();
    $("generate").disabled = true;
    $("compose-status").textContent = "Starting…";
    this.roll.set([]);
    const ws = socket("/v1/generate/stream");
    ws.addEventListener("open", () => ws.send(JSON.stringify(body)));
    ws.addEventListener("message", (event) => this.receive(JSON.parse(event.data)));
    ws.addEventListener("close", () => {
      $("generate").disabled = false;
    });
    ws.addEventListener("error", () => {
      $("error-general").textContent = "The connection to the server failed.";
    });
    if (body.pacing === "realtime") this.followLive();
  }

  receive(message) {
    if (message.type === "start") {
      $("compose-status").textContent = `Composing with ${message.model}, seed ${message.seed}…`;
    } else if (message.type === "notes") {
      this.roll.add(message.notes);
      $("compose-status").textContent = `Composing… ${this.roll.notes.length} notes`;
    } else if (message.type === "end") {
      const piece = message.composition;
      this.current = piece;
      this.roll.set(piece.notes);
      $("compose-status").textContent =
        `${piece.stats.notes} notes, ${piece.stats.seconds.toFixed(1)} s of music, seed ${piece.seed} ` +
        `(${piece.stats.tokens_per_second.toFixed(0)} tokens/s).`;
      for (const id of ["play", "stop", "download", "download-audio"]) $(id).disabled = false;
      this.refreshHistory();
    } else if (message.type === "error") {
      const problem = new ApiProblem(0, { error: message.error });
      showError(problem, FIELDS, $("error-general"));
      $("compose-status").textContent = "";
    }
  }

  // In real-time mode the notes arrive as they sound: play each as it comes.
  followLive() {
    const started = performance.now();
    let played = 0;
    this.synth.ensure().then(() => {
      const poll = window.setInterval(() => {
        const fresh = this.roll.notes.slice(played);
        played = this.roll.notes.length;
        for (const note of fresh) this.synth.voice(note, this.synth.context.currentTime + 0.02, 1);
        this.roll.setPlayhead((performance.now() - started) / 1000);
        if (!$("generate").disabled) window.clearInterval(poll);
      }, 30);
    });
  }

  play(piece = this.current) {
    if (!piece) return;
    this.current = piece;
    // A past composition played from the list is the one the transport acts on.
    for (const id of ["play", "stop", "download", "download-audio"]) $(id).disabled = false;
    this.roll.set(piece.notes);
    this.synth.play(piece.notes, {
      rate: () => Number($("speed").value),
      loop: () => $("loop").checked,
      onPosition: (seconds) => this.roll.setPlayhead(seconds),
      onEnd: () => this.roll.setPlayhead(null),
    });
  }

  stop() {
    this.synth.stop();
    this.roll.setPlayhead(null);
  }

  // The MIDI file, or (`audio`) the WAV the server renders with its SoundFont.
  async download(piece, what = "midi") {
    if (!piece) return;
    try {
      const url = what === "audio" ? `/v1/compositions/${piece.composition_id}/audio` : piece.midi_url;
      const blob = await api(url, { as: "blob" });
      const link = document.createElement("a");
      link.href = URL.createObjectURL(blob);
      link.download = `fugue-${piece.composition_id}.${what === "audio" ? "wav" : "mid"}`;
      document.body.append(link);
      link.click();
      link.remove();
      URL.revokeObjectURL(link.href);
    } catch (problem) {
      showError(problem, FIELDS, $("error-general"));
    }
  }

  async refreshHistory() {
    const list = $("history");
    try {
      const pieces = await api("/v1/compositions?limit=20");
      list.replaceChildren(
        ...pieces.map((piece) => {
          const item = document.createElement("li");
          const label = document.createElement("span");
          const when = new Date(piece.created_at).toLocaleString();
          label.textContent = `${when} · ${piece.model} · ${piece.stats.notes} notes · seed ${piece.seed}`;
          const play = document.createElement("button");
          play.type = "button";
          play.textContent = "Play";
          play.setAttribute("aria-label", `Play the composition of ${when}`);
          play.addEventListener("click", () => this.play(piece));
          const download = document.createElement("button");
          download.type = "button";
          download.textContent = "Download .mid";
          download.setAttribute("aria-label", `Download the composition of ${when}`);
          download.addEventListener("click", () => this.download(piece));
          item.append(label, play, download);
          return item;
        }),
      );
      if (pieces.length === 0) list.innerHTML = "<li>None yet.</li>";
    } catch (problem) {
      list.textContent = problem.message;
    }
  }
}
