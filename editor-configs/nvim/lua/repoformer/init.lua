-- repoformer.nvim: inline completions from repoformer-lsp, on Neovim 0.7 and newer.
--
-- Starts the server with the built-in LSP client, asks for `textDocument/inlineCompletion`
-- while you type (debounced), shows the first item as ghost text (extmarks) and inserts it
-- on a key. On Neovim versions with native inline completion (vim.lsp.inline_completion)
-- that is used instead of the extmark renderer.
local M = {}

local defaults = {
  cmd = { "repoformer-lsp", "serve" },
  filetypes = {
    "python", "javascript", "javascriptreact", "typescript", "typescriptreact",
    "java", "go", "cs", "c", "cpp", "rust", "ruby", "lua", "sh",
  },
  root_markers = { ".git", "pyproject.toml", "setup.py", "package.json", "go.mod", "Cargo.toml" },
  -- Sent as `settings.repoformer` (workspace/configuration); see the README's settings table.
  settings = { repoformer = { retrieval = { mode = "selective" } } },
  debounce_ms = 150,
  keymaps = { accept = "<Tab>", dismiss = "<C-]>" },
  highlight = "RepoformerSuggestion", -- grey italics unless your colour scheme sets it
  use_native = true,
  max_records = 200,
}

local config = vim.deepcopy(defaults)
local ns = vim.api.nvim_create_namespace("repoformer")
local clients = {} -- root_dir -> client id
local records = {} -- recent decision records (decoded JSON), oldest first
local state = { bufnr = nil, row = nil, col = nil, text = nil, tick = nil, request = nil }
local timer = nil

local function has(feature)
  return vim.fn.has(feature) == 1
end

local function native_available()
  return config.use_native and vim.lsp.inline_completion ~= nil
end

local function json_decode(s)
  local ok, value = pcall(vim.json and vim.json.decode or vim.fn.json_decode, s)
  return ok and value or nil
end

local function find_root(bufnr)
  local path = vim.api.nvim_buf_get_name(bufnr)
  local dir = vim.fn.fnamemodify(path ~= "" and path or vim.fn.getcwd(), ":p:h")
  while dir and dir ~= "" do
    for _, marker in ipairs(config.root_markers) do
      if vim.loop.fs_stat(dir .. "/" .. marker) then
        return dir
      end
    end
    local parent = vim.fn.fnamemodify(dir, ":h")
    if parent == dir then
      break
    end
    dir = parent
  end
  return vim.fn.getcwd()
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

-- Ghost text ------------------------------------------------------------------------------

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
      client.cancel_request(state.request.id)
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

local function show(bufnr, row, col, text)
  M.clear()
  if text == "" then
    return
  end
  local lines = vim.split(text, "\n", { plain = true })
  local line = vim.api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or ""
  local first = { { lines[1], config.highlight } }
  local opts = { virt_text = first, hl_mode = "combine" }
  if col >= #line then
    opts.virt_text_pos = "overlay"
  elseif has("nvim-0.10") then
    opts.virt_text_pos = "inline"
  else
    opts.virt_text_pos = "eol" -- older versions cannot insert text mid-line
  end
  if #lines > 1 then
    opts.virt_lines = {}
    for i = 2, #lines do
      table.insert(opts.virt_lines, { { lines[i], config.highlight } })
    end
  end
  vim.api.nvim_buf_set_extmark(bufnr, ns, row, col, opts)
  state.bufnr, state.row, state.col, state.text = bufnr, row, col, text
  state.tick = vim.api.nvim_buf_get_changedtick(bufnr)
end

function M.visible()
  return state.text ~= nil
end

function M.suggestion()
  return state.text
end

-- Accept the suggestion: insert it at the cursor and move the cursor to its end.
function M.accept()
  if not state.text then
    return false
  end
  local bufnr, row, col, text = state.bufnr, state.row, state.col, state.text
  M.clear()
  local lines = vim.split(text, "\n", { plain = true })
  vim.api.nvim_buf_set_text(bufnr, row, col, row, col, lines)
  local end_row = row + #lines - 1
  local end_col = (#lines == 1 and col or 0) + #lines[#lines]
  vim.api.nvim_win_set_cursor(0, { end_row + 1, end_col })
  return true
end

-- Requests --------------------------------------------------------------------------------

function M.request(bufnr)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  local client = get_client(bufnr)
  if not client or vim.api.nvim_get_mode().mode:sub(1, 1) ~= "i" then
    return
  end
  cancel_request()
  local params = vim.lsp.util.make_position_params(0, client.offset_encoding)
  params.context = { triggerKind = 2 } -- Automatic
  local cursor = vim.api.nvim_win_get_cursor(0)
  local tick = vim.api.nvim_buf_get_changedtick(bufnr)
  local ok, id = client.request("textDocument/inlineCompletion", params, function(err, result)
    state.request = nil
    if err or not result then
      return
    end
    local now = vim.api.nvim_win_get_cursor(0)
    if vim.api.nvim_get_current_buf() ~= bufnr or vim.api.nvim_buf_get_changedtick(bufnr) ~= tick
      or now[1] ~= cursor[1] or now[2] ~= cursor[2] or vim.api.nvim_get_mode().mode:sub(1, 1) ~= "i"
    then
      return -- the user moved on; a newer request follows
    end
    local items = result.items or result
    local text = items[1] and item_text(items[1])
    if text then
      show(bufnr, cursor[1] - 1, cursor[2], text)
    end
  end, bufnr)
  if ok then
    state.request = { id = id, client_id = client.id }
  end
end

local function schedule_request(bufnr)
  if not timer then
    timer = vim.loop.new_timer()
  end
  timer:stop()
  timer:start(config.debounce_ms, 0, vim.schedule_wrap(function()
    if vim.api.nvim_get_current_buf() == bufnr then
      M.request(bufnr)
    end
  end))
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
    "%s:%d:%d mode=%s policy=%s p_retrieve=%s retrieved=%s total=%sms prefill=%sms%s%s",
    vim.fn.fnamemodify(vim.uri_to_fname(r.uri or "file:///?"), ":~:."), (r.line or 0) + 1,
    (r.character or 0) + 1, tostring(r.mode), tostring(r.policy), tostring(r.p_retrieve),
    tostring(r.retrieved), tostring(t.total), tostring(t.prefill),
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

function M.set_mode(mode)
  if not MODES[mode] then
    vim.notify("repoformer: mode must be selective, always or never", vim.log.levels.ERROR)
    return
  end
  config.settings.repoformer = config.settings.repoformer or {}
  config.settings.repoformer.retrieval = config.settings.repoformer.retrieval or {}
  config.settings.repoformer.retrieval.mode = mode
  for _, id in pairs(clients) do
    local client = vim.lsp.get_client_by_id(id)
    if client then
      client.config.settings = config.settings
      client.notify("workspace/didChangeConfiguration", { settings = config.settings })
    end
  end
  vim.notify("repoformer: retrieval mode " .. mode)
end

function M.mode()
  local r = config.settings.repoformer or {}
  return (r.retrieval or {}).mode or "selective"
end

-- Attaching -------------------------------------------------------------------------------

local function on_attach_buffer(bufnr, client)
  if native_available() then
    vim.lsp.inline_completion.enable(true, { bufnr = bufnr })
    return
  end
  local group = vim.api.nvim_create_augroup("repoformer_buf_" .. bufnr, { clear = true })
  vim.api.nvim_create_autocmd({ "TextChangedI", "TextChangedP" }, {
    group = group,
    buffer = bufnr,
    callback = function()
      M.clear()
      schedule_request(bufnr)
    end,
  })
  vim.api.nvim_create_autocmd("CursorMovedI", {
    group = group,
    buffer = bufnr,
    callback = function()
      local cursor = vim.api.nvim_win_get_cursor(0)
      if state.text and (cursor[1] - 1 ~= state.row or cursor[2] ~= state.col) then
        M.clear()
      end
    end,
  })
  vim.api.nvim_create_autocmd({ "InsertLeave", "BufLeave" }, {
    group = group,
    buffer = bufnr,
    callback = function()
      cancel_request()
      M.clear()
    end,
  })
end

function M.attach(bufnr)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  if vim.bo[bufnr].buftype ~= "" then
    return
  end
  local root = find_root(bufnr)
  local id = clients[root]
  if not id or not vim.lsp.get_client_by_id(id) then
    id = vim.lsp.start_client({
      name = "repoformer",
      cmd = config.cmd,
      root_dir = root,
      workspace_folders = { { uri = vim.uri_from_fname(root), name = root } },
      settings = config.settings,
      init_options = config.settings,
      flags = { debounce_text_changes = 50 },
      handlers = { ["window/logMessage"] = on_log_message },
    })
    if not id then
      vim.notify("repoformer: could not start " .. table.concat(config.cmd, " "), vim.log.levels.ERROR)
      return
    end
    clients[root] = id
  end
  vim.lsp.buf_attach_client(bufnr, id)
  on_attach_buffer(bufnr, vim.lsp.get_client_by_id(id))
end

local function accept_or_fallback(key)
  return function()
    if native_available() and vim.lsp.inline_completion.get() then
      return ""
    end
    if M.visible() then
      vim.schedule(M.accept)
      return ""
    end
    return vim.api.nvim_replace_termcodes(key, true, false, true)
  end
end

function M.setup(opts)
  config = vim.tbl_deep_extend("force", vim.deepcopy(defaults), opts or {})
  if opts and opts.settings then
    config.settings = vim.deepcopy(opts.settings) -- replaced, not merged with the defaults
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
  if config.keymaps.accept then
    vim.keymap.set("i", config.keymaps.accept, accept_or_fallback(config.keymaps.accept),
      { expr = true, desc = "repoformer: accept the suggestion" })
  end
  if config.keymaps.dismiss then
    vim.keymap.set("i", config.keymaps.dismiss, function()
      cancel_request()
      M.clear()
    end, { desc = "repoformer: dismiss the suggestion" })
  end
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
  -- Buffers already open when setup() runs.
  for _, buf in ipairs(vim.api.nvim_list_bufs()) do
    if vim.api.nvim_buf_is_loaded(buf) and vim.tbl_contains(config.filetypes, vim.bo[buf].filetype) then
      M.attach(buf)
    end
  end
end

return M
