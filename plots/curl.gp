# The same libcurl client (unmodified) three ways: curl_easy_perform on a thread per
# conversation, on a fiber per conversation with fiber/hook, and libcurl's multi interface
# on one thread. Client memory per live conversation (peak RSS growth + kernel estimate),
# CPU per 1,000 tokens and first-token p99 against N. A dashed line marks where the
# open-files cap stopped a series (the easy API takes 3 descriptors per transfer).
# needs: curl.csv
load "plots/lib/common.gpi"
call "plots/lib/term.gpi" "curl" 1600 820
probes = 1; keyout = 1; keyrows = 7
allser = uniq("curl", "case~^curl/curl-;metric=bytes_per_unit|cpu_per_1k_tokens_ms|ttft_p99_ms", "series")
set multiplot layout 1, 3 title "libcurl unmodified: thread per conversation vs fiber + hooks vs multi interface (mock-llm over loopback)" font ",14"
call "plots/lib/lines.gpi" "curl" "case~^curl/curl-;metric=bytes_per_unit" "Client memory per conversation (user + kernel)" "conversations N" "KiB (log)" "xy" "1024"
call "plots/lib/lines.gpi" "curl" "case~^curl/curl-;metric=cpu_per_1k_tokens_ms" "Client CPU per 1,000 tokens" "conversations N" "ms (log)" "xy" "1"
call "plots/lib/lines.gpi" "curl" "case~^curl/curl-;metric=ttft_p99_ms" "First-token time seen by users, p99" "conversations N" "ms (log)" "xy" "1"
unset multiplot
