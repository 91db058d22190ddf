// Native <dialog> helpers (the hub's Bootstrap JS is not relied on): showModal() traps
// focus and closes on Esc; we add close buttons, backdrop clicks and focus return.

/**
 * Wire a dialog once: [data-close] buttons close it, and so does a click on the backdrop
 * when the dialog has data-backdrop-close (not on forms, where it would lose typing).
 */
export function setupDialog(dialog) {
  if (dialog.dataset.ready) return dialog;
  dialog.dataset.ready = "1";
  for (const button of dialog.querySelectorAll("[data-close]")) {
    button.addEventListener("click", () => dialog.close("cancel"));
  }
  dialog.addEventListener("mousedown", (event) => {
    // a press on the backdrop targets the <dialog> itself, outside its content box
    if (event.target !== dialog || !("backdropClose" in dialog.dataset)) return;
    const r = dialog.getBoundingClientRect();
    const inside =
      event.clientX >= r.left &&
      event.clientX <= r.right &&
      event.clientY >= r.top &&
      event.clientY <= r.bottom;
    if (!inside) dialog.close("cancel");
  });
  return dialog;
}

/** Open modally; focus `focus` (or the dialog's [autofocus]); give focus back on close. */
export function openDialog(dialog, { focus } = {}) {
  setupDialog(dialog);
  const opener = document.activeElement;
  dialog.returnValue = "";
  if (!dialog.open) dialog.showModal();
  if (focus) focus.focus();
  const giveBack = returnTarget(opener);
  dialog.addEventListener("close", () => giveBack()?.focus(), { once: true });
}

/**
 * Where focus goes when a dialog closes: its opener, or, when the opener's table row was
 * re-rendered meanwhile (a build finished), the same action button in the new row.
 */
function returnTarget(opener) {
  if (!(opener instanceof HTMLElement)) return () => null;
  const action = opener.dataset.action;
  const key = opener.closest("tr[data-key]")?.dataset.key;
  return () => {
    if (opener.isConnected) return opener;
    if (!action || !key) return null;
    return document.querySelector(
      `tr[data-key="${CSS.escape(key)}"] [data-action="${CSS.escape(action)}"]`,
    );
  };
}

/**
 * Ask before doing something that cannot be undone. Resolves true only when the user
 * presses the confirm button; Esc, the close button and "keep" resolve false.
 * The safe button has the focus first.
 */
export function confirmAction({ title, message, confirmLabel, cancelLabel = "Cancel" }) {
  const dialog = document.getElementById("confirm-dialog");
  dialog.querySelector("#confirm-title").textContent = title;
  dialog.querySelector("#confirm-message").textContent = message;
  const ok = dialog.querySelector("#confirm-ok");
  const keep = dialog.querySelector("#confirm-keep");
  ok.textContent = confirmLabel;
  keep.textContent = cancelLabel;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    openDialog(dialog, { focus: keep });
  });
}
