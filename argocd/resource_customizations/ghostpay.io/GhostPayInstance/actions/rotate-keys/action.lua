-- Starts a key-rotation Job now, from the instance's key-rotation CronJob (spec.keyRotation).
-- Only an annotation, which the operator removes once acted on: the spec (and so Git) is untouched.
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["ghostpay.io/rotate-keys"] = "true"
return obj
