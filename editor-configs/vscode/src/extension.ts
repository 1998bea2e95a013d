// Repoformer for VS Code: starts `repoformer-lsp serve`, shows its inline completions as
// ghost text, forwards setting changes at run time, and keeps the server's decision records
// (one per completion: mode, policy, p_retrieve, chunks used, timings) in their own channel.
import * as vscode from "vscode";
import {
  LanguageClient,
  LanguageClientOptions,
  LogMessageNotification,
  ServerOptions,
  State,
} from "vscode-languageclient/node";

const SECTION = "repoformer";
const MODES = ["selective", "always", "never"] as const;
const LANGUAGES = [
  "python",
  "javascript",
  "javascriptreact",
  "typescript",
  "typescriptreact",
  "java",
  "go",
  "csharp",
];
const DECISION_PREFIX = "repoformer decision ";

let client: LanguageClient | undefined;

// What the server reads: the `repoformer` section without the client-only `server` keys.
function serverSettings(): Record<string, unknown> {
  const config = vscode.workspace.getConfiguration(SECTION);
  return {
    retrieval: {
      mode: config.get("retrieval.mode"),
      policy: config.get("retrieval.policy"),
      threshold: config.get("retrieval.threshold"),
      topK: config.get("retrieval.topK"),
    },
    model: { path: config.get("model.path") },
  };
}

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
  error?: string;
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
    (chunks ? `\n    chunks: ${chunks}` : "") +
    (record.error ? `\n    error: ${record.error}` : "")
  );
}

function startClient(context: vscode.ExtensionContext, logs: vscode.OutputChannel,
  decisions: vscode.OutputChannel): LanguageClient {
  const command = vscode.workspace
    .getConfiguration(SECTION)
    .get<string[]>("server.command", ["repoformer-lsp", "serve"]);
  const serverOptions: ServerOptions = { command: command[0], args: command.slice(1) };
  const clientOptions: LanguageClientOptions = {
    documentSelector: LANGUAGES.map((language) => ({ scheme: "file", language })),
    outputChannel: logs,
    initializationOptions: serverSettings(),
    synchronize: { configurationSection: SECTION },
    middleware: {
      workspace: {
        // Answer workspace/configuration with the server's keys only.
        configuration: (params, token, next) =>
          params.items.map((item) => (item.section === SECTION ? serverSettings() : null)),
        didChangeConfiguration: async (sections, next) => {
          await client?.sendNotification("workspace/didChangeConfiguration", {
            settings: { [SECTION]: serverSettings() },
          });
        },
      },
    },
  };
  const created = new LanguageClient(SECTION, "Repoformer", serverOptions, clientOptions);
  context.subscriptions.push(
    created.onDidChangeState((event) => {
      if (event.newState === State.Running) {
        // Decision records to their own channel, the rest of the log to the usual one.
        created.onNotification(LogMessageNotification.type, (params) => {
          if (params.message.startsWith(DECISION_PREFIX)) {
            try {
              decisions.appendLine(describe(JSON.parse(params.message.slice(DECISION_PREFIX.length))));
            } catch {
              decisions.appendLine(params.message);
            }
          } else {
            logs.appendLine(params.message);
          }
        });
      }
    }),
  );
  return created;
}

// Ghost text: ask the server (LSP textDocument/inlineCompletion) and hand VS Code the items.
class InlineProvider implements vscode.InlineCompletionItemProvider {
  async provideInlineCompletionItems(
    document: vscode.TextDocument,
    position: vscode.Position,
    context: vscode.InlineCompletionContext,
    token: vscode.CancellationToken,
  ): Promise<vscode.InlineCompletionItem[]> {
    if (!client || !client.isRunning()) {
      return [];
    }
    const params = {
      textDocument: { uri: document.uri.toString() },
      position: { line: position.line, character: position.character },
      context: {
        triggerKind: context.triggerKind === vscode.InlineCompletionTriggerKind.Invoke ? 1 : 2,
      },
    };
    try {
      const result = await client.sendRequest<
        | { items: { insertText: string | { value: string }; range?: { start: { line: number; character: number }; end: { line: number; character: number } } }[] }
        | null
      >("textDocument/inlineCompletion", params, token);
      return (result?.items ?? []).map((item) => {
        const text = typeof item.insertText === "string" ? item.insertText : item.insertText.value;
        const range = item.range
          ? new vscode.Range(
              item.range.start.line,
              item.range.start.character,
              item.range.end.line,
              item.range.end.character,
            )
          : new vscode.Range(position, position);
        return new vscode.InlineCompletionItem(text, range);
      });
    } catch {
      return []; // cancelled or the server is busy: no suggestion, never an error popup
    }
  }
}

function updateStatus(item: vscode.StatusBarItem): void {
  const mode = vscode.workspace.getConfiguration(SECTION).get<string>("retrieval.mode", "selective");
  item.text = `$(sparkle) Repoformer: ${mode}`;
  item.tooltip = "Retrieval mode of Repoformer completions (click to change)";
}

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  const logs = vscode.window.createOutputChannel("Repoformer");
  const decisions = vscode.window.createOutputChannel("Repoformer Decisions");
  const status = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Right, 100);
  status.command = "repoformer.setMode";
  updateStatus(status);
  status.show();
  context.subscriptions.push(logs, decisions, status);

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
    vscode.commands.registerCommand("repoformer.restart", async () => {
      await client?.restart();
    }),
    vscode.workspace.onDidChangeConfiguration((event) => {
      if (event.affectsConfiguration(SECTION)) {
        updateStatus(status);
      }
    }),
    vscode.languages.registerInlineCompletionItemProvider(
      LANGUAGES.map((language) => ({ scheme: "file", language })),
      new InlineProvider(),
    ),
  );

  client = startClient(context, logs, decisions);
  await client.start();
}

export async function deactivate(): Promise<void> {
  await client?.stop();
}
