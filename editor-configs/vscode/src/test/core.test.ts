// Unit tests of the editor-free logic (`npm test`): node's own test runner, no VS Code.
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { test } from "node:test";
import {
  candidates,
  extendSelected,
  languagesOf,
  nestSettings,
  recordError,
  resolveServerCommand,
  selectedIsReachable,
  serverKeys,
  statusView,
} from "../core";

const posix = (files: string[], folders = ["/w"]) => ({
  folders,
  home: "/home/u",
  pathVariable: "/usr/local/bin:/usr/bin",
  platform: "linux" as NodeJS.Platform,
  isExecutable: (f: string) => files.includes(f),
});

test("the workspace's .venv wins over venv and PATH", () => {
  const env = posix(["/w/.venv/bin/repoformer-lsp", "/w/venv/bin/repoformer-lsp", "/usr/bin/repoformer-lsp"]);
  assert.deepEqual(resolveServerCommand(["repoformer-lsp", "serve"], env), {
    command: "/w/.venv/bin/repoformer-lsp",
    args: ["serve"],
    cwd: "/w",
  });
  const noVenv = posix(["/w/venv/bin/repoformer-lsp", "/usr/bin/repoformer-lsp"]);
  assert.equal((resolveServerCommand(undefined, noVenv) as { command: string }).command, "/w/venv/bin/repoformer-lsp");
  const onPath = posix(["/usr/bin/repoformer-lsp"]);
  assert.equal((resolveServerCommand([], onPath) as { command: string }).command, "/usr/bin/repoformer-lsp");
});

test("Windows looks in Scripts with PATHEXT", () => {
  const env = {
    folders: ["C:\\w"],
    home: "C:\\Users\\u",
    pathVariable: "C:\\bin",
    pathExt: ".EXE;.CMD",
    platform: "win32" as NodeJS.Platform,
    isExecutable: (f: string) => f === "C:\\w\\.venv\\Scripts\\repoformer-lsp.exe",
  };
  assert.ok(candidates("repoformer-lsp", env).includes("C:\\w\\.venv\\Scripts\\repoformer-lsp.exe"));
  assert.equal(
    (resolveServerCommand(["repoformer-lsp", "serve"], env) as { command: string }).command,
    "C:\\w\\.venv\\Scripts\\repoformer-lsp.exe",
  );
});

test("~ and ${workspaceFolder} are expanded", () => {
  const env = posix(["/home/u/venv/bin/repoformer-lsp", "/w/tools/lsp"]);
  assert.deepEqual(resolveServerCommand(["~/venv/bin/repoformer-lsp", "serve", "--log=${workspaceFolder}/x"], env), {
    command: "/home/u/venv/bin/repoformer-lsp",
    args: ["serve", "--log=/w/x"],
    cwd: "/w",
  });
  assert.equal((resolveServerCommand(["${workspaceFolder}/tools/lsp"], env) as { command: string }).command, "/w/tools/lsp");
  const none = resolveServerCommand(["${workspaceFolder}/tools/lsp"], posix([], []));
  assert.match((none as { error: string }).error, /no folder is open/);
});

test("a missing server is an error that says where it looked and the fix", () => {
  const missing = resolveServerCommand(["repoformer-lsp", "serve"], posix([]));
  assert.ok("error" in missing);
  assert.match(missing.error, /\/w\/\.venv\/bin, \/w\/venv\/bin, PATH/);
  assert.match(missing.error, /pip install repoformer-lsp/);
  assert.match(missing.error, /repoformer\.server\.command/);
  const badPath = resolveServerCommand(["/nope/repoformer-lsp"], posix([]));
  assert.match((badPath as { error: string }).error, /\/nope\/repoformer-lsp.*does not exist/);
});

test("every contributed setting but server.* is sent, nested", () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, "..", "..", "package.json"), "utf8"));
  const props = pkg.contributes.configuration.properties as Record<string, { default: unknown }>;
  const keys = serverKeys(props);
  assert.ok(keys.length > 30);
  assert.ok(!keys.some((k) => k.startsWith("server.")));
  const sent = nestSettings(keys, (k) => props[`repoformer.${k}`].default);
  const leaves: string[] = [];
  const walk = (node: Record<string, unknown>, prefix: string) => {
    for (const [k, v] of Object.entries(node)) {
      if (v !== null && typeof v === "object" && !Array.isArray(v)) {
        walk(v as Record<string, unknown>, `${prefix}${k}.`);
      } else {
        leaves.push(`${prefix}${k}`);
      }
    }
  };
  walk(sent, "");
  assert.deepEqual(leaves.sort(), [...keys].sort());
  assert.deepEqual((sent.model as Record<string, unknown>).remote, { url: "", model: "", apiKey: "", timeoutS: 30 });
  assert.equal(nestSettings(["retrieval.threshold"], () => undefined).retrieval !== undefined, true);
});

test("the selector's languages come from the activation events, C to Lua included", () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, "..", "..", "package.json"), "utf8"));
  const languages = languagesOf(pkg.activationEvents);
  for (const id of ["python", "c", "cpp", "rust", "ruby", "lua", "typescriptreact"]) {
    assert.ok(languages.includes(id), id);
  }
});

test("with a suggest-widget item selected, only completions that extend it are kept", () => {
  assert.equal(extendSelected("pri", "print", "nt(x)"), "print(x)");
  assert.equal(extendSelected("pri", "printf", "nt(x)"), undefined);
  assert.equal(extendSelected("pri", "print", "nt"), undefined); // adds nothing to the item
  assert.equal(extendSelected("", "self", "self.x = 1"), "self.x = 1");
  assert.ok(selectedIsReachable("pri", "print"));
  assert.ok(!selectedIsReachable("prt", "print"));
});

test("status states", () => {
  assert.equal(statusView("ready", "never").text, "$(sparkle) Repoformer: never");
  assert.match(statusView("busy", "selective").text, /sync~spin/);
  const error = statusView("error", "selective", "repoformer: model file missing");
  assert.ok(error.error && error.tooltip.includes("model file missing"));
  const stopped = statusView("stopped", "selective", "not found");
  assert.ok(stopped.error && !stopped.text.includes("selective"));
  assert.equal(recordError({ error: "superseded" }), undefined);
  assert.equal(recordError({ error: null }), undefined);
  assert.equal(recordError({ error: "model not loaded" }), "model not loaded");
});
