// Compose: the request form, the WebSocket stream into the piano roll (steered
// live in real time), playback, downloads and past compositions.

import { ApiProblem, api, clearErrors, showError } from "./api.js";
import { LivePlayback } from "./listen.js";
import { parseMelody } from "./melody.js";
import { metersOf } from "./meter.js";
import { PartControls } from "./parts.js";
import { PianoRoll } from "./roll.js";
import { MidiOut } from "./midiout.js";
import { modelLabel } from "./models.js";
import { SoundFontSynth } from "./sfsynth.js";
import { LiveControls } from "./steer.js";
import { Stream } from "./stream.js";

// Request fields → the id suffix of the error line beside their control.
const FIELDS = {
  model: "model", temperature: "temperature", length: "length", seed: "seed", key: "key", scale: "key",
  tempo_bpm: "tempo", program: "program", primer: "primer", pitch_range: "key", given: "melody",
  max_copied_notes: "max-copied",
};

// "longest copied run: 6 notes, from bwv10.7.mid bar 3", the longest of the
// exact, transposed and onset-order runs; empty for a model without an index.
export function originality(stats) {
  const report = stats.originality;
  if (!report) return "";
  const runs = [
    ["", report.exact], [" (transposed)", report.transposed], [" (in onset order)", report.onset_order],
  ].filter(([, run]) => run);
  if (runs.length === 0) return "longest copied run: none";
  const [how, run] = runs.reduce((best, next) => (next[1].notes > best[1].notes ? next : best));
  const limit = stats.max_copied_notes ? ` (limit ${stats.max_copied_notes})` : "";
  return `longest copied run: ${run.notes} notes${how}, from ${run.piece} bar ${run.bar}${limit}`;
}

const $ = (id) => document.getElementById(id);

export class Composer {
  constructor() {
    this.roll = new PianoRoll($("roll-scroll"), $("roll"));
    this.parts = new PartControls($("roll-legend"));
    this.roll.isGiven = (part) => this.parts.isGiven(part);
    this.synth = new SoundFontSynth();
    this.synth.midiOut = new MidiOut($("midi-out"));
    this.synth.midiOut.init();
    this.current = null;
    this.live = new LiveControls();
    this.parts.steer = (settings, errorLine) => this.live.steerPart(settings, errorLine);
    this.listening = null; // a LivePlayback while a real-time stream plays
    // The models by id, to name the one that made a piece.
    this.models = new Map();
    // Composition id → its meters (a promise), read from its MIDI file once.
    this.meters = new Map();
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
    $("zoom-in").addEventListener("click", () => this.roll.zoomBy(1.5));
    $("zoom-out").addEventListener("click", () => this.roll.zoomBy(1 / 1.5));
    $("zoom-fit").addEventListener("click", () => this.roll.zoomToFit());
    $("play").addEventListener("click", () => this.play());
    $("stop").addEventListener("click", () => this.stop());
    $("download").addEventListener("click", () => this.download(this.current));
    $("download-audio").addEventListener("click", () => this.download(this.current, "audio"));
    $("model").addEventListener("change", () => this.refreshVoices());
  }

  // The server's models changed (or were listed for the first time).
  setModels(models) {
    this.models = new Map(models.map((model) => [model.id, model]));
    this.refreshVoices();
    this.refreshHistory();
  }

  modelName(id) {
    const model = this.models.get(id);
    return model ? modelLabel(model) : id;
  }

  // The parts a melody can be given as: the chosen model's, by name.
  async refreshVoices() {
    const select = $("melody-part");
    const id = $("model").value;
    if (!id) return;
    try {
      const model = await api(`/v1/models/${encodeURIComponent(id)}`);
      // The parts most pieces have first, highest voice first; then the rest.
      const parts = (model.parts ?? []).filter((part) => part.name);
      const most = Math.max(0, ...parts.map((part) => part.files));
      const rank = (part) => [part.files * 2 >= most ? 0 : 1, -(part.pitch_range[0] + part.pitch_range[1])];
      parts.sort((a, b) => rank(a)[0] - rank(b)[0] || rank(a)[1] - rank(b)[1]);
      const names = [...new Set(parts.map((part) => part.name))];
      select.replaceChildren(...names.map((name) => new Option(name, name)));
      $("melody").disabled = names.length === 0;
    } catch (problem) {
      showError(problem, FIELDS, $("error-melody"));
    }
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
    if (this.live.endless) body.length = { endless: true };
    if ($("seed").value !== "") body.seed = Number($("seed").value);
    if ($("key").value) {
      body.key = $("key").value;
      body.scale = $("scale").value;
    }
    if ($("tempo").value !== "") body.tempo_bpm = Number($("tempo").value);
    if ($("max-copied").value !== "") body.max_copied_notes = Number($("max-copied").value);
    const primer = $("primer").files[0];
    if (primer) body.primer = { midi_base64: await base64Of(primer) };
    body.parts = this.parts.request();
    // A melody to harmonize sets the length and is the start of the piece.
    const typed = $("melody-notes").value.trim();
    const file = $("melody-file").files[0];
    if (typed || file) {
      body.given = { part: $("melody-part").value };
      if (file) {
        body.given.midi_base64 = await base64Of(file);
        body.given.track = Number($("melody-track").value || 0);
      } else {
        body.given.notes = parseMelody(typed);
      }
      delete body.length;
      delete body.primer;
    }
    return body;
  }

  async generate() {
    const form = $("compose-form");
    clearErrors(form);
    this.stop();
    let body;
    try {
      body = await this.request();
    } catch (error) {
      $("error-melody").textContent = error.message;
      return;
    }
    this.parts.reset(body.given?.part);
    $("generate").disabled = true;
    this.transport(false);
    $("compose-status").textContent = "Starting…";
    this.roll.set([]);
    $("compose-originality").textContent = "";
    const realtime = body.pacing === "realtime";
    let ended = false;
    const stream = new Stream(body, {
      onMessage: (message) => {
        ended ||= message.type === "end";
        if (message.type === "start" && realtime) {
          this.listening = new LivePlayback(this.synth, this.roll, (notes) => this.parts.audible(notes));
        }
        this.receive(message);
      },
      onClose: () => {
        this.listening?.stop();
        this.listening = null;
        this.live.detach();
        this.parts.setLive(false);
        $("generate").disabled = false;
        if (!ended) {
          this.roll.setPlayhead(null);
          this.transport(this.current !== null);
          $("compose-status").textContent = this.roll.notes.length > 0 ? "Stopped." : "";
        }
      },
      onFailure: () => {
        $("error-general").textContent = "The connection to the server failed.";
      },
    });
    if (realtime) {
      this.live.attach(stream);
      this.parts.setLive(true);
      // Sound may start only from a click: the synthesizer is woken now, not at `start`.
      this.synth.ensure();
    }
  }

  // A message of the stream. An error may be a refused live control (the piece
  // plays on) or the end of the stream; either way it is shown by its field (a
  // part's beside the part steered).
  receive(message) {
    if (message.type === "start") {
      $("compose-status").textContent = `Composing with ${this.modelName(message.model)}, seed ${message.seed}…`;
      this.parts.declare(message.parts);
    } else if (message.type === "notes") {
      this.roll.add(message.notes);
      this.parts.update(message.notes);
      this.listening?.hear(message.notes);
      $("compose-status").textContent = `Composing… ${this.roll.notes.length} notes`;
    } else if (message.type === "end") {
      const piece = message.composition;
      this.show(piece);
      $("compose-status").textContent =
        `${piece.stats.notes} notes, ${piece.stats.seconds.toFixed(1)} s of music, seed ${piece.seed} ` +
        `(${piece.stats.tokens_per_second.toFixed(0)} tokens/s).`;
      $("compose-originality").textContent = originality(piece.stats);
      this.refreshHistory();
    } else if (message.type === "error") {
      const problem = new ApiProblem(0, { error: message.error });
      showError(problem, FIELDS, this.live.errorLine(problem.field, $("error-general")));
    }
  }

  // The transport (play, stop, downloads) acts on a stored piece: not during a stream.
  transport(enabled) {
    for (const id of ["play", "stop", "download", "download-audio"]) $(id).disabled = !enabled;
  }

  // Makes `piece` the one in the roll and under the transport, drawn in the meter
  // its MIDI file states (4/4 until that is read).
  show(piece) {
    this.current = piece;
    this.transport(true);
    this.roll.set(piece.notes);
    this.parts.update(piece.notes);
    if (!this.meters.has(piece.composition_id)) {
      const read = api(piece.midi_url, { as: "blob" }).then((blob) => blob.arrayBuffer()).then(metersOf);
      this.meters.set(piece.composition_id, read.catch(() => []));
    }
    this.meters.get(piece.composition_id).then((meters) => {
      if (this.current === piece) this.roll.setMeters(meters);
    });
  }

  play(piece = this.current) {
    if (!piece) return;
    // A past composition played from the list is the one the transport acts on.
    this.show(piece);
    this.synth.play(this.parts.audible(piece.notes), {
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
          const copied = originality(piece.stats);
          label.textContent = `${when} · ${this.modelName(piece.model)} · ${piece.stats.notes} notes · seed ${piece.seed}` +
            (copied ? ` · ${copied}` : "");
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

async function base64Of(file) {
  const bytes = new Uint8Array(await file.arrayBuffer());
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}
