// The run form: values in the contract's types, errors next to the fields they name.

import { DropZone } from "./upload.js";

function pointerToName(pointer) {
  const first = (pointer || "").split("/")[1];
  return first === undefined ? "" : first.replaceAll("~1", "/").replaceAll("~0", "~");
}

function randomBetween(min, max) {
  const words = new Uint32Array(2);
  crypto.getRandomValues(words);
  // 53 random bits: enough for any seed range a contract can state exactly.
  const fraction = ((words[0] >>> 5) * 67108864 + (words[1] >>> 6)) / 9007199254740992;
  return Math.floor(min + fraction * (max - min + 1));
}

export class RunForm {
  constructor(form) {
    this.form = form;
    this.formError = form.querySelector("#form-error");
    this.zones = new Map();
    for (const zone of form.querySelectorAll("[data-dropzone]")) {
      const dz = new DropZone(zone, {
        onError: (name, message) => this.setFieldError(name, message),
        onClear: (name) => this.clearFieldError(name),
      });
      this.zones.set(dz.name, dz);
    }
    for (const slider of form.querySelectorAll("[data-slider-for]")) {
      const input = form.querySelector(`#${slider.dataset.sliderFor}`);
      slider.addEventListener("input", () => {
        input.value = slider.value;
        this.clearFieldError(input.name);
      });
      input.addEventListener("input", () => {
        if (input.value !== "") slider.value = input.value;
      });
    }
    for (const button of form.querySelectorAll("[data-randomize]")) {
      button.addEventListener("click", () => {
        const input = form.elements.namedItem(button.dataset.randomize);
        const min = Number(button.dataset.min ?? 0);
        const max = Math.min(Number(button.dataset.max ?? Number.MAX_SAFE_INTEGER), Number.MAX_SAFE_INTEGER);
        input.value = String(randomBetween(min, max));
        this.clearFieldError(input.name);
      });
    }
    form.addEventListener("input", (event) => {
      if (event.target.name) this.clearFieldError(event.target.name);
    });
    form.addEventListener("reset", () => {
      this.clearErrors();
      for (const dz of this.zones.values()) dz.clear();
      // The reset lands after this event: sync the sliders once it has.
      setTimeout(() => this.syncSliders(), 0);
    });
  }

  controls() {
    return [...this.form.elements].filter((el) => el.name && el.dataset.kind);
  }

  // Uploads still on their way finish before the values are read.
  async settle() {
    await Promise.all([...this.zones.values()].map((dz) => dz.pending).filter(Boolean));
  }

  values() {
    const params = {};
    const problems = [];
    for (const el of this.controls()) {
      const kind = el.dataset.kind;
      if (kind === "boolean") {
        params[el.name] = el.checked;
      } else if (kind === "integer" || kind === "number") {
        if (el.validity && el.validity.badInput) {
          problems.push({ path: `/${el.name}`, message: "Enter a number." });
        } else if (el.value !== "") {
          params[el.name] = Number(el.value);
        }
      } else if (el.type === "hidden") {
        if (el.value !== "") params[el.name] = el.value;
      } else {
        params[el.name] = el.value;
      }
    }
    return { params, problems };
  }

  fill(params) {
    for (const [name, value] of Object.entries(params || {})) {
      const el = this.form.elements.namedItem(name);
      if (!el) continue;
      if (this.zones.has(name)) this.zones.get(name).useExisting(String(value));
      else if (el.type === "checkbox") el.checked = Boolean(value);
      else el.value = String(value);
    }
    this.syncSliders();
    this.clearErrors();
  }

  syncSliders() {
    for (const slider of this.form.querySelectorAll("[data-slider-for]")) {
      const input = this.form.querySelector(`#${slider.dataset.sliderFor}`);
      if (input.value !== "") slider.value = input.value;
    }
  }

  clearErrors() {
    for (const el of this.form.querySelectorAll("[data-error-for]")) this.clearFieldError(el.dataset.errorFor);
    this.formError.hidden = true;
    this.formError.replaceChildren();
  }

  clearFieldError(name) {
    const message = this.form.querySelector(`#err-${CSS.escape(name)}`);
    if (!message) return;
    message.hidden = true;
    message.textContent = "";
    const control = this.form.querySelector(`#f-${CSS.escape(name)}`);
    if (control) control.removeAttribute("aria-invalid");
    const file = this.form.querySelector(`#file-${CSS.escape(name)}`);
    if (file) file.removeAttribute("aria-invalid");
    message.closest(".field")?.classList.remove("has-error");
  }

  setFieldError(name, text) {
    const message = this.form.querySelector(`#err-${CSS.escape(name)}`);
    if (!message) return false;
    message.textContent = message.hidden || !message.textContent ? text : `${message.textContent} ${text}`;
    message.hidden = false;
    message.closest(".field")?.classList.add("has-error");
    const details = message.closest("details");
    if (details) details.open = true;
    const target = this.form.querySelector(`#file-${CSS.escape(name)}`) || this.form.querySelector(`#f-${CSS.escape(name)}`);
    if (target) target.setAttribute("aria-invalid", "true");
    return true;
  }

  // Each detail of a 422 goes next to the field its JSON Pointer names; the rest above the button.
  showErrors(details, fallback) {
    this.clearErrors();
    const loose = [];
    let first = null;
    for (const detail of details) {
      const name = pointerToName(detail.path);
      if (name && this.setFieldError(name, detail.message)) {
        first = first || name;
      } else {
        loose.push(detail.path ? `${detail.path}: ${detail.message}` : detail.message);
      }
    }
    if (loose.length || (!first && fallback)) {
      const items = loose.length ? loose : [fallback];
      this.formError.replaceChildren(...items.map((text) => Object.assign(document.createElement("p"), { textContent: text })));
      this.formError.hidden = false;
    }
    if (first) {
      const target = this.form.querySelector(`#file-${CSS.escape(first)}`) || this.form.querySelector(`#f-${CSS.escape(first)}`);
      if (target) target.focus();
    }
  }
}
