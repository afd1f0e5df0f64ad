-- Switches a release paused for manual promotion (release.autoPromotion: false) to the new colour.
-- Only an annotation, which the operator removes once acted on: the spec (and so Git) is untouched.
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["ghostpay.io/promote"] = "true"
return obj
