#!/usr/bin/env bats
# reverselogproxy and rlp-gateway: the v2 egress roles.
#   bin/reverselogproxy = lgr-ws --grpc ADDR --upstream DOPPLERS (mTLS)
#   bin/rlp-gateway     = lgr-ws --http ADDR --upstream RLPS (SSE)
# A real bin/doppler is fed as an agent feeds it (lgr-route --to grpcs://
# with metron's certificate). The reverse log proxy's clients are
# python3-grpcio (t/roles/egress_sub.py) with the "client" certificate;
# what they get is checked with python3-protobuf against an independent
# tag convergence (SPEC §3) of what was sent (t/roles/egress_check.py).
# The gateway's client is curl -N; its server-sent events are checked
# against lgr-cat's JSON of the converged envelopes, and that JSON
# against python3-protobuf's canonical JSON.

: "${BATS_TEST_TIMEOUT:=60}"
load lib
load roles/roles
load roles/egress_roles

setup_file() {
	egress_setup_file
	make_sent "$BATS_FILE_TMPDIR/sent"
}

# make_sent FILE: envelopes whose tags converge in every way: deprecated
# tags of each kind (text, integer, decimals Go prints in each form),
# tags alone, both, neither; logs of app-1 and app-2, a counter and a
# gauge of app-1.
make_sent() {
	local f=$1
	{
		cat <<'EOF'
{"timestamp":"1700000000000000001","source_id":"app-1","instance_id":"0","deprecated_tags":{"origin":{"text":"rep"},"index":{"integer":"4"},"neg":{"integer":"-17"},"ratio":{"decimal":2.5},"whole":{"decimal":3},"tiny":{"decimal":1e-05},"big":{"decimal":1234567},"round":{"decimal":100000},"huge":{"decimal":1e+21},"small":{"decimal":-0.0001},"third":{"decimal":0.3333333333333333}},"tags":{"source_type":"APP/PROC/WEB"},"log":{"payload":"b25l","type":"OUT"}}
{"timestamp":"1700000000000000002","source_id":"app-1","instance_id":"1","deprecated_tags":{"job":{"text":"router"}},"tags":{},"log":{"payload":"dHdv","type":"ERR"}}
{"timestamp":"1700000000000000003","source_id":"app-2","instance_id":"","deprecated_tags":{"origin":{"text":"cc"}},"tags":{"source_type":"API"},"log":{"payload":"b3RoZXIgYXBw","type":"OUT"}}
{"timestamp":"1700000000000000004","source_id":"app-1","instance_id":"2","deprecated_tags":{"deployment":{"text":"cf"},"ip":{"text":"10.0.0.1"}},"tags":{"az":"z1"},"counter":{"name":"requests","delta":"3","total":"10"}}
{"timestamp":"1700000000000000005","source_id":"app-1","instance_id":"","deprecated_tags":{"origin":{"integer":"0"}},"tags":{},"gauge":{"metrics":{"cpu":{"unit":"percentage","value":12.5},"memory":{"unit":"bytes","value":1048576}}}}
{"timestamp":"1700000000000000006","source_id":"app-1","instance_id":"3","deprecated_tags":{},"tags":{},"log":{"payload":"cGxhaW4=","type":"OUT"}}
EOF
	} | lgr-cat --encode >"$f"
	printf 'app-1 line %d\n' 1 2 3 |
	    lgr-emit --source-id app-1 --instance-id 4 --tag source_type=APP/PROC/WEB \
	    --tag deployment=cf log >>"$f"
}

CLIENT=(--certs "$BATS_FILE_TMPDIR/certs" --cert client --server-name reverselogproxy)

# rlp_start DOPPLERS [ARGS...]: bin/reverselogproxy on a free loopback
# port with the suite's certificates; waits for its listening line. Sets
# RLP (HOST:PORT), RLP_PID and RLP_ERR.
rlp_start() {
	local l dopplers=$1
	shift
	role_start reverselogproxy --dopplers "$dopplers" --certs "$CERTS" \
	    --grpc 127.0.0.1:0 "$@"
	RLP_PID=$ROLE_PID
	RLP_ERR=$ROLE_ERR
	await 600 "$RLP_PID" grep -q 'lgr-ws: .* event=listening proto=grpc ' \
	    "$RLP_ERR" || { role_log; return 1; }
	l=$(grep -m 1 'lgr-ws: .* event=listening proto=grpc ' "$RLP_ERR")
	RLP=$(field addr "$l")
}

# gw_start RLPS [ARGS...]: bin/rlp-gateway on a free loopback port,
# --no-auth. Sets GW (HOST:PORT), GW_PID and GW_ERR.
gw_start() {
	local l rlps=$1
	shift
	role_start rlp-gateway --rlp "$rlps" --certs "$CERTS" \
	    --http 127.0.0.1:0 --no-auth "$@"
	GW_PID=$ROLE_PID
	GW_ERR=$ROLE_ERR
	await 600 "$GW_PID" grep -q 'lgr-ws: .* event=listening proto=http ' \
	    "$GW_ERR" || { role_log; return 1; }
	l=$(grep -m 1 'lgr-ws: .* event=listening proto=http ' "$GW_ERR")
	GW=$(field addr "$l")
}

# lines_at_least FILE PATTERN N: N lines or more of FILE match PATTERN.
lines_at_least() {
	local n
	n=$(grep -c -- "$2" "$1")
	[ "$((n))" -ge "$3" ]
}

# rlp_subs_up N: N subscriptions of the proxy are up on its doppler.
rlp_subs_up() {
	await 600 "$RLP_PID" lines_at_least "$RLP_ERR" \
	    'event=upstream_up sub=grpc:[^ ]* upstream=0 ' "$1" ||
	    { lgr_diag "$(cat "$RLP_ERR")"; return 1; }
}

# has_sse FILE N: the complete data: events of FILE hold N envelopes or
# more.
has_sse() {
	[ "$(check sse-count "$1")" -ge "$2" ]
}

# --- command line ---------------------------------------------------------------

@test "--help and --version of both roles" {
	local r
	for r in reverselogproxy rlp-gateway; do
		run -0 --separate-stderr "$r" --help
		[[ ${lines[0]} == "usage: $r "* ]]
		contains "$output" "usage: lgr-ws"
		same "" "$stderr"
		run -0 --separate-stderr "$r" --version
		same 1 "${#lines[@]}"
		[[ ${lines[0]} =~ ^$r\ [0-9]+\.[0-9]+ ]]
	done
	run -0 reverselogproxy --help
	contains "${lines[0]}" "--dopplers"
	run -0 rlp-gateway --help
	contains "${lines[0]}" "--rlp"
}

@test "bad settings exit 2, the problem named first" {
	local port
	run -2 --separate-stderr timeout 10 reverselogproxy --certs "$CERTS"
	same "reverselogproxy: no upstreams: give --dopplers or REVERSELOGPROXY_UPSTREAMS" "${stderr_lines[0]}"
	run -2 --separate-stderr timeout 10 reverselogproxy --dopplers 127.0.0.1:1
	same "reverselogproxy: mTLS needs --certs DIR (or --insecure)" "${stderr_lines[0]}"
	run -2 --separate-stderr timeout 10 rlp-gateway --certs "$CERTS"
	same "rlp-gateway: no upstreams: give --rlp or RLP_GATEWAY_UPSTREAMS" "${stderr_lines[0]}"
	mkdir "$BATS_TEST_TMPDIR/c"
	cp "$CERTS/ca.crt" "$BATS_TEST_TMPDIR/c/"
	run -2 --separate-stderr timeout 10 rlp-gateway --rlp 127.0.0.1:1 \
	    --certs "$BATS_TEST_TMPDIR/c"
	same "rlp-gateway: cannot read $BATS_TEST_TMPDIR/c/client.crt" "${stderr_lines[0]}"
	port=$(free_port)
	run -2 --separate-stderr timeout 10 rlp-gateway --rlp 127.0.0.1:1 \
	    --certs "$CERTS" --http "0.0.0.0:$port" --no-auth
	contains "${stderr_lines[0]}" "loopback"
	same "" "$output"
}

# --- reverse log proxy ------------------------------------------------------------

@test "doppler -> reverselogproxy (mTLS) -> BatchedReceiver with use_preferred_tags: tags converged into tags" {
	local t=$BATS_TEST_TMPDIR s=$BATS_FILE_TMPDIR/sent n
	n=$(count "$s")
	dop_start d
	rlp_start "${DOP[d]}"
	sub_start pref grpc "$RLP" batched "${CLIENT[@]}" --preferred \
	    --sel log --sel counter --sel gauge --count "$n"
	sub_start depr grpc "$RLP" batched "${CLIENT[@]}" \
	    --sel log --sel counter --sel gauge --count "$n"
	sub_start one grpc "$RLP" receiver "${CLIENT[@]}" --preferred \
	    --sel app-2/log --count 1
	sub_ready pref
	sub_ready depr
	sub_ready one
	rlp_subs_up 3
	send "${DOP[d]}" "$s"
	sub_end pref
	same "CANCELLED Locally cancelled by application! count=$n" "$SUB_LINE"
	check converge "$t/pref.frames" "$s"
	sub_end depr
	check converge "$t/depr.frames" "$s" --deprecated
	sub_end one
	same "CANCELLED Locally cancelled by application! count=1" "$SUB_LINE"
	lgr-cat <"$t/one.frames" >"$t/one.json"
	run -0 jq -c '[.source_id, .tags, .deprecated_tags]' "$t/one.json"
	same '["app-2",{"origin":"cc","source_type":"API"},{}]' "$output"
	role_stop
	ROLE_PID=${DOP_PID[d]} ROLE_ERR=${DOP_ERR[d]} role_stop
}

@test "reverselogproxy: empty selectors are INVALID_ARGUMENT; a client without a certificate is refused" {
	local t=$BATS_TEST_TMPDIR
	dop_start d
	rlp_start "${DOP[d]}"
	sub_start none grpc "$RLP" batched "${CLIENT[@]}" --timeout 10
	sub_end none
	same "INVALID_ARGUMENT Selectors cannot be empty count=0" "$SUB_LINE"
	sub_start anon grpc "$RLP" batched --certs "$CERTS" \
	    --server-name reverselogproxy --sel log --timeout 10
	sub_end anon
	[[ $SUB_LINE == UNAVAILABLE* ]] || { lgr_diag "$SUB_LINE"; false; }
	# A client that expects the doppler's name is not talking to a doppler.
	sub_start name grpc "$RLP" batched --certs "$CERTS" --cert client \
	    --server-name doppler --sel log --timeout 10
	sub_end name
	[[ $SUB_LINE == UNAVAILABLE* ]] || { lgr_diag "$SUB_LINE"; false; }
	role_stop
}

# --- gateway ----------------------------------------------------------------------

@test "doppler -> reverselogproxy -> rlp-gateway -> curl /v2/read?log&source_id=app-1: SSE with the converged JSON" {
	local t=$BATS_TEST_TMPDIR s=$BATS_FILE_TMPDIR/sent n curl
	dop_start d
	rlp_start "${DOP[d]}"
	gw_start "$RLP"
	# What the reader should get: app-1's logs, converged, as JSON.
	lgr-cat <"$s" | jq -c 'select(.source_id == "app-1" and .log != null)' |
	    lgr-cat --encode >"$t/app1"
	check write-converged "$t/app1" "$t/want"
	lgr-cat <"$t/want" >"$t/want.jsonl"
	check json "$t/want" "$t/want.jsonl"
	n=$(count "$t/want")
	[ "$n" -eq 6 ]

	curl -sS -N -D "$t/headers" --max-time 20 \
	    "http://$GW/v2/read?log&source_id=app-1" \
	    3>&- {LGR_DIAG}>&- </dev/null >"$t/sse" 2>"$t/curl.err" &
	curl=$!
	EGRESS_PIDS+=("$curl")
	await 600 "$GW_PID" lines_at_least "$GW_ERR" \
	    'event=upstream_up sub=sse [^ ]* /v2/read?log&source_id=app-1 upstream=0 ' 1
	rlp_subs_up 1
	send "${DOP[d]}" "$s"
	await 300 "$curl" has_sse "$t/sse" "$n"
	sleep 0.3
	kill -TERM "$curl"
	wait "$curl" || true
	check sse "$t/sse" "$t/want.jsonl"
	run -0 tr -d '\r' <"$t/headers"
	[[ ${lines[0]} == "HTTP/1.1 200 "* ]]
	contains "$output" "Content-Type: text/event-stream"
	contains "$output" "Cache-Control: no-cache"
}

@test "rlp-gateway answers a bad read as the real gateway does" {
	local t=$BATS_TEST_TMPDIR
	gw_start 127.0.0.1:1
	run -0 curl -sS -o "$t/body" -w '%{http_code}' "http://$GW/v2/read"
	same 400 "$output"
	run -0 jq -r .error "$t/body"
	same empty_query "$output"
	run -0 curl -sS -o "$t/body" -w '%{http_code}' "http://$GW/v2/read?source_id=app-1"
	same 400 "$output"
	run -0 jq -r .error "$t/body"
	same missing_envelope_type "$output"
	run -0 curl -sS -o "$t/body" -w '%{http_code}' -X POST "http://$GW/v2/read?log"
	same 405 "$output"
	run -0 jq -r .error "$t/body"
	same method_not_allowed "$output"
	role_stop
}
