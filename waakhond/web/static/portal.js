// The victim portal: images are read and hashed here, in the browser; only the hashes are
// sent. The file input has no name and sits in no form, so the browser cannot upload it.
import { hashFile } from "./hashing.js";

const MIN_QUALITY = 50;  // flatter images match too loosely to be blocked safely
const input = document.getElementById("images");
const table = document.getElementById("hash-table");
const progress = document.getElementById("hash-progress");
const send = document.getElementById("send");
const confirm = document.getElementById("confirm");
const texts = document.getElementById("texts").dataset;
let ready = [];

function row(cells) {
  const tr = document.createElement("tr");
  for (const text of cells) {
    const td = document.createElement("td");
    td.textContent = text;
    tr.append(td);
  }
  return tr;
}

function update() {
  send.disabled = !(ready.length && confirm.checked);
}

input.addEventListener("change", async () => {
  ready = [];
  const body = table.querySelector("tbody");
  body.replaceChildren();
  table.hidden = false;
  for (const [index, file] of [...input.files].entries()) {
    progress.textContent = texts.hashing.replace("{n}", index + 1).replace("{total}", input.files.length);
    try {
      const hashed = await hashFile(file);
      const usable = hashed.quality >= MIN_QUALITY;
      body.append(row([file.name, hashed.pdq.slice(0, 16) + "…", hashed.md5.slice(0, 12) + "…",
                       usable ? texts.ready : texts.tooPlain]));
      if (usable) ready.push(hashed);
    } catch {
      body.append(row([file.name, "", "", texts.unreadable]));
    }
  }
  progress.textContent = texts.ready + ` (${ready.length}/${input.files.length})`;
  update();
});

confirm.addEventListener("change", update);

send.addEventListener("click", async () => {
  send.disabled = true;
  progress.textContent = texts.sending;
  const hashes = ready.flatMap((item) => [
    { kind: "pdq", value: item.pdq, quality: item.quality },
    { kind: "md5", value: item.md5 },
    { kind: "sha256", value: item.sha256 },
  ]);
  const error = document.getElementById("send-error");
  try {
    const response = await fetch("/v1/victims/submissions", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ hashes }),
    });
    const answer = await response.json();
    if (!response.ok) throw new Error(answer?.error?.message ?? response.statusText);
    document.getElementById("case-number").textContent = answer.reference;
    document.getElementById("case-pin").textContent = answer.pin;
    document.getElementById("result").hidden = false;
    error.hidden = true;
    progress.textContent = "";
    input.value = "";
    ready = [];
  } catch (problem) {
    error.textContent = `${texts.failed} ${problem.message}`;
    error.hidden = false;
    update();
  }
});
