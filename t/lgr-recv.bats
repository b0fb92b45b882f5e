#!/usr/bin/env bats
# lgr-recv: envelopes in from the network (dropsonde over UDP, statsd over
# UDP, the v2 Ingress and v1 Pusher gRPC services over h2c and mTLS),
# frames out on stdout. The peers are real clients where Debian has them
# (python3-grpcio, python3-statsd) and python3-protobuf otherwise, driven
# by the helpers in t/lgr-recv/; what comes out is decoded with
# python3-protobuf and compared with what went in, with the golden vectors
# recorded from the Go agent and doppler, and with the conversion rules.
#
# Every listener binds port 0 on loopback; the real port is read from the
# listening line, once --notify-fd says lgr-recv is ready.

load lib

setup_file() {
	# The helpers import t/lgr-recv/lgrtest.py: no __pycache__ in the tree.
	export PYTHONDONTWRITEBYTECODE=1
	export LGR_PB=$BATS_FILE_TMPDIR/pb
	mkdir -p "$LGR_PB"
	protoc --python_out="$LGR_PB" -I "$LGR_ROOT/share/proto" \
	    v2/envelope.proto events/dropsonde.proto
}

# py NAME ARGS...: the helper t/lgr-recv/NAME.py, under Debian's python3.
py() {
	"$LGR_PYTHON" "$BATS_TEST_DIRNAME/lgr-recv/$1.py" "${@:2}"
}

# frames KIND NAME [--partial]: stdin, one line per frame (see
# t/lgr-recv/mkframes.py: v2 or v1 JSON, hex, text), into
# $BATS_TEST_TMPDIR/NAME as a frame stream.
frames() {
	local kind=$1 name=$2
	shift 2
	py mkframes "$kind" "$@" >"$BATS_TEST_TMPDIR/$name"
}

# --- starting and stopping ---------------------------------------------------

# recv_start ARGS...: start lgr-recv ARGS in the background, frames to
# $OUT and log to $ERR, and wait (10 s at most) for the newline on its
# --notify-fd. Sets RECV_PID, and UDP, STATSD and GRPC to the HOST:PORT of
# the first listener of each kind (from the listening lines).
recv_start() {
	local fifo=$BATS_TEST_TMPDIR/notify n=100 nfd
	OUT=$BATS_TEST_TMPDIR/out
	ERR=$BATS_TEST_TMPDIR/err
	rm -f "$fifo"
	mkfifo "$fifo"
	# Read-write, so neither open blocks; read -t bounds the wait.
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
	UDP=$(listen_addr udp) || UDP=
	STATSD=$(listen_addr statsd) || STATSD=
	GRPC=$(listen_addr grpc) || GRPC=
}

# listen_addr PROTO: HOST:PORT of the first listening line for PROTO.
listen_addr() {
	local l
	l=$(grep -m 1 "event=listening proto=$1 " "$ERR") || return 1
	field addr "$l"
}

# recv_stop: SIGTERM lgr-recv; it must exit 0 with the stop line last in
# its log. Sets STOP to that line.
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

# alive: lgr-recv is still running.
alive() {
	kill -0 "$RECV_PID" 2>/dev/null ||
	    { lgr_diag "lgr-recv is gone; its log:"; lgr_diag "$(cat "$ERR")"; return 1; }
}

# --- checks --------------------------------------------------------------------

# dropped REASON: the running total last logged for drop reason REASON
# (0 when none was logged).
dropped() {
	local l
	l=$(grep "event=dropped reason=$1 " "$ERR" | tail -n 1)
	if [ -z "$l" ]; then
		echo 0
	else
		field total "$l"
	fi
}

# same_envelopes WANT GOT: two frame streams decode to the same envelopes
# in the same order (maps compared as maps).
same_envelopes() {
	decode --json "$1" >"$1.json" || return 1
	decode --json "$2" >"$2.json" || return 1
	same_file "$1.json" "$2.json"
}

# call_is STATUS ARGS...: a grpc_client.py call that must end in STATUS.
call_is() {
	local want=$1 got err=$BATS_TEST_TMPDIR/call.$BASHPID.err
	shift
	got=$(py grpc_client "$@" 2>"$err") || {
		lgr_diag "grpc_client.py $* failed: $(cat "$err")"
		return 1
	}
	if [ "$got" != "$want" ]; then
		lgr_diag "grpc_client.py $*: wanted $want, got $got"
		lgr_diag "$(cat "$err")"
		return 1
	fi
}

# good_client TAG: a well-behaved client sends one log envelope, payload
# "good-TAG", over Sender, which must succeed; good_seen TAG: it came out.
good_client() {
	printf '{"source_id":"good","log":{"payload":"%s"}}\n' \
	    "$(printf 'good-%s' "$1" | base64)" | frames v2 "good-$1"
	call_is OK "$GRPC" sender "$BATS_TEST_TMPDIR/good-$1"
}

good_seen() {
	local p
	p=$(decode --payloads "$OUT") || return 1
	grep -qx "good-$1" <<<"$p" ||
	    { lgr_diag "good-$1 did not come out"; return 1; }
}

# --- command line ----------------------------------------------------------------

@test "--help prints the usage and every option on stdout and exits 0" {
	local flag
	run -0 --separate-stderr lgr-recv --help
	same "usage: lgr-recv [--udp ADDR]... [--grpc ADDR]... [--statsd ADDR]..." "${lines[0]}"
	for flag in --udp --grpc --statsd --tls-cert --tls-key --tls-ca \
	    --grpc-max-message --grpc-max-streams --grpc-max-conns \
	    --idle-timeout --tag --max-frame --metrics-interval --source-id \
	    --statsd-max-keys --notify-fd; do
		contains "$output" "  $flag "
	done
	contains "$output" "  -h, --help "
	contains "$output" "  -V, --version "
	same "" "$stderr"
}

@test "--version prints one line and exits 0" {
	run -0 --separate-stderr lgr-recv --version
	same 1 "${#lines[@]}"
	[[ ${lines[0]} =~ ^lgr-recv\ [0-9]+\.[0-9]+ ]]
	same "" "$stderr"
}

@test "nothing to listen on is a usage error" {
	run -2 --separate-stderr lgr-recv
	same "lgr-recv: nothing to listen on: give --udp, --grpc or --statsd" "${stderr_lines[0]}"
	[[ ${stderr_lines[1]} == "usage: lgr-recv "* ]]
	same "" "$output"
	run -2 --separate-stderr lgr-recv --tag a=b --max-frame 100
	same "lgr-recv: nothing to listen on: give --udp, --grpc or --statsd" "${stderr_lines[0]}"
}

@test "TLS files given without their partner are usage errors" {
	run -2 --separate-stderr lgr-recv --grpc 127.0.0.1:0 --tls-cert /nonexistent
	same "lgr-recv: --tls-cert and --tls-key go together" "${stderr_lines[0]}"
	run -2 --separate-stderr lgr-recv --grpc 127.0.0.1:0 --tls-key /nonexistent
	same "lgr-recv: --tls-cert and --tls-key go together" "${stderr_lines[0]}"
	run -2 --separate-stderr lgr-recv --grpc 127.0.0.1:0 --tls-ca /nonexistent
	same "lgr-recv: --tls-ca needs --tls-cert and --tls-key" "${stderr_lines[0]}"
	same "" "$output"
}

@test "an unknown option or an argument is a usage error" {
	run -2 --separate-stderr lgr-recv --udp 127.0.0.1:0 --listen x
	same "lgr-recv: unknown option --listen" "${stderr_lines[0]}"
	run -2 --separate-stderr lgr-recv --udp 127.0.0.1:0 extra
	same "lgr-recv: unexpected argument 'extra'" "${stderr_lines[0]}"
	run -2 --separate-stderr lgr-recv --udp
	same "lgr-recv: option --udp needs a value" "${stderr_lines[0]}"
}

@test "bad numbers are usage errors naming the option" {
	local flag args
	while read -r flag args; do
		# shellcheck disable=SC2086
		run -2 --separate-stderr timeout 10 lgr-recv --udp 127.0.0.1:0 $args
		[[ ${stderr_lines[0]} == "lgr-recv: "*"$flag"* ]] ||
		    { lgr_diag "$args: ${stderr_lines[0]}"; false; }
		[[ ${stderr_lines[1]} == "usage: lgr-recv "* ]]
		same "" "$output"
	done <<-'EOF'
	--grpc-max-message --grpc-max-message 1023
	--grpc-max-message --grpc-max-message 67108865
	--grpc-max-message --grpc-max-message 4MB
	--grpc-max-streams --grpc-max-streams 0
	--grpc-max-streams --grpc-max-streams 100001
	--grpc-max-streams --grpc-max-streams -5
	--grpc-max-conns --grpc-max-conns 0
	--grpc-max-conns --grpc-max-conns 100001
	--idle-timeout --idle-timeout -1
	--idle-timeout --idle-timeout 86401
	--idle-timeout --idle-timeout 1.5
	--max-frame --max-frame 15
	--max-frame --max-frame 67108865
	--max-frame --max-frame big
	--metrics-interval --metrics-interval -1
	--metrics-interval --metrics-interval 86401
	--metrics-interval --metrics-interval soon
	--metrics-interval --metrics-interval nan
	--statsd-max-keys --statsd-max-keys 0
	--statsd-max-keys --statsd-max-keys 10000001
	--notify-fd --notify-fd 2
	--notify-fd --notify-fd 1024
	--notify-fd --notify-fd three
	--tag --tag novalue
	--tag --tag =value
	EOF
}

@test "a --notify-fd that is not open is a usage error" {
	run -2 --separate-stderr lgr-recv --udp 127.0.0.1:0 --notify-fd 9 9>&-
	same "lgr-recv: --notify-fd 9 is not open" "${stderr_lines[0]}"
}

@test "a malformed listen address is a usage error" {
	local spec bad=
	for spec in "--udp 127.0.0.1" "--udp 127.0.0.1:" "--grpc :http" \
	    "--statsd [::1" "--statsd [::1]3457" "--grpc 127.0.0.1:-1" \
	    "--udp 127.0.0.1:12ab"; do
		# shellcheck disable=SC2086
		run --separate-stderr timeout 5 lgr-recv $spec
		no_signal
		if [ "$status" -ne 2 ] || [[ $stderr != "lgr-recv: "* ]]; then
			bad="$bad"$'\n'"lgr-recv $spec: exit $status, $stderr"
		fi
	done
	[ -z "$bad" ] || { lgr_diag "wanted exit 2 from:$bad"; false; }
}

@test "a port past 65535 is a usage error, not another port" {
	local spec bad=
	for spec in "--grpc 127.0.0.1:65536" "--udp 127.0.0.1:99999" \
	    "--statsd 127.0.0.1:70000"; do
		# Were the port taken modulo 65536, lgr-recv would listen; timeout
		# ends that.
		# shellcheck disable=SC2086
		run --separate-stderr timeout 5 lgr-recv $spec
		no_signal
		if [ "$status" -ne 2 ]; then
			bad="$bad"$'\n'"lgr-recv $spec: exit $status, $stderr"
		fi
	done
	[ -z "$bad" ] || { lgr_diag "wanted exit 2 from:$bad"; false; }
}

@test "a port in use exits 1 with listen_failed, for each protocol" {
	local proto
	recv_start --udp 127.0.0.1:0 --grpc 127.0.0.1:0
	for proto in grpc udp statsd; do
		local addr=$GRPC
		[ "$proto" = grpc ] || addr=$UDP
		must_fail -1 lgr-recv "--$proto" "$addr" \
		    2>"$BATS_TEST_TMPDIR/err2" </dev/null
		run -0 cat "$BATS_TEST_TMPDIR/err2"
		same 1 "${#lines[@]}"
		[[ ${lines[0]} == "lgr-recv: level=error event=listen_failed proto=$proto addr=$addr reason="* ]] ||
		    { lgr_diag "${lines[0]}"; false; }
	done
	alive
	recv_stop
}

@test "TLS files that cannot be read exit 1 with tls_load_failed" {
	must_fail -1 lgr-recv --grpc 127.0.0.1:0 --tls-cert /nonexistent/cert \
	    --tls-key /nonexistent/key 2>"$BATS_TEST_TMPDIR/err" </dev/null
	run -0 cat "$BATS_TEST_TMPDIR/err"
	[[ ${lines[0]} == "lgr-recv: level=error event=tls_load_failed reason="*"/nonexistent/cert"* ]]
}

# --- gRPC over h2c ---------------------------------------------------------------

# Envelopes of every kind and odd corners: binary payloads, deprecated tags
# of each Value type, a negative timestamp, the largest total, non-ASCII
# text, and an empty envelope (a zero-byte message).
mixed_envelopes() {
	frames v2 "$1" <<-'EOF'
	{"timestamp":"1700000000000000001","source_id":"app-1","instance_id":"0","tags":{"source_type":"APP/PROC/WEB"},"log":{"payload":"aGVsbG8gd29ybGQ=","type":"OUT"}}
	{"timestamp":"1700000000000000002","source_id":"app-1","instance_id":"1","log":{"payload":"AP9hCsMoAA==","type":"ERR"}}
	{"timestamp":"-5","source_id":"gorouter","counter":{"name":"requests","delta":"5","total":"18446744073709551615"}}
	{"timestamp":"1700000000000000003","source_id":"rep","deprecated_tags":{"origin":{"text":"rep"},"n":{"integer":"-42"},"d":{"decimal":0.5}},"gauge":{"metrics":{"cpu":{"unit":"percentage","value":12.5},"memory":{"unit":"bytes","value":1048576}}}}
	{"timestamp":"1700000000000000004","source_id":"gorouter","tags":{"request_id":"0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"},"timer":{"name":"http","start":"1700000000000000000","stop":"1700000000000000004"}}
	{"timestamp":"1700000000000000005","source_id":"ünïcødé ✓","event":{"title":"app crashed","body":"exit status 137"}}
	{}
	EOF
}

@test "Sender, BatchSender and Send over h2c: what comes out is exactly what was sent" {
	local t=$BATS_TEST_TMPDIR
	mixed_envelopes in
	recv_start --grpc 127.0.0.1:0
	[[ $(grep 'proto=grpc' "$ERR") == *" tls=off" ]]
	call_is OK "$GRPC" sender "$t/in"
	call_is OK "$GRPC" batch "$t/in" 3
	call_is OK "$GRPC" batch "$t/in"
	call_is OK "$GRPC" send "$t/in"
	recv_stop
	cat "$t/in" "$t/in" "$t/in" "$t/in" >"$t/want"
	same_file "$t/want" "$OUT"
	same_envelopes "$t/want" "$OUT"
	same "lgr-recv: level=info event=stop ingress_udp=0 ingress_grpc=28 ingress_statsd=0 dropped=0" "$STOP"
}

@test "concurrent clients on IPv4 and IPv6 listeners all come through" {
	local t=$BATS_TEST_TMPDIR i v6 pids=()
	mixed_envelopes in
	recv_start --grpc 127.0.0.1:0 --grpc '[::1]:0'
	v6=$(grep 'event=listening proto=grpc addr=\[::1\]' "$ERR")
	v6=$(field addr "$v6")
	for i in 1 2 3; do
		call_is OK "$GRPC" sender "$t/in" 3>&- &
		pids+=($!)
	done
	call_is OK "$v6" batch "$t/in" 2
	for i in "${pids[@]}"; do
		wait "$i"
	done
	recv_stop
	run -0 decode --count "$OUT"
	same 28 "$output"
	same "lgr-recv: level=info event=stop ingress_udp=0 ingress_grpc=28 ingress_statsd=0 dropped=0" "$STOP"
}

@test "Pusher converts v1 to v2 with preferred tags, as doppler (golden set A)" {
	local t=$BATS_TEST_TMPDIR
	run_ok py golden "$LGR_ROOT/t/golden/v1_to_v2.jsonl" \
	    "usePreferredTags=true" "$t/g"
	run -0 wc -l <"$t/g/cases"
	same 14 "$output"
	recv_start --grpc 127.0.0.1:0
	call_is OK "$GRPC" pusher "$t/g/in.frames"
	recv_stop
	same_envelopes "$t/g/want.frames" "$OUT"
	same "lgr-recv: level=info event=stop ingress_udp=0 ingress_grpc=14 ingress_statsd=0 dropped=0" "$STOP"
}

@test "Pusher skips and counts payloads that are not dropsonde; the stream goes on" {
	local t=$BATS_TEST_TMPDIR
	frames v1 ok <<-'EOF'
	{"origin":"o","eventType":"LogMessage","timestamp":"1","logMessage":{"message":"Zmlyc3Q=","messageType":"OUT","timestamp":"1"}}
	EOF
	frames v1 incomplete --partial <<-'EOF'
	{"origin":"o","eventType":"LogMessage","logMessage":{"message":"bm8gdHlwZQ=="}}
	EOF
	frames hex junk <<-'EOF'
	deadbeef

	EOF
	cat "$t/ok" "$t/junk" "$t/incomplete" "$t/ok" >"$t/in"
	recv_start --grpc 127.0.0.1:0
	call_is OK "$GRPC" pusher "$t/in"
	recv_stop
	run -0 decode --payloads "$OUT"
	same $'first\nfirst' "$output"
	same 3 "$(dropped bad_v1_payload)"
	same "lgr-recv: level=info event=stop ingress_udp=0 ingress_grpc=2 ingress_statsd=0 dropped=3" "$STOP"
}

@test "an unknown method fails UNIMPLEMENTED and nothing comes out" {
	local t=$BATS_TEST_TMPDIR
	mixed_envelopes in
	recv_start --grpc 127.0.0.1:0
	call_is UNIMPLEMENTED "$GRPC" stream /loggregator.v2.Ingress/Nope "$t/in"
	call_is UNIMPLEMENTED "$GRPC" unary /no.Such/Method "$t/in"
	call_is UNIMPLEMENTED "$GRPC" stream /loggregator.v2.Egress/BatchedReceiver "$t/in"
	call_is UNIMPLEMENTED "$GRPC" unary /loggregator.v2.Egress/Receiver "$t/in"
	good_client 1
	recv_stop
	run -0 decode --count "$OUT"
	same 1 "$output"
	good_seen 1
	run -0 grep -c 'event=grpc_call_failed .* status=12 ' "$ERR"
	same 4 "$output"
}

@test "--tag adds tags a gRPC envelope lacks and leaves its own alone" {
	local t=$BATS_TEST_TMPDIR
	frames v2 in <<-'EOF'
	{"source_id":"s","tags":{"a":"keep"},"deprecated_tags":{"b":{"integer":"7"}},"log":{"payload":"eA=="}}
	{"source_id":"t","tags":{"d":""},"counter":{"name":"c","delta":"1"}}
	{"source_id":"u","deprecated_tags":{"c":{"text":"dep"}},"event":{"title":"x","body":"y"}}
	EOF
	frames v2 want <<-'EOF'
	{"source_id":"s","tags":{"a":"keep","c":"newer","d":"x"},"deprecated_tags":{"b":{"integer":"7"}},"log":{"payload":"eA=="}}
	{"source_id":"t","tags":{"a":"new","b":"new","c":"newer","d":""},"counter":{"name":"c","delta":"1"}}
	{"source_id":"u","tags":{"a":"new","b":"new","d":"x"},"deprecated_tags":{"c":{"text":"dep"}},"event":{"title":"x","body":"y"}}
	EOF
	# A key given twice: the last value counts.
	recv_start --grpc 127.0.0.1:0 --tag a=new --tag b=new --tag c=new \
	    --tag c=newer --tag d=x
	call_is OK "$GRPC" sender "$t/in"
	call_is OK "$GRPC" batch "$t/in"
	call_is OK "$GRPC" send "$t/in"
	recv_stop
	cat "$t/want" "$t/want" "$t/want" >"$t/want3"
	same_envelopes "$t/want3" "$OUT"
}

@test "a client that half-closes gets OK, also with no message at all" {
	local t=$BATS_TEST_TMPDIR
	: >"$t/none"
	recv_start --grpc 127.0.0.1:0
	call_is OK "$GRPC" sender "$t/none"
	call_is OK "$GRPC" batch "$t/none"
	call_is OK "$GRPC" pusher "$t/none"
	# Send is unary: the client sends one empty batch.
	call_is OK "$GRPC" send "$t/none"
	recv_stop
	[ ! -s "$OUT" ]
}

# --- gRPC over mTLS ------------------------------------------------------------------

# certs_ready: share/lgr-certs makes, once per file, a CA with metron and
# client certificates in $CERTS, and in $OTHER an unrelated CA with its
# own metron and client certificates. Sets MTLS to lgr-recv's flags for
# mTLS as metron, and GOOD to grpc_client.py's for a client of that CA.
certs_ready() {
	CERTS=$BATS_FILE_TMPDIR/certs
	OTHER=$BATS_FILE_TMPDIR/other
	MTLS=(--tls-cert "$CERTS/metron.crt" --tls-key "$CERTS/metron.key"
	    --tls-ca "$CERTS/ca.crt")
	GOOD=(--ca "$CERTS/ca.crt" --cert "$CERTS/client.crt"
	    --key "$CERTS/client.key")
	[ -f "$OTHER/client.crt" ] && return 0
	run_ok "$LGR_ROOT/share/lgr-certs" --only "$CERTS" metron client \
	    2>"$BATS_FILE_TMPDIR/certs.log"
	run_ok "$LGR_ROOT/share/lgr-certs" --only "$OTHER" metron client \
	    2>>"$BATS_FILE_TMPDIR/certs.log"
}

@test "Sender, BatchSender, Send and Pusher over mTLS: what comes out is exactly what was sent" {
	local t=$BATS_TEST_TMPDIR
	certs_ready
	mixed_envelopes in
	run_ok py golden "$LGR_ROOT/t/golden/v1_to_v2.jsonl" \
	    "usePreferredTags=true" "$t/g"
	recv_start --grpc 127.0.0.1:0 "${MTLS[@]}"
	[[ $(grep 'proto=grpc' "$ERR") == *" tls=mtls" ]]
	call_is OK "${GOOD[@]}" "$GRPC" sender "$t/in"
	call_is OK "${GOOD[@]}" "$GRPC" batch "$t/in" 2
	call_is OK "${GOOD[@]}" "$GRPC" send "$t/in"
	# A component's own certificate is a client certificate too.
	call_is OK --ca "$CERTS/ca.crt" --cert "$CERTS/metron.crt" \
	    --key "$CERTS/metron.key" "$GRPC" pusher "$t/g/in.frames"
	recv_stop
	cat "$t/in" "$t/in" "$t/in" "$t/g/want.frames" >"$t/want"
	same_envelopes "$t/want" "$OUT"
	# The v2 envelopes pass byte for byte.
	head -c "$(($(stat -c %s "$t/in") * 3))" "$OUT" >"$t/head"
	cat "$t/in" "$t/in" "$t/in" >"$t/want3"
	same_file "$t/want3" "$t/head"
	same "lgr-recv: level=info event=stop ingress_udp=0 ingress_grpc=35 ingress_statsd=0 dropped=0" "$STOP"
}

@test "mTLS refuses a client with another CA's certificate or none; a good client still works" {
	local t=$BATS_TEST_TMPDIR seed
	certs_ready
	mixed_envelopes in
	recv_start --grpc 127.0.0.1:0 "${MTLS[@]}"
	call_is UNAVAILABLE --ca "$CERTS/ca.crt" --cert "$OTHER/client.crt" \
	    --key "$OTHER/client.key" "$GRPC" sender "$t/in"
	call_is UNAVAILABLE --ca "$CERTS/ca.crt" "$GRPC" sender "$t/in"
	call_is UNAVAILABLE --ca "$CERTS/ca.crt" "$GRPC" send "$t/in"
	# Not even TLS.
	call_is UNAVAILABLE "$GRPC" sender "$t/in"
	for seed in 1 2 3; do
		run -0 py h2raw "$GRPC" garbage "$seed" 2000
		same closed "$output"
	done
	alive
	run -0 grep -c 'event=grpc_conn_closed peer=127.0.0.1:[0-9]* reason="tls' "$ERR"
	[ "$output" -ge 4 ]
	call_is OK "${GOOD[@]}" "$GRPC" sender "$t/in"
	recv_stop
	same_file "$t/in" "$OUT"
	same "lgr-recv: level=info event=stop ingress_udp=0 ingress_grpc=7 ingress_statsd=0 dropped=0" "$STOP"
}

@test "TLS without --tls-ca takes clients without a certificate" {
	local t=$BATS_TEST_TMPDIR
	certs_ready
	mixed_envelopes in
	recv_start --grpc 127.0.0.1:0 --tls-cert "$CERTS/metron.crt" \
	    --tls-key "$CERTS/metron.key"
	[[ $(grep 'proto=grpc' "$ERR") == *" tls=on" ]]
	call_is OK --ca "$CERTS/ca.crt" "$GRPC" sender "$t/in"
	call_is UNAVAILABLE "$GRPC" sender "$t/in"
	recv_stop
	same_file "$t/in" "$OUT"
}

@test "SIGHUP reloads the certificate, key and CA; unreadable ones keep the old" {
	local t=$BATS_TEST_TMPDIR mine other
	certs_ready
	mixed_envelopes in
	cp "$CERTS/metron.crt" "$t/srv.crt"
	cp "$CERTS/metron.key" "$t/srv.key"
	cp "$CERTS/ca.crt" "$t/ca.crt"
	mine=("${GOOD[@]}")
	other=(--ca "$OTHER/ca.crt" --cert "$OTHER/client.crt" --key "$OTHER/client.key")
	recv_start --grpc 127.0.0.1:0 --tls-cert "$t/srv.crt" --tls-key "$t/srv.key" \
	    --tls-ca "$t/ca.crt"
	call_is OK "${mine[@]}" "$GRPC" sender "$t/in"
	call_is UNAVAILABLE "${other[@]}" "$GRPC" sender "$t/in"

	cp "$OTHER/metron.crt" "$t/srv.crt"
	cp "$OTHER/metron.key" "$t/srv.key"
	cp "$OTHER/ca.crt" "$t/ca.crt"
	kill -HUP "$RECV_PID"
	wait_until 200 grep -q 'event=signal signal=HUP action=reloaded_certificates' "$ERR"
	call_is OK "${other[@]}" "$GRPC" sender "$t/in"
	call_is UNAVAILABLE "${mine[@]}" "$GRPC" sender "$t/in"

	echo garbage >"$t/srv.crt"
	kill -HUP "$RECV_PID"
	wait_until 200 grep -q 'event=signal signal=HUP action=kept_old_certificates' "$ERR"
	run -0 grep -c 'event=tls_load_failed' "$ERR"
	same 1 "$output"
	call_is OK "${other[@]}" "$GRPC" sender "$t/in"
	alive
	recv_stop
	cat "$t/in" "$t/in" "$t/in" >"$t/want"
	same_file "$t/want" "$OUT"
}

# --- gRPC: hostile clients ----------------------------------------------------------

@test "random bytes to the gRPC port close that connection; lgr-recv lives on" {
	local seed
	recv_start --grpc 127.0.0.1:0
	for seed in 1 2 3 4 5; do
		run -0 py h2raw "$GRPC" garbage "$seed" $((seed * 3000))
		same closed "$output"
		alive
	done
	good_client 1
	recv_stop
	good_seen 1
	run -0 grep -c 'event=grpc_conn_closed' "$ERR"
	[ "$output" -ge 5 ]
}

@test "a protobuf with a wrong wire type fails INVALID_ARGUMENT and is counted" {
	local t=$BATS_TEST_TMPDIR
	# Envelope field 2 (source_id) as a varint; field 1 of a batch as a
	# varint; a length past the end.
	frames hex bad <<-'EOF'
	1005
	EOF
	frames hex badbatch <<-'EOF'
	0805
	EOF
	frames hex short <<-'EOF'
	1264616263
	EOF
	frames hex shortdata <<-'EOF'
	0a05ab
	EOF
	recv_start --grpc 127.0.0.1:0
	call_is INVALID_ARGUMENT "$GRPC" sender "$t/bad"
	call_is INVALID_ARGUMENT "$GRPC" sender "$t/short"
	call_is INVALID_ARGUMENT "$GRPC" batch "$t/bad"
	call_is INVALID_ARGUMENT "$GRPC" send "$t/bad"
	call_is INVALID_ARGUMENT "$GRPC" stream /loggregator.v2.Ingress/BatchSender "$t/badbatch"
	call_is INVALID_ARGUMENT "$GRPC" unary /loggregator.v2.Ingress/Send "$t/badbatch"
	call_is INVALID_ARGUMENT "$GRPC" stream /plumbing.DopplerIngestor/Pusher "$t/shortdata"
	good_client 1
	recv_stop
	good_seen 1
	run -0 decode --count "$OUT"
	same 1 "$output"
	same 7 "$(dropped bad_grpc_message)"
	same "lgr-recv: level=info event=stop ingress_udp=0 ingress_grpc=1 ingress_statsd=0 dropped=7" "$STOP"
}

@test "a batch holding one malformed envelope is refused whole, each envelope counted" {
	local t=$BATS_TEST_TMPDIR
	frames v2 a <<-'EOF'
	{"source_id":"a","log":{"payload":"YQ=="}}
	EOF
	frames hex b <<-'EOF'
	1005
	EOF
	cat "$t/a" "$t/b" "$t/a" "$t/a" >"$t/in"
	recv_start --grpc 127.0.0.1:0
	call_is INVALID_ARGUMENT "$GRPC" send "$t/in"
	call_is INVALID_ARGUMENT "$GRPC" batch "$t/in"
	recv_stop
	[ ! -s "$OUT" ]
	same 8 "$(dropped bad_grpc_message)"
	same "lgr-recv: level=info event=stop ingress_udp=0 ingress_grpc=0 ingress_statsd=0 dropped=8" "$STOP"
}

# big_log NAME BYTES: one log envelope of exactly BYTES bytes (up to 125,
# or 140 and more) into NAME.
big_log() {
	# source_id "b" takes 3 bytes; the log field and its payload field
	# take 2 bytes of header each, or 3 when their length needs 2 bytes.
	local n=$(($2 - 3 - 2 - 2))
	[ "$2" -ge 140 ] && n=$(($2 - 3 - 3 - 3))
	printf '{"source_id":"b","log":{"payload":"%s"}}\n' \
	    "$(head -c "$n" /dev/zero | tr '\0' x | base64 -w 0)" | frames v2 "$1"
	run -0 stat -c %s "$BATS_TEST_TMPDIR/$1"
	same $(($2 + 4)) "$output"
}

@test "a message over --grpc-max-message fails RESOURCE_EXHAUSTED; one at the limit passes" {
	local t=$BATS_TEST_TMPDIR
	big_log fits 1024
	big_log over 1025
	recv_start --grpc 127.0.0.1:0 --grpc-max-message 1024
	call_is RESOURCE_EXHAUSTED "$GRPC" sender "$t/over"
	call_is RESOURCE_EXHAUSTED "$GRPC" send "$t/over"
	call_is OK "$GRPC" sender "$t/fits"
	recv_stop
	same_file "$t/fits" "$OUT"
	run -0 grep -c 'event=grpc_call_failed .* status=8 reason="message of 1025 bytes over the limit of 1024"' "$ERR"
	same 1 "$output"
}

# random_logs NAME BYTES...: one log envelope per BYTES, its payload that
# many random bytes, into NAME.
random_logs() {
	local f=$BATS_TEST_TMPDIR/$1
	shift
	"$LGR_PYTHON" - "$f" "$@" <<-'EOF'
	import os, sys
	sys.path.insert(0, os.environ["LGR_PB"])
	from v2 import envelope_pb2
	with open(sys.argv[1], "wb") as f:
	    for n in sys.argv[2:]:
	        e = envelope_pb2.Envelope(source_id="big")
	        e.log.payload = os.urandom(int(n))
	        b = e.SerializeToString()
	        f.write(len(b).to_bytes(4, "big") + b)
	EOF
}

@test "messages of megabytes, split over many reads, come out whole" {
	local t=$BATS_TEST_TMPDIR
	# The last one is just under the 4 MiB default, batch header included.
	random_logs in 3145728 65536 4194280 1
	recv_start --grpc 127.0.0.1:0 --max-frame 8388608
	call_is OK "$GRPC" sender "$t/in"
	call_is OK "$GRPC" batch "$t/in" 1
	recv_stop
	cat "$t/in" "$t/in" >"$t/want"
	same_file "$t/want" "$OUT"
}

# partial_bounded FILE: h2raw.py partial's answer in FILE shows the server
# holding some calls' partial messages and refusing the rest for room.
partial_bounded() {
	local pending failed
	pending=$(grep -c ' pending$' "$1") || true
	failed=$(grep -c ' failed$' "$1") || true
	[ "$pending" -gt 0 ] && [ "$pending" -le 16 ] &&
	    [ $((pending + failed)) -eq 20 ]
}

# big_call_ok: a client's 2 MiB message (split over reads, so buffered)
# goes through.
big_call_ok() {
	[ "$(py grpc_client "$GRPC" sender "$BATS_TEST_TMPDIR/big" 2>/dev/null)" = OK ]
}

@test "partial messages held at once are bounded, and freed when their client goes" {
	local t=$BATS_TEST_TMPDIR
	random_logs big 2097152
	recv_start --grpc 127.0.0.1:0
	# 20 calls that each announce 4 MiB and send a byte: 64 MiB is held at
	# most, the rest fail RESOURCE_EXHAUSTED.
	run_ok py h2raw "$GRPC" partial 20 4194304 >"$t/partial"
	partial_bounded "$t/partial" ||
	    { lgr_diag "$(sort -k 2 "$t/partial" | uniq -c -f 1)"; false; }
	run -0 grep -c 'event=grpc_call_failed .* status=8 reason="server buffers are full"' "$ERR"
	[ "$output" -gt 0 ]
	alive
	# That client is gone, and its buffers with it: a good client's big
	# message is taken again.
	wait_until 50 big_call_ok
	run_ok py h2raw "$GRPC" partial 20 4194304 >"$t/partial2"
	partial_bounded "$t/partial2" ||
	    { lgr_diag "$(sort -k 2 "$t/partial2" | uniq -c -f 1)"; false; }
	recv_stop
}

@test "an envelope over --max-frame is skipped and counted as too_large; the call succeeds" {
	local t=$BATS_TEST_TMPDIR
	big_log small 100
	big_log large 101
	cat "$t/large" "$t/small" >"$t/in"
	recv_start --grpc 127.0.0.1:0 --max-frame 100
	call_is OK "$GRPC" sender "$t/in"
	recv_stop
	same_file "$t/small" "$OUT"
	same 1 "$(dropped too_large)"
	same "lgr-recv: level=info event=stop ingress_udp=0 ingress_grpc=1 ingress_statsd=0 dropped=1" "$STOP"
}

@test "--max-frame counts the tags --tag adds" {
	local t=$BATS_TEST_TMPDIR
	big_log a 91
	big_log b 92
	cat "$t/a" "$t/b" >"$t/in"
	# The tag entry zz=1 takes 9 bytes: field 9's key and length, then the
	# key field (4) and the value field (3). 91 + 9 fits in 100; 92 + 9
	# does not.
	recv_start --grpc 127.0.0.1:0 --max-frame 100 --tag zz=1
	call_is OK "$GRPC" sender "$t/in"
	recv_stop
	run -0 decode --count "$OUT"
	same 1 "$output"
	run -0 stat -c %s "$OUT"
	same 104 "$output"
	same 1 "$(dropped too_large)"
}

@test "a compressed message fails UNIMPLEMENTED" {
	local t=$BATS_TEST_TMPDIR
	# Big and repetitive: grpcio sends a message uncompressed when
	# compressing it saves nothing.
	big_log in 10000
	recv_start --grpc 127.0.0.1:0
	call_is UNIMPLEMENTED --gzip "$GRPC" sender "$t/in"
	good_client 1
	recv_stop
	run -0 decode --count "$OUT"
	same 1 "$output"
}

@test "1000 concurrent Sender calls on one channel: each succeeds or is refused" {
	local t=$BATS_TEST_TMPDIR
	recv_start --grpc 127.0.0.1:0
	run_ok py grpc_client --timeout 30 "$GRPC" many 1000 >"$t/calls"
	run -0 awk '$2 != "OK" && $2 != "UNAVAILABLE" && $2 != "RESOURCE_EXHAUSTED" { print }' "$t/calls"
	same "" "$output"
	run -0 wc -l <"$t/calls"
	same 1000 "$output"
	alive
	good_client 1
	recv_stop
	# Exactly the calls that succeeded came out, once each.
	awk '$2 == "OK" { print "call-" $1 }' "$t/calls" | sort >"$t/want"
	run_ok decode --payloads "$OUT" >"$t/payloads"
	grep -v '^good-' "$t/payloads" | sort >"$t/got"
	same_file "$t/want" "$t/got"
	good_seen 1
}

@test "a client that opens 1000 streams past the limit: each is answered or refused" {
	local t=$BATS_TEST_TMPDIR hostile st=0
	recv_start --grpc 127.0.0.1:0 --grpc-max-streams 10
	py h2raw "$GRPC" streams 1000 >"$t/streams" 3>&- &
	hostile=$!
	good_client 0
	wait "$hostile" || st=$?
	same 0 "$st"
	run -0 awk '$1 != "goaway" && $2 != "ok" && $2 != "refused" { print }' "$t/streams"
	same "" "$output"
	run -0 grep -c ' refused$' "$t/streams"
	[ "$output" -gt 0 ]
	alive
	good_client 1
	recv_stop
	awk '$2 == "ok" { print "raw-" $1 }' "$t/streams" | sort >"$t/want"
	run_ok decode --payloads "$OUT" >"$t/payloads"
	grep -v '^good-' "$t/payloads" | sort >"$t/got"
	same_file "$t/want" "$t/got"
	good_seen 0
	good_seen 1
}

@test "connections past --grpc-max-conns are closed at once and logged" {
	recv_start --grpc 127.0.0.1:0 --grpc-max-conns 3
	run -0 py h2raw "$GRPC" conns 5
	same $'0 open\n1 open\n2 open\n3 closed\n4 closed' "$output"
	run -0 grep -c 'event=grpc_conn_refused peer=127.0.0.1:[0-9]* reason=max_conns max=3' "$ERR"
	same 2 "$output"
	# Those were let go: there is room again.
	good_client 1
	recv_stop
	good_seen 1
}

@test "--idle-timeout closes a connection that sends nothing, and logs it" {
	recv_start --grpc 127.0.0.1:0 --idle-timeout 1
	run -0 py h2raw "$GRPC" idle
	same closed "$output"
	wait_until 100 grep -q 'event=grpc_conn_closed peer=127.0.0.1:[0-9]* reason="idle"' "$ERR"
	good_client 1
	recv_stop
	good_seen 1
}

# --- dropsonde over UDP ----------------------------------------------------------------

@test "dropsonde datagrams convert as the udp-forwarder does (golden set A)" {
	local t=$BATS_TEST_TMPDIR
	run_ok py golden "$LGR_ROOT/t/golden/v1_to_v2.jsonl" udp-forwarder "$t/g"
	run -0 cut -d ' ' -f 3 "$t/g/cases"
	same deployment=agent-deployment,index=agent-index,ip=10.9.8.7,job=agent-job \
	    "$(sort -u <<<"$output")"
	frames v1 marker <<-'EOF'
	{"origin":"marker","eventType":"LogMessage","logMessage":{"message":"ZW5k","messageType":"OUT","timestamp":"1"}}
	EOF
	cat "$t/g/in.frames" "$t/marker" >"$t/in"
	recv_start --udp 127.0.0.1:0 --tag deployment=agent-deployment \
	    --tag job=agent-job --tag index=agent-index --tag ip=10.9.8.7
	run_ok py udpsend "$UDP" "$t/in"
	wait_until 200 has_frames 14 "$OUT"
	recv_stop
	decode --json "$t/g/want.frames" >"$t/want.json"
	run_ok decode --json "$OUT" >"$t/all.json"
	head -n 13 "$t/all.json" >"$t/got.json"
	same_file "$t/want.json" "$t/got.json"
	# type_mismatch: a ValueMetric whose body is a LogMessage.
	same 1 "$(dropped invalid_envelope)"
	same "lgr-recv: level=info event=stop ingress_udp=14 ingress_grpc=0 ingress_statsd=0 dropped=1" "$STOP"
}

# Each v1 event type with and without the BOSH fields, as python3-protobuf
# builds them; the v2 forms below follow SPEC section 3 by hand.
@test "every dropsonde event type converts by the rules; --tag fills what is absent" {
	local t=$BATS_TEST_TMPDIR
	frames v1 in <<-'EOF'
	{"origin":"rep","eventType":"LogMessage","timestamp":"1700000000000000001","deployment":"cf","job":"diego-cell","index":"idx-1","ip":"10.0.0.5","tags":{"az":"z1"},"logMessage":{"message":"aGVsbG8=","messageType":"ERR","timestamp":"1700000000000000000","appId":"app-guid","sourceType":"APP/PROC/WEB","sourceInstance":"3"}}
	{"origin":"bosh-metrics","eventType":"ValueMetric","timestamp":"2","valueMetric":{"name":"temperature","value":-273.15,"unit":"celsius"}}
	{"origin":"gorouter","eventType":"CounterEvent","timestamp":"3","deployment":"","job":"router","tags":{"instance_id":"7","source_id":"my-src"},"counterEvent":{"name":"requests","delta":"5","total":"105"}}
	{"origin":"rep","eventType":"ContainerMetric","timestamp":"4","deployment":"cf","job":"diego-cell","index":"0","ip":"10.0.0.6","containerMetric":{"applicationId":"app-2","instanceIndex":4,"cpuPercentage":12.5,"memoryBytes":"1048576","diskBytes":"2048","memoryBytesQuota":"4194304","diskBytesQuota":"8192"}}
	{"origin":"gorouter","eventType":"HttpStartStop","timestamp":"5","deployment":"cf","job":"router","index":"1","ip":"10.0.1.2","httpStartStop":{"startTimestamp":"100","stopTimestamp":"250","requestId":{"low":"578437695752307201","high":"1157159078456920585"},"peerType":"Client","method":"PUT","uri":"http://app.example.com/x","remoteAddress":"10.0.0.9:1234","userAgent":"python","statusCode":204,"contentLength":"0","applicationId":{"low":"1229782938247303441","high":"2459565876494606882"},"instanceIndex":3,"instanceId":"ri-1","forwarded":["a","b","c"]}}
	{"origin":"cc","eventType":"Error","timestamp":"6","deployment":"cf","job":"api","index":"0","ip":"10.0.2.3","tags":{"extra":"mine"},"error":{"source":"api","code":503,"message":"service unavailable"}}
	EOF
	frames v2 want <<-'EOF'
	{"timestamp":"1700000000000000001","source_id":"app-guid","instance_id":"3","tags":{"__v1_type":"LogMessage","origin":"rep","deployment":"cf","job":"diego-cell","index":"idx-1","ip":"10.0.0.5","source_type":"APP/PROC/WEB","az":"z1","extra":"E"},"log":{"payload":"aGVsbG8=","type":"ERR"}}
	{"timestamp":"2","source_id":"bosh-metrics","tags":{"__v1_type":"ValueMetric","origin":"bosh-metrics","deployment":"D","job":"J","index":"I","ip":"9.9.9.9","az":"ZZ","extra":"E"},"gauge":{"metrics":{"temperature":{"unit":"celsius","value":-273.15}}}}
	{"timestamp":"3","source_id":"my-src","instance_id":"7","tags":{"__v1_type":"CounterEvent","origin":"gorouter","deployment":"","job":"router","index":"I","ip":"9.9.9.9","az":"ZZ","extra":"E"},"counter":{"name":"requests","delta":"5","total":"105"}}
	{"timestamp":"4","source_id":"app-2","instance_id":"4","tags":{"__v1_type":"ContainerMetric","origin":"rep","deployment":"cf","job":"diego-cell","index":"0","ip":"10.0.0.6","az":"ZZ","extra":"E"},"gauge":{"metrics":{"cpu":{"unit":"percentage","value":12.5},"memory":{"unit":"bytes","value":1048576},"disk":{"unit":"bytes","value":2048},"memory_quota":{"unit":"bytes","value":4194304},"disk_quota":{"unit":"bytes","value":8192}}}}
	{"timestamp":"5","source_id":"11111111-1111-1111-2222-222222222222","instance_id":"3","tags":{"__v1_type":"HttpStartStop","origin":"gorouter","deployment":"cf","job":"router","index":"1","ip":"10.0.1.2","request_id":"01020304-0506-0708-090a-0b0c0d0e0f10","peer_type":"Client","method":"PUT","uri":"http://app.example.com/x","remote_address":"10.0.0.9:1234","user_agent":"python","status_code":"204","content_length":"0","routing_instance_id":"ri-1","forwarded":"a\nb\nc","az":"ZZ","extra":"E"},"timer":{"name":"http","start":"100","stop":"250"}}
	{"timestamp":"6","source_id":"cc","tags":{"__v1_type":"Error","origin":"cc","deployment":"cf","job":"api","index":"0","ip":"10.0.2.3","source":"api","code":"503","extra":"mine","az":"ZZ"},"log":{"payload":"c2VydmljZSB1bmF2YWlsYWJsZQ==","type":"OUT"}}
	EOF
	recv_start --udp 127.0.0.1:0 --tag deployment=D --tag job=J --tag index=I \
	    --tag ip=9.9.9.9 --tag az=ZZ --tag origin=ORIG --tag extra=E
	run_ok py udpsend "$UDP" "$t/in"
	wait_until 200 has_frames 6 "$OUT"
	recv_stop
	same_envelopes "$t/want" "$OUT"
	same "lgr-recv: level=info event=stop ingress_udp=6 ingress_grpc=0 ingress_statsd=0 dropped=0" "$STOP"
}

@test "without --tag the BOSH fields a datagram lacks stay empty" {
	local t=$BATS_TEST_TMPDIR
	frames v1 in <<-'EOF'
	{"origin":"o","eventType":"CounterEvent","timestamp":"9","counterEvent":{"name":"c","delta":"2"}}
	EOF
	frames v2 want <<-'EOF'
	{"timestamp":"9","source_id":"o","tags":{"__v1_type":"CounterEvent","origin":"o","deployment":"","job":"","index":"","ip":""},"counter":{"name":"c","delta":"2"}}
	EOF
	recv_start --udp 127.0.0.1:0
	run_ok py udpsend "$UDP" "$t/in"
	wait_until 200 has_frames 1 "$OUT"
	recv_stop
	same_envelopes "$t/want" "$OUT"
}

@test "random bytes on UDP are counted as bad_datagram; good datagrams still get through" {
	local t=$BATS_TEST_TMPDIR
	"$LGR_PYTHON" - "$t/junk" <<-'EOF'
	import random, struct, sys
	rng = random.Random(42)
	with open(sys.argv[1], "wb") as f:
	    for i in range(200):
	        body = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 3000)))
	        f.write(struct.pack(">I", len(body)) + body)
	EOF
	frames v1 good <<-'EOF'
	{"origin":"o","eventType":"LogMessage","logMessage":{"message":"Z29vZA==","messageType":"OUT","timestamp":"1"}}
	EOF
	frames v1 incomplete --partial <<-'EOF'
	{"origin":"o","eventType":"ValueMetric","valueMetric":{"name":"no-unit","value":1}}
	{"eventType":"LogMessage","logMessage":{"message":"bm8gb3JpZ2lu","messageType":"OUT","timestamp":"1"}}
	EOF
	frames hex empty <<-'EOF'

	EOF
	cat "$t/junk" "$t/good" "$t/incomplete" "$t/empty" "$t/good" >"$t/in"
	recv_start --udp 127.0.0.1:0
	run_ok py udpsend "$UDP" "$t/in"
	wait_until 200 has_frames 2 "$OUT"
	alive
	recv_stop
	run -0 decode --payloads "$OUT"
	same $'good\ngood' "$output"
	same 203 "$(dropped bad_datagram)"
	same "lgr-recv: level=info event=stop ingress_udp=2 ingress_grpc=0 ingress_statsd=0 dropped=203" "$STOP"
}

@test "a dropsonde body that does not match its event type is counted as invalid_envelope" {
	local t=$BATS_TEST_TMPDIR
	frames v1 in <<-'EOF'
	{"origin":"o","eventType":"CounterEvent","valueMetric":{"name":"v","value":1,"unit":"u"}}
	{"origin":"o","eventType":"LogMessage"}
	{"origin":"o","eventType":"Error","timestamp":"1","error":{"source":"s","code":1,"message":"last"}}
	EOF
	recv_start --udp 127.0.0.1:0
	run_ok py udpsend "$UDP" "$t/in"
	wait_until 200 has_frames 1 "$OUT"
	recv_stop
	run -0 decode --payloads "$OUT"
	same last "$output"
	same 2 "$(dropped invalid_envelope)"
}

# --- statsd ---------------------------------------------------------------------

# statsd_values FILE: "source_id name unit value origin-tag" per envelope.
statsd_values() {
	decode --json "$1" >"$1.json" || return 1
	jq -r '[.source_id, (.gauge.metrics | keys[0]),
	    (.gauge.metrics[] | .unit, (.value | tostring)), .tags.origin,
	    (.tags | length | tostring), .instance_id] | join(" ")' "$1.json"
}

@test "python3-statsd counters, gauges and timers become v2 gauges with running values" {
	local t=$BATS_TEST_TMPDIR before after ts
	recv_start --statsd 127.0.0.1:0
	before=$(date +%s%N)
	run_ok py statsd_client "$STATSD" myapp <<-'EOF'
	c.incr("requests")
	c.incr("requests", 4, rate=0.5)
	c.decr("requests", 3)
	c.decr("requests", 1, rate=0.25)
	c.gauge("queue", 42)
	c.gauge("queue", 8, delta=True)
	c.gauge("queue", -50, delta=True)
	c.gauge("queue", -7)
	c.gauge("queue", 2.5)
	c.timing("db.query", 320)
	c.timing("db.query", 12.5, rate=0.1)
	c.incr("api.hits")
	c.incr("api.hits", 2)
	EOF
	wait_until 200 has_frames 14 "$OUT"
	after=$(date +%s%N)
	recv_stop
	run -0 statsd_values "$OUT"
	same "myapp requests counter 1 myapp 1 " "${lines[0]}"
	same "myapp requests counter 9 myapp 1 " "${lines[1]}"
	same "myapp requests counter 6 myapp 1 " "${lines[2]}"
	same "myapp requests counter 2 myapp 1 " "${lines[3]}"
	same "myapp queue gauge 42 myapp 1 " "${lines[4]}"
	same "myapp queue gauge 50 myapp 1 " "${lines[5]}"
	same "myapp queue gauge 0 myapp 1 " "${lines[6]}"
	# A negative gauge is sent as "0|g" then "-7|g" in one datagram.
	same "myapp queue gauge 0 myapp 1 " "${lines[7]}"
	same "myapp queue gauge -7 myapp 1 " "${lines[8]}"
	same "myapp queue gauge 2.5 myapp 1 " "${lines[9]}"
	same "myapp db.query ms 320 myapp 1 " "${lines[10]}"
	same "myapp db.query ms 125 myapp 1 " "${lines[11]}"
	same "myapp api.hits counter 1 myapp 1 " "${lines[12]}"
	same "myapp api.hits counter 3 myapp 1 " "${lines[13]}"
	same 14 "${#lines[@]}"
	# Stamped when received.
	run -0 jq -r .timestamp "$OUT.json"
	for ts in "${lines[@]}"; do
		[ "$ts" -ge "$before" ] && [ "$ts" -le "$after" ] ||
		    { lgr_diag "timestamp $ts not within [$before, $after]"; false; }
	done
	same "lgr-recv: level=info event=stop ingress_udp=0 ingress_grpc=0 ingress_statsd=14 dropped=0" "$STOP"
}

@test "statsd lines: tags, several lines a datagram, and bad lines counted" {
	local t=$BATS_TEST_TMPDIR
	frames text in <<-'EOF'
	web.hits:1|c|#env:prod,zone:z1
	web.latency:12|ms\nweb.hits:2|c\nnot a metric\nweb.temp:-3.5|g
	web.x:1|c|#origin:other,a:b:c
	web.bad:1|c|#novalue
	web.rate:5|c|@0.5|#k:v
	.nope:1|c
	web.last:1|g
	EOF
	recv_start --statsd 127.0.0.1:0
	run_ok py udpsend "$STATSD" "$t/in"
	wait_until 200 has_frames 7 "$OUT"
	recv_stop
	decode --json "$OUT" >"$t/got.json"
	run -0 jq -c '[.source_id, .gauge.metrics, .tags]' "$t/got.json"
	same '["web",{"hits":{"unit":"counter","value":1}},{"env":"prod","origin":"web","zone":"z1"}]' "${lines[0]}"
	same '["web",{"latency":{"unit":"ms","value":12}},{"origin":"web"}]' "${lines[1]}"
	same '["web",{"hits":{"unit":"counter","value":3}},{"origin":"web"}]' "${lines[2]}"
	same '["web",{"temp":{"unit":"gauge","value":-3.5}},{"origin":"web"}]' "${lines[3]}"
	same '["web",{"x":{"unit":"counter","value":1}},{"a":"b","origin":"other"}]' "${lines[4]}"
	same '["web",{"rate":{"unit":"counter","value":10}},{"k":"v","origin":"web"}]' "${lines[5]}"
	same '["web",{"last":{"unit":"gauge","value":1}},{"origin":"web"}]' "${lines[6]}"
	same 7 "${#lines[@]}"
	same 3 "$(dropped bad_statsd_line)"
	same "lgr-recv: level=info event=stop ingress_udp=0 ingress_grpc=0 ingress_statsd=7 dropped=3" "$STOP"
}

@test "--statsd-max-keys bounds the running values; timers always pass" {
	local t=$BATS_TEST_TMPDIR
	frames text in <<-'EOF'
	a.one:1|c
	a.two:1|g
	a.three:1|c
	a.one:1|c
	a.t:5|ms
	a.four:1|g
	a.two:+1|g
	EOF
	recv_start --statsd 127.0.0.1:0 --statsd-max-keys 2
	run_ok py udpsend "$STATSD" "$t/in"
	wait_until 200 has_frames 4 "$OUT"
	recv_stop
	run -0 statsd_values "$OUT"
	same $'a one counter 1 a 1 \na two gauge 1 a 1 \na one counter 2 a 1 \na t ms 5 a 1 \na two gauge 2 a 1 ' "$output"
	same 2 "$(dropped statsd_table_full)"
}

@test "--tag adds tags to statsd envelopes that lack them" {
	local t=$BATS_TEST_TMPDIR
	frames text in <<-'EOF'
	web.hits:1|c|#env:prod
	EOF
	recv_start --statsd 127.0.0.1:0 --tag env=dev --tag origin=x --tag job=j
	run_ok py udpsend "$STATSD" "$t/in"
	wait_until 200 has_frames 1 "$OUT"
	recv_stop
	decode --json "$OUT" >"$t/got.json"
	run -0 jq -c .tags "$t/got.json"
	same '{"env":"prod","job":"j","origin":"web"}' "$output"
}

# --- signals, self-metrics, output ---------------------------------------------

@test "SIGTERM and SIGINT stop it with exit 0 and the stop line" {
	local t=$BATS_TEST_TMPDIR st=0
	mixed_envelopes in
	recv_start --udp 127.0.0.1:0 --grpc 127.0.0.1:0 --statsd 127.0.0.1:0
	call_is OK "$GRPC" sender "$t/in"
	recv_stop
	run -0 cat "$ERR"
	same "lgr-recv: level=info event=signal signal=TERM action=stop" "${lines[-2]}"
	same "lgr-recv: level=info event=stop ingress_udp=0 ingress_grpc=7 ingress_statsd=0 dropped=0" "$STOP"
	same_file "$t/in" "$OUT"

	recv_start --udp 127.0.0.1:0
	kill -INT "$RECV_PID"
	wait "$RECV_PID" || st=$?
	same 0 "$st"
	run -0 cat "$ERR"
	same "lgr-recv: level=info event=signal signal=INT action=stop" "${lines[-2]}"
	same "lgr-recv: level=info event=stop ingress_udp=0 ingress_grpc=0 ingress_statsd=0 dropped=0" "${lines[-1]}"
}

@test "SIGHUP without TLS is logged and changes nothing" {
	recv_start --grpc 127.0.0.1:0
	kill -HUP "$RECV_PID"
	wait_until 200 grep -q 'event=signal signal=HUP action=none' "$ERR"
	good_client 1
	recv_stop
	good_seen 1
}

@test "the listening lines name every listener with its real port" {
	recv_start --udp 127.0.0.1:0 --udp 127.0.0.1:0 --statsd '[::1]:0' \
	    --grpc 127.0.0.1:0
	run -0 grep -c 'event=listening' "$ERR"
	same 4 "$output"
	run -0 grep 'event=listening proto=udp' "$ERR"
	[[ ${lines[0]} =~ addr=127\.0\.0\.1:[1-9][0-9]*$ ]]
	[[ ${lines[1]} =~ addr=127\.0\.0\.1:[1-9][0-9]*$ ]]
	[ "${lines[0]}" != "${lines[1]}" ]
	[[ $STATSD =~ ^\[::1\]:[1-9][0-9]*$ ]]
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

@test "--metrics-interval emits ingress and dropped counters into the output" {
	local t=$BATS_TEST_TMPDIR
	frames v2 in <<-'EOF'
	{"source_id":"app","log":{"payload":"eA=="}}
	{"source_id":"app","log":{"payload":"eQ=="}}
	EOF
	frames v1 v1 <<-'EOF'
	{"origin":"o","eventType":"LogMessage","logMessage":{"message":"eg==","messageType":"OUT","timestamp":"1"}}
	EOF
	frames hex junk <<-'EOF'
	ffff
	EOF
	frames text lines <<-'EOF'
	s.a:1|c
	s.b:1|g\nbad line
	EOF
	recv_start --udp 127.0.0.1:0 --grpc 127.0.0.1:0 --statsd 127.0.0.1:0 \
	    --metrics-interval 0.1 --source-id probe --tag job=j
	call_is OK "$GRPC" sender "$t/in"
	run_ok py udpsend "$UDP" "$t/junk"
	run_ok py udpsend "$UDP" "$t/v1"
	run_ok py udpsend "$STATSD" "$t/lines"
	wait_until 200 metrics_show "$OUT" \
	    "probe ingress origin=lgr-recv,protocol=grpc 2" \
	    "probe ingress origin=lgr-recv,protocol=udp 1" \
	    "probe ingress origin=lgr-recv,protocol=statsd 2" \
	    "probe dropped origin=lgr-recv,reason=bad_datagram 1" \
	    "probe dropped origin=lgr-recv,reason=bad_statsd_line 1"
	recv_stop
	run -0 counters "$OUT"
	local reason
	for reason in bad_datagram invalid_envelope truncated bad_statsd_line \
	    statsd_table_full bad_grpc_message bad_v1_payload too_large; do
		contains "$output" "probe dropped origin=lgr-recv,reason=$reason "
	done
	# The data is all there; the counters are not counted as ingress and
	# get no --tag.
	decode --json "$OUT" >"$t/all.json"
	run -0 jq -r 'select(.counter | not) | .source_id' "$t/all.json"
	same $'app\napp\no\ns\ns' "$output"
	run -0 jq -r 'select(.counter) | .tags.job // "none"' "$t/all.json"
	same none "$(sort -u <<<"$output")"
	run -0 jq -s '[.[] | select(.counter.name == "ingress") | .counter.delta | tonumber] | add' \
	    "$t/all.json"
	same 5 "$output"
	same "lgr-recv: level=info event=stop ingress_udp=1 ingress_grpc=2 ingress_statsd=2 dropped=2" "$STOP"
}

@test "a closed stdout gives exit 1 and a write_failed line" {
	local t=$BATS_TEST_TMPDIR st=0 fifo=$BATS_TEST_TMPDIR/notify nfd
	mixed_envelopes in
	mkfifo "$fifo"
	exec {nfd}<>"$fifo"
	lgr-recv --grpc 127.0.0.1:0 --notify-fd 3 3>"$fifo" {nfd}>&- \
	    {LGR_DIAG}>&- </dev/null >&- 2>"$t/err" &
	RECV_PID=$!
	read -r -t 10 -u "$nfd"
	exec {nfd}>&-
	ERR=$t/err
	GRPC=$(listen_addr grpc)
	py grpc_client "$GRPC" sender "$t/in" >/dev/null 2>&1 || true
	wait "$RECV_PID" || st=$?
	same 1 "$st"
	run -0 cat "$t/err"
	contains "$output" "lgr-recv: level=error event=write_failed error="
	[[ ${lines[-1]} == "lgr-recv: level=info event=stop "* ]]
}
