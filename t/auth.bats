#!/usr/bin/env bats
# lib/auth: the traffic controller's admin check (UAA check_token) and app
# log-access check (Cloud Controller /internal/v4/log_access/GUID), asked
# through the driver t/drivers/auth_check.c (ASan and UBSan) of the
# stand-in t/auth-peer/uaa_cc.py, which counts the calls it gets
# (/hits), so a test can tell an answer from the cache or a check made
# without a call from one that was asked.

load lib

ADMIN_GUID=6a5a1a5e-0b4c-4c1e-9f0e-1d2c3b4a5f60
OTHER_GUID=0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9
GONE_GUID=deadbeef-dead-beef-dead-beefdeadbeef
BROKEN_GUID=BADC0FFE-E0DD-F00D-0000-000000000500

setup_file() {
	make -s -C "$LGR_ROOT" build/asan/t/auth_check >&2
	sh "$LGR_ROOT/share/lgr-certs" --only "$BATS_FILE_TMPDIR/certs" \
	    cc trafficcontroller 2>/dev/null
	# A CA unrelated to the first, with a client certificate of its own.
	sh "$LGR_ROOT/share/lgr-certs" --only "$BATS_FILE_TMPDIR/other" \
	    client 2>/dev/null
}

# The calls go to loopback, never through a proxy from the environment.
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY

CHECK=$LGR_ROOT/build/asan/t/auth_check
CERTS=$BATS_FILE_TMPDIR/certs

# peer_start NAME ARGS...: start uaa_cc.py ARGS in the background, its
# log in $T/NAME.err; wait (10 s at most) for its port. Sets PORT and URL
# (http://127.0.0.1:PORT).
peer_start() {
	local name=$1 t=$BATS_TEST_TMPDIR
	shift
	"$LGR_PYTHON" "$BATS_TEST_DIRNAME/auth-peer/uaa_cc.py" \
	    --port-file "$t/$name.port" \
	    --allow "$ADMIN_GUID" --gone "$GONE_GUID" --broken "$BROKEN_GUID" \
	    "$@" </dev/null >/dev/null 2>"$t/$name.err" 3>&- {LGR_DIAG}>&- &
	if ! wait_until 200 test -s "$t/$name.port"; then
		lgr_diag "uaa_cc $* did not start; its log:"
		lgr_diag "$(cat "$t/$name.err")"
		return 1
	fi
	PORT=$(cat "$t/$name.port")
	URL=http://127.0.0.1:$PORT
}

# hits KIND: calls of KIND (check_token, log_access) the peer at $PORT
# has had.
hits() {
	curl -sS --noproxy '*' "http://127.0.0.1:$PORT/hits" \
	    >"$BATS_TEST_TMPDIR/hits.json" || return 1
	"$LGR_PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' \
	    "$BATS_TEST_TMPDIR/hits.json" "$1"
}

# check ARGS...: run the driver against the peer at $URL (client doppler,
# secret secret unless ARGS say otherwise); it must exit 0. Its answers in
# $T/out and $output, its log in $T/err.
check() {
	run_ok "$CHECK" --uaa "$URL" --cc "$URL" --client doppler \
	    --secret secret "$@" >"$BATS_TEST_TMPDIR/out" \
	    2>"$BATS_TEST_TMPDIR/err" ||
	    { lgr_diag "$(cat "$BATS_TEST_TMPDIR/err")"; return 1; }
	output=$(cat "$BATS_TEST_TMPDIR/out")
}

# answer WORD: the driver gave one answer, and it was WORD.
answer() {
	same 1 "$(wc -l <"$BATS_TEST_TMPDIR/out" | tr -d ' ')" &&
	    same "$1" "${output%% *}"
}

# --- admin: UAA check_token --------------------------------------------------

@test "a token with scope doppler.firehose is an admin's" {
	peer_start p
	check admin "bearer admin-token"
	answer ok
	contains "$output" "scope doppler.firehose"
	same 1 "$(hits check_token)"
}

@test "a token with scope logs.admin is an admin's" {
	peer_start p
	check admin "bearer logs-admin-token"
	answer ok
	contains "$output" "scope logs.admin"
}

@test "bearer is stripped in any case, or may be missing" {
	peer_start p
	check admin "BEARER admin-token"
	answer ok
	check admin "Bearer admin-token"
	answer ok
	check admin "admin-token"
	answer ok
}

@test "a valid token without an admin scope is forbidden" {
	peer_start p
	check admin "bearer user-token"
	answer forbidden
}

@test "a token UAA does not know is unauthorized" {
	peer_start p
	check admin "bearer no-such-token"
	answer unauthorized
	contains "$output" "invalid_token"
	same "" "$(cat "$BATS_TEST_TMPDIR/err")"
}

@test "no token is unauthorized without asking UAA" {
	peer_start p
	check admin ""
	answer unauthorized
	check admin "bearer "
	answer unauthorized
	same 0 "$(hits check_token)"
}

@test "a token with a control character is unauthorized without a call" {
	peer_start p
	check admin "admin-token
X-Injected: 1"
	answer unauthorized
	check app "bearer user-token
X-Injected: 1" "$ADMIN_GUID"
	answer unauthorized
	same 0 "$(hits check_token)"
	same 0 "$(hits log_access)"
}

@test "UAA refusing the client is an error, logged without the token" {
	peer_start p
	check --secret wrong admin "bearer admin-token"
	answer error
	local log
	log=$(cat "$BATS_TEST_TMPDIR/err")
	contains "$log" "event=auth_error url=$URL/check_token"
	contains "$log" "HTTP 401"
	case $log in
	*admin-token*) lgr_diag "the token is in the log: $log"; return 1 ;;
	esac
}

@test "UAA down is an error" {
	peer_start gone
	kill "$!"
	wait "$!" || true
	check admin "bearer admin-token"
	answer error
	contains "$(cat "$BATS_TEST_TMPDIR/err")" "event=auth_error"
}

@test "no UAA configured is an error" {
	run_ok "$CHECK" admin "bearer admin-token" >"$BATS_TEST_TMPDIR/out" \
	    2>"$BATS_TEST_TMPDIR/err"
	same "error no UAA to ask" "$(cat "$BATS_TEST_TMPDIR/out")"
}

# --- app access: Cloud Controller log_access ----------------------------------

@test "an app the token may read is ok" {
	peer_start p
	check app "bearer user-token" "$ADMIN_GUID"
	answer ok
	same 1 "$(hits log_access)"
}

@test "the Authorization header goes to CC as given" {
	peer_start p
	check app "BeArEr admin-token" "$ADMIN_GUID"
	answer ok
	# Without "bearer " it is no bearer token to CC.
	check app "admin-token" "$ADMIN_GUID"
	answer unauthorized
}

@test "an app the token may not read is forbidden" {
	peer_start p
	check app "bearer user-token" "$OTHER_GUID"
	answer forbidden
	contains "$output" "HTTP 403"
}

@test "an app CC does not know (404) is forbidden" {
	peer_start p
	check app "bearer user-token" "$GONE_GUID"
	answer forbidden
	contains "$output" "HTTP 404"
}

@test "a bad token for an app is unauthorized" {
	peer_start p
	check app "bearer no-such-token" "$ADMIN_GUID"
	answer unauthorized
	check app "" "$ADMIN_GUID"
	answer unauthorized
	same 1 "$(hits log_access)"
}

@test "CC failing (500) is an error, not cached" {
	peer_start p
	check app --repeat 3 "bearer user-token" "$BROKEN_GUID"
	same "error cc: HTTP 500
error cc: HTTP 500
error cc: HTTP 500" "$output"
	same 3 "$(hits log_access)"
	contains "$(cat "$BATS_TEST_TMPDIR/err")" \
	    "event=auth_error url=$URL/internal/v4/log_access/$BROKEN_GUID"
}

@test "an app id that is not a guid is unauthorized without asking CC" {
	peer_start p
	local id
	for id in not-a-guid "${ADMIN_GUID}0" "${ADMIN_GUID%?}" \
	    6a5a1a5e-0b4c-4c1e-9f0e-1d2c3b4a5g60 6a5a1a5e00b4c-4c1e-9f0e-1d2c3b4a5f60 \
	    "../../../hits" ""; do
		check app "bearer user-token" "$id"
		answer unauthorized
		contains "$output" "not a guid"
	done
	same 0 "$(hits log_access)"
}

@test "a guid in capitals is a guid" {
	peer_start p --allow "${ADMIN_GUID^^}"
	check app "bearer user-token" "${ADMIN_GUID^^}"
	answer ok
}

# --- the cache ------------------------------------------------------------------

@test "five checks one after another make one call" {
	peer_start p
	check --repeat 5 admin "bearer admin-token"
	same 5 "$(grep -c '^ok ' "$BATS_TEST_TMPDIR/out")"
	same 1 "$(hits check_token)"
	check --repeat 5 app "bearer user-token" "$OTHER_GUID"
	same 5 "$(grep -c '^forbidden ' "$BATS_TEST_TMPDIR/out")"
	same 1 "$(hits log_access)"
}

@test "the cache keeps an unauthorized answer too" {
	peer_start p
	check --repeat 3 admin "bearer no-such-token"
	same 3 "$(grep -c '^unauthorized ' "$BATS_TEST_TMPDIR/out")"
	same 1 "$(hits check_token)"
}

@test "bearer or not, an admin token is one cache entry" {
	peer_start p
	check admin "bearer admin-token" admin "Bearer admin-token" \
	    admin "admin-token" admin "BEARER admin-token"
	same 4 "$(grep -c '^ok ' "$BATS_TEST_TMPDIR/out")"
	same 1 "$(hits check_token)"
}

@test "five checks at once share one call" {
	peer_start p
	check --repeat 5 --parallel app "bearer user-token" "$ADMIN_GUID"
	same 5 "$(grep -c '^ok ' "$BATS_TEST_TMPDIR/out")"
	same 1 "$(hits log_access)"
}

@test "an answer older than --ttl is asked again" {
	peer_start p
	check --repeat 3 --ttl 50 --interval 150 admin "bearer admin-token"
	same 3 "$(grep -c '^ok ' "$BATS_TEST_TMPDIR/out")"
	same 3 "$(hits check_token)"
	check --repeat 3 --ttl 60000 --interval 50 app "bearer user-token" \
	    "$ADMIN_GUID"
	same 3 "$(grep -c '^ok ' "$BATS_TEST_TMPDIR/out")"
	same 1 "$(hits log_access)"
}

@test "past --max-entries the oldest answer goes first" {
	peer_start p
	# Two entries: admin-token, user-token, then admin-token again
	# from the cache.
	check --max-entries 2 admin "bearer admin-token" \
	    admin "bearer user-token" admin "bearer admin-token"
	same 2 "$(hits check_token)"
	# One entry: user-token pushes admin-token out, three calls more.
	check --max-entries 1 admin "bearer admin-token" \
	    admin "bearer user-token" admin "bearer admin-token"
	same 5 "$(hits check_token)"
	same "ok uaa: scope doppler.firehose
forbidden uaa: scope holds neither doppler.firehose nor logs.admin
ok uaa: scope doppler.firehose" "$output"
}

@test "past --max-pending a check is an error at once" {
	peer_start p
	check --parallel --max-pending 1 app "bearer user-token" "$ADMIN_GUID" \
	    app "bearer user-token" "$ADMIN_GUID" \
	    app "bearer user-token" "$OTHER_GUID"
	# The second shares the first's call; the third would be a second.
	same 2 "$(grep -c '^ok ' "$BATS_TEST_TMPDIR/out")"
	same "error too many checks in flight" "$(grep '^error' "$BATS_TEST_TMPDIR/out")"
	same 1 "$(hits log_access)"
}

@test "admin and app answers are kept apart" {
	peer_start p
	check admin "bearer user-token" app "bearer user-token" "$ADMIN_GUID"
	same "forbidden uaa: scope holds neither doppler.firehose nor logs.admin
ok cc: HTTP 200" "$output"
}

# --- cancel and free ------------------------------------------------------------

@test "a cancelled check is never answered" {
	peer_start p
	check --repeat 3 --parallel --cancel 2 admin "bearer admin-token"
	same "ok uaa: scope doppler.firehose" "$output"
	check --repeat 2 --parallel --cancel 2 admin "bearer user-token"
	same "" "$output"
	check --repeat 2 --parallel --cancel 1 admin ""
	same "unauthorized no token" "$output"
}

@test "freeing with calls out answers nothing and leaks nothing" {
	peer_start p
	check --repeat 4 --parallel --free-early admin "bearer admin-token"
	same "" "$output"
	check --repeat 2 --parallel --free-early app "bearer user-token" \
	    "$ADMIN_GUID"
	same "" "$output"
	check --free-early admin ""
	same "" "$output"
}

@test "a check cancelled from inside a callback is never answered" {
	peer_start p
	# Answers 1 and 3 come from one call, in one go; 2 and 4 are cancelled.
	check --parallel --repeat 4 --cancel-next admin "bearer admin-token"
	same 2 "$(grep -c '^ok ' "$BATS_TEST_TMPDIR/out")"
	same 2 "$(wc -l <"$BATS_TEST_TMPDIR/out" | tr -d ' ')"
	check --parallel --repeat 3 --cancel-next admin ""
	same 2 "$(wc -l <"$BATS_TEST_TMPDIR/out" | tr -d ' ')"
}

@test "freeing from inside a callback ends the answers there" {
	peer_start p
	check --parallel --repeat 4 --free-after 1 app "bearer user-token" \
	    "$ADMIN_GUID"
	same "ok cc: HTTP 200" "$output"
	check --parallel --repeat 4 --free-after 2 admin "x" admin ""
	same 2 "$(wc -l <"$BATS_TEST_TMPDIR/out" | tr -d ' ')"
	check --parallel --free-after 1 admin "" app "bearer user-token" \
	    "$ADMIN_GUID"
	same "unauthorized no token" "$output"
}

# --- TLS --------------------------------------------------------------------------

# tls_peer NAME ARGS...: a peer serving cc.crt from $CERTS; URL is https.
tls_peer() {
	local name=$1
	shift
	peer_start "$name" --tls-cert "$CERTS/cc.crt" --tls-key "$CERTS/cc.key" \
	    "$@"
	URL=https://127.0.0.1:$PORT
}

@test "UAA over TLS, the server checked against --ca" {
	tls_peer p
	check --ca "$CERTS/ca.crt" admin "bearer admin-token"
	answer ok
	URL=https://localhost:$PORT
	check --ca "$CERTS/ca.crt" admin "bearer admin-token"
	answer ok
}

@test "a server certificate the CA did not sign is an error" {
	tls_peer p
	check --ca "$BATS_FILE_TMPDIR/other/ca.crt" admin "bearer admin-token"
	answer error
	check admin "bearer admin-token"
	answer error
	check --insecure admin "bearer admin-token"
	answer ok
}

@test "mutual TLS to CC works with the client certificate" {
	tls_peer p --client-ca "$CERTS/ca.crt"
	check --ca "$CERTS/ca.crt" --cert "$CERTS/trafficcontroller.crt" \
	    --key "$CERTS/trafficcontroller.key" \
	    app "bearer user-token" "$ADMIN_GUID"
	answer ok
}

@test "mutual TLS to CC fails without a client certificate" {
	tls_peer p --client-ca "$CERTS/ca.crt"
	check --ca "$CERTS/ca.crt" app "bearer user-token" "$ADMIN_GUID"
	answer error
	contains "$(cat "$BATS_TEST_TMPDIR/err")" "event=auth_error"
	check --ca "$CERTS/ca.crt" --cert "$BATS_FILE_TMPDIR/other/client.crt" \
	    --key "$BATS_FILE_TMPDIR/other/client.key" \
	    app "bearer user-token" "$ADMIN_GUID"
	answer error
}

@test "unreadable files and bad URLs are refused at start" {
	must_fail -1 "$CHECK" --ca /nonexistent/ca.crt admin x \
	    2>"$BATS_TEST_TMPDIR/err"
	contains "$(cat "$BATS_TEST_TMPDIR/err")" "/nonexistent/ca.crt"
	must_fail -1 "$CHECK" --uaa ftp://127.0.0.1/ admin x \
	    2>"$BATS_TEST_TMPDIR/err"
	contains "$(cat "$BATS_TEST_TMPDIR/err")" "not http:// or https://"
	must_fail -1 "$CHECK" --key "$CERTS/cc.key" admin x 2>/dev/null
	must_fail -2 "$CHECK" admin 2>/dev/null
	must_fail -2 "$CHECK" --bogus admin x 2>/dev/null
}

# --- timeouts ---------------------------------------------------------------------

@test "a checker that never answers is an error within the timeout" {
	peer_start p --hang
	local t0 t1
	t0=$(date +%s%N)
	check --timeout 1000 admin "bearer admin-token"
	t1=$(date +%s%N)
	answer error
	contains "$output" "uaa: "
	same 1 "$(hits check_token)"
	# 1 s, and room for a loaded machine; the default would be 5 s.
	[ $(( (t1 - t0) / 1000000 )) -lt 4000 ] ||
	    { lgr_diag "took $(( (t1 - t0) / 1000000 )) ms"; return 1; }
	[ $(( (t1 - t0) / 1000000 )) -ge 900 ]
	check --timeout 500 app "bearer user-token" "$ADMIN_GUID"
	answer error
	contains "$(cat "$BATS_TEST_TMPDIR/err")" "event=auth_error"
}

@test "freeing cancels the calls not yet started" {
	peer_start p --hang
	# More calls than libuv's 4 worker threads: some never start (all of
	# them, if the workers have not woken up yet); those that did end at
	# the timeout, and the driver's loop ends after them.
	check --timeout 2000 --parallel --free-early admin t1 admin t2 \
	    admin t3 admin t4 admin t5 admin t6 admin t7 admin t8
	same "" "$output"
	local n
	n=$(hits check_token)
	[ "$n" -lt 8 ] || { lgr_diag "$n calls reached the peer"; return 1; }
}
