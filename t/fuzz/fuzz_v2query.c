/* fuzz_v2query: a request's query string (the bytes after '?') into
 * lgr-ws's query parser and, as GET /v2/read reads it, the gateway's
 * selectors (SPEC.md §7). Checked:
 *   - no more pairs than '&'-separated pieces; with no '%', ';' or NUL in
 *     the input nothing is an error and each pair is its piece, split at
 *     the first '=', '+' a space;
 *   - the pairs, percent-encoded again, parse to the same pairs;
 *   - ?limit gives 0 or more, or the default;
 *   - a typed query makes exactly the selectors a plain model of
 *     selector_builder makes (per source id: log, counters, gauges with
 *     their names split on ',', timer, event), or fails with exactly
 *     HP_MAX_SELECTORS of them when the model makes more;
 *   - those selectors, sent upstream as an EgressBatchRequest, decode to
 *     the same filter. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/lgr-ws/filter.c"
#include "../../src/lgr-ws/httpparse.c"

#define LIMIT_DEFAULT 1000

static int
same_str(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

static int
same_filter(const struct sub_filter *a, const struct sub_filter *b)
{
	size_t i, j;

	if (!same_str(a->shard_id, b->shard_id) || a->nsel != b->nsel ||
	    a->preferred_tags != b->preferred_tags)
		return 0;
	for (i = 0; i < a->nsel; i++) {
		const struct selector *x = &a->sel[i], *y = &b->sel[i];

		if (!same_str(x->source_id, y->source_id) ||
		    x->kind != y->kind ||
		    !same_str(x->counter_name, y->counter_name) ||
		    x->ngauge_names != y->ngauge_names)
			return 0;
		for (j = 0; j < x->ngauge_names; j++)
			if (strcmp(x->gauge_names[j], y->gauge_names[j]) != 0)
				return 0;
	}
	return 1;
}

/* s percent-encoded as a query component: unreserved bytes as they are,
 * a space as '+', everything else %XX. */
static void
encode(struct buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *p;

	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || strchr("-._~", *p) != NULL)
			buf_putc(b, (char)*p);
		else if (*p == ' ')
			buf_putc(b, '+');
		else
			buf_printf(b, "%%%c%c", hex[*p >> 4], hex[*p & 15]);
	}
}

/* With no '%', ';' or NUL the pairs are the pieces between '&'s. */
static void
check_plain(const struct hp_query *q, const uint8_t *data, size_t size)
{
	const char *s = (const char *)data, *end = s + size, *amp, *eq;
	size_t k = 0, i;

	if (memchr(s, '%', size) || memchr(s, ';', size) ||
	    memchr(s, '\0', size))
		return;
	if (q->err)
		abort();
	for (; s < end; s = amp + 1) {
		amp = memchr(s, '&', (size_t)(end - s));
		if (amp == NULL)
			amp = end;
		if (amp == s)
			continue;
		if (k >= q->n)
			abort();
		eq = memchr(s, '=', (size_t)(amp - s));
		if (eq == NULL)
			eq = amp;
		if (strlen(q->p[k].key) != (size_t)(eq - s) ||
		    strlen(q->p[k].val) != (size_t)(amp - eq - (eq < amp)))
			abort();
		for (i = 0; i < (size_t)(eq - s); i++)
			if (q->p[k].key[i] != (s[i] == '+' ? ' ' : s[i]))
				abort();
		for (i = 0; eq < amp && eq + 1 + i < amp; i++)
			if (q->p[k].val[i] != (eq[1 + i] == '+' ? ' ' :
			    eq[1 + i]))
				abort();
		k++;
	}
	if (k != q->n)
		abort();
}

/* The pairs encoded again parse to the same pairs, without error. */
static void
check_reencode(const struct hp_query *q)
{
	struct hp_query r = { NULL, 0, 0 };
	struct buf b;
	size_t i;

	if (buf_init(&b, 256, 1 << 24) == -1)
		abort();
	for (i = 0; i < q->n; i++) {
		if (i > 0)
			buf_putc(&b, '&');
		encode(&b, q->p[i].key);
		buf_putc(&b, '=');
		encode(&b, q->p[i].val);
	}
	if (hp_query_add(&r, b.data ? b.data : "", b.len) == -1 || r.err)
		abort();
	/* An empty key with an empty value is "=", still a pair. */
	if (r.n != q->n)
		abort();
	for (i = 0; i < q->n; i++)
		if (strcmp(r.p[i].key, q->p[i].key) != 0 ||
		    strcmp(r.p[i].val, q->p[i].val) != 0)
			abort();
	hp_query_free(&r);
	buf_release(&b);
}

static void
check_limit(const struct hp_query *q)
{
	const char *s = hp_query_get(q, "limit");
	long l = hp_limit(s, LIMIT_DEFAULT);
	size_t n;

	if (l < 0)
		abort();
	if (s == NULL || (n = strlen(s)) == 0 || n > 18 || strspn(s,
	    "0123456789") != n)
		return;
	if (l != strtol(s, NULL, 10))
		abort();
}

/* Check one selector against the model's next. */
static void
check_sel(const struct selector *s, const char *sid, unsigned kind,
    const char *counter, const char *gauges)
{
	size_t i, n = 1;
	const char *p;

	if (s->kind != kind || !same_str(s->source_id, *sid ? sid : NULL))
		abort();
	if (!same_str(s->counter_name, counter && *counter ? counter : NULL))
		abort();
	if (gauges == NULL) {
		if (s->gauge_names != NULL || s->ngauge_names != 0)
			abort();
		return;
	}
	for (p = gauges; (p = strchr(p, ',')) != NULL; p++)
		n++;
	if (s->ngauge_names != n)
		abort();
	/* The names joined by ',' are the value again. */
	for (i = 0, p = gauges; i < n; i++) {
		size_t l = strlen(s->gauge_names[i]);

		if (strchr(s->gauge_names[i], ',') != NULL ||
		    strncmp(p, s->gauge_names[i], l) != 0 ||
		    p[l] != (i + 1 < n ? ',' : '\0'))
			abort();
		p += l + 1;
	}
}

/* The model: walk what selector_builder makes, in order, checking each
 * against f->sel; returns how many the model makes. */
static size_t
model(const struct hp_query *q, const struct sub_filter *f)
{
	size_t nsrc = hp_query_count(q, "source_id"), ns = nsrc ? nsrc : 1;
	size_t ncn = hp_query_count(q, "counter.name");
	size_t ngn = hp_query_count(q, "gauge.name");
	size_t i, j, k = 0;
	const char *sid;

#define NEXT(kind, c, g) do {						\
		if (k < f->nsel)					\
			check_sel(&f->sel[k], sid, kind, c, g);		\
		k++;							\
	} while (0)
	for (i = 0; i < ns; i++) {
		sid = nsrc ? hp_query_nth(q, "source_id", i) : "";
		if (hp_query_get(q, "log"))
			NEXT(SEL_LOG, NULL, NULL);
		if (hp_query_get(q, "counter") && ncn == 0)
			NEXT(SEL_COUNTER, NULL, NULL);
		for (j = 0; j < ncn; j++)
			NEXT(SEL_COUNTER, hp_query_nth(q, "counter.name", j),
			    NULL);
		if (hp_query_get(q, "gauge") && ngn == 0)
			NEXT(SEL_GAUGE, NULL, NULL);
		for (j = 0; j < ngn; j++)
			NEXT(SEL_GAUGE, NULL, hp_query_nth(q, "gauge.name", j));
		if (hp_query_get(q, "timer"))
			NEXT(SEL_TIMER, NULL, NULL);
		if (hp_query_get(q, "event"))
			NEXT(SEL_EVENT, NULL, NULL);
		if (k > HP_MAX_SELECTORS)
			break;	/* enough to know it is too many */
	}
#undef NEXT
	return k;
}

static void
check_selectors(const struct hp_query *q)
{
	struct sub_filter f, g;
	const char *why, *shard;
	size_t want, len;
	uint8_t *enc;
	int rc;

	if (!hp_read_typed(q))
		return;
	memset(&f, 0, sizeof(f));
	f.preferred_tags = 1;
	shard = hp_query_get(q, "shard_id");
	if (shard != NULL && *shard != '\0' && (f.shard_id = strdup(shard)) ==
	    NULL)
		abort();
	rc = hp_read_selectors(q, &f);
	want = model(q, &f);
	if (want == 0)
		abort();	/* typed, so at least one */
	if (want > HP_MAX_SELECTORS) {
		if (rc != -1 || f.nsel != HP_MAX_SELECTORS)
			abort();
		sub_filter_free(&f);
		return;
	}
	if (rc != 0 || f.nsel != want)
		abort();
	enc = filter_to_egress_request(&f, &len);
	if (enc == NULL)
		abort();
	if (filter_from_egress_request(&g, enc, len, &why) != GRPC_OK ||
	    !same_filter(&f, &g))
		abort();
	free(enc);
	sub_filter_free(&f);
	sub_filter_free(&g);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hp_query q = { NULL, 0, 0 };
	size_t amps = 0, i;

	if (hp_query_add(&q, (const char *)data, size) == -1)
		abort();
	for (i = 0; i < size; i++)
		amps += data[i] == '&';
	if (q.n > amps + 1)
		abort();
	check_plain(&q, data, size);
	check_reencode(&q);
	check_limit(&q);
	check_selectors(&q);
	hp_query_free(&q);
	return 0;
}
