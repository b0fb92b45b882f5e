#!/usr/bin/env bats
# lgr-bindings: a drain binding list in, an lgr-route bindings file out,
# rewritten and signalled only when the list changed. The binding cache is
# a python3 http.server stand-in (t/lgr-bindings/binding_server.py) on a
# loopback port the kernel picks; the process told about changes is a
# small python that counts the SIGHUPs it gets (hup_recorder.py).

load lib

BT=$BATS_TEST_DIRNAME/lgr-bindings
BATS_TEST_TIMEOUT=10

# start_server [CERT KEY CA]: the stand-in on $BATS_TEST_TMPDIR/srv,
# over mTLS if given the files; sets URL.
start_server() {
	S=$BATS_TEST_TMPDIR/srv
	mkdir -p "$S"
	[ -f "$S/bindings.json" ] || echo '[]' >"$S/bindings.json"
	"$LGR_PYTHON" "$BT/binding_server.py" "$S" "$@" </dev/null \
	    >"$S/out" 2>&1 3>&- &
	wait_until 100 test -s "$S/port"
	URL=http$([ $# -eq 0 ] || echo s)://127.0.0.1:$(cat "$S/port")/v2/bindings
}

# start_recorder: a process that counts SIGHUPs into $HUPS; pid in $PIDF.
start_recorder() {
	PIDF=$BATS_TEST_TMPDIR/reader.pid
	HUPS=$BATS_TEST_TMPDIR/hups
	"$LGR_PYTHON" "$BT/hup_recorder.py" "$PIDF" "$HUPS" </dev/null \
	    >/dev/null 2>&1 3>&- &
	wait_until 100 test -s "$PIDF"
}

hups() {
	wc -l <"$HUPS" | tr -d ' '
}

# hups_are N, requests_are N, failures_are N: for wait_until, which needs
# the count taken afresh on every try.
hups_are() {
	[ "$(hups)" = "$1" ]
}
requests_are() {
	[ "$(count "$S/requests" /v2/bindings)" = "$1" ]
}
failures_are() {
	[ "$(count "$BATS_TEST_TMPDIR/err" event=fetch_failed)" = "$1" ]
}

# bin_route_drains: lgr-route takes syslog drain destinations.
bin_route_drains() {
	lgr-route --help | grep -q 'syslog://'
}

# count FILE PATTERN: lines of FILE holding PATTERN (fixed string).
count() {
	grep -cF -- "$2" "$1" || true
}

# binding URL APP_ID HOSTNAME: one v5 entry with one app.
binding() {
	printf '{"url":"%s","credentials":[{"cert":"","key":"","ca":"","apps":[{"hostname":"%s","app_id":"%s"}]}]}' \
	    "$1" "$3" "$2"
}

# list ENTRY...: a JSON array of the entries, into $S/bindings.json.
list() {
	local IFS=,
	printf '[%s]\n' "$*" >"$S/bindings.json.tmp"
	mv "$S/bindings.json.tmp" "$S/bindings.json"
}

no_a1() {
	! grep -q a1 "$1"
}

# lines_of FILE: the source_id lines of a bindings file.
lines_of() {
	grep '^source_id=' "$1" || true
}

# --- command line ----------------------------------------------------------

@test "--help prints the usage on stdout and exits 0" {
	run -0 --separate-stderr lgr-bindings --help
	same "usage: lgr-bindings --from URL|FILE --out FILE [--interval SECONDS]" "${lines[0]}"
	contains "$output" "--pid-file FILE"
	same "" "$stderr"
}

@test "--version prints one line and exits 0" {
	run -0 --separate-stderr lgr-bindings --version
	same 1 "${#lines[@]}"
	[[ ${lines[0]} =~ ^lgr-bindings\ [0-9]+\.[0-9]+ ]]
}

@test "usage errors exit 2" {
	run -2 lgr-bindings --out x
	run -2 lgr-bindings --from x
	run -2 lgr-bindings --from ftp://h/x --out x
	run -2 lgr-bindings --from x --out y --interval 0
	run -2 lgr-bindings --from https://h/x --out y --cert c
	run -2 lgr-bindings --from x --out y extra
}

# --- conversion ------------------------------------------------------------

@test "a file of a thousand apps converts to the expected lines" {
	local d=$BATS_TEST_TMPDIR
	"$LGR_PYTHON" "$BT/gen_bindings.py" 1000 3 "$d/in.json" "$d/want"
	run_ok lgr-bindings --from "$d/in.json" --out "$d/out" --once 2>"$d/err"
	lines_of "$d/out" | sort >"$d/got"
	same_file "$d/want" "$d/got"
	same 3000 "$(wc -l <"$d/got" | tr -d ' ')"
	same 1000 "$(count "$d/out" '# hostname app-')"
	contains "$(cat "$d/out")" "# hostname app-00009 org.space.app-00009"
}

@test "a thousand apps from the server, over http" {
	local d=$BATS_TEST_TMPDIR
	start_server
	"$LGR_PYTHON" "$BT/gen_bindings.py" 1000 2 "$S/bindings.json" "$d/want"
	run_ok lgr-bindings --from "$URL" --out "$d/out" --once 2>"$d/err"
	lines_of "$d/out" | sort >"$d/got"
	same_file "$d/want" "$d/got"
	same 1 "$(count "$S/requests" /v2/bindings)"
}

@test "at most five drains per app, the first five by URL, repeats once" {
	local d=$BATS_TEST_TMPDIR e=() i
	for i in 7 3 9 1 5 8 2; do
		e+=("$(binding "syslog://127.0.0.1:600$i" a1 h1)")
	done
	e+=("$(binding syslog://127.0.0.1:6001 a1 h1)")
	local IFS=,
	printf '[%s]\n' "${e[*]}" >"$d/in.json"
	unset IFS
	run_ok lgr-bindings --from "$d/in.json" --out "$d/out" --once 2>"$d/err"
	printf 'source_id=a1 syslog://127.0.0.1:600%s\n' 1 2 3 5 7 >"$d/want"
	lines_of "$d/out" >"$d/got"
	same_file "$d/want" "$d/got"
	same 1 "$(count "$d/err" 'event=drains_capped app_id=a1 drains=7 kept=5')"
}

@test "the older /bindings form converts too" {
	local d=$BATS_TEST_TMPDIR
	cat >"$d/in.json" <<-'J'
	[{"app_id":"a2","drains":["syslog-tls://h.example:6514","https://h.example/x?drain-type=all"],"hostname":"o.s.a2","v2_available":true},
	 {"app_id":"a1","drains":["syslog://10.0.0.1:514"],"hostname":"o.s.a1"}]
	J
	run_ok lgr-bindings --from "$d/in.json" --out "$d/out" --once 2>"$d/err"
	cat >"$d/want" <<-'W'
	# written by lgr-bindings; changes here are overwritten
	# hostname a1 o.s.a1
	source_id=a1 syslog://10.0.0.1:514
	# hostname a2 o.s.a2
	source_id=a2 https://h.example/x?drain-type=all
	source_id=a2 syslog-tls://h.example:6514
	W
	same_file "$d/want" "$d/out"
}

@test "bad drain URLs are skipped, each named in a log line; the rest load" {
	local d=$BATS_TEST_TMPDIR
	printf '[%s,%s,%s,%s,%s,%s]\n' \
	    "$(binding syslog://good.example:514 ok-app h)" \
	    "$(binding ftp://h.example:21 scheme-app h)" \
	    "$(binding syslog://h.example:99999 port-app h)" \
	    "$(binding syslog://h.example:x1 port2-app h)" \
	    "$(binding syslog://:514 host-app h)" \
	    "$(binding https://also-good.example/p ok-app h)" >"$d/in.json"
	run_ok lgr-bindings --from "$d/in.json" --out "$d/out" --once 2>"$d/err"
	printf '%s\n' "source_id=ok-app https://also-good.example/p" \
	    "source_id=ok-app syslog://good.example:514" >"$d/want"
	lines_of "$d/out" >"$d/got"
	same_file "$d/want" "$d/got"
	same 1 "$(count "$d/err" 'binding=1 app_id="scheme-app" url="ftp://h.example:21" reason="bad scheme')"
	same 1 "$(count "$d/err" 'binding=2 app_id="port-app" url="syslog://h.example:99999" reason="bad port"')"
	same 1 "$(count "$d/err" 'binding=3 app_id="port2-app" url="syslog://h.example:x1" reason="bad port"')"
	same 1 "$(count "$d/err" 'binding=4 app_id="host-app" url="syslog://:514" reason="missing host"')"
	same 4 "$(count "$d/err" event=binding_skipped)"
}

@test "--once: a list that does not parse exits 1 and leaves the file" {
	local d=$BATS_TEST_TMPDIR
	echo 'old' >"$d/out"
	echo '[{"url":' >"$d/in.json"
	must_fail -1 lgr-bindings --from "$d/in.json" --out "$d/out" --once 2>"$d/err"
	same old "$(cat "$d/out")"
	same 1 "$(count "$d/err" event=fetch_failed)"
	must_fail -1 lgr-bindings --from "$d/missing.json" --out "$d/out" --once 2>"$d/err"
	same old "$(cat "$d/out")"
}

@test "--max-bytes and --max-bindings bound what is accepted" {
	local d=$BATS_TEST_TMPDIR
	"$LGR_PYTHON" "$BT/gen_bindings.py" 100 2 "$d/in.json" "$d/want"
	must_fail -1 lgr-bindings --from "$d/in.json" --out "$d/out" --once \
	    --max-bytes 1000 2>"$d/err"
	contains "$(cat "$d/err")" "larger than --max-bytes"
	must_fail -1 lgr-bindings --from "$d/in.json" --out "$d/out" --once \
	    --max-bindings 199 2>"$d/err"
	contains "$(cat "$d/err")" "more than --max-bindings"
	[ ! -e "$d/out" ]
	run_ok lgr-bindings --from "$d/in.json" --out "$d/out" --once \
	    --max-bindings 200 2>"$d/err"
}

# --- following the list ----------------------------------------------------

@test "drains added and removed: the file follows, SIGHUP only on change" {
	local d=$BATS_TEST_TMPDIR
	start_server
	start_recorder
	list "$(binding syslog://127.0.0.1:7001 a1 h1)"
	lgr-bindings --from "$URL" --out "$d/out" --interval 60 \
	    --pid-file "$PIDF" </dev/null 2>"$d/err" 3>&- &
	local pid=$!
	wait_until 100 grep -q 'source_id=a1 syslog://127.0.0.1:7001' "$d/out"
	wait_until 100 hups_are 1

	# Same list again: no write, no signal.
	kill -HUP $pid
	wait_until 100 requests_are 2
	sleep 0.3
	same 1 "$(hups)"
	same 1 "$(count "$d/err" event=bindings_written)"

	# A drain added.
	list "$(binding syslog://127.0.0.1:7001 a1 h1)" \
	    "$(binding syslog-tls://127.0.0.1:7002 a2 h2)"
	kill -HUP $pid
	wait_until 100 grep -q 'source_id=a2 syslog-tls://127.0.0.1:7002' "$d/out"
	wait_until 100 hups_are 2

	# The first removed.
	list "$(binding syslog-tls://127.0.0.1:7002 a2 h2)"
	kill -HUP $pid
	wait_until 100 no_a1 "$d/out"
	wait_until 100 hups_are 3
	lines_of "$d/out" >"$d/got"
	same "source_id=a2 syslog-tls://127.0.0.1:7002" "$(cat "$d/got")"
	# The temp files were renamed, none left behind.
	same out "$(ls "$d" | grep '^out')"

	kill -TERM $pid
	local st=0
	wait "$pid" || st=$?
	same 0 "$st"
}

@test "the interval alone refetches" {
	local d=$BATS_TEST_TMPDIR
	start_server
	list "$(binding syslog://127.0.0.1:7001 a1 h1)"
	lgr-bindings --from "$URL" --out "$d/out" --interval 1 </dev/null \
	    2>"$d/err" 3>&- &
	wait_until 100 test -s "$d/out"
	list "$(binding syslog://127.0.0.1:7009 a1 h1)"
	wait_until 60 grep -q 7009 "$d/out"
}

@test "the server failing: the last file stays, one log line per fetch" {
	local d=$BATS_TEST_TMPDIR
	start_server
	start_recorder
	list "$(binding syslog://127.0.0.1:7001 a1 h1)"
	lgr-bindings --from "$URL" --out "$d/out" --interval 60 \
	    --pid-file "$PIDF" </dev/null 2>"$d/err" 3>&- &
	local pid=$!
	wait_until 100 hups_are 1
	cp "$d/out" "$d/good"

	touch "$S/fail"
	list "$(binding syslog://127.0.0.1:7002 a1 h1)"
	kill -HUP $pid
	wait_until 100 failures_are 1
	same 1 "$(count "$d/err" 'error="HTTP status 500"')"
	same_file "$d/good" "$d/out"
	same 1 "$(hups)"

	# It recovers on the next fetch.
	rm "$S/fail"
	kill -HUP $pid
	wait_until 100 grep -q 7002 "$d/out"
	wait_until 100 hups_are 2
	same 1 "$(count "$d/err" event=fetch_failed)"
}

@test "a server that is not there: the file stays" {
	local d=$BATS_TEST_TMPDIR
	echo 'kept' >"$d/out"
	# A port the kernel just gave and took back: nothing listens.
	local port
	port=$("$LGR_PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	must_fail -1 lgr-bindings --from "http://127.0.0.1:$port/v2/bindings" \
	    --out "$d/out" --once 2>"$d/err"
	same kept "$(cat "$d/out")"
	same 1 "$(count "$d/err" event=fetch_failed)"
}

@test "over mTLS: with the client certificate it loads, without it fails" {
	local d=$BATS_TEST_TMPDIR c=$BATS_TEST_TMPDIR/certs
	sh "$LGR_ROOT/share/lgr-certs" --only "$c" binding-cache syslog-agent \
	    >/dev/null 2>&1
	start_server "$c/binding-cache.crt" "$c/binding-cache.key" "$c/ca.crt"
	list "$(binding syslog-tls://127.0.0.1:6514 a1 h1)"
	must_fail -1 lgr-bindings --from "$URL" --ca "$c/ca.crt" \
	    --out "$d/out" --once 2>"$d/err"
	[ ! -e "$d/out" ]
	same 1 "$(count "$d/err" event=fetch_failed)"
	run_ok lgr-bindings --from "$URL" --ca "$c/ca.crt" \
	    --cert "$c/syslog-agent.crt" --key "$c/syslog-agent.key" \
	    --out "$d/out" --once 2>"$d/err"
	same "source_id=a1 syslog-tls://127.0.0.1:6514" "$(lines_of "$d/out")"
	# Without --ca the system CAs do not know the server: refused.
	must_fail -1 lgr-bindings --from "$URL" \
	    --cert "$c/syslog-agent.crt" --key "$c/syslog-agent.key" \
	    --out "$d/out2" --once 2>"$d/err"
	[ ! -e "$d/out2" ]
}

@test "lgr-route follows the file lgr-bindings keeps" {
	bin_route_drains || skip "lgr-route has no syslog:// destination yet"
	local d=$BATS_TEST_TMPDIR
	start_server
	list "$(binding syslog://127.0.0.1:9 a1 h1)"
	run_ok lgr-bindings --from "$URL" --out "$d/out" --once 2>"$d/err"
	sleep 30 | lgr-route --bindings "$d/out" >/dev/null 2>"$d/route" 3>&- &
	echo $! >"$d/route.pid"
	lgr-bindings --from "$URL" --out "$d/out" --interval 60 \
	    --pid-file "$d/route.pid" </dev/null 2>>"$d/err" 3>&- &
	local pid=$!
	list "$(binding syslog://127.0.0.1:9 a1 h1)" \
	    "$(binding syslog://127.0.0.1:10 a2 h2)"
	kill -HUP $pid
	wait_until 100 grep -q 'event=bindings_loaded .*added=1 removed=0' "$d/route"
	list "$(binding syslog://127.0.0.1:10 a2 h2)"
	kill -HUP $pid
	wait_until 100 grep -q 'event=bindings_loaded .*added=0 removed=1' "$d/route"
}

@test "SIGTERM while waiting exits 0 at once" {
	local d=$BATS_TEST_TMPDIR
	echo '[]' >"$d/in.json"
	lgr-bindings --from "$d/in.json" --out "$d/out" --interval 3600 \
	    </dev/null 2>"$d/err" 3>&- &
	local pid=$!
	wait_until 100 test -e "$d/out"
	kill -TERM $pid
	local st=0
	wait "$pid" || st=$?
	same 0 "$st"
	same 1 "$(count "$d/err" event=stop)"
}
