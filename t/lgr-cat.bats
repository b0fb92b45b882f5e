#!/usr/bin/env bats
# lgr-cat: frames to JSON lines (the gateway's JSON form) or text lines,
# and JSON lines back to frames. Frames come from lgr-emit and from hand
# made bytes; the JSON is checked as exact text, with jq, and against
# python3-protobuf's reading of the same frames.

load lib

TS=1700000000000000000

# frames NAME ARGS...: lgr-emit ARGS into $BATS_TEST_TMPDIR/NAME, appending.
frames() {
	local f=$BATS_TEST_TMPDIR/$1
	shift
	run_ok lgr-emit "$@" >>"$f"
}

# One frame of each kind, from lgr-emit, in $BATS_TEST_TMPDIR/all.
all_kinds() {
	frames all --timestamp "$TS" --source-id app --instance-id 0 log hello
	frames all --timestamp "$TS" --source-id app --instance-id 1 --err log oops
	frames all --timestamp "$TS" --source-id router --tag a=1 --tag b=2 \
	    counter requests 5 --total 120
	frames all --timestamp "$TS" --source-id cell gauge cpu=12.5:percent \
	    mem=1048576:bytes
	frames all --timestamp "$TS" timer http 10 250
	frames all --timestamp "$TS" --source-id cc event "app crashed" "exit 137"
}

ALL_JSON=(
'{"timestamp":"1700000000000000000","source_id":"app","instance_id":"0","deprecated_tags":{},"tags":{},"log":{"payload":"aGVsbG8=","type":"OUT"}}'
'{"timestamp":"1700000000000000000","source_id":"app","instance_id":"1","deprecated_tags":{},"tags":{},"log":{"payload":"b29wcw==","type":"ERR"}}'
'{"timestamp":"1700000000000000000","source_id":"router","instance_id":"","deprecated_tags":{},"tags":{"a":"1","b":"2"},"counter":{"name":"requests","delta":"5","total":"120"}}'
'{"timestamp":"1700000000000000000","source_id":"cell","instance_id":"","deprecated_tags":{},"tags":{},"gauge":{"metrics":{"cpu":{"unit":"percent","value":12.5},"mem":{"unit":"bytes","value":1048576}}}}'
'{"timestamp":"1700000000000000000","source_id":"lgr-emit","instance_id":"","deprecated_tags":{},"tags":{},"timer":{"name":"http","start":"10","stop":"250"}}'
'{"timestamp":"1700000000000000000","source_id":"cc","instance_id":"","deprecated_tags":{},"tags":{},"event":{"title":"app crashed","body":"exit 137"}}'
)

# --- command line ----------------------------------------------------------

@test "--help prints the usage on stdout and exits 0" {
	run -0 --separate-stderr lgr-cat --help
	same "usage: lgr-cat [--text] [--max-frame BYTES]" "${lines[0]}"
	same "       lgr-cat --encode [--max-frame BYTES]" "${lines[1]}"
	contains "$output" "--encode"
	same "" "$stderr"
}

@test "--version prints one line and exits 0" {
	run -0 --separate-stderr lgr-cat --version
	same 1 "${#lines[@]}"
	[[ ${lines[0]} =~ ^lgr-cat\ [0-9]+\.[0-9]+ ]]
	same "" "$stderr"
	run -0 lgr-cat -V
	[[ ${lines[0]} =~ ^lgr-cat\ [0-9]+\.[0-9]+ ]]
}

@test "an unknown flag is a usage error naming it" {
	run -2 --separate-stderr lgr-cat --json </dev/null
	same "lgr-cat: unknown option --json" "${stderr_lines[0]}"
	[[ ${stderr_lines[1]} == "usage: lgr-cat "* ]]
	same "" "$output"
}

@test "bad --max-frame values are usage errors naming the flag" {
	local v
	for v in x 15 0 -1 67108865 1e6 ""; do
		run -2 --separate-stderr lgr-cat --max-frame "$v" </dev/null
		[[ ${stderr_lines[0]} == "lgr-cat: --max-frame wants a whole number from 16 to 67108864, not '$v'" ]] ||
		    { lgr_diag "$v: ${stderr_lines[0]}"; false; }
		same "" "$output"
	done
	run -2 --separate-stderr lgr-cat --max-frame
	same "lgr-cat: option --max-frame needs a value" "${stderr_lines[0]}"
}

@test "an unexpected argument is a usage error" {
	run -2 --separate-stderr lgr-cat frames.bin </dev/null
	same "lgr-cat: unexpected argument 'frames.bin'" "${stderr_lines[0]}"
}

@test "--text and --encode together are a usage error" {
	run -2 --separate-stderr lgr-cat --text --encode </dev/null
	same "lgr-cat: --text and --encode do not go together" "${stderr_lines[0]}"
}

# --- frames to JSON ---------------------------------------------------------

@test "prints each kind as one line of gateway JSON" {
	all_kinds
	run -0 --separate-stderr lgr-cat <"$BATS_TEST_TMPDIR/all"
	same 6 "${#lines[@]}"
	local i
	for i in 0 1 2 3 4 5; do
		same "${ALL_JSON[$i]}" "${lines[$i]}"
	done
	same "" "$stderr"
}

@test "the JSON reads back with jq to the values given to lgr-emit" {
	all_kinds
	run_ok lgr-cat <"$BATS_TEST_TMPDIR/all" >"$BATS_TEST_TMPDIR/json"
	run -0 jq -r 'select(.log) | .log.payload | @base64d' "$BATS_TEST_TMPDIR/json"
	same $'hello\noops' "$output"
	run -0 jq -c 'select(.counter) | [.counter.delta, .counter.total, .tags.b]' \
	    "$BATS_TEST_TMPDIR/json"
	same '["5","120","2"]' "$output"
	run -0 jq -c 'select(.gauge) | .gauge.metrics.mem' "$BATS_TEST_TMPDIR/json"
	same '{"unit":"bytes","value":1048576}' "$output"
	run -0 jq -r 'select(.timer) | (.timer.stop | tonumber) - (.timer.start | tonumber)' \
	    "$BATS_TEST_TMPDIR/json"
	same 240 "$output"
}

@test "the JSON matches python-protobuf's JSON of the same frames" {
	all_kinds
	frames all --timestamp -5 --source-id s gauge neg=-2.5 zero=0 big=1e21 \
	    small=1e-7 inf=inf
	frames all --tag k=v --count 3 log "quote \" backslash \\ tab	end"
	run_ok lgr-cat <"$BATS_TEST_TMPDIR/all" >"$BATS_TEST_TMPDIR/json"
	run_ok decode --json "$BATS_TEST_TMPDIR/all" >"$BATS_TEST_TMPDIR/want"
	run_ok jq -cS . "$BATS_TEST_TMPDIR/json" >"$BATS_TEST_TMPDIR/got.norm"
	run_ok jq -cS . "$BATS_TEST_TMPDIR/want" >"$BATS_TEST_TMPDIR/want.norm"
	same_file "$BATS_TEST_TMPDIR/want.norm" "$BATS_TEST_TMPDIR/got.norm"
	run -0 wc -l <"$BATS_TEST_TMPDIR/got.norm"
	same 10 "$output"
}

@test "special doubles are written as protojson writes them" {
	frames g --timestamp 1 --source-id x gauge nan=nan pinf=inf ninf=-inf \
	    big=1e21 small=1e-7 frac=0.1 int=42
	run -0 lgr-cat <"$BATS_TEST_TMPDIR/g"
	same '{"timestamp":"1","source_id":"x","instance_id":"","deprecated_tags":{},"tags":{},"gauge":{"metrics":{"big":{"unit":"","value":1e+21},"frac":{"unit":"","value":0.1},"int":{"unit":"","value":42},"nan":{"unit":"","value":"NaN"},"ninf":{"unit":"","value":"-Infinity"},"pinf":{"unit":"","value":"Infinity"},"small":{"unit":"","value":1e-7}}}}' "$output"
}

@test "payload bytes that are not text come out as base64" {
	printf 'a\001\377\n' >"$BATS_TEST_TMPDIR/in"
	run_ok lgr-emit --timestamp 1 log <"$BATS_TEST_TMPDIR/in" >"$BATS_TEST_TMPDIR/f"
	run -0 lgr-cat <"$BATS_TEST_TMPDIR/f"
	contains "$output" '"log":{"payload":"YQH/","type":"OUT"}'
}

@test "strings are escaped as JSON wants" {
	frames f --timestamp 1 --source-id 'a"b\c' event $'line\none' $'tab\there\001'
	run -0 lgr-cat <"$BATS_TEST_TMPDIR/f"
	same '{"timestamp":"1","source_id":"a\"b\\c","instance_id":"","deprecated_tags":{},"tags":{},"event":{"title":"line\none","body":"tab\there\u0001"}}' "$output"
	run_ok lgr-cat <"$BATS_TEST_TMPDIR/f" >"$BATS_TEST_TMPDIR/f.json"
	run -0 jq -r '.source_id, .event.title' "$BATS_TEST_TMPDIR/f.json"
	same $'a"b\\c\nline\none' "$output"
}

@test "empty input prints nothing and exits 0" {
	run -0 --separate-stderr lgr-cat </dev/null
	same "" "$output"
	same "" "$stderr"
}

# --- --text ----------------------------------------------------------------

@test "--text prints one human line per envelope" {
	all_kinds
	run -0 --separate-stderr lgr-cat --text <"$BATS_TEST_TMPDIR/all"
	same 6 "${#lines[@]}"
	same "2023-11-14T22:13:20.000000000Z app/0 log OUT hello" "${lines[0]}"
	same "2023-11-14T22:13:20.000000000Z app/1 log ERR oops" "${lines[1]}"
	same "2023-11-14T22:13:20.000000000Z router counter requests delta=5 total=120 [a=1 b=2]" "${lines[2]}"
	same "2023-11-14T22:13:20.000000000Z cell gauge cpu=12.5:percent mem=1048576:bytes" "${lines[3]}"
	same "2023-11-14T22:13:20.000000000Z lgr-emit timer http 10 250" "${lines[4]}"
	same "2023-11-14T22:13:20.000000000Z cc event app crashed: exit 137" "${lines[5]}"
	same "" "$stderr"
}

@test "--text escapes control bytes so each envelope stays one line" {
	frames f --timestamp 1 log $'a\tb\\c\001d\ne\r'
	run -0 lgr-cat --text <"$BATS_TEST_TMPDIR/f"
	same '1970-01-01T00:00:00.000000001Z lgr-emit log OUT a\tb\\c\x01d\ne\r' "$output"
}

@test "--text shows nanoseconds and times before 1970" {
	frames f --timestamp 1700000000123456789 log x
	frames f --timestamp -1 log y
	run -0 lgr-cat --text <"$BATS_TEST_TMPDIR/f"
	same "2023-11-14T22:13:20.123456789Z lgr-emit log OUT x" "${lines[0]}"
	same "1969-12-31T23:59:59.999999999Z lgr-emit log OUT y" "${lines[1]}"
}

@test "--text shows deprecated tags after tags, each sorted" {
	printf '%s\n' '{"timestamp":"0","source_id":"s","deprecated_tags":{"t":{"text":"v"},"i":{"integer":"-5"},"d":{"decimal":2.5}},"tags":{"z":"1","a":"2"},"event":{"title":"T","body":"B"}}' \
	    >"$BATS_TEST_TMPDIR/j"
	run_ok lgr-cat --encode <"$BATS_TEST_TMPDIR/j" >"$BATS_TEST_TMPDIR/f"
	run -0 lgr-cat --text <"$BATS_TEST_TMPDIR/f"
	same "1970-01-01T00:00:00.000000000Z s event T: B [a=2 z=1 d=2.5 i=-5 t=v]" "$output"
}

# --- JSON to frames ---------------------------------------------------------

@test "--encode turns the JSON of each kind back into lgr-emit's bytes" {
	all_kinds
	run_ok lgr-cat <"$BATS_TEST_TMPDIR/all" >"$BATS_TEST_TMPDIR/json"
	run_ok lgr-cat --encode <"$BATS_TEST_TMPDIR/json" >"$BATS_TEST_TMPDIR/back"
	same_file "$BATS_TEST_TMPDIR/all" "$BATS_TEST_TMPDIR/back"
}

@test "--encode of the expected JSON gives lgr-emit's bytes, kind by kind" {
	local i
	all_kinds
	printf '%s\n' "${ALL_JSON[@]}" >"$BATS_TEST_TMPDIR/json"
	run_ok lgr-cat --encode <"$BATS_TEST_TMPDIR/json" >"$BATS_TEST_TMPDIR/back"
	same_file "$BATS_TEST_TMPDIR/all" "$BATS_TEST_TMPDIR/back"
	for i in 0 1 2 3 4 5; do
		printf '%s\n' "${ALL_JSON[$i]}" >"$BATS_TEST_TMPDIR/one.json"
		run_ok lgr-cat --encode <"$BATS_TEST_TMPDIR/one.json" >"$BATS_TEST_TMPDIR/one"
		run -0 decode "$BATS_TEST_TMPDIR/one"
		same 1 "${#lines[@]}"
	done
}

@test "frames -> JSON -> frames -> JSON is stable" {
	all_kinds
	frames all --timestamp -1 --source-id s gauge nan=nan pinf=inf ninf=-inf \
	    max=1.7976931348623157e308 third=0.3333333333333333
	printf 'x\001\377y\n' >"$BATS_TEST_TMPDIR/lines"
	run_ok lgr-emit --tag z=1 --tag y=2 log <"$BATS_TEST_TMPDIR/lines" >>"$BATS_TEST_TMPDIR/all"
	printf '%s\n' '{"timestamp":"3","source_id":"d","deprecated_tags":{"t":{"text":"v"},"i":{"integer":"-5"},"d":{"decimal":2.5}},"tags":{},"log":{"payload":"","type":"OUT"}}' \
	    '{"gauge":{"metrics":{"tiny":{"value":5e-324},"small":{"value":1e-300}}}}' \
	    >"$BATS_TEST_TMPDIR/j"
	run_ok lgr-cat --encode <"$BATS_TEST_TMPDIR/j" >>"$BATS_TEST_TMPDIR/all"
	run_ok lgr-cat <"$BATS_TEST_TMPDIR/all" >"$BATS_TEST_TMPDIR/json1"
	run_ok lgr-cat --encode <"$BATS_TEST_TMPDIR/json1" >"$BATS_TEST_TMPDIR/frames2"
	run_ok lgr-cat <"$BATS_TEST_TMPDIR/frames2" >"$BATS_TEST_TMPDIR/json2"
	same_file "$BATS_TEST_TMPDIR/json1" "$BATS_TEST_TMPDIR/json2"
	run -0 wc -l <"$BATS_TEST_TMPDIR/json2"
	same 10 "$output"
}

@test "a gauge value of -0 keeps its sign through --encode" {
	printf '%s\n' '{"timestamp":"1","source_id":"x","instance_id":"","deprecated_tags":{},"tags":{},"gauge":{"metrics":{"negzero":{"unit":"","value":-0}}}}' \
	    >"$BATS_TEST_TMPDIR/j"
	run_ok lgr-cat --encode <"$BATS_TEST_TMPDIR/j" >"$BATS_TEST_TMPDIR/f"
	run -0 lgr-cat <"$BATS_TEST_TMPDIR/f"
	same "$(cat "$BATS_TEST_TMPDIR/j")" "$output"
}

@test "--encode accepts camelCase field names" {
	printf '%s\n' '{"timestamp":"7","sourceId":"app","instanceId":"3","deprecatedTags":{"x":{"text":"y"}},"tags":{"k":"v"},"log":{"payload":"aGk=","type":"ERR"}}' \
	    >"$BATS_TEST_TMPDIR/j"
	run_ok lgr-cat --encode <"$BATS_TEST_TMPDIR/j" >"$BATS_TEST_TMPDIR/f"
	run -0 decode "$BATS_TEST_TMPDIR/f"
	same 'timestamp: 7 source_id: "app" deprecated_tags { key: "x" value { text: "y" } } log { payload: "hi" type: ERR } instance_id: "3" tags { key: "k" value: "v" }' "$output"
}

@test "--encode turns a batch line into one frame per envelope, in order" {
	printf '%s\n' '{"batch":[{"timestamp":"1","source_id":"a","log":{"payload":"MQ=="}},{"timestamp":"2","source_id":"b","counter":{"name":"c","delta":"3"}},{"timestamp":"3","event":{"title":"t","body":"b"}}]}' \
	    '{"batch":[]}' '{"timestamp":"4","timer":{"name":"x","start":"1","stop":"2"}}' \
	    >"$BATS_TEST_TMPDIR/j"
	run_ok lgr-cat --encode <"$BATS_TEST_TMPDIR/j" >"$BATS_TEST_TMPDIR/f"
	run -0 decode "$BATS_TEST_TMPDIR/f"
	same 4 "${#lines[@]}"
	same 'timestamp: 1 source_id: "a" log { payload: "1" }' "${lines[0]}"
	same 'timestamp: 2 source_id: "b" counter { name: "c" delta: 3 }' "${lines[1]}"
	same 'timestamp: 3 event { title: "t" body: "b" }' "${lines[2]}"
	same 'timestamp: 4 timer { name: "x" start: 1 stop: 2 }' "${lines[3]}"
}

@test "--encode skips blank lines, a last line may lack its newline" {
	printf '\n  \n{"timestamp":"1"}\n\t\r\n\n{"timestamp":"2"}' >"$BATS_TEST_TMPDIR/j"
	run -0 --separate-stderr lgr-cat --encode <"$BATS_TEST_TMPDIR/j"
	run_ok lgr-cat --encode <"$BATS_TEST_TMPDIR/j" >"$BATS_TEST_TMPDIR/f"
	run -0 decode "$BATS_TEST_TMPDIR/f"
	same $'timestamp: 1\ntimestamp: 2' "$output"
}

@test "--encode accepts CRLF line ends" {
	printf '{"timestamp":"1"}\r\n{"timestamp":"2"}\r\n' >"$BATS_TEST_TMPDIR/j"
	run_ok lgr-cat --encode <"$BATS_TEST_TMPDIR/j" >"$BATS_TEST_TMPDIR/f"
	run -0 decode "$BATS_TEST_TMPDIR/f"
	same $'timestamp: 1\ntimestamp: 2' "$output"
}

@test "--encode of empty input writes nothing and exits 0" {
	run_ok lgr-cat --encode </dev/null >"$BATS_TEST_TMPDIR/f" 2>"$BATS_TEST_TMPDIR/err"
	[ ! -s "$BATS_TEST_TMPDIR/f" ]
	[ ! -s "$BATS_TEST_TMPDIR/err" ]
}

@test "a malformed JSON line stops --encode with its line number, after the lines before it" {
	printf '%s\n' '{"timestamp":"1"}' '' '{"timestamp":"2"}' '{"timestamp":' \
	    '{"timestamp":"4"}' >"$BATS_TEST_TMPDIR/j"
	must_fail -1 lgr-cat --encode <"$BATS_TEST_TMPDIR/j" >"$BATS_TEST_TMPDIR/f" \
	    2>"$BATS_TEST_TMPDIR/err"
	run -0 cat "$BATS_TEST_TMPDIR/err"
	same 1 "${#lines[@]}"
	[[ ${lines[0]} == "lgr-cat: level=error event=bad_json line=4 reason=\""*\" ]]
	run -0 decode "$BATS_TEST_TMPDIR/f"
	same $'timestamp: 1\ntimestamp: 2' "$output"
}

@test "JSON that is not an envelope is refused with its line number" {
	local bad
	for bad in '{"timestamp":"1","bogus":1}' '[1,2]' '"text"' \
	    '{"log":{"payload":"not base64!"}}' '{"counter":{"delta":"-1"}}' \
	    '{"log":{},"event":{}}' '{"timestamp":"1.5"}' 'garbage'; do
		printf '%s\n%s\n' '{"timestamp":"9"}' "$bad" >"$BATS_TEST_TMPDIR/j"
		must_fail -1 lgr-cat --encode <"$BATS_TEST_TMPDIR/j" \
		    >"$BATS_TEST_TMPDIR/f" 2>"$BATS_TEST_TMPDIR/err"
		run -0 cat "$BATS_TEST_TMPDIR/err"
		[[ ${lines[0]} == "lgr-cat: level=error event=bad_json line=2 "* ]] ||
		    { lgr_diag "$bad: ${lines[0]}"; false; }
		run -0 decode "$BATS_TEST_TMPDIR/f"
		same "timestamp: 9" "$output"
	done
}

@test "--encode refuses an envelope over --max-frame, naming the line" {
	printf '%s\n' '{"timestamp":"1"}' \
	    "{\"event\":{\"title\":\"t\",\"body\":\"$(head -c 100 /dev/zero | tr '\0' x)\"}}" \
	    >"$BATS_TEST_TMPDIR/j"
	must_fail -1 lgr-cat --encode --max-frame 64 <"$BATS_TEST_TMPDIR/j" \
	    >"$BATS_TEST_TMPDIR/f" 2>"$BATS_TEST_TMPDIR/err"
	run -0 cat "$BATS_TEST_TMPDIR/err"
	[[ ${lines[0]} == "lgr-cat: level=error event=frame_too_large line=2 len="*" max=64" ]]
	run -0 decode "$BATS_TEST_TMPDIR/f"
	same "timestamp: 1" "$output"
}

# --- bad frames --------------------------------------------------------------

@test "a stream that ends inside a frame is an error naming its offset, after the envelopes before it" {
	frames f --timestamp 1 log a
	frames f --timestamp 2 log b
	local good
	good=$(stat -c %s "$BATS_TEST_TMPDIR/f")
	cp "$BATS_TEST_TMPDIR/f" "$BATS_TEST_TMPDIR/t"
	head -c 9 "$BATS_TEST_TMPDIR/f" >>"$BATS_TEST_TMPDIR/t"
	run -1 --separate-stderr lgr-cat <"$BATS_TEST_TMPDIR/t"
	same 2 "${#lines[@]}"
	contains "${lines[0]}" '"payload":"YQ=="'
	contains "${lines[1]}" '"payload":"Yg=="'
	same "lgr-cat: level=error event=truncated_frame offset=$good" "$stderr"
}

@test "a stream that ends inside a frame header is truncated too" {
	frames f --timestamp 1 log a
	local good
	good=$(stat -c %s "$BATS_TEST_TMPDIR/f")
	printf '\000\000' >>"$BATS_TEST_TMPDIR/f"
	run -1 --separate-stderr lgr-cat --text <"$BATS_TEST_TMPDIR/f"
	same "1970-01-01T00:00:00.000000001Z lgr-emit log OUT a" "$output"
	same "lgr-cat: level=error event=truncated_frame offset=$good" "$stderr"
}

@test "a frame over --max-frame is skipped and counted, later frames still printed" {
	frames f --timestamp 1 log a
	local at
	at=$(stat -c %s "$BATS_TEST_TMPDIR/f")
	frames f --timestamp 2 --size 100 log b
	frames f --timestamp 3 log c
	run -1 --separate-stderr lgr-cat --max-frame 64 <"$BATS_TEST_TMPDIR/f"
	same 2 "${#lines[@]}"
	contains "${lines[0]}" '"timestamp":"1"'
	contains "${lines[1]}" '"timestamp":"3"'
	[[ $stderr == "lgr-cat: level=warn event=frame_skipped offset=$at len="*" max=64" ]]
}

@test "a frame just at --max-frame is printed" {
	frames f --timestamp 1 --size 40 log a
	local len
	len=$(($(stat -c %s "$BATS_TEST_TMPDIR/f") - 4))
	run -0 --separate-stderr lgr-cat --max-frame "$len" <"$BATS_TEST_TMPDIR/f"
	same 1 "${#lines[@]}"
	run -1 --separate-stderr lgr-cat --max-frame $((len - 1)) <"$BATS_TEST_TMPDIR/f"
	same "" "$output"
}

@test "a frame that is not an envelope is reported and skipped" {
	frames f --timestamp 1 log a
	local at
	at=$(stat -c %s "$BATS_TEST_TMPDIR/f")
	frame_hex 3 ffffff >>"$BATS_TEST_TMPDIR/f"
	frames f --timestamp 2 log b
	run -1 --separate-stderr lgr-cat <"$BATS_TEST_TMPDIR/f"
	same 2 "${#lines[@]}"
	contains "${lines[0]}" '"timestamp":"1"'
	contains "${lines[1]}" '"timestamp":"2"'
	same "lgr-cat: level=warn event=bad_envelope offset=$at len=3" "$stderr"
}

@test "an empty frame is an empty envelope" {
	frame_hex 0 "" >"$BATS_TEST_TMPDIR/f"
	run -0 lgr-cat <"$BATS_TEST_TMPDIR/f"
	same '{"timestamp":"0","source_id":"","instance_id":"","deprecated_tags":{},"tags":{}}' "$output"
}

@test "garbage bytes that are no frame stream fail cleanly" {
	printf 'hello, this is not a frame stream\n' >"$BATS_TEST_TMPDIR/g"
	run -1 --separate-stderr lgr-cat <"$BATS_TEST_TMPDIR/g"
	same "" "$output"
	contains "$stderr" "event=frame_skipped offset=0"
	contains "$stderr" "event=truncated_frame offset=0"
	head -c 100000 /dev/urandom >"$BATS_TEST_TMPDIR/r"
	run --separate-stderr lgr-cat <"$BATS_TEST_TMPDIR/r"
	no_signal
	[ "$status" -le 1 ]
}

@test "random frames of random bytes never crash it" {
	local i n
	for i in $(seq 1 200); do
		n=$((RANDOM % 64))
		frame_hex "$n" "$(head -c "$n" /dev/urandom | xxd -p | tr -d '\n')"
	done >"$BATS_TEST_TMPDIR/r"
	run --separate-stderr lgr-cat <"$BATS_TEST_TMPDIR/r"
	no_signal
	[ "$status" -le 1 ]
	run --separate-stderr lgr-cat --text <"$BATS_TEST_TMPDIR/r"
	no_signal
	[ "$status" -le 1 ]
}

# --- output and signals -----------------------------------------------------

@test "a closed stdout gives exit 1 and a write_failed line" {
	frames f --count 200000 --timestamp 1 log hello
	mkfifo "$BATS_TEST_TMPDIR/p"
	head -c 1000 <"$BATS_TEST_TMPDIR/p" >/dev/null 3>&- &
	must_fail -1 lgr-cat <"$BATS_TEST_TMPDIR/f" >"$BATS_TEST_TMPDIR/p" \
	    2>"$BATS_TEST_TMPDIR/err"
	run -0 cat "$BATS_TEST_TMPDIR/err"
	same 'lgr-cat: level=error event=write_failed error="Broken pipe"' "${lines[0]}"
}

@test "SIGTERM while input is open flushes what is done and exits 0" {
	local pid st=0 w
	mkfifo "$BATS_TEST_TMPDIR/in"
	lgr-cat <"$BATS_TEST_TMPDIR/in" >"$BATS_TEST_TMPDIR/out" 3>&- &
	pid=$!
	exec {w}>"$BATS_TEST_TMPDIR/in"
	lgr-emit --timestamp 1 --count 3 log x >&"$w"
	wait_until 200 eval '[ "$(wc -l <"$BATS_TEST_TMPDIR/out")" -eq 3 ]'
	kill -TERM "$pid"
	wait "$pid" || st=$?
	exec {w}>&-
	same 0 "$st"
	run -0 cat "$BATS_TEST_TMPDIR/out"
	same 3 "${#lines[@]}"
}
