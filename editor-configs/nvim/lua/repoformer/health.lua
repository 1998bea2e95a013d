-- :checkhealth repoformer — the server binary, the client, the model and the index.
local M = {}

local health = vim.health or require("health")
local start = health.start or health.report_start
local ok = health.ok or health.report_ok
local warn = health.warn or health.report_warn
local error = health.error or health.report_error
local info = health.info or health.report_info

function M.check()
  local repoformer = require("repoformer")
  start("repoformer: server binary")
  local cmd = repoformer.config().cmd
  local exe = cmd[1]
  if vim.fn.executable(exe) == 1 then
    ok(string.format("%s found (%s)", exe, vim.fn.exepath(exe)))
  else
    error(string.format("%s is not executable: install the server (`pip install .`) or set `cmd`", exe))
  end

  start("repoformer: client")
  info("suggestions " .. (repoformer.enabled() and "on" or "off (:RepoformerToggle)")
    .. ", retrieval mode " .. repoformer.mode()
    .. (repoformer.native() and ", native renderer (vim.lsp.inline_completion)" or ", plugin renderer"))
  local roots = repoformer.roots()
  if #roots == 0 then
    warn("no server running: open a file of a configured filetype")
    return
  end
  for _, root in ipairs(roots) do
    ok("server running for " .. root)
  end

  start("repoformer: server status (current buffer)")
  local bufnr = vim.api.nvim_get_current_buf()
  if not repoformer.client(bufnr) then
    -- :checkhealth opens its own buffer: ask the first buffer with a server.
    for _, b in ipairs(vim.api.nvim_list_bufs()) do
      if repoformer.client(b) then
        bufnr = b
        break
      end
    end
  end
  local s, err = repoformer.server_status(bufnr)
  if not s then
    error("repoformer.status failed: " .. tostring(err))
    return
  end
  local model = s.model or {}
  if model.state == "ready" then
    ok("model ready")
  elseif model.state == "loading" then
    warn("model loading (first start downloads it)")
  else
    error("model: " .. tostring(model.state) .. (model.error and (": " .. model.error) or ""))
  end
  local index = s.index
  if type(index) ~= "table" then
    warn("no index")
  elseif index.ready then
    ok(string.format("index ready: %d files, %d chunks%s", index.files or 0, index.chunks or 0,
      index.watching and ", watching files" or ""))
  else
    warn(string.format("index building: %d files, %d chunks so far", index.files or 0, index.chunks or 0))
  end
end

return M
