-- Health of a GhostPayInstance (ghostpay.io), from the status its operator writes: status.phase (Pending,
-- Healthy, Progressing, Degraded, RolledBack), the Ready/Progressing/Degraded/KeyRotation conditions and
-- status.release (the release in progress, or the one last rolled back). Plain Lua 5.1 (argo-cd runs gopher-lua).
local hs = {}

local function condition(conditionType)
  if obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == conditionType then
      return c
    end
  end
  return nil
end

-- "Reason: message" of a condition, or nil.
local function said(c)
  if c == nil then
    return nil
  end
  if c.reason ~= nil and c.message ~= nil then
    return c.reason .. ": " .. c.message
  end
  return c.reason or c.message
end

-- Where the release stands: its version and colour, and for a canary the step out of the spec's steps.
local function releaseStep()
  local r = obj.status.release
  if r == nil or r.version == nil then
    return ""
  end
  local text = " (release of " .. r.version
  if r.color ~= nil then
    text = text .. " on " .. r.color
  end
  local plan = obj.spec.release
  if plan ~= nil and plan.strategy == "Canary" then
    local step = (r.step or 0) + 1
    text = text .. ", canary step " .. step
    if plan.canarySteps ~= nil then
      local percent = plan.canarySteps[math.min(step, #plan.canarySteps)]
      text = text .. " of " .. #plan.canarySteps .. ", " .. tostring(percent) .. "% of pods"
    end
  elseif r.switched_at ~= nil then
    text = text .. ", traffic switched at " .. r.switched_at
  end
  return text .. ")"
end

if obj.status == nil or obj.status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report a status"
  return hs
end

-- A status written for an older spec says nothing about the current one (like argo-cd's Rollout check).
local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. generation
  if observed ~= nil then
    hs.message = hs.message .. " (status is of generation " .. observed .. ")"
  end
  return hs
end

local phase = obj.status.phase
local progressing = condition("Progressing")
local degraded = condition("Degraded")

if phase == "Degraded" then
  hs.status = "Degraded"
  hs.message = "Degraded: " .. (said(degraded) or "the spec cannot be realised")
  return hs
end

-- A rolled-back release: traffic is back on the stable version, but the cluster does not run the version the
-- spec (Git) asks for, so it needs a person (argo-cd shows an aborted Rollout as Degraded too).
if phase == "RolledBack" then
  hs.status = "Degraded"
  hs.message = "RolledBack: " .. (said(degraded) or "the release was rolled back")
  if obj.status.activeVersion ~= nil then
    hs.message = hs.message .. " Serving " .. obj.status.activeVersion .. "; change spec.version to end this."
  end
  return hs
end

if phase == "Paused" or (phase == "Progressing" and progressing ~= nil and progressing.reason == "WaitingForPromotion") then
  hs.status = "Suspended"
  hs.message = "Paused for promotion: " .. (said(progressing) or "waiting for ghostpay.io/promote") .. releaseStep()
  return hs
end

if phase == "Pending" or phase == "Progressing" then
  hs.status = "Progressing"
  hs.message = phase .. ": " .. (said(progressing) or "waiting for the operator") .. releaseStep()
  return hs
end

if phase == "Healthy" then
  local rotation = condition("KeyRotation")
  if rotation ~= nil and rotation.status == "False" then
    -- Traffic is fine, but the signing keys are not being rotated as spec.keyRotation asks.
    hs.status = "Degraded"
    hs.message = "Key rotation failed: " .. (said(rotation) or "see the rotation Job's logs")
    return hs
  end
  hs.status = "Healthy"
  local ready = condition("Ready")
  hs.message = "Healthy: " .. (said(ready) or "all replicas ready")
  return hs
end

hs.status = "Unknown"
hs.message = "Unknown phase " .. tostring(phase)
return hs
