/* json: the gateway's JSON form of loggregator.v2 envelopes. The encoder
 * is written by hand to match protojson byte for byte; the decoder reads
 * a jansson tree, taking each number's text from the input itself. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fmtnum.h"
#include "json.h"

/* Map entries sorted on the stack up to this many; more go to malloc. */
#define JSON_SORT_STACK 32

/* Go's math.NaN(): what protojson decodes "NaN" to. */
#define JSON_GO_NAN_BITS UINT64_C(0x7ff8000000000001)

static const char json_b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* ---- encoding ---- */

struct json_kv {
	const char *key;	/* as written: valid UTF-8 */
	size_t i;		/* index in the entry array: later wins */
	char *fixed;		/* malloc'd repair of a key not in UTF-8 */
};

typedef int (*json_val_fn)(struct buf *, const void *);

static size_t json_utf8_len(const unsigned char *, size_t);
static int json_utf8_fix(const char *, char **);
static int enc_cstr(struct buf *, const char *);
static int enc_i64(struct buf *, int64_t);
static int enc_u64(struct buf *, uint64_t);
static int enc_double(struct buf *, double);
static int enc_bytes(struct buf *, const ProtobufCBinaryData *);
static int enc_map(struct buf *, void *const *, size_t,
    const char *(*)(const void *), json_val_fn);
static int enc_envelope(struct buf *, const Loggregator__V2__Envelope *);

/*
 * Length of the well-formed UTF-8 sequence at p (Unicode table 3-7), or 0
 * if the byte at p does not begin one. The second byte's range rules out
 * overlong forms, surrogates and code points past U+10FFFF.
 */
static size_t
json_utf8_len(const unsigned char *p, size_t n)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t len, i;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		len = 2;
	else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		len = 3;
		if (p[0] == 0xe0)
			lo = 0xa0;
		else if (p[0] == 0xed)
			hi = 0x9f;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		len = 4;
		if (p[0] == 0xf0)
			lo = 0x90;
		else if (p[0] == 0xf4)
			hi = 0x8f;
	} else
		return 0;
	if (n < len || p[1] < lo || p[1] > hi)
		return 0;
	for (i = 2; i < len; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return len;
}

/*
 * s with U+FFFD for each byte that does not begin a well-formed sequence,
 * as json_encode_string will write it: *fixed is a malloc'd copy, or NULL
 * when s is fine as it is. 0, or -1 with errno ENOMEM.
 */
static int
json_utf8_fix(const char *s, char **fixed)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s), i, k, bad = 0, o;
	char *q;

	*fixed = NULL;
	for (i = 0; i < n; i += k)
		if ((k = json_utf8_len(p + i, n - i)) == 0) {
			bad++;
			k = 1;
		}
	if (bad == 0)
		return 0;
	if (bad > (SIZE_MAX - n - 1) / 2) {
		errno = ENOMEM;
		return -1;
	}
	if ((q = malloc(n + 2 * bad + 1)) == NULL)
		return -1;
	for (i = o = 0; i < n; i += k) {
		if ((k = json_utf8_len(p + i, n - i)) == 0) {
			memcpy(q + o, "\xef\xbf\xbd", 3);
			o += 3;
			k = 1;
		} else {
			memcpy(q + o, s + i, k);
			o += k;
		}
	}
	q[o] = '\0';
	*fixed = q;
	return 0;
}

int
json_encode_string(struct buf *out, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	size_t start = out->len, i = 0, run, k;
	char esc[6];

	if (buf_putc(out, '"') == -1)
		return -1;
	while (i < n) {
		/* Copy the longest stretch that needs nothing done. */
		for (run = i; run < n && p[run] >= 0x20 && p[run] < 0x80 &&
		    p[run] != '"' && p[run] != '\\'; run++)
			;
		if (run > i && buf_append(out, s + i, run - i) == -1)
			goto fail;
		i = run;
		if (i == n)
			break;
		if (p[i] >= 0x80) {
			k = json_utf8_len(p + i, n - i);
			if (k == 0) {
				if (buf_append(out, "\xef\xbf\xbd", 3) == -1)
					goto fail;
				k = 1;
			} else if (buf_append(out, s + i, k) == -1)
				goto fail;
			i += k;
			continue;
		}
		esc[0] = '\\';
		k = 2;
		switch (p[i]) {
		case '"':
		case '\\':
			esc[1] = (char)p[i];
			break;
		case '\b':
			esc[1] = 'b';
			break;
		case '\f':
			esc[1] = 'f';
			break;
		case '\n':
			esc[1] = 'n';
			break;
		case '\r':
			esc[1] = 'r';
			break;
		case '\t':
			esc[1] = 't';
			break;
		default:
			memcpy(esc + 1, "u00", 3);
			esc[4] = hex[p[i] >> 4];
			esc[5] = hex[p[i] & 0xf];
			k = 6;
			break;
		}
		if (buf_append(out, esc, k) == -1)
			goto fail;
		i++;
	}
	if (buf_putc(out, '"') == -1)
		goto fail;
	return 0;
fail:
	out->len = start;
	return -1;
}

static int
enc_cstr(struct buf *b, const char *s)
{
	if (s == NULL)
		s = "";
	return json_encode_string(b, s, strlen(s));
}

static int
enc_i64(struct buf *b, int64_t v)
{
	return buf_printf(b, "\"%" PRId64 "\"", v);
}

static int
enc_u64(struct buf *b, uint64_t v)
{
	return buf_printf(b, "\"%" PRIu64 "\"", v);
}

static int
enc_double(struct buf *b, double v)
{
	char s[FMT_DOUBLE_MAX];
	int n;

	n = fmt_double(s, sizeof(s), v, FMT_JSON);
	if (n < 0)
		return -1;
	return buf_append(b, s, (size_t)n);
}

static int
enc_bytes(struct buf *b, const ProtobufCBinaryData *d)
{
	const unsigned char *p = d->data;
	size_t n = d->data != NULL ? d->len : 0, i, o;
	uint32_t w;
	char *q;

	if (n > (SIZE_MAX - 2) / 4 * 3 - 3) {
		errno = EMSGSIZE;
		return -1;
	}
	if (buf_reserve(b, (n + 2) / 3 * 4 + 2) == -1)
		return -1;
	q = b->data + b->len;
	o = 0;
	q[o++] = '"';
	for (i = 0; i + 3 <= n; i += 3) {
		w = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		q[o++] = json_b64[w >> 18];
		q[o++] = json_b64[w >> 12 & 63];
		q[o++] = json_b64[w >> 6 & 63];
		q[o++] = json_b64[w & 63];
	}
	if (n - i == 1) {
		w = (uint32_t)p[i] << 16;
		q[o++] = json_b64[w >> 18];
		q[o++] = json_b64[w >> 12 & 63];
		q[o++] = '=';
		q[o++] = '=';
	} else if (n - i == 2) {
		w = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
		q[o++] = json_b64[w >> 18];
		q[o++] = json_b64[w >> 12 & 63];
		q[o++] = json_b64[w >> 6 & 63];
		q[o++] = '=';
	}
	q[o++] = '"';
	b->len += o;
	return 0;
}

static int
json_kv_cmp(const void *x, const void *y)
{
	const struct json_kv *a = x, *b = y;
	int c = strcmp(a->key, b->key);

	if (c != 0)
		return c;
	return a->i < b->i ? -1 : a->i > b->i;
}

/*
 * A map as a JSON object, keys sorted bytewise like protojson's. The
 * protobuf-c form is a list of entries and may hold a key twice; Go would
 * have kept the last, so only the last of equal keys is written. Keys are
 * compared as written, after the U+FFFD repair, so that two bad keys that
 * repair to the same text cannot give an object with a key twice.
 */
static int
enc_map(struct buf *b, void *const *ent, size_t n,
    const char *(*key)(const void *), json_val_fn val)
{
	struct json_kv stack[JSON_SORT_STACK], *kv = stack;
	size_t i, made = 0;
	int rc = -1, first = 1;

	if (n > JSON_SORT_STACK) {
		if (n > SIZE_MAX / sizeof(*kv)) {
			errno = ENOMEM;
			return -1;
		}
		kv = malloc(n * sizeof(*kv));
		if (kv == NULL)
			return -1;
	}
	for (; made < n; made++) {
		kv[made].key = ent[made] != NULL ? key(ent[made]) : NULL;
		if (kv[made].key == NULL)
			kv[made].key = "";
		kv[made].i = made;
		if (json_utf8_fix(kv[made].key, &kv[made].fixed) == -1)
			goto done;
		if (kv[made].fixed != NULL)
			kv[made].key = kv[made].fixed;
	}
	qsort(kv, n, sizeof(*kv), json_kv_cmp);
	if (buf_putc(b, '{') == -1)
		goto done;
	for (i = 0; i < n; i++) {
		if (i + 1 < n && strcmp(kv[i].key, kv[i + 1].key) == 0)
			continue;
		if (!first && buf_putc(b, ',') == -1)
			goto done;
		first = 0;
		if (enc_cstr(b, kv[i].key) == -1 || buf_putc(b, ':') == -1 ||
		    val(b, ent[kv[i].i]) == -1)
			goto done;
	}
	if (buf_putc(b, '}') == -1)
		goto done;
	rc = 0;
done:
	for (i = 0; i < made; i++)
		free(kv[i].fixed);
	if (kv != stack)
		free(kv);
	return rc;
}

static const char *
tag_key(const void *p)
{
	return ((const Loggregator__V2__Envelope__TagsEntry *)p)->key;
}

static int
tag_val(struct buf *b, const void *p)
{
	return enc_cstr(b, p ? ((const Loggregator__V2__Envelope__TagsEntry *)
	    p)->value : NULL);
}

static const char *
dtag_key(const void *p)
{
	return ((const Loggregator__V2__Envelope__DeprecatedTagsEntry *)p)->key;
}

/* Value: only the member that is set; {} when none is. */
static int
dtag_val(struct buf *b, const void *p)
{
	const Loggregator__V2__Value *v = p ?
	    ((const Loggregator__V2__Envelope__DeprecatedTagsEntry *)p)->value :
	    NULL;

	if (v == NULL)
		return buf_puts(b, "{}");
	switch (v->data_case) {
	case LOGGREGATOR__V2__VALUE__DATA_TEXT:
		if (buf_puts(b, "{\"text\":") == -1 ||
		    enc_cstr(b, v->text) == -1)
			return -1;
		break;
	case LOGGREGATOR__V2__VALUE__DATA_INTEGER:
		if (buf_puts(b, "{\"integer\":") == -1 ||
		    enc_i64(b, v->integer) == -1)
			return -1;
		break;
	case LOGGREGATOR__V2__VALUE__DATA_DECIMAL:
		if (buf_puts(b, "{\"decimal\":") == -1 ||
		    enc_double(b, v->decimal) == -1)
			return -1;
		break;
	default:
		return buf_puts(b, "{}");
	}
	return buf_putc(b, '}');
}

static const char *
metric_key(const void *p)
{
	return ((const Loggregator__V2__Gauge__MetricsEntry *)p)->key;
}

static int
metric_val(struct buf *b, const void *p)
{
	const Loggregator__V2__GaugeValue *v = p ?
	    ((const Loggregator__V2__Gauge__MetricsEntry *)p)->value : NULL;

	if (buf_puts(b, "{\"unit\":") == -1 ||
	    enc_cstr(b, v ? v->unit : NULL) == -1 ||
	    buf_puts(b, ",\"value\":") == -1 ||
	    enc_double(b, v ? v->value : 0.0) == -1)
		return -1;
	return buf_putc(b, '}');
}

static int
enc_log(struct buf *b, const Loggregator__V2__Log *l)
{
	static const ProtobufCBinaryData none = { 0, NULL };
	int type = l ? (int)l->type : 0;

	if (buf_puts(b, "\"log\":{\"payload\":") == -1 ||
	    enc_bytes(b, l ? &l->payload : &none) == -1 ||
	    buf_puts(b, ",\"type\":") == -1)
		return -1;
	/* protojson writes an undeclared enum value as its number. */
	if (type == LOGGREGATOR__V2__LOG__TYPE__OUT) {
		if (buf_puts(b, "\"OUT\"") == -1)
			return -1;
	} else if (type == LOGGREGATOR__V2__LOG__TYPE__ERR) {
		if (buf_puts(b, "\"ERR\"") == -1)
			return -1;
	} else if (buf_printf(b, "%d", type) == -1)
		return -1;
	return buf_putc(b, '}');
}

static int
enc_message(struct buf *b, const Loggregator__V2__Envelope *e)
{
	const Loggregator__V2__Counter *c;
	const Loggregator__V2__Gauge *g;
	const Loggregator__V2__Timer *t;
	const Loggregator__V2__Event *ev;

	switch (e->message_case) {
	case LOGGREGATOR__V2__ENVELOPE__MESSAGE_LOG:
		return buf_putc(b, ',') == -1 ? -1 : enc_log(b, e->log);
	case LOGGREGATOR__V2__ENVELOPE__MESSAGE_COUNTER:
		c = e->counter;
		if (buf_puts(b, ",\"counter\":{\"name\":") == -1 ||
		    enc_cstr(b, c ? c->name : NULL) == -1 ||
		    buf_puts(b, ",\"delta\":") == -1 ||
		    enc_u64(b, c ? c->delta : 0) == -1 ||
		    buf_puts(b, ",\"total\":") == -1 ||
		    enc_u64(b, c ? c->total : 0) == -1)
			return -1;
		break;
	case LOGGREGATOR__V2__ENVELOPE__MESSAGE_GAUGE:
		g = e->gauge;
		if (buf_puts(b, ",\"gauge\":{\"metrics\":") == -1 ||
		    enc_map(b, g ? (void *const *)g->metrics : NULL,
		    g ? g->n_metrics : 0, metric_key, metric_val) == -1)
			return -1;
		break;
	case LOGGREGATOR__V2__ENVELOPE__MESSAGE_TIMER:
		t = e->timer;
		if (buf_puts(b, ",\"timer\":{\"name\":") == -1 ||
		    enc_cstr(b, t ? t->name : NULL) == -1 ||
		    buf_puts(b, ",\"start\":") == -1 ||
		    enc_i64(b, t ? t->start : 0) == -1 ||
		    buf_puts(b, ",\"stop\":") == -1 ||
		    enc_i64(b, t ? t->stop : 0) == -1)
			return -1;
		break;
	case LOGGREGATOR__V2__ENVELOPE__MESSAGE_EVENT:
		ev = e->event;
		if (buf_puts(b, ",\"event\":{\"title\":") == -1 ||
		    enc_cstr(b, ev ? ev->title : NULL) == -1 ||
		    buf_puts(b, ",\"body\":") == -1 ||
		    enc_cstr(b, ev ? ev->body : NULL) == -1)
			return -1;
		break;
	default:
		return 0;	/* no message: no key at all */
	}
	return buf_putc(b, '}');
}

static int
enc_envelope(struct buf *b, const Loggregator__V2__Envelope *e)
{
	if (buf_puts(b, "{\"timestamp\":") == -1 ||
	    enc_i64(b, e->timestamp) == -1 ||
	    buf_puts(b, ",\"source_id\":") == -1 ||
	    enc_cstr(b, e->source_id) == -1 ||
	    buf_puts(b, ",\"instance_id\":") == -1 ||
	    enc_cstr(b, e->instance_id) == -1 ||
	    buf_puts(b, ",\"deprecated_tags\":") == -1 ||
	    enc_map(b, (void *const *)e->deprecated_tags, e->n_deprecated_tags,
	    dtag_key, dtag_val) == -1 ||
	    buf_puts(b, ",\"tags\":") == -1 ||
	    enc_map(b, (void *const *)e->tags, e->n_tags, tag_key,
	    tag_val) == -1 ||
	    enc_message(b, e) == -1)
		return -1;
	return buf_putc(b, '}');
}

int
json_encode_envelope(struct buf *out, const Loggregator__V2__Envelope *e)
{
	size_t start = out->len;

	if (e == NULL) {
		errno = EINVAL;
		return -1;
	}
	if (enc_envelope(out, e) == -1) {
		out->len = start;
		return -1;
	}
	return 0;
}

int
json_encode_batch(struct buf *out, Loggregator__V2__Envelope *const *e,
    size_t n)
{
	size_t start = out->len, i;

	if (buf_puts(out, "{\"batch\":[") == -1)
		return -1;
	for (i = 0; i < n; i++) {
		if (e[i] == NULL) {
			errno = EINVAL;
			goto fail;
		}
		if ((i > 0 && buf_putc(out, ',') == -1) ||
		    enc_envelope(out, e[i]) == -1)
			goto fail;
	}
	if (buf_puts(out, "]}") == -1)
		goto fail;
	return 0;
fail:
	out->len = start;
	return -1;
}

/* ---- decoding ---- */

struct json_dec {
	const char *text;
	size_t len;
	size_t cur;		/* the next number's text is after here */
	struct arena *a;
	char *err;
	size_t errlen;
	char path[160];		/* where we are, for the error line */
	size_t plen;
};

/* Which spelling of which field an object key is. */
struct json_field {
	const char *name;
	int id;
};

enum {
	F_TIMESTAMP, F_SOURCE_ID, F_INSTANCE_ID, F_DTAGS, F_TAGS,
	F_LOG, F_COUNTER, F_GAUGE, F_TIMER, F_EVENT,
	F_PAYLOAD, F_TYPE, F_NAME, F_DELTA, F_TOTAL, F_METRICS, F_UNIT,
	F_VALUE, F_START, F_STOP, F_TITLE, F_BODY, F_TEXT, F_INTEGER,
	F_DECIMAL
};

static const struct json_field env_fields[] = {
	{ "timestamp", F_TIMESTAMP },
	{ "source_id", F_SOURCE_ID }, { "sourceId", F_SOURCE_ID },
	{ "instance_id", F_INSTANCE_ID }, { "instanceId", F_INSTANCE_ID },
	{ "deprecated_tags", F_DTAGS }, { "deprecatedTags", F_DTAGS },
	{ "tags", F_TAGS },
	{ "log", F_LOG }, { "counter", F_COUNTER }, { "gauge", F_GAUGE },
	{ "timer", F_TIMER }, { "event", F_EVENT },
	{ NULL, 0 }
};
static const struct json_field log_fields[] = {
	{ "payload", F_PAYLOAD }, { "type", F_TYPE }, { NULL, 0 }
};
static const struct json_field counter_fields[] = {
	{ "name", F_NAME }, { "delta", F_DELTA }, { "total", F_TOTAL },
	{ NULL, 0 }
};
static const struct json_field gauge_fields[] = {
	{ "metrics", F_METRICS }, { NULL, 0 }
};
static const struct json_field gvalue_fields[] = {
	{ "unit", F_UNIT }, { "value", F_VALUE }, { NULL, 0 }
};
static const struct json_field timer_fields[] = {
	{ "name", F_NAME }, { "start", F_START }, { "stop", F_STOP },
	{ NULL, 0 }
};
static const struct json_field event_fields[] = {
	{ "title", F_TITLE }, { "body", F_BODY }, { NULL, 0 }
};
static const struct json_field value_fields[] = {
	{ "text", F_TEXT }, { "integer", F_INTEGER }, { "decimal", F_DECIMAL },
	{ NULL, 0 }
};

static int dec_fail(struct json_dec *, const char *, ...)
    __attribute__((format(printf, 2, 3)));
static int dec_nomem(struct json_dec *);
static size_t dec_push(struct json_dec *, const char *, ...)
    __attribute__((format(printf, 2, 3)));
static int dec_envelope(struct json_dec *, json_t *,
    Loggregator__V2__Envelope **);

static const char *
json_type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "an object";
	case JSON_ARRAY:
		return "an array";
	case JSON_STRING:
		return "a string";
	case JSON_INTEGER:
	case JSON_REAL:
		return "a number";
	case JSON_TRUE:
	case JSON_FALSE:
		return "a boolean";
	default:
		return "null";
	}
}

/* The reason goes into a log line: keep it one line of printable ASCII. */
static void
json_sanitize(char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			*s = '?';
}

static int
dec_fail(struct json_dec *d, const char *fmt, ...)
{
	va_list ap;
	size_t n = 0;
	int k;

	if (d->errlen > 0) {
		d->err[0] = '\0';
		if (d->plen > 0) {
			k = snprintf(d->err, d->errlen, "%s: ", d->path);
			n = k < 0 ? 0 : (size_t)k;
		}
		if (n < d->errlen) {
			va_start(ap, fmt);
			vsnprintf(d->err + n, d->errlen - n, fmt, ap);
			va_end(ap);
		}
		json_sanitize(d->err);
	}
	errno = EINVAL;
	return -1;
}

static int
dec_nomem(struct json_dec *d)
{
	dec_fail(d, "out of memory");
	errno = ENOMEM;
	return -1;
}

/* Add a path segment; returns the old length for dec_pop. */
static size_t
dec_push(struct json_dec *d, const char *fmt, ...)
{
	size_t old = d->plen;
	va_list ap;
	int k;

	if (d->plen + 1 < sizeof(d->path)) {
		va_start(ap, fmt);
		k = vsnprintf(d->path + d->plen, sizeof(d->path) - d->plen,
		    fmt, ap);
		va_end(ap);
		if (k > 0)
			d->plen += (size_t)k;
		if (d->plen >= sizeof(d->path))
			d->plen = sizeof(d->path) - 1;
	}
	return old;
}

static void
dec_pop(struct json_dec *d, size_t old)
{
	d->plen = old;
	d->path[old] = '\0';
}

/* A map key in the path, shortened: keys are the sender's choice. */
static size_t
dec_push_key(struct json_dec *d, const char *key)
{
	if (strlen(key) > 40)
		return dec_push(d, "[\"%.40s...\"]", key);
	return dec_push(d, "[\"%s\"]", key);
}

/*
 * The text of the next number in the input. jansson turns numbers into
 * doubles (JSON_DECODE_INT_AS_REAL, since a double field may hold an
 * integer literal past int64, such as 1e20 written out) and so loses the
 * digits of a big int64. But jansson keeps objects in input order, the
 * decoder visits every value in that order, and numbers are never inside
 * strings, so the k-th number visited is the k-th number token in the
 * text. The input has already passed jansson's parser, so a scan that
 * skips strings and takes runs of number characters finds exactly those
 * tokens.
 */
static int
dec_number_text(struct json_dec *d, const char **p, size_t *n)
{
	const char *t = d->text;
	size_t i = d->cur, start;

	while (i < d->len) {
		if (t[i] == '"') {
			for (i++; i < d->len && t[i] != '"'; i++)
				if (t[i] == '\\')
					i++;
			i++;
			continue;
		}
		if (t[i] == '-' || (t[i] >= '0' && t[i] <= '9')) {
			start = i;
			while (i < d->len && t[i] != '\0' &&
			    strchr("0123456789+-.eE", t[i]) != NULL)
				i++;
			*p = t + start;
			*n = i - start;
			d->cur = i;
			return 0;
		}
		i++;
	}
	return dec_fail(d, "lost track of the numbers in the input");
}

/* A JSON number taken apart: -?ip[.fp][e exp]. */
struct json_num {
	int neg;
	const char *ip, *fp;	/* integer and fraction digits */
	size_t ni, nf;
	long exp;		/* saturated at +-1000000 */
};

/*
 * Check s (n bytes) against the JSON number grammar and take it apart.
 * The exponent saturates far past any double or int64, so a vast one
 * cannot overflow. 0, or -1 if s is not a JSON number.
 */
static int
json_num_scan(const char *s, size_t n, struct json_num *m)
{
	size_t i = 0;
	int eneg = 0;

	memset(m, 0, sizeof(*m));
	if (i < n && s[i] == '-') {
		m->neg = 1;
		i++;
	}
	m->ip = s + i;
	if (i < n && s[i] == '0')
		i++;
	else if (i < n && s[i] >= '1' && s[i] <= '9')
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++;
	else
		return -1;
	m->ni = (size_t)(s + i - m->ip);
	if (i < n && s[i] == '.') {
		m->fp = s + ++i;
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++;
		m->nf = (size_t)(s + i - m->fp);
		if (m->nf == 0)
			return -1;
	}
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < n && (s[i] == '+' || s[i] == '-'))
			eneg = s[i++] == '-';
		if (i >= n || s[i] < '0' || s[i] > '9')
			return -1;
		for (; i < n && s[i] >= '0' && s[i] <= '9'; i++)
			if (m->exp < 1000000)
				m->exp = m->exp * 10 + (s[i] - '0');
		if (eneg)
			m->exp = -m->exp;
	}
	return i == n ? 0 : -1;
}

/*
 * The integer a JSON number stands for, as protojson reads 64-bit fields:
 * any number form is fine if the value is whole (5, 5.0, 0.5e1). Returns
 * 0, or -1 with *why set.
 */
static int
json_num_int(const struct json_num *m, int *neg, uint64_t *mag,
    const char **why)
{
	size_t nd = m->ni + m->nf, lead = 0, end;
	long long scale;
	uint64_t v = 0;
	size_t k;
	int c;

#define DIGIT(k) ((k) < m->ni ? m->ip[k] : m->fp[(k) - m->ni])
	while (lead < nd && DIGIT(lead) == '0')
		lead++;
	*neg = m->neg;
	*mag = 0;
	if (lead == nd)
		return 0;	/* zero, whatever the exponent */
	/* Trailing zeros move into the scale, so the last digit kept is
	 * not zero and the value is whole exactly when scale >= 0. */
	end = nd;
	while (DIGIT(end - 1) == '0')
		end--;
	scale = (long long)m->exp - (long long)m->nf +
	    (long long)(nd - end);
	if (scale < 0) {
		*why = "not a whole number";
		return -1;
	}
	if ((long long)(end - lead) + scale > 20) {
		*why = "out of range";
		return -1;
	}
	for (k = lead; k < end + (size_t)scale; k++) {
		c = k < end ? DIGIT(k) - '0' : 0;
		if (v > (UINT64_MAX - (uint64_t)c) / 10) {
			*why = "out of range";
			return -1;
		}
		v = v * 10 + (uint64_t)c;
	}
#undef DIGIT
	*mag = v;
	return 0;
}

/*
 * Where the number for v is: the input's own text for a JSON number, the
 * contents for a string (protojson takes 64-bit integers and doubles in
 * either). Anything else is an error naming what was wanted.
 */
static int
dec_num_source(struct json_dec *d, json_t *v, const char *want,
    const char **p, size_t *n, int *isstr)
{
	*isstr = 0;
	if (json_is_number(v))
		return dec_number_text(d, p, n);
	if (json_is_string(v)) {
		*p = json_string_value(v);
		*n = json_string_length(v);
		*isstr = 1;
		return 0;
	}
	return dec_fail(d, "want %s, got %s", want, json_type_name(v));
}

/* How much of a bad number to quote in a reason. */
static int
dec_clip(size_t n)
{
	return n > 40 ? 40 : (int)n;
}

/* v as an integer in [min, max] (magnitudes, with the sign apart). */
static int
dec_int(struct json_dec *d, json_t *v, int64_t min, uint64_t max,
    int *neg, uint64_t *mag)
{
	struct json_num m;
	const char *p, *why = "out of range";
	size_t n;
	int isstr;

	if (dec_num_source(d, v, "an integer", &p, &n, &isstr) == -1)
		return -1;
	if (json_num_scan(p, n, &m) == -1)
		return dec_fail(d, "not a number: \"%.*s\"",
		    dec_clip(n), p);
	if (json_num_int(&m, neg, mag, &why) == -1)
		return dec_fail(d, "%s: %.*s", why, dec_clip(n), p);
	if (*neg && *mag == 0)
		*neg = 0;
	if ((*neg && *mag > (uint64_t)-(min + 1) + 1) || (!*neg && *mag > max))
		return dec_fail(d, "out of range: %.*s",
		    dec_clip(n), p);
	return 0;
}

static int
dec_i64(struct json_dec *d, json_t *v, int64_t *out)
{
	uint64_t mag;
	int neg;

	if (json_is_null(v))
		return 0;
	if (dec_int(d, v, INT64_MIN, INT64_MAX, &neg, &mag) == -1)
		return -1;
	/* mag <= 2^63 when neg: negate in unsigned, then convert. */
	*out = neg ? (int64_t)(~mag + 1) : (int64_t)mag;
	return 0;
}

static int
dec_u64(struct json_dec *d, json_t *v, uint64_t *out)
{
	uint64_t mag;
	int neg;

	if (json_is_null(v))
		return 0;
	if (dec_int(d, v, 0, UINT64_MAX, &neg, &mag) == -1)
		return -1;
	*out = mag;
	return 0;
}

static int
dec_double(struct json_dec *d, json_t *v, double *out)
{
	char stack[64], *s = stack;
	struct json_num m;
	const char *p;
	uint64_t bits = JSON_GO_NAN_BITS;
	size_t n;
	int isstr;
	double x;

	if (json_is_null(v))
		return 0;
	if (dec_num_source(d, v, "a number", &p, &n, &isstr) == -1)
		return -1;
	if (isstr && strcmp(p, "NaN") == 0) {
		memcpy(out, &bits, sizeof(*out));
		return 0;
	}
	if (isstr && strcmp(p, "Infinity") == 0) {
		*out = INFINITY;
		return 0;
	}
	if (isstr && strcmp(p, "-Infinity") == 0) {
		*out = -INFINITY;
		return 0;
	}
	if (json_num_scan(p, n, &m) == -1)
		return dec_fail(d, "not a number: \"%.*s\"",
		    dec_clip(n), p);
	/* strtod wants a NUL; the number's text in the input has none. */
	if (n >= sizeof(stack)) {
		s = arena_alloc(d->a, n + 1);
		if (s == NULL)
			return dec_nomem(d);
	}
	memcpy(s, p, n);
	s[n] = '\0';
	x = strtod(s, NULL);
	if (isinf(x))
		return dec_fail(d, "out of range: %.*s",
		    dec_clip(n), p);
	*out = x;
	return 0;
}

static int
dec_string(struct json_dec *d, json_t *v, char **out)
{
	if (json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return dec_fail(d, "want a string, got %s", json_type_name(v));
	/* Without JSON_ALLOW_NUL, jansson refuses \u0000: no string here
	 * is cut short by one. */
	*out = arena_strndup(d->a, json_string_value(v), json_string_length(v));
	return *out == NULL ? dec_nomem(d) : 0;
}

static int
json_b64_val(unsigned char c, int url)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == (url ? '-' : '+'))
		return 62;
	if (c == (url ? '_' : '/'))
		return 63;
	return -1;
}

/*
 * Base64 the way protojson reads bytes: the URL alphabet if '-' or '_'
 * occurs, else the standard one; padding required when the length is a
 * multiple of 4 and forbidden otherwise; CR and LF skipped, as Go's
 * decoder does. Nonzero bits left over in the last symbol are accepted.
 */
static int
dec_bytes(struct json_dec *d, json_t *v, ProtobufCBinaryData *out)
{
	const unsigned char *s;
	unsigned char *o;
	size_t n, i, on = 0;
	uint32_t w = 0;
	int url, padded, q = 0, x, pad = 0;

	if (json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return dec_fail(d, "want a base64 string, got %s",
		    json_type_name(v));
	s = (const unsigned char *)json_string_value(v);
	n = json_string_length(v);
	url = strpbrk((const char *)s, "-_") != NULL;
	padded = n % 4 == 0;
	o = arena_alloc(d->a, n / 4 * 3 + 3);
	if (o == NULL)
		return dec_nomem(d);
	for (i = 0; i < n; i++) {
		if (s[i] == '\r' || s[i] == '\n')
			continue;
		if (s[i] == '=') {
			/* "xx==" or "xxx=", then only line breaks. */
			if (!padded || (pad == 0 && q < 2))
				goto bad;
			if (++pad + q > 4)
				goto bad;
			continue;
		}
		if (pad > 0)
			goto bad;
		x = json_b64_val(s[i], url);
		if (x < 0)
			goto bad;
		w = w << 6 | (uint32_t)x;
		if (++q == 4) {
			o[on++] = (unsigned char)(w >> 16);
			o[on++] = (unsigned char)(w >> 8);
			o[on++] = (unsigned char)w;
			q = 0;
			w = 0;
		}
	}
	if (pad > 0 && pad + q != 4)
		goto bad;
	if (padded && pad == 0 && q != 0)
		goto bad;
	if (q == 1)
		goto bad;
	if (q == 2)
		o[on++] = (unsigned char)(w >> 4);
	else if (q == 3) {
		o[on++] = (unsigned char)(w >> 10);
		o[on++] = (unsigned char)(w >> 2);
	}
	out->data = o;
	out->len = on;
	return 0;
bad:
	return dec_fail(d, "bad base64 at byte %zu", i);
}

/* Look key up among fields; complain about unknown and repeated ones. */
static int
dec_field(struct json_dec *d, const struct json_field *fields,
    const char *what, const char *key, uint32_t *seen)
{
	const struct json_field *f;

	for (f = fields; f->name != NULL; f++)
		if (strcmp(f->name, key) == 0)
			break;
	if (f->name == NULL) {
		if (strlen(key) > 40)
			return dec_fail(d, "unknown field \"%.40s...\" in %s",
			    key, what);
		return dec_fail(d, "unknown field \"%s\" in %s", key, what);
	}
	if (*seen & UINT32_C(1) << f->id)
		return dec_fail(d, "field \"%s\" given twice", key);
	*seen |= UINT32_C(1) << f->id;
	return f->id;
}

static int
dec_want_object(struct json_dec *d, json_t *v)
{
	if (json_is_object(v))
		return 0;
	return dec_fail(d, "want an object, got %s", json_type_name(v));
}

static void *
dec_alloc(struct json_dec *d, size_t n)
{
	void *p = arena_alloc(d->a, n);

	if (p == NULL)
		dec_nomem(d);
	return p;
}

static int
dec_value(struct json_dec *d, json_t *o, Loggregator__V2__Value **out)
{
	Loggregator__V2__Value *v;
	const char *key;
	uint32_t seen = 0;
	json_t *x;
	size_t old;
	int id;

	if (dec_want_object(d, o) == -1)
		return -1;
	if ((v = dec_alloc(d, sizeof(*v))) == NULL)
		return -1;
	loggregator__v2__value__init(v);
	json_object_foreach(o, key, x) {
		if ((id = dec_field(d, value_fields, "a value", key,
		    &seen)) < 0)
			return -1;
		if (json_is_null(x))
			continue;
		if (v->data_case != LOGGREGATOR__V2__VALUE__DATA__NOT_SET)
			return dec_fail(d, "\"%s\": value has text, integer "
			    "or decimal already", key);
		old = dec_push(d, ".%s", key);
		switch (id) {
		case F_TEXT:
			v->text = (char *)protobuf_c_empty_string;
			if (dec_string(d, x, &v->text) == -1)
				return -1;
			v->data_case = LOGGREGATOR__V2__VALUE__DATA_TEXT;
			break;
		case F_INTEGER:
			v->integer = 0;
			if (dec_i64(d, x, &v->integer) == -1)
				return -1;
			v->data_case = LOGGREGATOR__V2__VALUE__DATA_INTEGER;
			break;
		default:
			v->decimal = 0;
			if (dec_double(d, x, &v->decimal) == -1)
				return -1;
			v->data_case = LOGGREGATOR__V2__VALUE__DATA_DECIMAL;
			break;
		}
		dec_pop(d, old);
	}
	*out = v;
	return 0;
}

static int
dec_tags(struct json_dec *d, json_t *o, Loggregator__V2__Envelope *e)
{
	Loggregator__V2__Envelope__TagsEntry *t;
	const char *key;
	json_t *x;
	size_t old, i = 0;

	if (json_is_null(o))
		return 0;
	if (dec_want_object(d, o) == -1)
		return -1;
	e->tags = arena_alloc(d->a, json_object_size(o) * sizeof(*e->tags));
	if (e->tags == NULL)
		return dec_nomem(d);
	json_object_foreach(o, key, x) {
		old = dec_push_key(d, key);
		if ((t = dec_alloc(d, sizeof(*t))) == NULL)
			return -1;
		loggregator__v2__envelope__tags_entry__init(t);
		t->key = arena_strdup(d->a, key);
		if (t->key == NULL)
			return dec_nomem(d);
		if (!json_is_string(x))
			return dec_fail(d, "want a string, got %s",
			    json_type_name(x));
		if (dec_string(d, x, &t->value) == -1)
			return -1;
		e->tags[i++] = t;
		dec_pop(d, old);
	}
	e->n_tags = i;
	return 0;
}

static int
dec_dtags(struct json_dec *d, json_t *o, Loggregator__V2__Envelope *e)
{
	Loggregator__V2__Envelope__DeprecatedTagsEntry *t;
	const char *key;
	json_t *x;
	size_t old, i = 0;

	if (json_is_null(o))
		return 0;
	if (dec_want_object(d, o) == -1)
		return -1;
	e->deprecated_tags = arena_alloc(d->a,
	    json_object_size(o) * sizeof(*e->deprecated_tags));
	if (e->deprecated_tags == NULL)
		return dec_nomem(d);
	json_object_foreach(o, key, x) {
		old = dec_push_key(d, key);
		if ((t = dec_alloc(d, sizeof(*t))) == NULL)
			return -1;
		loggregator__v2__envelope__deprecated_tags_entry__init(t);
		t->key = arena_strdup(d->a, key);
		if (t->key == NULL)
			return dec_nomem(d);
		if (dec_value(d, x, &t->value) == -1)
			return -1;
		e->deprecated_tags[i++] = t;
		dec_pop(d, old);
	}
	e->n_deprecated_tags = i;
	return 0;
}

static int
dec_log(struct json_dec *d, json_t *o, Loggregator__V2__Log **out)
{
	Loggregator__V2__Log *l;
	const char *key;
	uint32_t seen = 0;
	uint64_t mag;
	json_t *x;
	size_t old;
	int id, neg;

	if ((l = dec_alloc(d, sizeof(*l))) == NULL)
		return -1;
	loggregator__v2__log__init(l);
	json_object_foreach(o, key, x) {
		if ((id = dec_field(d, log_fields, "log", key, &seen)) < 0)
			return -1;
		old = dec_push(d, ".%s", key);
		if (id == F_PAYLOAD) {
			if (dec_bytes(d, x, &l->payload) == -1)
				return -1;
		} else if (json_is_string(x)) {
			if (strcmp(json_string_value(x), "OUT") == 0)
				l->type = LOGGREGATOR__V2__LOG__TYPE__OUT;
			else if (strcmp(json_string_value(x), "ERR") == 0)
				l->type = LOGGREGATOR__V2__LOG__TYPE__ERR;
			else
				return dec_fail(d, "want OUT or ERR, got "
				    "\"%.40s\"", json_string_value(x));
		} else if (json_is_number(x)) {
			/* proto3 enums are open: any int32 will do. */
			if (dec_int(d, x, INT32_MIN, INT32_MAX, &neg,
			    &mag) == -1)
				return -1;
			l->type = (Loggregator__V2__Log__Type)(neg ?
			    -(int64_t)mag : (int64_t)mag);
		} else if (!json_is_null(x))
			return dec_fail(d, "want OUT, ERR or a number, got %s",
			    json_type_name(x));
		dec_pop(d, old);
	}
	*out = l;
	return 0;
}

static int
dec_counter(struct json_dec *d, json_t *o, Loggregator__V2__Counter **out)
{
	Loggregator__V2__Counter *c;
	const char *key;
	uint32_t seen = 0;
	json_t *x;
	size_t old;
	int id, rc;

	if ((c = dec_alloc(d, sizeof(*c))) == NULL)
		return -1;
	loggregator__v2__counter__init(c);
	json_object_foreach(o, key, x) {
		if ((id = dec_field(d, counter_fields, "counter", key,
		    &seen)) < 0)
			return -1;
		old = dec_push(d, ".%s", key);
		if (id == F_NAME)
			rc = dec_string(d, x, &c->name);
		else if (id == F_DELTA)
			rc = dec_u64(d, x, &c->delta);
		else
			rc = dec_u64(d, x, &c->total);
		if (rc == -1)
			return -1;
		dec_pop(d, old);
	}
	*out = c;
	return 0;
}

static int
dec_gvalue(struct json_dec *d, json_t *o, Loggregator__V2__GaugeValue **out)
{
	Loggregator__V2__GaugeValue *g;
	const char *key;
	uint32_t seen = 0;
	json_t *x;
	size_t old;
	int id, rc;

	if (dec_want_object(d, o) == -1)
		return -1;
	if ((g = dec_alloc(d, sizeof(*g))) == NULL)
		return -1;
	loggregator__v2__gauge_value__init(g);
	json_object_foreach(o, key, x) {
		if ((id = dec_field(d, gvalue_fields, "a gauge value", key,
		    &seen)) < 0)
			return -1;
		old = dec_push(d, ".%s", key);
		if (id == F_UNIT)
			rc = dec_string(d, x, &g->unit);
		else
			rc = dec_double(d, x, &g->value);
		if (rc == -1)
			return -1;
		dec_pop(d, old);
	}
	*out = g;
	return 0;
}

static int
dec_gauge(struct json_dec *d, json_t *o, Loggregator__V2__Gauge **out)
{
	Loggregator__V2__Gauge *g;
	Loggregator__V2__Gauge__MetricsEntry *m;
	const char *key, *mkey;
	uint32_t seen = 0;
	json_t *x, *y;
	size_t old, old2, i;

	if ((g = dec_alloc(d, sizeof(*g))) == NULL)
		return -1;
	loggregator__v2__gauge__init(g);
	json_object_foreach(o, key, x) {
		if (dec_field(d, gauge_fields, "gauge", key, &seen) < 0)
			return -1;
		if (json_is_null(x))
			continue;
		old = dec_push(d, ".%s", key);
		if (dec_want_object(d, x) == -1)
			return -1;
		g->metrics = arena_alloc(d->a,
		    json_object_size(x) * sizeof(*g->metrics));
		if (g->metrics == NULL)
			return dec_nomem(d);
		i = 0;
		json_object_foreach(x, mkey, y) {
			old2 = dec_push_key(d, mkey);
			if ((m = dec_alloc(d, sizeof(*m))) == NULL)
				return -1;
			loggregator__v2__gauge__metrics_entry__init(m);
			m->key = arena_strdup(d->a, mkey);
			if (m->key == NULL)
				return dec_nomem(d);
			if (dec_gvalue(d, y, &m->value) == -1)
				return -1;
			g->metrics[i++] = m;
			dec_pop(d, old2);
		}
		g->n_metrics = i;
		dec_pop(d, old);
	}
	*out = g;
	return 0;
}

static int
dec_timer(struct json_dec *d, json_t *o, Loggregator__V2__Timer **out)
{
	Loggregator__V2__Timer *t;
	const char *key;
	uint32_t seen = 0;
	json_t *x;
	size_t old;
	int id, rc;

	if ((t = dec_alloc(d, sizeof(*t))) == NULL)
		return -1;
	loggregator__v2__timer__init(t);
	json_object_foreach(o, key, x) {
		if ((id = dec_field(d, timer_fields, "timer", key, &seen)) < 0)
			return -1;
		old = dec_push(d, ".%s", key);
		if (id == F_NAME)
			rc = dec_string(d, x, &t->name);
		else if (id == F_START)
			rc = dec_i64(d, x, &t->start);
		else
			rc = dec_i64(d, x, &t->stop);
		if (rc == -1)
			return -1;
		dec_pop(d, old);
	}
	*out = t;
	return 0;
}

static int
dec_event(struct json_dec *d, json_t *o, Loggregator__V2__Event **out)
{
	Loggregator__V2__Event *ev;
	const char *key;
	uint32_t seen = 0;
	json_t *x;
	size_t old;
	int id, rc;

	if ((ev = dec_alloc(d, sizeof(*ev))) == NULL)
		return -1;
	loggregator__v2__event__init(ev);
	json_object_foreach(o, key, x) {
		if ((id = dec_field(d, event_fields, "event", key, &seen)) < 0)
			return -1;
		old = dec_push(d, ".%s", key);
		if (id == F_TITLE)
			rc = dec_string(d, x, &ev->title);
		else
			rc = dec_string(d, x, &ev->body);
		if (rc == -1)
			return -1;
		dec_pop(d, old);
	}
	*out = ev;
	return 0;
}

/* One member of the message oneof; null leaves it unset, as in Go. */
static int
dec_message(struct json_dec *d, json_t *x, int id, Loggregator__V2__Envelope *e)
{
	if (json_is_null(x))
		return 0;
	if (e->message_case != LOGGREGATOR__V2__ENVELOPE__MESSAGE__NOT_SET)
		return dec_fail(d, "envelope has a message already");
	if (dec_want_object(d, x) == -1)
		return -1;
	switch (id) {
	case F_LOG:
		e->message_case = LOGGREGATOR__V2__ENVELOPE__MESSAGE_LOG;
		return dec_log(d, x, &e->log);
	case F_COUNTER:
		e->message_case = LOGGREGATOR__V2__ENVELOPE__MESSAGE_COUNTER;
		return dec_counter(d, x, &e->counter);
	case F_GAUGE:
		e->message_case = LOGGREGATOR__V2__ENVELOPE__MESSAGE_GAUGE;
		return dec_gauge(d, x, &e->gauge);
	case F_TIMER:
		e->message_case = LOGGREGATOR__V2__ENVELOPE__MESSAGE_TIMER;
		return dec_timer(d, x, &e->timer);
	default:
		e->message_case = LOGGREGATOR__V2__ENVELOPE__MESSAGE_EVENT;
		return dec_event(d, x, &e->event);
	}
}

static int
dec_envelope(struct json_dec *d, json_t *o, Loggregator__V2__Envelope **out)
{
	Loggregator__V2__Envelope *e;
	const char *key;
	uint32_t seen = 0;
	json_t *x;
	size_t old;
	int id, rc;

	if (dec_want_object(d, o) == -1)
		return -1;
	if ((e = dec_alloc(d, sizeof(*e))) == NULL)
		return -1;
	loggregator__v2__envelope__init(e);
	json_object_foreach(o, key, x) {
		if ((id = dec_field(d, env_fields, "envelope", key,
		    &seen)) < 0)
			return -1;
		old = dec_push(d, "%s%s", d->plen > 0 ? "." : "", key);
		switch (id) {
		case F_TIMESTAMP:
			rc = dec_i64(d, x, &e->timestamp);
			break;
		case F_SOURCE_ID:
			rc = dec_string(d, x, &e->source_id);
			break;
		case F_INSTANCE_ID:
			rc = dec_string(d, x, &e->instance_id);
			break;
		case F_DTAGS:
			rc = dec_dtags(d, x, e);
			break;
		case F_TAGS:
			rc = dec_tags(d, x, e);
			break;
		default:
			rc = dec_message(d, x, id, e);
			break;
		}
		if (rc == -1)
			return -1;
		dec_pop(d, old);
	}
	*out = e;
	return 0;
}

static int
dec_top(struct json_dec *d, json_t *root, Loggregator__V2__Envelope ***out,
    size_t *n)
{
	Loggregator__V2__Envelope **v;
	json_t *batch, *x;
	const char *key;
	size_t i, old;

	if (!json_is_object(root))
		return dec_fail(d, "want an object, got %s",
		    json_type_name(root));
	batch = json_object_get(root, "batch");
	if (batch == NULL) {
		v = arena_alloc(d->a, sizeof(*v));
		if (v == NULL)
			return dec_nomem(d);
		if (dec_envelope(d, root, &v[0]) == -1)
			return -1;
		*out = v;
		*n = 1;
		return 0;
	}
	json_object_foreach(root, key, x)
		if (strcmp(key, "batch") != 0)
			return dec_fail(d, "unknown field \"%.40s\" in batch",
			    key);
	if (json_is_null(batch)) {
		if ((v = dec_alloc(d, sizeof(*v))) == NULL)
			return -1;
		*out = v;
		*n = 0;
		return 0;
	}
	if (!json_is_array(batch))
		return dec_fail(d, "batch: want an array, got %s",
		    json_type_name(batch));
	v = arena_alloc(d->a, json_array_size(batch) * sizeof(*v));
	if (v == NULL)
		return dec_nomem(d);
	json_array_foreach(batch, i, x) {
		old = dec_push(d, "batch[%zu]", i);
		if (dec_envelope(d, x, &v[i]) == -1)
			return -1;
		dec_pop(d, old);
	}
	*out = v;
	*n = json_array_size(batch);
	return 0;
}

int
json_decode(const char *text, size_t len, struct arena *a,
    Loggregator__V2__Envelope ***out, size_t *n, char *err, size_t errlen)
{
	struct json_dec d;
	json_error_t je;
	json_t *root;
	int rc;

	memset(&d, 0, sizeof(d));
	d.text = text;
	d.len = len;
	d.a = a;
	d.err = err;
	d.errlen = errlen;
	if (errlen > 0)
		err[0] = '\0';
	root = json_loadb(text, len,
	    JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL, &je);
	if (root == NULL) {
		rc = dec_fail(&d, "bad json at line %d column %d: %s",
		    je.line, je.column, je.text);
		if (json_error_code(&je) == json_error_out_of_memory)
			errno = ENOMEM;
		return rc;
	}
	rc = dec_top(&d, root, out, n);
	json_decref(root);
	return rc;
}
