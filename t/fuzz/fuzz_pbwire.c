/* fuzz_pbwire: the wire-format peeks, the tag appender and the batch
 * iterator on arbitrary bytes, checked against each other and against
 * protobuf-c. Where protobuf-c decodes the input too, every peek that
 * answers must agree with the decoded envelope, and what add_tags writes
 * must decode to the envelope plus exactly the tags it lacked. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "envelope.h"
#include "pbwire.h"

#define OUT_MAX (64 * 1024)

#define TAG(k, v) { k, sizeof(k) - 1, v, sizeof(v) - 1 }

static const struct pb_tag add[] = {
	TAG("deployment", "cf"),
	TAG("job", "metron"),
	TAG("index", "0"),
	TAG("ip", "10.0.0.1"),
	TAG("", "empty key"),
	TAG("job", "again"),
};
#define N_ADD (sizeof(add) / sizeof(add[0]))

/* s (n bytes, from the wire) against t, a string protobuf-c decoded
 * from the same bytes: protobuf-c's copy ends at the first NUL. */
static int
same_text(const char *s, size_t n, const char *t)
{
	size_t tn = strlen(t);

	if (memchr(s, 0, n) == NULL)
		return n == tn && memcmp(s, t, n) == 0;
	return tn < n && memcmp(s, t, tn) == 0;
}

/* 1 when protobuf-c cannot tell what a tag is: a map entry key holds a
 * NUL byte (protobuf-c cuts the key there), or a deprecated_tags entry
 * holds its Value more than once (protobuf says to merge them, as Go
 * does; protobuf-c 1.4 drops a oneof set in the first but not in the
 * last). */
static int
tags_unclear(const uint8_t *p, size_t len)
{
	const uint8_t *end = p + len, *q;
	struct pb_field f, g;
	int values;

	while (pb_next(&p, end, &f) == 1) {
		if ((f.num != PB_ENV_TAGS && f.num != PB_ENV_DEPRECATED_TAGS) ||
		    f.wire != PB_WIRE_LEN)
			continue;
		q = f.data;
		values = 0;
		while (pb_next(&q, f.data + f.len, &g) == 1) {
			if (g.num == 1 && g.wire == PB_WIRE_LEN &&
			    memchr(g.data, 0, g.len) != NULL)
				return 1;
			if (g.num == 2 && f.num == PB_ENV_DEPRECATED_TAGS &&
			    ++values > 1)
				return 1;
		}
	}
	return 0;
}

/* A varint as protobuf-c reads it: up to 10 bytes, any value. 0 when
 * it ends inside them, else its length; *big when Go would refuse it,
 * its value being past 64 bits. */
static size_t
lax_varint(const uint8_t *p, const uint8_t *end, uint64_t *v, int *big)
{
	size_t i;

	*v = 0;
	for (i = 0; i < 10 && p + i < end; i++) {
		*v |= (uint64_t)(p[i] & 0x7f) << (7 * i);
		if (p[i] < 0x80) {
			if (i == 9 && p[i] > 1)
				*big = 1;
			return i + 1;
		}
	}
	return 0;
}

/* 1 when a tags or deprecated_tags entry holds what Go refuses and
 * protobuf-c takes: a field number above 2^29-1 or a varint past 64
 * bits. add_tags refuses it, as Go would. */
static int
go_refuses_entries(const uint8_t *p, size_t len)
{
	const uint8_t *end = p + len, *q, *qend;
	struct pb_field f;
	uint64_t key, v;
	size_t n;
	int big = 0;

	while (pb_next(&p, end, &f) == 1) {
		if (f.num != PB_ENV_TAGS && f.num != PB_ENV_DEPRECATED_TAGS)
			continue;
		q = f.data;
		qend = f.data + f.len;
		while (q < qend) {
			if ((n = lax_varint(q, qend, &key, &big)) == 0)
				return 0;
			q += n;
			if (key >> 3 > PB_FIELD_MAX)
				big = 1;
			switch (key & 7) {
			case PB_WIRE_VARINT:
				if ((n = lax_varint(q, qend, &v, &big)) == 0)
					return 0;
				q += n;
				break;
			case PB_WIRE_LEN:
				if ((n = lax_varint(q, qend, &v, &big)) == 0 ||
				    v > (uint64_t)(qend - q - n))
					return 0;
				q += n + v;
				break;
			case PB_WIRE_FIXED64:
			case PB_WIRE_FIXED32:
				n = (key & 7) == PB_WIRE_FIXED64 ? 8 : 4;
				if ((size_t)(qend - q) < n)
					return 0;
				q += n;
				break;
			default:
				return 0;
			}
			if (big)
				return 1;
		}
	}
	return 0;
}

/* What envelope_peek_tag should find for key in a decoded envelope:
 * the last tags entry, else the last deprecated entry if it is text. */
static const char *
decoded_tag(const Loggregator__V2__Envelope *e, const char *key)
{
	const Loggregator__V2__Value *v = NULL;
	const char *t = NULL;
	size_t i;
	int dep = 0;

	for (i = 0; i < e->n_tags; i++)
		if (strcmp(e->tags[i]->key, key) == 0)
			t = e->tags[i]->value;
	if (t != NULL)
		return t;
	for (i = 0; i < e->n_deprecated_tags; i++)
		if (strcmp(e->deprecated_tags[i]->key, key) == 0) {
			v = e->deprecated_tags[i]->value;
			dep = 1;
		}
	if (dep && v != NULL && v->data_case == LOGGREGATOR__V2__VALUE__DATA_TEXT)
		return v->text;
	return NULL;
}

static void
check_tag(const uint8_t *data, size_t size, const Loggregator__V2__Envelope *e,
    const char *key)
{
	const char *v, *want;
	size_t vn;
	int rc;

	rc = envelope_peek_tag(data, size, key, strlen(key), &v, &vn);
	if (rc == -1)
		return;
	want = decoded_tag(e, key);
	if (want == NULL ? rc != 0 : rc != 1 || !same_text(v, vn, want))
		abort();
}

/* A tag's value in add_tags' output: the same as in the input, or, when
 * the input had no value for it, possibly the value added. */
static void
check_tag_added(const uint8_t *in, size_t inlen, const uint8_t *out,
    size_t outlen, const struct pb_tag *t)
{
	const char *v, *w;
	size_t vn, wn;
	int rc;

	rc = envelope_peek_tag(in, inlen, t->key, t->klen, &v, &vn);
	switch (envelope_peek_tag(out, outlen, t->key, t->klen, &w, &wn)) {
	case 1:
		if (rc == 1 && (w - (const char *)out != v - (const char *)in ||
		    wn != vn))
			abort();
		if (rc == 0 && (wn != t->vlen || memcmp(w, t->value, wn) != 0))
			abort();
		if (rc == -1)
			abort();
		break;
	case 0:
		if (rc != 0)
			abort();
		break;
	default:
		if (rc != -1)
			abort();
	}
}

static int
carried(const Loggregator__V2__Envelope *e, const char *key)
{
	size_t i;

	for (i = 0; i < e->n_tags; i++)
		if (strcmp(e->tags[i]->key, key) == 0)
			return 1;
	for (i = 0; i < e->n_deprecated_tags; i++)
		if (strcmp(e->deprecated_tags[i]->key, key) == 0)
			return 1;
	return 0;
}

/* The decoded output d of add_tags on e: e's tags, then each tag of add
 * that e lacked, first value of a key only. */
static void
check_added(const Loggregator__V2__Envelope *e,
    const Loggregator__V2__Envelope *d)
{
	size_t i, j, n = e->n_tags;
	int dup;

	if (d->n_deprecated_tags != e->n_deprecated_tags ||
	    d->message_case != e->message_case ||
	    strcmp(d->source_id, e->source_id) != 0 ||
	    d->timestamp != e->timestamp)
		abort();
	for (i = 0; i < e->n_tags; i++)
		if (strcmp(d->tags[i]->key, e->tags[i]->key) != 0 ||
		    strcmp(d->tags[i]->value, e->tags[i]->value) != 0)
			abort();
	for (i = 0; i < N_ADD; i++) {
		dup = 0;
		for (j = 0; j < i; j++)
			if (strcmp(add[i].key, add[j].key) == 0)
				dup = 1;
		if (dup || carried(e, add[i].key))
			continue;
		if (n >= d->n_tags || strcmp(d->tags[n]->key, add[i].key) != 0 ||
		    strcmp(d->tags[n]->value, add[i].value) != 0)
			abort();
		n++;
	}
	if (n != d->n_tags)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct arena a;
	static uint8_t *out;
	static int ready;
	Loggregator__V2__Envelope *e, *d;
	Loggregator__V2__EnvelopeBatch *batch;
	const uint8_t *p, *end, *env;
	const char *s, *s2;
	size_t i, n, n2, len, nenv;
	ssize_t w;
	int chk, src, kind, tag, rc, err;

	if (!ready) {
		out = malloc(OUT_MAX);
		if (out == NULL || arena_init(&a, 64 * 1024, 64 << 20) == -1)
			abort();
		ready = 1;
	}
	arena_reset(&a);
	if (size > OUT_MAX / 2)
		return 0;

	chk = pb_check(data, size);
	src = envelope_peek_source_id(data, size, &s, &n);
	kind = envelope_peek_kind(data, size);
	tag = envelope_peek_tag(data, size, "job", 3, &s2, &n2);
	errno = 0;
	w = envelope_add_tags(data, size, add, N_ADD, out, OUT_MAX);
	err = errno;

	/* The peeks read the whole top level: a message that does not
	 * parse is malformed to all of them, and they agree on the rest. */
	if (chk == -1 && (src != -1 || kind != -1 || tag != -1 || w != -1))
		abort();
	if ((src == -1) != (kind == -1) || (tag != -1 && kind == -1) ||
	    (w != -1 && kind == -1))
		abort();
	if (w == -1 && err != EBADMSG)
		abort();
	if (kind != -1 && kind != 0 && kind != 4 && kind != 5 && kind != 6 &&
	    kind != 7 && kind != 10)
		abort();

	if (w >= 0) {
		/* The envelope, then complete fields: the same peeks. */
		if ((size_t)w < size || (size > 0 && memcmp(out, data, size)) ||
		    pb_check(out, (size_t)w) != 0 ||
		    envelope_peek_kind(out, (size_t)w) != kind ||
		    envelope_peek_source_id(out, (size_t)w, &s2, &n2) != src ||
		    (src == 1 && (s2 != (const char *)out + (s - (const char *)data)
		    || n2 != n)))
			abort();
		for (i = 0; i < N_ADD - 1; i++)	/* the last repeats a key */
			check_tag_added(data, size, out, (size_t)w, &add[i]);
		/* One byte less room is too little. */
		if ((size_t)w > size && (envelope_add_tags(data, size, add,
		    N_ADD, out, (size_t)w - 1) != -1 || errno != EMSGSIZE))
			abort();
	}

	/* Every envelope of a batch, peeked. */
	p = data;
	end = data + size;
	nenv = 0;
	while ((rc = pb_batch_next(&p, end, &env, &len)) == 1) {
		if (env < data || env + len > end)
			abort();
		(void)envelope_peek_kind(env, len);
		(void)envelope_peek_source_id(env, len, &s2, &n2);
		nenv++;
	}
	if (rc == 0) {
		batch = loggregator__v2__envelope_batch__unpack(&a.pb, size,
		    data);
		if (batch != NULL && batch->n_batch != nenv)
			abort();
	}
	if (chk == -1 && rc != -1)
		abort();

	/* Where protobuf-c decodes it too, the answers must agree. */
	e = envelope_unpack(&a, data, size);
	if (e == NULL)
		return 0;
	if (src == 0 && e->source_id[0] != '\0')
		abort();
	if (src == 1 && !same_text(s, n, e->source_id))
		abort();
	if (kind >= 0 && (unsigned)kind != e->message_case)
		abort();
	if (tags_unclear(data, size))
		return 0;
	check_tag(data, size, e, "job");
	check_tag(data, size, e, "");
	if (e->n_tags > 0)
		check_tag(data, size, e, e->tags[e->n_tags - 1]->key);
	if (e->n_deprecated_tags > 0)
		check_tag(data, size, e, e->deprecated_tags[0]->key);
	if (chk == 0 && w == -1 && !go_refuses_entries(data, size))
		abort();
	if (chk == 0 && w >= 0) {
		d = envelope_unpack(&a, out, (size_t)w);
		if (d == NULL)
			abort();
		check_added(e, d);
	}
	return 0;
}
