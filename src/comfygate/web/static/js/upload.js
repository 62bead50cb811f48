// The drop zone of an image parameter: declare the upload, PUT the bytes to the signed
// URL, complete it (the server decodes and checks it), then the hidden input holds its id.

import { api, ApiError } from "./api.js";

export class DropZone {
  constructor(zone, { onError, onClear }) {
    this.zone = zone;
    this.name = zone.dataset.dropzone;
    this.file = zone.querySelector('input[type="file"]');
    this.hidden = zone.querySelector('input[type="hidden"]');
    this.preview = zone.querySelector("[data-preview]");
    this.status = zone.querySelector("[data-status]");
    this.onError = onError;
    this.onClear = onClear;
    this.pending = null;
    this.objectUrl = null;

    this.file.addEventListener("change", () => {
      if (this.file.files && this.file.files[0]) this.take(this.file.files[0]);
    });
    zone.addEventListener("dragover", (event) => {
      event.preventDefault();
      zone.classList.add("is-over");
    });
    zone.addEventListener("dragleave", () => zone.classList.remove("is-over"));
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      zone.classList.remove("is-over");
      const dropped = event.dataTransfer && event.dataTransfer.files[0];
      if (dropped) this.take(dropped);
    });
  }

  setState(state, message) {
    this.zone.dataset.state = state;
    this.status.textContent = message;
  }

  take(file) {
    this.onClear(this.name);
    this.hidden.value = "";
    if (this.objectUrl) URL.revokeObjectURL(this.objectUrl);
    this.objectUrl = URL.createObjectURL(file);
    this.preview.src = this.objectUrl;
    this.preview.alt = `Chosen picture: ${file.name}`;
    this.preview.hidden = false;
    this.setState("uploading", `Uploading ${file.name}…`);
    this.pending = this.upload(file).finally(() => (this.pending = null));
    return this.pending;
  }

  async upload(file) {
    try {
      const declared = await api("/v1/uploads", {
        method: "POST",
        json: { filename: file.name, content_type: file.type || "application/octet-stream", bytes: file.size },
      });
      const { method, url, headers } = declared.upload;
      const sent = await fetch(url, { method, headers, body: file, credentials: "same-origin" });
      if (!sent.ok) {
        let body = null;
        try {
          body = await sent.json();
        } catch {
          body = null;
        }
        throw new ApiError(sent.status, body);
      }
      const done = await api(`/v1/uploads/${declared.id}/complete`, { method: "POST" });
      this.hidden.value = done.id;
      this.setState("ready", `Ready: ${done.width} × ${done.height} pixels.`);
      return true;
    } catch (error) {
      this.hidden.value = "";
      this.setState("error", "");
      this.onError(this.name, error.message);
      return false;
    }
  }

  // "Run again": the earlier job's upload is reused; we have no picture to show for it.
  useExisting(uploadId) {
    this.hidden.value = uploadId || "";
    this.preview.hidden = true;
    this.preview.removeAttribute("src");
    this.setState(uploadId ? "ready" : "", uploadId ? "Using the picture of the earlier job." : "");
  }

  clear() {
    this.file.value = "";
    this.useExisting("");
  }
}
