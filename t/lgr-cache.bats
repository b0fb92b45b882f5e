#!/usr/bin/env bats
# lgr-cache: frames in on stdin, the newest of each source kept, served
# over HTTP as the traffic controller's recentlogs and containermetrics
# (multipart v1 envelopes) and log-cache's read and meta API (JSON).
#
# Clients are real: curl and a python3 thread pool for HTTP; multipart
# bodies are checked against Go's multipart.Writer framing and their
# parts decoded with python3-protobuf (t/lgr-cache/cache.py), then
# compared with t/roles/egress_check.py's own v2 -> v1 conversion of what
# was sent; JSON answers are compared byte for byte with lgr-cat's JSON
# of the envelopes sent. bin/doppler runs lgr-cache as a sink, and a
# traffic controller merges two dopplers' caches.

: "${BATS_TEST_TIMEOUT:=90}"
load lib
load roles/roles
load roles/egress_roles

setup_file() {
	egress_setup_file
}

cache_py() {
	"$LGR_PYTHON" "$LGR_ROOT/t/lgr-cache/cache.py" "$@"
}

# cache_start ARGS...: lgr-cache on a free loopback port, reading the
# fifo the test holds open as fd $FEED, ARGS after; waits for its
# --notify-fd. Sets CACHE (HOST:PORT), CACHE_PID, CACHE_ERR, CACHE_OUT.
cache_start() {
	local t=$BATS_TEST_TMPDIR l
	rm -f "$t/in" "$t/ready"
	mkfifo "$t/in" "$t/ready"
	CACHE_ERR=$t/cache.err
	CACHE_OUT=$t/cache.out
	lgr-cache --http 127.0.0.1:0 --notify-fd 4 "$@" <"$t/in" \
	    >"$CACHE_OUT" 2>"$CACHE_ERR" 4>"$t/ready" 3>&- &
	CACHE_PID=$!
	exec {FEED}>"$t/in"
	if ! read -r -t 10 _ <"$t/ready"; then
		lgr_diag "lgr-cache did not start: $(cat "$CACHE_ERR")"
		return 1
	fi
	l=$(grep -m 1 ' event=listening proto=http ' "$CACHE_ERR")
	CACHE=$(field addr "$l")
}

# cache_end: close its input; it must exit 0 with a stop line. Sets
# STOP to that line.
cache_end() {
	local st=0
	exec {FEED}>&-
	wait "$CACHE_PID" || st=$?
	if [ "$st" -ne 0 ]; then
		lgr_diag "lgr-cache exited $st: $(cat "$CACHE_ERR")"
		return 1
	fi
	STOP=$(grep ' event=stop ' "$CACHE_ERR")
}

# feed FILE: the frames of FILE into the running cache.
feed() {
	cat "$1" >&"$FEED"
}

# newest ID: the newest timestamp lgr-cache holds for source ID.
newest() {
	curl -sS "http://$CACHE/api/v1/meta" | jq -r --arg id "$1" \
	    '.meta[$id].newestTimestamp // empty'
}

# has_newest ID TS: source ID's newest envelope has timestamp TS, so
# everything fed before it is in (one reader stores them in order).
has_newest() {
	[ "$(newest "$1")" = "$2" ]
}

# get PATH: GET http://$CACHE/PATH into $T/body and $T/head; sets CODE.
get() {
	local t=$BATS_TEST_TMPDIR
	CODE=$(curl -sS -o "$t/body" -D "$t/head" -w '%{http_code}' \
	    "http://$CACHE/$1")
}

# parts OUT: the multipart answer of the last get, its parts as v1
# frames in OUT (framing checked); prints how many.
parts() {
	cache_py parts "$BATS_TEST_TMPDIR/head" "$BATS_TEST_TMPDIR/body" "$1"
}

# json_of FILES...: {"envelopes":{"batch":[...]}} of the envelopes in
# FILES, in that order, from lgr-cat's JSON lines: byte for byte the
# gateway's form.
json_of() {
	local f lines=()
	for f in "$@"; do
		mapfile -t -O "${#lines[@]}" lines < <(lgr-cat <"$f")
	done
	local IFS=,
	printf '{"envelopes":{"batch":[%s]}}' "${lines[*]}"
}

# --- command line ------------------------------------------------------------------

@test "--help prints the usage on stdout and exits 0; --version one line" {
	run -0 --separate-stderr lgr-cache --help
	[[ ${lines[0]} == "usage: lgr-cache "* ]]
	contains "$output" "--recent-logs"
	contains "$output" "--metrics-ttl"
	same "" "$stderr"
	run -0 --separate-stderr lgr-cache --version
	same 1 "${#lines[@]}"
	[[ ${lines[0]} =~ ^lgr-cache\ [0-9]+\.[0-9]+ ]]
}

@test "usage errors name the problem and exit 2" {
	local bad
	for bad in "--bogus" "--max-bytes 10" "--recent-logs x" \
	    "--recent-logs -1" "--max-sources 0" "--metrics-ttl 0" \
	    "--http-threads 0" "--max-connections 0" "--max-frame 8" \
	    "--tls-cert /dev/null" "--tls-key /dev/null" "--notify-fd 2" \
	    "--notify-fd 77" "stray" "--max-connections 1 --http-threads 2"; do
		# shellcheck disable=SC2086
		run -2 --separate-stderr lgr-cache $bad </dev/null
		same "" "$output"
		[[ ${stderr_lines[0]} == "lgr-cache: "* ]]
	done
}

@test "a port already in use: exit 1 with the reason" {
	cache_start
	run -1 --separate-stderr lgr-cache --http "$CACHE" </dev/null
	contains "$stderr" "event=listen_failed"
	contains "$stderr" "Address already in use"
	cache_end
}

# --- recentlogs -------------------------------------------------------------------

# The newest five of app-1's eight logs, interleaved with another app's
# logs and app-1's metrics. Timestamps are fixed, so each file's bytes
# are the same however often it is made.
make_logs() {
	local t=$BATS_TEST_TMPDIR base="--tag origin=rep --tag deployment=cf \
--tag job=diego --tag index=7 --tag ip=10.0.0.1"
	# shellcheck disable=SC2086
	{
		printf 'old %d\n' 1 2 3 | lgr-emit $base --source-id app-1 \
		    --instance-id 3 --tag source_type=APP/PROC/WEB --timestamp 1000 log
		lgr-emit --source-id app-2 --instance-id 0 --timestamp 1001 log other
		lgr-emit --source-id app-1 --timestamp 1002 counter requests 4
		lgr-emit --source-id app-1 --timestamp 1003 gauge mem=5:bytes
	} >"$t/head.frames"
	# shellcheck disable=SC2086
	{
		printf 'new %d\n' 1 2 | lgr-emit $base --source-id app-1 \
		    --instance-id 3 --tag source_type=APP/PROC/WEB --timestamp 2000 log
		lgr-emit --source-id app-1 --instance-id 4 --err \
		    --tag source_type=STG --timestamp 2001 log "staging failed"
		lgr-emit --source-id app-2 --timestamp 2002 log other
		printf 'new %d\n' 3 4 | lgr-emit --source-id app-1 \
		    --instance-id 3 --tag source_type=APP/PROC/WEB --timestamp 2003 log
	} >"$t/tail.frames"
	cat "$t/head.frames" "$t/tail.frames" >"$t/sent"
}

@test "recentlogs: the newest --recent-logs logs of that app only, oldest first, as v1 LogMessages" {
	local t=$BATS_TEST_TMPDIR
	make_logs
	cache_start --recent-logs 5
	feed "$t/sent"
	wait_until 200 has_newest app-1 2003

	get apps/app-1/recentlogs
	same 200 "$CODE"
	same 5 "$(parts "$t/got")"
	# What doppler's conversion makes of the last five of app-1 (SPEC
	# §3), worked out by egress_check.py, not by lgr.
	run_ok check v1 "$t/got" "$t/tail.frames" --app app-1
	cache_py v1json "$t/got" >"$t/got.json"
	same "new 1|new 2|staging failed|new 3|new 4" \
	    "$(jq -r '.logMessage.message | @base64d' "$t/got.json" | paste -sd'|')"
	same "OUT OUT ERR OUT OUT" \
	    "$(jq -r '.logMessage.messageType' "$t/got.json" | paste -sd' ')"
	same "app-1" "$(jq -r '.logMessage.appId' "$t/got.json" | sort -u)"

	get apps/app-2/recentlogs
	same 2 "$(parts "$t/got2")"
	cache_end
}

@test "recentlogs ?limit: the newest N; 0 none; a bad or negative limit all; an unknown app an empty body" {
	local t=$BATS_TEST_TMPDIR
	make_logs
	cache_start
	feed "$t/sent"
	wait_until 200 has_newest app-1 2003

	get "apps/app-1/recentlogs?limit=2"
	same 2 "$(parts "$t/got")"
	cache_py v1json "$t/got" >"$t/got.json"
	same "new 3|new 4" \
	    "$(jq -r '.logMessage.message | @base64d' "$t/got.json" | paste -sd'|')"
	get "apps/app-1/recentlogs?limit=0"
	same 0 "$(parts "$t/got")"
	for lim in -3 x 1.5 ''; do
		get "apps/app-1/recentlogs?limit=$lim"
		same 200 "$CODE"
		same 8 "$(parts "$t/got")"
	done
	get "apps/app-1/recentlogs?limit=100000"
	same 8 "$(parts "$t/got")"

	get apps/nobody/recentlogs
	same 200 "$CODE"
	same 0 "$(parts "$t/got")"
	b=$(sed -n 's/^[Cc]ontent-[Tt]ype: .*boundary=\([0-9a-f]*\).*/\1/p' "$t/head")
	printf '\r\n--%s--\r\n' "$b" >"$t/want"
	same_file "$t/want" "$t/body"
	cache_end
}

@test "each answer has a boundary of its own; HEAD gets the headers alone" {
	local t=$BATS_TEST_TMPDIR b1 b2
	make_logs
	cache_start
	feed "$t/sent"
	wait_until 200 has_newest app-1 2003
	get apps/app-1/recentlogs
	b1=$(grep -i '^content-type:' "$t/head")
	get apps/app-1/recentlogs
	b2=$(grep -i '^content-type:' "$t/head")
	[ "$b1" != "$b2" ]
	[[ $b1 =~ boundary=[0-9a-f]{60} ]]
	run -0 curl -sS -I "http://$CACHE/apps/app-1/recentlogs"
	contains "$output" "200 OK"
	contains "$output" "multipart/x-protobuf; boundary="
	cache_end
}

# --- containermetrics -------------------------------------------------------------

# gauge_cm TS INSTANCE CPU [EXTRA...]: a container-metric gauge.
gauge_cm() {
	local ts=$1 inst=$2 cpu=$3
	shift 3
	lgr-emit --source-id app-1 --instance-id "$inst" --timestamp "$ts" \
	    --tag origin=rep gauge "cpu=$cpu:percentage" memory=1048576:bytes \
	    disk=2097152:bytes memory_quota=4194304:bytes \
	    disk_quota=8388608:bytes "$@"
}

@test "containermetrics: the newest of each instance, by instance index; an older one never replaces a newer one" {
	local t=$BATS_TEST_TMPDIR now
	now=$(date +%s%N)
	gauge_cm $((now - 3000000000)) 0 1 >"$t/sent"
	gauge_cm $((now - 1000000000)) 0 2 >"$t/want0"
	gauge_cm $((now - 2000000000)) 1 3 >"$t/want1"
	gauge_cm $((now - 2500000000)) x 4 instance_index=7:index >"$t/want7"
	gauge_cm $((now - 5000000000)) 0 5 >"$t/older"
	lgr-emit --source-id app-1 --timestamp "$now" log last >"$t/last"
	cat "$t/want1" "$t/want0" "$t/want7" "$t/older" "$t/last" >>"$t/sent"
	cache_start
	feed "$t/sent"
	wait_until 200 has_newest app-1 "$now"

	get apps/app-1/containermetrics
	same 200 "$CODE"
	same 3 "$(parts "$t/got")"
	cat "$t/want0" "$t/want1" "$t/want7" >"$t/want"
	run_ok check v1 "$t/got" "$t/want"
	cache_py v1json "$t/got" >"$t/got.json"
	same "0 1 7" "$(jq -r '.containerMetric.instanceIndex // 0' "$t/got.json" | paste -sd' ')"
	same "2 3 4" "$(jq -r '.containerMetric.cpuPercentage' "$t/got.json" | paste -sd' ')"
	same "app-1" "$(jq -r '.containerMetric.applicationId' "$t/got.json" | sort -u)"

	get apps/app-2/containermetrics
	same 0 "$(parts "$t/got")"
	cache_end
}

# expired_is N: the latest total of the expired self-metric is N.
expired_is() {
	[ "$(decode --json --partial "$CACHE_OUT" |
	    jq -r 'select(.counter.name == "expired") | .counter.total' |
	    tail -n 1)" = "$1" ]
}

# no_metrics ID: containermetrics of ID has no part.
no_metrics() {
	get "apps/$1/containermetrics" &&
	    [ "$(parts "$BATS_TEST_TMPDIR/got")" = 0 ]
}

@test "container metrics older than --metrics-ttl are gone, and counted as expired" {
	local t=$BATS_TEST_TMPDIR now
	cache_start --metrics-ttl 3 --metrics-interval 0.1
	now=$(date +%s%N)
	gauge_cm "$now" 0 1 >"$t/sent"
	lgr-emit --source-id app-1 --timestamp "$now" log kept >>"$t/sent"
	feed "$t/sent"
	wait_until 200 has_newest app-1 "$now"
	get apps/app-1/containermetrics
	same 1 "$(parts "$t/got")"
	# Three seconds after its timestamp it is gone (no sleep: poll).
	wait_until 200 no_metrics app-1
	[ "$(date +%s%N)" -ge $((now + 3000000000)) ]
	get apps/app-1/recentlogs
	same 1 "$(parts "$t/got")"
	# The sweep (once a second) drops it from memory and counts it.
	wait_until 100 expired_is 1
	cache_end
	same 1 "$(field expired "$STOP")"
}

# --- log-cache read API -----------------------------------------------------------

# make_kinds: one envelope of each kind for source "svc", in files
# $T/k1 ... $T/k6 by timestamp (10 to 60), sent out of order; and one
# envelope of another source.
make_kinds() {
	local t=$BATS_TEST_TMPDIR
	lgr-emit --source-id svc --instance-id 1 --tag a=b --timestamp 10 log first >"$t/k1"
	lgr-emit --source-id svc --timestamp 20 --total 9 counter requests 2 >"$t/k2"
	lgr-emit --source-id svc --timestamp 30 gauge cpu=0.5:percentage mem=7:bytes >"$t/k3"
	lgr-emit --source-id svc --timestamp 40 timer http 100 200 >"$t/k4"
	lgr-emit --source-id svc --timestamp 50 event deploy started >"$t/k5"
	lgr-emit --source-id svc --err --timestamp 60 log second >"$t/k6"
	lgr-emit --source-id other --timestamp 35 log elsewhere >"$t/o1"
	cat "$t/k6" "$t/k2" "$t/k4" "$t/o1" "$t/k1" "$t/k5" "$t/k3" >"$t/sent"
}

# read_is QUERY FILES...: GET /api/v1/read/svc?QUERY answers 200 with
# exactly json_of FILES.
read_is() {
	local q=$1
	shift
	get "api/v1/read/svc?$q"
	same 200 "$CODE"
	same "$(json_of "$@")" "$(cat "$BATS_TEST_TMPDIR/body")"
}

@test "read: every envelope of the source in timestamp order, byte for byte the gateway's JSON" {
	local t=$BATS_TEST_TMPDIR
	make_kinds
	cache_start
	feed "$t/sent"
	wait_until 200 has_newest svc 60
	read_is "" "$t/k1" "$t/k2" "$t/k3" "$t/k4" "$t/k5" "$t/k6"
	grep -qi '^content-type: application/json' "$t/head"
	get api/v1/read/nobody
	same 200 "$CODE"
	same '{"envelopes":{"batch":[]}}' "$(cat "$t/body")"
	cache_end
}

@test "read: start_time, end_time, envelope_types, limit and descending as log-cache reads them" {
	local t=$BATS_TEST_TMPDIR
	make_kinds
	cache_start
	feed "$t/sent"
	wait_until 200 has_newest svc 60
	# start inclusive, end exclusive; end 0 is now
	read_is "start_time=20&end_time=50" "$t/k2" "$t/k3" "$t/k4"
	read_is "start_time=60&end_time=0" "$t/k6"
	read_is "start_time=20&end_time=20"
	read_is "start_time=61"
	read_is "envelope_types=LOG" "$t/k1" "$t/k6"
	read_is "envelope_types=COUNTER&envelope_types=GAUGE" "$t/k2" "$t/k3"
	read_is "envelope_types=4&envelope_types=5" "$t/k4" "$t/k5"
	read_is "envelope_types=ANY" "$t/k1" "$t/k2" "$t/k3" "$t/k4" "$t/k5" "$t/k6"
	read_is "envelope_types=ANY&envelope_types=TIMER" "$t/k4"
	read_is "limit=2" "$t/k1" "$t/k2"
	read_is "limit=0" "$t/k1" "$t/k2" "$t/k3" "$t/k4" "$t/k5" "$t/k6"
	read_is "descending=true" "$t/k6" "$t/k5" "$t/k4" "$t/k3" "$t/k2" "$t/k1"
	read_is "descending=1&limit=2" "$t/k6" "$t/k5"
	read_is "descending=false&limit=1&start_time=30" "$t/k3"
	read_is "descending=T&envelope_types=LOG&limit=1" "$t/k6"
	read_is "unknown=1&limit=1" "$t/k1"
	# an id with a slash, escaped or not
	lgr-emit --source-id "deploy/job" --timestamp 5 log x >"$t/slash"
	feed "$t/slash"
	wait_until 200 has_newest deploy/job 5
	get "api/v1/read/deploy/job"
	same "$(json_of "$t/slash")" "$(cat "$t/body")"
	get "api/v1/read/deploy%2Fjob"
	same "$(json_of "$t/slash")" "$(cat "$t/body")"
	cache_end
}

@test "read: name_filter takes counters and timers by name and trims gauges; logs and events go" {
	local t=$BATS_TEST_TMPDIR
	lgr-emit --source-id svc --timestamp 10 counter requests 1 >"$t/c1"
	lgr-emit --source-id svc --timestamp 20 counter errors 1 >"$t/c2"
	lgr-emit --source-id svc --timestamp 30 --tag k=v gauge cpu=1:percentage mem=2:bytes memory_quota=3:bytes >"$t/g"
	lgr-emit --source-id svc --timestamp 30 --tag k=v gauge mem=2:bytes memory_quota=3:bytes >"$t/g.mem"
	lgr-emit --source-id svc --timestamp 40 timer http 1 2 >"$t/tm"
	lgr-emit --source-id svc --timestamp 50 log mem >"$t/l"
	lgr-emit --source-id svc --timestamp 60 event mem mem >"$t/e"
	cat "$t/c1" "$t/c2" "$t/g" "$t/tm" "$t/l" "$t/e" >"$t/sent"
	cache_start
	feed "$t/sent"
	wait_until 200 has_newest svc 60
	read_is "name_filter=^req" "$t/c1"
	read_is "name_filter=mem" "$t/g.mem"
	read_is "name_filter=http|errors" "$t/c2" "$t/tm"
	read_is "name_filter=%5E(cpu%7Cmem)" "$t/g"
	read_is "name_filter=nothing"
	read_is "name_filter=" "$t/c1" "$t/c2" "$t/g" "$t/tm" "$t/l" "$t/e"
	read_is "name_filter=s&limit=1&descending=true" "$t/c2"
	cache_end
}

@test "read: bad parameters get 400 and a JSON reason" {
	local q
	cache_start
	while IFS='|' read -r q want; do
		get "api/v1/read/svc?$q"
		same 400 "$CODE"
		same "$want" "$(jq -r .error "$BATS_TEST_TMPDIR/body")"
		same 3 "$(jq -r .code "$BATS_TEST_TMPDIR/body")"
	done <<'EOF'
limit=1001|Limit (1001) must be 1000 or less
limit=99999999999999999999|limit: not an integer: 99999999999999999999
limit=-1|Limit (-1) must be greater than zero
limit=ten|limit: not an integer: ten
limit=1&limit=2|limit given twice
start_time=20&end_time=10|StartTime (20) must be before EndTime (10)
start_time=x|start_time: not an integer: x
end_time=1e9|end_time: not an integer: 1e9
descending=yes|descending: not a bool: yes
envelope_types=FOO|envelope_types: unknown type: FOO
envelope_types=6|envelope_types: unknown type: 6
name_filter=(|Name filter must be a valid regular expression: Unmatched ( or \(
limit=%zz|invalid escape in the query
limit=5%|invalid escape in the query
EOF
	get "api/v1/read/svc?name_filter=$(printf 'a%.0s' $(seq 1025))"
	same 400 "$CODE"
	cache_end
}

@test "meta: count, expired, oldest and newest timestamp of each source; info: the version" {
	local t=$BATS_TEST_TMPDIR
	for i in 1 2 3 4 5; do
		lgr-emit --source-id a --timestamp "$i" log "l$i"
	done >"$t/sent"
	{
		lgr-emit --source-id b --timestamp 90 counter c 1
		lgr-emit --source-id b --timestamp 70 counter c 1
		lgr-emit --source-id b --timestamp 80 counter c 1
	} >>"$t/sent"
	cache_start --recent-logs 3 --recent-envelopes 2
	feed "$t/sent"
	wait_until 200 has_newest b 80
	get api/v1/meta
	same 200 "$CODE"
	same '{"meta":{"a":{"count":"3","expired":"2","oldestTimestamp":"3","newestTimestamp":"5"},"b":{"count":"2","expired":"1","oldestTimestamp":"70","newestTimestamp":"80"}}}' \
	    "$(cat "$t/body")"
	get api/v1/info
	same 200 "$CODE"
	same "$(lgr-cache --version | cut -d' ' -f2)" "$(jq -r .version "$t/body")"
	[[ $(jq -r .vm_uptime "$t/body") =~ ^[0-9]+$ ]]
	cache_end
}

# --- bounds -----------------------------------------------------------------------

@test "--max-sources: a new source pushes out the least recently written, counted" {
	local t=$BATS_TEST_TMPDIR s ts=0
	for s in a b c a d; do
		lgr-emit --source-id "$s" --timestamp $((ts += 1)) log "$s"
	done >"$t/sent"
	lgr-emit --source-id d --timestamp 7 log end >>"$t/sent"
	cache_start --max-sources 3
	feed "$t/sent"
	wait_until 200 has_newest d 7
	get api/v1/meta
	same "a c d" "$(jq -r '.meta | keys[]' "$t/body" | paste -sd' ')"
	cache_end
	same 1 "$(field evicted_sources "$STOP")"
	same 1 "$(field evicted "$STOP")"
	same 3 "$(field sources "$STOP")"
}

@test "--max-bytes: 100,000 sources of 200-byte logs; the store stays under it, RSS under it plus a fixed overhead" {
	local t=$BATS_TEST_TMPDIR max=$((8 * 1024 * 1024)) rss hwm last
	cache_py gen 100000 200 "$t/sent"
	cache_start --max-bytes "$max"
	feed "$t/sent"
	wait_until 400 has_newest src-99999 1700000000000100000
	rss=$(awk '/^VmRSS:/ { print $2 * 1024 }' "/proc/$CACHE_PID/status")
	hwm=$(awk '/^VmHWM:/ { print $2 * 1024 }' "/proc/$CACHE_PID/status")
	lgr_diag "max-bytes $max: VmRSS $rss VmHWM $hwm"
	# The fixed part: the program and its libraries, the input buffer,
	# the source index of the default --max-sources, thread stacks.
	[ "$hwm" -lt $((max + 16 * 1024 * 1024)) ]
	# The newest are kept, the oldest went.
	get apps/src-99999/recentlogs
	same 1 "$(parts "$t/got")"
	get apps/src-0/recentlogs
	same 0 "$(parts "$t/got")"
	get api/v1/meta
	last=$(jq -r '.meta | length' "$t/body")
	[ "$last" -gt 1000 ] && [ "$last" -lt 100000 ]
	cache_end
	[ "$(field bytes "$STOP")" -le "$max" ]
	same 100000 "$(field stored "$STOP")"
	same $((100000 - last)) "$(field evicted_sources "$STOP")"
}

@test "--max-response-bytes: recentlogs leaves the oldest out; a read that cannot fit gets 500" {
	local t=$BATS_TEST_TMPDIR n
	lgr-emit --source-id big --count 200 --size 1000 --timestamp 1 log x >"$t/sent"
	lgr-emit --source-id big --timestamp 9 counter finished 1 >>"$t/sent"
	cache_start --recent-logs 200 --max-response-bytes 65536
	feed "$t/sent"
	wait_until 200 has_newest big 9
	get apps/big/recentlogs
	same 200 "$CODE"
	n=$(parts "$t/got")
	[ "$n" -gt 10 ] && [ "$n" -lt 65 ]
	[ "$(stat -c %s "$t/body")" -le 65536 ]
	get "api/v1/read/big?limit=1000&envelope_types=LOG"
	same 500 "$CODE"
	contains "$(jq -r .error "$t/body")" "max-response-bytes"
	cache_end
}

# status_is CODE PATH: GET PATH answers CODE.
status_is() {
	get "$2" && [ "$CODE" = "$1" ]
}

@test "--max-response-bytes: while answers being sent hold it, others get 503 with Retry-After" {
	local t=$BATS_TEST_TMPDIR slow q="api/v1/read/big?limit=300&envelope_types=LOG"
	lgr-emit --source-id big --count 300 --size 40000 --timestamp 1 log x >"$t/sent"
	lgr-emit --source-id big --timestamp 9 counter finished 1 >>"$t/sent"
	cache_start --recent-logs 300 --max-response-bytes $((24 * 1024 * 1024))
	feed "$t/sent"
	wait_until 200 has_newest big 9
	# A client that reads 1 KiB/s keeps its 16 MB answer in flight,
	# more than the socket buffers take.
	# Two of them, so one whose answer has just gone still leaves one.
	curl -s --limit-rate 1k -o /dev/null "http://$CACHE/$q" 3>&- &
	slow=$!
	curl -s --limit-rate 1k -o /dev/null "http://$CACHE/$q" 3>&- &
	slow="$slow $!"
	wait_until 200 status_is 503 "$q"
	grep -qi '^retry-after: 1' "$BATS_TEST_TMPDIR/head"
	status_is 200 api/v1/info
	kill $slow
	wait $slow || true
	wait_until 200 status_is 200 "$q"
	same 300 "$(jq '.envelopes.batch | length' "$t/body")"
	cache_end
	[ "$(field busy "$STOP")" -ge 1 ]
}

# --- bad input ----------------------------------------------------------------------

@test "bad requests: unknown paths 404, other methods 405, bad escapes 400, a long target 414" {
	local p
	cache_start
	for p in "" x apps apps/ apps/a apps//recentlogs apps/a/recentlogs/ \
	    apps/a/b/recentlogs apps/a/logs api/v1 api/v1/read api/v1/read/ \
	    api/v1/meta/x api/v2/meta v2/read; do
		get "$p"
		same 404 "$CODE"
		same 5 "$(jq -r .code "$BATS_TEST_TMPDIR/body")"
	done
	for p in POST PUT DELETE PATCH; do
		run -0 curl -sS -o /dev/null -w '%{http_code}' -X "$p" \
		    "http://$CACHE/apps/a/recentlogs"
		same 405 "$output"
	done
	run -0 curl -sS -D - -o /dev/null -X POST -d 'x=1' "http://$CACHE/api/v1/meta"
	contains "$output" "Allow: GET, HEAD"
	get "apps/a%zz/recentlogs"
	same 400 "$CODE"
	get "apps/a/recentlogs?limit=$(printf '1%.0s' $(seq 9000))"
	[[ $CODE == 414 || $CODE == 431 ]]
	get api/v1/meta
	same 200 "$CODE"
	cache_end
}

@test "1,000 requests at once get 200 or 503, and lgr-cache serves on" {
	local t=$BATS_TEST_TMPDIR
	make_logs
	cache_start
	feed "$t/sent"
	wait_until 200 has_newest app-1 2003
	cache_py storm "http://$CACHE/apps/app-1/recentlogs" 1000 >"$t/storm"
	lgr_diag "$(cat "$t/storm")"
	run -1 grep -v -E '^(200|503) ' "$t/storm"
	[ "$(awk '$1 == 200 { print $2 }' "$t/storm")" -gt 0 ]
	cache_py storm "http://$CACHE/api/v1/read/app-1?limit=1000" 1000 100 >"$t/storm"
	run -1 grep -v -E '^(200|503) ' "$t/storm"
	get apps/app-1/recentlogs
	same 8 "$(parts "$t/got")"
	cache_end
	same 0 "$(field dropped "$STOP")"
}

@test "bad frames: malformed envelopes and ones without a source id are dropped and counted, oversized ones skipped" {
	local t=$BATS_TEST_TMPDIR
	{
		frame_hex 3 ffffff			# not protobuf
		frame_hex 2 0801			# a timestamp, no source id
		frame_hex 4 10051203		# source_id as a varint
		frame_hex 0 ''				# empty
		frame_hex 5000 "$(head -c 5000 /dev/zero | xxd -p | tr -d '\n')"
		lgr-emit --source-id ok --timestamp 3 log fine
	} >"$t/sent"
	cache_start --max-frame 4096
	feed "$t/sent"
	wait_until 200 has_newest ok 3
	get apps/ok/recentlogs
	same 1 "$(parts "$t/got")"
	cache_end
	same 5 "$(field ingress "$STOP")"
	same 4 "$(field dropped "$STOP")"
	same 1 "$(field oversized "$STOP")"
}

@test "a stream that ends inside a frame: what came before is served until then, exit 1 with the offset" {
	local t=$BATS_TEST_TMPDIR st=0
	lgr-emit --source-id ok log fine >"$t/sent"
	frame_hex 100 0a0b >>"$t/sent"
	cache_start
	feed "$t/sent"
	exec {FEED}>&-
	wait "$CACHE_PID" || st=$?
	same 1 "$st"
	grep -q 'event=truncated_frame offset=' "$CACHE_ERR"
}

# --- signals, TLS, self-metrics ------------------------------------------------------

@test "SIGTERM: stop serving, print the counts, exit 0" {
	local st=0
	cache_start
	get api/v1/meta
	kill -TERM "$CACHE_PID"
	wait "$CACHE_PID" || st=$?
	same 0 "$st"
	grep -q ' event=stop .* requests=1 ' "$CACHE_ERR"
	run curl -sS "http://$CACHE/api/v1/meta"
	[ "$status" -ne 0 ]
}

@test "HTTPS with --tls-cert and --tls-key; SIGHUP loads a new certificate for new connections" {
	local t=$BATS_TEST_TMPDIR
	mkdir "$t/tls"
	cp "$CERTS/doppler.crt" "$CERTS/doppler.key" "$t/tls/"
	cache_start --tls-cert "$t/tls/doppler.crt" --tls-key "$t/tls/doppler.key"
	grep -q ' tls=on ' "$CACHE_ERR"
	run -0 curl -sS --cacert "$CERTS/ca.crt" --resolve "doppler:${CACHE##*:}:127.0.0.1" \
	    "https://doppler:${CACHE##*:}/api/v1/meta"
	same '{"meta":{}}' "$output"
	run curl -sS -o /dev/null -w '%{http_code}' "http://$CACHE/api/v1/meta"
	[ "$status" -ne 0 ] || [ "$output" != 200 ]

	"$LGR_ROOT/share/lgr-certs" "$t/new" 2>/dev/null
	cp "$t/new/doppler.crt" "$t/new/doppler.key" "$t/tls/"
	kill -HUP "$CACHE_PID"
	wait_until 100 grep -q 'event=sighup action=tls_reload' "$CACHE_ERR"
	run -0 curl -sS --cacert "$t/new/ca.crt" --resolve "doppler:${CACHE##*:}:127.0.0.1" \
	    "https://doppler:${CACHE##*:}/api/v1/meta"
	same '{"meta":{}}' "$output"
	run curl -sS --cacert "$CERTS/ca.crt" --resolve "doppler:${CACHE##*:}:127.0.0.1" \
	    "https://doppler:${CACHE##*:}/api/v1/meta"
	[ "$status" -ne 0 ]
	# Bad files on the next reload: the failure logged, the last good
	# certificate kept.
	: >"$t/tls/doppler.key"
	kill -HUP "$CACHE_PID"
	wait_until 100 grep -q 'event=tls_reload_failed' "$CACHE_ERR"
	run -0 curl -sS --cacert "$t/new/ca.crt" --resolve "doppler:${CACHE##*:}:127.0.0.1" \
	    "https://doppler:${CACHE##*:}/api/v1/meta"
	cache_end
}

@test "self-metrics: counters on stdout every --metrics-interval" {
	local t=$BATS_TEST_TMPDIR
	make_logs
	cache_start --metrics-interval 0.1 --source-id doppler
	feed "$t/sent"
	wait_until 200 has_newest app-1 2003
	get apps/app-1/recentlogs
	cache_end
	decode --json "$CACHE_OUT" >"$t/m.json"
	same "doppler" "$(jq -r .source_id "$t/m.json" | sort -u)"
	same "lgr-cache" "$(jq -r .tags.origin "$t/m.json" | sort -u)"
	same "bytes dropped evicted evicted_sources expired ingress requests stored" \
	    "$(jq -r .counter.name "$t/m.json" | sort -u | paste -sd' ')"
	same 12 "$(jq -r 'select(.counter.name == "ingress") | .counter.total' "$t/m.json" | tail -n 1)"
	# The last emit comes at the stop, after the last request.
	same "$(field requests "$STOP")" \
	    "$(jq -r 'select(.counter.name == "requests") | .counter.total' "$t/m.json" | tail -n 1)"
}

# --- in the roles ---------------------------------------------------------------------

APP=4b4f2a8c-1f0e-4c3a-9d6b-0a1b2c3d4e5f

# dop_cache NAME: the lgr-cache address of doppler NAME.
dop_cache() {
	local l
	await 600 "${DOP_PID[$1]}" grep -q 'lgr-cache: .* event=listening proto=http ' \
	    "${DOP_ERR[$1]}" || return 1
	l=$(grep -m 1 'lgr-cache: .* event=listening proto=http ' "${DOP_ERR[$1]}")
	field addr "$l"
}

@test "bin/doppler: envelopes sent to doppler are in its cache's recentlogs and containermetrics" {
	local t=$BATS_TEST_TMPDIR now
	now=$(date +%s%N)
	printf 'line %d\n' 1 2 3 | lgr-emit --source-id "$APP" --instance-id 0 \
	    --tag source_type=APP/PROC/WEB --timestamp "$now" log >"$t/logs"
	lgr-emit --source-id "$APP" --instance-id 2 --timestamp "$now" gauge \
	    cpu=12.5:percentage memory=1:bytes disk=2:bytes \
	    memory_quota=3:bytes disk_quota=4:bytes >"$t/cm"
	cat "$t/logs" "$t/cm" >"$t/sent"
	dop_start d1
	CACHE=$(dop_cache d1)
	[[ $CACHE == 127.0.0.1:* ]]
	send "${DOP[d1]}" "$t/sent"
	wait_until 200 has_newest "$APP" "$now"
	get "apps/$APP/recentlogs"
	same 3 "$(parts "$t/got")"
	run_ok check v1 "$t/got" "$t/logs" --app "$APP"
	get "apps/$APP/containermetrics"
	same 1 "$(parts "$t/got")"
	run_ok check v1 "$t/got" "$t/cm"
	role_stop
	stop_line lgr-cache >/dev/null
}

@test "bin/doppler --no-cache starts no lgr-cache" {
	dop_start d1 0 --no-cache
	run -1 grep 'lgr-cache' "${DOP_ERR[d1]}"
	role_stop
}

@test "two dopplers and a traffic controller: recentlogs merged newest first, containermetrics the newest per instance" {
	local t=$BATS_TEST_TMPDIR now c1 c2 l tc
	now=$(date +%s%N)
	lgr-emit --source-id "$APP" --timestamp $((now - 50)) log a1 >"$t/a1"
	lgr-emit --source-id "$APP" --timestamp $((now - 40)) log b1 >"$t/b1"
	lgr-emit --source-id "$APP" --timestamp $((now - 30)) log a2 >"$t/a2"
	lgr-emit --source-id "$APP" --timestamp $((now - 20)) log b2 >"$t/b2"
	lgr-emit --source-id "$APP" --timestamp $((now - 10)) log a3 >"$t/a3"
	gauge_one() {
		lgr-emit --source-id "$APP" --instance-id "$1" --timestamp "$2" \
		    gauge "cpu=$3:percentage" memory=1:bytes disk=2:bytes \
		    memory_quota=3:bytes disk_quota=4:bytes
	}
	gauge_one 0 $((now - 9000000)) 1 >"$t/m0old"
	gauge_one 1 $((now - 8000000)) 2 >"$t/m1"
	gauge_one 0 $((now - 7000000)) 3 >"$t/m0new"
	lgr-emit --source-id "$APP" --timestamp "$now" counter mark 1 >"$t/mark"
	cat "$t/a1" "$t/a2" "$t/a3" "$t/m0old" "$t/m1" "$t/mark" >"$t/to1"
	cat "$t/b1" "$t/b2" "$t/m0new" "$t/mark" >"$t/to2"
	dop_start d1
	dop_start d2
	c1=$(dop_cache d1)
	c2=$(dop_cache d2)
	send "${DOP[d1]}" "$t/to1"
	send "${DOP[d2]}" "$t/to2"
	CACHE=$c1 wait_until 200 has_newest "$APP" "$now"
	CACHE=$c2 wait_until 200 has_newest "$APP" "$now"

	role_start trafficcontroller --certs "$CERTS" --http 127.0.0.1:0 \
	    --no-auth --dopplers "${DOP[d1]},${DOP[d2]}" \
	    --cache "http://$c1" --cache "http://$c2"
	await 600 "$ROLE_PID" grep -q 'lgr-ws: .* event=listening proto=http ' \
	    "$ROLE_ERR" || { role_log; return 1; }
	l=$(grep -m 1 'lgr-ws: .* event=listening proto=http ' "$ROLE_ERR")
	tc=$(field addr "$l")
	CACHE=$tc get "apps/$APP/recentlogs"
	same 200 "$CODE"
	same 5 "$(parts "$t/got")"
	cat "$t/a3" "$t/b2" "$t/a2" "$t/b1" "$t/a1" >"$t/want"
	run_ok check v1 "$t/got" "$t/want"
	CACHE=$tc get "apps/$APP/recentlogs?limit=2"
	same 2 "$(parts "$t/got")"
	cat "$t/a3" "$t/b2" >"$t/want"
	run_ok check v1 "$t/got" "$t/want"
	CACHE=$tc get "apps/$APP/containermetrics"
	same 200 "$CODE"
	same 2 "$(parts "$t/got")"
	cat "$t/m0new" "$t/m1" >"$t/want"
	run_ok check v1 "$t/got" "$t/want"
}
