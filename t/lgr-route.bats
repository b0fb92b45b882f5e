#!/usr/bin/env bats
# lgr-route: frames in on stdin, out to sinks, each with its own filter,
# ring and thread. Inputs are made with lgr-emit and by hand; what each
# sink gets is compared byte for byte with the frames that should pass
# its filter. The peers are real: files and descriptors, sh children,
# a python listener for unix: and tcp: (t/lgr-route/listen.py), lgr-recv
# and the python3-grpcio Ingress server (t/grpccli-peer/ingress_server.py)
# for grpc:// and grpcs://. Everything listens on loopback, on a port
# the listener picked and printed; no test sleeps to wait for readiness.

load lib

TS=1700000000000000000

# lib's teardown stops what a test left running; before it, close
# lgr-route's stdin and signal every background job at once, so a route
# that missed its SIGTERM still ends, at the end of its input, and a
# writer feeding it does not keep it going.
eval "$(declare -f teardown | sed '1s/^teardown/lib_teardown/')"
teardown() {
	local pid
	if [ -n "${W-}" ]; then
		exec {W}>&-
	fi
	for pid in $(jobs -p); do
		case $LGR_PREEXISTING_JOBS in
		*" $pid "*) continue ;;
		esac
		lgr_kill_tree "$pid"
	done
	lib_teardown
}

# --- inputs ----------------------------------------------------------------

# put NAME... -- ARGS...: one lgr-emit ARGS run (timestamp fixed),
# appended to each $BATS_TEST_TMPDIR/NAME: the input and the file of
# every sink that should get it.
put() {
	local names=() n
	while [ "$1" != -- ]; do
		names+=("$1")
		shift
	done
	shift
	run_ok lgr-emit --timestamp "$TS" "$@" >"$BATS_TEST_TMPDIR/one" || return 1
	for n in "${names[@]}"; do
		cat "$BATS_TEST_TMPDIR/one" >>"$BATS_TEST_TMPDIR/$n"
	done
}

# logs NAME FIRST LAST [ARGS...]: log frames with payloads FIRST to LAST,
# appended to $BATS_TEST_TMPDIR/NAME.
logs() {
	local f=$BATS_TEST_TMPDIR/$1
	seq "$2" "$3" >"$f.lines"
	run_ok lgr-emit --timestamp "$TS" "${@:4}" log <"$f.lines" >>"$f"
}

# empty NAME...: make each $BATS_TEST_TMPDIR/NAME, empty.
empty() {
	local n
	for n in "$@"; do
		: >"$BATS_TEST_TMPDIR/$n"
	done
}

# --- lgr-route in the background ---------------------------------------------

# route_start N ARGS...: lgr-route ARGS in the background, reading the
# fifo $BATS_TEST_TMPDIR/stdin, which this shell holds open on fd $W; its
# stdout goes to $BATS_TEST_TMPDIR/stdout, its log to $ERR. Returns once
# N sinks have logged sink_started: its signal handlers are set by then.
# Sets ROUTE_PID.
route_start() {
	local n=$1
	shift
	ERR=$BATS_TEST_TMPDIR/err
	mkfifo "$BATS_TEST_TMPDIR/stdin"
	# Read-write, so the open never waits for lgr-route.
	exec {W}<>"$BATS_TEST_TMPDIR/stdin"
	lgr-route "$@" <"$BATS_TEST_TMPDIR/stdin" >"$BATS_TEST_TMPDIR/stdout" \
	    2>"$ERR" 3>&- {W}>&- {LGR_DIAG}>&- &
	ROUTE_PID=$!
	if ! wait_until 200 logged "$n" event=sink_started; then
		lgr_diag "lgr-route $* did not start $n sinks; its log:"
		lgr_diag "$(cat "$ERR")"
		return 1
	fi
}

# send FILE...: write FILEs to lgr-route's stdin.
send() {
	cat "$@" >&"$W"
}

# route_end [STATUS]: close lgr-route's stdin and wait for it; it must
# exit STATUS (default 0) with the stop line last in its log. Sets STOP.
route_end() {
	local want=${1:-0} st=0
	exec {W}>&-
	wait "$ROUTE_PID" || st=$?
	if [ "$st" -ne "$want" ]; then
		lgr_diag "lgr-route exited $st, wanted $want; its log:"
		lgr_diag "$(cat "$ERR")"
		return 1
	fi
	stop_last
}

# stop_last: the last line of $ERR is the stop line. Sets STOP.
stop_last() {
	STOP=$(last_line "$ERR")
	[[ $STOP == "lgr-route: level=info event=stop ingress="* ]] ||
	    { lgr_diag "no stop line last in $ERR: $STOP"; return 1; }
}

# logged N TEXT: $ERR holds at least N lines with TEXT.
logged() {
	local c
	c=$(grep -c -F -- "$2" "$ERR") || c=0
	[ "$c" -ge "$1" ]
}

# stopped DEST: the sink_stopped line of the sink writing to DEST, which
# must be the only one; prints "ingress=N egress=N dropped=N".
stopped() {
	local l
	l=$(grep -F -- "event=sink_stopped sink=\"$1\" " "$ERR") ||
	    { lgr_diag "no sink_stopped line for $1 in $ERR"; return 1; }
	[ "$(printf '%s\n' "$l" | wc -l)" -eq 1 ] ||
	    { lgr_diag "more than one sink_stopped line for $1: $l"; return 1; }
	printf '%s\n' "${l#*\" }"
}

# accounted DEST: the stop line of DEST adds up: ingress = egress + dropped.
# Prints its counts.
accounted() {
	local c
	c=$(stopped "$1") || return 1
	if [ "$(field ingress "$c")" -ne \
	    $(($(field egress "$c") + $(field dropped "$c"))) ]; then
		lgr_diag "counts of $1 do not add up: $c"
		return 1
	fi
	printf '%s\n' "$c"
}

# gone PID: the process is no more, or a zombie its parent has not reaped.
gone() {
	local s
	s=$(ps -o stat= -p "$1") || return 0
	[[ $s == Z* ]]
}

# has_bytes FILE WANT...: FILE holds at least as many bytes as the WANT
# files together (for wait_until; cheaper than counting frames).
has_bytes() {
	local f=$1 want=0 w
	shift
	for w in "$@"; do
		want=$((want + $(stat -c %s "$w")))
	done
	[ -e "$f" ] && [ "$(stat -c %s "$f")" -ge "$want" ]
}

# bytes_total WANT FILE...: the FILEs hold as many bytes as WANT, together.
bytes_total() {
	local want f sum=0
	want=$(stat -c %s "$1")
	shift
	for f in "$@"; do
		[ -e "$f" ] && sum=$((sum + $(stat -c %s "$f")))
	done
	[ "$sum" -ge "$want" ]
}

# ends_with FILE WANT: the last bytes of FILE are those of WANT.
ends_with() {
	[ -e "$1" ] && cmp -s <(tail -c "$(stat -c %s "$2")" "$1") "$2"
}

# now_ms: the time in milliseconds.
now_ms() {
	echo $(($(date +%s%N) / 1000000))
}

# --- peers -----------------------------------------------------------------------

# w_ready: W names an open fd, so background peers can close it with
# {W}>&- (a peer holding lgr-route's stdin open would keep it from ever
# seeing the end of its input).
w_ready() {
	[ -n "${W-}" ] || exec {W}</dev/null
}

# listen_start NAME ARGS...: t/lgr-route/listen.py ARGS in the background,
# recording what it gets in $BATS_TEST_TMPDIR/NAME.got, logging to
# NAME.err. Sets LISTEN_PID and LISTEN_PORT; unless ARGS has --later,
# returns once it listens.
listen_start() {
	local name=$1 t=$BATS_TEST_TMPDIR
	shift
	w_ready
	"$LGR_PYTHON" "$BATS_TEST_DIRNAME/lgr-route/listen.py" --out "$t/$name.got" \
	    "$@" </dev/null >"$t/$name.port" 2>"$t/$name.err" 3>&- {W}>&- \
	    {LGR_DIAG}>&- &
	LISTEN_PID=$!
	wait_until 400 test -s "$t/$name.port" ||
	    { lgr_diag "listen.py $*: $(cat "$t/$name.err")"; return 1; }
	LISTEN_PORT=$(cat "$t/$name.port")
	case " $* " in
	*" --later "*) wait_until 400 grep -q event=waiting "$t/$name.err" ;;
	*) wait_until 400 grep -q event=listening "$t/$name.err" ;;
	esac
}

# certs_ready: share/lgr-certs makes, once per file, a CA and doppler,
# metron and client certificates in $CERTS. Sets TLS to lgr-route's flags
# to connect as metron.
certs_ready() {
	CERTS=$BATS_FILE_TMPDIR/certs
	TLS=(--tls-cert "$CERTS/metron.crt" --tls-key "$CERTS/metron.key"
	    --tls-ca "$CERTS/ca.crt")
	[ -f "$CERTS/client.key" ] && return 0
	run_ok "$LGR_ROOT/share/lgr-certs" --only "$CERTS" doppler metron client \
	    2>"$BATS_FILE_TMPDIR/certs.log"
}

# recv_start NAME ARGS...: lgr-recv ARGS in the background, frames to
# $BATS_TEST_TMPDIR/NAME.out, log to NAME.err, and wait for its
# --notify-fd. Sets RECV_PID, and RECV_ADDR to its gRPC HOST:PORT.
recv_start() {
	local name=$1 t=$BATS_TEST_TMPDIR nfd n=100 l
	shift
	w_ready
	mkfifo "$t/$name.notify"
	exec {nfd}<>"$t/$name.notify"
	lgr-recv "$@" --notify-fd 3 3>"$t/$name.notify" {nfd}>&- {LGR_DIAG}>&- \
	    {W}>&- </dev/null >"$t/$name.out" 2>"$t/$name.err" &
	RECV_PID=$!
	while ! read -r -t 0.1 -u "$nfd" _; do
		n=$((n - 1))
		if [ "$n" -eq 0 ] || ! kill -0 "$RECV_PID" 2>/dev/null; then
			exec {nfd}>&-
			lgr_diag "lgr-recv $* did not get ready: $(cat "$t/$name.err")"
			return 1
		fi
	done
	exec {nfd}>&-
	l=$(grep -m 1 'event=listening proto=grpc ' "$t/$name.err") || return 1
	RECV_ADDR=$(field addr "$l")
}

# recv_stop PID NAME: SIGTERM lgr-recv; it must exit 0. Sets RECV_STOP to
# its last log line.
recv_stop() {
	local st=0
	kill -TERM "$1"
	wait "$1" || st=$?
	RECV_STOP=$(last_line "$BATS_TEST_TMPDIR/$2.err")
	[ "$st" -eq 0 ] || { lgr_diag "lgr-recv exited $st: $RECV_STOP"; return 1; }
}

# ingress_start NAME ARGS...: the python3-grpcio Ingress server, keeping
# the envelopes it gets as frames in $BATS_TEST_TMPDIR/NAME.frames, its
# log in NAME.err. Sets INGRESS_PID and INGRESS_PORT.
ingress_start() {
	local name=$1 t=$BATS_TEST_TMPDIR
	shift
	w_ready
	"$LGR_PYTHON" "$LGR_ROOT/t/grpccli-peer/ingress_server.py" \
	    --frames "$t/$name.frames" "$@" </dev/null >"$t/$name.port" \
	    2>"$t/$name.err" 3>&- {W}>&- {LGR_DIAG}>&- &
	INGRESS_PID=$!
	: >>"$t/$name.frames"
	wait_until 600 test -s "$t/$name.port" ||
	    { lgr_diag "ingress_server.py $*: $(cat "$t/$name.err")"; return 1; }
	INGRESS_PORT=$(cat "$t/$name.port")
}

# ingress_stop PID: SIGTERM the Ingress server; it must exit 0.
ingress_stop() {
	local st=0
	kill -TERM "$1"
	wait "$1" || st=$?
	[ "$st" -eq 0 ] || { lgr_diag "ingress_server.py exited $st"; return 1; }
}

# --- command line ------------------------------------------------------------

@test "--help prints the usage and every option on stdout and exits 0" {
	local flag
	run -0 --separate-stderr lgr-route --help
	same "usage: lgr-route [--sink SPEC]... [--to DEST]... [--bindings FILE]" "${lines[0]}"
	for flag in --sink --to --bindings --sink-buffer --sink-bytes \
	    --max-frame --drain-timeout --metrics-interval --source-id \
	    --tls-cert --tls-ca --tls-server-name --batch-size \
	    --batch-interval; do
		contains "$output" "  $flag "
	done
	contains "$output" "--tls-key FILE"
	contains "$output" "  -h, --help "
	contains "$output" "  -V, --version "
	contains "$output" "file:PATH, fd:N,"
	same "" "$stderr"
}

@test "--version prints one line and exits 0" {
	run -0 --separate-stderr lgr-route --version
	same 1 "${#lines[@]}"
	[[ ${lines[0]} =~ ^lgr-route\ [0-9]+\.[0-9]+ ]]
	same "" "$stderr"
}

@test "no sinks is a usage error" {
	run -2 --separate-stderr lgr-route </dev/null
	same "lgr-route: no sinks: give --sink, --to or --bindings" "${stderr_lines[0]}"
	[[ ${stderr_lines[1]} == "usage: lgr-route "* ]]
	same "" "$output"
	run -2 --separate-stderr lgr-route --sink-buffer 5 --max-frame 100 </dev/null
	same "lgr-route: no sinks: give --sink, --to or --bindings" "${stderr_lines[0]}"
}

@test "an unknown option or an argument is a usage error" {
	run -2 --separate-stderr lgr-route --to file:/dev/null --fanout 2 </dev/null
	same "lgr-route: unknown option --fanout" "${stderr_lines[0]}"
	[[ ${stderr_lines[1]} == "usage: lgr-route "* ]]
	run -2 --separate-stderr lgr-route --to file:/dev/null extra </dev/null
	same "lgr-route: unexpected argument 'extra'" "${stderr_lines[0]}"
	run -2 --separate-stderr lgr-route --sink
	same "lgr-route: option --sink needs a value" "${stderr_lines[0]}"
	same "" "$output"
}

@test "bad flag values are usage errors naming the flag" {
	local flag args
	while read -r flag args; do
		# shellcheck disable=SC2086
		run -2 --separate-stderr lgr-route --to file:/dev/null $args </dev/null
		[[ ${stderr_lines[0]} == "lgr-route: "*"$flag"* ]] ||
		    { lgr_diag "$args: ${stderr_lines[0]}"; false; }
		[[ ${stderr_lines[1]} == "usage: lgr-route "* ]]
		same "" "$output"
	done <<-'EOF'
	--sink-buffer --sink-buffer 0
	--sink-buffer --sink-buffer x
	--sink-buffer --sink-buffer 100000001
	--sink-bytes --sink-bytes 1023
	--sink-bytes --sink-bytes 2000
	--sink-bytes --max-frame 1000 --sink-bytes 2007
	--max-frame --max-frame 15
	--max-frame --max-frame 67108865
	--drain-timeout --drain-timeout -1
	--drain-timeout --drain-timeout 3601
	--drain-timeout --drain-timeout later
	--metrics-interval --metrics-interval -1
	--metrics-interval --metrics-interval 86401
	--batch-size --batch-size 0
	--batch-size --batch-size 100001
	--batch-interval --batch-interval 0
	--batch-interval --batch-interval 60001
	--tls-key --tls-cert /nonexistent
	--tls-key --tls-key /nonexistent
	EOF
	run -2 --separate-stderr lgr-route --to file:/dev/null --max-frame 1000 \
	    --sink-bytes 2007 </dev/null
	same "lgr-route: --sink-bytes must be at least twice --max-frame plus 8 (2008)" "${stderr_lines[0]}"
}

@test "a malformed SPEC or DEST is a usage error with a one-line reason" {
	local spec want
	while IFS='|' read -r spec want; do
		run -2 --separate-stderr lgr-route --sink "$spec" </dev/null
		same "lgr-route: $want" "${stderr_lines[0]}"
		[[ ${stderr_lines[1]} == "usage: lgr-route "* ]]
		same "" "$output"
		# The same with --to, and among good sinks: nothing starts.
		run -2 --separate-stderr lgr-route --to file:/dev/null --sink "$spec" \
		    --to "file:$BATS_TEST_TMPDIR/never" </dev/null
		same "lgr-route: $want" "${stderr_lines[0]}"
		[ ! -e "$BATS_TEST_TMPDIR/never" ]
	done <<-'EOF'
	app=web file:/dev/null|unknown filter 'app=web' (source_id=, kind=, tag.NAME=)
	tag.env file:/dev/null|unknown filter 'tag.env' (source_id=, kind=, tag.NAME=)
	tag.=x file:/dev/null|unknown filter 'tag.=x' (source_id=, kind=, tag.NAME=)
	kind=metric file:/dev/null|unknown kind 'metric' (log, counter, gauge, timer, event)
	kind=log,gauges file:/dev/null|unknown kind 'gauges' (log, counter, gauge, timer, event)
	kind= file:/dev/null|kind= wants KIND[,KIND...]
	source_id= file:/dev/null|source_id= wants ID[,ID...]
	source_id=a kind=log|no destination in 'source_id=a kind=log'
	http://example.com/drain|unknown destination 'http://example.com/drain' (file:, fd:, exec:, unix:, tcp:, grpc://, grpcs://)
	syslog://127.0.0.1:514|unknown destination 'syslog://127.0.0.1:514' (file:, fd:, exec:, unix:, tcp:, grpc://, grpcs://)
	file:|'file:' names nothing
	exec:|'exec:' names nothing
	tcp:127.0.0.1|'127.0.0.1' is not HOST:PORT
	tcp:127.0.0.1:65536|'127.0.0.1:65536' is not HOST:PORT (port 0 to 65535)
	grpc://127.0.0.1|'127.0.0.1' is not HOST:PORT[,HOST:PORT...]
	grpc://a:1,b|'a:1,b' is not HOST:PORT[,HOST:PORT...]
	grpc://a:1,,b:2|'a:1,,b:2' is not HOST:PORT[,HOST:PORT...]
	grpcs://a:1,|'a:1,' is not HOST:PORT[,HOST:PORT...]
	grpcs://:8082|':8082' is not HOST:PORT[,HOST:PORT...]
	grpcs://doppler:http|'doppler:http' is not HOST:PORT[,HOST:PORT...]
	fd:9|'fd:9' is not an open fd
	fd:x|'fd:x' is not an open fd
	fd:-1|'fd:-1' is not an open fd
	EOF
	# DEST is the first word with a colon; a word without one is a filter.
	run -2 --separate-stderr lgr-route --to nowhere </dev/null
	same "lgr-route: unknown filter 'nowhere' (source_id=, kind=, tag.NAME=)" "${stderr_lines[0]}"
}

@test "a bad bindings file at start exits 1 naming the file and the line" {
	local t=$BATS_TEST_TMPDIR
	put in -- log x
	printf '# drains\nfile:%s/a\n\nkind=log,metric file:%s/b\nfile:%s/c\n' \
	    "$t" "$t" "$t" >"$t/bindings"
	must_fail -1 lgr-route --bindings "$t/bindings" <"$t/in" 2>"$t/err"
	run -0 cat "$t/err"
	same 1 "${#lines[@]}"
	same "lgr-route: level=error event=bindings_failed file=$t/bindings line=4 reason=\"unknown kind 'metric' (log, counter, gauge, timer, event)\"" "${lines[0]}"
	[ ! -e "$t/a" ] && [ ! -e "$t/c" ]

	must_fail -1 lgr-route --bindings "$t/nonexistent" <"$t/in" 2>"$t/err"
	run -0 cat "$t/err"
	same "lgr-route: level=error event=bindings_failed file=$t/nonexistent error=\"No such file or directory\"" "${lines[0]}"
}

@test "TLS files that do not load are a runtime failure" {
	local t=$BATS_TEST_TMPDIR
	must_fail -1 lgr-route --to file:/dev/null --tls-ca "$t/nonexistent" \
	    </dev/null 2>"$t/err"
	run -0 cat "$t/err"
	[[ ${lines[0]} == "lgr-route: level=error event=tls_load_failed reason=\"CA $t/nonexistent: "* ]]
	echo garbage >"$t/cert"
	must_fail -1 lgr-route --to file:/dev/null --tls-cert "$t/cert" \
	    --tls-key "$t/cert" </dev/null 2>"$t/err"
	run -0 cat "$t/err"
	[[ ${lines[0]} == "lgr-route: level=error event=tls_load_failed reason="* ]]
}

# --- filters -------------------------------------------------------------------

@test "a sink without a filter gets every frame byte for byte" {
	local t=$BATS_TEST_TMPDIR
	put in -- --source-id app --instance-id 0 log hello
	put in -- --source-id app --err log oops
	put in -- --tag a=1 counter requests 5 --total 9
	put in -- gauge cpu=12.5:percent mem=1024:bytes
	put in -- timer http 10 250
	put in -- event "app crashed" "exit 137"
	logs in 1 1000 --source-id many
	run_ok lgr-route --to "file:$t/a" --to "file:$t/b" --sink "file:$t/c" \
	    <"$t/in" >"$t/out" 2>"$t/err"
	same_file "$t/in" "$t/a"
	same_file "$t/in" "$t/b"
	same_file "$t/in" "$t/c"
	[ ! -s "$t/out" ]
	ERR=$t/err
	run -0 cat "$t/err"
	same 7 "${#lines[@]}"
	same "lgr-route: level=info event=sink_started sink=\"file:$t/a\"" "${lines[0]}"
	same "lgr-route: level=info event=sink_started sink=\"file:$t/b\"" "${lines[1]}"
	same "lgr-route: level=info event=sink_started sink=\"file:$t/c\"" "${lines[2]}"
	run -0 stopped "file:$t/a"
	same "ingress=1006 egress=1006 dropped=0" "$output"
	run -0 stopped "file:$t/c"
	same "ingress=1006 egress=1006 dropped=0" "$output"
	stop_last
	same "lgr-route: level=info event=stop ingress=1006 oversized=0" "$STOP"
}

@test "source_id= takes a list and matches whole ids only" {
	local t=$BATS_TEST_TMPDIR
	empty want.ab want.a want.c want.none
	put in want.ab want.a -- --source-id a log a1
	put in want.ab -- --source-id b counter b1 1
	put in want.c -- --source-id c gauge g=1
	put in -- --source-id ab log ab1
	put in -- --source-id A log A1
	put in want.ab want.a -- --source-id a event title body
	put in want.ab -- --source-id b timer t 1 2
	put in want.c -- --source-id c log c2
	printf '{"log":{"payload":"bm9uZQ=="}}\n' >"$t/json"
	run_ok lgr-cat --encode <"$t/json" >>"$t/in"
	run_ok lgr-route --sink "source_id=a,b file:$t/ab" --sink "source_id=a file:$t/a" \
	    --sink "source_id=c file:$t/c" --sink "source_id=x,y,z file:$t/none" \
	    <"$t/in" 2>"$t/err"
	same_file "$t/want.ab" "$t/ab"
	same_file "$t/want.a" "$t/a"
	same_file "$t/want.c" "$t/c"
	same_file "$t/want.none" "$t/none"
	ERR=$t/err
	run -0 stopped "file:$t/ab"
	same "ingress=4 egress=4 dropped=0" "$output"
	run -0 stopped "file:$t/none"
	same "ingress=0 egress=0 dropped=0" "$output"
	stop_last
	same "lgr-route: level=info event=stop ingress=9 oversized=0" "$STOP"
}

@test "an envelope without a source_id never passes a source_id= filter" {
	local t=$BATS_TEST_TMPDIR
	empty want.a want.b
	printf '{"log":{"payload":"bm9uZQ=="}}\n' >"$t/json"
	run_ok lgr-cat --encode <"$t/json" >"$t/none"
	put in want.a -- --source-id a log a1
	cat "$t/none" >>"$t/in"
	put in want.b -- --source-id b log b1
	cat "$t/none" >>"$t/in"
	put in want.a -- --source-id a log a2
	cat "$t/none" >>"$t/in"
	run_ok lgr-route --sink "source_id=b file:$t/b" --sink "source_id=a file:$t/a" \
	    <"$t/in" 2>"$t/err"
	same_file "$t/want.a" "$t/a"
	same_file "$t/want.b" "$t/b"
}

@test "kind= passes the kinds listed and nothing else" {
	local t=$BATS_TEST_TMPDIR
	empty want.log want.cg want.timer want.event want.any
	put in want.log want.any -- log l1
	put in want.cg want.any -- counter c 1
	put in want.cg want.any -- gauge g=1
	put in want.timer want.any -- timer t 1 2
	put in want.event want.any -- event title body
	put in want.log want.any -- --err log l2
	put in want.cg want.any -- counter c 2
	# An envelope with no message at all has no kind.
	printf '{"source_id":"bare"}\n' >"$t/json"
	run_ok lgr-cat --encode <"$t/json" >>"$t/in"
	run_ok lgr-route --sink "kind=log file:$t/log" \
	    --sink "kind=counter,gauge file:$t/cg" --sink "kind=timer file:$t/timer" \
	    --sink "kind=event file:$t/event" \
	    --sink "kind=log,counter,gauge,timer,event file:$t/any" \
	    --to "file:$t/all" <"$t/in" 2>"$t/err"
	same_file "$t/want.log" "$t/log"
	same_file "$t/want.cg" "$t/cg"
	same_file "$t/want.timer" "$t/timer"
	same_file "$t/want.event" "$t/event"
	same_file "$t/want.any" "$t/any"
	same_file "$t/in" "$t/all"
}

@test "tag.NAME=VALUE matches the whole value, in tags or in text deprecated_tags" {
	local t=$BATS_TEST_TMPDIR
	empty want.prod want.both want.staging want.none
	put in want.prod want.both -- --tag env=prod --tag team=x log p1
	put in want.staging -- --tag env=staging --tag team=x log s1
	put in -- log untagged
	put in want.prod -- --tag env=prod log p2
	put in -- --tag env=production --tag team=x log p3
	put in -- --tag ENV=prod log p4
	put in want.prod -- --tag env=prod --tag team=y counter c 1
	# Old agents carry tags in deprecated_tags, as Value messages.
	echo '{"timestamp":"1","source_id":"old","deprecated_tags":{"env":{"text":"prod"},"team":{"text":"x"}},"log":{"payload":"b2xk"}}' \
	    >"$t/json1"
	echo '{"timestamp":"1","source_id":"old","deprecated_tags":{"env":{"integer":"5"}},"log":{"payload":"aW50"}}' \
	    >"$t/json2"
	run_ok lgr-cat --encode <"$t/json1" >"$t/dep1"
	run_ok lgr-cat --encode <"$t/json2" >"$t/dep2"
	cat "$t/dep1" "$t/dep2" >>"$t/in"
	cat "$t/dep1" >>"$t/want.prod"
	cat "$t/dep1" >>"$t/want.both"
	run_ok lgr-route --sink "tag.env=prod file:$t/prod" \
	    --sink "tag.env=staging file:$t/staging" \
	    --sink "tag.env=prod tag.team=x file:$t/both" \
	    --sink "tag.env=pro file:$t/none" <"$t/in" 2>"$t/err"
	same_file "$t/want.prod" "$t/prod"
	same_file "$t/want.staging" "$t/staging"
	same_file "$t/want.both" "$t/both"
	same_file "$t/want.none" "$t/none"
}

@test "filters in one SPEC must all pass" {
	local t=$BATS_TEST_TMPDIR
	empty want.combo want.two
	put in want.combo want.two -- --source-id a --tag x=1 counter hits 1
	put in want.two -- --source-id b --tag x=1 log b-log
	put in -- --source-id a --tag x=2 counter hits 2
	put in -- --source-id a --tag x=1 gauge g=1
	put in -- --source-id c --tag x=1 counter hits 3
	put in want.combo want.two -- --source-id b --tag x=1 --tag y=2 counter hits 4
	put in -- --source-id a log a-log
	run_ok lgr-route \
	    --sink "source_id=a,b kind=counter tag.x=1 file:$t/combo" \
	    --sink "kind=counter,log"$'\t'"source_id=b,a  tag.x=1 file:$t/two" \
	    <"$t/in" 2>"$t/err"
	same_file "$t/want.combo" "$t/combo"
	same_file "$t/want.two" "$t/two"
}

@test "frames pass as their bytes: never decoded and encoded again" {
	local t=$BATS_TEST_TMPDIR
	# Valid envelopes no encoder writes: the log before source_id, an
	# unknown field 15, a timestamp varint one byte too long, and a
	# source_id given twice (the last wins).
	frame_hex 16 22040a02686912036170707801088100 >"$t/odd"
	frame_hex 14 120178120361707022040a026869 >>"$t/odd"
	run_ok decode "$t/odd"
	run -0 decode --json "$t/odd"
	same 2 "${#lines[@]}"
	contains "${lines[0]}" '"source_id":"app"'
	contains "${lines[1]}" '"source_id":"app"'
	cp "$t/odd" "$t/in"
	put in -- --source-id other log other
	run_ok lgr-route --sink "source_id=app kind=log file:$t/app" \
	    --to "file:$t/all" <"$t/in" 2>"$t/err"
	same_file "$t/odd" "$t/app"
	same_file "$t/in" "$t/all"
}

@test "a frame that is not an envelope reaches the sinks without a filter only" {
	local t=$BATS_TEST_TMPDIR
	empty want.log
	put in want.log -- log a
	frame_hex 3 ffffff >>"$t/in"
	frame_hex 0 "" >>"$t/in"
	frame_hex 2 0a05 >>"$t/in"
	put in want.log -- log b
	run_ok lgr-route --to "file:$t/all" --sink "kind=log file:$t/log" \
	    --sink "tag.a=b file:$t/tag" --sink "source_id=x file:$t/id" \
	    <"$t/in" 2>"$t/err"
	same_file "$t/in" "$t/all"
	same_file "$t/want.log" "$t/log"
	[ ! -s "$t/tag" ] && [ ! -s "$t/id" ]
	ERR=$t/err
	run -0 stopped "file:$t/all"
	same "ingress=5 egress=5 dropped=0" "$output"
	stop_last
	same "lgr-route: level=info event=stop ingress=5 oversized=0" "$STOP"
}

@test "a bindings file gives sinks as --sink does, with comments and blank lines" {
	local t=$BATS_TEST_TMPDIR
	empty want.a want.c
	put in want.a -- --source-id a log a1
	put in want.c -- --source-id b counter c 1
	put in want.a -- --source-id a log a2
	cat >"$t/bindings" <<-EOF
	# one SPEC a line

	   source_id=a   file:$t/a   # app a, blanks around
	kind=counter file:$t/c#1
		# indented comment
	file:$t/all
	EOF
	run_ok lgr-route --bindings "$t/bindings" <"$t/in" 2>"$t/err"
	same_file "$t/want.a" "$t/a"
	same_file "$t/want.c" "$t/c#1"
	same_file "$t/in" "$t/all"
	run -0 grep -c event=sink_started "$t/err"
	same 3 "$output"
}

# --- destinations -----------------------------------------------------------

@test "file: appends to what the file holds" {
	local t=$BATS_TEST_TMPDIR
	put old -- log before
	cp "$t/old" "$t/log"
	logs in 1 100
	run_ok lgr-route --to "file:$t/log" <"$t/in" 2>"$t/err"
	cat "$t/old" "$t/in" >"$t/want"
	same_file "$t/want" "$t/log"
	# A relative path is relative to the working directory.
	mkdir "$t/wd"
	run_ok env -C "$t/wd" lgr-route --to file:rel <"$t/in" 2>"$t/err"
	same_file "$t/in" "$t/wd/rel"
}

@test "fd: writes to a descriptor lgr-route was given" {
	local t=$BATS_TEST_TMPDIR
	logs in 1 500
	put in -- counter c 1
	run_ok lgr-route --to fd:5 --sink "kind=counter fd:1" --to fd:7 <"$t/in" \
	    5>"$t/five" >"$t/one" 7>>"$t/seven" 2>"$t/err"
	same_file "$t/in" "$t/five"
	same_file "$t/in" "$t/seven"
	tail -c "$(stat -c %s "$t/one")" "$t/in" >"$t/want.one"
	same_file "$t/want.one" "$t/one"
	run -0 decode --count "$t/one"
	same 1 "$output"
}

@test "exec: children get every frame that passes on their stdin" {
	local t=$BATS_TEST_TMPDIR
	empty want.log
	logs in 1 300
	logs want.log 1 300
	put in -- counter c 1
	put in want.log -- log last
	run_ok lgr-route --to "exec:cat >$t/x1" --sink "kind=log exec:cat >'$t/x2'" \
	    --to "exec:wc -c >$t/count; exit 3" <"$t/in" 2>"$t/err"
	same_file "$t/in" "$t/x1"
	same_file "$t/want.log" "$t/x2"
	same "$(stat -c %s "$t/in")" "$(tr -d ' ' <"$t/count")"
	run -0 cat "$t/err"
	contains "$output" "event=exec_started sink=\"exec:cat >$t/x1\" pid="
	contains "$output" "event=sink_connected sink=\"exec:cat >$t/x1\""
	# Quotes in DEST are shown as ' in log lines.
	contains "$output" "event=exec_started sink=\"exec:cat >'$t/x2'\" pid="
	[[ $output =~ event=exec_exited\ sink=\"exec:cat\ \>$t/x1\"\ pid=[0-9]+\ status=0 ]]
	[[ $output =~ event=exec_exited\ sink=\"exec:wc\ -c\ \>$t/count\;\ exit\ 3\"\ pid=[0-9]+\ status=3 ]]
	ERR=$t/err
	run -0 stopped "exec:cat >$t/x1"
	same "ingress=302 egress=302 dropped=0" "$output"
}

@test "exec: a child that dies is restarted and logged; later frames reach the new one" {
	local t=$BATS_TEST_TMPDIR pid1 pid2 spec
	logs first 1 3
	logs second 4 6
	put probe -- log probe
	spec="exec:echo \$\$ >>$t/pids; exec cat >>$t/got"
	route_start 1 --to "$spec"
	send "$t/first"
	wait_until 200 has_bytes "$t/got" "$t/first"
	pid1=$(cat "$t/pids")
	kill -KILL "$pid1"
	wait_until 200 gone "$pid1"
	# Its death shows when the next frame finds the pipe closed.
	send "$t/probe"
	wait_until 200 logged 2 event=exec_started
	send "$t/second"
	wait_until 200 has_bytes "$t/got" "$t/first" "$t/second"
	route_end
	cat "$t/first" "$t/second" >"$t/want"
	same_file "$t/want" "$t/got"
	run -0 cat "$t/pids"
	same 2 "${#lines[@]}"
	pid2=${lines[1]}
	run -0 grep -E 'event=(exec_|sink_failed)' "$ERR"
	same "lgr-route: level=info event=exec_started sink=\"$spec\" pid=$pid1" "${lines[0]}"
	same "lgr-route: level=warn event=sink_failed sink=\"$spec\" what=write error=\"Broken pipe\" lost=1" "${lines[1]}"
	same "lgr-route: level=info event=exec_exited sink=\"$spec\" pid=$pid1 signal=9" "${lines[2]}"
	same "lgr-route: level=info event=exec_started sink=\"$spec\" pid=$pid2" "${lines[3]}"
	same "lgr-route: level=info event=exec_exited sink=\"$spec\" pid=$pid2 status=0" "${lines[4]}"
	run -0 stopped "$spec"
	same "ingress=7 egress=6 dropped=1" "$output"
}

@test "exec: children start with default signal handling: TERM ends them, SIGPIPE is not ignored" {
	local t=$BATS_TEST_TMPDIR blk ign pid
	put in -- log x
	route_start 1 --to "exec:echo \$\$ >$t/pid; grep -E '^Sig(Blk|Ign):' /proc/self/status >$t/sig; exec cat >/dev/null"
	send "$t/in"
	wait_until 200 test -s "$t/sig"
	blk=$(sed -n 's/^SigBlk:[[:space:]]*//p' "$t/sig")
	ign=$(sed -n 's/^SigIgn:[[:space:]]*//p' "$t/sig")
	# Bits 0, 1 and 14: SIGHUP, SIGINT, SIGTERM; bit 12: SIGPIPE.
	pid=$(cat "$t/pid")
	kill -TERM "$pid"
	wait_until 100 gone "$pid" || { lgr_diag "SIGTERM did not end the child"; false; }
	route_end
	same 0 $((0x$blk & 0x4003)) || { lgr_diag "blocked: SigBlk $blk"; false; }
	same 0 $((0x$ign & 0x1000)) || { lgr_diag "SIGPIPE ignored: SigIgn $ign"; false; }
}

@test "exec: a child that keeps dying is restarted with backoff, not at once" {
	local t=$BATS_TEST_TMPDIR n
	route_start 2 --to 'exec:exit 1' --to "file:$t/all"
	# About a second of frames, each write finding the child gone.
	run_ok lgr-emit --rate 1000 --count 1000 log x >&"$W"
	route_end
	run -0 accounted 'exec:exit 1'
	same 1000 "$(field ingress "$output")"
	n=$(grep -c 'event=exec_started' "$ERR")
	# Backoff from 100 ms, doubling: a handful of starts in a second.
	[ "$n" -le 10 ] ||
	    { lgr_diag "exec: child started $n times in about a second"; false; }
	run -0 decode --count "$t/all"
	same 1000 "$output"
}

@test "unix: a listener gets the frame stream byte for byte" {
	local t=$BATS_TEST_TMPDIR lp
	logs in 1 2000
	put in -- counter c 1
	listen_start u --unix "$t/sock"
	lp=$LISTEN_PID
	run_ok lgr-route --to "unix:$t/sock" <"$t/in" 2>"$t/err"
	wait_until 200 has_bytes "$t/u.got" "$t/in"
	kill -TERM "$lp"
	wait "$lp"
	same_file "$t/in" "$t/u.got"
	ERR=$t/err
	logged 1 "event=sink_connected sink=\"unix:$t/sock\""
	run -0 stopped "unix:$t/sock"
	same "ingress=2001 egress=2001 dropped=0" "$output"
	run -0 grep -c event=accepted "$t/u.err"
	same 1 "$output"
}

@test "tcp: a listener gets the frame stream byte for byte" {
	local t=$BATS_TEST_TMPDIR lp port
	logs in 1 2000
	put in -- gauge g=1
	listen_start t --tcp 127.0.0.1:0
	lp=$LISTEN_PID port=$LISTEN_PORT
	run_ok lgr-route --sink "kind=log tcp:127.0.0.1:$port" --to "file:$t/all" \
	    <"$t/in" 2>"$t/err"
	logs want 1 2000
	wait_until 200 has_bytes "$t/t.got" "$t/want"
	kill -TERM "$lp"
	wait "$lp"
	same_file "$t/want" "$t/t.got"
	same_file "$t/in" "$t/all"
	ERR=$t/err
	run -0 stopped "tcp:127.0.0.1:$port"
	same "ingress=2000 egress=2000 dropped=0" "$output"
}

@test "unix: a listener down at start gets the frames once it is up" {
	local t=$BATS_TEST_TMPDIR lp
	logs first 1 100
	logs second 101 200
	listen_start u --unix "$t/sock" --later
	lp=$LISTEN_PID
	route_start 1 --to "unix:$t/sock"
	send "$t/first"
	wait_until 200 logged 2 "event=sink_open_failed sink=\"unix:$t/sock\" error=\"No such file or directory\" retry_ms="
	kill -USR1 "$lp"
	wait_until 400 has_bytes "$t/u.got" "$t/first"
	send "$t/second"
	wait_until 200 has_bytes "$t/u.got" "$t/first" "$t/second"
	route_end
	kill -TERM "$lp"
	wait "$lp"
	cat "$t/first" "$t/second" >"$t/want"
	same_file "$t/want" "$t/u.got"
	run -0 grep -o 'retry_ms=[0-9]*' "$ERR"
	same retry_ms=100 "${lines[0]}"
	same retry_ms=200 "${lines[1]}"
	logged 1 "event=sink_connected sink=\"unix:$t/sock\""
	run -0 stopped "unix:$t/sock"
	same "ingress=200 egress=200 dropped=0" "$output"
}

@test "tcp: a listener down at start gets the frames once it is up" {
	local t=$BATS_TEST_TMPDIR lp port
	logs first 1 100
	logs second 101 200
	listen_start t --tcp 127.0.0.1:0 --later
	lp=$LISTEN_PID port=$LISTEN_PORT
	route_start 2 --to "tcp:127.0.0.1:$port" --to "file:$t/all"
	send "$t/first"
	# The other sink does not wait for it.
	wait_until 200 has_bytes "$t/all" "$t/first"
	wait_until 200 logged 2 "event=sink_open_failed sink=\"tcp:127.0.0.1:$port\" error=\"Connection refused\" retry_ms="
	kill -USR1 "$lp"
	wait_until 400 has_bytes "$t/t.got" "$t/first"
	send "$t/second"
	wait_until 200 has_bytes "$t/t.got" "$t/first" "$t/second"
	route_end
	kill -TERM "$lp"
	wait "$lp"
	cat "$t/first" "$t/second" >"$t/want"
	same_file "$t/want" "$t/t.got"
	same_file "$t/want" "$t/all"
	logged 1 "event=sink_connected sink=\"tcp:127.0.0.1:$port\""
	run -0 stopped "tcp:127.0.0.1:$port"
	same "ingress=200 egress=200 dropped=0" "$output"
}

@test "tcp: a listener that goes away and comes back is connected to again" {
	local t=$BATS_TEST_TMPDIR lp port n=0 size
	logs first 1 100
	logs second 101 200
	put probe -- log probe
	listen_start t1 --tcp 127.0.0.1:0
	lp=$LISTEN_PID port=$LISTEN_PORT
	route_start 1 --to "tcp:127.0.0.1:$port"
	send "$t/first"
	wait_until 200 has_bytes "$t/t1.got" "$t/first"
	kill -TERM "$lp"
	wait "$lp"
	# Frames go out until a write finds the connection closed.
	while ! logged 1 "event=sink_failed sink=\"tcp:127.0.0.1:$port\""; do
		n=$((n + 1))
		[ "$n" -le 100 ] || { lgr_diag "no sink_failed: $(cat "$ERR")"; false; }
		send "$t/probe"
		sleep 0.05
	done
	wait_until 200 logged 1 "event=sink_open_failed sink=\"tcp:127.0.0.1:$port\" error=\"Connection refused\""
	listen_start t2 --tcp "127.0.0.1:$port"
	lp=$LISTEN_PID
	wait_until 400 logged 2 "event=sink_connected sink=\"tcp:127.0.0.1:$port\""
	send "$t/second"
	wait_until 200 ends_with "$t/t2.got" "$t/second"
	route_end
	kill -TERM "$lp"
	wait "$lp"
	same_file "$t/first" "$t/t1.got"
	# The new connection ends with every frame sent after it came up.
	size=$(stat -c %s "$t/second")
	tail -c "$size" "$t/t2.got" >"$t/tail"
	same_file "$t/second" "$t/tail"
	run -0 accounted "tcp:127.0.0.1:$port"
	same $((200 + n)) "$(field ingress "$output")"
}

@test "grpcs:// delivers to lgr-recv over mTLS: the same frames, the same counts" {
	local t=$BATS_TEST_TMPDIR rp
	certs_ready
	logs in 1 3000 --source-id app
	put in -- --tag a=1 counter requests 5 --total 9
	put in -- gauge cpu=12.5:percent
	put in -- timer http 10 250
	put in -- event "app crashed" "exit 137"
	recv_start r --grpc 127.0.0.1:0 --tls-cert "$CERTS/doppler.crt" \
	    --tls-key "$CERTS/doppler.key" --tls-ca "$CERTS/ca.crt"
	rp=$RECV_PID
	run_ok lgr-route "${TLS[@]}" --to "grpcs://$RECV_ADDR" <"$t/in" 2>"$t/err"
	wait_until 200 has_bytes "$t/r.out" "$t/in"
	recv_stop "$rp" r
	same_file "$t/in" "$t/r.out"
	same "lgr-recv: level=info event=stop ingress_udp=0 ingress_grpc=3004 ingress_statsd=0 dropped=0" "$RECV_STOP"
	ERR=$t/err
	logged 1 "event=grpc_connected sink=grpcs://$RECV_ADDR target=$RECV_ADDR addr=$RECV_ADDR tls=yes"
	run -0 stopped "grpcs://$RECV_ADDR"
	same "ingress=3004 egress=3004 dropped=0" "$output"
	stop_last
	same "lgr-route: level=info event=stop ingress=3004 oversized=0" "$STOP"
}

@test "grpcs:// spreads batches over every address, each envelope sent once" {
	local t=$BATS_TEST_TMPDIR r1 r2 a1 a2 n1 n2
	certs_ready
	logs in 1 2000
	recv_start r1 --grpc 127.0.0.1:0 --tls-cert "$CERTS/doppler.crt" \
	    --tls-key "$CERTS/doppler.key" --tls-ca "$CERTS/ca.crt"
	r1=$RECV_PID a1=$RECV_ADDR
	recv_start r2 --grpc 127.0.0.1:0 --tls-cert "$CERTS/doppler.crt" \
	    --tls-key "$CERTS/doppler.key" --tls-ca "$CERTS/ca.crt"
	r2=$RECV_PID a2=$RECV_ADDR
	route_start 1 "${TLS[@]}" --batch-size 10 --to "grpcs://$a1,$a2"
	wait_until 200 logged 2 event=grpc_connected
	send "$t/in"
	wait_until 200 bytes_total "$t/in" "$t/r1.out" "$t/r2.out"
	route_end
	recv_stop "$r1" r1
	recv_stop "$r2" r2
	n1=$(decode --count "$t/r1.out")
	n2=$(decode --count "$t/r2.out")
	[ "$n1" -gt 0 ] && [ "$n2" -gt 0 ] ||
	    { lgr_diag "not spread: $n1 and $n2"; false; }
	same 2000 $((n1 + n2))
	# Each server sees its share in order; together, every payload once.
	decode --payloads "$t/r1.out" >"$t/p1"
	decode --payloads "$t/r2.out" >"$t/p2"
	run -0 sort -n -c "$t/p1"
	run -0 sort -n -c "$t/p2"
	sort -n "$t/p1" "$t/p2" >"$t/both"
	seq 1 2000 >"$t/want"
	same_file "$t/want" "$t/both"
	run -0 stopped "grpcs://$a1,$a2"
	same "ingress=2000 egress=2000 dropped=0" "$output"
}

@test "grpc:// sends to the python Ingress server in batches of --batch-size" {
	local t=$BATS_TEST_TMPDIR ip
	logs in 1 100 --source-id app
	ingress_start py
	ip=$INGRESS_PID
	run_ok lgr-route --batch-size 7 --to "grpc://127.0.0.1:$INGRESS_PORT" \
	    <"$t/in" 2>"$t/err"
	wait_until 200 has_bytes "$t/py.frames" "$t/in"
	ingress_stop "$ip"
	same_file "$t/in" "$t/py.frames"
	run -0 sed -n 's/.*event=message method=BatchSender size=\([0-9]*\)$/\1/p' "$t/py.err"
	local s sum=0
	for s in "${lines[@]}"; do
		[ "$s" -ge 1 ] && [ "$s" -le 7 ] || { lgr_diag "a batch of $s"; false; }
		sum=$((sum + s))
	done
	same 100 "$sum"
	[ "${#lines[@]}" -ge 15 ]
	ERR=$t/err
	logged 1 "event=grpc_connected sink=grpc://127.0.0.1:$INGRESS_PORT target=127.0.0.1:$INGRESS_PORT addr=127.0.0.1:$INGRESS_PORT tls=no"
	run -0 stopped "grpc://127.0.0.1:$INGRESS_PORT"
	same "ingress=100 egress=100 dropped=0" "$output"
}

@test "grpcs:// sends to the python Ingress server over mTLS; a partial batch leaves after --batch-interval" {
	local t=$BATS_TEST_TMPDIR ip
	certs_ready
	logs first 1 3 --source-id app
	logs second 4 500 --source-id app
	ingress_start py --certs "$CERTS" --name doppler
	ip=$INGRESS_PID
	route_start 1 --tls-cert "$CERTS/client.crt" --tls-key "$CERTS/client.key" \
	    --tls-ca "$CERTS/ca.crt" --batch-size 100 --batch-interval 50 \
	    --to "grpcs://localhost:$INGRESS_PORT"
	# Three envelopes, far from a full batch: they leave all the same.
	send "$t/first"
	wait_until 200 has_bytes "$t/py.frames" "$t/first"
	send "$t/second"
	wait_until 200 has_bytes "$t/py.frames" "$t/first" "$t/second"
	route_end
	ingress_stop "$ip"
	cat "$t/first" "$t/second" >"$t/want"
	same_file "$t/want" "$t/py.frames"
	run -0 grep -m 1 'event=message ' "$t/py.err"
	same "ingress_server: level=info event=message method=BatchSender size=3" "$output"
	run -0 stopped "grpcs://localhost:$INGRESS_PORT"
	same "ingress=500 egress=500 dropped=0" "$output"
}

@test "grpcs:// checks the server's name: --tls-server-name" {
	local t=$BATS_TEST_TMPDIR rp
	certs_ready
	logs in 1 50
	recv_start r --grpc 127.0.0.1:0 --tls-cert "$CERTS/doppler.crt" \
	    --tls-key "$CERTS/doppler.key" --tls-ca "$CERTS/ca.crt"
	rp=$RECV_PID
	# The doppler certificate does not say metron: nothing is sent.
	run_ok lgr-route "${TLS[@]}" --tls-server-name metron --drain-timeout 1 \
	    --to "grpcs://$RECV_ADDR" --to "file:$t/all" <"$t/in" 2>"$t/err"
	same_file "$t/in" "$t/all"
	ERR=$t/err
	logged 1 "event=grpc_connect_failed sink=grpcs://$RECV_ADDR"
	run -0 stopped "grpcs://$RECV_ADDR"
	same "ingress=50 egress=0 dropped=50" "$output"
	[ ! -s "$t/r.out" ]
	# It says localhost too (and doppler, the default).
	run_ok lgr-route "${TLS[@]}" --tls-server-name localhost \
	    --to "grpcs://$RECV_ADDR" <"$t/in" 2>"$t/err"
	run_ok lgr-route "${TLS[@]}" --to "grpcs://$RECV_ADDR" <"$t/in" 2>"$t/err"
	wait_until 200 has_bytes "$t/r.out" "$t/in" "$t/in"
	recv_stop "$rp" r
	cat "$t/in" "$t/in" >"$t/want"
	same_file "$t/want" "$t/r.out"
}

# --- isolation --------------------------------------------------------------------

@test "a sink whose reader is stuck drops its own frames; another gets every one" {
	local t=$BATS_TEST_TMPDIR i start ms c
	for i in $(seq 0 9); do
		put "chunk$i" want -- --count 100 --size 1000 log "$i"
	done
	route_start 2 --sink-buffer 200 --drain-timeout 2 \
	    --to "exec:sleep 60" --to "file:$t/all"
	for i in $(seq 0 9); do
		send "$t/chunk$i"
		cat "$t/chunk$i" >>"$t/sofar"
		wait_until 200 has_bytes "$t/all" "$t/sofar"
	done
	start=$(now_ms)
	route_end
	ms=$(($(now_ms) - start))
	same_file "$t/want" "$t/all"
	run -0 stopped "file:$t/all"
	same "ingress=1000 egress=1000 dropped=0" "$output"
	c=$(accounted "exec:sleep 60")
	same 1000 "$(field ingress "$c")"
	[ "$(field dropped "$c")" -gt 0 ] || { lgr_diag "nothing dropped: $c"; false; }
	logged 1 'event=sink_stuck sink="exec:sleep 60" grace_ms=2000'
	[[ $(cat "$ERR") =~ event=exec_exited\ sink=\"exec:sleep\ 60\"\ pid=[0-9]+\ signal=15 ]]
	# --drain-timeout 2, and a margin.
	[ "$ms" -lt 5000 ] || { lgr_diag "took $ms ms to stop"; false; }
}

@test "unreachable grpcs:// destinations never hold up the other sinks" {
	local t=$BATS_TEST_TMPDIR i refused hole start ms
	certs_ready
	# A port that refuses, and one that takes the connection and then
	# never answers the TLS handshake.
	listen_start r --tcp 127.0.0.1:0 --later
	refused=$LISTEN_PORT
	listen_start h --tcp 127.0.0.1:0 --hold
	hole=$LISTEN_PORT
	for i in $(seq 0 9); do
		logs "chunk$i" $((i * 100 + 1)) $((i * 100 + 100))
		cat "$t/chunk$i" >>"$t/want"
	done
	route_start 3 "${TLS[@]}" --drain-timeout 1 \
	    --to "grpcs://127.0.0.1:$refused" --to "grpcs://127.0.0.1:$hole" \
	    --to "file:$t/all"
	for i in $(seq 0 9); do
		send "$t/chunk$i"
		cat "$t/chunk$i" >>"$t/sofar"
		wait_until 100 has_bytes "$t/all" "$t/sofar"
	done
	wait_until 200 grep -q event=accepted "$t/h.err"
	start=$(now_ms)
	route_end
	ms=$(($(now_ms) - start))
	same_file "$t/want" "$t/all"
	logged 1 "event=grpc_connect_failed sink=grpcs://127.0.0.1:$refused"
	run -0 stopped "grpcs://127.0.0.1:$refused"
	same "ingress=1000 egress=0 dropped=1000" "$output"
	run -0 stopped "grpcs://127.0.0.1:$hole"
	same "ingress=1000 egress=0 dropped=1000" "$output"
	# Two stuck sinks with --drain-timeout 1, and a margin.
	[ "$ms" -lt 6000 ] || { lgr_diag "took $ms ms to stop"; false; }
}

# --- reload ---------------------------------------------------------------------

@test "SIGHUP applies an edited bindings file: added sinks start, removed ones stop, the rest see no gap" {
	local t=$BATS_TEST_TMPDIR
	empty want.a want.b want.bc
	put chunk1 want.a -- --source-id a log a-1
	put chunk1 want.b -- --source-id b log b-1
	put chunk1 -- --source-id c log c-1
	put chunk1 want.a -- --source-id a counter a-2 1
	put chunk1 want.b -- --source-id b log b-2
	put chunk2 want.a -- --source-id a log a-3
	put chunk2 want.bc -- --source-id b log b-3
	put chunk2 want.bc -- --source-id c gauge c-2=1
	put chunk2 want.bc -- --source-id b log b-4
	cat >"$t/bindings" <<-EOF
	# drains
	source_id=a file:$t/a
	file:$t/all
	source_id=b file:$t/b
	EOF
	route_start 3 --bindings "$t/bindings" --to "file:$t/fixed"
	send "$t/chunk1"
	wait_until 200 has_bytes "$t/all" "$t/chunk1"
	wait_until 200 has_bytes "$t/b" "$t/want.b"
	cat >"$t/bindings" <<-EOF
	# drains, edited: b goes, b and c come
	source_id=b,c file:$t/bc
	file:$t/all
	source_id=a file:$t/a   # unchanged
	EOF
	kill -HUP "$ROUTE_PID"
	wait_until 200 logged 1 event=bindings_loaded
	send "$t/chunk2"
	route_end
	cat "$t/chunk1" "$t/chunk2" >"$t/want.all"
	same_file "$t/want.all" "$t/all"
	same_file "$t/want.all" "$t/fixed"
	same_file "$t/want.a" "$t/a"
	same_file "$t/want.b" "$t/b"
	same_file "$t/want.bc" "$t/bc"
	run -0 grep -E 'event=(sink_st|bindings)' "$ERR"
	same 11 "${#lines[@]}"
	# The removed sink drains on its own thread, so its stop line may
	# come before or after the reload's other lines.
	run -0 grep -c "event=sink_stopped sink=\"file:$t/b\" ingress=2 egress=2 dropped=0" "$ERR"
	same 1 "$output"
	run -0 grep -c "event=sink_started sink=\"file:$t/bc\"" "$ERR"
	same 1 "$output"
	run -0 grep -c "event=bindings_loaded file=$t/bindings added=1 removed=1" "$ERR"
	same 1 "$output"
	# Unchanged sinks ran from start to end, once.
	run -0 grep -c "event=sink_started sink=\"file:$t/all\"" "$ERR"
	same 1 "$output"
	run -0 stopped "file:$t/all"
	same "ingress=9 egress=9 dropped=0" "$output"
	run -0 stopped "file:$t/a"
	same "ingress=3 egress=3 dropped=0" "$output"
	run -0 stopped "file:$t/bc"
	same "ingress=3 egress=3 dropped=0" "$output"
}

@test "SIGHUP with a bad or missing bindings file keeps the sinks running" {
	local t=$BATS_TEST_TMPDIR
	logs chunk1 1 10
	logs chunk2 11 20
	logs chunk3 21 30
	logs chunk4 31 40
	printf 'file:%s/a\nfile:%s/b\n' "$t" "$t" >"$t/bindings"
	route_start 2 --bindings "$t/bindings"
	send "$t/chunk1"
	wait_until 200 has_bytes "$t/a" "$t/chunk1"
	# The first line alone would remove b; the bad third line refuses all.
	printf 'file:%s/a\nfile:%s/new\ntcp:127.0.0.1\n' "$t" "$t" >"$t/bindings"
	kill -HUP "$ROUTE_PID"
	wait_until 200 logged 1 event=bindings_kept
	send "$t/chunk2"
	wait_until 200 has_bytes "$t/b" "$t/chunk1" "$t/chunk2"
	rm "$t/bindings"
	kill -HUP "$ROUTE_PID"
	wait_until 200 logged 2 event=bindings_kept
	send "$t/chunk3"
	wait_until 200 has_bytes "$t/b" "$t/chunk1" "$t/chunk2" "$t/chunk3"
	# A good file again applies.
	printf 'file:%s/a\n' "$t" >"$t/bindings"
	kill -HUP "$ROUTE_PID"
	wait_until 200 logged 1 event=bindings_loaded
	send "$t/chunk4"
	route_end
	cat "$t/chunk1" "$t/chunk2" "$t/chunk3" "$t/chunk4" >"$t/want.a"
	cat "$t/chunk1" "$t/chunk2" "$t/chunk3" >"$t/want.b"
	same_file "$t/want.a" "$t/a"
	same_file "$t/want.b" "$t/b"
	[ ! -e "$t/new" ]
	run -0 grep -E 'event=bindings' "$ERR"
	same 5 "${#lines[@]}"
	same "lgr-route: level=error event=bindings_failed file=$t/bindings line=3 reason=\"'127.0.0.1' is not HOST:PORT\"" "${lines[0]}"
	same "lgr-route: level=warn event=bindings_kept file=$t/bindings" "${lines[1]}"
	same "lgr-route: level=error event=bindings_failed file=$t/bindings error=\"No such file or directory\"" "${lines[2]}"
	same "lgr-route: level=warn event=bindings_kept file=$t/bindings" "${lines[3]}"
	same "lgr-route: level=info event=bindings_loaded file=$t/bindings added=0 removed=1" "${lines[4]}"
}

@test "SIGHUP reopens file: sinks, so a rotated log starts anew" {
	local t=$BATS_TEST_TMPDIR
	logs chunk1 1 100
	logs chunk2 101 200
	route_start 1 --to "file:$t/log"
	send "$t/chunk1"
	wait_until 200 has_bytes "$t/log" "$t/chunk1"
	mv "$t/log" "$t/log.1"
	kill -HUP "$ROUTE_PID"
	wait_until 200 logged 1 "event=sink_reopened sink=\"file:$t/log\""
	send "$t/chunk2"
	route_end
	same_file "$t/chunk1" "$t/log.1"
	same_file "$t/chunk2" "$t/log"
	run -0 stopped "file:$t/log"
	same "ingress=200 egress=200 dropped=0" "$output"
}

@test "removing a stuck sink on reload does not hold up the other sinks" {
	local t=$BATS_TEST_TMPDIR
	put big -- --count 200 --size 1000 log big
	put after -- log after
	printf 'exec:sleep 60\nfile:%s/all\n' "$t" >"$t/bindings"
	route_start 2 --drain-timeout 10 --bindings "$t/bindings"
	send "$t/big"
	wait_until 200 has_bytes "$t/all" "$t/big"
	printf 'file:%s/all\n' "$t" >"$t/bindings"
	kill -HUP "$ROUTE_PID"
	send "$t/after"
	# The stuck sink may take its --drain-timeout to stop; the file sink
	# must not wait for it.
	wait_until 60 has_bytes "$t/all" "$t/big" "$t/after"
	wait_until 400 logged 1 event=bindings_loaded
	route_end
	run -0 accounted "exec:sleep 60"
	same 200 "$(field ingress "$output")"
}

# --- bad input ------------------------------------------------------------------

@test "a stream that ends inside a frame is an error naming its offset; frames before it reach every sink" {
	local t=$BATS_TEST_TMPDIR at
	empty want.log
	put good want.log -- log a
	put good -- counter c 1
	at=$(stat -c %s "$t/good")
	cp "$t/good" "$t/in"
	frame_hex 50 0801 >>"$t/in"
	must_fail -1 lgr-route --to "file:$t/all" --sink "kind=log exec:cat >$t/log" \
	    <"$t/in" 2>"$t/err"
	same_file "$t/good" "$t/all"
	same_file "$t/want.log" "$t/log"
	ERR=$t/err
	logged 1 "lgr-route: level=error event=truncated_frame offset=$at"
	stop_last
	same "lgr-route: level=info event=stop ingress=2 oversized=0" "$STOP"
	run -0 stopped "file:$t/all"
	same "ingress=2 egress=2 dropped=0" "$output"
	# Inside the header, too.
	cp "$t/good" "$t/in"
	printf '\000\000' >>"$t/in"
	must_fail -1 lgr-route --to "file:$t/all2" <"$t/in" 2>"$t/err"
	same_file "$t/good" "$t/all2"
	logged 1 "lgr-route: level=error event=truncated_frame offset=$at"
}

@test "a frame over --max-frame is skipped and counted; the frames around it pass" {
	local t=$BATS_TEST_TMPDIR at
	put good -- log a
	cp "$t/good" "$t/in"
	at=$(stat -c %s "$t/in")
	put in -- --size 200 log big
	put last -- log c
	cat "$t/last" >>"$t/in"
	cat "$t/last" >>"$t/good"
	# And one far bigger than any read.
	frame_hex 3145728 "" >>"$t/in"
	head -c 3145728 /dev/zero >>"$t/in"
	cat "$t/last" >>"$t/in"
	cat "$t/last" >>"$t/good"
	run_ok lgr-route --max-frame 100 --to "file:$t/all" --sink "kind=log file:$t/log" \
	    <"$t/in" 2>"$t/err"
	same_file "$t/good" "$t/all"
	same_file "$t/good" "$t/log"
	ERR=$t/err
	run -0 grep event=frame_skipped "$t/err"
	same 2 "${#lines[@]}"
	[[ ${lines[0]} == "lgr-route: level=warn event=frame_skipped offset=$at len="*" max=100" ]]
	stop_last
	same "lgr-route: level=info event=stop ingress=3 oversized=2" "$STOP"
	run -0 stopped "file:$t/all"
	same "ingress=3 egress=3 dropped=0" "$output"
}

@test "empty input: exit 0, empty sinks and zero counts" {
	local t=$BATS_TEST_TMPDIR
	run_ok lgr-route --to "file:$t/all" --sink "kind=log file:$t/log" \
	    --to "exec:cat >$t/x" </dev/null 2>"$t/err"
	[ -f "$t/all" ] && [ ! -s "$t/all" ]
	[ -f "$t/log" ] && [ ! -s "$t/log" ]
	[ -f "$t/x" ] && [ ! -s "$t/x" ]
	ERR=$t/err
	run -0 stopped "file:$t/all"
	same "ingress=0 egress=0 dropped=0" "$output"
	run -0 stopped "exec:cat >$t/x"
	same "ingress=0 egress=0 dropped=0" "$output"
	stop_last
	same "lgr-route: level=info event=stop ingress=0 oversized=0" "$STOP"
}

# --- signals ----------------------------------------------------------------------

@test "SIGTERM while input is still open flushes every sink and exits 0" {
	local t=$BATS_TEST_TMPDIR st=0
	logs in 1 500
	route_start 2 --to "file:$t/a" --to "exec:cat >$t/b"
	send "$t/in"
	wait_until 200 has_bytes "$t/a" "$t/in"
	kill -TERM "$ROUTE_PID"
	wait "$ROUTE_PID" || st=$?
	exec {W}>&-
	same 0 "$st"
	same_file "$t/in" "$t/a"
	same_file "$t/in" "$t/b"
	logged 1 "lgr-route: level=info event=signal signal=TERM action=stop"
	stop_last
	same "lgr-route: level=info event=stop ingress=500 oversized=0" "$STOP"
}

@test "SIGTERM stops it while frames keep coming" {
	local t=$BATS_TEST_TMPDIR st=0 emit late=
	route_start 2 --to "exec:head -c 4096 >$t/head; cat >/dev/null" \
	    --sink "kind=counter file:$t/none"
	put big -- --count 10000 log x
	# A stream with no end, from a writer SIGTERM stops (cat, in a loop).
	while :; do cat "$t/big"; done >&"$W" 3>&- {LGR_DIAG}>&- &
	emit=$!
	wait_until 200 test -s "$t/head"
	kill -TERM "$ROUTE_PID"
	wait_until 100 gone "$ROUTE_PID" || late=1
	# End the stream either way, so nothing waits on a route still running.
	lgr_kill_tree "$emit"
	wait "$emit" || true
	[ -z "$late" ] || { lgr_diag "still running 5 s after SIGTERM"; false; }
	wait "$ROUTE_PID" || st=$?
	same 0 "$st"
	logged 1 "event=signal signal=TERM action=stop"
	stop_last
}

@test "SIGHUP reloads the bindings file while frames keep coming" {
	local t=$BATS_TEST_TMPDIR emit late=
	printf 'exec:head -c 4096 >%s/head; cat >/dev/null\n' "$t" >"$t/bindings"
	route_start 1 --bindings "$t/bindings"
	put big -- --count 10000 log x
	while :; do cat "$t/big"; done >&"$W" 3>&- {LGR_DIAG}>&- &
	emit=$!
	wait_until 200 test -s "$t/head"
	printf 'kind=counter file:%s/none\n' "$t" >>"$t/bindings"
	kill -HUP "$ROUTE_PID"
	wait_until 100 logged 1 event=bindings_loaded || late=1
	lgr_kill_tree "$emit"
	wait "$emit" || true
	[ -z "$late" ] || { lgr_diag "no reload 5 s after SIGHUP"; false; }
	route_end
	[ -f "$t/none" ]
}

# --- self-metrics -------------------------------------------------------------

# counters FILE: "source_id name tag=value,... total" per Counter envelope
# in FILE, from python's reading of it.
counters() {
	decode --json --partial "$1" >"$1.json" || return 1
	jq -r 'select(.counter) | [.source_id, .counter.name,
	    (.tags | to_entries | map("\(.key)=\(.value)") | join(",")),
	    .counter.total] | join(" ")' "$1.json"
}

# quick_counters FILE: the same, read with lgr-cat: quick enough to poll
# with, and content with a frame cut short at the end of FILE.
quick_counters() {
	lgr-cat <"$1" >"$1.quick" 2>/dev/null
	jq -r 'select(.counter) | [.source_id, .counter.name,
	    (.tags | to_entries | map("\(.key)=\(.value)") | join(",")),
	    .counter.total] | join(" ")' "$1.quick"
}

# tick_until_counted SPEC N: send a tick frame (source_id tick) while the
# counters in $BATS_TEST_TMPDIR/M do not yet say sink SPEC's egress is N;
# 100 ticks at most. Counts the ticks in TICKS.
tick_until_counted() {
	local n=0
	while ! quick_counters "$BATS_TEST_TMPDIR/M" |
	    grep -qxF "probe egress origin=lgr-route,sink=$1 $2"; do
		n=$((n + 1))
		[ "$n" -le 100 ] || return 1
		send "$BATS_TEST_TMPDIR/tick"
		TICKS=$((TICKS + 1))
		sleep 0.05
	done
}

@test "--metrics-interval routes its counters through the sinks like any frame" {
	local t=$BATS_TEST_TMPDIR spec_l spec_m c name
	TICKS=0
	logs app 1 5 --source-id app
	put tick -- --source-id tick log tick
	spec_m="kind=counter file:$t/M"
	spec_l="source_id=app file:$t/L"
	route_start 3 --metrics-interval 0.1 --source-id probe \
	    --sink "$spec_m" --sink "$spec_l" --to "file:$t/all"
	send "$t/app"
	tick_until_counted "$spec_l" 5
	route_end
	# The data frames went where their filters say, untouched.
	same_file "$t/app" "$t/L"
	run_ok decode --json "$t/all" >"$t/all.json"
	run -0 jq -r 'select(.log) | .source_id' "$t/all.json"
	same 5 "$(grep -c '^app$' <<<"$output")"
	same "$TICKS" "$(grep -c '^tick$' <<<"$output")"
	# M holds counters only, all the route's own.
	run -0 counters "$t/M"
	same "$(decode --count "$t/M")" "${#lines[@]}"
	for c in "${lines[@]}"; do
		name=$(cut -d' ' -f2 <<<"$c")
		case $name in
		ingress | egress | dropped) ;;
		*) lgr_diag "unexpected counter: $c"; false ;;
		esac
		[[ $c == "probe $name origin=lgr-route"* ]] ||
		    { lgr_diag "not tagged as lgr-route's: $c"; false; }
	done
	contains "$output" "probe egress origin=lgr-route,sink=$spec_l 5"
	contains "$output" "probe dropped origin=lgr-route,sink=$spec_l 0"
	contains "$output" "probe egress origin=lgr-route,sink=$spec_m "
	contains "$output" "probe dropped origin=lgr-route,sink=file:$t/all 0"
	[[ $output == *"probe ingress origin=lgr-route "* ]]
	# The counters are counted in the sinks they reach.
	run -0 stopped "file:$t/M"
	same "ingress=$(decode --count "$t/M") egress=$(decode --count "$t/M") dropped=0" "$output"
}

@test "the ingress count is the frames read, not the route's own counters" {
	local t=$BATS_TEST_TMPDIR total
	TICKS=0
	logs app 1 5 --source-id app
	put tick -- --source-id tick log tick
	route_start 2 --metrics-interval 0.1 --source-id probe \
	    --sink "kind=counter file:$t/M" --sink "source_id=app file:$t/L"
	send "$t/app"
	tick_until_counted "source_id=app file:$t/L" 5
	route_end
	same "lgr-route: level=info event=stop ingress=$((5 + TICKS)) oversized=0" "$STOP"
	run -0 counters "$t/M"
	total=$(grep '^probe ingress ' <<<"$output" | tail -n 1 | cut -d' ' -f4)
	[ "$total" -le $((5 + TICKS)) ] ||
	    { lgr_diag "ingress $total, but $((5 + TICKS)) frames were read"; false; }
}

# rounds N FILE: FILE holds N rounds of counters or more (an ingress
# counter per round).
rounds() {
	local c n
	c=$(quick_counters "$2") || return 1
	n=$(grep -c '^probe ingress ' <<<"$c") || n=0
	[ "$n" -ge "$1" ]
}

@test "--metrics-interval emits counters every interval while the input is idle" {
	local t=$BATS_TEST_TMPDIR
	logs app 1 3 --source-id app
	route_start 1 --metrics-interval 0.1 --source-id probe \
	    --sink "kind=counter file:$t/M"
	send "$t/app"
	# 0.1 s apart: three rounds come well within the wait.
	wait_until 40 rounds 3 "$t/M" ||
	    { lgr_diag "fewer than 3 rounds of counters with the input idle"; false; }
	route_end
	run -0 counters "$t/M"
	contains "$output" "probe ingress origin=lgr-route 3"
}

# --- log lines --------------------------------------------------------------------

@test "log lines name the whole destination, however long" {
	local t=$BATS_TEST_TMPDIR dir
	dir=$t/$(printf 'd%.0s' $(seq 1 100))/$(printf 'e%.0s' $(seq 1 100))
	mkdir -p "$dir"
	put in -- log x
	run_ok lgr-route --to "file:$dir/$(printf 'f%.0s' $(seq 1 100))" \
	    <"$t/in" 2>"$t/err"
	ERR=$t/err
	run -0 stopped "file:$dir/$(printf 'f%.0s' $(seq 1 100))"
	same "ingress=1 egress=1 dropped=0" "$output"
}
