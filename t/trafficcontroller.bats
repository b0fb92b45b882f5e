#!/usr/bin/env bats
# trafficcontroller: the v1 egress role, bin/trafficcontroller, which
# runs lgr-ws --http ADDR --upstream DOPPLERS: for each websocket client
# (/firehose/ID, /apps/APP/stream) it subscribes (v1 BatchSubscribe, mTLS
# as "trafficcontroller") on every doppler and merges.
#
# The dopplers are real bin/doppler instances fed as an agent feeds them
# (lgr-route --to grpcs:// with metron's certificate). The clients are
# python3-websockets (t/roles/egress_sub.py ws); each binary message is
# one v1 Envelope, checked by t/roles/egress_check.py with
# python3-protobuf against an independent v2 -> v1 conversion of what
# lgr-emit sent (SPEC §3) and doppler's app routing (§5). Tests run with
# --no-auth on loopback; authorization is lgr-ws's own suite.

: "${BATS_TEST_TIMEOUT:=60}"
load lib
load roles/roles
load roles/egress_roles

setup_file() {
	egress_setup_file
	cc -O2 -o "$BATS_FILE_TMPDIR/wsread" "$LGR_ROOT/t/bench/wsread.c" -lwslay
}

# tc_start ARGS...: bin/trafficcontroller with the suite's certificates
# on a free loopback port, --no-auth, then ARGS; waits (30 s at most)
# for its listening line. Sets TC (HOST:PORT), TC_PID and TC_ERR.
tc_start() {
	local l
	role_start trafficcontroller --certs "$CERTS" --http 127.0.0.1:0 \
	    --no-auth "$@"
	TC_PID=$ROLE_PID
	TC_ERR=$ROLE_ERR
	await 600 "$TC_PID" grep -q 'lgr-ws: .* event=listening proto=http ' \
	    "$TC_ERR" || { role_log; return 1; }
	l=$(grep -m 1 'lgr-ws: .* event=listening proto=http ' "$TC_ERR")
	TC=$(field addr "$l")
}

# ups PATH UPSTREAM: how many times websocket subscriptions on PATH have
# come up on upstream number UPSTREAM (0 is the first of --dopplers).
ups() {
	local n
	n=$(grep -c "event=upstream_up sub=ws [^ ]* $1 upstream=$2 " "$TC_ERR")
	echo $((n))
}

# has_ups PATH UPSTREAM N: ups PATH UPSTREAM is N or more.
has_ups() {
	[ "$(ups "$1" "$2")" -ge "$3" ]
}

# ws_ready NAME PATH N: subscriber NAME is connected and N subscriptions
# on PATH are up on both dopplers (30 s at most).
ws_ready() {
	sub_ready "$1"
	await 600 "$TC_PID" has_ups "$2" 0 "$3" || { lgr_diag "$(cat "$TC_ERR")"; return 1; }
	await 600 "$TC_PID" has_ups "$2" 1 "$3" || { lgr_diag "$(cat "$TC_ERR")"; return 1; }
}

# paced FILE SOURCE N ADDR [RATE]: N logs of SOURCE at RATE a second
# (10000) into the doppler at ADDR; what was sent is also written to
# FILE. Two dopplers at 10000/s make 20000/s for one client. A Python
# client on a busy host may fall behind that for a moment, and the
# traffic controller drops what overflows a client's queue
# (--subscriber-buffer, 1000), as the real one's dopplers drop what
# overflows theirs: PY_TC gives the tests with Python clients a queue
# that holds all they send. The C reader's test keeps the default.
PY_TC=(--subscriber-buffer 10000)
paced() {
	lgr-emit --source-id "$2" --count "$3" --rate "${5:-10000}" \
	    log "$2 paced" | tee "$1" | send "$4" /dev/stdin
}

# --- command line ---------------------------------------------------------------

@test "--help prints its usage and lgr-ws's; --version one line" {
	run -0 --separate-stderr trafficcontroller --help
	[[ ${lines[0]} == "usage: trafficcontroller --dopplers HOST:PORT"* ]]
	contains "$output" "usage: lgr-ws"
	contains "$output" "--no-auth"
	same "" "$stderr"
	run -0 --separate-stderr trafficcontroller --version
	same 1 "${#lines[@]}"
	[[ ${lines[0]} =~ ^trafficcontroller\ [0-9]+\.[0-9]+ ]]
}

@test "bad settings exit 2 with the problem named first; nothing listens" {
	local port
	run -2 --separate-stderr timeout 10 trafficcontroller --certs "$CERTS"
	same "trafficcontroller: no upstreams: give --dopplers or TRAFFICCONTROLLER_UPSTREAMS" "${stderr_lines[0]}"
	[[ ${stderr_lines[1]} == "usage: trafficcontroller "* ]]
	run -2 --separate-stderr timeout 10 trafficcontroller --dopplers 127.0.0.1:1
	same "trafficcontroller: mTLS needs --certs DIR (or --insecure)" "${stderr_lines[0]}"
	run -2 --separate-stderr timeout 10 trafficcontroller --dopplers 127.0.0.1:1 \
	    --certs "$BATS_TEST_TMPDIR/none"
	same "trafficcontroller: cannot read $BATS_TEST_TMPDIR/none/ca.crt" "${stderr_lines[0]}"
	run -2 --separate-stderr timeout 10 trafficcontroller --dopplers 127.0.0.1:1 \
	    --certs "$CERTS" --http
	same "trafficcontroller: option --http needs a value" "${stderr_lines[0]}"
	# Without --no-auth it needs UAA and Cloud Controller.
	run -2 --separate-stderr timeout 10 trafficcontroller --dopplers 127.0.0.1:1 \
	    --certs "$CERTS" --http 127.0.0.1:0
	contains "${stderr_lines[0]}" "--uaa"
	same "" "$output"
}

@test "--no-auth on an address that is not loopback refuses to start, exit 2" {
	local port addr
	port=$(free_port)
	for addr in "0.0.0.0:$port" ":$port" "[::]:$port"; do
		run -2 --separate-stderr timeout 10 trafficcontroller \
		    --dopplers 127.0.0.1:1 --certs "$CERTS" --http "$addr" --no-auth
		contains "${stderr_lines[0]}" "--no-auth"
		contains "${stderr_lines[0]}" "loopback"
		same "" "$output"
		run -7 curl -sS -o /dev/null --max-time 2 "http://127.0.0.1:$port/"
	done
	# From the environment too.
	TRAFFICCONTROLLER_LISTEN=0.0.0.0:$port run -2 --separate-stderr \
	    timeout 10 trafficcontroller --dopplers 127.0.0.1:1 --certs "$CERTS" \
	    --no-auth
	contains "${stderr_lines[0]}" "loopback"
	# Loopback, v4 or v6, is allowed.
	tc_start --dopplers 127.0.0.1:1
	role_stop
	role_start trafficcontroller --certs "$CERTS" --http "[::1]:0" --no-auth \
	    --dopplers 127.0.0.1:1
	await 600 "$ROLE_PID" grep -q 'event=listening proto=http addr=\[::1\]:' \
	    "$ROLE_ERR"
	role_stop
}

# --- delivery -------------------------------------------------------------------

@test "two dopplers: the firehose gets both streams merged, none lost; an app stream only its app" {
	local t=$BATS_TEST_TMPDIR pa pb n
	dop_start a
	dop_start b
	tc_start --dopplers "${DOP[a]},${DOP[b]}" "${PY_TC[@]}"
	logs "$t/c" app-b1 10 --instance-id 2 --tag source_type=APP/PROC/WEB
	{
		lgr-emit --source-id app-b1 --instance-id 2 gauge \
		    cpu=12.5:percentage memory=1048576:bytes disk=2097152:bytes \
		    memory_quota=4194304:bytes disk_quota=8388608:bytes
		lgr-emit --source-id app-a1 --err log "not b1"
		lgr-emit --source-id router --total 7 counter requests 2
	} >>"$t/c"
	n=$((3000 + 3000 + $(check v1count "$t/c")))
	sub_start fh ws "ws://$TC/firehose/merge" --count "$n" --timeout 25
	sub_start app ws "ws://$TC/apps/app-b1/stream" --idle 2 --timeout 25
	ws_ready fh /firehose/merge 1
	ws_ready app /apps/app-b1/stream 1
	paced "$t/a" app-a1 3000 "${DOP[a]}" 3>&- &
	pa=$!
	paced "$t/b" app-b1 3000 "${DOP[b]}" 3>&- &
	pb=$!
	wait "$pa"
	wait "$pb"
	send "${DOP[a]}" "$t/c"

	sub_end fh
	same "done count=$n" "$SUB_LINE"
	check v1 "$t/fh.frames" "$t/a" "$t/b" "$t/c" --merged
	sub_end app
	same "done count=$(check v1count "$t/b" "$t/c" --app app-b1)" "$SUB_LINE"
	check v1 "$t/app.frames" "$t/b" "$t/c" --app app-b1 --merged
	role_stop
}

@test "a doppler dies: the client stays connected and gets the other's; restarted, its envelopes come back" {
	local t=$BATS_TEST_TMPDIR port
	dop_start a
	dop_start b
	port=${DOP[b]##*:}
	tc_start --dopplers "${DOP[a]},${DOP[b]}" "${PY_TC[@]}"
	logs "$t/a1" a1 200
	logs "$t/b1" b1 200
	logs "$t/a2" a2 200
	logs "$t/b2" b2 200
	logs "$t/a3" a3 200
	sub_start fh ws "ws://$TC/firehose/survivor" --count 1000 --timeout 30
	ws_ready fh /firehose/survivor 1
	send "${DOP[a]}" "$t/a1"
	send "${DOP[b]}" "$t/b1"
	await 200 "${SUB_PID[fh]}" has_count "$t/fh.frames" 400

	dop_kill b
	await 200 "$TC_PID" grep -q \
	    "event=upstream_down sub=ws [^ ]* /firehose/survivor upstream=1 " "$TC_ERR"
	send "${DOP[a]}" "$t/a2"
	await 200 "${SUB_PID[fh]}" has_count "$t/fh.frames" 600
	running "${SUB_PID[fh]}"

	dop_start b "$port"
	# Reconnected with backoff: bounded by the test's wait.
	await 300 "$TC_PID" has_ups /firehose/survivor 1 2 || {
		lgr_diag "$(cat "$TC_ERR")"
		false
	}
	send "${DOP[b]}" "$t/b2"
	send "${DOP[a]}" "$t/a3"
	sub_end fh
	same "done count=1000" "$SUB_LINE"
	check v1 "$t/fh.frames" "$t/a1" "$t/b1" "$t/a2" "$t/b2" "$t/a3" --merged
	# One session from start to end: the client closed it, after all.
	run -0 grep "event=ws_end .*/firehose/survivor" "$TC_ERR"
	same 1 "${#lines[@]}"
	contains "$output" " sent=1000"
}

@test "two firehose clients with one subscription id split the stream, none lost or doubled; another id gets it all" {
	local t=$BATS_TEST_TMPDIR pa pb
	dop_start a
	dop_start b
	tc_start --dopplers "${DOP[a]},${DOP[b]}" "${PY_TC[@]}"
	sub_start s1 ws "ws://$TC/firehose/shared" --idle 2 --timeout 25
	sub_start s2 ws "ws://$TC/firehose/shared" --idle 2 --timeout 25
	sub_start all ws "ws://$TC/firehose/other" --count 4000 --timeout 25
	ws_ready s1 /firehose/shared 2
	ws_ready s2 /firehose/shared 2
	ws_ready all /firehose/other 1
	paced "$t/a" app-a 2000 "${DOP[a]}" 3>&- &
	pa=$!
	paced "$t/b" app-b 2000 "${DOP[b]}" 3>&- &
	pb=$!
	wait "$pa"
	wait "$pb"
	cat "$t/a" "$t/b" >"$t/ab"
	sub_end all
	same "done count=4000" "$SUB_LINE"
	check v1 "$t/all.frames" "$t/a" "$t/b" --merged
	sub_end s1
	sub_end s2
	check split "$t/ab" "$t/s1.frames" "$t/s2.frames"
}

@test "10000/s into each of two dopplers: a C websocket reader on the firehose counts every one" {
	local t=$BATS_TEST_TMPDIR pa pb
	dop_start a
	dop_start b
	tc_start --dopplers "${DOP[a]},${DOP[b]}"
	"$BATS_FILE_TMPDIR/wsread" 127.0.0.1 "${TC##*:}" /firehose/fast 40000 15 \
	    3>&- {LGR_DIAG}>&- </dev/null >"$t/wsread.out" 2>"$t/wsread.err" &
	pa=$!
	EGRESS_PIDS+=("$pa")
	await 600 "$TC_PID" has_ups /firehose/fast 0 1
	await 600 "$TC_PID" has_ups /firehose/fast 1 1
	# 20000/s in all (40000/s loses a few at the traffic controller's
	# client queue, --subscriber-buffer 1000, when other suites load the
	# host's two cores).
	paced "$t/a" app-a 20000 "${DOP[a]}" 3>&- &
	pb=$!
	paced "$t/b" app-b 20000 "${DOP[b]}"
	wait "$pb"
	wait "$pa" || { lgr_diag "wsread: $(cat "$t/wsread.out" "$t/wsread.err")"; false; }
	run -0 cat "$t/wsread.out"
	[[ $output == "40000 "* ]] || {
		lgr_diag "wsread: $output"
		# Where they went: every program's counts.
		kill -TERM "$TC_PID" "${DOP_PID[a]}" "${DOP_PID[b]}"
		ended 200 "$TC_PID" && ended 200 "${DOP_PID[a]}" && ended 200 "${DOP_PID[b]}"
		lgr_diag "$(grep -h 'event=\(stop\|sink_stopped\|unsubscribe\|slow\)' \
		    "$TC_ERR" "${DOP_ERR[a]}" "${DOP_ERR[b]}")"
		false
	}
	role_stop
	run -0 grep '^lgr-ws: level=info event=stop ' "$TC_ERR"
	contains "$output" " ingress=40000 "
	contains "$output" " egress_firehose=40000 "
	contains "$output" " dropped=0 "
}
