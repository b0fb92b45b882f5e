#!/usr/bin/env bats
# doppler: the router role, bin/doppler, which runs
#   lgr-recv --grpc ADDR --egress-relay SOCK | lgr-diode
#     | lgr-route --to 'exec:lgr-ws --relay SOCK'
# with mTLS, ingress and egress on one gRPC port as a real doppler.
#
# Envelopes go in as an agent sends them (lgr-route --to grpcs:// with
# metron's certificate); they come out to real gRPC clients
# (python3-grpcio, t/roles/egress_sub.py) with the "client" certificate:
# v2 Egress (BatchedReceiver, Receiver) and v1 Doppler (BatchSubscribe,
# Subscribe), all on that one port. What the clients get is checked by
# t/roles/egress_check.py with python3-protobuf against what lgr-emit
# made: v2 byte for byte, v1 against an independent v2 -> v1 conversion
# (SPEC §3) and doppler's v1 app routing (§5).

: "${BATS_TEST_TIMEOUT:=60}"
load lib
load roles/roles
load roles/egress_roles

APP3=6f1b5b3e-2a4c-4d8e-9f00-0123456789ab

setup_file() {
	egress_setup_file
	make_sent "$BATS_FILE_TMPDIR/sent"
}

# make_sent FILE: one envelope of each kind and shape the v1 conversion
# tells apart, from lgr-emit, and one with deprecated tags from lgr-cat.
make_sent() {
	local f=$1 base="--tag origin=rep --tag deployment=cf --tag job=diego \
--tag index=7 --tag ip=10.0.0.1"
	{
		printf 'app-1 line %d\n' 1 2 3 |
		    lgr-emit $base --source-id app-1 --instance-id 3 \
		    --tag source_type=APP/PROC/WEB log
		lgr-emit $base --source-id app-2 --instance-id 0 --err \
		    --tag source_type=STG log "staging failed"
		lgr-emit $base --source-id app-1 --instance-id 2 gauge \
		    cpu=12.5:percentage memory=1048576:bytes disk=2097152:bytes \
		    memory_quota=4194304:bytes disk_quota=8388608:bytes
		lgr-emit --source-id app-1 --instance-id 1 --tag job=cell \
		    gauge requests=3:count
		lgr-emit $base --source-id metron gauge a=1.5:x b=2:y
		lgr-emit $base --source-id doppler --total 100 counter ingress 5
		lgr-emit --source-id doppler --instance-id 4 counter egress 3
		lgr-emit $base --source-id "$APP3" --instance-id 1 \
		    --tag request_id=1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9 \
		    --tag method=GET --tag peer_type=Server --tag uri=/x \
		    --tag remote_address=10.1.1.1:5000 --tag user_agent=curl \
		    --tag status_code=200 --tag content_length=42 \
		    --tag routing_instance_id=r1 timer http 1000 2000
		lgr-emit --source-id app-1 event deploy "v2 started"
		lgr-emit --source-id cc --tag __v1_type=Error --tag source=api \
		    --tag code=503 log "upstream failed"
		printf 'app-3 line %d\n' 1 2 |
		    lgr-emit --source-id "$APP3" --instance-id 0 \
		    --tag source_type=APP/PROC/WEB log
		echo '{"timestamp":"1700000000000000001","source_id":"app-1","instance_id":"5","deprecated_tags":{"origin":{"text":"old"},"job":{"text":"router"},"index":{"integer":"4"},"legacy":{"text":"yes"}},"tags":{"source_type":"RTR"},"log":{"payload":"b2xkIHN0eWxl","type":"OUT"}}' |
		    lgr-cat --encode
		printf 'app-1 line %d\n' 4 5 |
		    lgr-emit $base --source-id app-1 --instance-id 3 \
		    --tag source_type=APP/PROC/WEB log
	} >"$f"
}

# tls ARGS: the options of a subscriber with the "client" certificate.
CLIENT=(--certs "$BATS_FILE_TMPDIR/certs" --cert client)

# v2 selectors that take every envelope once: one per kind.
ALL_KINDS=(--sel log --sel counter --sel gauge --sel timer --sel event)

# --- command line ---------------------------------------------------------------

@test "--help prints the usage on stdout and exits 0; --version one line" {
	local flag
	run -0 --separate-stderr doppler --help
	[[ ${lines[0]} == "usage: doppler "* ]]
	for flag in --grpc --certs --tls-cert --tls-key --tls-ca --insecure \
	    --diode-size --subscriber-buffer --max-subscriptions \
	    --metrics-interval --run-dir --sink; do
		contains "$output" "$flag"
	done
	same "" "$stderr"
	run -0 --separate-stderr doppler -h
	[[ ${lines[0]} == "usage: doppler "* ]]
	run -0 --separate-stderr doppler --version
	same 1 "${#lines[@]}"
	[[ ${lines[0]} =~ ^doppler\ [0-9]+\.[0-9]+ ]]
	same "" "$stderr"
}

@test "bad settings: one line naming the problem, the usage, exit 2, nothing started" {
	local t=$BATS_TEST_TMPDIR bad ok=(--certs "$CERTS")
	stub_role doppler
	mkdir "$t/nokey"
	cp "$CERTS/doppler.crt" "$CERTS/ca.crt" "$t/nokey/"

	for bad in 127.0.0.1 127.0.0.1: 127.0.0.1:x 127.0.0.1:65536 \
	    127.0.0.1:99999 :http '[::1' '[::1]8082' a:1:2 '' 'a b:1' \
	    127.0.0.1:-1; do
		usage_error doppler "${ok[@]}" --grpc "$bad"
		same "doppler: --grpc '$bad' is not HOST:PORT" "$ERROR"
	done
	DOPPLER_GRPC=nope usage_error doppler "${ok[@]}"
	contains "$ERROR" "--grpc 'nope'"

	usage_error doppler --grpc 127.0.0.1:8082
	same "doppler: mTLS needs --certs DIR or --tls-cert, --tls-key and --tls-ca (or --insecure)" "$ERROR"
	usage_error doppler --tls-cert "$CERTS/doppler.crt" --tls-key "$CERTS/doppler.key"
	contains "$ERROR" "mTLS needs"
	usage_error doppler --certs "$t/nonexistent"
	same "doppler: cannot read $t/nonexistent/doppler.crt" "$ERROR"
	usage_error doppler --certs "$t/nokey"
	same "doppler: cannot read $t/nokey/doppler.key" "$ERROR"
	usage_error doppler --tls-cert "$t/missing.crt" \
	    --tls-key "$CERTS/doppler.key" --tls-ca "$CERTS/ca.crt"
	same "doppler: cannot read $t/missing.crt" "$ERROR"
	usage_error doppler --certs "$CERTS" --tls-ca "$t/other-ca.crt"
	same "doppler: cannot read $t/other-ca.crt" "$ERROR"

	usage_error doppler "${ok[@]}" --bogus
	same "doppler: unknown option --bogus" "$ERROR"
	usage_error doppler "${ok[@]}" --grpc
	same "doppler: option --grpc needs a value" "$ERROR"
	usage_error doppler "${ok[@]}" stray
	same "doppler: unexpected argument 'stray'" "$ERROR"
	for bad in 0 x -1 ''; do
		usage_error doppler "${ok[@]}" --diode-size "$bad"
		contains "$ERROR" "--diode-size"
		usage_error doppler "${ok[@]}" --subscriber-buffer "$bad"
		contains "$ERROR" "--subscriber-buffer"
	done
	usage_error doppler "${ok[@]}" --run-dir "$t/nonexistent"
	contains "$ERROR" "--run-dir"
	DOPPLER_INSECURE=maybe usage_error doppler
	contains "$ERROR" "DOPPLER_INSECURE"
}

@test "a certificate that is no certificate: lgr-recv's tls_load_failed, exit 1, nothing left running" {
	local t=$BATS_TEST_TMPDIR st=0 pid pids=
	echo garbage >"$t/bad.crt"
	role_start doppler --grpc 127.0.0.1:0 --tls-cert "$t/bad.crt" \
	    --tls-key "$CERTS/doppler.key" --tls-ca "$CERTS/ca.crt"
	# Its programs, while they run, to check none outlives it.
	while running "$ROLE_PID"; do
		pids="$pids $(egress_tree "$ROLE_PID")"
		sleep 0.02
	done
	ended 400 "$ROLE_PID"
	wait "$ROLE_PID" || st=$?
	same 1 "$st"
	run -0 head -n 1 "$ROLE_ERR"
	[[ $output == "lgr-recv: level=error event=tls_load_failed reason=\"certificate $t/bad.crt: "* ]]
	for pid in $pids; do
		ended 100 "$pid" || { lgr_diag "left running: $(ps -o args= -p "$pid")"; false; }
	done
}

# --- delivery -------------------------------------------------------------------

@test "what an agent sends reaches v2 BatchedReceiver, Receiver, v1 BatchSubscribe and Subscribe on the one port, exactly" {
	local t=$BATS_TEST_TMPDIR s=$BATS_FILE_TMPDIR/sent nv2 nv1 napp
	nv2=$(count "$s")
	nv1=$(check v1count "$s")
	napp=$(check v1count "$s" --app app-1)
	[ "$nv1" -gt 10 ] && [ "$napp" -gt 3 ]
	dop_start d
	sub_start v2 grpc "${DOP[d]}" batched "${CLIENT[@]}" "${ALL_KINDS[@]}" \
	    --count "$nv2"
	sub_start rcv grpc "${DOP[d]}" receiver "${CLIENT[@]}" --sel app-1/log \
	    --count 6
	sub_start v1 grpc "${DOP[d]}" batch_subscribe "${CLIENT[@]}" \
	    --shard firehose --count "$nv1"
	sub_start app grpc "${DOP[d]}" subscribe "${CLIENT[@]}" --app app-1 \
	    --count "$napp"
	sub_ready v2
	sub_ready rcv
	sub_ready v1
	sub_ready app
	send "${DOP[d]}" "$s"

	sub_end v2
	same "CANCELLED Locally cancelled by application! count=$nv2" "$SUB_LINE"
	check v2 "$t/v2.frames" "$s"
	sub_end v1
	same "CANCELLED Locally cancelled by application! count=$nv1" "$SUB_LINE"
	check v1 "$t/v1.frames" "$s"
	sub_end app
	same "CANCELLED Locally cancelled by application! count=$napp" "$SUB_LINE"
	check v1 "$t/app.frames" "$s" --app app-1
	sub_end rcv
	same "CANCELLED Locally cancelled by application! count=6" "$SUB_LINE"
	jq -c 'select(.source_id == "app-1" and .log != null)' \
	    <(lgr-cat <"$s") >"$t/want.json"
	lgr-cat <"$t/rcv.frames" >"$t/got.json"
	same_file "$t/want.json" "$t/got.json"

	role_stop
}

@test "a steady stream at 20000/s: every subscriber gets all of it, none lost" {
	local t=$BATS_TEST_TMPDIR
	dop_start d
	sub_start v2 grpc "${DOP[d]}" batched "${CLIENT[@]}" --sel log \
	    --count 6000
	sub_start v1 grpc "${DOP[d]}" batch_subscribe "${CLIENT[@]}" \
	    --count 6000
	sub_ready v2
	sub_ready v1
	lgr-emit --source-id app-a --count 6000 --rate 20000 log paced |
	    tee "$t/a" | send "${DOP[d]}" /dev/stdin
	same 6000 "$(count "$t/a")"
	sub_end v2
	check v2 "$t/v2.frames" "$t/a"
	sub_end v1
	check v1 "$t/v1.frames" "$t/a"
	role_stop
}

@test "a client without a certificate, or with one from another CA, is refused; others are served" {
	local t=$BATS_TEST_TMPDIR
	"$LGR_ROOT/share/lgr-certs" "$t/other" 2>/dev/null
	cp "$CERTS/ca.crt" "$t/other/trust.crt"
	dop_start d
	sub_start nocert grpc "${DOP[d]}" batched --certs "$CERTS" \
	    --sel log --timeout 10
	sub_start stranger grpc "${DOP[d]}" batched --certs "$t/other" \
	    --cert client --sel log --timeout 10
	sub_start plain grpc "${DOP[d]}" batched --sel log --timeout 10
	sub_end nocert
	[[ $SUB_LINE == UNAVAILABLE* ]] || { lgr_diag "$SUB_LINE"; false; }
	same 0 "$(count "$t/nocert.frames")"
	sub_end stranger
	[[ $SUB_LINE == UNAVAILABLE* ]] || { lgr_diag "$SUB_LINE"; false; }
	sub_end plain
	[[ $SUB_LINE == UNAVAILABLE* ]] || { lgr_diag "$SUB_LINE"; false; }
	same 0 "$(count "$t/plain.frames")"

	# The doppler still serves a client that has one, and an agent
	# without a certificate cannot send.
	sub_start ok grpc "${DOP[d]}" batched "${CLIENT[@]}" --sel log --count 3
	sub_ready ok
	logs "$t/bad" intruder 3
	run lgr-route --to "grpcs://${DOP[d]}" --tls-ca "$CERTS/ca.crt" \
	    --drain-timeout 1 <"$t/bad"
	no_signal
	logs "$t/in" app-1 3
	send "${DOP[d]}" "$t/in"
	sub_end ok
	check v2 "$t/ok.frames" "$t/in"
	role_stop
}

# --- signals ----------------------------------------------------------------------

@test "SIGTERM: subscribers get what was sent, every process of the doppler ends, exit 0" {
	local t=$BATS_TEST_TMPDIR pid pids
	mkdir "$t/run"
	logs "$t/in" app-1 500
	dop_start d 0 --run-dir "$t/run"
	pids=$(egress_tree "$ROLE_PID")
	# lgr-recv, lgr-diode, lgr-route, and lgr-ws (under a shell).
	for p in lgr-recv lgr-diode lgr-route lgr-ws; do
		run -0 pgrep -x -P "$(echo $pids "$ROLE_PID" | tr ' ' ,)" "$p"
	done
	sub_start v2 grpc "${DOP[d]}" batched "${CLIENT[@]}" --sel log
	sub_ready v2
	send "${DOP[d]}" "$t/in"
	await 200 "${SUB_PID[v2]}" has_count "$t/v2.frames" 500
	role_stop TERM
	for pid in $pids; do
		if running "$pid"; then
			lgr_diag "left running: $(ps -o pid=,args= -p "$pid")"
			false
		fi
	done
	run -0 ls -A "$t/run"
	same "" "$output"
	sub_end v2
	[[ $SUB_LINE == "OK "* || $SUB_LINE == UNAVAILABLE* ]] ||
	    { lgr_diag "$SUB_LINE"; false; }
	check v2 "$t/v2.frames" "$t/in"
	grep -q '^lgr-ws: level=info event=stop ' "$ROLE_ERR"
	grep -q '^lgr-recv: level=info event=stop ' "$ROLE_ERR"
}

@test "SIGHUP does not stop it: it keeps taking and serving envelopes" {
	local t=$BATS_TEST_TMPDIR pids pid
	logs "$t/a" app-1 100
	logs "$t/b" app-1 100
	dop_start d
	pids=$(egress_tree "$ROLE_PID")
	sub_start v2 grpc "${DOP[d]}" batched "${CLIENT[@]}" --sel log --count 200
	sub_ready v2
	send "${DOP[d]}" "$t/a"
	await 200 "${SUB_PID[v2]}" has_count "$t/v2.frames" 100
	kill -HUP "$ROLE_PID"
	sleep 0.5
	running "$ROLE_PID"
	for pid in $pids; do
		running "$pid" || { lgr_diag "pid $pid ended on SIGHUP"; false; }
	done
	send "${DOP[d]}" "$t/b"
	sub_end v2
	check v2 "$t/v2.frames" "$t/a" "$t/b"
	# The whole process group hung up, as a terminal or a supervisor may.
	kill -HUP -- "-$ROLE_PID"
	sleep 0.5
	for pid in $pids; do
		running "$pid" || { lgr_diag "pid $pid ended on SIGHUP"; false; }
	done
	role_stop TERM
}

@test "killed outright, it restarts on the same port and --run-dir and serves again" {
	local t=$BATS_TEST_TMPDIR port
	mkdir "$t/run"
	logs "$t/a" app-1 10
	dop_start d 0 --run-dir "$t/run"
	port=${DOP[d]##*:}
	dop_kill d
	dop_start d "$port" --run-dir "$t/run"
	same "127.0.0.1:$port" "${DOP[d]}"
	sub_start v2 grpc "${DOP[d]}" batched "${CLIENT[@]}" --sel log --count 10
	sub_ready v2
	send "${DOP[d]}" "$t/a"
	sub_end v2
	check v2 "$t/v2.frames" "$t/a"
	role_stop
	run -0 ls -A "$t/run"
	same "" "$output"
}

@test "SIGTERM right after a burst: subscribers get every envelope doppler took" {
	local t=$BATS_TEST_TMPDIR
	logs "$t/in" app-1 5000
	dop_start d
	sub_start v2 grpc "${DOP[d]}" batched "${CLIENT[@]}" --sel log
	sub_ready v2
	send "${DOP[d]}" "$t/in"
	role_stop TERM
	sub_end v2
	check v2 "$t/v2.frames" "$t/in"
}
