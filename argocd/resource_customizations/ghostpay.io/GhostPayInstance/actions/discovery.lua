-- GhostPayInstance actions, each enabled only when it can do something. They only add an annotation the
-- operator consumes (and removes), so ArgoCD sees no drift from Git.
local actions = {}

local annotations = obj.metadata.annotations or {}
local status = obj.status or {}
local release = status.release
local inProgress = release ~= nil and release.outcome == "InProgress"

local paused = false
if inProgress and status.conditions ~= nil then
  for _, c in ipairs(status.conditions) do
    if c.type == "Progressing" and c.reason == "WaitingForPromotion" then
      paused = true
    end
  end
end

actions["promote"] = {
  ["displayName"] = "Promote the paused release",
  ["disabled"] = not paused or annotations["ghostpay.io/promote"] ~= nil,
}
actions["abort"] = {
  ["displayName"] = "Abort the release (roll back)",
  ["disabled"] = not inProgress or annotations["ghostpay.io/abort"] ~= nil,
}
actions["rotate-keys"] = {
  ["displayName"] = "Rotate the signing keys now",
  ["disabled"] = obj.spec.keyRotation == nil or annotations["ghostpay.io/rotate-keys"] ~= nil,
}
return actions
