// Copy buttons: <button data-copy-target="element-id">. No build step, no framework.
document.addEventListener("click", async (ev) => {
  const btn = ev.target.closest("[data-copy-target]");
  if (!btn) return;
  const el = document.getElementById(btn.dataset.copyTarget);
  if (!el) return;
  const text = "value" in el ? el.value : el.textContent;
  let ok = false;
  try { await navigator.clipboard.writeText(text); ok = true; } catch (e) {
    // Clipboard API refused (http origin, permissions): select the text so Ctrl+C works.
    if (el.select) { el.select(); ok = document.execCommand && document.execCommand("copy"); }
  }
  const label = btn.dataset.label || btn.textContent;
  btn.dataset.label = label;
  btn.textContent = ok ? "Copied" : "Press Ctrl+C";
  setTimeout(() => { btn.textContent = label; }, 1800);
});
