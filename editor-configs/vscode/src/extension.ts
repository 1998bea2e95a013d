// Repoformer for VS Code: starts `repoformer-lsp serve`, shows its inline completions as
// ghost text, forwards setting changes at run time, and keeps the server's decision records
// (one per completion: mode, policy, p_retrieve, chunks used, timings) in their own channel.
// The settings it sends and the languages it serves come from package.json, which
// scripts/sync_server_tables.py writes from the server's own tables.
import * as os from "os";
import * as vscode from "vscode";
import {
  LanguageClient,
  LanguageClientOptions,
  LogMessageNotification,
  MessageType,
  ServerOptions,
  ShowMessageNotification,
  State,
} from "vscode-languageclient/node";
import {
  extendSelected,
  languagesOf,
  nestSettings,
  Phase,
  recordError,
  resolveServerCommand,
  SECTION,
  selectedIsReachable,
  serverKeys,
  statusView,
} from "./core";

const MODES = ["selective", "always", "never"] as const;
const DECISION_PREFIX = "repoformer decision ";
const MODEL_LOADED_PREFIX = "repoformer model loaded";

let client: LanguageClient | undefined;

interface DecisionRecord {
  uri?: string;
  line?: number;
  character?: number;
  mode?: string;
  policy?: string;
  p_retrieve?: number | null;
  retrieved?: boolean;
  chunks?: { path: string; start_line: number; end_line: number; score: number }[];
  timings_ms?: Record<string, number>;
  error?: string | null;
  cache?: string; // "type-through": answered from the previous suggestion
}

function describe(record: DecisionRecord): string {
  const file = record.uri ? vscode.workspace.asRelativePath(vscode.Uri.parse(record.uri)) : "?";
  const t = record.timings_ms ?? {};
  const chunks = (record.chunks ?? [])
    .map((c) => `${c.path}:${c.start_line}-${c.end_line} (${c.score})`)
    .join(", ");
  return (
    `${new Date().toLocaleTimeString()} ${file}:${(record.line ?? 0) + 1}:${(record.character ?? 0) + 1}` +
    ` mode=${record.mode} policy=${record.policy} p_retrieve=${record.p_retrieve}` +
    ` retrieved=${record.retrieved} total=${t.total}ms prefill=${t.prefill}ms` +
    (record.cache ? ` cache=${record.cache}` : "") +
    (chunks ? `\n    chunks: ${chunks}` : "") +
    (record.error ? `\n    error: ${record.error}` : "")
  );
}

// The status-bar item: starting, ready (the mode), busy (a request runs), error (the last
// model or request error, as the tooltip), stopped (the server did not start or exited).
class Status {
  private phase: Phase = "starting";
  private message: string | undefined;
  private inFlight = 0;

  constructor(private readonly item: vscode.StatusBarItem) {
    this.render();
    item.show();
  }

  set(phase: "starting" | "ready" | "error" | "stopped", message?: string): void {
    this.phase = phase;
    this.message = message;
    this.render();
  }

  get current(): Phase {
    return this.phase;
  }

  async busy<T>(work: () => Promise<T>): Promise<T> {
    this.inFlight++;
    this.render();
    try {
      return await work();
    } finally {
      this.inFlight--;
      this.render();
    }
  }

  render(): void {
    const mode = vscode.workspace.getConfiguration(SECTION).get<string>("retrieval.mode", "selective");
    const phase = this.phase === "ready" && this.inFlight > 0 ? "busy" : this.phase;
    const view = statusView(phase, mode, this.message);
    this.item.text = view.text;
    this.item.tooltip = view.tooltip;
    this.item.command = view.error ? "repoformer.showLog" : "repoformer.setMode";
    this.item.backgroundColor = view.error ? new vscode.ThemeColor("statusBarItem.errorBackground") : undefined;
  }
}

function packageJSON(context: vscode.ExtensionContext): {
  activationEvents?: string[];
  contributes?: { configuration?: { properties?: Record<string, unknown> } };
} {
  return context.extension.packageJSON;
}

function startClient(
  context: vscode.ExtensionContext,
  logs: vscode.OutputChannel,
  decisions: vscode.OutputChannel,
  status: Status,
  languages: string[],
): LanguageClient | undefined {
  const keys = serverKeys(packageJSON(context).contributes?.configuration?.properties ?? {});
  // What the server reads: every contributed setting but the client-only `server.*` ones.
  const serverSettings = () => {
    const config = vscode.workspace.getConfiguration(SECTION);
    return nestSettings(keys, (key) => config.get(key));
  };
  const folders = (vscode.workspace.workspaceFolders ?? [])
    .filter((f) => f.uri.scheme === "file")
    .map((f) => f.uri.fsPath);
  const resolved = resolveServerCommand(
    vscode.workspace.getConfiguration(SECTION).get<string[]>("server.command"),
    {
      folders,
      home: os.homedir(),
      pathVariable: process.env.PATH ?? "",
      pathExt: process.env.PATHEXT,
      platform: process.platform,
    },
  );
  if ("error" in resolved) {
    logs.appendLine(resolved.error);
    status.set("stopped", resolved.error);
    void vscode.window.showErrorMessage(resolved.error, "Open Settings").then((choice) => {
      if (choice) {
        void vscode.commands.executeCommand("workbench.action.openSettings", `${SECTION}.server.command`);
      }
    });
    return undefined;
  }
  logs.appendLine(`Repoformer: starting ${[resolved.command, ...resolved.args].join(" ")}`);
  const serverOptions: ServerOptions = {
    command: resolved.command,
    args: resolved.args,
    options: { cwd: resolved.cwd },
  };
  const clientOptions: LanguageClientOptions = {
    documentSelector: languages.map((language) => ({ scheme: "file", language })),
    outputChannel: logs,
    initializationOptions: serverSettings(),
    synchronize: { configurationSection: SECTION },
    middleware: {
      workspace: {
        // Answer workspace/configuration with the server's keys only.
        configuration: (params) =>
          params.items.map((item) => (item.section === SECTION ? serverSettings() : null)),
        didChangeConfiguration: async () => {
          await client?.sendNotification("workspace/didChangeConfiguration", {
            settings: { [SECTION]: serverSettings() },
          });
        },
      },
    },
  };
  const created = new LanguageClient(SECTION, "Repoformer", serverOptions, clientOptions);
  // Registered before start, so they replace the client's default handlers (and survive
  // restarts): decision records to their own channel, model errors to the status bar.
  created.onNotification(LogMessageNotification.type, (params) => {
    if (params.message.startsWith(DECISION_PREFIX)) {
      try {
        const record = JSON.parse(params.message.slice(DECISION_PREFIX.length)) as DecisionRecord;
        decisions.appendLine(describe(record));
        const error = recordError(record);
        if (error) {
          status.set("error", `Repoformer: ${error}`);
        } else if (status.current === "error" && !record.error) {
          status.set("ready"); // a completion went through: the error is over
        }
      } catch {
        decisions.appendLine(params.message);
      }
      return;
    }
    logs.appendLine(params.message);
    if (params.message.startsWith(MODEL_LOADED_PREFIX) && status.current === "error") {
      status.set("ready");
    }
  });
  created.onNotification(ShowMessageNotification.type, (params) => {
    logs.appendLine(params.message);
    switch (params.type) {
      case MessageType.Error:
        status.set("error", params.message);
        void vscode.window.showErrorMessage(params.message);
        break;
      case MessageType.Warning:
        void vscode.window.showWarningMessage(params.message);
        break;
      default:
        void vscode.window.showInformationMessage(params.message);
    }
  });
  context.subscriptions.push(
    created.onDidChangeState((event) => {
      if (event.newState === State.Running) {
        status.set("ready");
      } else if (event.newState === State.Starting) {
        status.set("starting");
      } else if (event.newState === State.Stopped && status.current !== "stopped") {
        status.set("stopped", "Repoformer: the language server stopped (see the Repoformer log).");
      }
    }),
  );
  return created;
}

type LspRange = { start: { line: number; character: number }; end: { line: number; character: number } };

// Ghost text: ask the server (LSP textDocument/inlineCompletion) and hand VS Code the items.
class InlineProvider implements vscode.InlineCompletionItemProvider {
  constructor(private readonly status: Status) {}

  async provideInlineCompletionItems(
    document: vscode.TextDocument,
    position: vscode.Position,
    context: vscode.InlineCompletionContext,
    token: vscode.CancellationToken,
  ): Promise<vscode.InlineCompletionItem[]> {
    const running = client;
    if (!running || !running.isRunning()) {
      return [];
    }
    // An item of the suggest widget is selected: the ghost text must extend it. The server
    // completes at the cursor; what it says is kept only if it continues the item's text.
    const selected = context.selectedCompletionInfo;
    let typed = "";
    if (selected) {
      if (!selected.range.end.isEqual(position) || selected.range.start.line !== position.line) {
        return []; // the item replaces text after the cursor: no inline item can fit
      }
      typed = document.getText(selected.range);
      if (!selectedIsReachable(typed, selected.text)) {
        return [];
      }
    }
    const lspRange = (r: vscode.Range): LspRange => ({
      start: { line: r.start.line, character: r.start.character },
      end: { line: r.end.line, character: r.end.character },
    });
    const params = {
      textDocument: { uri: document.uri.toString() },
      position: { line: position.line, character: position.character },
      context: {
        triggerKind: context.triggerKind === vscode.InlineCompletionTriggerKind.Invoke ? 1 : 2,
        ...(selected
          ? { selectedCompletionInfo: { range: lspRange(selected.range), text: selected.text } }
          : {}),
      },
    };
    try {
      const result = await this.status.busy(() =>
        running.sendRequest<{ items: { insertText: string | { value: string }; range?: LspRange }[] } | null>(
          "textDocument/inlineCompletion",
          params,
          token,
        ),
      );
      const items: vscode.InlineCompletionItem[] = [];
      for (const item of result?.items ?? []) {
        const text = typeof item.insertText === "string" ? item.insertText : item.insertText.value;
        const range = item.range
          ? new vscode.Range(item.range.start.line, item.range.start.character, item.range.end.line, item.range.end.character)
          : new vscode.Range(position, position);
        if (!selected) {
          items.push(new vscode.InlineCompletionItem(text, range));
        } else if (range.isEqual(selected.range)) {
          items.push(new vscode.InlineCompletionItem(text, range)); // already relative to the item
        } else if (range.isEmpty && range.start.isEqual(position)) {
          const full = extendSelected(typed, selected.text, text);
          if (full !== undefined) {
            items.push(new vscode.InlineCompletionItem(full, selected.range));
          }
        }
      }
      return items;
    } catch {
      return []; // cancelled or the server is busy: no suggestion, never an error popup
    }
  }
}

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  const logs = vscode.window.createOutputChannel("Repoformer");
  const decisions = vscode.window.createOutputChannel("Repoformer Decisions");
  const item = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Right, 100);
  const status = new Status(item);
  context.subscriptions.push(logs, decisions, item);
  const languages = languagesOf(packageJSON(context).activationEvents ?? []);

  const start = async (): Promise<void> => {
    status.set("starting");
    client = startClient(context, logs, decisions, status, languages);
    if (!client) {
      return; // the status bar already says why
    }
    try {
      await client.start();
    } catch (error) {
      const message = `Repoformer: the language server failed to start: ${error instanceof Error ? error.message : String(error)}`;
      logs.appendLine(message);
      status.set("stopped", message);
    }
  };

  context.subscriptions.push(
    vscode.commands.registerCommand("repoformer.setMode", async () => {
      const picked = await vscode.window.showQuickPick([...MODES], {
        placeHolder: "Retrieval mode for completions",
      });
      if (picked) {
        const target = vscode.workspace.workspaceFolders
          ? vscode.ConfigurationTarget.Workspace
          : vscode.ConfigurationTarget.Global;
        await vscode.workspace.getConfiguration(SECTION).update("retrieval.mode", picked, target);
      }
    }),
    vscode.commands.registerCommand("repoformer.showDecisions", () => decisions.show(true)),
    vscode.commands.registerCommand("repoformer.showLog", () => logs.show(true)),
    vscode.commands.registerCommand("repoformer.restart", async () => {
      // Stops the old server and starts again: re-reads repoformer.server.command too.
      const old = client;
      client = undefined;
      if (old) {
        try {
          await old.stop();
        } catch {
          // it had already stopped
        }
        await old.dispose();
      }
      await start();
    }),
    vscode.workspace.onDidChangeConfiguration((event) => {
      if (event.affectsConfiguration(SECTION)) {
        status.render();
      }
    }),
    vscode.languages.registerInlineCompletionItemProvider(
      languages.map((language) => ({ scheme: "file", language })),
      new InlineProvider(status),
    ),
  );

  await start();
}

export async function deactivate(): Promise<void> {
  await client?.stop();
}
