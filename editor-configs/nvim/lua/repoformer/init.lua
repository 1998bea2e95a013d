-- repoformer.nvim: inline completions from repoformer-lsp, on Neovim 0.7 and newer.
--
-- Starts the server with the built-in LSP client, asks for `textDocument/inlineCompletion`
-- while you type (debounced here; the server's own debounce is turned off), shows the first
-- item as ghost text (extmarks), keeps it while you type the characters it starts with, and
-- inserts it, its first word or its first line on a key. On Neovim versions with native
-- inline completion (vim.lsp.inline_completion, 0.12) that renderer is used instead, unless
-- `use_native = false` or `auto_trigger = false` (see :help repoformer-native).
local M = {}

local defaults = {
  cmd = { "repoformer-lsp", "serve" },
  filetypes = {
    "python", "javascript", "javascriptreact", "typescript", "typescriptreact",
    "java", "go", "cs", "c", "cpp", "rust", "ruby", "lua", "sh",
  },
  root_markers = {
    ".git", ".hg", "pyproject.toml", "setup.py", "setup.cfg", "package.json", "go.mod",
    "Cargo.toml", "pom.xml", "build.gradle", "Makefile",
  },
  -- Sent as `settings.repoformer` (workspace/configuration); see the README's settings table.
  -- Unless it sets completion.debounceMs, the plugin adds completion.debounceMs = 0: the
  -- plugin's `debounce_ms` is the only wait.
  settings = { repoformer = { retrieval = { mode = "selective" } } },
  debounce_ms = 75,
  auto_trigger = true, -- false: ask only on keymaps.trigger
  keymaps = {
    accept = "<Tab>",
    accept_word = "<M-Right>",
    accept_line = "<M-Down>",
    dismiss = "<C-]>",
    trigger = "<M-\\>",
  },
  highlight = "RepoformerSuggestion", -- grey italics unless your colour scheme sets it
  use_native = true,
  max_records = 200,
}

local uv = vim.uv or vim.loop
local config = vim.deepcopy(defaults)
local ns = vim.api.nvim_create_namespace("repoformer")
local clients = {} -- root_dir -> client id
local records = {} -- recent decision records (decoded JSON), oldest first
-- The suggestion shown: where (0-based row, byte col), the text still to insert, and the
-- request in flight (the only one whose reply is used).
local state = { bufnr = nil, row = nil, col = nil, text = nil, request = nil }
local enabled = true
local timer = nil
local request_seq = 0
local attached = {} -- bufnr -> true

local function has(feature)
  return vim.fn.has(feature) == 1
end

-- Client methods: `client:request(...)` from 0.11 (the dot forms warn there), `client.request`
-- before.
local method_calls = has("nvim-0.11")
local function call(client, name, ...)
  if method_calls then
    return client[name](client, ...)
  end
  return client[name](...)
end

local function native_available()
  return config.use_native and config.auto_trigger and vim.lsp.inline_completion ~= nil
end

local function json_decode(s)
  local ok, value = pcall(vim.json and vim.json.decode or vim.fn.json_decode, s)
  return ok and value or nil
end

local function termcodes(keys)
  return vim.api.nvim_replace_termcodes(keys, true, false, true)
end

-- Roots ------------------------------------------------------------------------------------

local function normalize(path)
  return (vim.fn.fnamemodify(path, ":p"):gsub("/+$", ""))
end

local function contains(root, path)
  return path == root or path:sub(1, #root + 1) == root .. "/" or root == ""
end

-- The nearest ancestor of the file's directory with a root marker, else that directory
-- (never the current directory: it may be $HOME).
function M.find_root(bufnr)
  local path = vim.api.nvim_buf_get_name(bufnr)
  if path == "" then
    return nil
  end
  local start = normalize(vim.fn.fnamemodify(path, ":p:h"))
  local dir = start
  while dir and dir ~= "" do
    for _, marker in ipairs(config.root_markers) do
      if uv.fs_stat(dir .. "/" .. marker) then
        return dir
      end
    end
    local parent = vim.fn.fnamemodify(dir, ":h")
    if parent == dir then
      break
    end
    dir = parent
  end
  return start
end

-- The running repoformer client whose root contains the file (the innermost one).
local function client_for_path(path)
  local best, best_root = nil, nil
  for root, id in pairs(clients) do
    local client = vim.lsp.get_client_by_id(id)
    if not client or (client.is_stopped and call(client, "is_stopped")) then
      clients[root] = nil
    elseif contains(root, path) and (not best_root or #root > #best_root) then
      best, best_root = client, root
    end
  end
  return best
end

local function get_client(bufnr)
  for _, id in pairs(clients) do
    local client = vim.lsp.get_client_by_id(id)
    if client and vim.lsp.buf_is_attached(bufnr, id) then
      return client
    end
  end
  return nil
end
M.client = get_client

function M.roots()
  local out = {}
  for root, id in pairs(clients) do
    if vim.lsp.get_client_by_id(id) then
      table.insert(out, root)
    end
  end
  table.sort(out)
  return out
end

-- Ghost text ------------------------------------------------------------------------------

local function native_ns()
  return vim.api.nvim_get_namespaces()["nvim.lsp.inline_completion"]
end

local function native_active(bufnr)
  return native_available() and attached[bufnr or vim.api.nvim_get_current_buf()]
end

function M.clear()
  if state.bufnr and vim.api.nvim_buf_is_valid(state.bufnr) then
    vim.api.nvim_buf_clear_namespace(state.bufnr, ns, 0, -1)
  end
  state.text, state.row, state.col = nil, nil, nil
end

local function cancel_request()
  if state.request then
    local client = vim.lsp.get_client_by_id(state.request.client_id)
    if client then
      call(client, "cancel_request", state.request.id)
    end
    state.request = nil
  end
end

local function item_text(item)
  local text = item.insertText
  if type(text) == "table" then
    text = text.value -- a snippet StringValue
  end
  return type(text) == "string" and text or nil
end

-- Tabs in virtual text are drawn as ^I: expand them for display column `startcol`.
local function expand_tabs(s, startcol, ts)
  if not s:find("\t", 1, true) then
    return s
  end
  local out, col = {}, startcol
  for part, tab in s:gmatch("([^\t]*)(\t?)") do
    table.insert(out, part)
    col = col + vim.fn.strdisplaywidth(part)
    if tab ~= "" then
      local n = ts - (col % ts)
      table.insert(out, string.rep(" ", n))
      col = col + n
    end
  end
  return table.concat(out)
end

local function show(bufnr, row, col, text)
  M.clear()
  if text == "" then
    return
  end
  local ts = vim.bo[bufnr].tabstop
  local lines = vim.split(text, "\n", { plain = true })
  local line = vim.api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or ""
  local before = vim.fn.strdisplaywidth(line:sub(1, col))
  local rest = line:sub(col + 1)
  local rest_width = vim.fn.strdisplaywidth(rest, before)
  local hl = config.highlight
  local first = expand_tabs(lines[1], before, ts)
  local opts = { hl_mode = "combine" }
  if rest == "" then
    opts.virt_text = { { first, hl } }
    opts.virt_text_pos = "overlay" -- after the end of the line: nothing is covered
  elseif #lines == 1 and has("nvim-0.10") then
    opts.virt_text = { { first, hl } }
    opts.virt_text_pos = "inline"
  elseif #lines == 1 then
    -- Before 0.10 there is no inline virtual text: draw the suggestion over the rest of the
    -- line and the rest again after it, so the line looks as it will after accepting.
    opts.virt_text = { { first, hl }, { expand_tabs(rest, before + vim.fn.strdisplaywidth(first), ts), "Normal" } }
    opts.virt_text_pos = "overlay"
  else
    -- A multi-line suggestion mid-line: the rest of the line goes after its last line, as
    -- accepting puts it there; cover it on this line.
    local pad = math.max(0, rest_width - vim.fn.strdisplaywidth(first))
    opts.virt_text = { { first, hl }, { string.rep(" ", pad), "Normal" } }
    opts.virt_text_pos = "overlay"
  end
  if #lines > 1 then
    opts.virt_lines = {}
    for i = 2, #lines do
      local l = expand_tabs(lines[i], 0, ts)
      local chunks = { { l, hl } }
      if i == #lines and rest ~= "" then
        table.insert(chunks, { expand_tabs(rest, vim.fn.strdisplaywidth(l), ts), "Normal" })
      end
      table.insert(opts.virt_lines, chunks)
    end
  end
  vim.api.nvim_buf_set_extmark(bufnr, ns, row, col, opts)
  state.bufnr, state.row, state.col, state.text = bufnr, row, col, text
end

-- The text of the suggestion shown (native mode: whether one is shown, the text is Neovim's).
function M.visible()
  local bufnr = vim.api.nvim_get_current_buf()
  if native_active(bufnr) then
    local id = native_ns()
    return id ~= nil and #vim.api.nvim_buf_get_extmarks(bufnr, id, 0, -1, { limit = 1 }) > 0
  end
  return state.text ~= nil
end

function M.suggestion()
  return state.text
end

-- The part of `text` that a partial accept inserts.
local function part_of(text, how)
  if how == "word" then
    -- leading whitespace, then a word or a run of other non-blank characters
    local s = text:match("^%s*[%w_]+") or text:match("^%s*[^%w_%s]+") or text:match("^%s+")
    return s or text
  elseif how == "line" then
    local nl = text:find("\n", 1, true)
    if nl == 1 then
      return "\n" .. (text:sub(2):match("^[^\n]*") or "")
    end
    return nl and text:sub(1, nl - 1) or text
  end
  return text
end

local function insert_at(bufnr, row, col, text)
  local lines = vim.split(text, "\n", { plain = true })
  vim.api.nvim_buf_set_text(bufnr, row, col, row, col, lines)
  local end_row = row + #lines - 1
  local end_col = (#lines == 1 and col or 0) + #lines[#lines]
  vim.api.nvim_win_set_cursor(0, { end_row + 1, end_col })
end

-- Accept the suggestion (`how`: nil/"all", "word", "line"): insert it at the cursor and move
-- the cursor to its end. A partial accept keeps showing the rest.
function M.accept(how)
  if native_active() then
    return vim.lsp.inline_completion.get({
      on_accept = function(item)
        local text = type(item.insert_text) == "string" and item.insert_text or item.insert_text.value
        local cursor = vim.api.nvim_win_get_cursor(0)
        local row, col = cursor[1] - 1, cursor[2]
        if item.range then -- skip what was typed since the request
          local line = vim.api.nvim_buf_get_lines(0, row, row + 1, false)[1] or ""
          local typed = line:sub(item.range.start.col + 1, col)
          if item.range.start.row == row and text:sub(1, #typed) == typed then
            text = text:sub(#typed + 1)
          end
        end
        insert_at(vim.api.nvim_get_current_buf(), row, col, part_of(text, how))
      end,
    })
  end
  if not state.text then
    return false
  end
  local bufnr, row, col, text = state.bufnr, state.row, state.col, state.text
  local part = part_of(text, how)
  cancel_request()
  M.clear()
  insert_at(bufnr, row, col, part)
  local rest = text:sub(#part + 1)
  if rest ~= "" then
    local cursor = vim.api.nvim_win_get_cursor(0)
    show(bufnr, cursor[1] - 1, cursor[2], rest)
    state.skip_tick = vim.api.nvim_buf_get_changedtick(bufnr) -- our own edit, not typing
  end
  return true
end

-- Hide the suggestion and stop the request in flight; typing asks again.
function M.dismiss()
  if timer then
    timer:stop()
  end
  if native_active() then
    local bufnr = vim.api.nvim_get_current_buf()
    -- No dismiss in vim.lsp.inline_completion: disabling drops its state and ghost text.
    vim.lsp.inline_completion.enable(false, { bufnr = bufnr })
    vim.lsp.inline_completion.enable(true, { bufnr = bufnr })
    return
  end
  cancel_request()
  M.clear()
end

-- Requests --------------------------------------------------------------------------------

-- Ask for a completion at the cursor (`kind`: 1 Invoked, 2 Automatic).
function M.request(bufnr, kind)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  local client = get_client(bufnr)
  if not enabled or not client or native_active(bufnr) or vim.api.nvim_get_mode().mode:sub(1, 1) ~= "i" then
    return -- native mode: Neovim asks by itself
  end
  cancel_request()
  if not client.initialized then
    vim.defer_fn(function() -- still starting: ask again shortly
      if vim.api.nvim_get_current_buf() == bufnr and not state.text then
        M.request(bufnr, kind)
      end
    end, 100)
    return
  end
  local params = vim.lsp.util.make_position_params(0, client.offset_encoding)
  params.context = { triggerKind = kind or 2 }
  local cursor = vim.api.nvim_win_get_cursor(0)
  local tick = vim.api.nvim_buf_get_changedtick(bufnr)
  request_seq = request_seq + 1
  local seq = request_seq
  local ok, id = call(client, "request", "textDocument/inlineCompletion", params, function(err, result)
    if not state.request or state.request.seq ~= seq then
      return -- cancelled or superseded: a newer request is the current one
    end
    state.request = nil
    if err or not result or not enabled then
      return
    end
    local now = vim.api.nvim_win_get_cursor(0)
    if vim.api.nvim_get_current_buf() ~= bufnr or vim.api.nvim_buf_get_changedtick(bufnr) ~= tick
      or now[1] ~= cursor[1] or now[2] ~= cursor[2] or vim.api.nvim_get_mode().mode:sub(1, 1) ~= "i"
    then
      return -- the user moved on
    end
    local items = result.items or result
    local text = items[1] and item_text(items[1])
    if text then
      show(bufnr, cursor[1] - 1, cursor[2], text)
    end
  end, bufnr)
  if ok then
    state.request = { id = id, client_id = client.id, seq = seq }
  end
end

-- The request in flight, if any: { id, client_id }.
function M.pending()
  return state.request
end

local function schedule_request(bufnr)
  if not timer then
    timer = uv.new_timer()
  end
  timer:stop()
  timer:start(config.debounce_ms, 0, vim.schedule_wrap(function()
    if vim.api.nvim_get_current_buf() == bufnr then
      M.request(bufnr)
    end
  end))
end

-- Typing the characters the suggestion starts with keeps it (trimmed). True when the cursor
-- and line still agree with the suggestion shown.
local function follow(bufnr)
  if not state.text or state.bufnr ~= bufnr then
    return false
  end
  local cursor = vim.api.nvim_win_get_cursor(0)
  local row, col = cursor[1] - 1, cursor[2]
  if row ~= state.row or col < state.col then
    return false
  end
  if col == state.col then
    return true
  end
  local line = vim.api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or ""
  local typed = line:sub(state.col + 1, col)
  if state.text:sub(1, #typed) ~= typed or #typed >= #state.text then
    return false
  end
  show(bufnr, row, col, state.text:sub(#typed + 1))
  return true
end

-- Decision records ------------------------------------------------------------------------

local function on_log_message(err, result, ctx, cfg)
  local message = result and result.message or ""
  local payload = message:match("^repoformer decision (.*)$")
  if payload then
    local record = json_decode(payload)
    if record then
      table.insert(records, record)
      if #records > config.max_records then
        table.remove(records, 1)
      end
    end
  end
  return vim.lsp.handlers["window/logMessage"](err, result, ctx, cfg)
end

function M.records()
  return records
end

local function summary(r)
  local chunks = {}
  for _, c in ipairs(r.chunks or {}) do
    table.insert(chunks, string.format("%s:%d-%d (%.2f)", c.path, c.start_line, c.end_line, c.score))
  end
  local t = r.timings_ms or {}
  return string.format(
    "%s:%d:%d mode=%s policy=%s p_retrieve=%s retrieved=%s total=%sms prefill=%sms%s%s%s",
    vim.fn.fnamemodify(vim.uri_to_fname(r.uri or "file:///?"), ":~:."), (r.line or 0) + 1,
    (r.character or 0) + 1, tostring(r.mode), tostring(r.policy), tostring(r.p_retrieve),
    tostring(r.retrieved), tostring(t.total), tostring(t.prefill),
    r.cache and (" cache=" .. r.cache) or "",
    #chunks > 0 and ("\n    chunks: " .. table.concat(chunks, ", ")) or "",
    r.error and ("\n    error: " .. r.error) or ""
  )
end

function M.open_log()
  local lines = { "# repoformer decisions (newest last); raw JSON in :lua =require('repoformer').records()" }
  for _, r in ipairs(records) do
    for _, l in ipairs(vim.split(summary(r), "\n", { plain = true })) do
      table.insert(lines, l)
    end
  end
  vim.cmd("botright new")
  local buf = vim.api.nvim_get_current_buf()
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  vim.bo[buf].buftype = "nofile"
  vim.bo[buf].bufhidden = "wipe"
  vim.bo[buf].modifiable = false
  pcall(vim.api.nvim_buf_set_name, buf, "repoformer://decisions")
  vim.api.nvim_win_set_cursor(0, { #lines, 0 })
end

-- Settings at run time --------------------------------------------------------------------

local MODES = { selective = true, always = true, never = true }

-- What the server is sent: the user's settings, plus completion.debounceMs = 0 unless set.
local function server_settings()
  local s = vim.deepcopy(config.settings)
  s.repoformer = s.repoformer or {}
  local c = s.repoformer.completion
  if type(c) ~= "table" then
    c = {}
    s.repoformer.completion = c
  end
  if c.debounceMs == nil and c.debounce_ms == nil and s.repoformer["completion.debounceMs"] == nil then
    c.debounceMs = 0
  end
  return s
end
M.server_settings = server_settings

function M.set_mode(mode)
  if not MODES[mode] then
    vim.notify("repoformer: mode must be selective, always or never", vim.log.levels.ERROR)
    return
  end
  config.settings.repoformer = config.settings.repoformer or {}
  config.settings.repoformer.retrieval = config.settings.repoformer.retrieval or {}
  config.settings.repoformer.retrieval.mode = mode
  local settings = server_settings()
  for _, id in pairs(clients) do
    local client = vim.lsp.get_client_by_id(id)
    if client then
      client.config.settings = settings
      call(client, "notify", "workspace/didChangeConfiguration", { settings = settings })
    end
  end
  vim.notify("repoformer: retrieval mode " .. mode)
end

function M.mode()
  local r = config.settings.repoformer or {}
  return (r.retrieval or {}).mode or "selective"
end

function M.enabled()
  return enabled
end

function M.config()
  return config
end

-- Whether Neovim's own inline completion renders the suggestions.
function M.native()
  return native_available() and true or false
end

-- Switch suggestions on or off everywhere (nil: toggle).
function M.toggle(on)
  if on == nil then
    on = not enabled
  end
  enabled = on
  if not enabled then
    if timer then
      timer:stop()
    end
    cancel_request()
    M.clear()
  end
  if native_available() then
    for bufnr in pairs(attached) do
      if vim.api.nvim_buf_is_valid(bufnr) then
        vim.lsp.inline_completion.enable(enabled, { bufnr = bufnr })
      end
    end
  end
  vim.notify("repoformer: suggestions " .. (enabled and "on" or "off"))
end

-- Status -----------------------------------------------------------------------------------

-- For the statusline: "" in buffers without the server, else "repoformer: <mode>", with
-- " off" when toggled off and " …" while a request runs.
function M.status()
  if not get_client(vim.api.nvim_get_current_buf()) then
    return ""
  end
  local s = "repoformer: " .. M.mode()
  if not enabled then
    return s .. " off"
  end
  if state.request then
    return s .. " …"
  end
  return s
end

-- The server's own status (workspace/executeCommand repoformer.status), synchronously:
-- the decoded table, or nil and why.
function M.server_status(bufnr, timeout_ms)
  local client = get_client(bufnr or vim.api.nvim_get_current_buf())
  if not client then
    return nil, "no repoformer server attached to this buffer"
  end
  local reply, err = call(client, "request_sync", "workspace/executeCommand",
    { command = "repoformer.status", arguments = {} }, timeout_ms or 5000, bufnr)
  if not reply then
    return nil, tostring(err or "no reply")
  end
  if reply.err then
    return nil, reply.err.message or vim.inspect(reply.err)
  end
  return reply.result, nil
end

local function status_lines(bufnr)
  local client = get_client(bufnr)
  if not client then
    return { "repoformer: no server attached to this buffer" }
  end
  local lines = {
    string.format("repoformer: suggestions %s, mode %s, root %s", enabled and "on" or "off",
      M.mode(), tostring(client.config.root_dir)),
  }
  local s, err = M.server_status(bufnr)
  if not s then
    table.insert(lines, "server: " .. err)
    return lines
  end
  local model = s.model or {}
  table.insert(lines, string.format("server %s: model %s%s", tostring(s.version),
    tostring(model.state), model.error and (" (" .. tostring(model.error) .. ")") or ""))
  local index = s.index
  if type(index) == "table" then
    table.insert(lines, string.format("index: %d files, %d chunks, %s, %s", index.files or 0,
      index.chunks or 0, index.ready and "ready" or "building",
      index.watching and "watching" or "not watching"))
  else
    table.insert(lines, "index: none")
  end
  return lines
end
M.status_lines = status_lines

-- Keys -------------------------------------------------------------------------------------

-- What the key does without us: the buffer's own mapping from before we attached, a global
-- mapping, or the key itself.
local saved_maps = {} -- bufnr -> lhs -> maparg() dict

local function same_lhs(a, b)
  return termcodes(a) == termcodes(b)
end

local function fallback(bufnr, lhs)
  local map = (saved_maps[bufnr] or {})[lhs]
  if not map then
    for _, m in ipairs(vim.api.nvim_get_keymap("i")) do
      if same_lhs(m.lhs, lhs) then
        map = m
        break
      end
    end
  end
  if not map or (map.rhs == nil and map.callback == nil) then
    return termcodes(lhs)
  end
  if map.callback then
    local r = map.callback()
    if map.expr == 1 and type(r) == "string" then
      return map.replace_keycodes == 1 and termcodes(r) or r
    end
    return ""
  end
  if map.expr == 1 then
    return vim.api.nvim_eval(map.rhs)
  end
  vim.api.nvim_feedkeys(termcodes(map.rhs), map.noremap == 1 and "n" or "m", false)
  return ""
end

local function suggestion_here(bufnr)
  if native_active(bufnr) then
    return M.visible()
  end
  return state.text ~= nil and state.bufnr == bufnr
end

-- An <expr> mapping (so that the fallback can be keys): the undo break (<C-g>u) as keys,
-- then the accept, scheduled (it edits the buffer, which an <expr> mapping may not; <Cmd>
-- in an <expr> mapping's result is not run on 0.7). The keys run before the callback.
local function accept_key(bufnr, lhs, how)
  return function()
    if vim.fn.pumvisible() == 1 or not suggestion_here(bufnr) then
      return fallback(bufnr, lhs)
    end
    vim.schedule(function()
      M.accept(how)
    end)
    return termcodes("<C-g>u")
  end
end

local function set_keymaps(bufnr)
  saved_maps[bufnr] = {}
  local keys = {
    { config.keymaps.accept, accept_key(bufnr, config.keymaps.accept), "accept the suggestion" },
    { config.keymaps.accept_word, accept_key(bufnr, config.keymaps.accept_word, "word"), "accept its next word" },
    { config.keymaps.accept_line, accept_key(bufnr, config.keymaps.accept_line, "line"), "accept its line" },
    {
      config.keymaps.dismiss,
      function()
        if vim.fn.pumvisible() == 1 or not suggestion_here(bufnr) then
          return fallback(bufnr, config.keymaps.dismiss)
        end
        vim.schedule(M.dismiss)
        return ""
      end,
      "dismiss the suggestion",
    },
    {
      config.keymaps.trigger,
      function()
        vim.schedule(function()
          M.request(bufnr, 1)
        end)
        return ""
      end,
      "ask for a suggestion",
    },
  }
  for _, k in ipairs(keys) do
    local lhs, fn, desc = k[1], k[2], k[3]
    if lhs then
      local old = vim.fn.maparg(lhs, "i", false, true)
      if old and old.buffer == 1 and not (old.desc or ""):match("^repoformer:") then
        saved_maps[bufnr][lhs] = old
      end
      vim.keymap.set("i", lhs, fn, { buffer = bufnr, expr = true, replace_keycodes = false, desc = "repoformer: " .. desc })
    end
  end
end

-- Attaching -------------------------------------------------------------------------------

local function on_attach_buffer(bufnr)
  if attached[bufnr] then
    return
  end
  attached[bufnr] = true
  set_keymaps(bufnr)
  local group = vim.api.nvim_create_augroup("repoformer_buf_" .. bufnr, { clear = true })
  vim.api.nvim_create_autocmd("BufWipeout", {
    group = group,
    buffer = bufnr,
    callback = function()
      attached[bufnr], saved_maps[bufnr] = nil, nil
    end,
  })
  if native_available() then
    vim.lsp.inline_completion.enable(enabled, { bufnr = bufnr })
    return
  end
  vim.api.nvim_create_autocmd({ "TextChangedI", "TextChangedP" }, {
    group = group,
    buffer = bufnr,
    callback = function()
      if state.skip_tick == vim.api.nvim_buf_get_changedtick(bufnr) then
        return -- the part of a suggestion just accepted
      end
      state.skip_tick = nil
      if follow(bufnr) then
        return -- typed what the suggestion says: keep its rest, no new request
      end
      cancel_request()
      M.clear()
      if enabled and config.auto_trigger then
        schedule_request(bufnr)
      elseif timer then
        timer:stop()
      end
    end,
  })
  vim.api.nvim_create_autocmd("CursorMovedI", {
    group = group,
    buffer = bufnr,
    callback = function()
      if state.text and not follow(bufnr) then
        cancel_request()
        M.clear()
      end
    end,
  })
  vim.api.nvim_create_autocmd({ "InsertLeave", "BufLeave" }, {
    group = group,
    buffer = bufnr,
    callback = function()
      if timer then
        timer:stop()
      end
      cancel_request()
      M.clear()
    end,
  })
end

local function start_client(root, bufnr)
  local cfg = {
    name = "repoformer",
    cmd = config.cmd,
    root_dir = root,
    workspace_folders = { { uri = vim.uri_from_fname(root), name = root } },
    settings = server_settings(),
    init_options = server_settings(),
    flags = { debounce_text_changes = 50 },
    handlers = { ["window/logMessage"] = on_log_message },
  }
  if vim.lsp.start then -- 0.8+: starts and attaches
    return vim.lsp.start(cfg, {
      bufnr = bufnr,
      reuse_client = function()
        return false -- attach() already looked for a client whose root holds the file
      end,
    })
  end
  local id = vim.lsp.start_client(cfg)
  if id then
    vim.lsp.buf_attach_client(bufnr, id)
  end
  return id
end

function M.attach(bufnr)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  if vim.bo[bufnr].buftype ~= "" then
    return
  end
  local name = vim.api.nvim_buf_get_name(bufnr)
  if name == "" then
    return -- no file, no root: nothing to index or complete against
  end
  local client = client_for_path(normalize(name))
  local id
  if client then
    id = client.id
    vim.lsp.buf_attach_client(bufnr, id)
  else
    local root = M.find_root(bufnr)
    id = start_client(root, bufnr)
    if not id then
      vim.notify("repoformer: could not start " .. table.concat(config.cmd, " "), vim.log.levels.ERROR)
      return
    end
    clients[root] = id
  end
  on_attach_buffer(bufnr)
end

function M.setup(opts)
  config = vim.tbl_deep_extend("force", vim.deepcopy(defaults), opts or {})
  if opts and opts.settings then
    config.settings = vim.deepcopy(opts.settings) -- replaced, not merged with the defaults
  end
  if opts and opts.root_markers then
    config.root_markers = vim.deepcopy(opts.root_markers)
  end
  vim.cmd("highlight default RepoformerSuggestion ctermfg=244 guifg=#808080 cterm=italic gui=italic")
  local group = vim.api.nvim_create_augroup("repoformer", { clear = true })
  vim.api.nvim_create_autocmd("FileType", {
    group = group,
    pattern = config.filetypes,
    callback = function(args)
      M.attach(args.buf)
    end,
  })
  vim.api.nvim_create_user_command("RepoformerMode", function(cmd)
    if cmd.args == "" then
      vim.notify("repoformer: retrieval mode " .. M.mode())
    else
      M.set_mode(cmd.args)
    end
  end, {
    nargs = "?",
    complete = function()
      return { "selective", "always", "never" }
    end,
    desc = "show or set the retrieval mode",
  })
  vim.api.nvim_create_user_command("RepoformerLog", M.open_log, { desc = "recent decisions" })
  vim.api.nvim_create_user_command("RepoformerToggle", function()
    M.toggle()
  end, { desc = "switch suggestions on or off" })
  vim.api.nvim_create_user_command("RepoformerStatus", function()
    vim.notify(table.concat(status_lines(vim.api.nvim_get_current_buf()), "\n"))
  end, { desc = "the server's model and index" })
  -- Buffers already open when setup() runs.
  for _, buf in ipairs(vim.api.nvim_list_bufs()) do
    if vim.api.nvim_buf_is_loaded(buf) and vim.tbl_contains(config.filetypes, vim.bo[buf].filetype) then
      M.attach(buf)
    end
  end
end

return M
