// A field's error message with suggested values under it: each suggestion is a button that
// puts its value into the field (and clears the error). Used on the ref field for an
// unknown ref (the API error's `suggestions`: existing branches, default first), by the
// environments page's add dialog and the hub's spawn form.

/**
 * Show `message` in `feedback` (the field's `.invalid-feedback` element) and one button per
 * suggestion; clicking one fills `input` with it and focuses the field.
 */
export function showSuggestions(feedback, input, message, suggestions = []) {
  feedback.replaceChildren(document.createTextNode(message));
  if (!suggestions.length) return;
  const group = document.createElement("div");
  group.className = "r2d-suggestions d-flex flex-wrap align-items-center gap-1 mt-1";
  group.setAttribute("role", "group");
  const label = document.createElement("span");
  label.id = `${input.id}-suggestions-label`;
  label.textContent = "Existing branches:";
  group.setAttribute("aria-labelledby", label.id);
  group.append(label);
  for (const value of suggestions) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "btn btn-sm btn-outline-secondary font-monospace r2d-suggestion";
    button.textContent = value;
    button.dataset.value = value;
    button.addEventListener("click", () => {
      input.value = value;
      input.dispatchEvent(new Event("input", { bubbles: true }));
      input.focus();
    });
    group.append(button);
  }
  feedback.append(group);
}
