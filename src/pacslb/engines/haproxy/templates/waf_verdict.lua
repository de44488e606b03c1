-- pacslb: the WAF tier's header-only verdict for STOW-RS uploads (engines/haproxy/waf.py, docs/waf.md).
--
-- A STOW-RS upload's body is DICOM, which ModSecurity does not read (the PACS profile's stow-body), but sending it
-- through Apache costs two thirds of the throughput. So HAProxy sends Apache a copy of the request's head only: the
-- same method, path, query and headers, no body. ModSecurity judges the head as it would the whole request; Apache
-- passes an allowed head back to HAProxy's return socket, which answers 204 for it. HAProxy then sends the upload
-- itself straight to the real servers, or refuses it when the verdict is not 204.
--
-- Usage: http-request lua.pacslb_waf_verdict <Apache's loopback port of the policy>
-- Sets txn.waf_verdict to Apache's status (599 when Apache gave none: the caller refuses the request).

local VERDICT_TIMEOUT_MS = 30000
-- headers that describe the body or the connection, not the request: the copy has no body and its own connection
local DROPPED = { ["content-length"] = true, ["transfer-encoding"] = true, ["expect"] = true, ["connection"] = true }

core.register_action("pacslb_waf_verdict", { "http-req" }, function(txn, port)
  local headers = {}
  for name, values in pairs(txn.http:req_get_headers()) do
    if not DROPPED[string.lower(name)] then
      local list = {}
      local i = 0
      while values[i] ~= nil do -- HAProxy numbers a header's values from 0
        list[#list + 1] = values[i]
        i = i + 1
      end
      headers[name] = list
    end
  end
  headers["x-pacslb-verdict"] = { "1" }
  -- said, not left out: CRS rule 920180 scores a POST without Content-Length (the httpclient sends none for "")
  headers["content-length"] = { "0" }
  local client = core.httpclient()
  local ok, response = pcall(function()
    return client:post({ url = "http://127.0.0.1:" .. port .. txn.sf:pathq(), headers = headers, body = "",
                         timeout = VERDICT_TIMEOUT_MS })
  end)
  local status = 599
  if ok and response ~= nil and response.status ~= nil and response.status > 0 then
    status = response.status
  end
  txn:set_var("txn.waf_verdict", status)
end, 1)
