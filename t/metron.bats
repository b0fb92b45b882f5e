#!/usr/bin/env bats
# metron: the agent role, bin/metron, which runs
#   lgr-recv --udp --grpc --tag ... | lgr-diode | lgr-route --to grpcs://DOPPLERS
# Emitters are python3-grpcio (v2 Ingress over mTLS, as the "client" and
# "metron" certificates) and dropsonde datagrams made with
# python3-protobuf (t/roles/agent.py), fed with what lgr-emit makes. The
# dopplers are stand-ins on python3-grpcio (t/grpccli-peer/ingress_server.py,
# mTLS, certificate "doppler") that record each envelope as JSON, in the
# form `decode --json` prints, so what went in and what came out compare
# line for line.
#
# metron's listeners bind port 0 on loopback; the real ports come from
# lgr-recv's listening lines. What the script starts, and that a bad
# setting starts nothing, is checked on a copy of the script beside stub
# programs (t/roles/stub.sh).

# Tests start several python3-grpcio peers; give them time on a busy host.
: "${BATS_TEST_TIMEOUT:=120}"
load lib
load roles/roles

setup_file() {
	roles_setup_file
}

# The host's settings most tests give, and the tags they add.
HOST_ARGS=(--deployment cf --job diego-cell --index 5d2c --ip 10.0.16.4)
HOST_TAGS='{"deployment":"cf","job":"diego-cell","index":"5d2c","ip":"10.0.16.4"}'

# metron_start DOPPLERS [ARGS...]: metron to DOPPLERS with the suite's
# certificates, the host settings above and ARGS, listening on free ports;
# waits until it is ready.
metron_start() {
	local dopplers=$1
	shift
	role_start metron --dopplers "$dopplers" --certs "$CERTS" \
	    --udp 127.0.0.1:0 --grpc 127.0.0.1:0 "${HOST_ARGS[@]}" "$@"
	role_ready udp grpc
}

# logs NAME COUNT [LGR-EMIT ARGS...]: COUNT log envelopes from lgr-emit,
# payloads "NAME 1" to "NAME COUNT", into $BATS_TEST_TMPDIR/NAME.
logs() {
	local t=$BATS_TEST_TMPDIR name=$1 n=$2
	shift 2
	seq -f "$name %g" "$n" >"$t/$name.lines"
	run_ok lgr-emit --source-id "$name" "$@" log <"$t/$name.lines" >"$t/$name"
}

# payloads NAME: the log payloads stand-in NAME recorded, one a line.
payloads() {
	jq -r '.log.payload | @base64d' "$BATS_TEST_TMPDIR/$1.jsonl"
}

# has_logs NAME PREFIX N: stand-in NAME has N logs or more whose payload
# starts with "PREFIX ".
has_logs() {
	local n
	n=$(jq -r '.log.payload | @base64d' "$BATS_TEST_TMPDIR/$1.jsonl" \
	    2>/dev/null | grep -c "^$2 ")
	[ "$n" -ge "$3" ]
}

# has_counter NAME SOURCE_ID COUNTER ORIGIN TOTAL: stand-in NAME has a
# counter envelope from SOURCE_ID named COUNTER, tagged origin=ORIGIN, whose
# total is TOTAL or more.
has_counter() {
	jq -se --arg s "$2" --arg c "$3" --arg o "$4" --argjson n "$5" \
	    'any(.[]; .source_id == $s and .counter.name == $c and
	    .tags.origin == $o and (.counter.total | tonumber) >= $n)' \
	    "$BATS_TEST_TMPDIR/$1.jsonl" >/dev/null 2>&1
}

# counts LINE: the numbers of the key=value fields of a stop line, as
# "key=value" words, for `same`.
counts() {
	local w out=
	for w in $1; do
		case $w in
		*=[0-9]*) out="$out${out:+ }$w" ;;
		esac
	done
	printf '%s\n' "$out"
}

# --- command line ---------------------------------------------------------------

@test "--help prints the usage, naming every option, on stdout and exits 0" {
	local flag
	run -0 --separate-stderr metron --help
	[[ ${lines[0]} == "usage: metron --dopplers HOST:PORT[,HOST:PORT...] "* ]]
	for flag in --dopplers --certs --tls-cert --tls-key --tls-ca --udp --grpc \
	    --deployment --job --index --ip --tag --diode-size \
	    --metrics-interval --insecure; do
		contains "$output" "$flag"
	done
	same "" "$stderr"
	run -0 --separate-stderr metron -h
	[[ ${lines[0]} == "usage: metron "* ]]
}

@test "--version prints one line and exits 0" {
	run -0 --separate-stderr metron --version
	same 1 "${#lines[@]}"
	[[ ${lines[0]} =~ ^metron\ [0-9]+\.[0-9]+ ]]
	same "" "$stderr"
}

@test "bad settings are a one-line error and the usage, exit 2, and start nothing" {
	local t=$BATS_TEST_TMPDIR ok=(--dopplers 127.0.0.1:8082 --certs "$CERTS")
	stub_role metron
	mkdir "$t/nokey"
	cp "$CERTS/metron.crt" "$CERTS/ca.crt" "$t/nokey/"

	usage_error metron --certs "$CERTS"
	same "metron: no dopplers: give --dopplers or METRON_DOPPLERS" "$ERROR"
	usage_error metron --dopplers '' --certs "$CERTS"
	contains "$ERROR" "no dopplers"

	local bad
	for bad in doppler doppler: :8082 doppler:80x doppler:99999 doppler:0 \
	    'doppler:8082,' ',doppler:8082' 'a:1,,b:2' 'a:1, b:2' 'a:1:2' \
	    '[::1]' '[::1]8082' 'doppler:-1'; do
		usage_error metron --dopplers "$bad" --certs "$CERTS"
		contains "$ERROR" "metron: "
		contains "$ERROR" "$bad"
	done

	for bad in 127.0.0.1 127.0.0.1: 127.0.0.1:x 127.0.0.1:65536 :http \
	    '[::1' '[::1]3457' 127.0.0.1:99999 ''; do
		usage_error metron "${ok[@]}" --udp "$bad"
		contains "$ERROR" "--udp"
		usage_error metron "${ok[@]}" --grpc "$bad"
		contains "$ERROR" "--grpc"
	done

	usage_error metron --dopplers 127.0.0.1:8082
	contains "$ERROR" "mTLS needs --certs DIR"
	usage_error metron --dopplers 127.0.0.1:8082 --certs "$t/nonexistent"
	same "metron: cannot read $t/nonexistent/metron.crt" "$ERROR"
	usage_error metron --dopplers 127.0.0.1:8082 --certs "$t/nokey"
	same "metron: cannot read $t/nokey/metron.key" "$ERROR"
	usage_error metron --dopplers 127.0.0.1:8082 --tls-cert "$CERTS/metron.crt" \
	    --tls-key "$CERTS/metron.key"
	contains "$ERROR" "mTLS needs"

	usage_error metron "${ok[@]}" --bogus 1
	same "metron: unknown option --bogus" "$ERROR"
	usage_error metron "${ok[@]}" --bogus=1
	same "metron: unknown option --bogus" "$ERROR"
	usage_error metron "${ok[@]}" -x
	same "metron: unknown option -x" "$ERROR"
	usage_error metron "${ok[@]}" --udp
	same "metron: option --udp needs a value" "$ERROR"
	usage_error metron "${ok[@]}" stray
	same "metron: unexpected argument 'stray'" "$ERROR"

	for bad in abc 0 -1 '' 1e3 100000001 99999999999999999999999; do
		usage_error metron "${ok[@]}" --diode-size "$bad"
		contains "$ERROR" "--diode-size"
	done
	for bad in soon -1 86401 1.2.3 '' nan; do
		usage_error metron "${ok[@]}" --metrics-interval "$bad"
		contains "$ERROR" "--metrics-interval"
	done
	for bad in novalue =v; do
		usage_error metron "${ok[@]}" --tag "$bad"
		contains "$ERROR" "'$bad' is not K=V"
	done

	# From the environment, the same checks.
	METRON_DOPPLERS=doppler usage_error metron --certs "$CERTS"
	contains "$ERROR" "doppler"
	METRON_DIODE_SIZE=many usage_error metron "${ok[@]}"
	contains "$ERROR" "--diode-size"
	METRON_INSECURE=maybe usage_error metron --dopplers 127.0.0.1:8082
	contains "$ERROR" "METRON_INSECURE"
}

@test "it starts lgr-recv, lgr-diode and lgr-route with the settings given" {
	stub_role metron
	run -0 "$STUB" --dopplers doppler-0.example:8082,10.0.0.2:8082,'[fd00::3]:8082' \
	    --certs "$CERTS" --udp 127.0.0.1:13457 --grpc '[::1]:13458' \
	    --deployment cf --job diego-cell --index 5d2c --ip 10.0.16.4 \
	    --tag az=z1 --tag placement=a=b --diode-size 500 \
	    --metrics-interval 2.5
	same "" "$output"
	run -0 started lgr-recv
	same "[--udp] [127.0.0.1:13457] [--grpc] [[::1]:13458] [--tls-cert] [$CERTS/metron.crt] [--tls-key] [$CERTS/metron.key] [--tls-ca] [$CERTS/ca.crt] [--tag] [deployment=cf] [--tag] [job=diego-cell] [--tag] [index=5d2c] [--tag] [ip=10.0.16.4] [--tag] [az=z1] [--tag] [placement=a=b] [--metrics-interval] [2.5] [--source-id] [metron]" "$output"
	run -0 started lgr-diode
	same "[--size] [500] [--source-id] [metron]" "$output"
	run -0 started lgr-route
	same "[--to] [grpcs://doppler-0.example:8082,10.0.0.2:8082,[fd00::3]:8082] [--tls-cert] [$CERTS/metron.crt] [--tls-key] [$CERTS/metron.key] [--tls-ca] [$CERTS/ca.crt] [--tls-server-name] [doppler] [--metrics-interval] [2.5] [--source-id] [metron]" "$output"
}

@test "defaults: loopback ports 3457 and 3458, a 10000-frame diode, no host tags" {
	stub_role metron
	run -0 "$STUB" --dopplers doppler:8082 --certs "$CERTS"
	run -0 started lgr-recv
	same "[--udp] [127.0.0.1:3457] [--grpc] [127.0.0.1:3458] [--tls-cert] [$CERTS/metron.crt] [--tls-key] [$CERTS/metron.key] [--tls-ca] [$CERTS/ca.crt] [--metrics-interval] [0] [--source-id] [metron]" "$output"
	run -0 started lgr-diode
	same "[--size] [10000] [--source-id] [metron]" "$output"
}

@test "settings come from METRON_* variables, and flags win over them" {
	local t=$BATS_TEST_TMPDIR
	stub_role metron
	mkdir "$t/c"
	cp "$CERTS/metron.crt" "$t/c/m.crt"
	cp "$CERTS/metron.key" "$t/c/m.key"
	cp "$CERTS/ca.crt" "$t/c/ca.pem"
	METRON_DOPPLERS=envd:1 METRON_UDP=127.0.0.1:1 METRON_GRPC=127.0.0.1:2 \
	    METRON_TLS_CERT=$t/c/m.crt METRON_TLS_KEY=$t/c/m.key \
	    METRON_TLS_CA=$t/c/ca.pem METRON_DEPLOYMENT=d METRON_JOB=j \
	    METRON_INDEX=i METRON_IP=1.2.3.4 METRON_TAGS=a=1,b=2 \
	    METRON_DIODE_SIZE=7 METRON_METRICS_INTERVAL=3 \
	    run -0 "$STUB" --grpc 127.0.0.1:9 --job flagjob --tag c=3 --diode-size 8
	run -0 started lgr-recv
	same "[--udp] [127.0.0.1:1] [--grpc] [127.0.0.1:9] [--tls-cert] [$t/c/m.crt] [--tls-key] [$t/c/m.key] [--tls-ca] [$t/c/ca.pem] [--tag] [deployment=d] [--tag] [job=flagjob] [--tag] [index=i] [--tag] [ip=1.2.3.4] [--tag] [a=1] [--tag] [b=2] [--tag] [c=3] [--metrics-interval] [3] [--source-id] [metron]" "$output"
	run -0 started lgr-diode
	same "[--size] [8] [--source-id] [metron]" "$output"
	run -0 started lgr-route
	same "[--to] [grpcs://envd:1] [--tls-cert] [$t/c/m.crt] [--tls-key] [$t/c/m.key] [--tls-ca] [$t/c/ca.pem] [--tls-server-name] [doppler] [--metrics-interval] [3] [--source-id] [metron]" "$output"
	# --dopplers=VALUE is the same as --dopplers VALUE.
	rm "$STUB_LOG"
	METRON_DOPPLERS=envd:1 run -0 "$STUB" --dopplers=flagd:2 --certs="$CERTS"
	run -0 started lgr-route
	[[ $output == "[--to] [grpcs://flagd:2] "* ]]
}

@test "--insecure (or METRON_INSECURE=1) speaks h2c both ways and needs no certificates" {
	stub_role metron
	run -0 "$STUB" --dopplers doppler:8082 --insecure
	run -0 started lgr-recv
	same "[--udp] [127.0.0.1:3457] [--grpc] [127.0.0.1:3458] [--metrics-interval] [0] [--source-id] [metron]" "$output"
	run -0 started lgr-route
	same "[--to] [grpc://doppler:8082] [--metrics-interval] [0] [--source-id] [metron]" "$output"
	rm "$STUB_LOG"
	METRON_INSECURE=1 run -0 "$STUB" --dopplers doppler:8082
	run -0 started lgr-route
	same "[--to] [grpc://doppler:8082] [--metrics-interval] [0] [--source-id] [metron]" "$output"
	# Anything but 1, true or yes, and 0, false, no or empty, is refused
	# (tested above); 0 means mTLS.
	rm "$STUB_LOG"
	METRON_INSECURE=0 run -2 --separate-stderr "$STUB" --dopplers doppler:8082
	contains "${stderr_lines[0]}" "mTLS needs"
}

@test "certificate paths with spaces reach the programs whole" {
	local t=$BATS_TEST_TMPDIR
	stub_role metron
	mkdir "$t/my certs"
	cp "$CERTS/metron.crt" "$CERTS/metron.key" "$CERTS/ca.crt" "$t/my certs/"
	run -0 "$STUB" --dopplers doppler:8082 --certs "$t/my certs"
	run -0 started lgr-route
	same "[--to] [grpcs://doppler:8082] [--tls-cert] [$t/my certs/metron.crt] [--tls-key] [$t/my certs/metron.key] [--tls-ca] [$t/my certs/ca.crt] [--tls-server-name] [doppler] [--metrics-interval] [0] [--source-id] [metron]" "$output"
}

@test "a program of the pipeline that fails makes metron fail with its status" {
	stub_role metron
	STUB_RECV_STATUS=1 run -1 "$STUB" --dopplers doppler:8082 --certs "$CERTS"
	STUB_DIODE_STATUS=1 run -1 "$STUB" --dopplers doppler:8082 --certs "$CERTS"
	STUB_ROUTE_STATUS=1 run -1 "$STUB" --dopplers doppler:8082 --certs "$CERTS"
	run -0 "$STUB" --dopplers doppler:8082 --certs "$CERTS"
}

@test "the programs always find each other: 200 starts, 8 at a time" {
	local t=$BATS_TEST_TMPDIR j i n p pids=()
	stub_role metron
	# A script that removes its fifo before every program has opened it
	# fails or hangs now and then when the host is busy; 8 at a time make
	# it busy. timeout(1) stops a hung one with its process group.
	for j in 1 2 3 4 5 6 7 8; do
		for i in $(seq 25); do
			timeout -k 2 20 "$STUB" --dopplers doppler:8082 --insecure \
			    2>>"$t/err.$j" || echo "exit $?" >>"$t/fails"
		done 3>&- &
		pids+=($!)
	done
	wait "${pids[@]}"
	[ ! -e "$t/fails" ] || { lgr_diag "$(sort "$t/fails" | uniq -c)"; false; }
	run -0 cat "$t"/err.*
	same "" "$output"
	for p in lgr-recv lgr-diode lgr-route; do
		n=$(grep -c "^$p " "$STUB_LOG")
		same 200 "$n"
	done
}

@test "a gRPC port in use: lgr-recv's listen_failed, exit 1, nothing left running" {
	doppler_start d
	# The stand-in's own port is taken.
	local st=0
	role_start metron --dopplers "${DOPPLER[d]}" --certs "$CERTS" \
	    --udp 127.0.0.1:0 --grpc "${DOPPLER[d]}"
	ended 600 "$ROLE_PID" || { role_log; false; }
	wait "$ROLE_PID" || st=$?
	same 1 "$st"
	run -0 cat "$ROLE_ERR"
	contains "$output" "lgr-recv: level=error event=listen_failed proto=grpc addr=${DOPPLER[d]} "
	run -1 pgrep -g "$ROLE_PID"
}

# --- delivery -------------------------------------------------------------------

@test "envelopes sent over gRPC reach the doppler as sent, with the host's tags, in batches of at most 100" {
	local t=$BATS_TEST_TMPDIR
	logs app 1000 --instance-id 3
	run_ok lgr-emit --source-id rep --tag job=own-job --tag az=z1 \
	    gauge cpu=12.5:percentage memory=1048576:bytes >>"$t/app"
	run_ok lgr-emit --source-id gorouter --total 7 counter requests 2 >>"$t/app"
	run_ok lgr-emit --source-id gorouter timer http 100 250 >>"$t/app"
	run_ok lgr-emit --source-id cc event "app crashed" "exit 137" >>"$t/app"
	logs more 20 --err
	logs last 5
	doppler_start d
	metron_start "${DOPPLER[d]}"
	run -0 agent grpc --certs "$CERTS" --cert client "$GRPC" batch:250 "$t/app"
	same OK "$output"
	run -0 agent grpc --certs "$CERTS" --cert metron "$GRPC" sender "$t/more"
	same OK "$output"
	run -0 agent grpc --certs "$CERTS" --cert client "$GRPC" send "$t/last"
	same OK "$output"
	await 600 "$ROLE_PID" has_received d 1029
	role_stop

	# What lgr-emit made, each with the host's tags where it has none of
	# its own, in the order sent.
	cat "$t/app" "$t/more" "$t/last" >"$t/all"
	decode --json "$t/all" >"$t/all.json"
	jq -cS --argjson host "$HOST_TAGS" '.tags = $host + .tags' \
	    "$t/all.json" >"$t/want"
	jq -cS . "$t/d.jsonl" >"$t/got"
	same_file "$t/want" "$t/got"
	run -0 jq -r 'select(.source_id == "rep") | .tags.job' "$t/d.jsonl"
	same own-job "$output"

	# Batched, never more than 100 to a message; the burst fills them.
	run -0 batch_sizes d
	local n sum=0 max=0
	for n in "${lines[@]}"; do
		sum=$((sum + n))
		[ "$n" -le "$max" ] || max=$n
	done
	same 1029 "$sum"
	same 100 "$max"
	[ "${#lines[@]}" -lt 100 ]
	grep -q 'event=message method=BatchSender ' "$t/d.err"
	run -1 grep 'event=message method=Sender ' "$t/d.err"

	run -0 stop_line lgr-recv
	same "ingress_udp=0 ingress_grpc=1029 ingress_statsd=0 dropped=0" "$(counts "$output")"
	run -0 stop_line lgr-diode
	same "ingress=1029 egress=1029 dropped=0 oversized=0" "$(counts "$output")"
	run -0 stop_line lgr-route sink_stopped
	same "ingress=1029 egress=1029 dropped=0" "$(counts "$output")"
}

@test "dropsonde logs over UDP reach the doppler as v2 logs with the host's tags" {
	local t=$BATS_TEST_TMPDIR
	logs udp 500
	logs own 1 --err
	doppler_start d
	metron_start "${DOPPLER[d]}"
	run_ok agent udp "$UDP" "$t/udp"
	run_ok agent udp "$UDP" "$t/own" own-deployment
	await 600 "$ROLE_PID" has_received d 501
	role_stop

	# The v1 to v2 conversion of a LogMessage, tags from the host unless
	# the datagram has its own.
	cat "$t/udp" "$t/own" >"$t/all"
	decode --json "$t/all" >"$t/all.json"
	jq -cS --argjson host "$HOST_TAGS" '.tags = $host +
	    {origin: "emitter", __v1_type: "LogMessage", source_type: ""} |
	    if .source_id == "own" then .tags.deployment = "own-deployment"
	    else . end' "$t/all.json" >"$t/want"
	jq -cS . "$t/d.jsonl" >"$t/got"
	same_file "$t/want" "$t/got"
	run -0 stop_line lgr-recv
	same "ingress_udp=501 ingress_grpc=0 ingress_statsd=0 dropped=0" "$(counts "$output")"
	run -0 stop_line lgr-route sink_stopped
	same "ingress=501 egress=501 dropped=0" "$(counts "$output")"
}

@test "UDP and gRPC at once: every envelope arrives once" {
	local t=$BATS_TEST_TMPDIR pid
	logs u 2000
	logs g 2000
	doppler_start d
	metron_start "${DOPPLER[d]}"
	agent grpc --certs "$CERTS" --cert client "$GRPC" batch:50 "$t/g" \
	    >"$t/g.status" 3>&- &
	pid=$!
	run_ok agent udp "$UDP" "$t/u"
	wait "$pid"
	same OK "$(cat "$t/g.status")"
	await 600 "$ROLE_PID" has_received d 4000
	role_stop
	run -0 payloads d
	printf '%s\n' "${lines[@]}" | sort >"$t/got"
	sort "$t/u.lines" "$t/g.lines" >"$t/want"
	same_file "$t/want" "$t/got"
}

@test "--metrics-interval sends metron's own counters to the doppler" {
	local t=$BATS_TEST_TMPDIR
	logs app 10
	doppler_start d
	metron_start "${DOPPLER[d]}" --metrics-interval 0.2
	run -0 agent grpc --certs "$CERTS" --cert client "$GRPC" sender "$t/app"
	same OK "$output"
	# lgr-recv's count of the 10 and lgr-route's of what it sent, as
	# counters from metron.
	await 600 "$ROLE_PID" has_counter d metron ingress lgr-recv 10
	await 600 "$ROLE_PID" has_counter d metron egress lgr-route 10
	role_stop
	run -0 jq -c 'select(.source_id == "metron" and .tags.protocol == "grpc")
	    | .tags' "$t/d.jsonl"
	same '{"origin":"lgr-recv","protocol":"grpc"}' "${lines[0]}"
}

@test "two dopplers share the load; after one dies the other gets everything, nothing lost" {
	local t=$BATS_TEST_TMPDIR a b
	logs before 600
	logs after 600
	doppler_start a
	doppler_start b
	metron_start "${DOPPLER[a]},${DOPPLER[b]}"
	await 600 "$ROLE_PID" grep -q "event=grpc_connected .* addr=${DOPPLER[a]} " "$ROLE_ERR"
	await 600 "$ROLE_PID" grep -q "event=grpc_connected .* addr=${DOPPLER[b]} " "$ROLE_ERR"
	run -0 agent grpc --certs "$CERTS" --cert client "$GRPC" batch:10 "$t/before"
	same OK "$output"
	await 600 "$ROLE_PID" together 600 a b
	a=$(received a)
	b=$(received b)
	[ "$a" -gt 0 ] && [ "$b" -gt 0 ] ||
	    { lgr_diag "not shared: a got $a, b got $b"; false; }

	kill -KILL "${DOPPLER_PID[a]}"
	wait "${DOPPLER_PID[a]}" || true
	await 600 "$ROLE_PID" grep -q "event=grpc_disconnected .* addr=${DOPPLER[a]} " "$ROLE_ERR"
	run -0 agent grpc --certs "$CERTS" --cert client "$GRPC" batch:10 "$t/after"
	same OK "$output"
	await 600 "$ROLE_PID" has_received b $((b + 600))
	role_stop

	same "$a" "$(received a)"
	same $((600 + 600)) $(($(received a) + $(received b)))
	# b has every envelope sent after the kill, in order.
	run -0 payloads b
	printf '%s\n' "${lines[@]}" | grep '^after ' >"$t/b.after" || true
	same_file "$t/after.lines" "$t/b.after"
	run -0 stop_line lgr-recv
	same "ingress_udp=0 ingress_grpc=1200 ingress_statsd=0 dropped=0" "$(counts "$output")"
	run -0 stop_line lgr-diode
	same "ingress=1200 egress=1200 dropped=0 oversized=0" "$(counts "$output")"
	run -0 stop_line lgr-route sink_stopped
	same "ingress=1200 egress=1200 dropped=0" "$(counts "$output")"
}

@test "a doppler killed while envelopes flow: the rest go to the other, and sent plus dropped is all" {
	local t=$BATS_TEST_TMPDIR pid line in out ddrop egress rdrop
	logs flow 4000
	logs after 500
	doppler_start a
	doppler_start b
	metron_start "${DOPPLER[a]},${DOPPLER[b]}"
	await 600 "$ROLE_PID" grep -q "event=grpc_connected .* addr=${DOPPLER[a]} " "$ROLE_ERR"
	await 600 "$ROLE_PID" grep -q "event=grpc_connected .* addr=${DOPPLER[b]} " "$ROLE_ERR"
	agent grpc --certs "$CERTS" --cert client --rate 2000 "$GRPC" sender \
	    "$t/flow" >"$t/flow.status" 3>&- &
	pid=$!
	await 600 "$pid" has_received a 300 || {
		lgr_diag "a got $(received a), b $(received b); sender: $(cat "$t/flow.status")"
		role_log
		false
	}
	kill -KILL "${DOPPLER_PID[a]}"
	wait "${DOPPLER_PID[a]}" || true
	running "$pid" || { lgr_diag "the flow ended before the kill"; false; }
	wait "$pid"
	same OK "$(cat "$t/flow.status")"
	await 600 "$ROLE_PID" grep -q "event=grpc_disconnected .* addr=${DOPPLER[a]} " "$ROLE_ERR"
	run -0 agent grpc --certs "$CERTS" --cert client "$GRPC" batch:100 "$t/after"
	same OK "$output"
	await 600 "$ROLE_PID" has_logs b after 500
	role_stop

	# Every envelope sent after the kill is at b, once and in order.
	run -0 payloads b
	printf '%s\n' "${lines[@]}" | grep '^after ' >"$t/b.after" || true
	same_file "$t/after.lines" "$t/b.after"
	# The counts add up: all 4500 went in; each is sent or dropped.
	line=$(stop_line lgr-recv)
	same 4500 "$(field ingress_grpc "$line")"
	same 0 "$(field dropped "$line")"
	line=$(stop_line lgr-diode)
	same 4500 "$(field ingress "$line")"
	ddrop=$(field dropped "$line")
	same 4500 $(($(field egress "$line") + ddrop))
	line=$(stop_line lgr-route sink_stopped)
	in=$(field ingress "$line")
	egress=$(field egress "$line")
	rdrop=$(field dropped "$line")
	same $((4500 - ddrop)) "$in"
	same "$in" $((egress + rdrop))
	# What the stand-ins got was sent; what was written to a connection
	# the kill cut may be lost without a count (no acknowledgements).
	out=$(($(received a) + $(received b)))
	[ "$out" -le "$egress" ] ||
	    { lgr_diag "stand-ins got $out, more than the $egress sent"; false; }
	# Nothing is received twice.
	payloads a >"$t/all"
	payloads b >>"$t/all"
	sort "$t/all" >"$t/sorted"
	run -0 uniq -d "$t/sorted"
	same "" "$output"
}

@test "an unreachable doppler never blocks the local ingress; the drops show when it stops" {
	local t=$BATS_TEST_TMPDIR port
	logs g 300
	logs u 300
	port=$(free_port)
	metron_start "127.0.0.1:$port"
	run -0 agent grpc --certs "$CERTS" --cert client --timeout 5 "$GRPC" sender "$t/g"
	same OK "$output"
	run -0 agent grpc --certs "$CERTS" --cert metron --timeout 5 "$GRPC" batch:100 "$t/g"
	same OK "$output"
	run_ok agent udp "$UDP" "$t/u"
	await 600 "$ROLE_PID" grep -q "event=grpc_connect_failed .* addr=127.0.0.1:$port " "$ROLE_ERR"
	role_stop
	run -0 stop_line lgr-recv
	same "ingress_udp=300 ingress_grpc=600 ingress_statsd=0 dropped=0" "$(counts "$output")"
	run -0 stop_line lgr-diode
	same "ingress=900 egress=900 dropped=0 oversized=0" "$(counts "$output")"
	run -0 stop_line lgr-route sink_stopped
	same "ingress=900 egress=0 dropped=900" "$(counts "$output")"
}

@test "--diode-size: a full diode drops the oldest envelopes and counts them" {
	local t=$BATS_TEST_TMPDIR line out
	logs g 5000
	doppler_start d
	metron_start "${DOPPLER[d]}" --diode-size 10
	run -0 agent grpc --certs "$CERTS" --cert client --timeout 5 "$GRPC" batch:1000 "$t/g"
	same OK "$output"
	role_stop
	line=$(stop_line lgr-diode)
	same 5000 "$(field ingress "$line")"
	out=$(field egress "$line")
	same 5000 $((out + $(field dropped "$line")))
	[ "$(field dropped "$line")" -gt 0 ]
	line=$(stop_line lgr-route sink_stopped)
	same "ingress=$out egress=$out dropped=0" "$(counts "$line")"
	await 600 "${DOPPLER_PID[d]}" has_received d "$out"
	same "$out" "$(received d)"
	# The newest is never the one dropped.
	run -0 payloads d
	same "g 5000" "${lines[-1]}"
}

# --- signals ----------------------------------------------------------------------

@test "SIGTERM: what was accepted is delivered, every program stops, exit 0" {
	local t=$BATS_TEST_TMPDIR kids pid
	logs app 3000
	doppler_start d
	metron_start "${DOPPLER[d]}"
	run -0 role_children
	kids=("${lines[@]}")
	same 3 "${#kids[@]}"
	[[ ${kids[0]} == *" lgr-diode" ]]
	[[ ${kids[1]} == *" lgr-recv" ]]
	[[ ${kids[2]} == *" lgr-route" ]]
	run -0 agent grpc --certs "$CERTS" --cert client "$GRPC" batch:1000 "$t/app"
	same OK "$output"
	role_stop TERM
	# Sent before metron exited; the stand-in may still be writing it down.
	await 600 "${DOPPLER_PID[d]}" has_received d 3000
	same 3000 "$(received d)"
	for pid in "${kids[@]}"; do
		pid=${pid% *}
		running "$pid" && { lgr_diag "$pid still runs"; false; }
	done
	run -0 cat "$ROLE_ERR"
	contains "$output" "lgr-recv: level=info event=signal signal=TERM action=stop"
	[[ ${lines[-1]} == "lgr-route: level=info event=stop ingress=3000 "* ]]
}

@test "SIGINT stops it as SIGTERM does, passed on to lgr-recv as SIGTERM" {
	local kids
	doppler_start d
	# A background job's SIGINT is ignored; give metron the default.
	role_start env --default-signal=INT metron --dopplers "${DOPPLER[d]}" \
	    --certs "$CERTS" --udp 127.0.0.1:0 --grpc 127.0.0.1:0
	role_ready udp grpc
	run -0 role_children
	same 3 "${#lines[@]}"
	role_stop INT
	run -0 cat "$ROLE_ERR"
	contains "$output" "lgr-recv: level=info event=signal signal=TERM action=stop"
	[[ ${lines[-1]} == "lgr-route: level=info event=stop "* ]]
}

@test "SIGHUP goes to lgr-recv, which reloads its certificates; metron runs on" {
	local t=$BATS_TEST_TMPDIR
	logs app 10
	doppler_start d
	metron_start "${DOPPLER[d]}"
	kill -HUP "$ROLE_PID"
	await 600 "$ROLE_PID" grep -q 'lgr-recv: level=info event=signal signal=HUP action=reloaded_certificates' "$ROLE_ERR"
	run -0 role_children
	same 3 "${#lines[@]}"
	run -0 agent grpc --certs "$CERTS" --cert client "$GRPC" sender "$t/app"
	same OK "$output"
	await 600 "$ROLE_PID" has_received d 10
	role_stop
}

# --- runit and s6 -----------------------------------------------------------------

@test "share/sv/metron: run and log/run are executable sh scripts that parse" {
	local f
	for f in run log/run; do
		[ -x "$LGR_ROOT/share/sv/metron/$f" ]
		run -0 head -n 1 "$LGR_ROOT/share/sv/metron/$f"
		same "#!/bin/sh" "$output"
		run_ok sh -n "$LGR_ROOT/share/sv/metron/$f"
	done
}

@test "share/sv/metron/run runs metron with the settings in env/, as envdir reads them" {
	local t=$BATS_TEST_TMPDIR sv=$BATS_TEST_TMPDIR/sv/metron stderr_file
	logs app 50
	doppler_start d
	mkdir -p "$t/sv"
	cp -R "$LGR_ROOT/share/sv/metron" "$sv"
	mkdir -p "$sv/env"
	printf '%s\n' "${DOPPLER[d]}" >"$sv/env/METRON_DOPPLERS"
	printf '%s' "$CERTS" >"$sv/env/METRON_CERTS"
	printf '127.0.0.1:0\n' >"$sv/env/METRON_UDP"
	printf '127.0.0.1:0\n' >"$sv/env/METRON_GRPC"
	# The first line, trailing blanks cut; an empty file unsets.
	printf 'cf-env \t \n' >"$sv/env/METRON_DEPLOYMENT"
	printf 'diego\nnot this\n' >"$sv/env/METRON_JOB"
	: >"$sv/env/METRON_INDEX"
	printf 'az=z9,zone=a b\n' >"$sv/env/METRON_TAGS"
	role_start env -C "$sv" METRON_INDEX=from-outside ./run
	stderr_file=$ROLE_ERR
	ROLE_ERR=$ROLE_OUT	# run sends stderr to stdout, for the logger
	role_ready udp grpc
	run -0 agent grpc --certs "$CERTS" --cert client "$GRPC" batch:10 "$t/app"
	same OK "$output"
	await 600 "$ROLE_PID" has_received d 50
	run -0 role_children
	same 3 "${#lines[@]}"
	role_stop
	run -0 jq -cS '.tags' "$t/d.jsonl"
	same '{"az":"z9","deployment":"cf-env","job":"diego","zone":"a b"}' "$(printf '%s\n' "${lines[@]}" | sort -u)"
	same "" "$(cat "$stderr_file")"
}

@test "share/sv/metron/log/run logs with svlogd -tt into ./main, or s6-log without svlogd" {
	local t=$BATS_TEST_TMPDIR sv=$BATS_TEST_TMPDIR/sv/metron l
	mkdir -p "$t/sv" "$t/runit" "$t/s6"
	cp -R "$LGR_ROOT/share/sv/metron" "$sv"
	# Stand-ins for the loggers: they note where they run, their
	# arguments and what they read.
	for l in svlogd s6-log; do
		cat >"$t/$l" <<-EOF
		#!/bin/sh
		echo "\$PWD $l \$*" >"$t/$l.args"
		/bin/cat >"$t/$l.read"
		EOF
		chmod +x "$t/$l"
	done
	ln -s "$t/svlogd" "$t/runit/svlogd"
	ln -s "$t/s6-log" "$t/runit/s6-log"
	ln -s "$t/s6-log" "$t/s6/s6-log"
	ln -s "$(command -v mkdir)" "$t/runit/mkdir"
	ln -s "$(command -v mkdir)" "$t/s6/mkdir"
	printf 'metron: one line\n' >"$t/in"

	run -0 env -C "$sv/log" PATH="$t/runit" ./run <"$t/in"
	same "$sv/log svlogd -tt ./main" "$(cat "$t/svlogd.args")"
	same_file "$t/in" "$t/svlogd.read"
	[ -d "$sv/log/main" ]
	[ ! -e "$t/s6-log.args" ]

	rm -r "$sv/log/main"
	run -0 env -C "$sv/log" PATH="$t/s6" ./run <"$t/in"
	same "$sv/log s6-log T ./main" "$(cat "$t/s6-log.args")"
	same_file "$t/in" "$t/s6-log.read"
}
