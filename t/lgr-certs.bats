#!/usr/bin/env bats
# share/lgr-certs: a CA and a certificate per component, for local use
# and tests. Everything it makes is read back with openssl: each
# certificate verifies against the CA for its uses, names its component,
# and serves an mTLS handshake with the TLS 1.2 suite Loggregator allows;
# a second run keeps every file, --force makes them anew.

load lib

CERTS=$LGR_ROOT/share/lgr-certs
COMPONENTS="metron doppler reverselogproxy trafficcontroller statsd-injector
syslog-agent"
# The one TLS 1.2 suite both ends are held to below (SPEC section 2).
SUITE=ECDHE-RSA-AES256-GCM-SHA384
# How openssl prints IP:127.0.0.1, IP:::1, serverAuth and clientAuth.
IP4="IP Address:127.0.0.1"
IP6="IP Address:0:0:0:0:0:0:0:1"
SERVER_AUTH="TLS Web Server Authentication"
CLIENT_AUTH="TLS Web Client Authentication"

# One set for the tests that only read it, made once: each set takes
# seconds. Tests that change a set copy it first.
setup_file() {
	"$CERTS" "$BATS_FILE_TMPDIR/certs" 2>"$BATS_FILE_TMPDIR/certs.err"
}

# copy_set NAME: a copy of the shared set in the test's own directory.
copy_set() {
	cp -Rp "$BATS_FILE_TMPDIR/certs" "$BATS_TEST_TMPDIR/$1"
}

# sums DIR OUT: a checksum line per file of DIR, in OUT.
sums() {
	(cd "$1" && cksum -- *) >"$2"
}

# verifies CA CRT PURPOSE: openssl says CRT is signed by CA for PURPOSE
# (sslserver, sslclient).
verifies() {
	openssl verify -CAfile "$1" -purpose "$3" "$2" >/dev/null 2>&1
}

# x509 CRT ARGS...: what openssl x509 -noout ARGS prints about CRT.
x509() {
	local crt=$1
	shift
	openssl x509 -noout -in "$crt" "$@"
}

# server_port FD: read the s_server started on the fifo open at FD until
# it says where it listens; sets $port.
server_port() {
	local line
	while read -r -t 10 -u "$1" line; do
		case $line in
		ACCEPT*) port=${line##*:}; return 0 ;;
		esac
	done
	lgr_diag "s_server never said ACCEPT"
	return 1
}

# --- command line ----------------------------------------------------------

@test "--help prints the usage on stdout and exits 0" {
	run -0 --separate-stderr "$CERTS" --help
	same "usage: lgr-certs [--force] [--only] DIR [NAME ...]" "${lines[0]}"
	contains "$output" "--force"
	contains "$output" "--only"
	same "" "$stderr"
}

@test "usage errors exit 2, say what is wrong and make nothing" {
	local d=$BATS_TEST_TMPDIR/d rule="letters, digits, dots and dashes"
	run -2 --separate-stderr "$CERTS"
	same "lgr-certs: no DIR given" "${stderr_lines[0]}"
	same "usage: lgr-certs [--force] [--only] DIR [NAME ...]" \
	    "${stderr_lines[1]}"
	same "" "$output"
	run -2 --separate-stderr "$CERTS" ""
	same "lgr-certs: no DIR given" "${stderr_lines[0]}"
	run -2 --separate-stderr "$CERTS" --bogus "$d"
	same "lgr-certs: unknown option --bogus" "${stderr_lines[0]}"
	run -2 --separate-stderr "$CERTS" "$d" "two words"
	same "lgr-certs: bad NAME 'two words': $rule" "${stderr_lines[0]}"
	run -2 --separate-stderr "$CERTS" "$d" ../up
	contains "${stderr_lines[0]}" "bad NAME '../up'"
	run -2 --separate-stderr "$CERTS" "$d" -x
	contains "${stderr_lines[0]}" "bad NAME '-x'"
	run -2 --separate-stderr "$CERTS" "$d" .hidden
	contains "${stderr_lines[0]}" "bad NAME '.hidden'"
	run -2 --separate-stderr "$CERTS" "$d" ca
	same "lgr-certs: bad NAME 'ca': the CA's own" "${stderr_lines[0]}"
	[ ! -e "$d" ]
}

@test "a DIR that cannot be made is a runtime failure" {
	: >"$BATS_TEST_TMPDIR/file"
	run -1 --separate-stderr "$CERTS" "$BATS_TEST_TMPDIR/file/sub"
	contains "$stderr" "level=error event=mkdir_failed"
}

# --- what it makes ---------------------------------------------------------

@test "makes a CA, and a key and certificate per component and client" {
	local d=$BATS_FILE_TMPDIR/certs n want got
	want=$(printf '%s\n' ca $COMPONENTS client | sed 's/.*/&.crt\n&.key/' |
	    sort)
	got=$(ls -A "$d")
	same "$want" "$got"
	for n in ca $COMPONENTS client; do
		same 600 "$(stat -c %a "$d/$n.key")"
		same 644 "$(stat -c %a "$d/$n.crt")"
		contains "$(cat "$BATS_FILE_TMPDIR/certs.err")" \
		    "lgr-certs: level=info event=made name=$n"
	done
}

@test "every certificate verifies against the CA for its uses" {
	local d=$BATS_FILE_TMPDIR/certs n
	for n in $COMPONENTS; do
		run_ok openssl verify -CAfile "$d/ca.crt" "$d/$n.crt"
		verifies "$d/ca.crt" "$d/$n.crt" sslserver ||
		    { lgr_diag "$n: not for servers"; false; }
		verifies "$d/ca.crt" "$d/$n.crt" sslclient ||
		    { lgr_diag "$n: not for clients"; false; }
	done
	run_ok openssl verify -CAfile "$d/ca.crt" "$d/client.crt"
	verifies "$d/ca.crt" "$d/client.crt" sslclient
	! verifies "$d/ca.crt" "$d/client.crt" sslserver
}

@test "each certificate names its component in CN and subjectAltName" {
	local d=$BATS_FILE_TMPDIR/certs n san
	for n in $COMPONENTS client; do
		same "subject=CN=$n,O=lgr" \
		    "$(x509 "$d/$n.crt" -subject -nameopt RFC2253)"
		san=$(x509 "$d/$n.crt" -ext subjectAltName | sed -n '2s/^ *//p')
		if [ "$n" = client ]; then
			same "DNS:client" "$san"
		else
			same "DNS:$n, DNS:localhost, $IP4, $IP6" "$san"
		fi
	done
}

@test "keys are RSA 2048 and match their certificates; uses are as named" {
	local d=$BATS_FILE_TMPDIR/certs n text eku
	for n in ca $COMPONENTS client; do
		text=$(x509 "$d/$n.crt" -text)
		contains "$text" "Public Key Algorithm: rsaEncryption"
		contains "$text" "Public-Key: (2048 bit)"
		same "$(x509 "$d/$n.crt" -pubkey)" \
		    "$(openssl pkey -pubout -in "$d/$n.key")"
		[ "$n" = ca ] && continue
		eku=$(x509 "$d/$n.crt" -ext extendedKeyUsage |
		    sed -n '2s/^ *//p')
		if [ "$n" = client ]; then
			same "$CLIENT_AUTH" "$eku"
		else
			same "$SERVER_AUTH, $CLIENT_AUTH" "$eku"
		fi
		contains "$(x509 "$d/$n.crt" -ext basicConstraints)" "CA:FALSE"
	done
	contains "$(x509 "$d/ca.crt" -ext basicConstraints)" "CA:TRUE"
}

# --- runs over an existing set ---------------------------------------------

@test "a second run keeps the CA and every certificate" {
	local d=$BATS_TEST_TMPDIR/set n
	copy_set set
	sums "$d" "$BATS_TEST_TMPDIR/before"
	run_ok "$CERTS" "$d" 2>"$BATS_TEST_TMPDIR/err"
	sums "$d" "$BATS_TEST_TMPDIR/after"
	same_file "$BATS_TEST_TMPDIR/before" "$BATS_TEST_TMPDIR/after"
	for n in ca $COMPONENTS client; do
		contains "$(cat "$BATS_TEST_TMPDIR/err")" "event=kept name=$n"
	done
	! grep -q "event=made" "$BATS_TEST_TMPDIR/err"
}

@test "--force makes the CA and every certificate anew" {
	local d=$BATS_TEST_TMPDIR/set n
	copy_set set
	copy_set old
	run_ok "$CERTS" --force "$d" 2>"$BATS_TEST_TMPDIR/err"
	for n in ca $COMPONENTS client; do
		! cmp -s "$d/$n.crt" "$BATS_TEST_TMPDIR/old/$n.crt"
		! cmp -s "$d/$n.key" "$BATS_TEST_TMPDIR/old/$n.key"
		contains "$(cat "$BATS_TEST_TMPDIR/err")" "event=made name=$n"
		[ "$n" = ca ] && continue
		verifies "$d/ca.crt" "$d/$n.crt" sslclient
		! verifies "$d/ca.crt" "$BATS_TEST_TMPDIR/old/$n.crt" sslclient
	done
}

@test "a certificate missing its key or from another CA is made again" {
	local d=$BATS_TEST_TMPDIR/set n
	copy_set set
	copy_set old
	run_ok "$CERTS" --only "$BATS_TEST_TMPDIR/other" metron 2>/dev/null
	rm "$d/doppler.key"
	cp "$BATS_TEST_TMPDIR"/other/metron.* "$d/"
	run_ok "$CERTS" "$d" 2>"$BATS_TEST_TMPDIR/err"
	for n in doppler metron; do
		contains "$(cat "$BATS_TEST_TMPDIR/err")" "event=made name=$n"
		verifies "$d/ca.crt" "$d/$n.crt" sslserver
	done
	for n in ca reverselogproxy trafficcontroller client; do
		contains "$(cat "$BATS_TEST_TMPDIR/err")" "event=kept name=$n"
		cmp "$d/$n.crt" "$BATS_TEST_TMPDIR/old/$n.crt"
	done
}

@test "a CA whose key is gone is made anew, and every certificate with it" {
	local d=$BATS_TEST_TMPDIR/set n
	copy_set set
	copy_set old
	rm "$d/ca.key"
	run_ok "$CERTS" "$d" 2>"$BATS_TEST_TMPDIR/err"
	! cmp -s "$d/ca.crt" "$BATS_TEST_TMPDIR/old/ca.crt"
	for n in ca $COMPONENTS client; do
		contains "$(cat "$BATS_TEST_TMPDIR/err")" "event=made name=$n"
	done
	verifies "$d/ca.crt" "$d/doppler.crt" sslserver
}

@test "a NAME given gets a certificate too, beside the components'" {
	local d=$BATS_TEST_TMPDIR/set
	copy_set set
	run_ok "$CERTS" "$d" log-cache 2>"$BATS_TEST_TMPDIR/err"
	verifies "$d/ca.crt" "$d/log-cache.crt" sslserver
	same "subject=CN=log-cache,O=lgr" \
	    "$(x509 "$d/log-cache.crt" -subject -nameopt RFC2253)"
	contains "$(x509 "$d/log-cache.crt" -ext subjectAltName)" \
	    "DNS:log-cache, DNS:localhost"
	contains "$(cat "$BATS_TEST_TMPDIR/err")" "event=kept name=doppler"
}

@test "--only makes an unrelated CA and just the NAMEs given" {
	local d=$BATS_TEST_TMPDIR/rogue
	run_ok "$CERTS" --only "$d" client 2>/dev/null
	same "$(printf '%s\n' ca.crt ca.key client.crt client.key)" \
	    "$(ls -A "$d")"
	verifies "$d/ca.crt" "$d/client.crt" sslclient
	! verifies "$BATS_FILE_TMPDIR/certs/ca.crt" "$d/client.crt" sslclient
	! verifies "$d/ca.crt" "$BATS_FILE_TMPDIR/certs/client.crt" sslclient
}

# --- in a handshake --------------------------------------------------------

# Each test starts openssl s_server as doppler, with the shared set, for
# one connection: it asks for a client certificate and fails the
# handshake unless the CA signed it. TLS 1.2 and the one suite only.

@test "doppler's certificate serves mTLS to the client's, name checked" {
	local d=$BATS_FILE_TMPDIR/certs fifo=$BATS_TEST_TMPDIR/ready port fd
	mkfifo "$fifo"
	openssl s_server -www -naccept 1 -accept 127.0.0.1:0 \
	    -cert "$d/doppler.crt" -key "$d/doppler.key" -CAfile "$d/ca.crt" \
	    -Verify 1 -verify_return_error -tls1_2 -cipher "$SUITE" \
	    </dev/null >"$fifo" 2>"$BATS_TEST_TMPDIR/server.err" 3>&- &
	exec {fd}<"$fifo"
	server_port "$fd"
	printf 'GET / HTTP/1.0\r\n\r\n' >"$BATS_TEST_TMPDIR/req"
	run_ok openssl s_client -quiet -connect "127.0.0.1:$port" \
	    -CAfile "$d/ca.crt" -verify_return_error -verify_hostname doppler \
	    -cert "$d/client.crt" -key "$d/client.key" -tls1_2 \
	    -cipher "$SUITE" <"$BATS_TEST_TMPDIR/req" \
	    >"$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/err"
	same "HTTP/1.0 200 ok" "$(sed -n '1s/\r$//p' "$BATS_TEST_TMPDIR/out")"
	contains "$(cat "$BATS_TEST_TMPDIR/out")" "$SUITE"
}

@test "a client certificate from another CA is refused" {
	local d=$BATS_FILE_TMPDIR/certs r=$BATS_TEST_TMPDIR/rogue
	local fifo=$BATS_TEST_TMPDIR/ready port fd
	run_ok "$CERTS" --only "$r" client 2>/dev/null
	mkfifo "$fifo"
	openssl s_server -www -naccept 1 -accept 127.0.0.1:0 \
	    -cert "$d/doppler.crt" -key "$d/doppler.key" -CAfile "$d/ca.crt" \
	    -Verify 1 -verify_return_error -tls1_2 -cipher "$SUITE" \
	    </dev/null >"$fifo" 2>"$BATS_TEST_TMPDIR/server.err" 3>&- &
	exec {fd}<"$fifo"
	server_port "$fd"
	must_fail -1 openssl s_client -quiet -connect "127.0.0.1:$port" \
	    -CAfile "$d/ca.crt" -verify_return_error -verify_hostname doppler \
	    -cert "$r/client.crt" -key "$r/client.key" -tls1_2 \
	    -cipher "$SUITE" </dev/null \
	    >"$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/err"
	contains "$(cat "$BATS_TEST_TMPDIR/err")" "alert unknown ca"
}

@test "a client expecting metron refuses doppler's certificate" {
	local d=$BATS_FILE_TMPDIR/certs fifo=$BATS_TEST_TMPDIR/ready port fd
	mkfifo "$fifo"
	openssl s_server -www -naccept 1 -accept 127.0.0.1:0 \
	    -cert "$d/doppler.crt" -key "$d/doppler.key" -CAfile "$d/ca.crt" \
	    -Verify 1 -verify_return_error -tls1_2 -cipher "$SUITE" \
	    </dev/null >"$fifo" 2>"$BATS_TEST_TMPDIR/server.err" 3>&- &
	exec {fd}<"$fifo"
	server_port "$fd"
	must_fail -1 openssl s_client -quiet -connect "127.0.0.1:$port" \
	    -CAfile "$d/ca.crt" -verify_return_error -verify_hostname metron \
	    -cert "$d/client.crt" -key "$d/client.key" -tls1_2 \
	    -cipher "$SUITE" </dev/null \
	    >"$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/err"
	contains "$(cat "$BATS_TEST_TMPDIR/err")" "hostname mismatch"
}
