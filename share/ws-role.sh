# ws-role.sh: what the lgr-ws roles (trafficcontroller, reverselogproxy,
# rlp-gateway) share, sourced by each after it sets:
#   prog            the role's name, for messages
#   env             its environment prefix (TRAFFICCONTROLLER, ...)
#   name            its certificate's name in --certs DIR
#   listen_flag     --http or --grpc, and listen_default, its address
#   upstream_flag   what the role calls its upstreams (--dopplers, --rlp)
#   upstream_name   the name upstream certificates carry
#   role_flags      lgr-ws flags the role always gives
# The role's own flags are --certs DIR, the upstream list, the listen
# address and --insecure; every other flag goes to lgr-ws as it is, and
# lgr-ws checks it. ${env}_ARGS holds more lgr-ws flags (split on blanks).

usage() {
	cat <<USAGE
usage: $prog $upstream_flag HOST:PORT[,HOST:PORT...] [$listen_flag ADDR]
       [--certs DIR | --insecure] [lgr-ws options...]
USAGE
}
die_usage() {
	echo "$prog: $*" >&2
	usage >&2
	exit 2
}
getenv() {
	eval "printf '%s' \"\${${env}_$1:-}\""
}

listen=$(getenv LISTEN)
: "${listen:=$listen_default}"
upstreams=$(getenv UPSTREAMS)
certs=$(getenv CERTS)
extra=$(getenv ARGS)
case $(getenv INSECURE) in
'' | 0 | false | no) insecure= ;;
1 | true | yes) insecure=1 ;;
*) die_usage "${env}_INSECURE is 1 or 0, not '$(getenv INSECURE)'" ;;
esac

n=$#
while [ "$n" -gt 0 ]; do
	a=$1
	shift
	n=$((n - 1))
	case $a in
	-h|--help) usage; echo; lgr-ws --help; exit 0 ;;
	-V|--version) echo "$prog $(lgr-ws --version | cut -d' ' -f2)"; exit 0 ;;
	--insecure) insecure=1; continue ;;
	"$upstream_flag"=* | "$listen_flag"=* | --certs=*)
		v=${a#*=}
		a=${a%%=*}
		;;
	"$upstream_flag" | "$listen_flag" | --certs)
		[ "$n" -gt 0 ] || die_usage "option $a needs a value"
		v=$1
		shift
		n=$((n - 1))
		;;
	*) set -- "$@" "$a"; continue ;;	# for lgr-ws, in order
	esac
	case $a in
	"$upstream_flag") upstreams=$v ;;
	"$listen_flag") listen=$v ;;
	--certs) certs=$v ;;
	esac
done

[ -n "$upstreams" ] || die_usage "no upstreams: give $upstream_flag or ${env}_UPSTREAMS"
tls=
if [ -z "$insecure" ]; then
	[ -n "$certs" ] || die_usage "mTLS needs --certs DIR (or --insecure)"
	for f in "$certs/ca.crt" "$certs/$name.crt" "$certs/$name.key"; do
		[ -r "$f" ] || die_usage "cannot read $f"
	done
	tls="--upstream-ca $certs/ca.crt --upstream-cert $certs/$name.crt"
	tls="$tls --upstream-key $certs/$name.key --upstream-name $upstream_name"
	if [ "$listen_flag" = --grpc ]; then
		tls="$tls --tls-cert $certs/$name.crt --tls-key $certs/$name.key"
		tls="$tls --tls-ca $certs/ca.crt"
	fi
fi
# shellcheck disable=SC2086 # the lists are meant to split
# Self-metrics are frames on stdout, which a supervisor's log would
# take as text: off unless asked for (--metrics-interval, piped on).
exec lgr-ws "$listen_flag" "$listen" --upstream "$upstreams" $tls \
    --metrics-interval 0 $role_flags $extra "$@"
