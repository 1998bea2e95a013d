// The extension's logic that needs no editor: finding the server binary, the settings sent to
// the server, the suggest-widget rule for inline items, the status-bar states. Unit-tested
// with `npm test` (src/test/core.test.ts).
import * as fs from "fs";
import * as path from "path";

export const SECTION = "repoformer";
const CLIENT_ONLY = `${SECTION}.server.`;

// ---- the server command ------------------------------------------------------------------

export interface CommandEnv {
  folders: string[]; // workspace folder paths, the first one is ${workspaceFolder}
  home: string;
  pathVariable: string; // $PATH
  platform: NodeJS.Platform;
  pathExt?: string; // %PATHEXT% on Windows
  isExecutable?: (file: string) => boolean;
}

export type ResolvedCommand =
  | { command: string; args: string[]; cwd?: string }
  | { error: string };

function defaultIsExecutable(file: string): boolean {
  try {
    if (!fs.statSync(file).isFile()) {
      return false;
    }
    fs.accessSync(file, process.platform === "win32" ? fs.constants.F_OK : fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

// `~` (alone or before a separator), `${userHome}` and `${workspaceFolder}`; undefined when
// `${workspaceFolder}` is used without a folder open.
export function expand(value: string, env: CommandEnv): string | undefined {
  let out = value.replace(/\$\{userHome\}/g, env.home);
  if (out === "~" || out.startsWith("~/") || out.startsWith("~\\")) {
    out = env.home + out.slice(1);
  }
  if (out.includes("${workspaceFolder}")) {
    if (env.folders.length === 0) {
      return undefined;
    }
    out = out.replace(/\$\{workspaceFolder\}/g, env.folders[0]);
  }
  return out;
}

// Where a bare command name is looked for, in order: each workspace folder's .venv and venv,
// then PATH.
export function candidates(name: string, env: CommandEnv): string[] {
  const windows = env.platform === "win32";
  const p = windows ? path.win32 : path.posix;
  const exts = windows
    ? ["", ...(env.pathExt ?? ".COM;.EXE;.BAT;.CMD").split(";").filter(Boolean).map((e) => e.toLowerCase())]
    : [""];
  const dirs: string[] = [];
  for (const folder of env.folders) {
    for (const venv of [".venv", "venv"]) {
      dirs.push(p.join(folder, venv, windows ? "Scripts" : "bin"));
    }
  }
  dirs.push(...env.pathVariable.split(windows ? ";" : ":").filter(Boolean));
  const out: string[] = [];
  for (const dir of dirs) {
    for (const ext of exts) {
      out.push(p.join(dir, name + ext));
    }
  }
  return out;
}

export function resolveServerCommand(setting: string[] | undefined, env: CommandEnv): ResolvedCommand {
  const isExecutable = env.isExecutable ?? defaultIsExecutable;
  const raw = setting && setting.length > 0 && setting[0] ? setting : ["repoformer-lsp", "serve"];
  const expanded = raw.map((part) => expand(part, env));
  if (expanded.some((part) => part === undefined)) {
    return {
      error:
        `Repoformer: ${SECTION}.server.command uses \${workspaceFolder} but no folder is open. ` +
        "Open the project's folder, or set the command to a full path.",
    };
  }
  const [program, ...args] = expanded as string[];
  const windows = env.platform === "win32";
  const p = windows ? path.win32 : path.posix;
  const cwd = env.folders[0];
  const fix =
    `Install it with \`pip install repoformer-lsp\` (in the workspace's .venv, or anywhere on PATH), ` +
    `or set "${SECTION}.server.command" to its full path, for example ` +
    `["${windows ? "C:\\\\path\\\\to\\\\.venv\\\\Scripts\\\\repoformer-lsp.exe" : "/path/to/.venv/bin/repoformer-lsp"}", "serve"]; ` +
    "then run Repoformer: Restart Server.";
  const bare = !program.includes("/") && !(windows && program.includes("\\"));
  if (bare) {
    const found = candidates(program, env).find(isExecutable);
    if (found) {
      return { command: found, args, cwd };
    }
    const places = env.folders
      .flatMap((f) => [".venv", "venv"].map((v) => p.join(f, v, windows ? "Scripts" : "bin")))
      .concat(["PATH"]);
    return {
      error: `Repoformer: the language server \`${program}\` was not found (looked in ${places.join(", ")}). ${fix}`,
    };
  }
  const absolute = p.isAbsolute(program) ? program : p.resolve(cwd ?? env.home, program);
  if (isExecutable(absolute)) {
    return { command: absolute, args, cwd };
  }
  return {
    error: `Repoformer: the language server \`${absolute}\` (${SECTION}.server.command) does not exist or is not executable. ${fix}`,
  };
}

// ---- settings ----------------------------------------------------------------------------

// The contributed keys that are server settings: `repoformer.x.y` without `repoformer.server.*`.
export function serverKeys(contributed: Record<string, unknown>): string[] {
  return Object.keys(contributed)
    .filter((key) => key.startsWith(`${SECTION}.`) && !key.startsWith(CLIENT_ONLY))
    .map((key) => key.slice(SECTION.length + 1));
}

// {"retrieval.topK": 4, "model.remote.url": ""} -> {retrieval: {topK: 4}, model: {remote: {url: ""}}}
export function nestSettings(keys: string[], get: (key: string) => unknown): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of keys) {
    const parts = key.split(".");
    let node = out;
    for (const part of parts.slice(0, -1)) {
      if (typeof node[part] !== "object" || node[part] === null) {
        node[part] = {};
      }
      node = node[part] as Record<string, unknown>;
    }
    const value = get(key);
    node[parts[parts.length - 1]] = value === undefined ? null : value;
  }
  return out;
}

// The document selector's languages: the package's `onLanguage:` activation events.
export function languagesOf(activationEvents: string[]): string[] {
  return activationEvents
    .filter((event) => event.startsWith("onLanguage:"))
    .map((event) => event.slice("onLanguage:".length));
}

// ---- the suggest widget ------------------------------------------------------------------

// With an item of the suggest widget selected, VS Code shows an inline item only if it extends
// what that item inserts. `typed` is the document's text in the item's range (up to the
// cursor), `completion` what the server suggests at the cursor; the result replaces the
// item's range, or is undefined when the two disagree (then nothing is shown).
export function extendSelected(typed: string, selectedText: string, completion: string): string | undefined {
  const full = typed + completion;
  return full.startsWith(selectedText) && full.length > selectedText.length ? full : undefined;
}

// Whether a request is worth sending at all: the typed text must be a prefix of the item's.
export function selectedIsReachable(typed: string, selectedText: string): boolean {
  return selectedText.startsWith(typed);
}

// ---- status ------------------------------------------------------------------------------

export type Phase = "starting" | "ready" | "busy" | "error" | "stopped";

export interface StatusView {
  text: string;
  tooltip: string;
  error: boolean; // shown with the error background; a click opens the log
}

export function statusView(phase: Phase, mode: string, message?: string): StatusView {
  switch (phase) {
    case "starting":
      return { text: "$(loading~spin) Repoformer", tooltip: "Repoformer: starting the language server", error: false };
    case "stopped":
      return {
        text: "$(circle-slash) Repoformer: not running",
        tooltip: `${message ?? "Repoformer: the language server is not running."}\nClick for the log.`,
        error: true,
      };
    case "error":
      return {
        text: `$(error) Repoformer: ${mode}`,
        tooltip: `${message ?? "Repoformer: error"}\nClick for the log.`,
        error: true,
      };
    case "busy":
      return { text: `$(sync~spin) Repoformer: ${mode}`, tooltip: "Repoformer: completing…", error: false };
    default:
      return {
        text: `$(sparkle) Repoformer: ${mode}`,
        tooltip: "Retrieval mode of Repoformer completions (click to change)",
        error: false,
      };
  }
}

// A decision record's error that is worth showing (a newer keystroke is not an error).
export function recordError(record: { error?: string | null }): string | undefined {
  const error = record.error;
  if (!error || error === "superseded" || error === "cancelled") {
    return undefined;
  }
  return error;
}
