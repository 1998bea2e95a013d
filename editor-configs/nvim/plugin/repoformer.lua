-- Nothing runs until require("repoformer").setup() is called (see doc/repoformer.txt).
if vim.fn.has("nvim-0.7") == 0 then
  vim.api.nvim_err_writeln("repoformer.nvim needs Neovim 0.7 or newer")
end
