-- Views of the sessions ARGV[3..] (JSON list, unknown ids left out).
local out = {}
for i = 3, #ARGV do
  local s = load(ARGV[i])
  if s then out[#out + 1] = view(s) end
end
return cjson.encode(out)
