#!/bin/sh
# The packaged extension in a real VS Code workbench: code-server (VS Code in a browser, from
# npm) driven by headless Chromium (Debian's), against the fast test server (the real
# language server with an instant generator: no model). Three runs of scripts/ghost-text.mjs:
#   ghost        type in examples/workspace, see the ghost text and the decision record,
#                accept it with Tab; saves docs/vscode-ghost-text.png
#   missing      server.command not found: an error with the fix, status "not running"
#   model-error  the model fails to load: an error notification and the error icon
# Part of `make test` (`make vscode-e2e`, which installs the Debian packages below); a first
# run installs code-server (a few minutes), later runs take about 1.5 minutes.
#
#   editor-configs/vscode/scripts/code-server-test.sh
#
# SHOT: where the ghost-text screenshot goes (default docs/vscode-ghost-text.png, the README's).
# The workspace is a copy of examples/workspace (under .vscode-test/workspace).
# Needs Node 20, build tools (gcc, make, python3), and the Debian packages chromium,
# libkrb5-dev and ripgrep. Everything else goes under editor-configs/vscode/.vscode-test/.
set -eu

HERE=$(cd "$(dirname "$0")/.." && pwd) # editor-configs/vscode
ROOT=$(cd "$HERE/../.." && pwd)
WORK="$HERE/.vscode-test"
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
PORT=${PORT:-8321}
SHOT=${SHOT:-$ROOT/docs/vscode-ghost-text.png}
CS_VERSION=4.100.3 # the last code-server release on Node 20
CS="$WORK/code-server/package"
export npm_config_yes=true npm_config_audit=false npm_config_fund=false

for need in chromium rg gcc make curl; do
  command -v "$need" >/dev/null || { echo "missing $need (apt-get install -y chromium ripgrep build-essential libkrb5-dev)"; exit 1; }
done
mkdir -p "$WORK"

# code-server's postinstall runs `npm install` in lib/vscode, whose @vscode/ripgrep downloads
# a binary from GitHub (not reachable here): install without scripts, build the native
# modules, and use Debian's rg.
if [ ! -f "$WORK/code-server/.ready" ]; then
  rm -rf "$WORK/code-server" && mkdir -p "$WORK/code-server" && cd "$WORK/code-server"
  npm pack "code-server@$CS_VERSION" --silent >/dev/null
  tar xzf "code-server-$CS_VERSION.tgz"
  cd "$CS"
  npm install --omit=dev --ignore-scripts --silent
  npm rebuild argon2 --build-from-source >/dev/null
  cd lib/vscode
  npm install --omit=dev --ignore-scripts --silent
  npm rebuild kerberos @vscode/deviceid @vscode/spdlog native-watchdog node-pty >/dev/null
  (cd node_modules/@parcel/watcher && npx node-gyp rebuild >/dev/null)
  mkdir -p node_modules/@vscode/ripgrep/bin && ln -sf "$(command -v rg)" node_modules/@vscode/ripgrep/bin/rg
  ln -sfn node_modules node_modules.asar
  (cd bin/remote-cli && ln -sf code-linux.sh code-server)
  (cd bin/helpers && ln -sf browser-linux.sh browser.sh)
  (cd extensions && npm install --omit=dev --ignore-scripts --silent)
  touch "$WORK/code-server/.ready"
fi
if [ ! -d "$WORK/driver/node_modules/puppeteer-core" ]; then
  mkdir -p "$WORK/driver" && cd "$WORK/driver"
  echo '{"private": true, "type": "module"}' >package.json
  npm install --silent puppeteer-core@23.11.1
fi
cp "$HERE/scripts/ghost-text.mjs" "$WORK/driver/"

cd "$HERE" && npm run package --silent >/dev/null
rm -rf "$WORK/ext"
node "$CS/out/node/entry.js" --user-data-dir "$WORK/data" --extensions-dir "$WORK/ext" \
  --install-extension "$HERE/repoformer-lsp.vsix"
printf 'bind-addr: 127.0.0.1:%s\nauth: none\ncert: false\n' "$PORT" >"$WORK/config.yaml"

run() { # scenario, repoformer.server.command, more settings (JSON members), driver arguments...
  scenario=$1 command=$2 extra=$3
  shift 3
  # A fresh copy of the example workspace and a fresh profile each time (VS Code for the web
  # saves after a delay by default: never into examples/).
  rm -rf "$WORK/workspace" "$WORK/data" && cp -r "$ROOT/examples/workspace" "$WORK/workspace"
  mkdir -p "$WORK/data/User"
  cat >"$WORK/data/User/settings.json" <<EOF
{
  "repoformer.server.command": $command,
  $extra
  "files.autoSave": "off",
  "git.openRepositoryInParentFolders": "never",
  "workbench.startupEditor": "none",
  "security.workspace.trust.enabled": false,
  "telemetry.telemetryLevel": "off",
  "extensions.autoCheckUpdates": false,
  "update.mode": "none"
}
EOF
  PYTHONPATH="$ROOT" REPOFORMER_TEST_OUTPUT='total = sum(item.price * item.quantity for item in items)
' node "$CS/out/node/entry.js" --config "$WORK/config.yaml" --user-data-dir "$WORK/data" \
    --extensions-dir "$WORK/ext" --disable-telemetry --disable-update-check \
    --disable-workspace-trust >"$WORK/code-server-$scenario.log" 2>&1 &
  pid=$!
  for _ in $(seq 50); do curl -sf -o /dev/null "http://127.0.0.1:$PORT/healthz" && break; sleep 0.2; done
  status=0
  node "$WORK/driver/ghost-text.mjs" "$scenario" "http://127.0.0.1:$PORT" "$WORK/workspace" "$@" || status=$?
  kill "$pid" && wait "$pid" 2>/dev/null || true
  [ "$status" = 0 ] || { echo "FAIL: $scenario (code-server log: $WORK/code-server-$scenario.log)"; exit 1; }
}

FAST="[\"$PYTHON\", \"-m\", \"tests.fast_server\"]"
run ghost "$FAST" "" "$SHOT" "total = sum(item.price * item.quantity"
run missing '["no-such-repoformer-lsp", "serve"]' "" "$WORK/missing.png"
run model-error "$FAST" '"repoformer.model.path": "/nonexistent/explode.gguf",' "$WORK/model-error.png"
echo "code-server: all three scenarios passed"
