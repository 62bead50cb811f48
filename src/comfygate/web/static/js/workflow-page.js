// The workflow page: the run form beside the dock.

import { api, newKey } from "./api.js";
import { RunForm } from "./form.js";
import { runAgainElsewhere, startDock } from "./jobs-live.js";

const formEl = document.getElementById("run-form");
const workflow = formEl.dataset.workflow;
const runButton = document.getElementById("run-button");
const form = new RunForm(formEl);

function refill(job) {
  formEl.reset();
  // reset() lands after its event handlers; fill once it has.
  setTimeout(() => {
    form.fill(job.params);
    formEl.scrollIntoView({ block: "start", behavior: "smooth" });
    const first = formEl.querySelector("input:not([type=hidden]):not([type=range]), textarea, select");
    if (first) first.focus({ preventScroll: true });
  }, 0);
}

const { dock, data } = startDock({
  onRunAgain: (job) => (job.workflow === workflow ? refill(job) : runAgainElsewhere(job)),
});

for (const chip of document.querySelectorAll("[data-example]")) {
  chip.addEventListener("click", () => {
    const example = (data.examples || [])[Number(chip.dataset.example)];
    if (example) refill({ params: example.params || {} });
  });
}

formEl.addEventListener("submit", async (event) => {
  event.preventDefault();
  runButton.disabled = true;
  runButton.textContent = "Starting…";
  try {
    await form.settle();
    const { params, problems } = form.values();
    if (problems.length) {
      form.showErrors(problems);
      return;
    }
    form.clearErrors();
    const job = await api(`/v1/workflows/${encodeURIComponent(workflow)}/jobs`, {
      method: "POST",
      json: { params },
      headers: { "Idempotency-Key": newKey() },
    });
    dock.upsert(job, { fresh: true });
  } catch (error) {
    form.showErrors(error.details || [], error.message);
  } finally {
    runButton.disabled = false;
    runButton.textContent = "Run";
  }
});

const again = new URLSearchParams(location.search).get("again");
if (again) {
  api(`/v1/jobs/${encodeURIComponent(again)}`)
    .then((job) => job.workflow === workflow && refill(job))
    .catch(() => {});
}
