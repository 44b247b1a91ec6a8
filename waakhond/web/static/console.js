// The console's keyboard shortcuts and the deliberate reveal of blurred previews. Every POST
// sends the session's CSRF token from the page's <meta name="csrf-token">.
const csrf = document.querySelector('meta[name="csrf-token"]')?.content ?? "";

async function reveal(button) {
  const item = button.closest(".preview");
  const body = new URLSearchParams({ csrf, view: button.dataset.view });
  const response = await fetch(`/console/cases/${item.dataset.case}/reveal/${item.dataset.item}`,
    { method: "POST", body, headers: { "X-CSRF-Token": csrf }, credentials: "same-origin" });
  if (!response.ok) {
    button.textContent = `${button.textContent} (${response.status})`;
    return;
  }
  const type = response.headers.get("content-type") ?? "";
  if (type.startsWith("text/")) {
    item.querySelector(".prompt-text").textContent = await response.text();
  } else {
    const image = item.querySelector("img");
    const old = image.src;
    image.src = URL.createObjectURL(await response.blob());
    image.classList.remove("blurred");
    image.alt = button.dataset.view === "colour" ? "revealed in colour" : "revealed in grayscale";
    if (old.startsWith("blob:")) URL.revokeObjectURL(old);
  }
  item.dataset.revealed = button.dataset.view;
}

function typing(event) {
  const target = event.target;
  return target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName);
}

function choose(id) {
  const radio = document.getElementById(id);
  if (!radio) return;
  radio.checked = true;
  radio.focus();
  if (id === "outcome-restrict") {  // the usual restriction: removal
    const removed = document.querySelector('input[name="visibility"][data-default="yes"]');
    if (removed) removed.checked = true;
  }
}

const shortcuts = {
  n: () => document.getElementById("claim-next")?.requestSubmit(),
  v: () => document.querySelector(".preview .reveal")?.click(),
  1: () => choose("outcome-none"),
  2: () => choose("outcome-restrict"),
  "?": () => document.getElementById("shortcuts")?.showModal(),
};

document.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
    document.getElementById("decision-form")?.requestSubmit();
    return;
  }
  if (typing(event) || event.ctrlKey || event.metaKey || event.altKey) return;
  const action = shortcuts[event.key];
  if (action) {
    event.preventDefault();
    action();
  }
});

document.querySelectorAll(".preview .reveal").forEach((button) =>
  button.addEventListener("click", () => reveal(button)));

// SLA clocks: each deadline also reads as time left (or overdue), in the page's language.
const relative = new Intl.RelativeTimeFormat(document.documentElement.lang, { numeric: "auto" });

function tick() {
  for (const clock of document.querySelectorAll("time.clock[datetime]")) {
    const minutes = Math.round((Date.parse(clock.getAttribute("datetime")) - Date.now()) / 60000);
    clock.title = clock.getAttribute("datetime");
    clock.textContent = Math.abs(minutes) < 120
      ? relative.format(minutes, "minute") : relative.format(Math.round(minutes / 60), "hour");
    clock.classList.toggle("late", minutes < 0);
  }
}

tick();
setInterval(tick, 30_000);
