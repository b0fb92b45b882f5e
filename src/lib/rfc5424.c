/* rfc5424: envelopes as the syslog agent's drain messages. The rules (and
 * their odd corners) follow agent-release v7.1.0 syslog/rfc5424.go and the
 * go-loggregator v9 rfc5424 marshaller it uses; see rfc5424.h. */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "fmtnum.h"
#include "rfc5424.h"

#define HOST_PART_MAX 63	/* each of org, space, app in the hostname */
#define HOSTNAME_MAX 255	/* RFC 5424 field limits, cut as Go cuts */
#define APPNAME_MAX 48
#define PROCID_MAX 128
#define SORT_STACK 256		/* tags sorted on the stack up to this many */

enum rfc5424_drain_type
rfc5424_drain_type_parse(const char *value)
{
	if (value != NULL && strcmp(value, "metrics") == 0)
		return RFC5424_DRAIN_METRICS;
	if (value != NULL && strcmp(value, "all") == 0)
		return RFC5424_DRAIN_ALL;
	return RFC5424_DRAIN_LOGS;	/* Go's default branch */
}

int
rfc5424_drain_carries(enum rfc5424_drain_type t,
    const Loggregator__V2__Envelope *e)
{
	int log = e->message_case == LOGGREGATOR__V2__ENVELOPE__MESSAGE_LOG;
	int metric =
	    e->message_case == LOGGREGATOR__V2__ENVELOPE__MESSAGE_COUNTER ||
	    e->message_case == LOGGREGATOR__V2__ENVELOPE__MESSAGE_GAUGE;

	switch (t) {
	case RFC5424_DRAIN_AGGREGATE:
		return 1;
	case RFC5424_DRAIN_METRICS:
		return metric;
	case RFC5424_DRAIN_ALL:
		return log || metric;
	default:
		return log;
	}
}

/* Go's regexp \s: ASCII only, and without \v. */
static int
is_go_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r';
}

static int
is_host_char(unsigned char c)
{
	return c == '-' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
	    (c >= 'A' && c <= 'Z');
}

static int
is_graph(unsigned char c)
{
	return c >= 33 && c <= 126;
}

/*
 * The agent's sanitize: runs of \s become one '-', bytes that keep() does
 * not accept go (each byte of a multibyte or invalid sequence fails it, as
 * Go's regexp removes the whole rune), trailing '-' go. The first cap
 * bytes of the result land in dst; returns the full length, which callers
 * need (the PROCID cut depends on it). Done in one pass with no copy of the
 * input: the result so far is only shortened by trailing dashes.
 */
static size_t
sanitize(const char *s, int (*keep)(unsigned char), char *dst, size_t cap)
{
	size_t n = 0, kept = 0;	/* length with dashes; up to last non-dash */
	int in_space = 0;
	unsigned char c;

	for (; (c = (unsigned char)*s) != '\0'; s++) {
		if (is_go_space(c)) {
			if (in_space)
				continue;
			in_space = 1;
			c = '-';
		} else {
			in_space = 0;
			if (!keep(c))
				continue;
		}
		if (n < cap)
			dst[n] = (char)c;
		n++;
		if (c != '-')
			kept = n;
	}
	return kept;
}

/* The last value of tag key (Go's map keeps the last duplicate), or NULL. */
static const char *
tag_get(const Loggregator__V2__Envelope *e, const char *key)
{
	const char *v = NULL;
	size_t i;

	for (i = 0; i < e->n_tags; i++)
		if (e->tags[i]->key != NULL && strcmp(e->tags[i]->key, key) == 0)
			v = e->tags[i]->value ? e->tags[i]->value : "";
	return v;
}

/* One hostname part: sanitized, then cut to 63 (after the dash strip, so
 * a cut may end in '-', as in Go). */
static int
put_host_part(struct buf *b, const char *s)
{
	char part[HOST_PART_MAX];
	size_t n = sanitize(s ? s : "", is_host_char, part, sizeof(part));

	return buf_append(b, part, n < sizeof(part) ? n : sizeof(part));
}

/* HOSTNAME: org.space.app when any of the three tags exists, else the
 * binding's; "-" when empty; cut to 255. */
static int
put_hostname(struct buf *b, const Loggregator__V2__Envelope *e,
    const char *deflt)
{
	const char *org = tag_get(e, "organization_name");
	const char *space = tag_get(e, "space_name");
	const char *app = tag_get(e, "app_name");
	size_t n;

	if (org != NULL || space != NULL || app != NULL) {
		/* At most 63 * 3 + 2 bytes: never past 255. */
		if (put_host_part(b, org) == -1 || buf_putc(b, '.') == -1 ||
		    put_host_part(b, space) == -1 || buf_putc(b, '.') == -1 ||
		    put_host_part(b, app) == -1)
			return -1;
		return 0;
	}
	if (deflt == NULL || *deflt == '\0')
		return buf_putc(b, '-');
	n = strlen(deflt);
	return buf_append(b, deflt, n > HOSTNAME_MAX ? HOSTNAME_MAX : n);
}

/* APP-NAME: the source id, "-" when empty, cut to 48. */
static int
put_appname(struct buf *b, const char *id)
{
	size_t n = id ? strlen(id) : 0;

	if (n == 0)
		return buf_putc(b, '-');
	return buf_append(b, id, n > APPNAME_MAX ? APPNAME_MAX : n);
}

/* Append s and cut what was appended since start to max bytes. */
static int
put_cut(struct buf *b, size_t start, size_t max, const char *s, size_t n)
{
	if (buf_append(b, s, n) == -1)
		return -1;
	if (b->len - start > max)
		b->len = start + max;
	return 0;
}

/*
 * PROCID of a log: [SOURCE_TYPE/INSTANCE] or [SOURCE_TYPE], the type
 * sanitized and upper-cased, the instance shortened so the whole fits 128
 * (Go's generateProcessID), then the field cut to 128 as the marshaller
 * does. A type over 125 bytes would make Go slice out of range (a panic);
 * here the instance is then dropped and the cut to 128 applies.
 */
static int
put_log_procid(struct buf *b, const Loggregator__V2__Envelope *e)
{
	char type[PROCID_MAX];
	const char *st = tag_get(e, "source_type");
	const char *inst = e->instance_id ? e->instance_id : "";
	size_t tn = sanitize(st ? st : "", is_graph, type, sizeof(type));
	size_t in = strlen(inst), start = b->len, i;

	for (i = 0; i < tn && i < sizeof(type); i++)
		if (type[i] >= 'a' && type[i] <= 'z')
			type[i] = (char)(type[i] - 'a' + 'A');
	if (buf_putc(b, '[') == -1 ||
	    put_cut(b, start, PROCID_MAX, type,
	    tn < sizeof(type) ? tn : sizeof(type)) == -1)
		return -1;
	if (in > 0) {
		if (tn + in + 3 > PROCID_MAX)
			in = tn + 3 >= PROCID_MAX ? 0 : PROCID_MAX - tn - 3;
		if (put_cut(b, start, PROCID_MAX, "/", 1) == -1 ||
		    put_cut(b, start, PROCID_MAX, inst, in) == -1)
			return -1;
	}
	return put_cut(b, start, PROCID_MAX, "]", 1);
}

/* PROCID of a metric: [INSTANCE], cut to 128 (which can cut the ']'). */
static int
put_metric_procid(struct buf *b, const Loggregator__V2__Envelope *e)
{
	const char *inst = e->instance_id ? e->instance_id : "";
	size_t start = b->len;

	if (buf_putc(b, '[') == -1 ||
	    put_cut(b, start, PROCID_MAX, inst, strlen(inst)) == -1)
		return -1;
	return put_cut(b, start, PROCID_MAX, "]", 1);
}

/* Go's isPrintableUsASCII over bytes (a byte >= 0x80 starts a rune that
 * fails too). */
static int
printusascii(const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!is_graph((unsigned char)p[i]))
			return 0;
	return 1;
}

/* Go's utf8.ValidString: no overlongs, surrogates or values past
 * U+10FFFF. */
static int
utf8_valid(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	unsigned char lo, hi;
	int k, i;

	while (*p != '\0') {
		if (*p < 0x80) {
			p++;
			continue;
		}
		lo = 0x80;
		hi = 0xBF;
		if (*p >= 0xC2 && *p <= 0xDF)
			k = 1;
		else if (*p >= 0xE0 && *p <= 0xEF) {
			k = 2;
			if (*p == 0xE0)
				lo = 0xA0;
			else if (*p == 0xED)
				hi = 0x9F;
		} else if (*p >= 0xF0 && *p <= 0xF4) {
			k = 3;
			if (*p == 0xF0)
				lo = 0x90;
			else if (*p == 0xF4)
				hi = 0x8F;
		} else
			return 0;
		for (i = 1; i <= k; i++) {
			if (p[i] < lo || p[i] > hi)
				return 0;
			lo = 0x80;
			hi = 0xBF;
		}
		p += k + 1;
	}
	return 1;
}

/* An SD-NAME as the marshaller checks it (no length limit: go-loggregator
 * allows long names). */
static int
sd_name_valid(const char *s)
{
	for (; *s != '\0'; s++)
		if (!is_graph((unsigned char)*s) || *s == '=' || *s == ']' ||
		    *s == '"')
			return 0;
	return 1;
}

/* ` name="value"` with \, " and ] escaped. The value must be UTF-8. */
static int
put_sd_param(struct buf *b, const char *name, const char *v)
{
	const char *p;

	if (v == NULL)
		v = "";
	if (buf_putc(b, ' ') == -1 || buf_puts(b, name) == -1 ||
	    buf_append(b, "=\"", 2) == -1)
		return -1;
	for (p = v; *p != '\0'; p++) {
		if ((*p == '\\' || *p == '"' || *p == ']') &&
		    buf_putc(b, '\\') == -1)
			return -1;
		if (buf_putc(b, *p) == -1)
			return -1;
	}
	return buf_putc(b, '"');
}

/* Order of tags a and b by key as Go's sort.Strings, duplicates by wire
 * position so the last one can win. */
static int
tag_before(const Loggregator__V2__Envelope *e, size_t a, size_t b)
{
	int c = strcmp(e->tags[a]->key ? e->tags[a]->key : "",
	    e->tags[b]->key ? e->tags[b]->key : "");

	return c < 0 || (c == 0 && a < b);
}

static int
tag_same_key(const Loggregator__V2__Envelope *e, size_t a, size_t b)
{
	return strcmp(e->tags[a]->key ? e->tags[a]->key : "",
	    e->tags[b]->key ? e->tags[b]->key : "") == 0;
}

/* The tag to write after tag prev (SIZE_MAX: the first), or SIZE_MAX when
 * none is left: the smallest key above prev's, its last duplicate. O(n)
 * per call, so only for envelopes with more tags than SORT_STACK. */
static size_t
tag_next_slow(const Loggregator__V2__Envelope *e, size_t prev)
{
	size_t best = SIZE_MAX, i;

	for (i = 0; i < e->n_tags; i++) {
		if (prev != SIZE_MAX && !tag_before(e, prev, i))
			continue;
		if (prev != SIZE_MAX && tag_same_key(e, prev, i))
			continue;
		if (best == SIZE_MAX || tag_before(e, i, best) ||
		    tag_same_key(e, i, best))
			best = i;
	}
	return best;
}

/*
 * Check the tags as the marshaller would (names SD-NAMEs, values UTF-8)
 * and write the tags@47450 element, keys sorted, the last duplicate
 * winning as in Go's map. Nothing when there are no tags. -1 with errno
 * EINVAL (why set) for a tag Go refuses.
 */
static int
put_tags_sd(struct buf *b, const Loggregator__V2__Envelope *e,
    const char **why)
{
	uint16_t idx[SORT_STACK];
	size_t n = e->n_tags, i, j, t;
	int fast = n <= SORT_STACK;

	if (n == 0)
		return 0;
	if (fast) {
		/* Insertion sort: stable, and tag lists are short. */
		for (i = 0; i < n; i++) {
			for (j = i; j > 0 && tag_before(e, i, idx[j - 1]); j--)
				idx[j] = idx[j - 1];
			idx[j] = (uint16_t)i;
		}
	}
	if (buf_append(b, "[tags@47450", 11) == -1)
		return -1;
	t = fast ? 0 : tag_next_slow(e, SIZE_MAX);
	for (i = 0; fast ? i < n : t != SIZE_MAX; i++) {
		const Loggregator__V2__Envelope__TagsEntry *te;

		if (fast) {
			if (i + 1 < n && tag_same_key(e, idx[i], idx[i + 1]))
				continue;	/* a later duplicate wins */
			t = idx[i];
		}
		te = e->tags[t];
		if (!sd_name_valid(te->key ? te->key : "")) {
			*why = "StructuredData/Name is invalid";
			errno = EINVAL;
			return -1;
		}
		if (!utf8_valid(te->value ? te->value : "")) {
			*why = "StructuredData/Value is invalid";
			errno = EINVAL;
			return -1;
		}
		if (put_sd_param(b, te->key ? te->key : "", te->value) == -1)
			return -1;
		if (!fast)
			t = tag_next_slow(e, t);
	}
	return buf_putc(b, ']');
}

/* Days since 1970-01-01 to a civil date (proleptic Gregorian), after
 * Howard Hinnant's days_from_civil inverse. */
static void
civil(int64_t days, int64_t *y, unsigned *m, unsigned *d)
{
	int64_t z = days + 719468, era, yy;
	unsigned doe, yoe, doy, mp;

	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = (unsigned)(z - era * 146097);
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	yy = (int64_t)yoe + era * 400;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = yy + (*m <= 2);
}

/* Go's Format("2006-01-02T15:04:05.999999-07:00") in UTC: microseconds
 * truncated, trailing zeros (and a bare dot) left out, +00:00. */
static int
put_timestamp(struct buf *b, int64_t ns)
{
	int64_t sec = ns / 1000000000, nsec = ns % 1000000000, y;
	int64_t days, sod;
	unsigned mo, d, us, w;
	char frac[8];

	if (nsec < 0) {
		nsec += 1000000000;
		sec--;
	}
	days = sec / 86400;
	sod = sec % 86400;
	if (sod < 0) {
		sod += 86400;
		days--;
	}
	civil(days, &y, &mo, &d);
	if (buf_printf(b, "%04" PRId64 "-%02u-%02uT%02u:%02u:%02u", y, mo, d,
	    (unsigned)(sod / 3600), (unsigned)(sod / 60 % 60),
	    (unsigned)(sod % 60)) == -1)
		return -1;
	us = (unsigned)(nsec / 1000);
	if (us > 0) {
		snprintf(frac, sizeof(frac), ".%06u", us);
		for (w = 7; frac[w - 1] == '0'; w--)
			;
		if (buf_append(b, frac, w) == -1)
			return -1;
	}
	return buf_append(b, "+00:00", 6);
}

/*
 * "<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID - ", checking the three
 * fields as the marshaller does after cutting them (so a bad byte past the
 * cut is no error). -1 with errno EINVAL and why for a refused field.
 */
static int
put_header(struct buf *b, const Loggregator__V2__Envelope *e,
    const struct rfc5424_opts *o, int pri, int is_log, const char **why)
{
	size_t f;

	if (buf_printf(b, "<%d>1 ", pri) == -1 ||
	    put_timestamp(b, e->timestamp) == -1 || buf_putc(b, ' ') == -1)
		return -1;
	f = b->len;
	if (put_hostname(b, e, o->hostname) == -1)
		return -1;
	if (!printusascii(b->data + f, b->len - f)) {
		*why = "Hostname is invalid";
		errno = EINVAL;
		return -1;
	}
	if (buf_putc(b, ' ') == -1)
		return -1;
	f = b->len;
	if (put_appname(b, e->source_id) == -1)
		return -1;
	if (!printusascii(b->data + f, b->len - f)) {
		*why = "AppName is invalid";
		errno = EINVAL;
		return -1;
	}
	if (buf_putc(b, ' ') == -1)
		return -1;
	f = b->len;
	if ((is_log ? put_log_procid(b, e) : put_metric_procid(b, e)) == -1)
		return -1;
	if (!printusascii(b->data + f, b->len - f)) {
		*why = "ProcessID is invalid";
		errno = EINVAL;
		return -1;
	}
	return buf_append(b, " - ", 3);
}

/* The payload with NULs removed and a '\n' added when it does not end in
 * one (after the removal, as Go checks the cleaned bytes). */
static int
put_payload(struct buf *b, const ProtobufCBinaryData *p)
{
	size_t i, start = b->len;

	for (i = 0; i < p->len; i++)
		if (p->data[i] != 0 && buf_putc(b, (char)p->data[i]) == -1)
			return -1;
	if (b->len == start || b->data[b->len - 1] != '\n')
		return buf_putc(b, '\n');
	return 0;
}

static int
put_log(struct buf *b, const Loggregator__V2__Envelope *e,
    const struct rfc5424_opts *o, const char **why)
{
	const Loggregator__V2__Log *l = e->log;
	static const ProtobufCBinaryData none = { 0, NULL };
	int pri = -1;		/* Go's genPriority for an unknown type */
	size_t sd;

	if (l == NULL || l->type == LOGGREGATOR__V2__LOG__TYPE__OUT)
		pri = 14;
	else if (l->type == LOGGREGATOR__V2__LOG__TYPE__ERR)
		pri = 11;
	if (put_header(b, e, o, pri, 1, why) == -1)
		return -1;
	sd = b->len;
	if (!o->omit_metadata && put_tags_sd(b, e, why) == -1)
		return -1;
	if (b->len == sd && buf_putc(b, '-') == -1)
		return -1;
	if (buf_putc(b, ' ') == -1)
		return -1;
	return put_payload(b, l ? &l->payload : &none);
}

/* The part of a metric message that differs by kind: its SD element. For
 * a gauge, g is the entry to write. */
static int
put_metric_sd(struct buf *b, const Loggregator__V2__Envelope *e,
    const Loggregator__V2__Gauge__MetricsEntry *g, const char **why)
{
	char num[FMT_DOUBLE_MAX];
	const char *v1 = NULL, *v2 = NULL, *v3 = NULL;
	int rc;

	switch (e->message_case) {
	case LOGGREGATOR__V2__ENVELOPE__MESSAGE_COUNTER:
		rc = buf_puts(b, "[counter@47450") == -1 ||
		    put_sd_param(b, "name", e->counter->name) == -1 ||
		    buf_printf(b, " total=\"%" PRIu64 "\" delta=\"%" PRIu64 "\"",
		    e->counter->total, e->counter->delta) == -1;
		v1 = e->counter->name;
		break;
	case LOGGREGATOR__V2__ENVELOPE__MESSAGE_GAUGE:
		v1 = g->key;
		v2 = g->value ? g->value->unit : NULL;
		if (fmt_double(num, sizeof(num), g->value ? g->value->value : 0,
		    FMT_GO_G) == -1)
			return -1;
		rc = buf_puts(b, "[gauge@47450") == -1 ||
		    put_sd_param(b, "name", v1) == -1 ||
		    put_sd_param(b, "value", num) == -1 ||
		    put_sd_param(b, "unit", v2) == -1;
		break;
	case LOGGREGATOR__V2__ENVELOPE__MESSAGE_TIMER:
		v1 = e->timer->name;
		rc = buf_puts(b, "[timer@47450") == -1 ||
		    put_sd_param(b, "name", v1) == -1 ||
		    buf_printf(b, " start=\"%" PRId64 "\" stop=\"%" PRId64 "\"",
		    e->timer->start, e->timer->stop) == -1;
		break;
	default:	/* event */
		v1 = e->event->title;
		v3 = e->event->body;
		rc = buf_puts(b, "[event@47450") == -1 ||
		    put_sd_param(b, "title", v1) == -1 ||
		    put_sd_param(b, "body", v3) == -1;
		break;
	}
	if (rc || buf_putc(b, ']') == -1)
		return -1;
	if (!utf8_valid(v1 ? v1 : "") || !utf8_valid(v2 ? v2 : "") ||
	    !utf8_valid(v3 ? v3 : "")) {
		*why = "StructuredData/Value is invalid";
		errno = EINVAL;
		return -1;
	}
	return 0;
}

/* A metric message: PRI 14, PROCID [INSTANCE], the metric element, the
 * tags element, then " \n" where a log has its payload. */
static int
put_metric(struct buf *b, const Loggregator__V2__Envelope *e,
    const Loggregator__V2__Gauge__MetricsEntry *g,
    const struct rfc5424_opts *o, const char **why)
{
	if (put_header(b, e, o, 14, 0, why) == -1 ||
	    put_metric_sd(b, e, g, why) == -1)
		return -1;
	if (!o->omit_metadata && put_tags_sd(b, e, why) == -1)
		return -1;
	return buf_append(b, " \n", 2);
}

/* Turn the message at out[start..] into "<len> <msg>" in place. */
static int
frame_in_place(struct buf *b, size_t start)
{
	char pre[24];
	size_t n = b->len - start;
	int k = snprintf(pre, sizeof(pre), "%zu ", n);

	if (buf_reserve(b, (size_t)k) == -1)
		return -1;
	memmove(b->data + start + k, b->data + start, n);
	memcpy(b->data + start, pre, (size_t)k);
	b->len += (size_t)k;
	return 0;
}

/* One message of e (g for a gauge entry) appended, framed if asked. */
static int
put_one(struct buf *b, const Loggregator__V2__Envelope *e,
    const Loggregator__V2__Gauge__MetricsEntry *g,
    const struct rfc5424_opts *o, const char **why)
{
	size_t start = b->len;
	int rc;

	if (e->message_case == LOGGREGATOR__V2__ENVELOPE__MESSAGE_LOG)
		rc = put_log(b, e, o, why);
	else
		rc = put_metric(b, e, g, o, why);
	if (rc == -1)
		return -1;
	return o->framed ? frame_in_place(b, start) : 0;
}

/* 1 when a later gauge entry has the same name: Go's map keeps that one. */
static int
gauge_shadowed(const Loggregator__V2__Gauge *g, size_t i)
{
	const char *k = g->metrics[i]->key ? g->metrics[i]->key : "";
	size_t j;

	for (j = i + 1; j < g->n_metrics; j++)
		if (strcmp(k, g->metrics[j]->key ? g->metrics[j]->key : "")
		    == 0)
			return 1;
	return 0;
}

int
rfc5424_format(const Loggregator__V2__Envelope *e,
    const struct rfc5424_opts *o, struct buf *out, const char **why)
{
	size_t start = out->len, i;
	const char *dummy;
	int n = 0;

	if (why == NULL)
		why = &dummy;
	*why = NULL;
	switch (e->message_case) {
	case LOGGREGATOR__V2__ENVELOPE__MESSAGE_LOG:
	case LOGGREGATOR__V2__ENVELOPE__MESSAGE_COUNTER:
	case LOGGREGATOR__V2__ENVELOPE__MESSAGE_TIMER:
	case LOGGREGATOR__V2__ENVELOPE__MESSAGE_EVENT:
		if ((e->message_case == LOGGREGATOR__V2__ENVELOPE__MESSAGE_COUNTER &&
		    e->counter == NULL) ||
		    (e->message_case == LOGGREGATOR__V2__ENVELOPE__MESSAGE_TIMER &&
		    e->timer == NULL) ||
		    (e->message_case == LOGGREGATOR__V2__ENVELOPE__MESSAGE_EVENT &&
		    e->event == NULL))
			return 0;	/* a oneof case with no message: unset */
		if (put_one(out, e, NULL, o, why) == -1)
			goto fail;
		return 1;
	case LOGGREGATOR__V2__ENVELOPE__MESSAGE_GAUGE:
		for (i = 0; e->gauge != NULL && i < e->gauge->n_metrics; i++) {
			if (gauge_shadowed(e->gauge, i))
				continue;
			if (put_one(out, e, e->gauge->metrics[i], o, why) == -1)
				goto fail;
			n++;
		}
		return n;
	default:
		return 0;
	}
fail:
	out->len = start;	/* Go writes none of a failed envelope */
	return -1;
}

int
rfc5424_frame(struct buf *out, const void *msg, size_t n)
{
	size_t start = out->len;

	if (buf_printf(out, "%zu ", n) == -1 ||
	    buf_append(out, msg, n) == -1) {
		out->len = start;
		return -1;
	}
	return 0;
}

int
rfc5424_unframe(const char *p, size_t len, size_t *off, const char **msg,
    size_t *n)
{
	size_t i = *off, v = 0, digits = 0;

	if (i >= len)
		return 0;
	for (; i < len && p[i] >= '0' && p[i] <= '9'; i++, digits++) {
		if (v > (SIZE_MAX - 9) / 10)
			goto bad;
		v = v * 10 + (size_t)(p[i] - '0');
	}
	if (digits == 0 || i >= len || p[i] != ' ' || len - i - 1 < v)
		goto bad;
	*msg = p + i + 1;
	*n = v;
	*off = i + 1 + v;
	return 1;
bad:
	errno = EBADMSG;
	return -1;
}
