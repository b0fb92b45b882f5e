#!/usr/bin/env bats
# lib/upcli: the server-streaming client lgr-ws subscribes to upstream
# dopplers with. The driver t/drivers/upcli_sub.c subscribes and writes
# every response message as a frame (built with ASan and UBSan, so a leak
# or a late callback fails it too); the peer is
# t/upcli-peer/egress_server.py, a python3-grpcio server of
# Egress/BatchedReceiver and Doppler/BatchSubscribe, which also plays a
# garbage server and a hand-made HTTP/2 server for hostile cases.
# t/upcli-peer/show.py decodes what the driver wrote with
# python3-protobuf.
#
# Servers listen on port 0 on loopback and print the port they got.
# Waits poll, bounded; the driver's own --timeout-ms bounds each run.

load lib

BATS_TEST_TIMEOUT=30

setup_file() {
	make -s -C "$LGR_ROOT" build/asan/t/upcli_sub >&2
	sh "$LGR_ROOT/share/lgr-certs" "$BATS_FILE_TMPDIR/certs" 2>/dev/null
	# A CA unrelated to the first, with a client certificate of its own.
	sh "$LGR_ROOT/share/lgr-certs" --only "$BATS_FILE_TMPDIR/other" \
	    client 2>/dev/null
}

# A server stopped with SIGSTOP would sit on lib.bash's SIGTERM: tests
# put its pid in STOPPED, and it is killed first.
eval "$(declare -f teardown | sed '1s/^teardown/lgr_teardown/')"
teardown() {
	if [ -n "${STOPPED-}" ]; then
		kill -KILL "$STOPPED" 2>/dev/null || true
	fi
	lgr_teardown
}

SUB=$LGR_ROOT/build/asan/t/upcli_sub
PEER=$BATS_TEST_DIRNAME/upcli-peer
CERTS=$BATS_FILE_TMPDIR/certs
V2=/loggregator.v2.Egress/BatchedReceiver
V1=/plumbing.Doppler/BatchSubscribe
MTLS=(--ca "$CERTS/ca.crt" --cert "$CERTS/trafficcontroller.crt"
    --key "$CERTS/trafficcontroller.key" --name doppler)

# --- servers -------------------------------------------------------------------

# server_start NAME ARGS...: start egress_server.py ARGS in the
# background, its log in $T/NAME.err. Waits (10 s at most) for the port
# it prints. Sets PORT and PID.
server_start() {
	local name=$1 t=$BATS_TEST_TMPDIR
	shift
	rm -f "$t/$name.port"
	"$LGR_PYTHON" "$PEER/egress_server.py" "$@" </dev/null \
	    >"$t/$name.port" 2>"$t/$name.err" 3>&- {LGR_DIAG}>&- &
	PID=$!
	if ! wait_until 200 grep -qx '[0-9][0-9]*' "$t/$name.port"; then
		lgr_diag "egress_server $* did not start; its log:"
		lgr_diag "$(cat "$t/$name.err")"
		return 1
	fi
	PORT=$(head -n 1 "$t/$name.port")
}

# server_stop PID: SIGKILL, and reap it.
server_stop() {
	kill -KILL "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

# free_port: a port nothing listens on (a server's, just stopped).
free_port() {
	server_start gone --garbage
	server_stop "$PID"
	FREE=$PORT
}

# --- the driver ----------------------------------------------------------------

# sub ARGS...: run the driver to its end, messages to $T/out, log to
# $T/sub.err. Sets $status; a signal fails the test.
sub() {
	run_sub "$SUB" "$@"
}

run_sub() {
	status=0
	"$@" >"$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/sub.err" \
	    {LGR_DIAG}>&- || status=$?
	if [ "$status" -gt 128 ] || grep -q 'Sanitizer' \
	    "$BATS_TEST_TMPDIR/sub.err"; then
		lgr_diag "upcli_sub died ($status); its log:"
		lgr_diag "$(cat "$BATS_TEST_TMPDIR/sub.err")"
		return 1
	fi
}

# sub_ok ARGS...: the driver must exit 0.
sub_ok() {
	sub "$@" || return 1
	if [ "$status" -ne 0 ]; then
		lgr_diag "upcli_sub exited $status, wanted 0; its log:"
		lgr_diag "$(cat "$BATS_TEST_TMPDIR/sub.err")"
		return 1
	fi
}

# sub_start ARGS...: the driver in the background; sub_wait ends it.
sub_start() {
	"$SUB" "$@" >"$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/sub.err" \
	    3>&- {LGR_DIAG}>&- &
	SUB_PID=$!
}

# sub_wait WANT: wait for the driver; it must exit WANT.
sub_wait() {
	local st=0
	wait "$SUB_PID" || st=$?
	if [ "$st" -ne "$1" ] || grep -q Sanitizer "$BATS_TEST_TMPDIR/sub.err"
	then
		lgr_diag "upcli_sub exited $st, wanted $1; its log:"
		lgr_diag "$(cat "$BATS_TEST_TMPDIR/sub.err")"
		return 1
	fi
}

# logged N PATTERN [FILE]: the driver's log (or FILE) has N lines or
# more matching PATTERN (an extended regular expression).
logged() {
	local n
	n=$(grep -cE "$2" "${3:-$BATS_TEST_TMPDIR/sub.err}")
	[ "$n" -ge "$1" ]
}

# stop KEY: KEY's value in the driver's final counts line.
stop() {
	local l
	l=$(last_line "$BATS_TEST_TMPDIR/sub.err")
	[[ $l == "upcli_sub: level=info event=stop "* ]] ||
	    { lgr_diag "no stop line last: $l"; return 1; }
	field "$1" "$l"
}

# show ARGS: the envelopes the driver wrote, decoded (show.py ARGS).
show() {
	"$LGR_PYTHON" "$PEER/show.py" --pb "$BATS_FILE_TMPDIR/pb" "$@" \
	    "$BATS_TEST_TMPDIR/out"
}

# seq_lines PREFIX FROM TO: "PREFIX n" for n from FROM to TO.
seq_lines() {
	local i
	for ((i = $2; i <= $3; i++)); do
		echo "$1 $i"
	done
}

# --- delivery ------------------------------------------------------------------

@test "h2c: messages arrive whole and in order, the request as given" {
	local t=$BATS_TEST_TMPDIR
	server_start s --count 100 --batch 3
	sub_ok --path "$V2" --req-hex 0a0361626322020a00 --count 100 \
	    --timeout-ms 10000 "127.0.0.1:$PORT"
	show >"$t/got"
	seq_lines app 0 299 >"$t/want"
	same_file "$t/want" "$t/got"
	same 100 "$(stop messages)"
	same 1 "$(stop connects)"
	same 0 "$(stop stream_failures)"
	logged 1 "event=upstream_connected target=127.0.0.1:$PORT addr=127.0.0.1:$PORT tls=no"
	logged 1 'event=state sub=0 addr_index=0 up=1 why="open"'
	logged 1 "event=call method=BatchedReceiver request=0a0361626322020a00 user_agent=lgr/" "$t/s.err"
}

@test "mTLS: v1 BatchSubscribe from a server named doppler" {
	local t=$BATS_TEST_TMPDIR
	server_start s --certs "$CERTS" --count 50 --source-id guid
	sub_ok "${MTLS[@]}" --path "$V1" --req-hex 12060a0467756964 \
	    --count 50 --timeout-ms 10000 "127.0.0.1:$PORT"
	show --v1 >"$t/got"
	seq_lines guid 0 49 >"$t/want"
	same_file "$t/want" "$t/got"
	logged 1 "event=upstream_connected target=127.0.0.1:$PORT .* tls=yes"
	logged 1 "event=call method=BatchSubscribe request=12060a0467756964 " "$t/s.err"
}

@test "IPv6: [::1]:PORT is an address like any other" {
	local t=$BATS_TEST_TMPDIR
	server_start s --listen '[::1]:0' --count 10
	sub_ok --path "$V2" --count 10 --timeout-ms 10000 "[::1]:$PORT"
	same 10 "$(show | wc -l)"
	logged 1 "event=upstream_connected target=\[::1\]:$PORT addr=\[::1\]:$PORT"
}

@test "two upstreams: messages from both are merged, each in order" {
	local t=$BATS_TEST_TMPDIR a b
	server_start a --count 50 --source-id a --interval-ms 2
	a=$PORT
	server_start b --count 50 --source-id b --interval-ms 2
	b=$PORT
	sub_ok --path "$V2" --count 100 --timeout-ms 10000 \
	    "127.0.0.1:$a" "127.0.0.1:$b"
	show >"$t/got"
	grep '^a ' "$t/got" >"$t/got.a"
	grep '^b ' "$t/got" >"$t/got.b"
	seq_lines a 0 49 >"$t/want.a"
	seq_lines b 0 49 >"$t/want.b"
	same_file "$t/want.a" "$t/got.a"
	same_file "$t/want.b" "$t/got.b"
	same 2 "$(stop connects)"
	logged 1 'event=state sub=0 addr_index=0 up=1'
	logged 1 'event=state sub=0 addr_index=1 up=1'
}

@test "one upstream down from the start: the other's messages still arrive" {
	local t=$BATS_TEST_TMPDIR
	free_port
	server_start s --count 30 --source-id live
	sub_ok --path "$V2" --count 30 --timeout-ms 10000 --backoff-min 50 \
	    --backoff-max 200 "127.0.0.1:$FREE" "127.0.0.1:$PORT"
	show >"$t/got"
	seq_lines live 0 29 >"$t/want"
	same_file "$t/want" "$t/got"
	same 1 "$(stop connects)"
	logged 1 "event=upstream_connect_failed target=127.0.0.1:$FREE .*reason=\"connection refused\""
	logged 1 'event=state sub=0 addr_index=0 up=0 why="connect failed: connection refused"'
	# Transitions only: one down, however many retries.
	same 1 "$(grep -c 'event=state sub=0 addr_index=0' "$t/sub.err")"
}

@test "many subscriptions share one connection, and cancel in a callback" {
	local t=$BATS_TEST_TMPDIR
	server_start s --count 300 --interval-ms 1
	sub_ok --path "$V2" --subs 20 --count 300 --timeout-ms 10000 \
	    "127.0.0.1:$PORT"
	same 300 "$(show | wc -l)"
	same 1 "$(stop connects)"
	logged 20 'event=call method=BatchedReceiver' "$t/s.err"
	logged 1 'event=state sub=19 addr_index=0 up=1'
}

@test "subscriptions cancelled and renewed inside callbacks while data flows" {
	local t=$BATS_TEST_TMPDIR
	server_start s --count 100000 --interval-ms 1
	sub_ok --path "$V2" --subs 5 --churn 40 --count 2000 \
	    --timeout-ms 14000 "127.0.0.1:$PORT"
	same 2000 "$(show | wc -l)"
	same 1 "$(stop connects)"
	# 5 at first and 49 renewals; the last few may not have got there.
	logged 40 'event=call method=BatchedReceiver' "$t/s.err"
	wait_until 200 logged 40 'event=call_end method=BatchedReceiver' "$t/s.err"
}

# --- streams that end -------------------------------------------------------------

@test "a server that ends the stream: the client reopens and continues" {
	local t=$BATS_TEST_TMPDIR
	server_start s --count 30 --end-after 10 --status 14
	sub_ok --path "$V2" --count 30 --timeout-ms 10000 --backoff-min 20 \
	    "127.0.0.1:$PORT"
	show >"$t/got"
	seq_lines app 0 29 >"$t/want"
	same_file "$t/want" "$t/got"
	same 1 "$(stop connects)"
	logged 2 "event=upstream_stream_ended target=127.0.0.1:$PORT addr=127.0.0.1:$PORT path=$V2 sub=1 status=14 message=\"ending after 10 messages\""
	logged 2 'event=state sub=0 addr_index=0 up=0 why="status 14: ending after 10 messages"'
	logged 3 'event=call method=BatchedReceiver' "$t/s.err"
}

@test "a server killed and restarted on its port: reconnected, messages again" {
	local t=$BATS_TEST_TMPDIR port
	server_start s1 --count 20
	port=$PORT
	sub_start --path "$V2" --count 40 --timeout-ms 14000 --backoff-min 50 \
	    --backoff-max 200 "127.0.0.1:$port"
	wait_until 200 has_messages 20
	server_stop "$PID"
	wait_until 200 logged 1 "event=upstream_disconnected target=127.0.0.1:$port "
	wait_until 200 logged 1 "event=upstream_connect_failed target=127.0.0.1:$port .*retry_ms="
	server_start s2 --listen "127.0.0.1:$port" --count 20
	sub_wait 0
	show >"$t/got"
	{ seq_lines app 0 19; seq_lines app 0 19; } >"$t/want"
	same_file "$t/want" "$t/got"
	same 2 "$(stop connects)"
	same 1 "$(stop disconnects)"
}

@test "a server stopping gracefully (GOAWAY): reconnected once it is back" {
	local t=$BATS_TEST_TMPDIR port
	server_start s1 --count 20
	port=$PORT
	sub_start --path "$V2" --count 40 --timeout-ms 14000 --backoff-min 50 \
	    --backoff-max 200 "127.0.0.1:$port"
	wait_until 200 has_messages 20
	kill -TERM "$PID"
	wait "$PID"
	wait_until 200 logged 1 "event=upstream_goaway target=127.0.0.1:$port "
	wait_until 200 logged 1 "event=upstream_connect_failed target=127.0.0.1:$port .*retry_ms="
	server_start s2 --listen "127.0.0.1:$port" --count 20
	sub_wait 0
	same 40 "$(show | wc -l)"
	same 2 "$(stop connects)"
}

# has_messages N: the driver wrote N messages or more.
has_messages() {
	local n
	n=$(decode_count) || return 1
	[ "$n" -ge "$1" ]
}

# decode_count: the whole frames in $T/out.
decode_count() {
	"$LGR_PYTHON" - "$BATS_TEST_TMPDIR/out" <<'EOF'
import struct, sys
d = open(sys.argv[1], "rb").read()
off = n = 0
while len(d) - off >= 4:
    (k,) = struct.unpack(">I", d[off:off + 4])
    if len(d) - off - 4 < k:
        break
    off += 4 + k
    n += 1
print(n)
EOF
}

@test "a message over max_message resets the stream, logged; it reopens" {
	local t=$BATS_TEST_TMPDIR
	server_start s --big-once 5000 --count 10
	sub_ok --path "$V2" --max-message 1024 --count 10 --timeout-ms 10000 \
	    --backoff-min 20 "127.0.0.1:$PORT"
	show >"$t/got"
	seq_lines app 0 9 >"$t/want"
	same_file "$t/want" "$t/got"
	logged 1 "event=upstream_stream_reset target=127.0.0.1:$PORT .*path=$V2 sub=1 reason=\"message of 50[0-9][0-9] bytes over max_message 1024\""
	same 1 "$(stop stream_failures)"
	same 1 "$(stop connects)"
	logged 2 'event=call method=BatchedReceiver' "$t/s.err"
}

# --- connections that fail ----------------------------------------------------------

@test "a server certificate for another name: refused, logged, retried" {
	local t=$BATS_TEST_TMPDIR
	server_start s --certs "$CERTS"
	sub --ca "$CERTS/ca.crt" --cert "$CERTS/trafficcontroller.crt" \
	    --key "$CERTS/trafficcontroller.key" --name reverselogproxy \
	    --path "$V2" --count 1 --timeout-ms 1500 --backoff-min 50 \
	    --backoff-max 100 "127.0.0.1:$PORT"
	same 1 "$status"
	logged 2 "event=upstream_connect_failed target=127.0.0.1:$PORT .*reason=\"tls handshake: certificate verify failed: hostname mismatch\""
	same 0 "$(stop connects)"
	same 0 "$(stop messages)"
	[ "$(stop connect_failures)" -ge 2 ]
	same 1 "$(grep -c 'event=state sub=0 addr_index=0 up=0' "$t/sub.err")"
}

@test "a server its CA did not sign: refused, logged, retried" {
	local t=$BATS_TEST_TMPDIR o=$BATS_FILE_TMPDIR/other
	server_start s --certs "$CERTS"
	sub --ca "$o/ca.crt" --cert "$o/client.crt" --key "$o/client.key" \
	    --name doppler --path "$V2" --count 1 --timeout-ms 1500 \
	    --backoff-min 50 --backoff-max 100 "127.0.0.1:$PORT"
	same 1 "$status"
	logged 2 "event=upstream_connect_failed target=127.0.0.1:$PORT .*reason=\"tls handshake: certificate verify failed: "
	same 0 "$(stop connects)"
}

@test "a server that answers garbage, not HTTP/2: logged, retried, no crash" {
	local t=$BATS_TEST_TMPDIR
	server_start s --garbage
	sub --path "$V2" --count 1 --timeout-ms 1500 --backoff-min 50 \
	    --backoff-max 100 "127.0.0.1:$PORT"
	same 1 "$status"
	logged 2 "event=upstream_connect_failed target=127.0.0.1:$PORT "
	same 0 "$(stop connects)"
	logged 2 'event=accept' "$t/s.err"
	# The same over TLS: the handshake fails on it.
	sub "${MTLS[@]}" --path "$V2" --count 1 --timeout-ms 1000 \
	    --backoff-min 50 --backoff-max 100 "127.0.0.1:$PORT"
	same 1 "$status"
	logged 2 "event=upstream_connect_failed target=127.0.0.1:$PORT .*reason=\"tls handshake: "
}

@test "a server that accepts and never speaks: connect timeout, retried" {
	local t=$BATS_TEST_TMPDIR
	server_start s --silent
	sub --path "$V2" --count 1 --timeout-ms 1500 --connect-ms 300 \
	    --backoff-min 50 --backoff-max 100 "127.0.0.1:$PORT"
	same 1 "$status"
	logged 2 "event=upstream_connect_failed target=127.0.0.1:$PORT .*reason=\"connect timeout\""
	same 0 "$(stop connects)"
}

@test "a server that stops answering is dropped after a keepalive timeout" {
	local t=$BATS_TEST_TMPDIR a b
	server_start a --count 1 --source-id a
	a=$PID
	server_start b --count 1000 --source-id b --interval-ms 5
	b=$PORT
	sub_start --path "$V2" --keepalive-ms 300 --count 200 \
	    --timeout-ms 14000 "127.0.0.1:$(head -n 1 "$t/a.port")" \
	    "127.0.0.1:$b"
	wait_until 200 logged 1 'event=state sub=0 addr_index=0 up=1'
	STOPPED=$a
	kill -STOP "$a"
	wait_until 200 logged 1 "event=upstream_disconnected .*reason=\"keepalive timeout\""
	sub_wait 0
	same 200 "$(show | wc -l)"
	logged 1 'event=state sub=0 addr_index=0 up=0 why="keepalive timeout"'
}

@test "an unimplemented method: the status is logged, retried with backoff" {
	local t=$BATS_TEST_TMPDIR
	server_start s
	sub --path /loggregator.v2.Egress/Receiver --count 1 --timeout-ms 1500 \
	    --backoff-min 100 --backoff-max 400 "127.0.0.1:$PORT"
	same 1 "$status"
	logged 2 'event=upstream_stream_ended .*path=/loggregator.v2.Egress/Receiver sub=1 status=12 '
	# Backoff: 100, 200, 400, 400 ms (less a quarter at most): few tries.
	[ "$(stop stream_failures)" -le 6 ]
	same 1 "$(stop connects)"
	same 1 "$(grep -c 'event=state sub=0 addr_index=0' "$t/sub.err")"
	logged 1 'event=state sub=0 addr_index=0 up=0 why="status 12: '
}

# --- hostile HTTP/2 ------------------------------------------------------------------

@test "raw HTTP/2: messages split over one-byte DATA frames are whole" {
	local t=$BATS_TEST_TMPDIR
	server_start s --raw-h2 split
	sub_ok --path "$V2" --count 3 --timeout-ms 5000 "127.0.0.1:$PORT"
	show --raw >"$t/got"
	printf '%s\n' one two three! >"$t/want"
	same_file "$t/want" "$t/got"
}

@test "raw HTTP/2: a compressed message resets the stream; it reopens" {
	local t=$BATS_TEST_TMPDIR
	server_start s --raw-h2 compressed
	sub --path "$V2" --count 1 --timeout-ms 1500 --backoff-min 50 \
	    --backoff-max 100 "127.0.0.1:$PORT"
	same 1 "$status"
	logged 2 'event=upstream_stream_reset .*reason="compressed message \(flag 1\): compression was not offered"'
	same 1 "$(stop connects)"
	[ "$(stop stream_failures)" -ge 2 ]
	logged 2 'event=call stream=' "$t/s.err"
}

@test "raw HTTP/2: a 4 GiB message prefix resets the stream" {
	local t=$BATS_TEST_TMPDIR
	server_start s --raw-h2 huge
	sub --path "$V2" --count 1 --timeout-ms 1000 --backoff-min 50 \
	    "127.0.0.1:$PORT"
	same 1 "$status"
	logged 1 'event=upstream_stream_reset .*reason="message of 4294967295 bytes over max_message 10485760"'
	same 1 "$(stop connects)"
}

@test "raw HTTP/2: trailers inside a message drop the part, status logged" {
	local t=$BATS_TEST_TMPDIR
	server_start s --raw-h2 cut
	sub_ok --path "$V2" --count 2 --timeout-ms 5000 --backoff-min 50 \
	    "127.0.0.1:$PORT"
	show --raw >"$t/got"
	printf '%s\n' whole whole >"$t/want"
	same_file "$t/want" "$t/got"
	logged 1 'event=upstream_stream_ended .*status=13 message="cut short"'
}

@test "raw HTTP/2: an answer that is not gRPC (404) is logged, retried" {
	local t=$BATS_TEST_TMPDIR
	server_start s --raw-h2 404
	sub --path "$V2" --count 1 --timeout-ms 1000 --backoff-min 50 \
	    "127.0.0.1:$PORT"
	same 1 "$status"
	logged 2 'event=upstream_stream_ended .*http_status=404'
	same 1 "$(stop connects)"
}

@test "raw HTTP/2: partial messages past --max-buffered reset a stream" {
	local t=$BATS_TEST_TMPDIR
	server_start s --raw-h2 half
	sub --path "$V2" --subs 2 --max-message 4096 --max-buffered 4096 \
	    --count 1 --timeout-ms 1000 --backoff-min 50 "127.0.0.1:$PORT"
	same 1 "$status"
	# One stream holds 3000 bytes or more; the other may not add 3000.
	logged 1 'event=upstream_stream_reset .*reason="[0-9]+ bytes already held in partial messages \(max_buffered 4096\)"'
	same 1 "$(stop connects)"
}

# --- usage -------------------------------------------------------------------------

@test "bad addresses are usage errors" {
	run -2 --separate-stderr "$SUB" --path "$V2" --count 1 \
	    --timeout-ms 10 127.0.0.1
	contains "${stderr_lines[0]}" "'127.0.0.1' is not HOST:PORT"
	run -2 --separate-stderr "$SUB" --path "$V2" --count 1 \
	    --timeout-ms 10 ::1:80
	contains "${stderr_lines[0]}" "'::1:80' is not HOST:PORT"
	run -2 --separate-stderr "$SUB" --path "$V2" --count 1 \
	    --timeout-ms 10 host:0
	contains "${stderr_lines[0]}" "'host:0' is not HOST:PORT"
}
