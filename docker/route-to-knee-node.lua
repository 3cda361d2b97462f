-- Demo routing of Orthanc: every CR or DX instance it receives is forwarded to the knee
-- node ("knee" in DicomModalities). The node's results come back as SR and OT (secondary
-- capture), so they are not forwarded again. Routing rules on the node decide what is
-- measured; anything else it records as ignored.
function OnStoredInstance(instanceId, tags, metadata, origin)
  local modality = tags["Modality"]
  if modality == "CR" or modality == "DX" then
    SendToModality(instanceId, "knee")
  end
end
