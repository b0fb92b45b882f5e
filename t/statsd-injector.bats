#!/usr/bin/env bats
# statsd-injector: the role bin/statsd-injector, which runs
#   lgr-recv --statsd ADDR | lgr-route --to grpcs://METRON
# and sends each statsd metric as a v2 gauge to the host's metron over
# mTLS, checking that the server is "metron". The statsd client is
# python3-statsd (t/roles/agent.py); on the other side stand either a
# real bin/metron with a stand-in doppler behind it, or a stand-in for
# metron itself (t/grpccli-peer/ingress_server.py with the "metron"
# certificate), which records each envelope as JSON.
#
# What the script starts, and that a bad setting starts nothing, is
# checked on a copy of it beside stub programs (t/roles/stub.sh).

# Tests start several python3-grpcio peers; give them time on a busy host.
: "${BATS_TEST_TIMEOUT:=120}"
load lib
load roles/roles

setup_file() {
	roles_setup_file
}

# injector_start METRON [ARGS...]: statsd-injector to METRON with the
# suite's certificates and ARGS, statsd on a free loopback port; waits
# until it is ready and sets STATSD.
injector_start() {
	local metron=$1
	shift
	role_start statsd-injector --metron "$metron" --certs "$CERTS" \
	    --statsd 127.0.0.1:0 "$@"
	role_ready statsd
}

# gauges NAME: "source_id metric unit value tags" per envelope stand-in
# NAME recorded, tags as k=v,... sorted.
gauges() {
	jq -r '[.source_id, (.gauge.metrics | to_entries[0] |
	    .key, .value.unit, (.value.value | tostring)),
	    (.tags | to_entries | map("\(.key)=\(.value)") | join(","))]
	    | join(" ")' "$BATS_TEST_TMPDIR/$1.jsonl"
}

# --- command line ---------------------------------------------------------------

@test "--help prints the usage, naming every option, on stdout and exits 0" {
	local flag
	run -0 --separate-stderr statsd-injector --help
	[[ ${lines[0]} == "usage: statsd-injector [--statsd ADDR] "* ]]
	for flag in --statsd --metron --certs --tls-cert --tls-key --tls-ca \
	    --insecure; do
		contains "$output" "$flag"
	done
	same "" "$stderr"
}

@test "--version prints one line and exits 0" {
	run -0 --separate-stderr statsd-injector --version
	same 1 "${#lines[@]}"
	[[ ${lines[0]} =~ ^statsd-injector\ [0-9]+\.[0-9]+ ]]
	same "" "$stderr"
}

@test "bad settings are a one-line error and the usage, exit 2, and start nothing" {
	local t=$BATS_TEST_TMPDIR bad ok=(--certs "$CERTS")
	stub_role statsd-injector
	mkdir "$t/nokey"
	cp "$CERTS/statsd-injector.crt" "$CERTS/ca.crt" "$t/nokey/"

	for bad in metron metron: :3458 metron:34x metron:99999 metron:0 \
	    'a:1,b:2' 'a:1:2' '[::1]' '[::1]3458' ''; do
		usage_error statsd-injector "${ok[@]}" --metron "$bad"
		contains "$ERROR" "metron address '$bad' is not HOST:PORT"
	done
	for bad in 127.0.0.1 127.0.0.1: 127.0.0.1:x 127.0.0.1:65536 :http \
	    '[::1' '[::1]8125' 127.0.0.1:99999 ''; do
		usage_error statsd-injector "${ok[@]}" --statsd "$bad"
		contains "$ERROR" "--statsd '$bad' is not HOST:PORT"
	done

	usage_error statsd-injector
	contains "$ERROR" "mTLS needs --certs DIR"
	usage_error statsd-injector --certs "$t/nonexistent"
	same "statsd-injector: cannot read $t/nonexistent/statsd-injector.crt" "$ERROR"
	usage_error statsd-injector --certs "$t/nokey"
	same "statsd-injector: cannot read $t/nokey/statsd-injector.key" "$ERROR"
	usage_error statsd-injector --tls-cert "$CERTS/statsd-injector.crt" \
	    --tls-ca "$CERTS/ca.crt"
	contains "$ERROR" "mTLS needs"

	usage_error statsd-injector "${ok[@]}" --bogus 1
	same "statsd-injector: unknown option --bogus" "$ERROR"
	usage_error statsd-injector "${ok[@]}" --dopplers=a:1
	same "statsd-injector: unknown option --dopplers" "$ERROR"
	usage_error statsd-injector "${ok[@]}" -x
	same "statsd-injector: unknown option -x" "$ERROR"
	usage_error statsd-injector "${ok[@]}" --metron
	same "statsd-injector: option --metron needs a value" "$ERROR"
	usage_error statsd-injector "${ok[@]}" stray
	same "statsd-injector: unexpected argument 'stray'" "$ERROR"

	STATSD_INJECTOR_METRON=metron usage_error statsd-injector "${ok[@]}"
	contains "$ERROR" "metron address 'metron'"
	STATSD_INJECTOR_INSECURE=maybe usage_error statsd-injector
	contains "$ERROR" "STATSD_INJECTOR_INSECURE"
}

@test "it starts lgr-recv and lgr-route with the settings given" {
	stub_role statsd-injector
	run -0 "$STUB" --statsd '[::1]:18125' --metron metron.host:13458 \
	    --certs "$CERTS"
	same "" "$output"
	run -0 started lgr-recv
	same "[--statsd] [[::1]:18125] [--source-id] [statsd-injector]" "$output"
	run -0 started lgr-route
	same "[--to] [grpcs://metron.host:13458] [--tls-cert] [$CERTS/statsd-injector.crt] [--tls-key] [$CERTS/statsd-injector.key] [--tls-ca] [$CERTS/ca.crt] [--tls-server-name] [metron] [--source-id] [statsd-injector]" "$output"
	run -1 grep -c '^lgr-diode ' "$STUB_LOG"
}

@test "defaults: statsd on 127.0.0.1:8125, metron at 127.0.0.1:3458" {
	stub_role statsd-injector
	run -0 "$STUB" --certs "$CERTS"
	run -0 started lgr-recv
	same "[--statsd] [127.0.0.1:8125] [--source-id] [statsd-injector]" "$output"
	run -0 started lgr-route
	[[ $output == "[--to] [grpcs://127.0.0.1:3458] "* ]]
}

@test "settings come from STATSD_INJECTOR_* variables, and flags win over them" {
	local t=$BATS_TEST_TMPDIR
	stub_role statsd-injector
	mkdir "$t/c"
	cp "$CERTS/statsd-injector.crt" "$t/c/s.crt"
	cp "$CERTS/statsd-injector.key" "$t/c/s.key"
	cp "$CERTS/ca.crt" "$t/c/ca.pem"
	STATSD_INJECTOR_STATSD=127.0.0.1:1 STATSD_INJECTOR_METRON=envm:2 \
	    STATSD_INJECTOR_TLS_CERT=$t/c/s.crt STATSD_INJECTOR_TLS_KEY=$t/c/s.key \
	    STATSD_INJECTOR_TLS_CA=$t/c/ca.pem \
	    run -0 "$STUB" --metron=flagm:3
	run -0 started lgr-recv
	same "[--statsd] [127.0.0.1:1] [--source-id] [statsd-injector]" "$output"
	run -0 started lgr-route
	same "[--to] [grpcs://flagm:3] [--tls-cert] [$t/c/s.crt] [--tls-key] [$t/c/s.key] [--tls-ca] [$t/c/ca.pem] [--tls-server-name] [metron] [--source-id] [statsd-injector]" "$output"
	rm "$STUB_LOG"
	STATSD_INJECTOR_CERTS=$CERTS run -0 "$STUB"
	run -0 started lgr-route
	contains "$output" "[--tls-cert] [$CERTS/statsd-injector.crt]"
}

@test "--insecure (or STATSD_INJECTOR_INSECURE=1) speaks h2c and needs no certificates" {
	local t=$BATS_TEST_TMPDIR
	stub_role statsd-injector
	run -0 "$STUB" --insecure
	run -0 started lgr-route
	same "[--to] [grpc://127.0.0.1:3458] [--source-id] [statsd-injector]" "$output"
	rm "$STUB_LOG"
	STATSD_INJECTOR_INSECURE=yes run -0 "$STUB"
	run -0 started lgr-route
	same "[--to] [grpc://127.0.0.1:3458] [--source-id] [statsd-injector]" "$output"
	rm "$STUB_LOG"
	STATSD_INJECTOR_INSECURE=0 run -2 --separate-stderr "$STUB"
	contains "${stderr_lines[0]}" "mTLS needs"
	# Paths with spaces reach lgr-route whole.
	mkdir "$t/my certs"
	cp "$CERTS/statsd-injector.crt" "$CERTS/statsd-injector.key" \
	    "$CERTS/ca.crt" "$t/my certs/"
	run -0 "$STUB" --certs "$t/my certs"
	run -0 started lgr-route
	same "[--to] [grpcs://127.0.0.1:3458] [--tls-cert] [$t/my certs/statsd-injector.crt] [--tls-key] [$t/my certs/statsd-injector.key] [--tls-ca] [$t/my certs/ca.crt] [--tls-server-name] [metron] [--source-id] [statsd-injector]" "$output"
}

@test "a program that fails makes statsd-injector fail with its status" {
	stub_role statsd-injector
	STUB_RECV_STATUS=1 run -1 "$STUB" --certs "$CERTS"
	STUB_ROUTE_STATUS=1 run -1 "$STUB" --certs "$CERTS"
	run -0 "$STUB" --certs "$CERTS"
}

@test "the programs always find each other: 200 starts, 8 at a time" {
	local t=$BATS_TEST_TMPDIR j i n p pids=()
	stub_role statsd-injector
	# See the same test in t/metron.bats.
	for j in 1 2 3 4 5 6 7 8; do
		for i in $(seq 25); do
			timeout -k 2 20 "$STUB" --insecure 2>>"$t/err.$j" ||
			    echo "exit $?" >>"$t/fails"
		done 3>&- &
		pids+=($!)
	done
	wait "${pids[@]}"
	[ ! -e "$t/fails" ] || { lgr_diag "$(sort "$t/fails" | uniq -c)"; false; }
	run -0 cat "$t"/err.*
	same "" "$output"
	for p in lgr-recv lgr-route; do
		n=$(grep -c "^$p " "$STUB_LOG")
		same 200 "$n"
	done
}

@test "a statsd port in use: lgr-recv's listen_failed, exit 1, nothing left running" {
	local st=0 port
	# A port taken: the first injector's.
	role_start statsd-injector --insecure --statsd 127.0.0.1:0 \
	    --metron "127.0.0.1:$(free_port)"
	role_ready statsd
	port=$STATSD
	role_start statsd-injector --insecure --statsd "$port" \
	    --metron "127.0.0.1:$(free_port)"
	ended 600 "$ROLE_PID" || { role_log; false; }
	wait "$ROLE_PID" || st=$?
	same 1 "$st"
	run -0 cat "$ROLE_ERR"
	contains "$output" "lgr-recv: level=error event=listen_failed proto=statsd addr=$port "
	run -1 pgrep -g "$ROLE_PID"
}

# --- delivery -------------------------------------------------------------------

@test "python3-statsd metrics reach the doppler through metron as the right v2 gauges" {
	local t=$BATS_TEST_TMPDIR mpid merr before after ts tags
	doppler_start d
	role_start metron --dopplers "${DOPPLER[d]}" --certs "$CERTS" \
	    --udp 127.0.0.1:0 --grpc 127.0.0.1:0 --deployment cf --job router \
	    --index 0 --ip 10.0.1.2
	role_ready udp grpc
	mpid=$ROLE_PID merr=$ROLE_ERR
	injector_start "$GRPC"
	before=$(date +%s%N)
	run_ok agent statsd "$STATSD" myapp <<-'EOF'
	c.incr("requests")
	c.incr("requests", 4, rate=0.5)
	c.decr("requests", 3)
	c.gauge("queue", 42)
	c.gauge("queue", 8, delta=True)
	c.gauge("queue", -50, delta=True)
	c.gauge("queue", 2.5)
	c.timing("db.query", 320)
	c.timing("db.query", 12.5, rate=0.1)
	raw("web.hits:1|c|#env:prod,zone:z1\nweb.hits:2|c\nnot a metric\nweb.temp:-3.5|g")
	raw("web.x:1|c|#job:own,origin:other")
	EOF
	await 600 "$ROLE_PID" has_received d 13
	after=$(date +%s%N)
	role_stop
	ROLE_PID=$mpid ROLE_ERR=$merr role_stop

	tags=deployment=cf,index=0,ip=10.0.1.2,job=router
	run -0 gauges d
	same "myapp requests counter 1 $tags,origin=myapp" "${lines[0]}"
	same "myapp requests counter 9 $tags,origin=myapp" "${lines[1]}"
	same "myapp requests counter 6 $tags,origin=myapp" "${lines[2]}"
	same "myapp queue gauge 42 $tags,origin=myapp" "${lines[3]}"
	same "myapp queue gauge 50 $tags,origin=myapp" "${lines[4]}"
	same "myapp queue gauge 0 $tags,origin=myapp" "${lines[5]}"
	same "myapp queue gauge 2.5 $tags,origin=myapp" "${lines[6]}"
	same "myapp db.query ms 320 $tags,origin=myapp" "${lines[7]}"
	same "myapp db.query ms 125 $tags,origin=myapp" "${lines[8]}"
	same "web hits counter 1 deployment=cf,env=prod,index=0,ip=10.0.1.2,job=router,origin=web,zone=z1" "${lines[9]}"
	same "web hits counter 3 $tags,origin=web" "${lines[10]}"
	same "web temp gauge -3.5 $tags,origin=web" "${lines[11]}"
	same "web x counter 1 deployment=cf,index=0,ip=10.0.1.2,job=own,origin=other" "${lines[12]}"
	same 13 "${#lines[@]}"
	# One metric an envelope, no instance id, stamped when received.
	run -0 jq -r '[(.gauge.metrics | length), .instance_id, .timestamp]
	    | join(" ")' "$t/d.jsonl"
	for ts in "${lines[@]}"; do
		[[ $ts == "1  "* ]]
		ts=${ts#1  }
		[ "$ts" -ge "$before" ] && [ "$ts" -le "$after" ] ||
		    { lgr_diag "timestamp $ts not within [$before, $after]"; false; }
	done
	# No self-metrics of its own.
	run -1 grep -q '"source_id":"statsd-injector"' "$t/d.jsonl"
	run -0 stop_line lgr-recv
	contains "$output" " ingress_statsd=13 dropped=1"
	run -0 stop_line lgr-route sink_stopped
	contains "$output" " ingress=13 egress=13 dropped=0"
	ROLE_ERR=$merr run -0 stop_line lgr-recv
	contains "$output" " ingress_udp=0 ingress_grpc=13 "
}

@test "it talks mTLS to a server named metron, with its own certificate" {
	local t=$BATS_TEST_TMPDIR
	doppler_start m --name metron
	injector_start "${DOPPLER[m]}"
	run_ok agent statsd "$STATSD" app <<-'EOF'
	c.incr("hits")
	c.gauge("q", 5)
	EOF
	await 600 "$ROLE_PID" has_received m 2
	role_stop
	run -0 gauges m
	same $'app hits counter 1 origin=app\napp q gauge 5 origin=app' "$output"
	contains "$(cat "$ROLE_ERR")" "event=grpc_connected "
	contains "$(cat "$ROLE_ERR")" " tls=yes"
}

@test "a server whose certificate is not metron's gets nothing; the drops are counted" {
	local t=$BATS_TEST_TMPDIR
	doppler_start d		# certificate "doppler"
	injector_start "${DOPPLER[d]}"
	run_ok agent statsd "$STATSD" app <<-'EOF'
	c.incr("hits")
	c.incr("hits")
	c.incr("hits")
	EOF
	await 600 "$ROLE_PID" grep -q "event=grpc_connect_failed .*certificate verify failed" "$ROLE_ERR"
	role_stop
	same 0 "$(received d)"
	run -1 grep -q 'event=grpc_connected ' "$ROLE_ERR"
	run -0 stop_line lgr-recv
	contains "$output" " ingress_statsd=3 dropped=0"
	run -0 stop_line lgr-route sink_stopped
	contains "$output" " ingress=3 egress=0 dropped=3"
}

@test "an unreachable metron never blocks the statsd ingress; the drops show when it stops" {
	local t=$BATS_TEST_TMPDIR i
	injector_start "127.0.0.1:$(free_port)"
	for i in $(seq 500); do
		echo "c.incr(\"n$((i % 50))\")"
	done >"$t/calls"
	run_ok agent statsd "$STATSD" app <"$t/calls"
	await 600 "$ROLE_PID" grep -q "event=grpc_connect_failed " "$ROLE_ERR"
	role_stop
	run -0 stop_line lgr-recv
	contains "$output" " ingress_statsd=500 dropped=0"
	run -0 stop_line lgr-route sink_stopped
	contains "$output" " ingress=500 egress=0 dropped=500"
}

# --- signals ----------------------------------------------------------------------

@test "SIGTERM: what was received is delivered, both programs stop, exit 0" {
	local t=$BATS_TEST_TMPDIR kids pid i
	doppler_start m --name metron
	injector_start "${DOPPLER[m]}"
	run -0 role_children
	kids=("${lines[@]}")
	same 2 "${#kids[@]}"
	[[ ${kids[0]} == *" lgr-recv" ]]
	[[ ${kids[1]} == *" lgr-route" ]]
	for i in $(seq 1000); do
		echo "c.gauge(\"g$i\", $i)"
	done >"$t/calls"
	run_ok agent statsd "$STATSD" app <"$t/calls"
	await 600 "$ROLE_PID" grep -q . "$t/m.jsonl"
	role_stop TERM
	for pid in "${kids[@]}"; do
		pid=${pid% *}
		running "$pid" && { lgr_diag "$pid still runs"; false; }
	done
	run -0 stop_line lgr-recv
	local n
	n=$(field ingress_statsd "$output")
	# UDP may lose datagrams in the kernel; what lgr-recv took arrives.
	await 600 "${DOPPLER_PID[m]}" has_received m "$n"
	same "$n" "$(received m)"
	run -0 cat "$ROLE_ERR"
	contains "$output" "lgr-recv: level=info event=signal signal=TERM action=stop"
	[[ ${lines[-1]} == "lgr-route: level=info event=stop ingress=$n "* ]]
}

@test "SIGINT stops it as SIGTERM does, passed on to lgr-recv as SIGTERM" {
	role_start env --default-signal=INT statsd-injector --insecure \
	    --statsd 127.0.0.1:0 --metron "127.0.0.1:$(free_port)"
	role_ready statsd
	role_stop INT
	run -0 cat "$ROLE_ERR"
	contains "$output" "lgr-recv: level=info event=signal signal=TERM action=stop"
	[[ ${lines[-1]} == "lgr-route: level=info event=stop "* ]]
}

@test "SIGHUP is passed on; it runs on" {
	doppler_start m --name metron
	injector_start "${DOPPLER[m]}"
	kill -HUP "$ROLE_PID"
	await 600 "$ROLE_PID" grep -q 'lgr-recv: level=info event=signal signal=HUP action=none' "$ROLE_ERR"
	run -0 role_children
	same 2 "${#lines[@]}"
	run_ok agent statsd "$STATSD" app <<<'c.incr("after_hup")'
	await 600 "$ROLE_PID" has_received m 1
	role_stop
}

# --- runit and s6 -----------------------------------------------------------------

@test "share/sv/statsd-injector: run and log/run are executable sh scripts that parse" {
	local f
	for f in run log/run; do
		[ -x "$LGR_ROOT/share/sv/statsd-injector/$f" ]
		run -0 head -n 1 "$LGR_ROOT/share/sv/statsd-injector/$f"
		same "#!/bin/sh" "$output"
		run_ok sh -n "$LGR_ROOT/share/sv/statsd-injector/$f"
	done
}

@test "share/sv/statsd-injector/run runs it with the settings in env/" {
	local t=$BATS_TEST_TMPDIR sv=$BATS_TEST_TMPDIR/sv/statsd-injector stderr_file
	doppler_start m --name metron
	mkdir -p "$t/sv"
	cp -R "$LGR_ROOT/share/sv/statsd-injector" "$sv"
	mkdir -p "$sv/env"
	printf '%s\n' "${DOPPLER[m]}" >"$sv/env/STATSD_INJECTOR_METRON"
	printf '%s  \n' "$CERTS" >"$sv/env/STATSD_INJECTOR_CERTS"
	printf '127.0.0.1:0\nignored\n' >"$sv/env/STATSD_INJECTOR_STATSD"
	: >"$sv/env/STATSD_INJECTOR_INSECURE"
	role_start env -C "$sv" STATSD_INJECTOR_INSECURE=1 ./run
	stderr_file=$ROLE_ERR
	ROLE_ERR=$ROLE_OUT	# run sends stderr to stdout, for the logger
	role_ready statsd
	run_ok agent statsd "$STATSD" svc <<-'EOF'
	c.incr("started")
	EOF
	await 600 "$ROLE_PID" has_received m 1
	role_stop
	run -0 gauges m
	same "svc started counter 1 origin=svc" "$output"
	# mTLS: the empty env/STATSD_INJECTOR_INSECURE unset the variable.
	contains "$(cat "$ROLE_ERR")" " tls=yes"
	same "" "$(cat "$stderr_file")"
}

@test "share/sv/statsd-injector/log/run logs with svlogd -tt into ./main, or s6-log without svlogd" {
	local t=$BATS_TEST_TMPDIR sv=$BATS_TEST_TMPDIR/sv/statsd-injector l
	mkdir -p "$t/sv" "$t/runit" "$t/s6"
	cp -R "$LGR_ROOT/share/sv/statsd-injector" "$sv"
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
	printf 'statsd-injector: one line\n' >"$t/in"

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
