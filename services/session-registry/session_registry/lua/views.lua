-- ViewsResult: views of the sessions whose ids are the arguments, all of this partition (unknown ids left out).
local out = {}
for i = 1, #ARGV do
  local s = load(ARGV[i])
  if s then out[#out + 1] = view(s) end
end
return { sessions = out }
