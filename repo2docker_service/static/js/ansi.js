// ANSI escape codes in build output: SGR colour/bold codes become CSS classes
// (ansi-fg-31, ansi-bold, ...), every other escape sequence is dropped. The result is
// a list of {text, classes} runs for the caller to put into textContent.

// CSI sequences (ESC [ params final), OSC sequences (ESC ] ... BEL or ESC \), and
// lone two-character escapes.
const ESCAPE_RE = /\x1b(?:\[([0-9;?]*)([@-~])|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])/g;
const OTHER_CONTROL_RE = /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/g;

/** A fresh SGR state (carried across lines, as a terminal does). */
export function initialState() {
  return { fg: null, bg: null, bold: false, dim: false, italic: false, underline: false };
}

function applySgr(state, params) {
  const codes = params === "" ? [0] : params.split(";").map((p) => Number(p || 0));
  for (let i = 0; i < codes.length; i += 1) {
    const code = codes[i];
    if (code === 0) Object.assign(state, initialState());
    else if (code === 1) state.bold = true;
    else if (code === 2) state.dim = true;
    else if (code === 3) state.italic = true;
    else if (code === 4) state.underline = true;
    else if (code === 22) state.bold = state.dim = false;
    else if (code === 23) state.italic = false;
    else if (code === 24) state.underline = false;
    else if ((code >= 30 && code <= 37) || (code >= 90 && code <= 97)) state.fg = code;
    else if (code === 39) state.fg = null;
    else if ((code >= 40 && code <= 47) || (code >= 100 && code <= 107)) state.bg = code;
    else if (code === 49) state.bg = null;
    else if (code === 38 || code === 48) {
      // 256-colour / truecolour: skip the arguments, keep the default colour
      i += codes[i + 1] === 5 ? 2 : codes[i + 1] === 2 ? 4 : 0;
    }
  }
}

function classesOf(state) {
  const classes = [];
  if (state.fg !== null) classes.push(`ansi-fg-${state.fg}`);
  if (state.bg !== null) classes.push(`ansi-bg-${state.bg}`);
  if (state.bold) classes.push("ansi-bold");
  if (state.dim) classes.push("ansi-dim");
  if (state.italic) classes.push("ansi-italic");
  if (state.underline) classes.push("ansi-underline");
  return classes.join(" ");
}

/**
 * Split `text` into runs of plain text with the classes their SGR state gives.
 * `state` (from initialState()) is updated in place so colours carry to the next line.
 */
export function parseAnsi(text, state = initialState()) {
  const runs = [];
  let last = 0;
  const push = (chunk) => {
    const clean = chunk.replace(OTHER_CONTROL_RE, "");
    if (clean) runs.push({ text: clean, classes: classesOf(state) });
  };
  ESCAPE_RE.lastIndex = 0;
  for (let m = ESCAPE_RE.exec(text); m !== null; m = ESCAPE_RE.exec(text)) {
    push(text.slice(last, m.index));
    last = ESCAPE_RE.lastIndex;
    if (m[2] === "m" && !(m[1] || "").includes("?")) applySgr(state, m[1] || "");
  }
  push(text.slice(last));
  return runs;
}

/** Append `text` to `parent` as text nodes / spans (never markup). */
export function appendAnsi(parent, text, state) {
  for (const run of parseAnsi(text, state)) {
    if (run.classes) {
      const span = document.createElement("span");
      span.className = run.classes;
      span.textContent = run.text;
      parent.append(span);
    } else {
      parent.append(document.createTextNode(run.text));
    }
  }
}
