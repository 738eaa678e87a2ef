// Steering a real-time stream with the form's own controls: while one plays, a
// change of temperature, key, scale or tempo is sent at once as a `control`
// message (the server writes the notes after it that way, so it is heard within
// its lookahead); a refused one comes back as an error beside its control (the
// page's usual place for it) and the music plays on. The part rows under the
// roll steer one part each the same way (parts.js, through `steerPart`). "Stop"
// ends the piece at the next bar line, and the server stores it. The Endless
// switch asks for a piece without end, which only real-time pacing plays.

const $ = (id) => document.getElementById(id);

// "any" key is every pitch: the chromatic scale (a stream cannot drop its key).
const keyAndScale = () =>
  $("key").value ? { key: $("key").value, scale: $("scale").value } : { key: "C", scale: "chromatic" };

// Control id → [the event it changes on, the settings it sends (null: none), its error line].
const CONTROLS = {
  temperature: ["input", () => ({ temperature: Number($("temperature").value) }), "error-temperature"],
  key: ["change", keyAndScale, "error-key"],
  scale: ["change", keyAndScale, "error-key"],
  tempo: ["change", () => ($("tempo").value === "" ? null : { tempo_bpm: Number($("tempo").value) }), "error-tempo"],
};

export class LiveControls {
  constructor() {
    this.stream = null;
    // The error line of the part last steered: a control names one part, always
    // as `parts[0]`, so a refusal of a part's setting is that part's.
    this.steeredPart = null;
    for (const [id, [event, settings, error]] of Object.entries(CONTROLS)) {
      $(id).addEventListener(event, () => this.steer(settings(), $(error)));
    }
    $("stream-stop").addEventListener("click", () => {
      this.stream?.stop();
      $("stream-stop").disabled = true;
      $("stream-stop").textContent = "Stopping…";
    });
    $("endless").addEventListener("change", () => this.showEndless());
    this.showEndless();
  }

  // Sends `settings` to the stream playing, if one plays and there are any;
  // `errorLine`, where a refusal of them will show, is cleared.
  steer(settings, errorLine) {
    if (!this.stream || !settings) return;
    errorLine.textContent = "";
    this.stream.control(settings);
  }

  // Sends one part's settings (`{name, ...}`); a refusal shows in `errorLine`.
  steerPart(settings, errorLine) {
    if (!this.stream) return;
    this.steeredPart = errorLine;
    this.steer({ parts: [settings] }, errorLine);
  }

  // Where the refusal of `field` shows when the form has no line for it: a part's
  // setting beside the part last steered, anything else in `fallback`.
  errorLine(field, fallback) {
    return (field ?? "").startsWith("parts[") && this.steeredPart ? this.steeredPart : fallback;
  }

  // A real-time stream began: the controls steer it, and Stop shows.
  attach(stream) {
    this.stream = stream;
    Object.assign($("stream-stop"), { hidden: false, disabled: false, textContent: "Stop" });
  }

  detach() {
    this.stream = null;
    this.steeredPart = null;
    $("stream-stop").hidden = true;
  }

  get endless() {
    return $("endless").checked;
  }

  // An endless piece has no length, and plays in real time.
  showEndless() {
    const on = this.endless;
    if (on) $("realtime").checked = true;
    for (const id of ["realtime", "length", "length-unit"]) $(id).disabled = on;
  }
}
