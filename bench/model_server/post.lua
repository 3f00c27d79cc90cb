-- wrk script: POST the image in $SG_BENCH_IMAGE to the path given as wrk's URL.
local f = assert(io.open(os.getenv("SG_BENCH_IMAGE"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "image/png"
