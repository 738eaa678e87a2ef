// One generation over the WebSocket `GET /v1/generate/stream`: sends the request,
// hands every message the server sends (`start`, `notes`, `end`, `error`) to
// `onMessage`, and sends what the client may say while the piece plays: new
// settings for the notes not yet written (`control`), or end the piece at the
// next bar line and store it (`stop`).
// An `error` is not always the end: a refused control leaves the piece playing,
// so only `onClose` says the stream is over.

import { socket } from "./api.js";

export class Stream {
  constructor(request, { onMessage, onClose, onFailure }) {
    this.ws = socket("/v1/generate/stream");
    this.ws.addEventListener("open", () => this.ws.send(JSON.stringify(request)));
    this.ws.addEventListener("message", (event) => onMessage(JSON.parse(event.data)));
    this.ws.addEventListener("close", () => onClose());
    this.ws.addEventListener("error", () => onFailure());
  }

  get open() {
    return this.ws.readyState === WebSocket.OPEN;
  }

  send(message) {
    if (this.open) this.ws.send(JSON.stringify(message));
  }

  // Any of temperature, top_k, top_p, key, scale, pitch_range, max_polyphony, tempo_bpm.
  control(settings) {
    this.send({ type: "control", ...settings });
  }

  stop() {
    this.send({ type: "stop" });
  }
}
