-- wrk script: client_credentials requests with HTTP Basic authentication.
-- KEYGATE_BASIC holds base64("client_id:client_secret").
wrk.method = "POST"
wrk.body = "grant_type=client_credentials"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic " .. os.getenv("KEYGATE_BASIC")

done = function(summary, latency, requests)
  io.write(string.format("non-200 responses: %d\n", summary.errors.status))
end
