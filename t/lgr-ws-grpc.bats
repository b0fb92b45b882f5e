#!/usr/bin/env bats
# lgr-ws, the gRPC side: loggregator.v2.Egress (Receiver, BatchedReceiver)
# and plumbing.Doppler (Subscribe, BatchSubscribe) served to real gRPC
# clients (python3-grpcio, t/lgr-ws/grpc_sub.py) from frames on stdin, as
# doppler serves them. What the clients get is checked by
# t/lgr-ws/grpc_check.py against the frames lgr-emit made, decoded with
# python3-protobuf: v2 envelopes byte for byte, v1 envelopes against an
# independent v2 -> v1 conversion (SPEC §3) and v1 routing (§5).
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
	local f=$1 base="--tag origin=rep --tag deployment=cf --tag job=diego \
--tag index=7 --tag ip=10.0.0.1"
	local app3=6f1b5b3e-2a4c-4d8e-9f00-0123456789ab
	{
		printf 'app-1 line %d\n' 1 2 3 |
		    lgr-emit $base --source-id app-1 --instance-id 3 \
		    --tag source_type=APP/PROC/WEB log
		lgr-emit $base --source-id app-2 --instance-id 0 --err \
		    --tag source_type=STG log "staging failed"
		lgr-emit $base --source-id app-1 --instance-id 2 gauge \
		    cpu=12.5:percentage memory=1048576:bytes disk=2097152:bytes \
		    memory_quota=4194304:bytes disk_quota=8388608:bytes
		lgr-emit --source-id app-1 --instance-id 1 --tag job=cell \
		    gauge requests=3:count
		lgr-emit $base --source-id metron gauge a=1.5:x b=2:y
		lgr-emit --source-id metron gauge a=2.5:x
		lgr-emit $base --source-id doppler --total 100 counter ingress 5
		lgr-emit --source-id doppler --instance-id 4 counter egress 3
		lgr-emit --source-id app-2 --total 9 counter ingress 1
		lgr-emit $base --source-id "$app3" --instance-id 1 \
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
		    lgr-emit $base --source-id app-1 --instance-id 3 \
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
# SPEC select from the sent envelopes, in order, byte for byte.
got_v2() {
	py grpc_check v2 "$BATS_FILE_TMPDIR/sent" "$BATS_TEST_TMPDIR/$1" \
	    "${@:2}" || { lgr_diag "subscriber $1"; return 1; }
}

# got_v1 NAME [--app ID] [--class C]: subscriber NAME got the v1 form of
# what that filter takes from the sent envelopes.
got_v1() {
	py grpc_check v1 "$BATS_FILE_TMPDIR/sent" "$BATS_TEST_TMPDIR/$1" \
	    "${@:2}" || { lgr_diag "subscriber $1"; return 1; }
}

# nframes FILE: the number of frames in FILE.
nframes() {
	py grpc_check count "$1"
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
