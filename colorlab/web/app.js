// colorlab web page: pick photos, colorize them with one or all models, compare, download.
"use strict";

const $ = (id) => document.getElementById(id);
let config = null;
let picked = [];

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function showErrors(messages) {
  $("errors").replaceChildren(...messages.map((m) => el("p", {}, m)));
}

// Client-side checks (the server checks again): count, type, size. Returns the usable files and the errors.
function validate(files) {
  if (files.length > config.max_files) {
    return { valid: [], errors: [`${files.length} photos picked: at most ${config.max_files} at a time.`] };
  }
  const valid = [];
  const errors = [];
  const limit = config.max_bytes / 2 ** 20;
  for (const f of files) {
    if (!config.types.includes(f.type)) {
      errors.push(`${f.name}: not a supported image (${f.type || "unknown type"}).`);
    } else if (f.size > config.max_bytes) {
      errors.push(`${f.name}: ${(f.size / 2 ** 20).toFixed(1)} MB is over the ${limit.toFixed(0)} MB limit.`);
    } else {
      valid.push(f);
    }
  }
  return { valid, errors };
}

function pick(files) {
  const { valid, errors } = validate(Array.from(files));
  showErrors(errors);
  picked = valid;
  $("picked").replaceChildren(...picked.map((f) => el("li", {}, `${f.name} (${(f.size / 1024).toFixed(0)} KB)`)));
  $("go").disabled = picked.length === 0;
  showGuide();
}

// ---- guided colorization: hints on the photo (picture pixels), a reference, re-colorize -----------------

let hints = [];

function showGuide() {
  hints = [];
  renderHints();
  $("guide").hidden = picked.length !== 1;
  $("guided-figure").hidden = true;
  $("guided-result")?.remove();
  // Images are made only when they have something to show (a page waiting for every <img> must not hang).
  $("guide-stage").replaceChildren();
  if (picked.length !== 1) return;
  const img = el("img", { id: "guide-photo", alt: "the photo to guide" });
  img.addEventListener("click", (event) => {
    hints.push({ ...picturePoint(event), color: $("new-color").value });
    renderHints();
  });
  img.src = URL.createObjectURL(picked[0]);
  $("guide-stage").append(img);
}

// Where a pointer event falls in the photo's own pixels (the photo is shown scaled).
function picturePoint(event) {
  const img = $("guide-photo");
  const box = img.getBoundingClientRect();
  const fx = Math.min(Math.max((event.clientX - box.left) / box.width, 0), 0.999999);
  const fy = Math.min(Math.max((event.clientY - box.top) / box.height, 0), 0.999999);
  return { x: Math.floor(fx * img.naturalWidth), y: Math.floor(fy * img.naturalHeight) };
}

function renderHints() {
  const img = $("guide-photo");
  const stage = $("guide-stage");
  stage.querySelectorAll(".hint-dot").forEach((d) => d.remove());
  if (!img) return;
  const items = hints.map((hint, i) => {
    const dot = el("div", { class: "hint-dot", "data-index": i });
    dot.style.left = `${((hint.x + 0.5) / img.naturalWidth) * 100}%`;
    dot.style.top = `${((hint.y + 0.5) / img.naturalHeight) * 100}%`;
    dot.style.background = hint.color;
    dot.addEventListener("pointerdown", (event) => startDrag(event, hint));
    stage.append(dot);
    const picker = el("input", { type: "color", class: "hint-color", value: hint.color, "aria-label": `hint ${i + 1} colour` });
    picker.addEventListener("input", () => { hint.color = picker.value; dot.style.background = hint.color; });
    const remove = el("button", { type: "button", class: "hint-remove", "aria-label": `remove hint ${i + 1}` }, "×");
    remove.addEventListener("click", () => { hints.splice(i, 1); renderHints(); });
    return el("li", { class: "hint-item" }, picker, ` (${hint.x}, ${hint.y}) `, remove);
  });
  $("hint-list").replaceChildren(...items);
}

function startDrag(event, hint) {
  event.preventDefault();
  event.stopPropagation();
  const move = (e) => { Object.assign(hint, picturePoint(e)); renderHints(); };
  const stop = () => { window.removeEventListener("pointermove", move); window.removeEventListener("pointerup", stop); };
  window.addEventListener("pointermove", move);
  window.addEventListener("pointerup", stop);
}

async function recolorize() {
  if (picked.length !== 1) return;
  const body = new FormData();
  body.append("file", picked[0], picked[0].name);
  const model = $("model").value === config.all ? config.models[0] : $("model").value;
  body.append("model", model);
  body.append("hints", JSON.stringify(hints.map(({ x, y, color }) => ({ x, y, color }))));
  const reference = $("reference").files[0];
  if (reference) body.append("reference", reference, reference.name);
  $("recolorize").disabled = true;
  $("guide-status").textContent = "Colorizing…";
  $("guide-errors").replaceChildren();
  const started = performance.now();
  try {
    const response = await fetch("api/guided", { method: "POST", body });
    const data = await response.json();
    if (!response.ok) throw new Error(data.detail || response.statusText);
    if (!$("guided-result")) $("guided-figure").prepend(el("img", { id: "guided-result", alt: "guided result" }));
    $("guided-result").src = data.url;
    $("guided-download").href = data.url;
    $("guided-download").setAttribute("download", data.file);
    $("guided-model").textContent = `${data.model}, ${data.hints} hint(s)`;
    $("guided-figure").hidden = false;
    $("guide-status").textContent = `Done in ${((performance.now() - started) / 1000).toFixed(1)} s.`;
  } catch (error) {
    $("guide-errors").replaceChildren(el("p", {}, `The server said: ${error.message}`));
    $("guide-status").textContent = "";
  } finally {
    $("recolorize").disabled = false;
  }
}

function slider(before, after, leftTag, rightTag) {
  const box = el("div", { class: "compare" });
  const afterImg = el("img", { class: "after", src: after, alt: `colorized by ${rightTag}` });
  const right = el("span", { class: "tag right" }, rightTag);
  const range = el("input", { type: "range", min: "0", max: "100", value: "50", "aria-label": "before / after" });
  range.addEventListener("input", () => box.style.setProperty("--cut", `${range.value}%`));
  box.append(
    el("img", { class: "before", src: before, alt: "gray input" }),
    afterImg, el("div", { class: "bar" }), el("span", { class: "tag left" }, leftTag), right, range,
  );
  box.show = (url, name) => { afterImg.src = url; afterImg.alt = `colorized by ${name}`; right.textContent = name; };
  return box;
}

function downloadLink(output) {
  return el("a", { class: "download", href: output.url, download: output.file }, "download");
}

function renderResult(result) {
  if (result.error) return el("div", { class: "card error" }, result.error);
  const first = result.outputs[0];
  const compare = slider(result.gray, first.url, "gray", first.model);
  const card = el("div", { class: "card result" },
    el("h2", {}, `${result.name} `, el("span", { class: "size" }, `${result.width} × ${result.height}`)),
    compare);
  if (result.note) card.append(el("p", { class: "note" }, result.note));
  const side = el("div", { class: "side" });
  for (const output of result.outputs) {
    const figure = el("figure", { class: "model-result" },
      el("img", { src: output.url, alt: output.model, title: "show in the slider" }),
      el("figcaption", {}, el("span", { class: "model-name" }, output.model), downloadLink(output)));
    figure.querySelector("img").addEventListener("click", () => {
      compare.show(output.url, output.model);
      side.querySelectorAll("figure").forEach((f) => f.classList.toggle("chosen", f === figure));
    });
    if (output === first) figure.classList.add("chosen");
    side.append(figure);
  }
  card.append(side);
  return card;
}

async function colorize(event) {
  event.preventDefault();
  if (!picked.length) return;
  const body = new FormData();
  picked.forEach((f) => body.append("files", f, f.name));
  body.append("model", $("model").value);
  if (config.upscale && $("upscale").checked) body.append("upscale", "true");
  $("go").disabled = true;
  $("status").textContent = `Colorizing ${picked.length} photo(s)…`;
  showErrors([]);
  try {
    const response = await fetch("api/colorize", { method: "POST", body });
    const data = await response.json();
    if (!response.ok) throw new Error(data.detail || response.statusText);
    $("results").replaceChildren(...data.results.map(renderResult));
    const failed = data.results.filter((r) => r.error).length;
    $("status").textContent = failed ? `Done; ${failed} photo(s) could not be read.` : "Done.";
  } catch (error) {
    showErrors([`The server said: ${error.message}`]);
    $("status").textContent = "";
  } finally {
    $("go").disabled = picked.length === 0;
  }
}

async function init() {
  config = await (await fetch("api/config")).json();
  $("max-files").textContent = config.max_files;
  $("max-mb").textContent = (config.max_bytes / 2 ** 20).toFixed(0);
  $("keep").textContent = +config.keep_minutes.toFixed(1);
  const options = config.models.map((m) => el("option", { value: m }, m));
  if (config.models.length > 1) options.unshift(el("option", { value: config.all }, "all models (side by side)"));
  $("model").replaceChildren(...options);
  if (config.upscale) {
    $("upscale-factor").textContent = config.upscale;
    $("upscale-option").hidden = false;
  }

  const drop = $("drop");
  $("files").addEventListener("change", (e) => pick(e.target.files));
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); pick(e.dataTransfer.files); });
  $("form").addEventListener("submit", colorize);
  $("recolorize").addEventListener("click", recolorize);
  document.body.dataset.ready = "true";
}

init();
