#!/bin/sh
# stub.sh: stands in for lgr-recv, lgr-diode and lgr-route beside a copy
# of a role script (see stub_role in t/roles/roles.bash). It appends one
# line to $STUB_LOG, its name and then each argument in brackets, and
# ends: lgr-recv at once, with status $STUB_RECV_STATUS, lgr-diode and
# lgr-route at the end of their input, with status $STUB_DIODE_STATUS
# and $STUB_ROUTE_STATUS (each 0 unless set). "--version" prints a
# version.
name=${0##*/}
if [ "${1-}" = --version ]; then
	echo "$name 0.0.0-stub"
	exit 0
fi
line=$name
for a; do
	line="$line [$a]"
done
printf '%s\n' "$line" >>"${STUB_LOG:?}"
case $name in
lgr-recv) exit "${STUB_RECV_STATUS:-0}" ;;
lgr-diode) cat >/dev/null; exit "${STUB_DIODE_STATUS:-0}" ;;
*) cat >/dev/null; exit "${STUB_ROUTE_STATUS:-0}" ;;
esac
