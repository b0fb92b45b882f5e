#!/usr/bin/env bats
# lgr-emit: envelopes from arguments and from lines of stdin, as frames.
# Every frame is checked with python3-protobuf, not with lgr's own codec.

load lib

TS=1700000000000000000

# --- command line ----------------------------------------------------------

@test "--help prints the usage on stdout and exits 0" {
	run -0 --separate-stderr lgr-emit --help
	same "usage: lgr-emit [--err] [--count N] [--instance-id ID] [--rate PER_SECOND]" "${lines[0]}"
	contains "$output" "KIND: log [TEXT] | counter NAME DELTA | gauge NAME=VALUE[:UNIT]..."
	contains "$output" "--timestamp NS"
	same "" "$stderr"
}

@test "-h is --help" {
	run -0 lgr-emit -h
	same "usage: lgr-emit [--err] [--count N] [--instance-id ID] [--rate PER_SECOND]" "${lines[0]}"
}

@test "--version prints one line and exits 0" {
	run -0 --separate-stderr lgr-emit --version
	same 1 "${#lines[@]}"
	[[ ${lines[0]} =~ ^lgr-emit\ [0-9]+\.[0-9]+ ]]
	same "" "$stderr"
}

@test "an unknown flag is a usage error naming it" {
	run -2 --separate-stderr lgr-emit --bogus log x
	same "lgr-emit: unknown option --bogus" "${stderr_lines[0]}"
	[[ ${stderr_lines[1]} == "usage: lgr-emit "* ]]
	same "" "$output"
}

@test "an unknown short flag is a usage error naming it" {
	run -2 --separate-stderr lgr-emit -q log x
	same "lgr-emit: unknown option -q" "${stderr_lines[0]}"
}

@test "a flag without its value is a usage error naming it" {
	run -2 --separate-stderr lgr-emit log x --count
	same "lgr-emit: option --count needs a value" "${stderr_lines[0]}"
}

@test "bad flag values are usage errors naming the flag" {
	local args flag
	while read -r flag args; do
		# shellcheck disable=SC2086
		run -2 --separate-stderr lgr-emit $args </dev/null
		[[ ${stderr_lines[0]} == "lgr-emit: "*"$flag"* ]] ||
		    { lgr_diag "$args: ${stderr_lines[0]}"; false; }
		same "" "$output"
	done <<-'EOF'
	--count --count x log hi
	--count --count -1 log hi
	--count --count 1.5 log hi
	--rate --rate 0 log hi
	--rate --rate fast log hi
	--rate --rate nan log hi
	--size --size 0 log hi
	--size --size 9999999999 log hi
	--timestamp --timestamp 1.5 log hi
	--timestamp --timestamp 99999999999999999999 log hi
	--total --total -3 counter c 1
	--tag --tag novalue log hi
	--tag --tag =v log hi
	EOF
}

@test "a missing KIND is a usage error" {
	run -2 --separate-stderr lgr-emit
	same "lgr-emit: missing KIND (log, counter, gauge, timer, event)" "${stderr_lines[0]}"
	same "" "$output"
}

@test "an unknown KIND is a usage error naming it" {
	run -2 --separate-stderr lgr-emit metric x
	same "lgr-emit: unknown KIND 'metric' (log, counter, gauge, timer, event)" "${stderr_lines[0]}"
}

@test "log with more than one TEXT is a usage error" {
	run -2 --separate-stderr lgr-emit log hello world
	same "lgr-emit: log takes at most one TEXT (quote it)" "${stderr_lines[0]}"
}

@test "counter wants exactly NAME and DELTA" {
	run -2 --separate-stderr lgr-emit counter requests
	same "lgr-emit: counter wants NAME DELTA" "${stderr_lines[0]}"
	run -2 --separate-stderr lgr-emit counter requests 1 2
	same "lgr-emit: counter wants NAME DELTA" "${stderr_lines[0]}"
	run -2 --separate-stderr lgr-emit counter requests many
	[[ ${stderr_lines[0]} == "lgr-emit: counter DELTA wants a whole number "*"'many'" ]]
	run -2 --separate-stderr lgr-emit -- counter requests -5
	[[ ${stderr_lines[0]} == "lgr-emit: counter DELTA "* ]]
}

@test "gauge without a metric or with a bad value is a usage error" {
	run -2 --separate-stderr lgr-emit gauge
	same "lgr-emit: gauge wants NAME=VALUE[:UNIT]..." "${stderr_lines[0]}"
	run -2 --separate-stderr lgr-emit gauge cpu=high:percent
	same "lgr-emit: gauge value in 'cpu=high:percent' is not a number" "${stderr_lines[0]}"
	run -2 --separate-stderr lgr-emit gauge cpu
	same "lgr-emit: gauge wants NAME=VALUE[:UNIT], not 'cpu'" "${stderr_lines[0]}"
	run -2 --separate-stderr lgr-emit gauge =1
	same "lgr-emit: gauge wants NAME=VALUE[:UNIT], not '=1'" "${stderr_lines[0]}"
	run -2 --separate-stderr lgr-emit gauge mem=
	same "lgr-emit: gauge value in 'mem=' is not a number" "${stderr_lines[0]}"
}

@test "timer and event want their exact arguments" {
	run -2 --separate-stderr lgr-emit timer t 1
	same "lgr-emit: timer wants NAME START_NS STOP_NS" "${stderr_lines[0]}"
	run -2 --separate-stderr lgr-emit timer t 1 soon
	[[ ${stderr_lines[0]} == "lgr-emit: timer STOP_NS wants a whole number "* ]]
	run -2 --separate-stderr lgr-emit event title
	same "lgr-emit: event wants TITLE BODY" "${stderr_lines[0]}"
	run -2 --separate-stderr lgr-emit event title body extra
	same "lgr-emit: event wants TITLE BODY" "${stderr_lines[0]}"
}

@test "--size with a counter is a usage error" {
	run -2 --separate-stderr lgr-emit --size 10 counter c 1
	same "lgr-emit: --size applies to log and event only" "${stderr_lines[0]}"
	same "" "$output"
}

@test "--err with anything but a log is a usage error" {
	run -2 --separate-stderr lgr-emit --err gauge g=1
	same "lgr-emit: --err applies to log only" "${stderr_lines[0]}"
}

# --- each KIND, decoded independently ---------------------------------------

@test "log TEXT makes one OUT log envelope" {
	run_ok lgr-emit --timestamp "$TS" --source-id app --instance-id 0 \
	    log hello >"$BATS_TEST_TMPDIR/out"
	run -0 decode "$BATS_TEST_TMPDIR/out"
	same 1 "${#lines[@]}"
	same 'timestamp: 1700000000000000000 source_id: "app" log { payload: "hello" } instance_id: "0"' "${lines[0]}"
}

@test "--err makes an ERR log" {
	run_ok lgr-emit --timestamp "$TS" --err log oops >"$BATS_TEST_TMPDIR/out"
	run -0 decode "$BATS_TEST_TMPDIR/out"
	same 'timestamp: 1700000000000000000 source_id: "lgr-emit" log { payload: "oops" type: ERR }' "$output"
}

@test "source_id defaults to lgr-emit and instance_id to empty" {
	run_ok lgr-emit --timestamp 5 log x >"$BATS_TEST_TMPDIR/out"
	run -0 decode --json "$BATS_TEST_TMPDIR/out"
	same '{"deprecated_tags":{},"instance_id":"","log":{"payload":"eA==","type":"OUT"},"source_id":"lgr-emit","tags":{},"timestamp":"5"}' "$output"
}

@test "log without TEXT makes one envelope per line of stdin" {
	printf 'one\ntwo\nthree\n' >"$BATS_TEST_TMPDIR/in"
	run_ok lgr-emit --timestamp "$TS" --source-id app log \
	    <"$BATS_TEST_TMPDIR/in" >"$BATS_TEST_TMPDIR/out"
	run -0 decode "$BATS_TEST_TMPDIR/out"
	same 3 "${#lines[@]}"
	same 'timestamp: 1700000000000000000 source_id: "app" log { payload: "one" }' "${lines[0]}"
	same 'timestamp: 1700000000000000000 source_id: "app" log { payload: "two" }' "${lines[1]}"
	same 'timestamp: 1700000000000000000 source_id: "app" log { payload: "three" }' "${lines[2]}"
}

@test "a last line without a newline still becomes a log" {
	printf 'first\nlast' >"$BATS_TEST_TMPDIR/in"
	run_ok lgr-emit log <"$BATS_TEST_TMPDIR/in" >"$BATS_TEST_TMPDIR/out"
	run -0 decode --payloads "$BATS_TEST_TMPDIR/out"
	same $'first\nlast' "$output"
}

@test "CRLF line ends lose the CR" {
	printf 'dos\r\nunix\nend\r\n' >"$BATS_TEST_TMPDIR/in"
	run_ok lgr-emit log <"$BATS_TEST_TMPDIR/in" >"$BATS_TEST_TMPDIR/out"
	run -0 decode "$BATS_TEST_TMPDIR/out"
	same 3 "${#lines[@]}"
	contains "${lines[0]}" 'log { payload: "dos" }'
	contains "${lines[1]}" 'log { payload: "unix" }'
	contains "${lines[2]}" 'log { payload: "end" }'
}

@test "stdin lines with --err are ERR logs" {
	printf 'a\nb\n' >"$BATS_TEST_TMPDIR/in"
	run_ok lgr-emit --err --timestamp 1 log <"$BATS_TEST_TMPDIR/in" >"$BATS_TEST_TMPDIR/out"
	run -0 decode "$BATS_TEST_TMPDIR/out"
	same 'timestamp: 1 source_id: "lgr-emit" log { payload: "a" type: ERR }' "${lines[0]}"
	same 'timestamp: 1 source_id: "lgr-emit" log { payload: "b" type: ERR }' "${lines[1]}"
}

@test "empty stdin makes no frames and exits 0" {
	run_ok lgr-emit log </dev/null >"$BATS_TEST_TMPDIR/out"
	[ ! -s "$BATS_TEST_TMPDIR/out" ]
}

@test "a line longer than 64 KiB is split, not lost" {
	head -c 70000 /dev/zero | tr '\0' a >"$BATS_TEST_TMPDIR/in"
	printf '\nshort\n' >>"$BATS_TEST_TMPDIR/in"
	run_ok lgr-emit log <"$BATS_TEST_TMPDIR/in" >"$BATS_TEST_TMPDIR/out"
	decode --payloads "$BATS_TEST_TMPDIR/out" >"$BATS_TEST_TMPDIR/payloads"
	run -0 awk '{ print length($0) }' "$BATS_TEST_TMPDIR/payloads"
	same $'65536\n4464\n5' "$output"
}

@test "a line as long as the input buffer is split and sent, not refused" {
	head -c 262143 /dev/zero | tr '\0' b >"$BATS_TEST_TMPDIR/in"
	printf '\nend\n' >>"$BATS_TEST_TMPDIR/in"
	run_ok lgr-emit log <"$BATS_TEST_TMPDIR/in" >"$BATS_TEST_TMPDIR/out"
	decode --payloads "$BATS_TEST_TMPDIR/out" >"$BATS_TEST_TMPDIR/payloads"
	run -0 awk '{ print length($0) }' "$BATS_TEST_TMPDIR/payloads"
	same $'65536\n65536\n65536\n65535\n3' "$output"
}

@test "--count N from stdin reads at most N lines" {
	seq 1 10 >"$BATS_TEST_TMPDIR/in"
	run_ok lgr-emit --count 3 log <"$BATS_TEST_TMPDIR/in" >"$BATS_TEST_TMPDIR/out"
	run -0 decode --payloads "$BATS_TEST_TMPDIR/out"
	same $'1\n2\n3' "$output"
}

@test "counter makes a counter with its delta and --total" {
	run_ok lgr-emit --timestamp "$TS" --source-id router counter requests 5 \
	    --total 120 >"$BATS_TEST_TMPDIR/out"
	run -0 decode "$BATS_TEST_TMPDIR/out"
	same 'timestamp: 1700000000000000000 source_id: "router" counter { name: "requests" delta: 5 total: 120 }' "$output"
}

@test "counter takes the largest uint64 delta" {
	run_ok lgr-emit --timestamp 1 counter big 18446744073709551615 \
	    --total 18446744073709551615 >"$BATS_TEST_TMPDIR/out"
	run -0 decode "$BATS_TEST_TMPDIR/out"
	same 'timestamp: 1 source_id: "lgr-emit" counter { name: "big" delta: 18446744073709551615 total: 18446744073709551615 }' "$output"
}

@test "gauge holds every NAME=VALUE:UNIT given" {
	run_ok lgr-emit --timestamp "$TS" --source-id cell gauge \
	    cpu=12.5:percent memory=1048576:bytes disk=0.25 temp=-3.5e2:K \
	    >"$BATS_TEST_TMPDIR/out"
	run -0 decode "$BATS_TEST_TMPDIR/out"
	same 'timestamp: 1700000000000000000 source_id: "cell" gauge { metrics { key: "cpu" value { unit: "percent" value: 12.5 } } metrics { key: "disk" value { value: 0.25 } } metrics { key: "memory" value { unit: "bytes" value: 1048576.0 } } metrics { key: "temp" value { unit: "K" value: -350.0 } } }' "$output"
}

@test "gauge takes the smallest and largest doubles" {
	run_ok lgr-emit --timestamp 1 gauge tiny=5e-324 huge=1.7976931348623157e308 \
	    >"$BATS_TEST_TMPDIR/out"
	run -0 decode --json "$BATS_TEST_TMPDIR/out"
	run -0 jq -c '.gauge.metrics | [.tiny.value, .huge.value]' <<<"$output"
	same '[5e-324,1.7976931348623157e+308]' "$output"
}

@test "gauge keeps the sign of -0, as Go writes it" {
	run_ok lgr-emit --timestamp 1 gauge z=-0 >"$BATS_TEST_TMPDIR/out"
	run -0 decode --json "$BATS_TEST_TMPDIR/out"
	run -0 jq -c '.gauge.metrics.z.value' <<<"$output"
	same '-0' "$output"
}

@test "timer makes a timer with start and stop" {
	run_ok lgr-emit --timestamp "$TS" timer http 1700000000000000000 \
	    1700000000250000000 >"$BATS_TEST_TMPDIR/out"
	run -0 decode "$BATS_TEST_TMPDIR/out"
	same 'timestamp: 1700000000000000000 source_id: "lgr-emit" timer { name: "http" start: 1700000000000000000 stop: 1700000000250000000 }' "$output"
}

@test "timer takes negative nanoseconds" {
	run_ok lgr-emit --timestamp 1 -- timer t -5 -1 >"$BATS_TEST_TMPDIR/out"
	run -0 decode "$BATS_TEST_TMPDIR/out"
	same 'timestamp: 1 source_id: "lgr-emit" timer { name: "t" start: -5 stop: -1 }' "$output"
}

@test "event makes an event with title and body" {
	run_ok lgr-emit --timestamp "$TS" event "app crashed" "exit status 137" \
	    >"$BATS_TEST_TMPDIR/out"
	run -0 decode "$BATS_TEST_TMPDIR/out"
	same 'timestamp: 1700000000000000000 source_id: "lgr-emit" event { title: "app crashed" body: "exit status 137" }' "$output"
}

# --- envelope fields ------------------------------------------------------

@test "--tag adds tags and the last of a repeated key wins" {
	run_ok lgr-emit --timestamp 1 --tag deployment=cf --tag job=router \
	    --tag deployment=cf2 --tag empty= log x >"$BATS_TEST_TMPDIR/out"
	run -0 decode "$BATS_TEST_TMPDIR/out"
	same 'timestamp: 1 source_id: "lgr-emit" log { payload: "x" } tags { key: "deployment" value: "cf2" } tags { key: "empty" } tags { key: "job" value: "router" }' "$output"
}

@test "a tag value may hold '='" {
	run_ok lgr-emit --timestamp 1 --tag q=a=b log x >"$BATS_TEST_TMPDIR/out"
	run -0 decode "$BATS_TEST_TMPDIR/out"
	contains "$output" 'tags { key: "q" value: "a=b" }'
}

@test "--timestamp fixes the timestamp, negative included" {
	run_ok lgr-emit --timestamp -42 --count 3 log x >"$BATS_TEST_TMPDIR/out"
	run -0 decode "$BATS_TEST_TMPDIR/out"
	same 3 "${#lines[@]}"
	for l in "${lines[@]}"; do
		same 'timestamp: -42 source_id: "lgr-emit" log { payload: "x" }' "$l"
	done
}

@test "without --timestamp each envelope is stamped with the time now" {
	local before after ts
	before=$(date +%s%N)
	run_ok lgr-emit --count 500 counter c 1 >"$BATS_TEST_TMPDIR/out"
	printf 'x\ny\n' >"$BATS_TEST_TMPDIR/in"
	run_ok lgr-emit log <"$BATS_TEST_TMPDIR/in" >>"$BATS_TEST_TMPDIR/out"
	after=$(date +%s%N)
	decode --json "$BATS_TEST_TMPDIR/out" >"$BATS_TEST_TMPDIR/json"
	run -0 jq -r .timestamp "$BATS_TEST_TMPDIR/json"
	same 502 "${#lines[@]}"
	for ts in "${lines[@]}"; do
		[ "$ts" -ge $((before - 2000000000)) ] && [ "$ts" -le $((after + 2000000000)) ] ||
		    { lgr_diag "timestamp $ts not within [$before, $after]"; false; }
	done
	# The clock moves on between envelopes; it is never re-used blindly.
	run -0 jq -r .timestamp "$BATS_TEST_TMPDIR/json"
	[ "${lines[0]}" -le "${lines[499]}" ]
}

@test "--count N gives exactly N frames" {
	run_ok lgr-emit --count 1000 gauge g=1 >"$BATS_TEST_TMPDIR/out"
	run -0 decode --count "$BATS_TEST_TMPDIR/out"
	same 1000 "$output"
	run_ok lgr-emit --count 1 event a b >"$BATS_TEST_TMPDIR/out"
	run -0 decode --count "$BATS_TEST_TMPDIR/out"
	same 1 "$output"
	run_ok lgr-emit counter a 1 >"$BATS_TEST_TMPDIR/out"
	run -0 decode --count "$BATS_TEST_TMPDIR/out"
	same 1 "$output"
}

@test "--count N gives N identical frames with a fixed --timestamp" {
	run_ok lgr-emit --timestamp 7 log x >"$BATS_TEST_TMPDIR/one"
	run_ok lgr-emit --timestamp 7 --count 4 log x >"$BATS_TEST_TMPDIR/four"
	cat "$BATS_TEST_TMPDIR/one" "$BATS_TEST_TMPDIR/one" "$BATS_TEST_TMPDIR/one" \
	    "$BATS_TEST_TMPDIR/one" >"$BATS_TEST_TMPDIR/want"
	same_file "$BATS_TEST_TMPDIR/want" "$BATS_TEST_TMPDIR/four"
}

@test "--size gives a log payload of exactly that many bytes, TEXT repeated" {
	run_ok lgr-emit --size 1000 --count 3 log abc >"$BATS_TEST_TMPDIR/out"
	local want
	want=$(printf 'abc%.0s' $(seq 1 334))
	want=${want:0:1000}
	run -0 decode --payloads "$BATS_TEST_TMPDIR/out"
	same 3 "${#lines[@]}"
	for l in "${lines[@]}"; do
		same 1000 "${#l}"
		same "$want" "$l"
	done
}

@test "--size without TEXT fills the payload with filler" {
	run_ok lgr-emit --size 4096 log >"$BATS_TEST_TMPDIR/out"
	run -0 decode --payloads "$BATS_TEST_TMPDIR/out"
	same 1 "${#lines[@]}"
	same 4096 "${#lines[0]}"
}

@test "--size gives an event body of exactly that many bytes" {
	run_ok lgr-emit --timestamp 1 --size 7 event T xy >"$BATS_TEST_TMPDIR/out"
	run -0 decode "$BATS_TEST_TMPDIR/out"
	same 'timestamp: 1 source_id: "lgr-emit" event { title: "T" body: "xyxyxyx" }' "$output"
}

@test "--size takes its largest value, half of the default --max-frame" {
	run_ok lgr-emit --size 524288 log z >"$BATS_TEST_TMPDIR/out"
	run -0 decode --payloads "$BATS_TEST_TMPDIR/out"
	same 524288 "${#output}"
}

@test "--rate paces the frames" {
	local t0 t1
	t0=$(date +%s%N)
	run_ok lgr-emit --rate 100 --count 20 log x >"$BATS_TEST_TMPDIR/out"
	t1=$(date +%s%N)
	run -0 decode --count "$BATS_TEST_TMPDIR/out"
	same 20 "$output"
	# 20 frames at 100/s: the last is due 190 ms after the first.
	[ $((t1 - t0)) -ge 150000000 ] ||
	    { lgr_diag "took $(((t1 - t0) / 1000000)) ms"; false; }
}

@test "--rate paces lines from stdin" {
	local t0 t1
	seq 1 10 >"$BATS_TEST_TMPDIR/in"
	t0=$(date +%s%N)
	run_ok lgr-emit --rate 50 log <"$BATS_TEST_TMPDIR/in" >"$BATS_TEST_TMPDIR/out"
	t1=$(date +%s%N)
	run -0 decode --count "$BATS_TEST_TMPDIR/out"
	same 10 "$output"
	# 10 lines at 50/s: the last is due 180 ms after the first.
	[ $((t1 - t0)) -ge 140000000 ] ||
	    { lgr_diag "took $(((t1 - t0) / 1000000)) ms"; false; }
}

# --- output and signals ---------------------------------------------------

@test "a closed stdout gives exit 1 and a write_failed line, not a crash" {
	mkfifo "$BATS_TEST_TMPDIR/p"
	head -c 1000 <"$BATS_TEST_TMPDIR/p" >/dev/null 3>&- &
	must_fail -1 lgr-emit --count 0 log hello >"$BATS_TEST_TMPDIR/p" \
	    2>"$BATS_TEST_TMPDIR/err"
	run -0 cat "$BATS_TEST_TMPDIR/err"
	same 1 "${#lines[@]}"
	[[ ${lines[0]} == "lgr-emit: level=error event=write_failed error=\"Broken pipe\" sent="* ]]
}

@test "a closed stdout while copying stdin lines gives exit 1" {
	mkfifo "$BATS_TEST_TMPDIR/p"
	seq 1 300000 >"$BATS_TEST_TMPDIR/in"
	head -c 1000 <"$BATS_TEST_TMPDIR/p" >/dev/null 3>&- &
	must_fail -1 lgr-emit log <"$BATS_TEST_TMPDIR/in" \
	    >"$BATS_TEST_TMPDIR/p" 2>"$BATS_TEST_TMPDIR/err"
	run -0 cat "$BATS_TEST_TMPDIR/err"
	[[ ${lines[0]} == "lgr-emit: level=error event=write_failed "* ]]
}

@test "SIGTERM stops an endless --count 0, flushes and exits 0" {
	local pid st=0
	lgr-emit --count 0 --rate 50 log tick >"$BATS_TEST_TMPDIR/out" \
	    2>"$BATS_TEST_TMPDIR/err" 3>&- &
	pid=$!
	wait_until 200 test -s "$BATS_TEST_TMPDIR/out"
	kill -TERM "$pid"
	wait "$pid" || st=$?
	same 0 "$st"
	run -0 decode --payloads "$BATS_TEST_TMPDIR/out"
	[ "${#lines[@]}" -ge 1 ]
	same tick "${lines[0]}"
	[ ! -s "$BATS_TEST_TMPDIR/err" ]
}

@test "SIGTERM while waiting on stdin exits 0 with the lines read so far" {
	local pid st=0 w
	mkfifo "$BATS_TEST_TMPDIR/in"
	lgr-emit log <"$BATS_TEST_TMPDIR/in" >"$BATS_TEST_TMPDIR/out" 3>&- &
	pid=$!
	exec {w}>"$BATS_TEST_TMPDIR/in"
	printf 'one\ntwo\n' >&"$w"
	wait_until 200 has_frames 2 "$BATS_TEST_TMPDIR/out"
	kill -TERM "$pid"
	wait "$pid" || st=$?
	exec {w}>&-
	same 0 "$st"
	run -0 decode --payloads "$BATS_TEST_TMPDIR/out"
	same $'one\ntwo' "$output"
}
