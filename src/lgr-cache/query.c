/* query: request targets of lgr-cache's HTTP API, parsed by hand from the
 * raw bytes, so that every rule is ours to state and to fuzz. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "opt.h"
#include "query.h"

/* Bits of the read parameters seen, to refuse one given twice. */
enum {
	SEEN_START = 1, SEEN_END = 2, SEEN_LIMIT = 4, SEEN_DESC = 8,
	SEEN_FILTER = 16,
};

static int
fail(char *err, size_t errlen, int status, const char *fmt, ...)
{
	va_list ap;
	char *p;

	if (errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
		/* The reason goes into log lines and JSON: keep it one
		 * printable line whatever the client sent. */
		for (p = err; *p != '\0'; p++)
			if (*p < 0x20 || *p > 0x7e || *p == '"' || *p == '\\')
				*p = '?';
	}
	return status;
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decode n bytes of s into out (room for n + 1), NUL-terminated. plus:
 * '+' is a space (query strings). Returns the decoded length, or -1 on a
 * broken escape. */
static ssize_t
unescape(const char *s, size_t n, char *out, int plus)
{
	size_t i, k = 0;
	int hi, lo;

	for (i = 0; i < n; i++) {
		if (s[i] == '%') {
			if (i + 2 >= n)
				return -1;
			hi = hexval((unsigned char)s[i + 1]);
			lo = hexval((unsigned char)s[i + 2]);
			if (hi < 0 || lo < 0)
				return -1;
			out[k++] = (char)(hi << 4 | lo);
			i += 2;
		} else if (plus && s[i] == '+') {
			out[k++] = ' ';
		} else {
			out[k++] = s[i];
		}
	}
	out[k] = '\0';
	return (ssize_t)k;
}

/* strconv.ParseBool */
static int
parse_bool(const char *s, int *v)
{
	static const char *const yes[] = { "1", "t", "T", "TRUE", "true",
	    "True" };
	static const char *const no[] = { "0", "f", "F", "FALSE", "false",
	    "False" };
	size_t i;

	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcmp(s, yes[i]) == 0) {
			*v = 1;
			return 0;
		}
		if (strcmp(s, no[i]) == 0) {
			*v = 0;
			return 0;
		}
	}
	return -1;
}

/* logcache_v1.EnvelopeType by name or number: the kind bit, 0 for ANY,
 * -1 when unknown. */
static long
parse_type(const char *s)
{
	static const struct {
		const char *name;
		unsigned bit;
	} types[] = {
		{ "ANY", 0 }, { "LOG", CQ_KIND_BIT(4) },
		{ "COUNTER", CQ_KIND_BIT(5) }, { "GAUGE", CQ_KIND_BIT(6) },
		{ "TIMER", CQ_KIND_BIT(7) }, { "EVENT", CQ_KIND_BIT(10) },
	};
	size_t i;
	int64_t n;

	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (strcmp(s, types[i].name) == 0)
			return (long)types[i].bit;
	if (parse_i64(s, &n) == 0 && n >= 0 &&
	    (size_t)n < sizeof(types) / sizeof(types[0]))
		return (long)types[n].bit;
	return -1;
}

/* A decimal int64 with no sign but '-' and no spaces, as ParseInt. */
static int
parse_int(const char *s, int64_t *v)
{
	if (*s == '+' || *s == ' ')
		return -1;
	return parse_i64(s, v);
}

/* One read parameter (key and value decoded). 0, or an HTTP status. */
static int
read_param(struct cq *q, const char *k, char *v, unsigned *seen, char *err,
    size_t errlen)
{
	unsigned bit = 0;
	long t;

	if (strcmp(k, "start_time") == 0)
		bit = SEEN_START;
	else if (strcmp(k, "end_time") == 0)
		bit = SEEN_END;
	else if (strcmp(k, "limit") == 0)
		bit = SEEN_LIMIT;
	else if (strcmp(k, "descending") == 0)
		bit = SEEN_DESC;
	else if (strcmp(k, "name_filter") == 0)
		bit = SEEN_FILTER;
	else if (strcmp(k, "envelope_types") != 0)
		return 0;	/* unknown parameters are ignored */
	if (bit != 0 && (*seen & bit))
		return fail(err, errlen, 400, "%s given twice", k);
	*seen |= bit;
	switch (bit) {
	case SEEN_START:
		if (parse_int(v, &q->start_time) == -1)
			return fail(err, errlen, 400, "start_time: not an "
			    "integer: %.40s", v);
		return 0;
	case SEEN_END:
		if (parse_int(v, &q->end_time) == -1)
			return fail(err, errlen, 400, "end_time: not an "
			    "integer: %.40s", v);
		return 0;
	case SEEN_LIMIT:
		if (parse_int(v, &q->limit) == -1)
			return fail(err, errlen, 400, "limit: not an "
			    "integer: %.40s", v);
		if (q->limit > CQ_LIMIT_MAX)
			return fail(err, errlen, 400, "Limit (%" PRId64
			    ") must be 1000 or less", q->limit);
		if (q->limit < 0)
			return fail(err, errlen, 400, "Limit (%" PRId64
			    ") must be greater than zero", q->limit);
		return 0;
	case SEEN_DESC:
		if (parse_bool(v, &q->descending) == -1)
			return fail(err, errlen, 400, "descending: not a "
			    "bool: %.40s", v);
		return 0;
	case SEEN_FILTER:
		if (strlen(v) > CQ_FILTER_MAX)
			return fail(err, errlen, 400, "name_filter: longer "
			    "than %d bytes", CQ_FILTER_MAX);
		q->name_filter = v[0] != '\0' ? v : NULL;
		return 0;
	default:
		if ((t = parse_type(v)) == -1)
			return fail(err, errlen, 400, "envelope_types: unknown "
			    "type: %.40s", v);
		q->kinds |= (unsigned)t;
		return 0;
	}
}

/* recentlogs' limit, as the traffic controller reads it: a bad or
 * negative one means every log. */
static void
recent_param(struct cq *q, const char *k, const char *v)
{
	int64_t n;

	if (strcmp(k, "limit") != 0)
		return;
	q->limit = parse_int(v, &n) == 0 && n >= 0 ? n : -1;
}

/* Walk the query (n bytes at s); decoded keys and values go to out, a
 * scratch area of n + 2 bytes that read parameters may point into. */
static int
parse_query(struct cq *q, const char *s, size_t n, char *out, char *err,
    size_t errlen)
{
	const char *end = s + n, *amp, *eq;
	unsigned seen = 0;
	ssize_t kl, vl;
	char *k, *v;
	int rc;

	while (s < end) {
		amp = memchr(s, '&', (size_t)(end - s));
		if (amp == NULL)
			amp = end;
		if (amp == s) {
			s++;
			continue;
		}
		eq = memchr(s, '=', (size_t)(amp - s));
		if (eq == NULL)
			eq = amp;
		k = out;
		if ((kl = unescape(s, (size_t)(eq - s), k, 1)) == -1)
			return fail(err, errlen, 400, "invalid escape in the "
			    "query");
		v = k + kl + 1;
		vl = eq < amp ? unescape(eq + 1, (size_t)(amp - eq - 1), v, 1) :
		    unescape("", 0, v, 1);
		if (vl == -1)
			return fail(err, errlen, 400, "invalid escape in the "
			    "query");
		out = v + vl + 1;
		/* A NUL inside a key or value would cut it short: refuse. */
		if (strlen(k) != (size_t)kl || strlen(v) != (size_t)vl)
			return fail(err, errlen, 400, "NUL in the query");
		if (q->route == CQ_READ) {
			if ((rc = read_param(q, k, v, &seen, err, errlen)) != 0)
				return rc;
		} else if (q->route == CQ_RECENT) {
			recent_param(q, k, v);
		}
		s = amp + 1;
	}
	if (q->route == CQ_READ) {
		if (q->limit == 0)
			q->limit = CQ_LIMIT_DEFAULT;
		if (q->end_time != 0 && q->start_time > q->end_time)
			return fail(err, errlen, 400, "StartTime (%" PRId64
			    ") must be before EndTime (%" PRId64 ")",
			    q->start_time, q->end_time);
	}
	return 0;
}

static int
has_prefix(const char *s, size_t n, const char *p)
{
	size_t pl = strlen(p);

	return n >= pl && memcmp(s, p, pl) == 0;
}

/* The route of a raw path (n bytes); *ids and *idn: the raw id in it. */
static enum cq_route
route_of(const char *p, size_t n, const char **ids, size_t *idn)
{
	static const char apps[] = "/apps/", read[] = "/api/v1/read/";
	const char *slash;
	size_t rest;

	if (n == 12 && memcmp(p, "/api/v1/meta", 12) == 0)
		return CQ_META;
	if (n == 12 && memcmp(p, "/api/v1/info", 12) == 0)
		return CQ_INFO;
	if (has_prefix(p, n, read) && n > sizeof(read) - 1) {
		*ids = p + sizeof(read) - 1;
		*idn = n - (sizeof(read) - 1);
		return CQ_READ;
	}
	if (!has_prefix(p, n, apps))
		return CQ_NONE;
	*ids = p + sizeof(apps) - 1;
	rest = n - (sizeof(apps) - 1);
	slash = memchr(*ids, '/', rest);
	if (slash == NULL || slash == *ids)
		return CQ_NONE;
	*idn = (size_t)(slash - *ids);
	rest -= *idn;
	if (rest == 11 && memcmp(slash, "/recentlogs", 11) == 0)
		return CQ_RECENT;
	if (rest == 17 && memcmp(slash, "/containermetrics", 17) == 0)
		return CQ_METRICS;
	return CQ_NONE;
}

int
cq_parse(const char *target, struct cq *q, char *err, size_t errlen)
{
	size_t n = strlen(target), pn;
	const char *qm, *ids = NULL;
	size_t idn = 0;
	ssize_t dl;
	enum cq_route r;

	memset(q, 0, sizeof(*q));
	if (errlen > 0)
		err[0] = '\0';
	if (n > CQ_URI_MAX)
		return fail(err, errlen, 414, "request target longer than %d "
		    "bytes", CQ_URI_MAX);
	qm = memchr(target, '?', n);
	pn = qm != NULL ? (size_t)(qm - target) : n;
	r = route_of(target, pn, &ids, &idn);
	if (r == CQ_NONE)
		return fail(err, errlen, 404, "404 page not found");
	/* The id, then the query's keys and values, each decoded and
	 * NUL-terminated: a parameter of L bytes takes at most L + 2, and
	 * parameters are at least two bytes apart, so 1.5 n + 3 is room. */
	q->buf = malloc(2 * n + 4);
	if (q->buf == NULL) {
		errno = ENOMEM;
		return -1;
	}
	q->route = r;
	q->limit = r == CQ_RECENT ? -1 : 0;
	if (ids != NULL) {
		q->id = q->buf;
		if ((dl = unescape(ids, idn, q->id, 0)) == -1)
			return fail(err, errlen, 400, "invalid escape in the "
			    "path");
		if (dl == 0)
			return fail(err, errlen, 404, "404 page not found");
		q->idlen = (size_t)dl;
	}
	if (r != CQ_RECENT && r != CQ_READ)
		return 0;
	return parse_query(q, qm != NULL ? qm + 1 : "", qm != NULL ?
	    n - pn - 1 : 0, q->buf + (q->id != NULL ? q->idlen + 1 : 0), err,
	    errlen);
}

void
cq_release(struct cq *q)
{
	free(q->buf);
	q->buf = NULL;
	q->id = NULL;
	q->name_filter = NULL;
}
