#!/usr/bin/env bats
# lib/grpccli: the BatchSender client lgr-route's grpc:// and grpcs://
# sinks send with. The driver t/grpccli-peer/send.c reads frames into a
# ring and sends them with grpccli_run (built with ASan and UBSan); the
# peer is t/grpccli-peer/ingress_server.py, a python3-grpcio Ingress
# server that writes what it gets as frames and as JSON lines. Inputs are
# made with lgr-emit and compared byte for byte and decoded with
# python3-protobuf.
#
# Servers listen on port 0 on loopback and print the port they got; the
# driver says on stderr when it connects. Waits poll for those, bounded.

load lib

setup_file() {
	make -s -C "$LGR_ROOT" build/asan/t/grpccli_send >&2
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

SEND=$LGR_ROOT/build/asan/t/grpccli_send
CERTS=$BATS_FILE_TMPDIR/certs
MTLS=(--ca "$BATS_FILE_TMPDIR/certs/ca.crt"
    --cert "$BATS_FILE_TMPDIR/certs/metron.crt"
    --key "$BATS_FILE_TMPDIR/certs/metron.key" --server-name doppler)

# --- servers -------------------------------------------------------------------

# server_start NAME ARGS...: start ingress_server.py ARGS in the
# background: envelopes to $T/NAME.frames and $T/NAME.jsonl, its log in
# $T/NAME.err. Waits (10 s at most) for the port it prints. Sets PORT
# and PID.
server_start() {
	local name=$1 t=$BATS_TEST_TMPDIR
	shift
	rm -f "$t/$name.port"
	"$LGR_PYTHON" "$BATS_TEST_DIRNAME/grpccli-peer/ingress_server.py" \
	    --out "$t/$name.jsonl" --frames "$t/$name.frames" "$@" \
	    </dev/null >"$t/$name.port" 2>"$t/$name.err" 3>&- {LGR_DIAG}>&- &
	PID=$!
	if ! wait_until 600 grep -qx '[0-9][0-9]*' "$t/$name.port"; then
		lgr_diag "ingress_server $* did not start; its log:"
		lgr_diag "$(cat "$t/$name.err")"
		return 1
	fi
	PORT=$(head -n 1 "$t/$name.port")
}

# got NAME: the envelopes server NAME has written so far.
got() {
	local f=$BATS_TEST_TMPDIR/$1.jsonl
	if [ -f "$f" ]; then
		wc -l <"$f" | tr -d ' '
	else
		echo 0
	fi
}

# got_at_least N NAME...: the servers named have N envelopes in all.
got_at_least() {
	local n=$1 sum=0 s
	shift
	for s in "$@"; do
		sum=$((sum + $(got "$s")))
	done
	[ "$sum" -ge "$n" ]
}

# wait_got N NAME...: wait (30 s at most) until the servers named have
# written N envelopes in all. The driver is done once its data is in the
# socket; a server busy with other suites may write it out later.
wait_got() {
	wait_until 600 got_at_least "$@"
}

# sizes NAME: the size of each message server NAME got, one a line.
sizes() {
	sed -n 's/.* event=message method=BatchSender size=\([0-9]*\)$/\1/p' \
	    "$BATS_TEST_TMPDIR/$1.err"
}

# --- the driver ----------------------------------------------------------------

# emit NAME ARGS...: lgr-emit ARGS, appended to $T/NAME.
emit() {
	local f=$BATS_TEST_TMPDIR/$1
	shift
	run_ok lgr-emit "$@" >>"$f"
}

# send ARGS... <FRAMES: run the driver to its end; it must exit 0.
send() {
	run_ok "$SEND" "$@" 2>"$BATS_TEST_TMPDIR/send.err" ||
	    { lgr_diag "$(cat "$BATS_TEST_TMPDIR/send.err")"; return 1; }
}

# send_start ARGS...: start the driver in the background, reading the
# fifo $T/send.fifo; write frames to fd $IN, end them with send_end.
send_start() {
	local fifo=$BATS_TEST_TMPDIR/send.fifo
	rm -f "$fifo"
	mkfifo "$fifo"
	# Read-write, so that neither end waits for the other to open.
	exec {IN}<>"$fifo"
	"$SEND" "$@" <"$fifo" >/dev/null 2>"$BATS_TEST_TMPDIR/send.err" \
	    3>&- {IN}>&- {LGR_DIAG}>&- &
	SEND_PID=$!
}

# send_end: end the input; the driver must exit 0.
send_end() {
	local st=0
	exec {IN}>&-
	wait "$SEND_PID" || st=$?
	if [ "$st" -ne 0 ]; then
		lgr_diag "the driver exited $st; its log:"
		lgr_diag "$(cat "$BATS_TEST_TMPDIR/send.err")"
		return 1
	fi
}

# logged N PATTERN: the driver's log has N lines or more matching PATTERN
# (an extended regular expression).
logged() {
	local n
	n=$(grep -cE "$2" "$BATS_TEST_TMPDIR/send.err")
	[ "$n" -ge "$1" ]
}

# stop KEY: KEY's value in the driver's final counts line.
stop() {
	local l
	l=$(last_line "$BATS_TEST_TMPDIR/send.err")
	[[ $l == "grpccli_send: level=info event=stop "* ]] ||
	    { lgr_diag "no stop line last: $l"; return 1; }
	field "$1" "$l"
}

# accounted: ingress == egress + dropped + ring_dropped.
accounted() {
	local in eg dr rd
	in=$(stop ingress) && eg=$(stop egress) && dr=$(stop dropped) &&
	    rd=$(stop ring_dropped) || return 1
	if [ "$in" -ne $((eg + dr + rd)) ]; then
		lgr_diag "ingress $in != egress $eg + dropped $dr + ring $rd"
		return 1
	fi
}

# mixed NAME: every kind of envelope lgr-emit makes, into $T/NAME.
mixed() {
	emit "$1" --count 300 --source-id app --instance-id 3 \
	    --tag source_type=APP/PROC/WEB log "hello, world"
	emit "$1" --count 20 --err --size 3000 log x
	emit "$1" --count 50 --total 10 counter requests 3
	emit "$1" gauge cpu=0.5:percentage memory=1024:bytes
	emit "$1" timer http 100 200
	emit "$1" --tag k=v event title body
}

# --- delivery ------------------------------------------------------------------

@test "h2c: delivers exactly the envelopes lgr-emit made, byte for byte" {
	local t=$BATS_TEST_TMPDIR
	mixed in
	server_start s
	send --drain-ms 30000 "127.0.0.1:$PORT" <"$t/in"
	wait_got 373 s
	same_file "$t/in" "$t/s.frames"
	decode --json "$t/in" >"$t/want.json"
	same_file "$t/want.json" "$t/s.jsonl"
	same 373 "$(stop egress)"
	same 0 "$(stop dropped)"
	accounted
	contains "$(cat "$t/send.err")" "event=grpc_connected target=127.0.0.1:$PORT addr=127.0.0.1:$PORT tls=no"
}

@test "mTLS: delivers to a server that checks the client's certificate" {
	local t=$BATS_TEST_TMPDIR
	mixed in
	server_start s --certs "$CERTS"
	send --drain-ms 30000 "${MTLS[@]}" "127.0.0.1:$PORT" <"$t/in"
	wait_got 373 s
	same_file "$t/in" "$t/s.frames"
	decode --json "$t/in" >"$t/want.json"
	same_file "$t/want.json" "$t/s.jsonl"
	same 373 "$(stop egress)"
	accounted
	contains "$(cat "$t/send.err")" "addr=127.0.0.1:$PORT tls=yes"
}

@test "IPv6: [::1]:PORT is an address like any other" {
	local t=$BATS_TEST_TMPDIR
	emit in --count 10 log six
	server_start s --listen '[::1]:0'
	send --drain-ms 30000 "[::1]:$PORT" <"$t/in"
	wait_got 10 s
	same_file "$t/in" "$t/s.frames"
	contains "$(cat "$t/send.err")" "addr=[::1]:$PORT"
}

# --- batching ------------------------------------------------------------------

@test "batches hold at most --batch envelopes" {
	local t=$BATS_TEST_TMPDIR s sum=0 max=0
	emit in --count 100 log b
	server_start s
	send --batch 7 --drain-ms 30000 "127.0.0.1:$PORT" <"$t/in"
	wait_got 100 s
	same_file "$t/in" "$t/s.frames"
	for s in $(sizes s); do
		sum=$((sum + s))
		[ "$s" -le 7 ] || { lgr_diag "a batch of $s"; false; }
		[ "$s" -gt "$max" ] && max=$s
	done
	same 100 "$sum"
	same 7 "$max"
	same "$(sizes s | wc -l)" "$(stop batches)"
}

@test "a batch that is not full leaves after --flush-ms" {
	local t=$BATS_TEST_TMPDIR
	emit in --count 3 log partial
	server_start s
	send_start --batch 100 --flush-ms 50 "127.0.0.1:$PORT"
	cat "$t/in" >&"$IN"
	# The input stays open: only the timer can send these.
	wait_until 600 got_at_least 3 s
	same 3 "$(sizes s)"
	send_end
	same 3 "$(stop egress)"
}

@test "an envelope over --max-message is dropped and logged, the rest go" {
	local t=$BATS_TEST_TMPDIR
	emit in --count 5 log small
	emit in --size 3000 log big
	emit in --count 5 log small
	server_start s
	send --max-message 1024 --drain-ms 30000 "127.0.0.1:$PORT" <"$t/in"
	wait_got 10 s
	same 10 "$(got s)"
	same 10 "$(stop egress)"
	same 1 "$(stop dropped)"
	accounted
	logged 1 'event=grpc_dropped reason="envelope over the message size" len=30[0-9][0-9] max_message=1024'
}

# --- several servers -------------------------------------------------------------

@test "batches are spread over two servers" {
	local t=$BATS_TEST_TMPDIR a b
	emit in --count 2000 log spread
	server_start a
	a=$PORT
	server_start b
	b=$PORT
	send_start --batch 10 --drain-ms 30000 "127.0.0.1:$a" "127.0.0.1:$b"
	wait_until 600 logged 2 'event=grpc_connected'
	cat "$t/in" >&"$IN"
	send_end
	wait_got 2000 a b
	same 2000 "$(($(got a) + $(got b)))"
	same 2000 "$(stop egress)"
	# Round robin while the queues are short: about half each.
	[ "$(got a)" -ge 600 ] && [ "$(got b)" -ge 600 ] ||
	    { lgr_diag "a got $(got a), b got $(got b)"; false; }
}

@test "a server killed mid-run: the other gets the rest, nothing unaccounted" {
	local t=$BATS_TEST_TMPDIR a b a_pid
	emit one --count 1000 --source-id one log first
	emit two --count 1000 --source-id two log second
	server_start a
	a=$PORT a_pid=$PID
	server_start b
	b=$PORT
	send_start --batch 10 --backoff-min 50 --backoff-max 200 \
	    --drain-ms 30000 "127.0.0.1:$a" "127.0.0.1:$b"
	wait_until 600 logged 2 'event=grpc_connected'
	cat "$t/one" >&"$IN"
	wait_got 1000 a b
	kill -KILL "$a_pid"
	wait "$a_pid" || true
	wait_until 600 logged 1 "event=grpc_disconnected target=127.0.0.1:$a "
	# It keeps trying the dead one, with backoff, while b carries on.
	wait_until 600 logged 1 "event=grpc_connect_failed target=127.0.0.1:$a .*retry_ms="
	cat "$t/two" >&"$IN"
	send_end
	wait_until 600 got_at_least 2000 a b
	same 1000 "$(grep -c '"source_id":"two"' "$t/b.jsonl")"
	same 2000 "$(stop ingress)"
	same 2000 "$(stop egress)"
	same 0 "$(stop dropped)"
	accounted
}

@test "a server killed while envelopes flow: each is sent or counted dropped" {
	local t=$BATS_TEST_TMPDIR a b a_pid emit_pid
	server_start a
	a=$PORT a_pid=$PID
	server_start b
	b=$PORT
	send_start --batch 20 --backoff-min 50 --backoff-max 200 \
	    --drain-ms 30000 "127.0.0.1:$a" "127.0.0.1:$b"
	wait_until 600 logged 2 'event=grpc_connected'
	lgr-emit --count 6000 --rate 4000 log flowing >&"$IN" 3>&- \
	    {LGR_DIAG}>&- &
	emit_pid=$!
	wait_until 600 got_at_least 1000 a b
	kill -KILL "$a_pid"
	wait "$a_pid" || true
	wait "$emit_pid"
	send_end
	same 6000 "$(stop ingress)"
	accounted
	# b got a share after the kill; what arrived was counted as sent.
	wait_got 1000 b
	[ $(($(got a) + $(got b))) -le "$(stop egress)" ]
	logged 1 "event=grpc_disconnected target=127.0.0.1:$a "
}

# --- failures ------------------------------------------------------------------

@test "a server down at start: retried with backoff, then delivered to" {
	local t=$BATS_TEST_TMPDIR port send_pid st=0
	emit in --count 500 log late
	# A port that was free a moment ago, and nothing listens on now.
	server_start gone
	port=$PORT
	kill -TERM "$PID"
	wait "$PID" || true
	"$SEND" --backoff-min 50 --backoff-max 400 --drain-ms 30000 \
	    "127.0.0.1:$port" <"$t/in" >/dev/null 2>"$t/send.err" 3>&- \
	    {LGR_DIAG}>&- &
	send_pid=$!
	wait_until 600 logged 2 "event=grpc_connect_failed target=127.0.0.1:$port .*reason=\"connection refused\""
	server_start s --listen "127.0.0.1:$port"
	wait "$send_pid" || st=$?
	same 0 "$st"
	wait_got 500 s
	same_file "$t/in" "$t/s.frames"
	same 500 "$(stop egress)"
	accounted
}

@test "a server its CA did not sign is refused, logged and retried" {
	local t=$BATS_TEST_TMPDIR
	emit in --count 100 log secret
	server_start s --certs "$CERTS"
	send_start --ca "$BATS_FILE_TMPDIR/other/ca.crt" \
	    --cert "$BATS_FILE_TMPDIR/other/client.crt" \
	    --key "$BATS_FILE_TMPDIR/other/client.key" --server-name doppler \
	    --backoff-min 50 --backoff-max 100 --drain-ms 300 \
	    "127.0.0.1:$PORT"
	cat "$t/in" >&"$IN"
	wait_until 600 logged 2 "event=grpc_connect_failed target=127.0.0.1:$PORT .*reason=\"tls handshake: certificate verify failed: "
	send_end
	same 0 "$(got s)"
	same 0 "$(stop egress)"
	same 100 "$(stop dropped)"
	same 0 "$(stop connects)"
	accounted
	logged 1 'event=grpc_drain_timeout dropped=100'
}

@test "a server certificate for another name is refused" {
	local t=$BATS_TEST_TMPDIR
	emit in --count 10 log named
	server_start s --certs "$CERTS"
	send_start --ca "$CERTS/ca.crt" --cert "$CERTS/metron.crt" \
	    --key "$CERTS/metron.key" --server-name reverselogproxy \
	    --drain-ms 300 "127.0.0.1:$PORT"
	cat "$t/in" >&"$IN"
	wait_until 600 logged 1 'reason="tls handshake: certificate verify failed: hostname mismatch"'
	send_end
	same 0 "$(got s)"
	accounted
}

@test "a stream the server fails is logged and reopened" {
	local t=$BATS_TEST_TMPDIR i
	server_start s --fail-after 3
	send_start --batch 10 --backoff-min 20 --backoff-max 100 \
	    --drain-ms 30000 "127.0.0.1:$PORT"
	wait_until 600 logged 1 'event=grpc_connected'
	# Three batches a round, and the server fails the stream after three.
	for i in 1 2 3; do
		emit "in$i" --count 30 log "round $i"
		cat "$t/in$i" >&"$IN"
		wait_until 600 logged "$i" "event=grpc_stream_failed addr=127.0.0.1:$PORT status=14 message=\"failing after 3 messages\" dropped=0"
	done
	send_end
	wait_got 90 s
	same 90 "$(got s)"
	same 90 "$(stop egress)"
	same 3 "$(stop stream_failures)"
	same 1 "$(stop connects)"
	accounted
}

@test "a server that stops answering is closed after a keepalive timeout" {
	local t=$BATS_TEST_TMPDIR a b a_pid
	emit in --count 1000 log alive
	server_start a
	a=$PORT a_pid=$PID
	server_start b
	b=$PORT
	send_start --keepalive-ms 1000 --connect-ms 5000 --drain-ms 30000 \
	    "127.0.0.1:$a" "127.0.0.1:$b"
	wait_until 600 logged 2 'event=grpc_connected'
	# Stopped, it still holds its sockets: only an unanswered PING tells.
	STOPPED=$a_pid
	kill -STOP "$a_pid"
	wait_until 600 logged 1 "event=grpc_disconnected target=127.0.0.1:$a .*reason=\"keepalive timeout\""
	cat "$t/in" >&"$IN"
	wait_got 1000 b
	kill -KILL "$a_pid"
	send_end
	same 1000 "$(stop egress)"
	accounted
}

@test "a server that stops reading: the drain deadline ends the run" {
	local t=$BATS_TEST_TMPDIR a_pid
	emit in --count 20000 --size 2000 log stuck
	server_start s
	a_pid=$PID
	send_start --drain-ms 500 "127.0.0.1:$PORT"
	wait_until 600 logged 1 'event=grpc_connected'
	STOPPED=$a_pid
	kill -STOP "$a_pid"
	cat "$t/in" >&"$IN"
	send_end
	kill -KILL "$a_pid"
	same 20000 "$(stop ingress)"
	[ "$(stop dropped)" -gt 0 ]
	accounted
	logged 1 'event=grpc_drain_timeout dropped=[1-9]'
}

@test "with every server down the ring drops its oldest; the writer never waits" {
	local t=$BATS_TEST_TMPDIR port
	emit in --count 1000 log nobody
	server_start gone
	port=$PORT
	kill -TERM "$PID"
	wait "$PID" || true
	send --size 100 --drain-ms 300 "127.0.0.1:$port" <"$t/in"
	same 1000 "$(stop ingress)"
	same 0 "$(stop egress)"
	[ "$(stop ring_dropped)" -ge 900 ]
	accounted
}

@test "a GOAWAY for pinging too often: reconnects and carries on" {
	local t=$BATS_TEST_TMPDIR
	emit in --count 100 log after
	# The server allows a ping every 10 s; one a second or two is abuse.
	server_start s
	send_start --keepalive-ms 1000 --backoff-min 20 --drain-ms 30000 \
	    "127.0.0.1:$PORT"
	wait_until 600 logged 1 'event=grpc_goaway .*code=ENHANCE_YOUR_CALM'
	wait_until 600 logged 2 'event=grpc_connected'
	cat "$t/in" >&"$IN"
	send_end
	wait_got 100 s
	same_file "$t/in" "$t/s.frames"
	same 100 "$(stop egress)"
}

@test "bad addresses are usage errors" {
	run -2 --separate-stderr "$SEND" 127.0.0.1 </dev/null
	contains "${stderr_lines[0]}" "'127.0.0.1' is not HOST:PORT"
	run -2 --separate-stderr "$SEND" ::1:80 </dev/null
	contains "${stderr_lines[0]}" "'::1:80' is not HOST:PORT"
	run -2 --separate-stderr "$SEND" host:0 </dev/null
	contains "${stderr_lines[0]}" "'host:0' is not HOST:PORT"
}
