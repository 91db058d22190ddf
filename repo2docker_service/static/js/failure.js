// A failed build's log, summarised: the step that failed and its last lines of output, which
// matter more than the ~40 lines of repo2docker traceback and the buildx command at the end.
//
// Understands, in this order: BuildKit's own summary block ("------ / > [3/3] RUN ...: /
// output / ------"), BuildKit plain progress ("#6 [3/3] RUN ..." ... "#6 ERROR: ..."), the
// classic builder ("Step 3/3 : RUN ..." ... "The command ... returned a non-zero code"), and
// else the last "ERROR"/"error:" line with the lines before it.

const LAST_LINES = 12;
const ANSI = /\x1b\[[0-9;?]*[A-Za-z]/g;

/** lines: the log's lines (text). Returns {step, lines} or null when nothing is recognised. */
export function summarizeFailure(rawLines) {
  const lines = rawLines.flatMap((l) => String(l).replace(ANSI, "").replace(/\r?\n$/, "").split(/\r?\n/));
  return buildkitBlock(lines) || buildkitProgress(lines) || classic(lines) || lastError(lines);
}

const tail = (list) => list.slice(-LAST_LINES);
const untimed = (line) => line.replace(/^\d+\.\d+ /, "");

function buildkitBlock(lines) {
  for (let i = lines.length - 1; i > 0; i -= 1) {
    const m = /^ > (\[[^\]]+\] .*):$/.exec(lines[i]);
    if (!m || lines[i - 1] !== "------") continue;
    const out = [];
    for (let j = i + 1; j < lines.length && lines[j] !== "------"; j += 1) out.push(untimed(lines[j]));
    return { step: m[1], lines: tail(out) };
  }
  return null;
}

function buildkitProgress(lines) {
  const failed = [...lines].reverse().find((l) => /^#\d+ ERROR: /.test(l));
  if (!failed) return null;
  const id = failed.split(" ")[0];
  const title = lines.find((l) => l.startsWith(`${id} [`));
  const out = lines
    .filter((l) => l.startsWith(`${id} `) && l !== title)
    .map((l) => untimed(l.slice(id.length + 1)));
  return { step: title ? title.slice(id.length + 1) : failed.slice(id.length + 1), lines: tail(out) };
}

function classic(lines) {
  const end = lines.findLastIndex((l) => /returned a non-zero code/.test(l));
  if (end < 0) return null;
  const start = lines.slice(0, end).findLastIndex((l) => /^Step \d+\/\d+ : /.test(l));
  if (start < 0) return null;
  const out = lines.slice(start + 1, end + 1).filter((l) => !/^ ---> /.test(l));
  return { step: lines[start].replace(/^Step \d+\/\d+ : /, ""), lines: tail(out) };
}

function lastError(lines) {
  const at = lines.findLastIndex((l) => /^(ERROR|E:|error:)/i.test(l.trim()));
  if (at < 0) return null;
  return { step: null, lines: lines.slice(Math.max(0, at - LAST_LINES + 1), at + 1) };
}
