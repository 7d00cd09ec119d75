// keygate console: progressive enhancement only. Every action works without
// this file; it adds copy buttons and confirmation prompts.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // Copy buttons are rendered hidden: without script they would do nothing.
  for (const button of document.querySelectorAll("button[data-copy]")) {
    const source = document.getElementById(button.dataset.copy);
    if (!source || !navigator.clipboard) continue;
    button.hidden = false;
    const label = button.textContent;
    button.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(source.textContent.trim());
        button.textContent = "Copied";
      } catch {
        button.textContent = "Copy failed: select and copy";
      }
      setTimeout(() => { button.textContent = label; }, 2000);
    });
  }

  // Forms that change something serious ask once more.
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }
});
