-- Rolls the release in progress back: traffic stays on (or returns to) the stable colour.
-- Only an annotation, which the operator removes once acted on: the spec (and so Git) is untouched.
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["ghostpay.io/abort"] = "true"
return obj
