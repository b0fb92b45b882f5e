#!/usr/bin/env bats
# lgr-diode: frames in, the same frames out, through a ring that never
# makes its writer wait; when the output is slow the oldest frames go and
# are counted. Inputs are made with lgr-emit and by hand; outputs are
# compared byte for byte, decoded with python3-protobuf and read with
# lgr-cat.

load lib

TS=1700000000000000000

# frames NAME ARGS...: lgr-emit ARGS into $BATS_TEST_TMPDIR/NAME, appending.
frames() {
	local f=$BATS_TEST_TMPDIR/$1
	shift
	run_ok lgr-emit "$@" >>"$f"
}

# stop_line FILE: the final counts line, checked for its shape.
stop_line() {
	local l
	l=$(last_line "$1")
	[[ $l == "lgr-diode: level=info event=stop ingress="* ]] ||
	    { lgr_diag "no stop line last in $1: $l"; return 1; }
	printf '%s\n' "$l"
}

# --- command line ----------------------------------------------------------

@test "--help prints the usage on stdout and exits 0" {
	run -0 --separate-stderr lgr-diode --help
	same "usage: lgr-diode [--size N] [--bytes BYTES] [--max-frame BYTES]" "${lines[0]}"
	contains "$output" "--metrics-interval SECONDS"
	same "" "$stderr"
}

@test "--version prints one line and exits 0" {
	run -0 --separate-stderr lgr-diode --version
	same 1 "${#lines[@]}"
	[[ ${lines[0]} =~ ^lgr-diode\ [0-9]+\.[0-9]+ ]]
	same "" "$stderr"
}

@test "an unknown flag is a usage error naming it" {
	run -2 --separate-stderr lgr-diode --ring 5 </dev/null
	same "lgr-diode: unknown option --ring" "${stderr_lines[0]}"
	[[ ${stderr_lines[1]} == "usage: lgr-diode "* ]]
	same "" "$output"
}

@test "bad flag values are usage errors naming the flag" {
	local flag args
	while read -r flag args; do
		# shellcheck disable=SC2086
		run -2 --separate-stderr lgr-diode $args </dev/null
		[[ ${stderr_lines[0]} == "lgr-diode: "*"$flag"* ]] ||
		    { lgr_diag "$args: ${stderr_lines[0]}"; false; }
		same "" "$output"
	done <<-'EOF'
	--size --size 0
	--size --size x
	--size --size -1
	--size --size 100000001
	--bytes --bytes 1023
	--bytes --bytes 1k
	--max-frame --max-frame 15
	--max-frame --max-frame 67108865
	--metrics-interval --metrics-interval -1
	--metrics-interval --metrics-interval soon
	--metrics-interval --metrics-interval 86401
	--bytes --bytes 2000
	--bytes --max-frame 1000 --bytes 2007
	EOF
	run -2 --separate-stderr lgr-diode --bytes 2000 </dev/null
	same "lgr-diode: --bytes must be at least twice --max-frame plus 8 (2097160)" "${stderr_lines[0]}"
	run -2 --separate-stderr lgr-diode --source-id
	same "lgr-diode: option --source-id needs a value" "${stderr_lines[0]}"
}

@test "an unexpected argument is a usage error" {
	run -2 --separate-stderr lgr-diode extra </dev/null
	same "lgr-diode: unexpected argument 'extra'" "${stderr_lines[0]}"
}

@test "--bytes of exactly twice --max-frame plus 8 is taken" {
	frames in --timestamp 1 log x
	run_ok lgr-diode --max-frame 1000 --bytes 2008 <"$BATS_TEST_TMPDIR/in" \
	    >"$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/err"
	same_file "$BATS_TEST_TMPDIR/in" "$BATS_TEST_TMPDIR/out"
}

# --- frames through ----------------------------------------------------------

@test "every kind comes out byte for byte as it went in" {
	frames in --timestamp "$TS" --source-id app --instance-id 0 log hello
	frames in --timestamp "$TS" --source-id app --err log oops
	frames in --timestamp "$TS" --tag a=1 counter requests 5 --total 9
	frames in --timestamp "$TS" gauge cpu=12.5:percent mem=1024:bytes
	frames in --timestamp "$TS" timer http 10 250
	frames in --timestamp "$TS" event "app crashed" "exit 137"
	run_ok lgr-diode <"$BATS_TEST_TMPDIR/in" >"$BATS_TEST_TMPDIR/out" \
	    2>"$BATS_TEST_TMPDIR/err"
	same_file "$BATS_TEST_TMPDIR/in" "$BATS_TEST_TMPDIR/out"
	run -0 stop_line "$BATS_TEST_TMPDIR/err"
	same "lgr-diode: level=info event=stop ingress=6 egress=6 dropped=0 oversized=0" "$output"
	run -0 wc -l <"$BATS_TEST_TMPDIR/err"
	same 1 "$output"
	run_ok lgr-cat <"$BATS_TEST_TMPDIR/out" >"$BATS_TEST_TMPDIR/json"
	run -0 cat "$BATS_TEST_TMPDIR/json"
	same 6 "${#lines[@]}"
	same '{"timestamp":"1700000000000000000","source_id":"app","instance_id":"0","deprecated_tags":{},"tags":{},"log":{"payload":"aGVsbG8=","type":"OUT"}}' "${lines[0]}"
	same '{"timestamp":"1700000000000000000","source_id":"app","instance_id":"","deprecated_tags":{},"tags":{},"log":{"payload":"b29wcw==","type":"ERR"}}' "${lines[1]}"
	same '{"timestamp":"1700000000000000000","source_id":"lgr-emit","instance_id":"","deprecated_tags":{},"tags":{"a":"1"},"counter":{"name":"requests","delta":"5","total":"9"}}' "${lines[2]}"
	same '{"timestamp":"1700000000000000000","source_id":"lgr-emit","instance_id":"","deprecated_tags":{},"tags":{},"gauge":{"metrics":{"cpu":{"unit":"percent","value":12.5},"mem":{"unit":"bytes","value":1024}}}}' "${lines[3]}"
	same '{"timestamp":"1700000000000000000","source_id":"lgr-emit","instance_id":"","deprecated_tags":{},"tags":{},"timer":{"name":"http","start":"10","stop":"250"}}' "${lines[4]}"
	same '{"timestamp":"1700000000000000000","source_id":"lgr-emit","instance_id":"","deprecated_tags":{},"tags":{},"event":{"title":"app crashed","body":"exit 137"}}' "${lines[5]}"
}

@test "a stream that fits in the ring comes out whole, however fast it comes" {
	seq 1 100000 >"$BATS_TEST_TMPDIR/lines"
	run_ok lgr-emit log <"$BATS_TEST_TMPDIR/lines" >"$BATS_TEST_TMPDIR/in"
	frames in --count 50 --size 60000 event big body
	run_ok lgr-diode --size 100050 --bytes 33554432 <"$BATS_TEST_TMPDIR/in" \
	    >"$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/err"
	same_file "$BATS_TEST_TMPDIR/in" "$BATS_TEST_TMPDIR/out"
	run -0 stop_line "$BATS_TEST_TMPDIR/err"
	same "lgr-diode: level=info event=stop ingress=100050 egress=100050 dropped=0 oversized=0" "$output"
}

@test "a stream faster than its output comes out in order, every frame accounted for" {
	local egress
	seq 1 100000 >"$BATS_TEST_TMPDIR/lines"
	run_ok lgr-emit log <"$BATS_TEST_TMPDIR/lines" >"$BATS_TEST_TMPDIR/in"
	run_ok lgr-diode <"$BATS_TEST_TMPDIR/in" >"$BATS_TEST_TMPDIR/out" \
	    2>"$BATS_TEST_TMPDIR/err"
	run -0 stop_line "$BATS_TEST_TMPDIR/err"
	same 100000 "$(field ingress "$output")"
	egress=$(field egress "$output")
	same 100000 $((egress + $(field dropped "$output")))
	run -0 decode --count "$BATS_TEST_TMPDIR/out"
	same "$egress" "$output"
	decode --payloads "$BATS_TEST_TMPDIR/out" >"$BATS_TEST_TMPDIR/payloads"
	run -0 awk 'NR > 1 && $1 + 0 <= prev + 0 { print "not increasing at " NR ": " prev " then " $1; exit 1 }
	    { prev = $1 } END { print prev }' "$BATS_TEST_TMPDIR/payloads"
	same 100000 "$output"
}

@test "a frame of exactly --max-frame bytes passes" {
	# The diode never decodes: any bytes make a frame.
	head -c 1048576 /dev/urandom >"$BATS_TEST_TMPDIR/body"
	frame_hex 1048576 "" >"$BATS_TEST_TMPDIR/in"
	cat "$BATS_TEST_TMPDIR/body" >>"$BATS_TEST_TMPDIR/in"
	frames in --timestamp 1 log after
	run_ok lgr-diode <"$BATS_TEST_TMPDIR/in" >"$BATS_TEST_TMPDIR/out" \
	    2>"$BATS_TEST_TMPDIR/err"
	same_file "$BATS_TEST_TMPDIR/in" "$BATS_TEST_TMPDIR/out"
	run -0 stop_line "$BATS_TEST_TMPDIR/err"
	same "lgr-diode: level=info event=stop ingress=2 egress=2 dropped=0 oversized=0" "$output"
}

@test "a frame that is not an envelope passes through untouched" {
	frames in --timestamp 1 log a
	frame_hex 3 ffffff >>"$BATS_TEST_TMPDIR/in"
	frame_hex 0 "" >>"$BATS_TEST_TMPDIR/in"
	frames in --timestamp 2 log b
	run_ok lgr-diode <"$BATS_TEST_TMPDIR/in" >"$BATS_TEST_TMPDIR/out" \
	    2>"$BATS_TEST_TMPDIR/err"
	same_file "$BATS_TEST_TMPDIR/in" "$BATS_TEST_TMPDIR/out"
	run -0 stop_line "$BATS_TEST_TMPDIR/err"
	same "lgr-diode: level=info event=stop ingress=4 egress=4 dropped=0 oversized=0" "$output"
}

@test "empty input gives no output, exit 0 and zero counts" {
	run -0 --separate-stderr lgr-diode </dev/null
	same "" "$output"
	same "lgr-diode: level=info event=stop ingress=0 egress=0 dropped=0 oversized=0" "$stderr"
}

# --- bad input ---------------------------------------------------------------

@test "a stream that ends inside a frame is an error naming its offset; frames before it come out" {
	frames good --timestamp 1 log a
	frames good --timestamp 2 counter c 1
	local at
	at=$(stat -c %s "$BATS_TEST_TMPDIR/good")
	cp "$BATS_TEST_TMPDIR/good" "$BATS_TEST_TMPDIR/in"
	frame_hex 50 0801 >>"$BATS_TEST_TMPDIR/in"
	must_fail -1 lgr-diode <"$BATS_TEST_TMPDIR/in" >"$BATS_TEST_TMPDIR/out" \
	    2>"$BATS_TEST_TMPDIR/err"
	same_file "$BATS_TEST_TMPDIR/good" "$BATS_TEST_TMPDIR/out"
	run -0 cat "$BATS_TEST_TMPDIR/err"
	same 2 "${#lines[@]}"
	same "lgr-diode: level=error event=truncated_frame offset=$at" "${lines[0]}"
	same "lgr-diode: level=info event=stop ingress=2 egress=2 dropped=0 oversized=0" "${lines[1]}"
}

@test "a stream that ends inside a frame header is truncated too" {
	frames good --timestamp 1 log a
	local at
	at=$(stat -c %s "$BATS_TEST_TMPDIR/good")
	cp "$BATS_TEST_TMPDIR/good" "$BATS_TEST_TMPDIR/in"
	printf '\000\000\000' >>"$BATS_TEST_TMPDIR/in"
	must_fail -1 lgr-diode <"$BATS_TEST_TMPDIR/in" >"$BATS_TEST_TMPDIR/out" \
	    2>"$BATS_TEST_TMPDIR/err"
	same_file "$BATS_TEST_TMPDIR/good" "$BATS_TEST_TMPDIR/out"
	run -0 cat "$BATS_TEST_TMPDIR/err"
	same "lgr-diode: level=error event=truncated_frame offset=$at" "${lines[0]}"
}

@test "a frame over --max-frame is skipped and counted; later frames come out" {
	frames good --timestamp 1 log a
	cp "$BATS_TEST_TMPDIR/good" "$BATS_TEST_TMPDIR/in"
	local at
	at=$(stat -c %s "$BATS_TEST_TMPDIR/in")
	frames in --timestamp 2 --size 200 log big
	frames last --timestamp 3 log c
	cat "$BATS_TEST_TMPDIR/last" >>"$BATS_TEST_TMPDIR/in"
	cat "$BATS_TEST_TMPDIR/last" >>"$BATS_TEST_TMPDIR/good"
	run_ok lgr-diode --max-frame 100 <"$BATS_TEST_TMPDIR/in" \
	    >"$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/err"
	same_file "$BATS_TEST_TMPDIR/good" "$BATS_TEST_TMPDIR/out"
	run -0 cat "$BATS_TEST_TMPDIR/err"
	same 2 "${#lines[@]}"
	[[ ${lines[0]} == "lgr-diode: level=warn event=frame_skipped offset=$at len="*" max=100" ]]
	same "lgr-diode: level=info event=stop ingress=2 egress=2 dropped=0 oversized=1" "${lines[1]}"
}

@test "a frame over --max-frame that straddles reads is skipped whole" {
	# 3 MiB of frame body, more than one read(2) and more than the
	# reader's buffer, between two good frames.
	frames good --timestamp 1 log a
	cp "$BATS_TEST_TMPDIR/good" "$BATS_TEST_TMPDIR/in"
	frame_hex 3145728 "" >>"$BATS_TEST_TMPDIR/in"
	head -c 3145728 /dev/zero >>"$BATS_TEST_TMPDIR/in"
	frames last --timestamp 2 log b
	cat "$BATS_TEST_TMPDIR/last" >>"$BATS_TEST_TMPDIR/in"
	cat "$BATS_TEST_TMPDIR/last" >>"$BATS_TEST_TMPDIR/good"
	run_ok lgr-diode <"$BATS_TEST_TMPDIR/in" >"$BATS_TEST_TMPDIR/out" \
	    2>"$BATS_TEST_TMPDIR/err"
	same_file "$BATS_TEST_TMPDIR/good" "$BATS_TEST_TMPDIR/out"
	run -0 stop_line "$BATS_TEST_TMPDIR/err"
	same "lgr-diode: level=info event=stop ingress=2 egress=2 dropped=0 oversized=1" "$output"
}

@test "garbage bytes that are no frame stream fail cleanly" {
	printf 'hello, this is not a frame stream\n' >"$BATS_TEST_TMPDIR/in"
	must_fail -1 lgr-diode <"$BATS_TEST_TMPDIR/in" >"$BATS_TEST_TMPDIR/out" \
	    2>"$BATS_TEST_TMPDIR/err"
	[ ! -s "$BATS_TEST_TMPDIR/out" ]
	run -0 cat "$BATS_TEST_TMPDIR/err"
	contains "$output" "event=frame_skipped offset=0"
	contains "$output" "event=truncated_frame offset=0"
	run -0 stop_line "$BATS_TEST_TMPDIR/err"
	same "lgr-diode: level=info event=stop ingress=0 egress=0 dropped=0 oversized=1" "$output"
	head -c 200000 /dev/urandom >"$BATS_TEST_TMPDIR/r"
	run --separate-stderr lgr-diode --max-frame 1000 <"$BATS_TEST_TMPDIR/r"
	no_signal
	[ "$status" -le 1 ]
}

# --- a slow output -----------------------------------------------------------

@test "with a slow output it keeps the newest frames and accounts for every one" {
	local reader egress dropped n
	seq 1 200000 >"$BATS_TEST_TMPDIR/lines"
	run_ok lgr-emit log <"$BATS_TEST_TMPDIR/lines" >"$BATS_TEST_TMPDIR/in"
	mkfifo "$BATS_TEST_TMPDIR/p"
	# The reader opens the pipe at once but reads only after 2 s.
	{ sleep 2; cat; } <"$BATS_TEST_TMPDIR/p" >"$BATS_TEST_TMPDIR/out" 3>&- &
	reader=$!
	run_ok lgr-diode --size 1000 <"$BATS_TEST_TMPDIR/in" \
	    >"$BATS_TEST_TMPDIR/p" 2>"$BATS_TEST_TMPDIR/err"
	wait "$reader"

	run -0 stop_line "$BATS_TEST_TMPDIR/err"
	same 200000 "$(field ingress "$output")"
	egress=$(field egress "$output")
	dropped=$(field dropped "$output")
	same 200000 $((egress + dropped))
	[ "$dropped" -gt 0 ] || { lgr_diag "nothing dropped: $output"; false; }

	run -0 decode --count "$BATS_TEST_TMPDIR/out"
	same "$egress" "$output"
	decode --payloads "$BATS_TEST_TMPDIR/out" >"$BATS_TEST_TMPDIR/payloads"
	run -0 awk 'NR > 1 && $1 + 0 <= prev + 0 { print "not increasing at " NR ": " prev " then " $1; exit 1 }
	    { prev = $1 } END { print prev }' "$BATS_TEST_TMPDIR/payloads"
	same 200000 "$output"
}

@test "with a slow output the newest frames are whole and unchanged" {
	local reader
	# Frames of many sizes, so overwritten runs never line up.
	run_ok lgr-emit --timestamp 1 --count 20000 --size 10 log a >"$BATS_TEST_TMPDIR/in"
	frames in --timestamp 1 --count 20000 --size 333 log b
	frames in --timestamp 1 --count 20000 --size 77 log c
	frames in --timestamp 1 --count 50 --size 1000 event last body
	mkfifo "$BATS_TEST_TMPDIR/p"
	{ sleep 1; cat; } <"$BATS_TEST_TMPDIR/p" >"$BATS_TEST_TMPDIR/out" 3>&- &
	reader=$!
	run_ok lgr-diode --size 500 --bytes 100000 --max-frame 2000 \
	    <"$BATS_TEST_TMPDIR/in" >"$BATS_TEST_TMPDIR/p" 2>"$BATS_TEST_TMPDIR/err"
	wait "$reader"
	run -0 stop_line "$BATS_TEST_TMPDIR/err"
	[ "$(field dropped "$output")" -gt 0 ]
	# Every frame that came out decodes, and the 50 newest all came out.
	run_ok decode "$BATS_TEST_TMPDIR/out" >"$BATS_TEST_TMPDIR/text"
	run -0 grep -c 'title: "last"' "$BATS_TEST_TMPDIR/text"
	same 50 "$output"
	run -0 tail -n 50 "$BATS_TEST_TMPDIR/text"
	local l body
	body=$(printf 'body%.0s' $(seq 1 250))
	for l in "${lines[@]}"; do
		same "timestamp: 1 source_id: \"lgr-emit\" event { title: \"last\" body: \"$body\" }" "$l"
	done
}

# --- signals ----------------------------------------------------------------

@test "SIGTERM while input is still open flushes and exits 0 with its counts" {
	local pid st=0 w
	mkfifo "$BATS_TEST_TMPDIR/in"
	lgr-diode <"$BATS_TEST_TMPDIR/in" >"$BATS_TEST_TMPDIR/out" \
	    2>"$BATS_TEST_TMPDIR/err" 3>&- &
	pid=$!
	exec {w}>"$BATS_TEST_TMPDIR/in"
	run_ok lgr-emit --timestamp 1 --count 7 log x >"$BATS_TEST_TMPDIR/want"
	cat "$BATS_TEST_TMPDIR/want" >&"$w"
	wait_until 200 has_frames 7 "$BATS_TEST_TMPDIR/out"
	kill -TERM "$pid"
	wait "$pid" || st=$?
	exec {w}>&-
	same 0 "$st"
	same_file "$BATS_TEST_TMPDIR/want" "$BATS_TEST_TMPDIR/out"
	run -0 stop_line "$BATS_TEST_TMPDIR/err"
	same "lgr-diode: level=info event=stop ingress=7 egress=7 dropped=0 oversized=0" "$output"
}

@test "SIGHUP is logged and changes nothing" {
	local pid st=0 w
	mkfifo "$BATS_TEST_TMPDIR/in"
	lgr-diode <"$BATS_TEST_TMPDIR/in" >"$BATS_TEST_TMPDIR/out" \
	    2>"$BATS_TEST_TMPDIR/err" 3>&- &
	pid=$!
	exec {w}>"$BATS_TEST_TMPDIR/in"
	run_ok lgr-emit --timestamp 1 --count 3 log x >"$BATS_TEST_TMPDIR/want"
	cat "$BATS_TEST_TMPDIR/want" >&"$w"
	wait_until 200 has_frames 3 "$BATS_TEST_TMPDIR/out"
	kill -HUP "$pid"
	wait_until 200 grep -q 'event=sighup' "$BATS_TEST_TMPDIR/err"
	cat "$BATS_TEST_TMPDIR/want" >&"$w"
	exec {w}>&-
	wait "$pid" || st=$?
	same 0 "$st"
	cat "$BATS_TEST_TMPDIR/want" >>"$BATS_TEST_TMPDIR/want2"
	cat "$BATS_TEST_TMPDIR/want" >>"$BATS_TEST_TMPDIR/want2"
	same_file "$BATS_TEST_TMPDIR/want2" "$BATS_TEST_TMPDIR/out"
	run -0 cat "$BATS_TEST_TMPDIR/err"
	same "lgr-diode: level=info event=sighup action=none" "${lines[0]}"
	same "lgr-diode: level=info event=stop ingress=6 egress=6 dropped=0 oversized=0" "${lines[1]}"
}

@test "a closed stdout gives exit 1, a write_failed line and the counts" {
	seq 1 300000 >"$BATS_TEST_TMPDIR/lines"
	run_ok lgr-emit log <"$BATS_TEST_TMPDIR/lines" >"$BATS_TEST_TMPDIR/in"
	mkfifo "$BATS_TEST_TMPDIR/p"
	head -c 1000 <"$BATS_TEST_TMPDIR/p" >/dev/null 3>&- &
	must_fail -1 lgr-diode <"$BATS_TEST_TMPDIR/in" >"$BATS_TEST_TMPDIR/p" \
	    2>"$BATS_TEST_TMPDIR/err"
	run -0 cat "$BATS_TEST_TMPDIR/err"
	contains "$output" 'lgr-diode: level=error event=write_failed error="Broken pipe"'
	run -0 stop_line "$BATS_TEST_TMPDIR/err"
	local ingress egress dropped
	ingress=$(field ingress "$output")
	egress=$(field egress "$output")
	dropped=$(field dropped "$output")
	same "$ingress" $((egress + dropped))
}

# --- self-metrics ------------------------------------------------------------

# counters FILE: "source_id name tag=value... total" per Counter envelope
# in FILE, from python's reading of it.
counters() {
	decode --json --partial "$1" >"$1.json" || return 1
	jq -r 'select(.counter) | [.source_id, .counter.name,
	    (.tags | to_entries | map("\(.key)=\(.value)") | join(",")),
	    .counter.total] | join(" ")' "$1.json"
}

# metrics_show N FILE: FILE holds counters saying ingress and egress are N.
metrics_show() {
	local c
	c=$(counters "$2") || return 1
	grep -qx "probe ingress origin=lgr-diode $1" <<<"$c" &&
	    grep -qx "probe egress origin=lgr-diode $1" <<<"$c"
}

@test "--metrics-interval emits ingress, egress and dropped counters into the output" {
	local pid st=0 w before after
	mkfifo "$BATS_TEST_TMPDIR/in"
	before=$(date +%s%N)
	lgr-diode --metrics-interval 0.1 --source-id probe <"$BATS_TEST_TMPDIR/in" \
	    >"$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/err" 3>&- &
	pid=$!
	exec {w}>"$BATS_TEST_TMPDIR/in"
	run_ok lgr-emit --timestamp 1 --source-id app --count 5 log x \
	    >"$BATS_TEST_TMPDIR/want"
	cat "$BATS_TEST_TMPDIR/want" >&"$w"
	wait_until 200 metrics_show 5 "$BATS_TEST_TMPDIR/out"
	kill -TERM "$pid"
	wait "$pid" || st=$?
	exec {w}>&-
	after=$(date +%s%N)
	same 0 "$st"

	# The data frames are all there, in order, untouched.
	run_ok decode --json "$BATS_TEST_TMPDIR/out" >"$BATS_TEST_TMPDIR/all.json"
	run -0 jq -r 'select(.log) | .source_id' "$BATS_TEST_TMPDIR/all.json"
	same $'app\napp\napp\napp\napp' "$output"

	# Every other frame is a counter of the diode's own.
	run -0 jq -r 'select(.log | not) | .counter.name' "$BATS_TEST_TMPDIR/all.json"
	local name
	for name in "${lines[@]}"; do
		case $name in
		ingress | egress | dropped) ;;
		*) lgr_diag "unexpected counter '$name'"; false ;;
		esac
	done
	run -0 counters "$BATS_TEST_TMPDIR/out"
	contains "$output" "probe ingress origin=lgr-diode 5"
	contains "$output" "probe egress origin=lgr-diode 5"
	contains "$output" "probe dropped direction=all,origin=lgr-diode 0"
	contains "$output" "probe dropped origin=lgr-diode,reason=oversized 0"
	run -0 jq -r 'select(.counter) | .source_id' "$BATS_TEST_TMPDIR/all.json"
	for name in "${lines[@]}"; do
		same probe "$name"
	done
	# Counters are stamped with the time they were made.
	run -0 jq -r 'select(.counter) | .timestamp' "$BATS_TEST_TMPDIR/all.json"
	local ts
	for ts in "${lines[@]}"; do
		[ "$ts" -ge "$before" ] && [ "$ts" -le "$after" ] ||
		    { lgr_diag "timestamp $ts not within [$before, $after]"; false; }
	done
	# The deltas add up to the totals.
	run -0 jq -s '[.[] | select(.counter.name == "ingress") | .counter.delta | tonumber] | add' \
	    "$BATS_TEST_TMPDIR/all.json"
	same 5 "$output"

	# Its own counters are not counted as egress.
	run -0 stop_line "$BATS_TEST_TMPDIR/err"
	same "lgr-diode: level=info event=stop ingress=5 egress=5 dropped=0 oversized=0" "$output"
}

@test "--source-id defaults to lgr-diode for the counters" {
	local pid st=0 w
	mkfifo "$BATS_TEST_TMPDIR/in"
	lgr-diode --metrics-interval 0.05 <"$BATS_TEST_TMPDIR/in" \
	    >"$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/err" 3>&- &
	pid=$!
	exec {w}>"$BATS_TEST_TMPDIR/in"
	wait_until 200 has_frames 3 "$BATS_TEST_TMPDIR/out"
	kill -TERM "$pid"
	wait "$pid" || st=$?
	exec {w}>&-
	same 0 "$st"
	run -0 counters "$BATS_TEST_TMPDIR/out"
	contains "$output" "lgr-diode ingress origin=lgr-diode 0"
	contains "$output" "lgr-diode egress origin=lgr-diode 0"
}
