#!/usr/bin/env bats
# lgr-ws, the gRPC side: loggregator.v2.Egress (Receiver, BatchedReceiver)
# and plumbing.Doppler (Subscribe, BatchSubscribe) served to real gRPC
# clients (python3-grpcio, t/lgr-ws/grpc_sub.py) from frames on stdin, as
# doppler serves them. What the clients get is checked by
# t/lgr-ws/grpc_check.py against the frames lgr-emit made, decoded with
# python3-protobuf: v2 envelopes byte for byte, v1 envelopes against an
# independent v2 -> v1 conversion (SPEC §3) and v1 routing (§5).
#
# Covered: v2 selectors (source_id, kinds, counter name, exact gauge key
# set, union, legacy_selector); v1 conversion and routing (app id, log and
# metric classes, firehose); shard groups, v2 and v1; request errors and
# --max-subscriptions; a stalled subscriber among a reading one (200000
# envelopes, memory bounded); cancel cycles; the SIGTERM drain; mTLS; the
# same calls relayed through lgr-recv --egress-relay.
#
# lgr-ws reads its stdin from a fifo held open by a sleeping writer; the
# test writes the frames once every subscriber is in place, then kills
# the writer: at the end of its input lgr-ws ends every stream with OK
# and exits 0, and the clients have all there was.

load lib

setup_file() {
	export PYTHONDONTWRITEBYTECODE=1
	export LGR_PB=$BATS_FILE_TMPDIR/pb
	mkdir -p "$LGR_PB"
	protoc --python_out="$LGR_PB" -I "$LGR_ROOT/share/proto" \
	    v2/envelope.proto v2/egress.proto events/dropsonde.proto \
	    plumbing/doppler.proto
	make_sent "$BATS_FILE_TMPDIR/sent"
}

# py NAME ARGS...: the helper t/lgr-ws/NAME.py, under Debian's python3.
py() {
	"$LGR_PYTHON" "$BATS_TEST_DIRNAME/lgr-ws/$1.py" "${@:2}"
}

# make_sent FILE: the envelopes every test feeds, one of each kind and
# shape the selectors and the v1 conversion tell apart, from lgr-emit.
make_sent() {
	local f=$1
	local base=(--tag origin=rep --tag deployment=cf --tag job=diego
	    --tag index=7 --tag ip=10.0.0.1)
	local app3=6f1b5b3e-2a4c-4d8e-9f00-0123456789ab
	{
		printf 'app-1 line %d\n' 1 2 3 |
		    lgr-emit "${base[@]}" --source-id app-1 --instance-id 3 \
		    --tag source_type=APP/PROC/WEB log
		lgr-emit "${base[@]}" --source-id app-2 --instance-id 0 --err \
		    --tag source_type=STG log "staging failed"
		lgr-emit "${base[@]}" --source-id app-1 --instance-id 2 gauge \
		    cpu=12.5:percentage memory=1048576:bytes disk=2097152:bytes \
		    memory_quota=4194304:bytes disk_quota=8388608:bytes
		lgr-emit --source-id app-1 --instance-id 1 --tag job=cell \
		    gauge requests=3:count
		lgr-emit "${base[@]}" --source-id metron gauge a=1.5:x b=2:y
		lgr-emit --source-id metron gauge a=2.5:x
		lgr-emit "${base[@]}" --source-id doppler --total 100 counter ingress 5
		lgr-emit --source-id doppler --instance-id 4 counter egress 3
		lgr-emit --source-id app-2 --total 9 counter ingress 1
		lgr-emit "${base[@]}" --source-id "$app3" --instance-id 1 \
		    --tag request_id=1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9 \
		    --tag method=GET --tag peer_type=Server --tag uri=/x \
		    --tag remote_address=10.1.1.1:5000 --tag user_agent=curl \
		    --tag status_code=200 --tag content_length=42 \
		    --tag routing_instance_id=r1 timer http 1000 2000
		lgr-emit --source-id gorouter timer http 3000 4000
		lgr-emit --source-id app-1 event deploy "v2 started"
		printf 'app-3 line %d\n' 1 2 |
		    lgr-emit --source-id "$app3" --instance-id 0 \
		    --tag source_type=APP/PROC/WEB log
		printf 'app-1 line %d\n' 4 5 |
		    lgr-emit "${base[@]}" --source-id app-1 --instance-id 3 \
		    --tag source_type=APP/PROC/WEB log
	} >"$f"
}

# --- starting and stopping ---------------------------------------------------

# ws_start ARGS...: lgr-ws --grpc 127.0.0.1:0 ARGS in the background, its
# stdin the fifo $IN (held open by a sleeping writer, HOLD_PID), stdout
# to $OUT and log to $ERR; waits (10 s at most) for --notify-fd. Sets
# WS_PID and GRPC (HOST:PORT from the listening line).
ws_start() {
	local fifo=$BATS_TEST_TMPDIR/notify n=100 nfd l
	IN=$BATS_TEST_TMPDIR/in
	OUT=$BATS_TEST_TMPDIR/ws.out
	ERR=$BATS_TEST_TMPDIR/ws.err
	rm -f "$fifo" "$IN"
	mkfifo "$fifo" "$IN"
	sleep 55 >"$IN" 3>&- {LGR_DIAG}>&- &
	HOLD_PID=$!
	exec {nfd}<>"$fifo"
	lgr-ws --grpc 127.0.0.1:0 --metrics-interval 0 "$@" --notify-fd 3 \
	    3>"$fifo" {nfd}>&- {LGR_DIAG}>&- <"$IN" >"$OUT" 2>"$ERR" &
	WS_PID=$!
	while ! read -r -t 0.1 -u "$nfd" _; do
		n=$((n - 1))
		if [ "$n" -eq 0 ] || ! kill -0 "$WS_PID" 2>/dev/null; then
			exec {nfd}>&-
			lgr_diag "lgr-ws $* did not get ready; its log:"
			lgr_diag "$(cat "$ERR")"
			return 1
		fi
	done
	exec {nfd}>&-
	l=$(grep -m 1 "event=listening proto=grpc " "$ERR") || return 1
	GRPC=$(field addr "$l")
	SUBS=()
}

# running PID: PID is alive (a zombie is not).
running() {
	local s
	s=$(ps -o stat= -p "$1" 2>/dev/null) && [[ $s != Z* ]]
}

# wait_exit PID SECONDS: wait at most SECONDS for PID (a child) to end;
# sets st to its exit status.
wait_exit() {
	local n=$(($2 * 20))
	while running "$1"; do
		n=$((n - 1))
		if [ "$n" -le 0 ]; then
			lgr_diag "pid $1 still running after $2 s"
			return 1
		fi
		sleep 0.05
	done
	st=0
	wait "$1" || st=$?
}

# ws_end: end lgr-ws's input; it must exit 0 within 5 s.
ws_end() {
	kill "$HOLD_PID"
	ws_exit
}

# ws_exit: lgr-ws must exit 0 within 5 s, its stop line last in its log.
ws_exit() {
	wait_exit "$WS_PID" 5 || { lgr_diag "$(cat "$ERR")"; return 1; }
	if [ "$st" -ne 0 ]; then
		lgr_diag "lgr-ws exited $st; its log:"
		lgr_diag "$(cat "$ERR")"
		return 1
	fi
	[[ $(last_line "$ERR") == "lgr-ws: level=info event=stop "* ]] ||
	    { lgr_diag "no stop line last: $(last_line "$ERR")"; return 1; }
}

# feed FILE: write the frames of FILE to lgr-ws's stdin.
feed() {
	cat "$1" >"$IN"
}

# --- subscribers -----------------------------------------------------------------

# sub NAME ARGS...: grpc_sub.py ARGS $GRPC METHOD in the background (the
# last of ARGS is the method), envelopes to $T/NAME, status line to
# $T/NAME.status, log to $T/NAME.log; NAME is added to SUBS.
sub() {
	local name=$1 t=$BATS_TEST_TMPDIR
	shift
	local method=${*: -1}
	rm -f "$t/$name.ready"
	py grpc_sub --ready "$t/$name.ready" "${@:1:$#-1}" "$GRPC" "$method" \
	    "$t/$name" >"$t/$name.status" 2>"$t/$name.log" 3>&- \
	    {LGR_DIAG}>&- &
	eval "SUB_PID_${name//[^A-Za-z0-9]/_}=$!"
	SUBS+=("$name")
}

# subs_ready: every subscriber started has its response headers (10 s).
subs_ready() {
	local name
	for name in "${SUBS[@]}"; do
		wait_until 200 test -e "$BATS_TEST_TMPDIR/$name.ready" || {
			lgr_diag "$name: $(cat "$BATS_TEST_TMPDIR/$name.log")"
			return 1
		}
	done
}

# sub_done NAME STATUS: subscriber NAME ended (10 s at most) and its call
# ended with STATUS (code name and details, as grpc_sub.py prints).
sub_done() {
	local v="SUB_PID_${1//[^A-Za-z0-9]/_}"
	wait_exit "${!v}" 10 || return 1
	if [ "$st" -ne 0 ]; then
		lgr_diag "grpc_sub.py for $1 exited $st"
		lgr_diag "$(cat "$BATS_TEST_TMPDIR/$1.log")"
		return 1
	fi
	same "$2" "$(cat "$BATS_TEST_TMPDIR/$1.status")"
}

# subs_ok: every subscriber ended with OK.
subs_ok() {
	local name
	for name in "${SUBS[@]}"; do
		sub_done "$name" "OK " || return 1
	done
}

# got_v2 NAME SPEC...: subscriber NAME got exactly what the selectors
# SPEC select from the sent envelopes ($SENT, else the common ones), in
# order, byte for byte.
got_v2() {
	py grpc_check v2 "${SENT:-$BATS_FILE_TMPDIR/sent}" "$BATS_TEST_TMPDIR/$1" \
	    "${@:2}" || { lgr_diag "subscriber $1"; return 1; }
}

# got_v1 NAME [--app ID] [--class C]: subscriber NAME got the v1 form of
# what that filter takes from the sent envelopes.
got_v1() {
	py grpc_check v1 "${SENT:-$BATS_FILE_TMPDIR/sent}" "$BATS_TEST_TMPDIR/$1" \
	    "${@:2}" || { lgr_diag "subscriber $1"; return 1; }
}

# nframes FILE: the number of frames in FILE.
nframes() {
	py grpc_check count "$1"
}

# nframes_are N FILE: FILE holds N whole frames (for wait_until).
nframes_are() {
	[ "$(py grpc_check count "$2" 2>/dev/null)" = "$1" ]
}

# logged N TEXT: lgr-ws's log has N lines holding TEXT (for wait_until).
logged() {
	[ "$(grep -c -F -- "$2" "$ERR")" -eq "$1" ]
}

# --- v2 Egress: selectors --------------------------------------------------------

@test "BatchedReceiver: each selector gets exactly its envelopes, byte for byte" {
	ws_start
	sub app1-log --sel app-1/log batched
	sub ctr-ingress --sel counter:ingress batched
	sub ctr-doppler --sel doppler/counter:ingress batched
	sub ctr-all --sel counter batched
	sub gauge-ab --sel gauge:a,b batched
	sub gauge-ba --sel metron/gauge:b,a batched
	sub gauge-a --sel gauge:a batched
	sub gauge-cm --sel gauge:cpu,memory,disk,memory_quota,disk_quota batched
	sub gauge-all --sel gauge batched
	sub timer --sel timer batched
	sub event --sel event batched
	sub app1-event --sel app-2/event batched
	subs_ready
	feed "$BATS_FILE_TMPDIR/sent"
	ws_end
	subs_ok
	got_v2 app1-log app-1/log
	same 5 "$(nframes "$BATS_TEST_TMPDIR/app1-log")"
	got_v2 ctr-ingress counter:ingress
	same 2 "$(nframes "$BATS_TEST_TMPDIR/ctr-ingress")"
	got_v2 ctr-doppler doppler/counter:ingress
	same 1 "$(nframes "$BATS_TEST_TMPDIR/ctr-doppler")"
	got_v2 ctr-all counter
	same 3 "$(nframes "$BATS_TEST_TMPDIR/ctr-all")"
	# A gauge selector's names must equal the gauge's whole key set.
	got_v2 gauge-ab gauge:a,b
	same 1 "$(nframes "$BATS_TEST_TMPDIR/gauge-ab")"
	got_v2 gauge-ba metron/gauge:a,b
	same 1 "$(nframes "$BATS_TEST_TMPDIR/gauge-ba")"
	got_v2 gauge-a gauge:a
	same 1 "$(nframes "$BATS_TEST_TMPDIR/gauge-a")"
	got_v2 gauge-cm gauge:cpu,memory,disk,memory_quota,disk_quota
	same 1 "$(nframes "$BATS_TEST_TMPDIR/gauge-cm")"
	got_v2 gauge-all gauge
	same 4 "$(nframes "$BATS_TEST_TMPDIR/gauge-all")"
	got_v2 timer timer
	same 2 "$(nframes "$BATS_TEST_TMPDIR/timer")"
	got_v2 event event
	same 1 "$(nframes "$BATS_TEST_TMPDIR/event")"
	same 0 "$(nframes "$BATS_TEST_TMPDIR/app1-event")"
}

@test "BatchedReceiver: no source_id takes every source; several selectors are a union; legacy_selector stands in for none" {
	ws_start
	sub logs --sel log batched
	sub union --sel app-1/log --sel log --sel doppler/counter:ingress \
	    --sel counter:ingress --sel app-1/gauge batched
	sub legacy --legacy app-2/log batched
	sub legacy-ignored --legacy counter --sel app-2/log batched
	subs_ready
	feed "$BATS_FILE_TMPDIR/sent"
	ws_end
	subs_ok
	got_v2 logs log
	same 8 "$(nframes "$BATS_TEST_TMPDIR/logs")"
	# Each envelope once, however many selectors take it.
	got_v2 union log counter:ingress app-1/gauge
	same 12 "$(nframes "$BATS_TEST_TMPDIR/union")"
	got_v2 legacy app-2/log
	same 1 "$(nframes "$BATS_TEST_TMPDIR/legacy")"
	got_v2 legacy-ignored app-2/log
}

@test "Receiver: one envelope per message, the same selections" {
	ws_start
	sub app1-log --sel app-1/log receiver
	sub gauge-ab --sel gauge:b,a receiver
	sub union --sel log --sel counter:egress --sel timer receiver
	sub legacy --legacy doppler/counter receiver
	subs_ready
	feed "$BATS_FILE_TMPDIR/sent"
	ws_end
	subs_ok
	got_v2 app1-log app-1/log
	same 5 "$(nframes "$BATS_TEST_TMPDIR/app1-log")"
	got_v2 gauge-ab gauge:a,b
	got_v2 union log counter:egress timer
	same 11 "$(nframes "$BATS_TEST_TMPDIR/union")"
	got_v2 legacy doppler/counter
	same 2 "$(nframes "$BATS_TEST_TMPDIR/legacy")"
}

# --- v1 Doppler: conversion and routing -------------------------------------------

APP3=6f1b5b3e-2a4c-4d8e-9f00-0123456789ab

@test "BatchSubscribe and Subscribe: an empty filter is the firehose, converted to v1" {
	ws_start
	sub batch batch_subscribe
	sub one subscribe
	sub empty-filter --app "" --class "" batch_subscribe
	subs_ready
	feed "$BATS_FILE_TMPDIR/sent"
	ws_end
	subs_ok
	# 8 logs, a container metric, 1 + 2 + 1 value metrics, 3 counters, the
	# timer with a request_id; not the other timer, nor the event.
	got_v1 batch
	same 17 "$(nframes "$BATS_TEST_TMPDIR/batch")"
	got_v1 one
	same 17 "$(nframes "$BATS_TEST_TMPDIR/one")"
	got_v1 empty-filter
}

@test "v1: a log becomes a LogMessage with the envelope's fields, a container-metric gauge a ContainerMetric" {
	ws_start
	sub app2-log --app app-2 --class log batch_subscribe
	sub app1-metric --app app-1 --class metric subscribe
	subs_ready
	feed "$BATS_FILE_TMPDIR/sent"
	ws_end
	subs_ok
	same 'origin: "rep" eventType: LogMessage timestamp: T logMessage { message: "staging failed" message_type: ERR timestamp: T app_id: "app-2" source_type: "STG" source_instance: "0" } deployment: "cf" job: "diego" index: "7" ip: "10.0.0.1" tags { key: "source_id" value: "app-2" }' \
	    "$(py grpc_check v1text "$BATS_TEST_TMPDIR/app2-log")"
	same 'origin: "rep" eventType: ContainerMetric timestamp: T containerMetric { applicationId: "app-1" instanceIndex: 2 cpuPercentage: 12.5 memoryBytes: 1048576 diskBytes: 2097152 memoryBytesQuota: 4194304 diskBytesQuota: 8388608 } deployment: "cf" job: "diego" index: "7" ip: "10.0.0.1" tags { key: "source_id" value: "app-1" }' \
	    "$(py grpc_check v1text "$BATS_TEST_TMPDIR/app1-metric")"
}

@test "v1: counters become CounterEvents, other gauges a ValueMetric per entry" {
	ws_start
	sub metrics --class metric batch_subscribe
	subs_ready
	feed "$BATS_FILE_TMPDIR/sent"
	ws_end
	subs_ok
	got_v1 metrics --class metric
	py grpc_check v1text "$BATS_TEST_TMPDIR/metrics" >"$BATS_TEST_TMPDIR/text"
	grep -qxF 'origin: "rep" eventType: CounterEvent timestamp: T counterEvent { name: "ingress" delta: 5 total: 100 } deployment: "cf" job: "diego" index: "7" ip: "10.0.0.1" tags { key: "source_id" value: "doppler" }' "$BATS_TEST_TMPDIR/text"
	grep -qxF 'origin: "" eventType: CounterEvent timestamp: T counterEvent { name: "egress" delta: 3 total: 0 } deployment: "" job: "" index: "" ip: "" tags { key: "instance_id" value: "4" } tags { key: "source_id" value: "doppler" }' "$BATS_TEST_TMPDIR/text"
	grep -qxF 'origin: "rep" eventType: ValueMetric timestamp: T valueMetric { name: "b" value: 2.0 unit: "y" } deployment: "cf" job: "diego" index: "7" ip: "10.0.0.1" tags { key: "source_id" value: "metron" }' "$BATS_TEST_TMPDIR/text"
	grep -qxF 'origin: "" eventType: ValueMetric timestamp: T valueMetric { name: "requests" value: 3.0 unit: "count" } deployment: "" job: "cell" index: "" ip: "" tags { key: "instance_id" value: "1" } tags { key: "source_id" value: "app-1" }' "$BATS_TEST_TMPDIR/text"
}

@test "v1: Filter{appID} gets that app's logs, container metrics and HTTP events; classes split logs from metrics" {
	ws_start
	sub app1 --app app-1 batch_subscribe
	sub app1-log --app app-1 --class log batch_subscribe
	sub app3 --app "$APP3" subscribe
	sub system --app system batch_subscribe
	sub logs --class log batch_subscribe
	sub metrics --class metric subscribe
	sub nobody --app no-such-app batch_subscribe
	subs_ready
	feed "$BATS_FILE_TMPDIR/sent"
	ws_end
	subs_ok
	got_v1 app1 --app app-1
	same 6 "$(nframes "$BATS_TEST_TMPDIR/app1")"
	got_v1 app1-log --app app-1 --class log
	same 5 "$(nframes "$BATS_TEST_TMPDIR/app1-log")"
	# The timer with app 3's id as source_id is its HttpStartStop.
	got_v1 app3 --app "$APP3"
	same 3 "$(nframes "$BATS_TEST_TMPDIR/app3")"
	[[ $(py grpc_check v1text "$BATS_TEST_TMPDIR/app3") == *"eventType: HttpStartStop"* ]]
	# Value metrics and counters are nobody's app: "system".
	got_v1 system --app system
	same 7 "$(nframes "$BATS_TEST_TMPDIR/system")"
	got_v1 logs --class log
	same 8 "$(nframes "$BATS_TEST_TMPDIR/logs")"
	got_v1 metrics --class metric
	same 9 "$(nframes "$BATS_TEST_TMPDIR/metrics")"
	same 0 "$(nframes "$BATS_TEST_TMPDIR/nobody")"
}

# --- sharding -----------------------------------------------------------------------

# split ALL NAME...: the subscribers NAME, each with something, got
# together every envelope of the frame file ALL, none twice.
split() {
	local all=$1 t=$BATS_TEST_TMPDIR
	shift
	py grpc_check split "$all" "${@/#/$t/}" >/dev/null && return 0
	lgr_diag "split of $all between $*"
	return 1
}

@test "BatchedReceiver: subscribers sharing a shard_id split the stream; another shard_id gets it all" {
	local t=$BATS_TEST_TMPDIR
	SENT=$t/sent
	seq -f 'log %g' 1 1000 | lgr-emit --source-id app-1 log >"$t/logs"
	lgr-emit --count 100 --source-id app-1 counter hits 1 >"$t/counters"
	cat "$t/logs" "$t/counters" >"$SENT"
	ws_start
	sub all --shard group-b --sel app-1/log batched
	sub a1 --shard group-a --sel app-1/log batched
	sub a2 --shard group-a --sel app-1/log batched
	sub c1 --shard group-c --sel counter batched
	sub c2 --shard group-c --sel counter receiver
	subs_ready
	feed "$SENT"
	ws_end
	subs_ok
	got_v2 all app-1/log
	same 1000 "$(nframes "$t/all")"
	split "$t/logs" a1 a2
	# Receiver and BatchedReceiver with one shard_id share it too.
	split "$t/counters" c1 c2
}

@test "one shard_id with other selectors or another filter is another group" {
	local t=$BATS_TEST_TMPDIR
	SENT=$t/sent
	{
		lgr-emit --count 20 --source-id app-1 counter hits 1
		lgr-emit --count 20 --source-id app-1 counter '*' 1
		lgr-emit --count 20 --source-id 'a|2|*|' counter hits 1
	} >"$SENT"
	ws_start
	# A counter named "*" is not any counter; a source_id is not split
	# by the characters it holds.
	sub star --shard s --sel 'counter:*' batched
	sub any --shard s --sel counter batched
	sub app --shard s --sel 'app-1/counter' batched
	sub odd --shard s --sel 'a|2|*|/counter' batched
	# v1: an app named "*" is not the firehose.
	sub v1-star --shard s --app '*' batch_subscribe
	sub v1-all --shard s batch_subscribe
	subs_ready
	feed "$SENT"
	ws_end
	subs_ok
	got_v2 star 'counter:*'
	got_v2 any counter
	got_v2 app app-1/counter
	got_v2 odd 'a|2|*|/counter'
	got_v1 v1-star --app '*'
	got_v1 v1-all
	same 60 "$(nframes "$t/v1-all")"
}

@test "BatchSubscribe: subscribers sharing a shardID split the v1 stream; another shardID gets it all" {
	SENT=$BATS_TEST_TMPDIR/sent
	seq -f 'log %g' 1 1000 | lgr-emit --source-id app-1 log >"$SENT"
	ws_start
	sub all --shard firehose-b batch_subscribe
	sub a1 --shard firehose-a batch_subscribe
	sub a2 --shard firehose-a batch_subscribe
	sub a3 --shard firehose-a subscribe
	subs_ready
	feed "$SENT"
	ws_end
	subs_ok
	got_v1 all
	same 1000 "$(nframes "$BATS_TEST_TMPDIR/all")"
	split "$BATS_TEST_TMPDIR/all" a1 a2 a3
}

# --- errors ---------------------------------------------------------------------------

# call_is WANT ARGS... METHOD: a grpc_sub.py call that must end (10 s at
# most) with the status line WANT; WANT ending in "*" matches a prefix.
call_is() {
	local want=$1 got t=$BATS_TEST_TMPDIR
	shift
	got=$(py grpc_sub --timeout 10 "${@:1:$#-1}" "$GRPC" "${@: -1}" \
	    "$t/call.out" 2>"$t/call.log") || {
		lgr_diag "grpc_sub.py $* failed: $(cat "$t/call.log")"
		return 1
	}
	# shellcheck disable=SC2053
	[[ $got == $want ]] && return 0
	lgr_diag "grpc_sub.py $*: wanted $want, got $got"
	return 1
}

@test "bad requests end their call with INVALID_ARGUMENT; lgr-ws serves the others" {
	ws_start
	sub good --sel log batched
	sub good-v1 --class log subscribe
	subs_ready
	call_is "INVALID_ARGUMENT Selectors cannot be empty" batched
	call_is "INVALID_ARGUMENT Selectors cannot be empty" --shard s receiver
	call_is "INVALID_ARGUMENT Selectors must have a Message" \
	    --sel app-1/log --sel app-1/none batched
	call_is "INVALID_ARGUMENT Selectors must have a Message" \
	    --legacy app-1/none receiver
	# A selector without a source_id and without a message.
	call_is "INVALID_ARGUMENT Selectors must have a Message" \
	    --raw 2200 batched
	# Not protobuf: a field 1 of 5 bytes with one byte left; an end
	# group tag; a varint that never ends.
	call_is "INVALID_ARGUMENT *" --raw 0a05ab batched
	call_is "INVALID_ARGUMENT *" --raw 0c receiver
	call_is "INVALID_ARGUMENT *" --raw 08ffffffffffffffffffff01 \
	    batch_subscribe
	call_is "INVALID_ARGUMENT *" --raw 1203ffff subscribe
	feed "$BATS_FILE_TMPDIR/sent"
	ws_end
	subs_ok
	got_v2 good log
	got_v1 good-v1 --class log
	same 2 "$(grep -c 'event=subscribe ' "$ERR")"
	same 2 "$(grep -c 'event=unsubscribe ' "$ERR")"
	same 9 "$(grep -c 'event=grpc_call_failed .* status=3 ' "$ERR")"
}

@test "--max-subscriptions: one more is refused with RESOURCE_EXHAUSTED, as the RLP answers; the one in place goes on" {
	local full="RESOURCE_EXHAUSTED unable to create stream, max egress streams reached: 1"
	ws_start --max-subscriptions 1
	sub good --sel log batched
	subs_ready
	call_is "$full" --sel counter batched
	call_is "$full" --sel log receiver
	call_is "$full" batch_subscribe
	call_is "$full" --app app-1 subscribe
	# A bad request is still told what is wrong with it.
	call_is "INVALID_ARGUMENT Selectors cannot be empty" batched
	feed "$BATS_FILE_TMPDIR/sent"
	ws_end
	subs_ok
	got_v2 good log
	same 1 "$(grep -c 'event=subscribe ' "$ERR")"
	same 4 "$(grep -c 'event=grpc_call_failed .* status=8 reason="unable to create stream, max egress streams reached: 1"' "$ERR")"
}

# --- slow subscribers, cancel, SIGTERM ------------------------------------------------

# rss: lgr-ws's resident set, in kB.
rss() {
	awk '$1 == "VmRSS:" { print $2 }' "/proc/$WS_PID/status"
}

# unsub_field PATH KEY: the KEY field of lgr-ws's unsubscribe line for
# the one subscriber on method PATH (Receiver, Subscribe, ...).
unsub_field() {
	local l
	l=$(grep "event=unsubscribe sub=grpc:[^ ]*/$1 " "$ERR") || {
		lgr_diag "no unsubscribe line for $1"
		return 1
	}
	field "$2" "$l"
}

@test "a subscriber that stops reading loses only its own envelopes; another gets all 200000; memory stays bounded" {
	local t=$BATS_TEST_TMPDIR rss0 r max=0 emit n
	SENT=$t/sent
	# 200-byte logs, 40 MB in all, at 40000/s; queues of 16 MB give the
	# reading client near two seconds of slack on a busy machine, and
	# leave the stalled ones far short of all.
	ws_start --subscriber-buffer 100000 --subscriber-bytes 16777216
	sub slow --sel log --stall 50 receiver
	sub slow-v1 --stall 50 subscribe
	sub fast --sel log batched
	subs_ready
	rss0=$(rss)
	{
		lgr-emit --rate 40000 --count 200000 --size 200 \
		    --source-id app-1 log "a log line " | tee "$SENT"
	} >"$IN" 3>&- &
	emit=$!
	n=400
	while running "$emit"; do
		r=$(rss)
		[ "$r" -le "$max" ] || max=$r
		n=$((n - 1))
		[ "$n" -gt 0 ] || { lgr_diag "lgr-emit still running"; return 1; }
		sleep 0.05
	done
	wait "$emit"
	r=$(rss)
	lgr_diag "rss: ${rss0} kB before, ${max} kB at most, ${r} kB after"
	[ "$max" -lt 204800 ]
	[ $((r - rss0)) -lt 102400 ]
	ws_end
	sub_done fast "OK "
	same 200000 "$(nframes "$t/fast")"
	got_v2 fast log
	same 0 "$(unsub_field BatchedReceiver dropped)"
	same 200000 "$(unsub_field BatchedReceiver egress)"
	[ "$(unsub_field Receiver dropped)" -gt 0 ]
	[ "$(unsub_field Subscribe dropped)" -gt 0 ]
	same 200000 "$(($(unsub_field Receiver dropped) + $(unsub_field Receiver egress)))"
}

# nfds: the number of file descriptors lgr-ws has open; nfds_are N:
# it is N (for wait_until).
nfds() {
	find "/proc/$WS_PID/fd" -mindepth 1 -maxdepth 1 | wc -l
}

nfds_are() {
	[ "$(nfds)" -eq "$1" ]
}

@test "clients that cancel end their subscription; 50 open/cancel cycles leak nothing" {
	local fd0 rss1 rss2 out=$BATS_TEST_TMPDIR/x
	ws_start --max-subscriptions 2
	fd0=$(nfds)
	same "cycles 50 ok" "$(py grpc_sub --cycles 50 --sel log "$GRPC" batched "$out")"
	wait_until 100 logged 50 "event=unsubscribe "
	rss1=$(rss)
	same "cycles 50 ok" "$(py grpc_sub --cycles 50 "$GRPC" batch_subscribe "$out")"
	same "cycles 50 ok" "$(py grpc_sub --cycles 50 --sel counter "$GRPC" receiver "$out")"
	same "cycles 50 ok" "$(py grpc_sub --cycles 50 --app a "$GRPC" subscribe "$out")"
	wait_until 100 logged 200 "event=unsubscribe "
	same 200 "$(grep -c 'event=subscribe ' "$ERR")"
	# Every connection closed; no memory kept per subscription.
	wait_until 100 nfds_are "$fd0"
	rss2=$(rss)
	lgr_diag "rss: ${rss1} kB after 50 cycles, ${rss2} kB after 200"
	[ $((rss2 - rss1)) -lt 4096 ]
	# Both places free: two subscriptions at once still fit.
	sub a --sel log batched
	sub b --count 1 batch_subscribe
	subs_ready
	feed "$BATS_FILE_TMPDIR/sent"
	sub_done b "CANCELLED Locally cancelled by application!"
	ws_end
	sub_done a "OK "
	got_v2 a log
}

@test "SIGTERM: every call sends what it has queued, ends with OK, and lgr-ws exits 0" {
	local t=$BATS_TEST_TMPDIR
	SENT=$t/sent
	# 6000 1 KB logs: more than a stalled client's HTTP/2 window holds.
	lgr-emit --count 6000 --size 1000 --source-id app-1 log x >"$SENT"
	ws_start --subscriber-buffer 10000 --subscriber-bytes 67108864
	sub probe --sel log batched
	sub a --sel log --hold "$t/go" batched
	sub b --hold "$t/go" batch_subscribe
	sub c --sel app-1/log --hold "$t/go" receiver
	sub d --app app-1 --hold "$t/go" subscribe
	subs_ready
	feed "$SENT"
	# Once the probe has all, every queue has all.
	wait_until 200 nframes_are 6000 "$t/probe"
	kill -TERM "$WS_PID"
	wait_until 100 grep -q 'event=stopping reason="SIGTERM"' "$ERR"
	touch "$t/go"
	ws_exit
	subs_ok
	got_v2 a log
	got_v1 b
	got_v2 c app-1/log
	got_v1 d --app app-1
	same 6000 "$(nframes "$t/d")"
	[[ $(last_line "$ERR") == *" dropped=0 "* ]]
}

# --- TLS -------------------------------------------------------------------------------

@test "mTLS: a client without a certificate, or with one from another CA, is refused; one with a certificate gets data" {
	local c=$BATS_TEST_TMPDIR/certs o=$BATS_TEST_TMPDIR/other
	sh "$LGR_ROOT/share/lgr-certs" --only "$c" doppler client 2>/dev/null
	sh "$LGR_ROOT/share/lgr-certs" --only "$o" client 2>/dev/null
	ws_start --tls-cert "$c/doppler.crt" --tls-key "$c/doppler.key" \
	    --tls-ca "$c/ca.crt"
	grep -q "event=listening proto=grpc addr=$GRPC tls=mtls" "$ERR"
	sub v2 --ca "$c/ca.crt" --cert "$c/client.crt" --key "$c/client.key" \
	    --sel log batched
	sub v1 --ca "$c/ca.crt" --cert "$c/client.crt" --key "$c/client.key" \
	    --app app-1 subscribe
	subs_ready
	call_is "UNAVAILABLE *" --ca "$c/ca.crt" --sel log batched
	call_is "UNAVAILABLE *" --ca "$c/ca.crt" --cert "$o/client.crt" \
	    --key "$o/client.key" batch_subscribe
	call_is "UNAVAILABLE *" --sel log receiver
	feed "$BATS_FILE_TMPDIR/sent"
	ws_end
	subs_ok
	got_v2 v2 log
	got_v1 v1 --app app-1
	same 2 "$(grep -c 'event=subscribe ' "$ERR")"
	same 3 "$(grep -c 'event=grpc_conn_closed .*reason="tls handshake' "$ERR")"
}

# --- relayed by lgr-recv ------------------------------------------------------------

# relay_start: lgr-ws was started with --relay $SOCK; start lgr-recv
# --grpc 127.0.0.1:0 --egress-relay $SOCK (10 s at most to get ready) and
# point GRPC at it. Sets RECV_PID and RECV_ERR.
relay_start() {
	local fifo=$BATS_TEST_TMPDIR/notify-recv n=100 nfd l
	RECV_ERR=$BATS_TEST_TMPDIR/recv.err
	rm -f "$fifo"
	mkfifo "$fifo"
	exec {nfd}<>"$fifo"
	lgr-recv --grpc 127.0.0.1:0 --egress-relay "$SOCK" \
	    --metrics-interval 0 --notify-fd 3 3>"$fifo" {nfd}>&- \
	    {LGR_DIAG}>&- </dev/null >/dev/null 2>"$RECV_ERR" &
	RECV_PID=$!
	while ! read -r -t 0.1 -u "$nfd" _; do
		n=$((n - 1))
		if [ "$n" -eq 0 ] || ! kill -0 "$RECV_PID" 2>/dev/null; then
			exec {nfd}>&-
			lgr_diag "lgr-recv did not get ready; its log:"
			lgr_diag "$(cat "$RECV_ERR")"
			return 1
		fi
	done
	exec {nfd}>&-
	l=$(grep -m 1 "event=listening proto=grpc " "$RECV_ERR") || return 1
	GRPC=$(field addr "$l")
}

@test "relayed by lgr-recv --egress-relay: the same calls get the same envelopes and the same errors" {
	local name
	SOCK=$BATS_TEST_TMPDIR/relay.sock
	ws_start --relay "$SOCK"
	relay_start
	sub batched --sel app-1/log --sel gauge:a,b batched
	sub receiver --sel counter:ingress receiver
	sub subscribe --app app-1 subscribe
	sub batch-subscribe --class metric batch_subscribe
	sub cancel --count 1 --sel log batched
	subs_ready
	call_is "INVALID_ARGUMENT Selectors cannot be empty" batched
	call_is "INVALID_ARGUMENT Selectors must have a Message" \
	    --sel none receiver
	call_is "INVALID_ARGUMENT *" --raw 0c batch_subscribe
	feed "$BATS_FILE_TMPDIR/sent"
	sub_done cancel "CANCELLED Locally cancelled by application!"
	wait_until 100 grep -q "event=unsubscribe sub=grpc:relay/" "$ERR"
	ws_end
	for name in batched receiver subscribe batch-subscribe; do
		sub_done "$name" "OK "
	done
	got_v2 batched app-1/log gauge:a,b
	got_v2 receiver counter:ingress
	got_v1 subscribe --app app-1
	got_v1 batch-subscribe --class metric
	same 5 "$(grep -c 'event=subscribe sub=grpc:relay/' "$ERR")"
	same 5 "$(grep -c 'event=unsubscribe sub=grpc:relay/' "$ERR")"
}

@test "the relay socket takes our four methods by their whole path and refuses any other" {
	local sock=$BATS_TEST_TMPDIR/relay.sock
	ws_start --relay "$sock"
	# EgressBatchRequest{selectors: [{log}]}; an empty SubscriptionRequest.
	same "0 " "$(py grpc_relay "$sock" /loggregator.v2.Egress/BatchedReceiver 22021200)"
	same "0 " "$(py grpc_relay "$sock" /loggregator.v2.Egress/Receiver 22021200)"
	same "0 " "$(py grpc_relay "$sock" /plumbing.Doppler/Subscribe "")"
	same "0 " "$(py grpc_relay "$sock" /plumbing.Doppler/BatchSubscribe "")"
	same "3 Selectors cannot be empty" \
	    "$(py grpc_relay "$sock" /loggregator.v2.Egress/Receiver "")"
	same "12 unknown method" "$(py grpc_relay "$sock" /loggregator "")"
	same "12 unknown method" "$(py grpc_relay "$sock" "" "")"
	same "12 unknown method" \
	    "$(py grpc_relay "$sock" /plumbing.Doppler/BatchSubscribeX "")"
	same "12 unknown method" \
	    "$(py grpc_relay "$sock" /loggregator.v2.Ingress/Sender "")"
	same "12 unknown method" "$(py grpc_relay "$sock" "$(printf '/x%.0s' {1..100})" "")"
	# Each accepted call ended when its connection closed.
	wait_until 100 logged 4 "event=unsubscribe sub=grpc:relay/"
	ws_end
}

@test "relayed by lgr-recv: on SIGTERM a relayed call sends what it has queued and ends with OK" {
	local t=$BATS_TEST_TMPDIR
	SENT=$t/sent
	SOCK=$t/relay.sock
	lgr-emit --count 6000 --size 1000 --source-id app-1 log x >"$SENT"
	ws_start --relay "$SOCK" --subscriber-buffer 10000 \
	    --subscriber-bytes 67108864
	relay_start
	sub probe --sel log batched
	sub a --sel log --hold "$t/go" batched
	sub b --hold "$t/go" subscribe
	subs_ready
	feed "$SENT"
	wait_until 200 nframes_are 6000 "$t/probe"
	kill -TERM "$WS_PID"
	wait_until 100 grep -q 'event=stopping reason="SIGTERM"' "$ERR"
	touch "$t/go"
	ws_exit
	subs_ok
	got_v2 a log
	got_v1 b
	[[ $(last_line "$ERR") == *" dropped=0 "* ]]
}
