#!/usr/bin/env bats
# lgr-recv --egress-relay: the egress calls on lgr-recv's gRPC port (v2
# Egress Receiver and BatchedReceiver, v1 Doppler Subscribe and
# BatchSubscribe) handed to lgr-ws over a unix socket, so a doppler serves
# ingress and egress on one port. lgr-ws is played by
# t/lgr-recv/relay_peer.py, which speaks the relay protocol of
# src/lib/relay.h and logs what it sees; the gRPC clients are
# python3-grpcio (t/lgr-recv/egress_client.py, grpc_client.py). Every
# message the peer sends is kept, so what a client receives is compared
# byte for byte.

load lib

setup_file() {
	export PYTHONDONTWRITEBYTECODE=1
	export LGR_PB=$BATS_FILE_TMPDIR/pb
	mkdir -p "$LGR_PB"
	protoc --python_out="$LGR_PB" -I "$LGR_ROOT/share/proto" \
	    v2/envelope.proto events/dropsonde.proto
}

V2_RECEIVER=/loggregator.v2.Egress/Receiver
V2_BATCHED=/loggregator.v2.Egress/BatchedReceiver
V1_SUBSCRIBE=/plumbing.Doppler/Subscribe
V1_BATCH=/plumbing.Doppler/BatchSubscribe

# py NAME ARGS...: the helper t/lgr-recv/NAME.py, under Debian's python3.
py() {
	"$LGR_PYTHON" "$BATS_TEST_DIRNAME/lgr-recv/$1.py" "${@:2}"
}

# --- the peer: a stand-in for lgr-ws --------------------------------------------

# peer_start MODE ARGS...: (re)start relay_peer.py on $SOCK in MODE (see
# t/lgr-recv/relay_peer.py); its log and the messages it sent go to the
# new directory $PD. Waits (10 s at most) until it listens.
peer_start() {
	peer_stop
	PEER_N=$((${PEER_N:-0} + 1))
	PD=$BATS_TEST_TMPDIR/peer$PEER_N
	mkdir -p "$PD"
	: >"$PD/events"
	# Not through py: $! must be the peer itself, for peer_stop.
	"$LGR_PYTHON" "$BATS_TEST_DIRNAME/lgr-recv/relay_peer.py" "$SOCK" \
	    "$PD" "$@" </dev/null >"$PD/out" 2>"$PD/err" 3>&- {LGR_DIAG}>&- &
	PEER_PID=$!
	wait_until 200 test -f "$PD/ready" ||
	    { lgr_diag "relay_peer.py did not start: $(cat "$PD/err")"; return 1; }
}

# peer_stop: no peer on $SOCK any more.
peer_stop() {
	if [ -n "${PEER_PID-}" ]; then
		kill "$PEER_PID" 2>/dev/null || true
		wait "$PEER_PID" 2>/dev/null || true
		PEER_PID=
	fi
	rm -f "$SOCK"
}

# event LINE: the peer logged LINE (for wait_until).
event() {
	grep -qx -- "$1" "$PD/events"
}

# --- lgr-recv ------------------------------------------------------------------------

# recv_start ARGS...: lgr-recv --egress-relay $SOCK ARGS in the background,
# frames to $OUT, log to $ERR; waits for its --notify-fd. Sets RECV_PID and
# GRPC (HOST:PORT of the first gRPC listener).
recv_start() {
	local fifo=$BATS_TEST_TMPDIR/notify n=100 nfd l
	OUT=$BATS_TEST_TMPDIR/out
	ERR=$BATS_TEST_TMPDIR/err
	rm -f "$fifo"
	mkfifo "$fifo"
	exec {nfd}<>"$fifo"
	lgr-recv "$@" --notify-fd 3 3>"$fifo" {nfd}>&- {LGR_DIAG}>&- \
	    </dev/null >"$OUT" 2>"$ERR" &
	RECV_PID=$!
	while ! read -r -t 0.1 -u "$nfd" _; do
		n=$((n - 1))
		if [ "$n" -eq 0 ] || ! kill -0 "$RECV_PID" 2>/dev/null; then
			exec {nfd}>&-
			lgr_diag "lgr-recv $* did not get ready; its log:"
			lgr_diag "$(cat "$ERR")"
			return 1
		fi
	done
	exec {nfd}>&-
	l=$(grep -m 1 "event=listening proto=grpc " "$ERR") || return 1
	GRPC=$(field addr "$l")
}

# recv_stop: SIGTERM lgr-recv; it must exit 0 with the stop line last.
# Sets STOP to that line.
recv_stop() {
	local st=0
	kill -TERM "$RECV_PID"
	wait "$RECV_PID" || st=$?
	if [ "$st" -ne 0 ]; then
		lgr_diag "lgr-recv exited $st on SIGTERM; its log:"
		lgr_diag "$(cat "$ERR")"
		return 1
	fi
	STOP=$(last_line "$ERR")
	[[ $STOP == "lgr-recv: level=info event=stop "* ]] ||
	    { lgr_diag "no stop line last: $STOP"; return 1; }
}

alive() {
	kill -0 "$RECV_PID" 2>/dev/null ||
	    { lgr_diag "lgr-recv is gone; its log:"; lgr_diag "$(cat "$ERR")"; return 1; }
}

# --- clients -----------------------------------------------------------------------------

# egress_is STATUS PATH REQUEST_HEX NAME [OPTIONS...]: one egress call to
# lgr-recv that must end in STATUS; the messages go to
# $BATS_TEST_TMPDIR/NAME as frames, the status details to NAME.err.
egress_is() {
	local want=$1 path=$2 req=$3 got f=$BATS_TEST_TMPDIR/$4
	shift 4
	got=$(py egress_client "$@" "$GRPC" "$path" "$req" "$f" 2>"$f.err") || {
		lgr_diag "egress_client.py $* $path failed: $(cat "$f.err")"
		return 1
	}
	if [ "$got" != "$want" ]; then
		lgr_diag "egress_client.py $* $path: wanted $want, got $got"
		lgr_diag "$(cat "$f.err")"
		return 1
	fi
}

# details NAME: what the call that wrote NAME was told with its status.
details() {
	sed -n 's/^egress_client: [A-Z_]*: \(.*\) ([0-9]* messages)$/\1/p' \
	    "$BATS_TEST_TMPDIR/$1.err"
}

# ingress_ok TAG [OPTIONS...]: one BatchSender call with a log envelope,
# payload "in-TAG", must succeed; ingress_seen TAG: it came out.
ingress_ok() {
	local f=$BATS_TEST_TMPDIR/in-$1 tag=$1 got
	shift
	printf '{"source_id":"in","log":{"payload":"%s"}}\n' \
	    "$(printf 'in-%s' "$tag" | base64)" | py mkframes v2 >"$f"
	got=$(py grpc_client "$@" "$GRPC" batch "$f" 2>"$f.err") || true
	same OK "$got" || { lgr_diag "$(cat "$f.err")"; return 1; }
}

ingress_seen() {
	local p
	p=$(decode --payloads --partial "$OUT") || return 1
	grep -qx "in-$1" <<<"$p"
}

# certs_ready: a CA with metron and client certificates in $CERTS (once
# per file); MTLS holds lgr-recv's flags, GOOD a client's.
certs_ready() {
	CERTS=$BATS_FILE_TMPDIR/certs
	MTLS=(--tls-cert "$CERTS/metron.crt" --tls-key "$CERTS/metron.key"
	    --tls-ca "$CERTS/ca.crt")
	GOOD=(--ca "$CERTS/ca.crt" --cert "$CERTS/client.crt"
	    --key "$CERTS/client.key")
	[ -f "$CERTS/client.crt" ] && return 0
	run_ok "$LGR_ROOT/share/lgr-certs" --only "$CERTS" metron client \
	    2>"$BATS_FILE_TMPDIR/certs.log"
}

setup() {
	LGR_PREEXISTING_JOBS=" $(jobs -p | tr '\n' ' ') "
	exec {LGR_DIAG}>&2
	SOCK=$BATS_TEST_TMPDIR/relay.sock
	PEER_PID=
}

# --- command line ---------------------------------------------------------------

@test "--help names --egress-relay" {
	run -0 --separate-stderr lgr-recv --help
	contains "$output" "  --egress-relay PATH "
	contains "$output" "[--egress-relay PATH]"
}

@test "--egress-relay without --grpc, or with a path too long for a socket, is a usage error" {
	run -2 --separate-stderr lgr-recv --udp 127.0.0.1:0 --egress-relay /x
	same "lgr-recv: --egress-relay needs --grpc" "${stderr_lines[0]}"
	run -2 --separate-stderr lgr-recv --grpc 127.0.0.1:0 \
	    --egress-relay "/$(printf 'd%.0s' {1..120})"
	same "lgr-recv: --egress-relay wants a unix socket path of 1 to 107 bytes" \
	    "${stderr_lines[0]}"
	run -2 --separate-stderr lgr-recv --grpc 127.0.0.1:0 --egress-relay ''
	contains "${stderr_lines[0]}" "--egress-relay wants a unix socket path"
}

@test "without --egress-relay the egress paths stay UNIMPLEMENTED and nothing is relayed" {
	peer_start stream 3 100
	recv_start --grpc 127.0.0.1:0
	egress_is UNIMPLEMENTED "$V2_BATCHED" 0a00 a
	egress_is UNIMPLEMENTED "$V2_RECEIVER" 0a00 b
	egress_is UNIMPLEMENTED "$V1_SUBSCRIBE" 0a00 c
	egress_is UNIMPLEMENTED "$V1_BATCH" 0a00 d
	recv_stop
	same "" "$(cat "$PD/events")"
	[[ $(grep 'proto=grpc' "$ERR") == *" tls=off" ]]
	same "lgr-recv: level=info event=stop ingress_udp=0 ingress_grpc=0 ingress_statsd=0 dropped=0" "$STOP"
}

# --- relaying ---------------------------------------------------------------------

@test "all four egress paths over h2c: lgr-ws gets path and request, the client every message in order" {
	local t=$BATS_TEST_TMPDIR
	peer_start stream 50 700
	recv_start --grpc 127.0.0.1:0 --egress-relay "$SOCK"
	[[ $(grep 'proto=grpc' "$ERR") == *" tls=off egress_relay=$SOCK" ]]
	egress_is OK "$V2_BATCHED" 0a0573686172641a00 a
	egress_is OK "$V2_RECEIVER" 12020a00 b
	egress_is OK "$V1_BATCH" 0a03617070 c
	egress_is OK "$V1_SUBSCRIBE" "" d
	run -0 cat "$PD/events"
	same "open 1 $V2_BATCHED 0a0573686172641a00" "${lines[0]}"
	same "done 1" "${lines[1]}"
	same "open 2 $V2_RECEIVER 12020a00" "${lines[2]}"
	same "open 3 $V1_BATCH 0a03617070" "${lines[4]}"
	# An empty request message is relayed as an empty frame.
	same "open 4 $V1_SUBSCRIBE " "${lines[6]}"
	run_ok decode_count_is 50 "$t/a"
	same_file "$PD/sent.1" "$t/a"
	same_file "$PD/sent.2" "$t/b"
	same_file "$PD/sent.3" "$t/c"
	same_file "$PD/sent.4" "$t/d"
	recv_stop
	same "lgr-recv: level=info event=stop ingress_udp=0 ingress_grpc=0 ingress_statsd=0 dropped=0 relay_calls=4 relay_unavailable=0 relay_messages=200" "$STOP"
	run -0 grep -c "event=relay_end peer=127.0.0.1:[0-9]* path=/[A-Za-z0-9./]* socket=$SOCK status=0 messages=50 reason=\"\"" "$ERR"
	same 4 "$output"
}

# decode_count_is N FILE: FILE holds N frames (of any bytes).
decode_count_is() {
	local n
	n=$("$LGR_PYTHON" -c '
import struct, sys
d = open(sys.argv[1], "rb").read()
o = n = 0
while o + 4 <= len(d):
    o += 4 + struct.unpack(">I", d[o:o + 4])[0]
    n += 1
print(n if o == len(d) else -1)' "$2")
	same "$1" "$n"
}

@test "messages of megabytes, split over many reads, and empty ones arrive whole" {
	local t=$BATS_TEST_TMPDIR
	peer_start stream 12 3000000
	recv_start --grpc 127.0.0.1:0 --egress-relay "$SOCK"
	egress_is OK "$V2_BATCHED" 0a00 a
	same_file "$PD/sent.1" "$t/a"
	peer_start stream 30 0
	egress_is OK "$V2_RECEIVER" 0a00 b
	same_file "$PD/sent.1" "$t/b"
	recv_stop
}

@test "all four egress paths over mTLS: the messages arrive intact and in order" {
	local t=$BATS_TEST_TMPDIR
	certs_ready
	peer_start stream 40 5000
	recv_start --grpc 127.0.0.1:0 --egress-relay "$SOCK" "${MTLS[@]}"
	[[ $(grep 'proto=grpc' "$ERR") == *" tls=mtls egress_relay=$SOCK" ]]
	egress_is OK "$V2_BATCHED" 0a0101 a "${GOOD[@]}"
	egress_is OK "$V2_RECEIVER" 0a0102 b "${GOOD[@]}"
	egress_is OK "$V1_BATCH" 0a0103 c "${GOOD[@]}"
	egress_is OK "$V1_SUBSCRIBE" 0a0104 d "${GOOD[@]}"
	same_file "$PD/sent.1" "$t/a"
	same_file "$PD/sent.2" "$t/b"
	same_file "$PD/sent.3" "$t/c"
	same_file "$PD/sent.4" "$t/d"
	# No client certificate: the handshake fails, nothing reaches lgr-ws.
	egress_is UNAVAILABLE "$V2_BATCHED" 0a0105 e --ca "$CERTS/ca.crt"
	same 8 "$(wc -l <"$PD/events")"
	ingress_ok tls "${GOOD[@]}"
	recv_stop
	ingress_seen tls
}

@test "20 egress calls at once each get their own connection and their own messages" {
	local t=$BATS_TEST_TMPDIR i k pids=()
	peer_start stream 30 2000
	recv_start --grpc 127.0.0.1:0 --egress-relay "$SOCK"
	for i in $(seq 10 29); do
		py egress_client "$GRPC" "$V2_BATCHED" "0a01$i" "$t/got$i" \
		    >"$t/st$i" 2>"$t/got$i.err" 3>&- &
		pids+=($!)
	done
	for i in "${pids[@]}"; do
		wait "$i"
	done
	for i in $(seq 10 29); do
		same OK "$(cat "$t/st$i")"
		k=$(sed -n "s|^open \([0-9]*\) $V2_BATCHED 0a01$i\$|\1|p" "$PD/events")
		[ -n "$k" ]
		same_file "$PD/sent.$k" "$t/got$i"
	done
	recv_stop
	contains "$STOP" " relay_calls=20 relay_unavailable=0 relay_messages=600"
}

# --- how calls end ------------------------------------------------------------------

@test "lgr-ws refusing a call ends it with that status and message" {
	peer_start reject 3 "bad selector: 100% ünïcødé"
	recv_start --grpc 127.0.0.1:0 --egress-relay "$SOCK"
	egress_is INVALID_ARGUMENT "$V2_BATCHED" 0a00 a
	# grpc-message is percent-encoded on the wire: what would need
	# encoding is replaced.
	same "bad selector: 100? ??n??c??d??" "$(details a)"
	same 0 "$(stat -c %s "$BATS_TEST_TMPDIR/a")"
	peer_start reject 8 "max egress streams reached"
	egress_is RESOURCE_EXHAUSTED "$V1_SUBSCRIBE" 0a00 b
	same "max egress streams reached" "$(details b)"
	# A status past the gRPC codes is UNKNOWN.
	peer_start reject 99 odd
	egress_is UNKNOWN "$V1_BATCH" 0a00 c
	recv_stop
}

@test "a late status after some messages ends the call with it; the messages came first" {
	local t=$BATS_TEST_TMPDIR
	peer_start late 7 8 "slow consumer"
	recv_start --grpc 127.0.0.1:0 --egress-relay "$SOCK"
	egress_is RESOURCE_EXHAUSTED "$V2_RECEIVER" 0a00 a
	same "slow consumer" "$(details a)"
	same_file "$PD/sent.1" "$t/a"
	peer_start late 2 0 ""
	egress_is OK "$V2_RECEIVER" 0a00 b
	same_file "$PD/sent.1" "$t/b"
	recv_stop
	contains "$STOP" " relay_calls=2 relay_unavailable=0 relay_messages=9"
}

@test "lgr-ws ending inside a frame or without a status ends the call UNAVAILABLE" {
	local t=$BATS_TEST_TMPDIR
	peer_start cut 4
	recv_start --grpc 127.0.0.1:0 --egress-relay "$SOCK"
	egress_is UNAVAILABLE "$V2_BATCHED" 0a00 a
	same "egress relay: lgr-ws ended the connection inside a frame" "$(details a)"
	same_file "$PD/sent.1" "$t/a"
	peer_start close
	egress_is UNAVAILABLE "$V2_BATCHED" 0a00 b
	same "egress relay: lgr-ws closed the connection without a status" \
	    "$(details b)"
	recv_stop
	run -0 grep -c 'level=warn event=relay_end .* status=14 ' "$ERR"
	same 2 "$output"
}

@test "a frame over --grpc-max-message or a malformed status ends the call INTERNAL and closes the relay connection" {
	peer_start big 2000000
	recv_start --grpc 127.0.0.1:0 --egress-relay "$SOCK" \
	    --grpc-max-message 1000000
	egress_is INTERNAL "$V2_BATCHED" 0a00 a
	same "egress relay: a message of 2000000 bytes over the limit of 1000000" \
	    "$(details a)"
	wait_until 200 grep -q '^eof 1' "$PD/events"
	peer_start badstatus
	egress_is INTERNAL "$V1_BATCH" 0a00 b
	same "egress relay: lgr-ws sent a malformed status" "$(details b)"
	wait_until 200 event "eof 1"
	alive
	ingress_ok 1
	recv_stop
	ingress_seen 1
}

@test "lgr-ws absent: egress calls end UNAVAILABLE with a log line, and ingress works on the same port" {
	local t=$BATS_TEST_TMPDIR
	recv_start --grpc 127.0.0.1:0 --egress-relay "$SOCK"
	egress_is UNAVAILABLE "$V2_BATCHED" 0a00 a
	same "egress relay: lgr-ws is not reachable: no such file or directory" \
	    "$(details a)"
	ingress_ok 1
	egress_is UNAVAILABLE "$V1_SUBSCRIBE" 0a00 b
	ingress_ok 2
	# A socket nobody listens on any more.
	"$LGR_PYTHON" -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$SOCK"
	egress_is UNAVAILABLE "$V2_RECEIVER" 0a00 c
	same "egress relay: lgr-ws is not reachable: connection refused" "$(details c)"
	ingress_ok 3
	alive
	recv_stop
	ingress_seen 1
	ingress_seen 2
	ingress_seen 3
	run -0 grep -c "level=warn event=relay_end peer=127.0.0.1:[0-9]* path=/[A-Za-z0-9./]* socket=$SOCK status=14 messages=0 reason=\"egress relay: lgr-ws is not reachable: " "$ERR"
	same 3 "$output"
	same "lgr-recv: level=info event=stop ingress_udp=0 ingress_grpc=3 ingress_statsd=0 dropped=0 relay_calls=3 relay_unavailable=3 relay_messages=0" "$STOP"
}

@test "ingress goes on while an egress call streams on the same connection's port" {
	local t=$BATS_TEST_TMPDIR
	peer_start hold 3
	recv_start --grpc 127.0.0.1:0 --egress-relay "$SOCK"
	py egress_client --stall "$t/go" 2 "$GRPC" "$V2_BATCHED" 0a00 "$t/a" \
	    >"$t/st" 2>"$t/a.err" 3>&- &
	local cli=$!
	wait_until 200 event "sent 1"
	ingress_ok 1
	ingress_ok 2
	touch "$t/go"
	wait "$cli"
	same $'resumed\nCANCELLED' "$(cat "$t/st")"
	same_file "$PD/sent.1" "$t/a"
	wait_until 200 event "eof 1"
	recv_stop
	ingress_seen 1
	ingress_seen 2
}

# --- the client going away ---------------------------------------------------------

@test "a client that cancels closes the relay connection: lgr-ws sees EOF" {
	peer_start hold 5
	recv_start --grpc 127.0.0.1:0 --egress-relay "$SOCK"
	egress_is CANCELLED "$V2_RECEIVER" 0a00 a --cancel-after 2
	wait_until 200 event "eof 1"
	grep -q "event=relay_end .* path=$V2_RECEIVER socket=$SOCK status=cancelled " "$ERR"
	# A deadline is a cancel too, also before lgr-ws answered.
	peer_start silent
	egress_is DEADLINE_EXCEEDED "$V1_BATCH" 0a00 b --timeout 1
	wait_until 200 event "eof 1"
	alive
	recv_stop
}

@test "a client whose process dies closes the relay connection" {
	local t=$BATS_TEST_TMPDIR cli
	peer_start hold 3
	recv_start --grpc 127.0.0.1:0 --egress-relay "$SOCK"
	# Not through py: $! must be the client itself, not a subshell.
	"$LGR_PYTHON" "$BATS_TEST_DIRNAME/lgr-recv/egress_client.py" \
	    --stall "$t/never" 0 "$GRPC" "$V2_BATCHED" 0a00 "$t/a" \
	    >/dev/null 2>&1 3>&- &
	cli=$!
	wait_until 200 event "sent 1"
	wait_until 200 test -s "$t/a"
	kill -KILL "$cli"
	wait "$cli" || true
	wait_until 200 event "eof 1"
	alive
	recv_stop
}

@test "SIGTERM with calls open ends them, closes their relay connections, exits 0" {
	local t=$BATS_TEST_TMPDIR cli
	peer_start hold 1
	recv_start --grpc 127.0.0.1:0 --egress-relay "$SOCK"
	"$LGR_PYTHON" "$BATS_TEST_DIRNAME/lgr-recv/egress_client.py" \
	    --stall "$t/never" 0 "$GRPC" "$V2_BATCHED" 0a00 "$t/a" \
	    >"$t/st" 2>/dev/null 3>&- &
	cli=$!
	wait_until 200 event "sent 1"
	recv_stop
	wait_until 200 event "eof 1"
	contains "$STOP" " relay_calls=1 relay_unavailable=0 relay_messages=1"
	kill "$cli" 2>/dev/null || true
}

# --- flow control ---------------------------------------------------------------------

# rss_kb PID: the resident memory of PID in KiB.
rss_kb() {
	awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"
}

@test "a client that stops reading stops lgr-recv reading lgr-ws: memory stays bounded, nothing is lost" {
	local t=$BATS_TEST_TMPDIR cli l bytes rss
	peer_start flood 65536 2
	recv_start --grpc 127.0.0.1:0 --egress-relay "$SOCK"
	py egress_client --timeout 50 --stall "$t/go" 100 "$GRPC" \
	    "$V2_RECEIVER" 0a00 "$t/a" >"$t/st" 2>"$t/a.err" 3>&- &
	cli=$!
	# lgr-ws's writes block: lgr-recv no longer reads (the flood would
	# write 512 MiB and log "unblocked" otherwise).
	wait_until 400 grep -q '^blocked 1 ' "$PD/events"
	l=$(grep '^blocked 1 ' "$PD/events")
	bytes=${l##* }
	lgr_diag "lgr-ws wrote $bytes bytes before blocking"
	[ "$bytes" -lt $((64 << 20)) ]
	rss=$(rss_kb "$RECV_PID")
	lgr_diag "lgr-recv holds $rss KiB"
	[ "$rss" -lt $((64 << 10)) ]
	alive
	# The client reads again: the stream resumes where it stopped.
	touch "$t/go"
	wait "$cli"
	same $'resumed\nCANCELLED' "$(cat "$t/st")"
	run -0 "$LGR_PYTHON" -c '
import struct, sys
d = open(sys.argv[1], "rb").read()
o = i = 0
while o < len(d):
    n = struct.unpack(">I", d[o:o + 4])[0]
    m = d[o + 4:o + 4 + n]
    assert len(m) == 65536 and m.startswith(b"%d:" % i), (i, m[:10])
    o += 4 + n
    i += 1
print(i)' "$t/a"
	same 101 "$output"
	wait_until 200 event "eof 1"
	[ "$(rss_kb "$RECV_PID")" -lt $((64 << 10)) ]
	recv_stop
}

# --- self-metrics -------------------------------------------------------------------------

@test "--metrics-interval emits relay_calls, relay_unavailable and relay_messages" {
	local t=$BATS_TEST_TMPDIR
	peer_start stream 5 10
	recv_start --grpc 127.0.0.1:0 --egress-relay "$SOCK" \
	    --metrics-interval 0.1 --source-id probe
	egress_is OK "$V2_BATCHED" 0a00 a
	peer_stop
	egress_is UNAVAILABLE "$V2_BATCHED" 0a00 b
	wait_until 200 metrics_show "$OUT" \
	    "probe relay_calls origin=lgr-recv 2" \
	    "probe relay_unavailable origin=lgr-recv 1" \
	    "probe relay_messages origin=lgr-recv 5"
	recv_stop
}

# counters FILE: "source_id name tags total" per Counter envelope in FILE.
counters() {
	decode --json --partial "$1" >"$1.json" || return 1
	jq -r 'select(.counter) | [.source_id, .counter.name,
	    (.tags | to_entries | map("\(.key)=\(.value)") | join(",")),
	    .counter.total] | join(" ")' "$1.json"
}

# metrics_show FILE LINE...: FILE holds every counter LINE.
metrics_show() {
	local c l f=$1
	shift
	c=$(counters "$f") || return 1
	for l in "$@"; do
		grep -qx "$l" <<<"$c" || return 1
	done
}
