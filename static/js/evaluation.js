// A model's view: its evaluation (pieces it generated against its held-out
// files) as small charts, a histogram per feature with the generated and the
// held-out bars side by side in every bin, the scalar features beside each
// other, and a form that runs a new evaluation and follows it live.

import { api, clearErrors, showError, socket } from "./api.js";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";

// The histograms of an evaluation, their overlap's name and their bins' labels
// (the bins of src/analysis/statistics.rs).
const FEATURES = [
  {
    key: "pitch_classes",
    title: "Pitch classes",
    overlap: "pitch_class_overlap",
    labels: ["C", "C♯", "D", "E♭", "E", "F", "F♯", "G", "A♭", "A", "B♭", "B"],
  },
  {
    key: "inter_onset_intervals",
    title: "Inter-onset intervals (beats)",
    overlap: "inter_onset_interval_overlap",
    labels: ["¼", "½", "¾", "1", "1½", "2", "3", "4", ">4"],
  },
  {
    key: "melodic_intervals",
    title: "Melodic intervals (semitones)",
    overlap: "melodic_interval_overlap",
    labels: [...Array.from({ length: 13 }, (_, i) => String(i)), ">12"],
  },
];

const SCALARS = [
  ["mean_pitch_range", "pitch range (semitones)", 1],
  ["mean_polyphony", "polyphony", 2],
  ["mean_notes_per_beat", "notes per beat", 2],
  ["mean_scale_consistency", "scale consistency", 3],
];

const FIELDS = { pieces: "evaluation-pieces", notes: "evaluation-notes", seed: "evaluation-seed", model: "evaluation" };

export class ModelView {
  constructor() {
    this.model = null;
    $("evaluation-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.run();
    });
  }

  // Opens the view of model `id`, read afresh.
  async show(id) {
    try {
      this.model = await api(`/v1/models/${encodeURIComponent(id)}`);
    } catch (problem) {
      showError(problem, {}, $("error-models"));
      return;
    }
    const view = $("model-view");
    view.hidden = false;
    $("model-view-heading").textContent = `Model ${this.model.name}`;
    this.render();
    const evaluable = this.model.held_out_statistics != null;
    $("run-evaluation").disabled = !evaluable;
    $("evaluation-status").textContent = evaluable ? "" : "This model has no held-out files to compare with.";
    view.scrollIntoView({ block: "nearest" });
  }

  render() {
    const evaluation = this.model.music_evaluation;
    const charts = $("evaluation-charts");
    const scalars = $("evaluation-scalars");
    if (!evaluation) {
      $("evaluation-summary").textContent = "Not evaluated yet.";
      charts.replaceChildren();
      scalars.hidden = true;
      return;
    }
    const { comparison } = evaluation;
    const last = evaluation.first_seed + evaluation.pieces - 1;
    const copied = evaluation.longest_copied_notes == null ? ""
      : `; copied runs from the training pieces: median ${evaluation.median_copied_notes}, longest ${evaluation.longest_copied_notes} notes`;
    $("evaluation-summary").textContent = `${evaluation.pieces} pieces of ${evaluation.notes_per_piece} notes ` +
      `(seeds ${evaluation.first_seed}–${last}) against ${comparison.reference.pieces} held-out files${copied}.`;
    charts.replaceChildren(...FEATURES.map((feature) => histogram(feature, comparison)));
    scalars.hidden = false;
    scalars.tBodies[0].replaceChildren(...SCALARS.map(([key, name, digits]) => {
      const row = document.createElement("tr");
      for (const text of [name, comparison.generated[key].toFixed(digits), comparison.reference[key].toFixed(digits)]) {
        const cell = document.createElement("td");
        cell.textContent = text;
        row.append(cell);
      }
      return row;
    }));
  }

  async run() {
    const form = $("evaluation-form");
    clearErrors(form);
    const number = (id) => ($(id).value === "" ? undefined : Number($(id).value));
    const body = { pieces: number("evaluation-pieces"), notes: number("evaluation-notes"), seed: number("evaluation-seed") };
    let job;
    try {
      job = await api(`/v1/models/${encodeURIComponent(this.model.id)}/evaluations`, { method: "POST", json: body });
    } catch (problem) {
      showError(problem, FIELDS, $("error-evaluation"));
      return;
    }
    $("run-evaluation").disabled = true;
    const status = $("evaluation-status");
    status.textContent = "Queued: waiting for the server's evaluation worker.";
    const ws = socket(`/v1/evaluation-jobs/${job.id}/events`);
    ws.addEventListener("message", (message) => {
      const event = JSON.parse(message.data);
      if (event.type === "progress") {
        status.textContent = `Generating: ${event.pieces_done} of ${event.pieces} pieces.`;
      } else if (event.type === "state" && event.state === "running") {
        status.textContent = `Generating ${job.parameters.pieces} pieces (attempt ${event.attempt}).`;
      } else if (event.type === "evaluated") {
        this.model.music_evaluation = event.evaluation;
        this.render();
      } else if (event.type === "end") {
        status.textContent = event.state === "succeeded" ? "Done: the evaluation above is the model's now."
          : `The evaluation ${event.state}.`;
      }
    });
    ws.addEventListener("close", () => {
      $("run-evaluation").disabled = false;
    });
  }
}

// One feature's histogram: for every bin a generated and a held-out bar.
function histogram(feature, comparison) {
  const generated = comparison.generated[feature.key];
  const reference = comparison.reference[feature.key];
  // One size for every chart, however many bins, so that they line up.
  const [width, height, base] = [336, 110, 94];
  const step = width / feature.labels.length;
  const top = Math.max(...generated, ...reference, 0.01);
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `${feature.title}: generated against held-out, overlap ${comparison[feature.overlap].toFixed(2)}`);
  feature.labels.forEach((label, bin) => {
    for (const [set, values, offset] of [["generated", generated, 0.125], ["held-out", reference, 0.5]]) {
      const rect = document.createElementNS(SVG, "rect");
      const barHeight = (values[bin] / top) * (base - 4);
      rect.setAttribute("class", `bar ${set}`);
      rect.setAttribute("x", (bin + offset) * step);
      rect.setAttribute("y", base - barHeight);
      rect.setAttribute("width", 0.375 * step);
      rect.setAttribute("height", barHeight);
      rect.dataset.bin = bin;
      const title = document.createElementNS(SVG, "title");
      title.textContent = `${label}: ${set} ${(values[bin] * 100).toFixed(1)}%`;
      rect.append(title);
      svg.append(rect);
    }
    const text = document.createElementNS(SVG, "text");
    text.setAttribute("x", (bin + 0.5) * step);
    text.setAttribute("y", height - 3);
    text.setAttribute("text-anchor", "middle");
    text.textContent = label;
    svg.append(text);
  });
  const figure = document.createElement("figure");
  figure.className = "histogram";
  figure.dataset.feature = feature.key;
  const caption = document.createElement("figcaption");
  caption.textContent = `${feature.title}: overlap ${comparison[feature.overlap].toFixed(2)}`;
  figure.append(caption, svg);
  return figure;
}
