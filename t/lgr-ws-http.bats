#!/usr/bin/env bats
# lgr-ws, the HTTP side: the traffic controller's websockets (app streams
# and the sharded firehose), /set-cookie, recentlogs and containermetrics,
# and the RLP gateway's GET /v2/read, served to real clients: Debian's
# python3-websockets (t/lgr-ws/ws_client.py) and curl. What the clients
# get is checked against the frames lgr-emit made: v1 envelopes by
# t/lgr-ws/grpc_check.py (an independent v2 -> v1 conversion with
# python3-protobuf), server-sent events by t/lgr-ws/sse_check.py against
# lgr-cat's JSON. Authorization runs against t/auth-peer/uaa_cc.py, a
# stand-in UAA and Cloud Controller.
#
# lgr-ws reads its stdin from a fifo held open by a sleeping writer; the
# test feeds frames once every client is in place, then kills the writer:
# at the end of its input lgr-ws sends each websocket what its queue holds
# and closes it with 1001, ends each event stream, and exits 0.

load lib

APP3=6f1b5b3e-2a4c-4d8e-9f00-0123456789ab

setup_file() {
	export PYTHONDONTWRITEBYTECODE=1
	export LGR_PB=$BATS_FILE_TMPDIR/pb
	mkdir -p "$LGR_PB"
	protoc --python_out="$LGR_PB" -I "$LGR_ROOT/share/proto" \
	    v2/envelope.proto events/dropsonde.proto
	make_sent "$BATS_FILE_TMPDIR/sent"
}

# py NAME ARGS...: the helper t/lgr-ws/NAME.py, under Debian's python3.
py() {
	"$LGR_PYTHON" "$BATS_TEST_DIRNAME/lgr-ws/$1.py" "${@:2}"
}

# make_sent FILE: one envelope of each kind the v1 routing tells apart.
make_sent() {
	local base="--tag origin=rep --tag deployment=cf --tag job=diego \
--tag index=7 --tag ip=10.0.0.1"
	{
		printf 'app-1 line %d\n' 1 2 3 |
		    lgr-emit $base --source-id app-1 --instance-id 3 \
		    --tag source_type=APP/PROC/WEB log
		lgr-emit $base --source-id app-2 --instance-id 0 --err \
		    --tag source_type=STG log "staging failed"
		lgr-emit $base --source-id app-1 --instance-id 2 gauge \
		    cpu=12.5:percentage memory=1048576:bytes disk=2097152:bytes \
		    memory_quota=4194304:bytes disk_quota=8388608:bytes
		lgr-emit --source-id app-1 --instance-id 1 gauge requests=3:count
		lgr-emit $base --source-id metron gauge a=1.5:x b=2:y
		lgr-emit $base --source-id doppler --total 100 counter ingress 5
		lgr-emit --source-id app-2 --total 9 counter ingress 1
		lgr-emit $base --source-id "$APP3" --instance-id 1 \
		    --tag request_id=1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9 \
		    --tag method=GET --tag peer_type=Server --tag uri=/x \
		    --tag remote_address=10.1.1.1:5000 --tag user_agent=curl \
		    --tag status_code=200 --tag content_length=42 \
		    --tag routing_instance_id=r1 timer http 1000 2000
		lgr-emit --source-id app-1 event deploy "v2 started"
		printf 'app-3 line %d\n' 1 2 |
		    lgr-emit --source-id "$APP3" --instance-id 0 \
		    --tag source_type=APP/PROC/WEB log
		printf 'app-1 line %d\n' 4 5 6 7 8 9 |
		    lgr-emit $base --source-id app-1 --instance-id 3 \
		    --tag source_type=APP/PROC/WEB log
	} >"$1"
}

# --- starting and stopping ---------------------------------------------------

# ws_start ARGS...: lgr-ws --http 127.0.0.1:0 ARGS in the background, its
# stdin the fifo $IN held open by a sleeping writer (HOLD_PID), stdout to
# $OUT, log to $ERR; waits for --notify-fd. Sets WS_PID and HTTP.
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
	lgr-ws --http 127.0.0.1:0 --metrics-interval 0 "$@" --notify-fd 3 \
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
	l=$(grep -m 1 "event=listening proto=http " "$ERR") || return 1
	HTTP=$(field addr "$l")
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

# ws_end: end lgr-ws's input; it must exit 0 within 10 s.
ws_end() {
	kill "$HOLD_PID"
	wait_exit "$WS_PID" 10 || { lgr_diag "$(cat "$ERR")"; return 1; }
	if [ "$st" -ne 0 ]; then
		lgr_diag "lgr-ws exited $st; its log:"
		lgr_diag "$(cat "$ERR")"
		return 1
	fi
}

# feed FILE: frames into lgr-ws.
feed() {
	cat "$1" >"$IN"
}

# --- clients -----------------------------------------------------------------

declare -gA CPID

# client NAME PATH ARGS...: ws_client.py on ws://$HTTP/PATH in the
# background, what it gets in $T/NAME.got and its lines in $T/NAME.log;
# returns once the handshake is over (its first line).
client() {
	local name=$1 path=$2 log
	shift 2
	log=$BATS_TEST_TMPDIR/$name.log
	py ws_client "${WS_SCHEME:-ws}://$HTTP$path" \
	    "$BATS_TEST_TMPDIR/$name.got" "$@" >"$log" 2>&1 3>&- \
	    {LGR_DIAG}>&- &
	CPID[$name]=$!
	wait_until 200 test -s "$log" || { cat "$log" >&"$LGR_DIAG"; return 1; }
	touch "$BATS_TEST_TMPDIR/$name.got"
}

# first NAME: the client's first line.
first() {
	head -n 1 "$BATS_TEST_TMPDIR/$1.log"
}

# closed NAME CODE: the client ends (within 20 s) on a close with CODE;
# sets got to its message count.
closed() {
	local l
	wait_exit "${CPID[$1]}" 20 || return 1
	l=$(last_line "$BATS_TEST_TMPDIR/$1.log")
	case $l in
	"closed code=$2 "*) ;;
	*)
		lgr_diag "client $1: wanted close $2, got: $l"
		lgr_diag "$(cat "$BATS_TEST_TMPDIR/$1.log")"
		return 1
		;;
	esac
	got=${l##*count=}
}

# check MODE ARGS...: grpc_check.py, its complaints on the test's stderr.
check() {
	run_ok py grpc_check "$@" 2>&"$LGR_DIAG"
}

# http_code ARGS...: the status curl gets.
http_code() {
	curl -s -o "$BATS_TEST_TMPDIR/body" -D "$BATS_TEST_TMPDIR/head" \
	    -w '%{http_code}' "$@"
}

# head_of NAME: the value of response header NAME from the last http_code.
head_of() {
	grep -i "^$1:" "$BATS_TEST_TMPDIR/head" | head -n 1 | cut -d' ' -f2- |
	    tr -d '\r'
}

# sse NAME QUERY [CURL ARGS...]: curl -N on /v2/read?QUERY in the
# background into $T/NAME.sse; returns once the headers are in.
sse() {
	local name=$1 q=$2
	shift 2
	curl -sN -D "$BATS_TEST_TMPDIR/$name.head" \
	    -o "$BATS_TEST_TMPDIR/$name.sse" "$@" \
	    "http://$HTTP/v2/read?$q" 3>&- {LGR_DIAG}>&- &
	CPID[$name]=$!
	wait_until 200 test -s "$BATS_TEST_TMPDIR/$name.head"
}

# --- the websocket endpoints ---------------------------------------------------

@test "an app stream gets exactly the v1 envelopes of its app, in order" {
	ws_start --no-auth
	client app1 /apps/app-1/stream
	client app3 "/apps/$APP3/stream"
	client none /apps/no-such-app/stream
	same open "$(first app1)"
	feed "$BATS_FILE_TMPDIR/sent"
	ws_end
	closed app1 1001
	closed app3 1001
	closed none 1001
	check v1 "$BATS_FILE_TMPDIR/sent" "$BATS_TEST_TMPDIR/app1.got" \
	    --app app-1
	check v1 "$BATS_FILE_TMPDIR/sent" "$BATS_TEST_TMPDIR/app3.got" \
	    --app "$APP3"
	same 0 "$got"
	[ "$(grep -c 'egress_stream=' "$ERR")" -eq 1 ]
}

@test "a firehose gets every envelope; filter-type picks logs or metrics" {
	ws_start --no-auth
	client all /firehose/all
	client logs "/firehose/logs?filter-type=logs"
	client metrics "/firehose/metrics?filter-type=metrics"
	client other "/firehose/other?filter-type=bogus"
	feed "$BATS_FILE_TMPDIR/sent"
	ws_end
	for c in all logs metrics other; do closed $c 1001; done
	check v1 "$BATS_FILE_TMPDIR/sent" "$BATS_TEST_TMPDIR/all.got"
	check v1 "$BATS_FILE_TMPDIR/sent" "$BATS_TEST_TMPDIR/other.got"
	check v1 "$BATS_FILE_TMPDIR/sent" "$BATS_TEST_TMPDIR/logs.got" \
	    --class log
	check v1 "$BATS_FILE_TMPDIR/sent" "$BATS_TEST_TMPDIR/metrics.got" \
	    --class metric
}

@test "firehose clients sharing a subscription id split the stream, none lost or doubled" {
	ws_start --no-auth
	client a1 /firehose/shared
	client a2 /firehose/shared
	client b /firehose/solo
	lgr-emit --count 300 --source-id app-1 log "x" >"$BATS_TEST_TMPDIR/f"
	printf 'line %d\n' $(seq 1 200) |
	    lgr-emit --source-id app-2 log >>"$BATS_TEST_TMPDIR/f"
	feed "$BATS_TEST_TMPDIR/f"
	ws_end
	for c in a1 a2 b; do closed $c 1001; done
	check v1 "$BATS_TEST_TMPDIR/f" "$BATS_TEST_TMPDIR/b.got"
	check split "$BATS_TEST_TMPDIR/b.got" "$BATS_TEST_TMPDIR/a1.got" \
	    "$BATS_TEST_TMPDIR/a2.got"
}

@test "a client that stops reading is cut off with 1000 and counted; the others get everything" {
	ws_start --no-auth --slow-consumer-timeout 0.5 --metrics-interval 0.2
	client slow /firehose/slow --stall 4 --rcvbuf 4096
	client fast /firehose/fast
	lgr-emit --count 15000 --rate 5000 --size 200 --source-id load \
	    log x >"$BATS_TEST_TMPDIR/f"
	feed "$BATS_TEST_TMPDIR/f"
	closed slow 1000
	slow_got=$got
	ws_end
	closed fast 1001
	check v1 "$BATS_TEST_TMPDIR/f" "$BATS_TEST_TMPDIR/fast.got"
	[ "$slow_got" -lt 15000 ]
	grep -q "event=slow_consumer .*path=\"/firehose/slow\"" "$ERR"
	run_ok lgr-cat <"$OUT" >"$BATS_TEST_TMPDIR/out.json"
	grep -q '"title":"Traffic Controller has disconnected slow consumer"' \
	    "$BATS_TEST_TMPDIR/out.json"
	grep -q 'Path: /firehose/slow' "$BATS_TEST_TMPDIR/out.json"
	grep '"name":"doppler_proxy.slow_consumer"' \
	    "$BATS_TEST_TMPDIR/out.json" | grep -q '"total":"1"'
}

@test "a client that never answers pings is closed with 1008 and the keep-alive reason" {
	ws_start --no-auth --ping-interval 1 --pong-timeout 1
	client mute /firehose/mute --no-pong
	client talks /firehose/talks
	closed mute 1008
	contains "$(last_line "$BATS_TEST_TMPDIR/mute.log")" \
	    "reason=Client did not respond to ping before keep-alive timeout expired."
	sleep 2.5	# two more ping rounds for the client that answers
	running "${CPID[talks]}"
	ws_end
	closed talks 1001
}

@test "a client's close is answered with a close, and its frames are ignored" {
	ws_start --no-auth
	client c /firehose/c --max 2
	lgr-emit --count 5 log x >"$BATS_TEST_TMPDIR/f"
	feed "$BATS_TEST_TMPDIR/f"
	closed c 1000
	grep -q 'event=ws_end .*path="/firehose/c" reason=closed' "$ERR"
	ws_end
}

@test "websocket endpoints answer like gorilla: 400 without an upgrade, 405 for another method, 404 elsewhere" {
	ws_start --no-auth
	same 400 "$(http_code "http://$HTTP/firehose/x")"
	same "Bad Request" "$(cat "$BATS_TEST_TMPDIR/body")"
	same 13 "$(head_of Sec-Websocket-Version)"
	same 405 "$(http_code -X POST -H 'Connection: Upgrade' \
	    -H 'Upgrade: websocket' -H 'Sec-WebSocket-Version: 13' \
	    -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' \
	    "http://$HTTP/apps/app-1/stream")"
	same 400 "$(http_code -H 'Connection: Upgrade' \
	    -H 'Upgrade: websocket' -H 'Sec-WebSocket-Version: 8' \
	    -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' \
	    "http://$HTTP/apps/app-1/stream")"
	for p in / /apps /apps/x /apps/x/logs /firehose /firehose/ \
	    /firehose/a/b /v2/read/x /set-cookie/x; do
		same 404 "$(http_code "http://$HTTP$p")"
	done
	same "404 page not found" "$(cat "$BATS_TEST_TMPDIR/body")"
	same 400 "$(http_code "http://$HTTP/apps/%zz/stream")"
	ws_end
}

@test "the handshake is RFC 6455's: the accept key of the sample nonce" {
	ws_start --no-auth
	head=$(py hostile head 127.0.0.1 "${HTTP##*:}" \
	    'GET /firehose/k HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n')
	contains "$head" "HTTP/1.1 101 Switching Protocols"
	contains "$head" "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
	contains "$head" "Upgrade: websocket"
	ws_end
}

# --- /set-cookie -------------------------------------------------------------------

@test "/set-cookie sets the cookie with the domain, Secure, HttpOnly and CORS headers" {
	ws_start --no-auth --cookie-domain doppler.example.com
	same 200 "$(http_code -X POST -H 'Origin: https://console.example.com' \
	    --data 'CookieName=authorization&CookieValue=bearer%20abc' \
	    "http://$HTTP/set-cookie")"
	same 'authorization="bearer abc"; Domain=doppler.example.com; HttpOnly; Secure' \
	    "$(head_of Set-Cookie)"
	same https://console.example.com "$(head_of Access-Control-Allow-Origin)"
	same true "$(head_of Access-Control-Allow-Credentials)"
	same Content-Type "$(head_of Access-Control-Allow-Headers)"
	same 200 "$(http_code "http://$HTTP/set-cookie?CookieName=a&CookieValue=b")"
	same 'a=b; Domain=doppler.example.com; HttpOnly; Secure' \
	    "$(head_of Set-Cookie)"
	same 200 "$(http_code -X PUT "http://$HTTP/set-cookie")"
	same "" "$(head_of Set-Cookie)"
	same 400 "$(http_code "http://$HTTP/set-cookie?CookieName=%zz")"
	same 400 "$(http_code -X POST -H 'Content-Type: text/' --data x \
	    "http://$HTTP/set-cookie")"
	same true "$(head_of Access-Control-Allow-Credentials)"
	ws_end
}

# --- recentlogs and containermetrics --------------------------------------------------

@test "recentlogs and containermetrics answer an empty multipart body without caches" {
	ws_start --no-auth
	for p in recentlogs containermetrics; do
		same 200 "$(http_code "http://$HTTP/apps/app-1/$p")"
		run_ok py fake_cache parse "$BATS_TEST_TMPDIR/body" \
		    "$(head_of Content-Type)"
		same "" "$(py fake_cache parse "$BATS_TEST_TMPDIR/body" \
		    "$(head_of Content-Type)")"
	done
	ws_end
}

@test "recentlogs merge the caches newest first up to the limit; containermetrics keep the newest per instance" {
	py fake_cache serve "$BATS_TEST_TMPDIR/c1.port" --logs 100,300 \
	    --metrics 0:100,1:300 >"$BATS_TEST_TMPDIR/c1.log" 3>&- &
	py fake_cache serve "$BATS_TEST_TMPDIR/c2.port" --logs 200,400,50 \
	    --metrics 0:200,1:50,2:10 >"$BATS_TEST_TMPDIR/c2.log" 3>&- &
	wait_until 100 test -s "$BATS_TEST_TMPDIR/c1.port"
	wait_until 100 test -s "$BATS_TEST_TMPDIR/c2.port"
	ws_start --no-auth \
	    --cache "http://127.0.0.1:$(cat "$BATS_TEST_TMPDIR/c1.port")" \
	    --cache "http://127.0.0.1:$(cat "$BATS_TEST_TMPDIR/c2.port")/"
	same 200 "$(http_code -H 'Origin: https://x' \
	    "http://$HTTP/apps/app-9/recentlogs?limit=3")"
	same https://x "$(head_of Access-Control-Allow-Origin)"
	same "log 400 log 400
log 300 log 300
log 200 log 200" "$(py fake_cache parse "$BATS_TEST_TMPDIR/body" \
	    "$(head_of Content-Type)")"
	same "/apps/app-9/recentlogs?limit=3" \
	    "$(head -n 1 "$BATS_TEST_TMPDIR/c1.log")"
	same 200 "$(http_code "http://$HTTP/apps/app-9/recentlogs")"
	same 5 "$(py fake_cache parse "$BATS_TEST_TMPDIR/body" \
	    "$(head_of Content-Type)" | wc -l)"
	same 200 "$(http_code "http://$HTTP/apps/app-9/containermetrics")"
	same "metric 0 200
metric 1 300
metric 2 10" "$(py fake_cache parse "$BATS_TEST_TMPDIR/body" \
	    "$(head_of Content-Type)")"
	ws_end
}

@test "recentlogs answer 500 when no cache answers" {
	ws_start --no-auth --cache http://127.0.0.1:1
	same 500 "$(http_code "http://$HTTP/apps/app-9/recentlogs")"
	grep -q "event=cache_failed" "$ERR"
	ws_end
}

# --- /v2/read ------------------------------------------------------------------------------

@test "/v2/read streams the selected envelopes as the gateway's JSON batches" {
	ws_start --no-auth
	lgr-emit --count 3 --source-id s1 log "one" >"$BATS_TEST_TMPDIR/s1log"
	lgr-emit --source-id s1 --total 7 counter requests 2 \
	    >"$BATS_TEST_TMPDIR/s1counter"
	lgr-emit --source-id s2 log "two" >"$BATS_TEST_TMPDIR/s2log"
	lgr-emit --source-id s1 gauge cpu=0.5:percentage \
	    >"$BATS_TEST_TMPDIR/s1gauge"
	lgr-emit --source-id s1 event t b >"$BATS_TEST_TMPDIR/s1event"
	sse logs "source_id=s1&log"
	sse all "log&counter&gauge&timer&event"
	sse cnt "source_id=s1&counter.name=requests"
	cat "$BATS_TEST_TMPDIR"/s1log "$BATS_TEST_TMPDIR"/s1counter \
	    "$BATS_TEST_TMPDIR"/s2log "$BATS_TEST_TMPDIR"/s1gauge \
	    "$BATS_TEST_TMPDIR"/s1event >"$BATS_TEST_TMPDIR/f"
	feed "$BATS_TEST_TMPDIR/f"
	ws_end
	for c in logs all cnt; do wait_exit "${CPID[$c]}" 5; done
	same "text/event-stream" "$(grep -i '^content-type:' \
	    "$BATS_TEST_TMPDIR/logs.head" | cut -d' ' -f2 | tr -d '\r')"
	grep -qi '^cache-control: no-cache' "$BATS_TEST_TMPDIR/logs.head"
	grep -qi '^connection: keep-alive' "$BATS_TEST_TMPDIR/logs.head"
	run_ok lgr-cat <"$BATS_TEST_TMPDIR/s1log" >"$BATS_TEST_TMPDIR/want"
	run_ok py sse_check data "$BATS_TEST_TMPDIR/logs.sse" \
	    "$BATS_TEST_TMPDIR/want" 2>&"$LGR_DIAG"
	run_ok lgr-cat <"$BATS_TEST_TMPDIR/f" >"$BATS_TEST_TMPDIR/want"
	run_ok py sse_check data "$BATS_TEST_TMPDIR/all.sse" \
	    "$BATS_TEST_TMPDIR/want" 2>&"$LGR_DIAG"
	run_ok lgr-cat <"$BATS_TEST_TMPDIR/s1counter" >"$BATS_TEST_TMPDIR/want"
	run_ok py sse_check data "$BATS_TEST_TMPDIR/cnt.sse" \
	    "$BATS_TEST_TMPDIR/want" 2>&"$LGR_DIAG"
}

@test "/v2/read converges deprecated tags into tags, as the reverse log proxy does" {
	ws_start --no-auth
	printf '%s\n' '{"timestamp":"5","source_id":"s","instance_id":"","deprecated_tags":{"a":{"text":"new"},"n":{"integer":"-3"},"d":{"decimal":1e+21},"e":{"decimal":0.25}},"tags":{"a":"old","t":"x"},"log":{"payload":"aGk=","type":"OUT"}}' |
	    lgr-cat --encode >"$BATS_TEST_TMPDIR/f"
	printf '%s\n' '{"timestamp":"5","source_id":"s","instance_id":"","deprecated_tags":{},"tags":{"a":"new","d":"1e+21","e":"0.25","n":"-3","t":"x"},"log":{"payload":"aGk=","type":"OUT"}}' \
	    >"$BATS_TEST_TMPDIR/want"
	sse s "log"
	feed "$BATS_TEST_TMPDIR/f"
	ws_end
	wait_exit "${CPID[s]}" 5
	run_ok py sse_check data "$BATS_TEST_TMPDIR/s.sse" \
	    "$BATS_TEST_TMPDIR/want" 2>&"$LGR_DIAG"
}

@test "/v2/read sends heartbeats while idle and a closing event at the stream timeout" {
	ws_start --no-auth --heartbeat 0.3 --stream-timeout 1.2
	sse s "log"
	wait_exit "${CPID[s]}" 5
	run_ok py sse_check shape "$BATS_TEST_TMPDIR/s.sse" \
	    >"$BATS_TEST_TMPDIR/shape"
	case $(cat "$BATS_TEST_TMPDIR/shape") in
	"data=0 heartbeat="[2-4]" closing=1 envelopes=0") ;;
	*) lgr_diag "$(cat "$BATS_TEST_TMPDIR/shape")"; false ;;
	esac
	same "event: closing
data: closing due to stream timeout" \
	    "$(tail -n 3 "$BATS_TEST_TMPDIR/s.sse")"
	ws_end
}

@test "/v2/read refuses what the gateway refuses, with its JSON errors" {
	ws_start --no-auth
	same 400 "$(http_code "http://$HTTP/v2/read")"
	same '{"message":"query cannot be empty","error":"empty_query"}' \
	    "$(cat "$BATS_TEST_TMPDIR/body")"
	same 400 "$(http_code "http://$HTTP/v2/read?source_id=a")"
	same '{"message":"query must provide at least one envelope type","error":"missing_envelope_type"}' \
	    "$(cat "$BATS_TEST_TMPDIR/body")"
	same 405 "$(http_code -X POST "http://$HTTP/v2/read?log")"
	same '{"message":"method not allowed","error":"method_not_allowed"}' \
	    "$(cat "$BATS_TEST_TMPDIR/body")"
	same "text/plain; charset=utf-8" "$(head_of Content-Type)"
	ws_end
}

# --- authorization -------------------------------------------------------------------

# auth_start ARGS...: uaa_cc.py (app ALLOWED allowed, GONE gone, BROKEN
# broken) and lgr-ws asking it, with ARGS.
ALLOWED=11111111-2222-3333-4444-555555555555
GONE=11111111-2222-3333-4444-000000000000
BROKEN=11111111-2222-3333-4444-999999999999
OTHER=11111111-2222-3333-4444-777777777777

auth_start() {
	"$LGR_PYTHON" "$BATS_TEST_DIRNAME/auth-peer/uaa_cc.py" \
	    --port-file "$BATS_TEST_TMPDIR/uaa.port" --allow "$ALLOWED" \
	    --gone "$GONE" --broken "$BROKEN" >/dev/null \
	    2>"$BATS_TEST_TMPDIR/uaa.err" 3>&- {LGR_DIAG}>&- &
	wait_until 100 test -s "$BATS_TEST_TMPDIR/uaa.port"
	local u=http://127.0.0.1:$(cat "$BATS_TEST_TMPDIR/uaa.port")
	ws_start --uaa "$u" --cc "$u" --uaa-client doppler --uaa-secret secret \
	    "$@"
}

@test "the firehose needs a doppler.firehose or logs.admin token: 401 with Basic otherwise" {
	auth_start
	client none /firehose/a
	same "http 401 WWW-Authenticate: Basic" "$(first none)"
	client user /firehose/a --header "Authorization: bearer user-token"
	same "http 401 WWW-Authenticate: Basic" "$(first user)"
	same 401 "$(http_code -H 'Authorization: bearer user-token' \
	    "http://$HTTP/firehose/a")"
	same "You are not authorized. Error: Invalid authorization" \
	    "$(cat "$BATS_TEST_TMPDIR/body")"
	same 401 "$(http_code "http://$HTTP/firehose/a")"
	same "You are not authorized. Error: Authorization not provided" \
	    "$(cat "$BATS_TEST_TMPDIR/body")"
	client admin /firehose/a --header "Authorization: bearer admin-token"
	client ladmin /firehose/a --header "Authorization: logs-admin-token"
	same open "$(first admin)"
	same open "$(first ladmin)"
	lgr-emit --count 4 log x >"$BATS_TEST_TMPDIR/f"
	feed "$BATS_TEST_TMPDIR/f"
	ws_end
	closed admin 1001
	closed ladmin 1001
	same 4 $(( $(py grpc_check count "$BATS_TEST_TMPDIR/admin.got") +
	    $(py grpc_check count "$BATS_TEST_TMPDIR/ladmin.got") ))
}

@test "an app stream needs log access: 401 without a token, 404 without access, 500 when CC fails" {
	auth_start
	T="Authorization: bearer user-token"
	client nonguid /apps/app-1/stream --header "$T"
	same "http 401" "$(first nonguid)"
	client notoken "/apps/$ALLOWED/stream"
	same "http 401 WWW-Authenticate: Basic" "$(first notoken)"
	client badtoken "/apps/$ALLOWED/stream" --header "Authorization: nope"
	same "http 401 WWW-Authenticate: Basic" "$(first badtoken)"
	client denied "/apps/$OTHER/stream" --header "$T"
	same "http 404" "$(first denied)"
	client gone "/apps/$GONE/stream" --header "$T"
	same "http 404" "$(first gone)"
	client broken "/apps/$BROKEN/stream" --header "$T"
	same "http 500" "$(first broken)"
	client ok "/apps/$ALLOWED/stream" --header "$T"
	same open "$(first ok)"
	client cookie "/apps/$ALLOWED/stream" \
	    --header "Cookie: authorization=bearer%20user-token"
	same open "$(first cookie)"
	lgr-emit --source-id "$ALLOWED" --count 2 log x >"$BATS_TEST_TMPDIR/f"
	lgr-emit --source-id "$OTHER" --count 2 log y >>"$BATS_TEST_TMPDIR/f"
	feed "$BATS_TEST_TMPDIR/f"
	ws_end
	closed ok 1001
	check v1 "$BATS_TEST_TMPDIR/f" "$BATS_TEST_TMPDIR/ok.got" --app "$ALLOWED"
	closed cookie 1001
	check v1 "$BATS_TEST_TMPDIR/f" "$BATS_TEST_TMPDIR/cookie.got" \
	    --app "$ALLOWED"
	[ "$(grep -c 'event=rejected' "$ERR")" -ge 6 ]
}

@test "/v2/read needs an admin token, or access to every source id named: 404 not_found otherwise" {
	auth_start
	same 404 "$(http_code "http://$HTTP/v2/read?log")"
	same '{"message":"resource not found","error":"not_found"}' \
	    "$(cat "$BATS_TEST_TMPDIR/body")"
	same 404 "$(http_code -H 'Cookie: authorization=admin-token' \
	    "http://$HTTP/v2/read?log")"
	same 404 "$(http_code -H 'Authorization: bearer user-token' \
	    "http://$HTTP/v2/read?log")"
	same 404 "$(http_code -H 'Authorization: bearer user-token' \
	    "http://$HTTP/v2/read?log&source_id=$ALLOWED&source_id=$OTHER")"
	same 404 "$(http_code -H 'Authorization: bad-token' \
	    "http://$HTTP/v2/read?log&source_id=$ALLOWED")"
	same 404 "$(http_code -X POST "http://$HTTP/v2/read?log")"
	sse user "log&source_id=$ALLOWED" -H 'Authorization: bearer user-token'
	sse admin "log" -H 'Authorization: bearer admin-token'
	lgr-emit --source-id "$ALLOWED" log x >"$BATS_TEST_TMPDIR/f"
	feed "$BATS_TEST_TMPDIR/f"
	ws_end
	wait_exit "${CPID[user]}" 5
	wait_exit "${CPID[admin]}" 5
	run_ok lgr-cat <"$BATS_TEST_TMPDIR/f" >"$BATS_TEST_TMPDIR/want"
	run_ok py sse_check data "$BATS_TEST_TMPDIR/user.sse" \
	    "$BATS_TEST_TMPDIR/want" 2>&"$LGR_DIAG"
	run_ok py sse_check data "$BATS_TEST_TMPDIR/admin.sse" \
	    "$BATS_TEST_TMPDIR/want" 2>&"$LGR_DIAG"
}

@test "--no-auth is refused on an address that is not loopback" {
	must_fail -2 lgr-ws --http 0.0.0.0:0 --no-auth </dev/null
}

# --- TLS ---------------------------------------------------------------------------------

@test "over TLS: wss and https, TLS 1.2 only with AES-GCM, a new certificate on SIGHUP" {
	"$LGR_ROOT/share/lgr-certs" "$BATS_TEST_TMPDIR/certs" 2>/dev/null
	C=$BATS_TEST_TMPDIR/certs
	ws_start --no-auth --http-cert "$C/trafficcontroller.crt" \
	    --http-key "$C/trafficcontroller.key"
	grep -q "event=listening proto=http .* tls=on" "$ERR"
	WS_SCHEME=wss client a /firehose/a --ca "$C/ca.crt"
	same open "$(first a)"
	same 200 "$(http_code --cacert "$C/ca.crt" \
	    "https://$HTTP/apps/x/recentlogs")"
	same 000 "$(http_code --cacert "$C/ca.crt" --tlsv1.1 --tls-max 1.1 \
	    "https://$HTTP/apps/x/recentlogs")"
	same 000 "$(http_code --cacert "$C/ca.crt" --tls-max 1.2 \
	    --ciphers ECDHE-RSA-CHACHA20-POLY1305 \
	    "https://$HTTP/apps/x/recentlogs")"
	kill -HUP "$WS_PID"
	wait_until 100 grep -q "event=tls_reloaded" "$ERR"
	WS_SCHEME=wss client b /firehose/b --ca "$C/ca.crt"
	same open "$(first b)"
	lgr-emit --count 3 log x >"$BATS_TEST_TMPDIR/f"
	feed "$BATS_TEST_TMPDIR/f"
	ws_end
	closed a 1001
	same 3 "$got"
	closed b 1001
	same 3 "$got"
}

# --- hostile clients -------------------------------------------------------------------------

# works: a websocket client and an event stream still get envelopes.
works() {
	client "w$1" "/firehose/w$1"
	sse "s$1" "log"
	lgr-emit --count 2 log ok >"$BATS_TEST_TMPDIR/f$1"
	feed "$BATS_TEST_TMPDIR/f$1"
	wait_until 200 test -s "$BATS_TEST_TMPDIR/w$1.got"
	wait_until 200 grep -q '^data: ' "$BATS_TEST_TMPDIR/s$1.sse"
}

@test "malformed requests get an error or a closed connection, and others are still served" {
	ws_start --no-auth
	P=${HTTP##*:}
	same closed "$(py hostile raw 127.0.0.1 "$P" 'GARBAGE\r\n\r\n')"
	same "HTTP/1.1 400 Bad Request" "$(py hostile raw 127.0.0.1 "$P" \
	    'GET / HTTP/1.1\r\nHost: x\r\nContent-Length: zz\r\n\r\n')"
	same "HTTP/1.1 431 Request Header Fields Too Large" \
	    "$(py hostile raw 127.0.0.1 "$P" \
	    "GET /v2/read?log HTTP/1.1\r\nHost: x\r\nX: $(printf 'a%.0s' \
	    $(seq 40000))\r\n\r\n")"
	same "HTTP/1.1 400 Bad Request" "$(py hostile raw 127.0.0.1 "$P" \
	    'GET /firehose/x HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n')"
	works 1
	ws_end
}

@test "a websocket frame over 64 KiB from a client closes it with 1009" {
	ws_start --no-auth
	client big /firehose/big --send-big 100000
	closed big 1009
	works 1
	ws_end
}

# few_fds: lgr-ws holds fewer than 100 file descriptors.
few_fds() {
	[ "$(ls "/proc/$WS_PID/fd" | wc -l)" -lt 100 ]
}

@test "1000 connections held open and a half-open request leave room for others, in bounded memory" {
	ws_start --no-auth
	P=${HTTP##*:}
	py hostile conns 127.0.0.1 "$P" 1000 30 >"$BATS_TEST_TMPDIR/conns" \
	    3>&- &
	py hostile half 127.0.0.1 "$P" 30 >"$BATS_TEST_TMPDIR/half" 3>&- &
	wait_until 400 grep -q "opened 1000" "$BATS_TEST_TMPDIR/conns"
	wait_until 100 grep -q "sent" "$BATS_TEST_TMPDIR/half"
	works 1
	rss=$(awk '/^VmRSS/ { print $2 }' "/proc/$WS_PID/status")
	[ "$rss" -lt 200000 ] || { lgr_diag "rss ${rss} kB"; false; }
	# Idle and half-sent requests are dropped after the write timeout.
	wait_until 400 few_fds
	works 2
	ws_end
}
