/* test_conv: conv against the golden vectors recorded from Go's
 * conversion.ToV2/ToV1 and the agent's udp-forwarder, plus edge cases. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "arena.h"
#include "buf.h"
#include "conv.h"
#include "tap.h"

#define NELEM(x) (sizeof(x) / sizeof((x)[0]))
#define ARENA_MAX (64u << 20)

/*
 * Decoding Go's v1 outputs. Some lack a proto2 required field on purpose
 * (requestId, LogMessage.message), and protobuf-c refuses those, so the
 * expected side is decoded with a copy of the descriptors where required
 * strings, messages and bytes are optional. Scalars keep their label: Go's
 * ToV1 always sets them. protobuf-c has no presence flag for such bytes,
 * so the copy gives them a default whose data pointer marks "absent".
 */
static uint8_t absent_mark[1];
static const ProtobufCBinaryData absent_bytes = { 0, absent_mark };

static void *relaxed_mem[64];
static size_t relaxed_n;

static void *
keep(void *p)
{
	if (p == NULL || relaxed_n == NELEM(relaxed_mem)) {
		fprintf(stderr, "test_conv: out of relaxed descriptor room\n");
		exit(1);
	}
	return relaxed_mem[relaxed_n++] = p;
}

static const ProtobufCMessageDescriptor *
relax(const ProtobufCMessageDescriptor *d)
{
	ProtobufCMessageDescriptor *c = keep(malloc(sizeof(*c)));
	ProtobufCFieldDescriptor *f = keep(calloc(d->n_fields, sizeof(*f)));
	unsigned i;

	*c = *d;
	memcpy(f, d->fields, d->n_fields * sizeof(*f));
	c->fields = f;
	c->message_init = NULL;	/* so unpack applies default_value */
	for (i = 0; i < d->n_fields; i++) {
		if (f[i].type == PROTOBUF_C_TYPE_MESSAGE)
			f[i].descriptor = relax(f[i].descriptor);
		if (f[i].label != PROTOBUF_C_LABEL_REQUIRED)
			continue;
		switch (f[i].type) {
		case PROTOBUF_C_TYPE_BYTES:
			f[i].default_value = &absent_bytes;
			/* FALLTHROUGH */
		case PROTOBUF_C_TYPE_STRING:
		case PROTOBUF_C_TYPE_MESSAGE:
			f[i].label = PROTOBUF_C_LABEL_OPTIONAL;
			break;
		default:
			break;
		}
	}
	return c;
}

static const ProtobufCMessageDescriptor *relaxed_v1;

/*
 * A canonical text of a decoded message, to compare Go's bytes with
 * conv's structs: fields by descriptor, absent ones left out, map entries
 * sorted, doubles as bits. A required string or message that is NULL is
 * absent; so are required bytes with data NULL (conv's unset) or the
 * absent mark (the relaxed decode).
 */
static void dump_msg(struct buf *b, const ProtobufCMessage *m, int in_map);

static void
dump_str(struct buf *b, const char *s)
{
	buf_putc(b, '"');
	for (; *s != '\0'; s++) {
		if (*s == '"' || *s == '\\' || (unsigned char)*s < 0x20 ||
		    (unsigned char)*s >= 0x7f)
			buf_printf(b, "\\x%02x", (unsigned char)*s);
		else
			buf_putc(b, *s);
	}
	buf_putc(b, '"');
}

static int
is_map_entry(const ProtobufCFieldDescriptor *f)
{
	const ProtobufCMessageDescriptor *d = f->descriptor;
	size_t n;

	if (f->type != PROTOBUF_C_TYPE_MESSAGE || f->label !=
	    PROTOBUF_C_LABEL_REPEATED)
		return 0;
	n = strlen(d->name);
	return n > 5 && strcmp(d->name + n - 5, "Entry") == 0 &&
	    d->n_fields == 2;
}

static void
dump_one(struct buf *b, const ProtobufCFieldDescriptor *f, const void *p,
    int in_map)
{
	uint64_t bits;
	size_t i;

	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
	case PROTOBUF_C_TYPE_ENUM:
		buf_printf(b, "%" PRId32, *(const int32_t *)p);
		break;
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		buf_printf(b, "%" PRIu32, *(const uint32_t *)p);
		break;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		buf_printf(b, "%" PRId64, *(const int64_t *)p);
		break;
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		buf_printf(b, "%" PRIu64, *(const uint64_t *)p);
		break;
	case PROTOBUF_C_TYPE_FLOAT:
		buf_printf(b, "f%08" PRIx32, *(const uint32_t *)p);
		break;
	case PROTOBUF_C_TYPE_DOUBLE:
		memcpy(&bits, p, sizeof(bits));
		buf_printf(b, "d%016" PRIx64 "(%g)", bits, *(const double *)p);
		break;
	case PROTOBUF_C_TYPE_BOOL:
		buf_printf(b, "%d", *(const protobuf_c_boolean *)p);
		break;
	case PROTOBUF_C_TYPE_STRING:
		dump_str(b, *(char *const *)p ? *(char *const *)p : "");
		break;
	case PROTOBUF_C_TYPE_BYTES: {
		const ProtobufCBinaryData *bd = p;

		buf_puts(b, "b'");
		for (i = 0; i < bd->len; i++)
			buf_printf(b, "%02x", bd->data[i]);
		buf_putc(b, '\'');
		break;
	}
	case PROTOBUF_C_TYPE_MESSAGE:
		dump_msg(b, *(const ProtobufCMessage *const *)p, in_map);
		break;
	}
}

static size_t
elt_size(ProtobufCType t)
{
	switch (t) {
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
	case PROTOBUF_C_TYPE_DOUBLE:
		return 8;
	case PROTOBUF_C_TYPE_BOOL:
		return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_STRING:
	case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(void *);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	default:
		return 4;
	}
}

static int
cmp_str(const void *x, const void *y)
{
	return strcmp(*(char *const *)x, *(char *const *)y);
}

static char *
buf_take(struct buf *b)
{
	char *s;

	buf_putc(b, '\0');
	s = strdup(b->data);
	buf_reset(b);
	return s;
}

static void
dump_map(struct buf *b, const ProtobufCFieldDescriptor *f, void *const *v,
    size_t n)
{
	struct buf eb;
	char **ents = calloc(n, sizeof(*ents));
	size_t i;

	buf_init(&eb, 256, ARENA_MAX);
	for (i = 0; i < n; i++) {
		dump_one(&eb, f, &v[i], 1);
		ents[i] = buf_take(&eb);
	}
	qsort(ents, n, sizeof(*ents), cmp_str);
	for (i = 0; i < n; i++) {
		buf_printf(b, "%s%s", i ? "," : "", ents[i]);
		free(ents[i]);
	}
	free(ents);
	buf_release(&eb);
}

static int
field_absent(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f,
    const void *p)
{
	const char *q = (const char *)m + f->quantifier_offset;

	if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
		return *(const uint32_t *)q != f->id;
	switch (f->type) {
	case PROTOBUF_C_TYPE_STRING:
	case PROTOBUF_C_TYPE_MESSAGE:
		return *(void *const *)p == NULL;
	case PROTOBUF_C_TYPE_BYTES: {
		const ProtobufCBinaryData *bd = p;

		if (bd->data == absent_mark)
			return 1;
		if (f->label == PROTOBUF_C_LABEL_REQUIRED)
			return bd->data == NULL && bd->len == 0;
		break;
	}
	default:
		break;
	}
	if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset != 0)
		return !*(const protobuf_c_boolean *)q;
	return 0;
}

static void
dump_msg(struct buf *b, const ProtobufCMessage *m, int in_map)
{
	const ProtobufCMessageDescriptor *d;
	const ProtobufCFieldDescriptor *f;
	const char *p;
	unsigned i;
	size_t n, k;

	buf_putc(b, '{');
	if (m == NULL) {
		buf_puts(b, in_map ? "}" : "NULL}");
		return;
	}
	d = m->descriptor;
	for (i = 0; i < d->n_fields; i++) {
		f = &d->fields[i];
		p = (const char *)m + f->offset;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			n = *(const size_t *)((const char *)m +
			    f->quantifier_offset);
			if (n == 0)
				continue;
			buf_printf(b, "%u:[", f->id);
			if (is_map_entry(f))
				dump_map(b, f, *(void *const *)p, n);
			else
				for (k = 0; k < n; k++) {
					if (k > 0)
						buf_putc(b, ',');
					dump_one(b, f, *(const char *const *)p +
					    k * elt_size(f->type), 0);
				}
			buf_puts(b, "] ");
			continue;
		}
		/* In a map entry a missing key or value is its zero value. */
		if (!in_map && field_absent(m, f, p))
			continue;
		buf_printf(b, "%u:", f->id);
		dump_one(b, f, p, 0);
		buf_putc(b, ' ');
	}
	buf_putc(b, '}');
}

static char *
dump(const ProtobufCMessage *m, int complete)
{
	struct buf b;
	char *s;

	buf_init(&b, 1024, ARENA_MAX);
	if (complete >= 0)
		buf_printf(&b, "complete=%d ", complete);
	dump_msg(&b, m, 0);
	s = buf_take(&b);
	buf_release(&b);
	return s;
}

/* Lists of dumps, compared as multisets: ToV1's gauge order is random. */
struct dumps {
	char **v;
	size_t n;
};

static void
dumps_add(struct dumps *d, char *s)
{
	d->v = realloc(d->v, (d->n + 1) * sizeof(*d->v));
	d->v[d->n++] = s;
}

static void
dumps_free(struct dumps *d)
{
	size_t i;

	for (i = 0; i < d->n; i++)
		free(d->v[i]);
	free(d->v);
	d->v = NULL;
	d->n = 0;
}

static int
dumps_equal(struct dumps *want, struct dumps *got)
{
	size_t i;
	int same = want->n == got->n;

	if (want->n > 1)
		qsort(want->v, want->n, sizeof(char *), cmp_str);
	if (got->n > 1)
		qsort(got->v, got->n, sizeof(char *), cmp_str);
	for (i = 0; same && i < want->n; i++)
		same = strcmp(want->v[i], got->v[i]) == 0;
	return same;
}

static void
dumps_diag(const struct dumps *want, const struct dumps *got)
{
	size_t i;

	for (i = 0; i < want->n; i++)
		diag("want %s", want->v[i]);
	for (i = 0; i < got->n; i++)
		diag("got  %s", got->v[i]);
}

static uint8_t *
unhex(const char *h, size_t *len)
{
	size_t n = strlen(h) / 2, i;
	uint8_t *p = malloc(n + 1);
	unsigned x;

	for (i = 0; i < n; i++) {
		if (sscanf(h + 2 * i, "%2x", &x) != 1) {
			free(p);
			return NULL;
		}
		p[i] = (uint8_t)x;
	}
	*len = n;
	return p;
}

/*
 * Pack with protobuf-c and decode again: the same dump must come back.
 * NULL when it does, else a line saying what came back instead.
 */
static char *
roundtrip_v2(struct arena *a, const Loggregator__V2__Envelope *e,
    const char *want)
{
	size_t n = loggregator__v2__envelope__get_packed_size(e);
	uint8_t *p = malloc(n + 1);
	Loggregator__V2__Envelope *back;
	char *got = NULL, *bad = NULL;

	loggregator__v2__envelope__pack(e, p);
	back = loggregator__v2__envelope__unpack(&a->pb, n, p);
	if (back == NULL)
		bad = strdup("repacked: does not decode");
	else if (strcmp(want, got = dump(&back->base, -1)) != 0 &&
	    asprintf(&bad, "repacked %s", got) == -1)
		bad = NULL;
	free(got);
	free(p);
	return bad;
}

static char *
roundtrip_v1(struct arena *a, const Events__Envelope *e, const char *want)
{
	size_t n = events__envelope__get_packed_size(e);
	uint8_t *p = malloc(n + 1);
	Events__Envelope *back;
	char *got = NULL, *bad = NULL;

	events__envelope__pack(e, p);
	back = conv_v1_unpack(a, p, n);
	if (back == NULL)
		bad = strdup("repacked: does not decode");
	else if (strcmp(want, got = dump(&back->base,
	    conv_v1_complete(back))) != 0 &&
	    asprintf(&bad, "repacked %s", got) == -1)
		bad = NULL;
	free(got);
	free(p);
	return bad;
}

/* Golden records. */

enum fn { FN_V2_DEPRECATED, FN_V2_PREFERRED, FN_AGENT, FN_V1,
	FN_CONVERGE_FALSE, FN_CONVERGE_TRUE, FN_UNKNOWN };

static enum fn
fn_of(const char *fn)
{
	if (strstr(fn, "usePreferredTags=false") != NULL)
		return FN_V2_DEPRECATED;
	if (strstr(fn, "usePreferredTags=true") != NULL)
		return FN_V2_PREFERRED;
	if (strncmp(fn, "udp-forwarder", 13) == 0)
		return FN_AGENT;
	if (strstr(fn, "conversion.ToV1") != NULL)
		return FN_V1;
	if (strstr(fn, "convergeTags(usePreferred=true") != NULL)
		return FN_CONVERGE_TRUE;
	if (strstr(fn, "convergeTags(usePreferred=false") != NULL)
		return FN_CONVERGE_FALSE;
	return FN_UNKNOWN;
}

static const char *const fn_names[] = {
	"ToV2(false)", "ToV2(true)", "udp-forwarder", "ToV1",
	"convergeTags(false)", "convergeTags(true)", "?",
};

static const char *
jstr(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s != NULL ? s : "";
}

/* Run one conversion into out (NULL dumps to skip). 0, or -1 with errno. */
static int
convert(enum fn fn, json_t *params, const void *in, size_t len,
    struct arena *src, struct arena *dst, struct dumps *out)
{
	struct conv_agent ag;
	Loggregator__V2__Envelope *e2, *v2;
	Events__Envelope *v1, **o1;
	size_t n, i;
	int rc;

	if (fn == FN_CONVERGE_TRUE || fn == FN_CONVERGE_FALSE) {
		v2 = loggregator__v2__envelope__unpack(&src->pb, len, in);
		if (v2 == NULL) {
			errno = EBADMSG;
			return -1;
		}
		if (conv_converge_tags(v2, fn == FN_CONVERGE_TRUE, dst) == -1)
			return -1;
		if (out != NULL) {
			char *d = dump(&v2->base, -1), *bad;

			if ((bad = roundtrip_v2(src, v2, d)) != NULL)
				dumps_add(out, bad);
			dumps_add(out, d);
		}
		return 0;
	}
	if (fn == FN_V1) {
		v2 = loggregator__v2__envelope__unpack(&src->pb, len, in);
		if (v2 == NULL) {
			errno = EBADMSG;
			return -1;
		}
		if (conv_v2_to_v1(v2, dst, &o1, &n) == -1)
			return -1;
		for (i = 0; out != NULL && i < n; i++) {
			char *d = dump(&o1[i]->base, conv_v1_complete(o1[i]));
			char *bad = NULL;

			/* Pack only what doppler would: complete ones. */
			if (conv_v1_complete(o1[i]))
				bad = roundtrip_v1(src, o1[i], d);
			if (bad != NULL)
				dumps_add(out, bad);
			dumps_add(out, d);
		}
		return 0;
	}
	/* Go's strict Unmarshal first: when it fails there is no output. */
	if ((v1 = conv_v1_unpack(src, in, len)) == NULL)
		return errno == EBADMSG ? 0 : -1;
	ag.deployment = jstr(params, "deployment");
	ag.job = jstr(params, "job");
	ag.index = jstr(params, "index");
	ag.ip = jstr(params, "ip");
	if (fn == FN_AGENT)
		rc = conv_v1_agent_to_v2(v1, &ag, dst, &e2);
	else
		rc = conv_v1_to_v2(v1, fn == FN_V2_PREFERRED, dst, &e2);
	if (rc == -1)
		return errno == EINVAL ? 0 : -1;
	if (out != NULL) {
		char *d = dump(&e2->base, -1), *bad;

		if ((bad = roundtrip_v2(src, e2, d)) != NULL)
			dumps_add(out, bad);
		dumps_add(out, d);
	}
	return 0;
}

static void
run_record(json_t *r, struct arena *src, struct arena *dst)
{
	const char *set = jstr(r, "set"), *name = jstr(r, "case");
	enum fn fn = fn_of(jstr(r, "fn"));
	json_t *outs = json_object_get(r, "out"), *errs, *o;
	struct dumps want = { 0 }, got = { 0 };
	struct arena small;
	uint8_t *in, *b;
	size_t len, blen, i, limit;
	ProtobufCMessage *m;
	int rc, err, same, good = 1;

	errs = json_object_get(json_object_get(r, "extra"),
	    "strict_marshal_errors");
	if ((in = unhex(jstr(r, "in"), &len)) == NULL || fn == FN_UNKNOWN) {
		ok(0, "%s/%s/%s: readable record", set, name, fn_names[fn]);
		free(in);
		return;
	}
	arena_reset(src);
	arena_reset(dst);
	json_array_foreach(outs, i, o) {
		if ((b = unhex(json_string_value(o), &blen)) == NULL)
			good = 0;
		else if (fn == FN_V1) {
			const char *why = json_string_value(
			    json_array_get(errs, i));

			m = protobuf_c_message_unpack(relaxed_v1, &src->pb,
			    blen, b);
			if (m == NULL)
				good = 0;
			else
				dumps_add(&want, dump(m,
				    why == NULL || *why == '\0'));
		} else {
			m = protobuf_c_message_unpack(
			    &loggregator__v2__envelope__descriptor, &src->pb,
			    blen, b);
			if (m == NULL)
				good = 0;
			else
				dumps_add(&want, dump(m, -1));
		}
		free(b);
	}
	rc = convert(fn, json_object_get(r, "params"), in, len, src, dst, &got);
	err = errno;
	same = dumps_equal(&want, &got);
	if (!ok(good && rc == 0 && same, "%s/%s/%s", set, name,
	    fn_names[fn])) {
		if (!good)
			diag("an expected output does not decode");
		if (rc == -1)
			diag("convert: %s", strerror(err));
		dumps_diag(&want, &got);
	}
	dumps_free(&want);
	dumps_free(&got);

	/* Fail each allocation in turn: the arena limit grows until the
	 * conversion fits, and every shorter run must end in ENOMEM. */
	good = 1;
	for (limit = 256; limit < (1u << 20); limit += 64) {
		arena_reset(src);
		if (arena_init(&small, 256, limit) == -1)
			break;
		errno = 0;
		rc = convert(fn, json_object_get(r, "params"), in, len, src,
		    &small, NULL);
		arena_release(&small);
		if (rc == 0)
			break;
		if (errno != ENOMEM) {
			err = errno;
			good = 0;
			break;
		}
	}
	if (!ok(good && rc == 0, "%s/%s/%s: short arena gives ENOMEM", set,
	    name, fn_names[fn]) && !good)
		diag("limit %zu: %s", limit, strerror(err));
	free(in);
}

static void
run_golden(const char *path, struct arena *src, struct arena *dst)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	json_error_t err;
	json_t *r;

	if (f == NULL) {
		ok(0, "open %s: %s", path, strerror(errno));
		return;
	}
	while (getline(&line, &cap, f) > 0) {
		if (line[0] == '\n')
			continue;
		if ((r = json_loads(line, 0, &err)) == NULL) {
			ok(0, "%s:%d: %s", path, err.line, err.text);
			continue;
		}
		run_record(r, src, dst);
		json_decref(r);
	}
	free(line);
	fclose(f);
}

/* Hand-written cases. */

static Events__Envelope *
v1_new(struct arena *a, const char *origin, int type)
{
	Events__Envelope *e = arena_alloc(a, sizeof(*e));

	events__envelope__init(e);
	e->origin = (char *)origin;
	e->eventtype = type;
	return e;
}

static void
v1_tag(struct arena *a, Events__Envelope *e, const char *k, const char *v)
{
	Events__Envelope__TagsEntry **t, *ent;

	t = arena_alloc(a, (e->n_tags + 1) * sizeof(*t));
	if (e->n_tags)
		memcpy(t, e->tags, e->n_tags * sizeof(*t));
	ent = arena_alloc(a, sizeof(*ent));
	events__envelope__tags_entry__init(ent);
	ent->key = (char *)k;
	ent->value = (char *)v;
	t[e->n_tags++] = ent;
	e->tags = t;
}

/* The v2 tag, or deprecated text, named k; NULL when absent. */
static const char *
v2_get(const Loggregator__V2__Envelope *e, const char *k)
{
	const char *v = NULL;
	size_t i;

	for (i = 0; i < e->n_tags; i++)
		if (strcmp(e->tags[i]->key, k) == 0)
			v = e->tags[i]->value;
	for (i = 0; i < e->n_deprecated_tags; i++)
		if (strcmp(e->deprecated_tags[i]->key, k) == 0)
			v = e->deprecated_tags[i]->value->text;
	return v;
}

static const char *
v1_get(const Events__Envelope *e, const char *k)
{
	const char *v = NULL;
	size_t i;

	for (i = 0; i < e->n_tags; i++)
		if (strcmp(e->tags[i]->key, k) == 0)
			v = e->tags[i]->value;
	return v;
}

static int
streq(const char *x, const char *y)
{
	return x != NULL && y != NULL && strcmp(x, y) == 0;
}

static Loggregator__V2__Envelope *
v2_new(struct arena *a, const char *source_id)
{
	Loggregator__V2__Envelope *e = arena_alloc(a, sizeof(*e));

	loggregator__v2__envelope__init(e);
	e->timestamp = 7;
	e->source_id = (char *)source_id;
	return e;
}

static void
v2_tag(struct arena *a, Loggregator__V2__Envelope *e, const char *k,
    const char *v)
{
	Loggregator__V2__Envelope__TagsEntry **t, *ent;

	t = arena_alloc(a, (e->n_tags + 1) * sizeof(*t));
	if (e->n_tags)
		memcpy(t, e->tags, e->n_tags * sizeof(*t));
	ent = arena_alloc(a, sizeof(*ent));
	loggregator__v2__envelope__tags_entry__init(ent);
	ent->key = (char *)k;
	ent->value = (char *)v;
	t[e->n_tags++] = ent;
	e->tags = t;
}

/* A deprecated tag; kind 0 text, 1 integer, 2 decimal, 3 nothing set,
 * 4 no Value at all. */
static void
v2_dep(struct arena *a, Loggregator__V2__Envelope *e, const char *k, int kind,
    const char *s, int64_t i, double d)
{
	Loggregator__V2__Envelope__DeprecatedTagsEntry **t, *ent;
	Loggregator__V2__Value *v = arena_alloc(a, sizeof(*v));

	loggregator__v2__value__init(v);
	switch (kind) {
	case 0:
		v->data_case = LOGGREGATOR__V2__VALUE__DATA_TEXT;
		v->text = (char *)s;
		break;
	case 1:
		v->data_case = LOGGREGATOR__V2__VALUE__DATA_INTEGER;
		v->integer = i;
		break;
	case 2:
		v->data_case = LOGGREGATOR__V2__VALUE__DATA_DECIMAL;
		v->decimal = d;
		break;
	}
	t = arena_alloc(a, (e->n_deprecated_tags + 1) * sizeof(*t));
	if (e->n_deprecated_tags)
		memcpy(t, e->deprecated_tags,
		    e->n_deprecated_tags * sizeof(*t));
	ent = arena_alloc(a, sizeof(*ent));
	loggregator__v2__envelope__deprecated_tags_entry__init(ent);
	ent->key = (char *)k;
	ent->value = kind == 4 ? NULL : v;
	t[e->n_deprecated_tags++] = ent;
	e->deprecated_tags = t;
}

static void
v2_log(struct arena *a, Loggregator__V2__Envelope *e, const char *payload,
    int type)
{
	Loggregator__V2__Log *l = arena_alloc(a, sizeof(*l));

	loggregator__v2__log__init(l);
	l->payload.data = (uint8_t *)payload;
	l->payload.len = strlen(payload);
	l->type = type;
	e->message_case = LOGGREGATOR__V2__ENVELOPE__MESSAGE_LOG;
	e->log = l;
}

static void
v2_timer(struct arena *a, Loggregator__V2__Envelope *e)
{
	Loggregator__V2__Timer *t = arena_alloc(a, sizeof(*t));

	loggregator__v2__timer__init(t);
	t->start = 1;
	t->stop = 2;
	e->message_case = LOGGREGATOR__V2__ENVELOPE__MESSAGE_TIMER;
	e->timer = t;
}

/* A gauge of n metrics; value NULL leaves the entry without a value. */
static void
v2_gauge(struct arena *a, Loggregator__V2__Envelope *e, size_t n,
    const char *const *names, const char *const *units, const double *vals)
{
	Loggregator__V2__Gauge *g = arena_alloc(a, sizeof(*g));
	size_t i;

	loggregator__v2__gauge__init(g);
	g->metrics = arena_alloc(a, (n + 1) * sizeof(*g->metrics));
	for (i = 0; i < n; i++) {
		Loggregator__V2__Gauge__MetricsEntry *m = arena_alloc(a,
		    sizeof(*m));
		Loggregator__V2__GaugeValue *v = NULL;

		loggregator__v2__gauge__metrics_entry__init(m);
		m->key = (char *)names[i];
		if (units[i] != NULL) {
			v = arena_alloc(a, sizeof(*v));
			loggregator__v2__gauge_value__init(v);
			v->unit = (char *)units[i];
			v->value = vals[i];
		}
		m->value = v;
		g->metrics[i] = m;
	}
	g->n_metrics = n;
	e->message_case = LOGGREGATOR__V2__ENVELOPE__MESSAGE_GAUGE;
	e->gauge = g;
}

static Events__Envelope *
to_v1_one(struct arena *a, const Loggregator__V2__Envelope *e)
{
	Events__Envelope **o;
	size_t n;

	if (conv_v2_to_v1(e, a, &o, &n) == -1 || n != 1)
		return NULL;
	return o[0];
}

static void
test_v1_edges(struct arena *a)
{
	Loggregator__V2__Envelope *o;
	Events__Envelope *e;
	Events__HttpStartStop h = EVENTS__HTTP_START_STOP__INIT;
	Events__LogMessage lm = EVENTS__LOG_MESSAGE__INIT;
	Events__ContainerMetric cm = EVENTS__CONTAINER_METRIC__INIT;
	struct conv_agent ag = { "dep", "job", "idx", "1.2.3.4" };
	char key[32];
	size_t i;
	int rc;

	arena_reset(a);
	e = v1_new(a, NULL, EVENTS__ENVELOPE__EVENT_TYPE__LogMessage);
	errno = 0;
	ok(conv_v1_to_v2(e, 1, a, &o) == -1 && errno == EINVAL,
	    "v1: an empty envelope (no origin) is EINVAL");
	ok(!conv_v1_complete(e), "v1: an empty envelope is not complete");
	errno = 0;
	ok(conv_v1_unpack(a, "", 0) == NULL && errno == EBADMSG,
	    "v1: empty bytes do not decode (EBADMSG)");
	ok(conv_v1_unpack(a, "\x0a\x01o", 3) == NULL,
	    "v1: bytes without eventType do not decode");
	ok(conv_v1_unpack(a, "\x08\x01\x0a\x01o\x10\x05", 7) == NULL,
	    "v1: a known field with the wrong wire type is refused "
	    "(Go would skip it)");
	e = conv_v1_unpack(a, "\x0a\x01o\x10\x2a", 5);
	ok(e != NULL && e->eventtype == 42,
	    "v1: an undeclared eventType decodes");
	rc = e ? conv_v1_to_v2(e, 1, a, &o) : -1;
	ok(rc == 0 && o->message_case ==
	    LOGGREGATOR__V2__ENVELOPE__MESSAGE__NOT_SET &&
	    streq(v2_get(o, "__v1_type"), "42") && streq(o->source_id, "/"),
	    "v1: unknown event type gives tags and no message");
	errno = 0;
	ok(e && conv_v1_agent_to_v2(e, &ag, a, &o) == -1 && errno == EINVAL,
	    "v1: the forwarder drops an unknown event type");
	e = v1_new(a, "o", -3);
	ok(conv_v1_to_v2(e, 0, a, &o) == 0 &&
	    streq(v2_get(o, "__v1_type"), "-3"),
	    "v1: a negative event type is named in decimal");

	/* An HttpStartStop without a body converts from Go's defaults. */
	e = v1_new(a, "o", EVENTS__ENVELOPE__EVENT_TYPE__HttpStartStop);
	ok(conv_v1_to_v2(e, 1, a, &o) == 0 && o->message_case ==
	    LOGGREGATOR__V2__ENVELOPE__MESSAGE_TIMER &&
	    streq(v2_get(o, "request_id"),
	    "00000000-0000-0000-0000-000000000000") &&
	    streq(v2_get(o, "peer_type"), "Client") &&
	    streq(v2_get(o, "method"), "GET") &&
	    streq(v2_get(o, "forwarded"), "") &&
	    streq(v2_get(o, "status_code"), "0") &&
	    streq(o->instance_id, "0"),
	    "v1: HttpStartStop type without a body uses default values");
	h.uri = h.remoteaddress = h.useragent = "";
	h.requestid = arena_zalloc(a, sizeof(*h.requestid));
	events__uuid__init(h.requestid);
	h.requestid->low = 0x0706050403020100;
	h.requestid->high = 0x0f0e0d0c0b0a0908;
	h.peertype = 7;
	h.method = 99;
	h.n_forwarded = 3;
	h.forwarded = (char *[]){ "a", "", "c" };
	e->httpstartstop = &h;
	ok(conv_v1_to_v2(e, 1, a, &o) == 0 &&
	    streq(v2_get(o, "request_id"),
	    "00010203-0405-0607-0809-0a0b0c0d0e0f") &&
	    streq(v2_get(o, "peer_type"), "7") &&
	    streq(v2_get(o, "method"), "99") &&
	    streq(v2_get(o, "forwarded"), "a\n\nc"),
	    "v1: undeclared peer type and method are named in decimal");
	h.method = 0;
	ok(conv_v1_to_v2(e, 1, a, &o) == 0 && streq(v2_get(o, "method"), "0"),
	    "v1: method 0 is \"0\"");
	h.requestid = NULL;
	ok(conv_v1_to_v2(e, 1, a, &o) == -1 && errno == EINVAL,
	    "v1: HttpStartStop without requestId is EINVAL");

	/* LogMessage: an undeclared type is OUT; empty but present payload. */
	e = v1_new(a, "o", EVENTS__ENVELOPE__EVENT_TYPE__LogMessage);
	lm.message_type = 7;
	lm.message.data = NULL;
	lm.message.len = 0;
	e->logmessage = &lm;
	ok(conv_v1_to_v2(e, 1, a, &o) == 0 && o->log->type ==
	    LOGGREGATOR__V2__LOG__TYPE__OUT && o->log->payload.len == 0,
	    "v1: undeclared message type is OUT");
	ok(!conv_v1_complete(e), "v1: LogMessage.message with data NULL is "
	    "unset for conv_v1_complete");
	e = conv_v1_unpack(a, "\x0a\x01o\x10\x05\x42\x06\x0a\x00\x10\x02\x18"
	    "\x00", 13);
	ok(e != NULL && conv_v1_complete(e) && e->logmessage->message.len == 0,
	    "v1: a present but empty LogMessage.message counts as set");

	/* ContainerMetric: quotas without has_ are 0. */
	e = v1_new(a, "o", EVENTS__ENVELOPE__EVENT_TYPE__ContainerMetric);
	cm.applicationid = "";
	cm.instanceindex = -2;
	cm.memorybytesquota = 99;
	cm.diskbytes = UINT64_MAX;
	e->containermetric = &cm;
	ok(conv_v1_to_v2(e, 1, a, &o) == 0 && o->gauge->n_metrics == 5 &&
	    streq(o->instance_id, "-2") && streq(o->source_id, "/") &&
	    o->gauge->metrics[2]->value->value == 0 &&
	    o->gauge->metrics[1]->value->value == 18446744073709551616.0,
	    "v1: container metric quotas without has_ are 0");

	/* The forwarder: absent fields filled, empty ones kept. */
	e = v1_new(a, "orig", EVENTS__ENVELOPE__EVENT_TYPE__LogMessage);
	e->logmessage = &lm;
	e->deployment = "";
	v1_tag(a, e, "source_id", "x");
	v1_tag(a, e, "source_id", "");
	ok(conv_v1_agent_to_v2(e, &ag, a, &o) == 0 &&
	    streq(o->source_id, "orig") && streq(v2_get(o, "deployment"), "") &&
	    streq(v2_get(o, "job"), "job") &&
	    streq(v2_get(o, "ip"), "1.2.3.4") &&
	    e->n_tags == 2 && e->deployment[0] == '\0' && e->job == NULL,
	    "v1: forwarder: empty source_id becomes origin, absent fields "
	    "filled, input untouched");
	ok(conv_v1_agent_to_v2(e, NULL, a, &o) == 0 &&
	    streq(v2_get(o, "job"), ""), "v1: forwarder without settings");
	ok(conv_v1_to_v2(e, 1, a, &o) == 0 && streq(o->source_id, ""),
	    "v1: ToV2 keeps an empty source_id tag (the last one wins)");

	/* Huge tags, duplicates included: last wins, output sorted, unique. */
	arena_reset(a);
	e = v1_new(a, "o", EVENTS__ENVELOPE__EVENT_TYPE__LogMessage);
	e->logmessage = &lm;
	e->tags = arena_alloc(a, 20000 * sizeof(*e->tags));
	for (i = 0; i < 20000; i++) {
		Events__Envelope__TagsEntry *ent = arena_alloc(a, sizeof(*ent));

		snprintf(key, sizeof(key), "k%05zu", i % 10000);
		events__envelope__tags_entry__init(ent);
		ent->key = arena_strdup(a, key);
		ent->value = i < 10000 ? "first" : "second";
		e->tags[e->n_tags++] = ent;
	}
	rc = conv_v1_to_v2(e, 1, a, &o);
	for (i = 1; rc == 0 && i < o->n_tags; i++)
		if (strcmp(o->tags[i - 1]->key, o->tags[i]->key) >= 0)
			rc = -1;
	ok(rc == 0 && o->n_tags == 10000 + 7 &&
	    streq(v2_get(o, "k04242"), "second"),
	    "v1: 20000 tags with duplicates: unique, sorted, last wins");
	{
		struct arena tiny;

		arena_init(&tiny, 4096, 64 << 10);
		errno = 0;
		ok(conv_v1_to_v2(e, 0, &tiny, &o) == -1 && errno == ENOMEM,
		    "v1: huge tags in a small arena give ENOMEM");
		arena_release(&tiny);
	}
}

static void
test_v2_edges(struct arena *a)
{
	static const char *const cm_names[] = {
		"cpu", "memory", "disk", "memory_quota", "disk_quota",
		"instance_index",
	};
	static const char *const cm_units[] = {
		"percentage", "bytes", "", "bytes", "bytes", "",
	};
	Loggregator__V2__Envelope *e;
	Events__Envelope *o, **ov;
	size_t n;
	double vals[6];

	arena_reset(a);
	e = v2_new(a, "src");
	ok(conv_v2_to_v1(e, a, &ov, &n) == 0 && n == 0,
	    "v2: no message, no output");
	e->message_case = LOGGREGATOR__V2__ENVELOPE__MESSAGE_EVENT;
	e->event = NULL;
	ok(conv_v2_to_v1(e, a, &ov, &n) == 0 && n == 0,
	    "v2: an event has no v1 form");

	/* Empty payload: Go's nil slice leaves the required message unset. */
	e = v2_new(a, "src");
	v2_log(a, e, "", 0);
	o = to_v1_one(a, e);
	ok(o != NULL && o->logmessage != NULL && !conv_v1_complete(o) &&
	    o->logmessage->message.data == NULL,
	    "v2: an empty log payload fails conv_v1_complete");
	v2_tag(a, e, "__v1_type", "Error");
	v2_tag(a, e, "code", "4294967291");
	o = to_v1_one(a, e);
	ok(o != NULL && o->error != NULL && conv_v1_complete(o) &&
	    streq(o->error->message, "") && o->error->code == -5 &&
	    streq(o->error->source, ""),
	    "v2: an Error log with an empty payload is complete; code wraps");
	e = v2_new(a, "");
	v2_log(a, e, "x", 5);
	o = to_v1_one(a, e);
	ok(o != NULL && o->logmessage->message_type ==
	    EVENTS__LOG_MESSAGE__MESSAGE_TYPE__ERR && o->n_tags == 0 &&
	    streq(o->logmessage->app_id, "") && streq(o->origin, ""),
	    "v2: an undeclared log type is ERR; empty source_id adds no tag");

	/* Tags: duplicates, deprecated values of every kind. */
	e = v2_new(a, "src");
	v2_log(a, e, "x", 0);
	v2_tag(a, e, "origin", "a");
	v2_tag(a, e, "origin", "b");
	v2_tag(a, e, "kept", "tag");
	v2_tag(a, e, "source_id", "from-tag");
	v2_dep(a, e, "kept", 3, NULL, 0, 0);
	v2_dep(a, e, "none", 4, NULL, 0, 0);
	v2_dep(a, e, "dec", 2, NULL, 0, 1.5);
	v2_dep(a, e, "nan", 2, NULL, 0, NAN);
	v2_dep(a, e, "pinf", 2, NULL, 0, INFINITY);
	v2_dep(a, e, "ninf", 2, NULL, 0, -INFINITY);
	v2_dep(a, e, "negz", 2, NULL, 0, -0.0);
	v2_dep(a, e, "int", 1, NULL, INT64_MIN, 0);
	v2_dep(a, e, "job", 2, NULL, 0, 1e20);
	v2_dep(a, e, "index", 1, NULL, -7, 0);
	o = to_v1_one(a, e);
	ok(o != NULL && streq(o->origin, "b") && streq(o->job,
	    "100000000000000000000.000000") && streq(o->index, "-7") &&
	    streq(v1_get(o, "dec"), "1.500000") &&
	    streq(v1_get(o, "nan"), "NaN") &&
	    streq(v1_get(o, "pinf"), "+Inf") &&
	    streq(v1_get(o, "ninf"), "-Inf") &&
	    streq(v1_get(o, "negz"), "-0.000000") &&
	    streq(v1_get(o, "int"), "-9223372036854775808") &&
	    streq(v1_get(o, "kept"), "tag") && v1_get(o, "none") == NULL &&
	    streq(v1_get(o, "source_id"), "src") && v1_get(o, "job") == NULL &&
	    v1_get(o, "origin") == NULL,
	    "v2: tags: last duplicate wins, deprecated values as Go's %%d/%%f");

	/* Timer: UUIDs, numbers, forwarded. */
	e = v2_new(a, "0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0");
	v2_timer(a, e);
	v2_tag(a, e, "forwarded", "a\n");
	v2_tag(a, e, "status_code", "+200");
	v2_tag(a, e, "content_length", "-9223372036854775808");
	v2_tag(a, e, "method", "get");
	v2_tag(a, e, "peer_type", "Server");
	v2_tag(a, e, "other", "kept");
	e->instance_id = "-2147483648";
	o = to_v1_one(a, e);
	ok(o != NULL && o->httpstartstop->requestid == NULL &&
	    !conv_v1_complete(o) && o->httpstartstop->applicationid != NULL &&
	    o->httpstartstop->applicationid->low == 8676565436284608015u &&
	    o->httpstartstop->applicationid->high == 17357386176853808775u &&
	    o->httpstartstop->n_forwarded == 2 &&
	    streq(o->httpstartstop->forwarded[0], "a") &&
	    streq(o->httpstartstop->forwarded[1], "") &&
	    o->httpstartstop->statuscode == 200 &&
	    o->httpstartstop->contentlength == INT64_MIN &&
	    o->httpstartstop->method == 0 && o->httpstartstop->peertype == 2 &&
	    o->httpstartstop->instanceindex == INT32_MIN &&
	    streq(o->httpstartstop->uri, "") && o->n_tags == 2 &&
	    streq(v1_get(o, "other"), "kept"),
	    "v2: timer: upper-case UUID, no request_id, Go's ParseInt rules");
	e = v2_new(a, "0f1e2d3cX4b5aX6978X8796Xa5b4c3d2e1f0");
	v2_timer(a, e);
	v2_tag(a, e, "request_id", "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f");
	v2_tag(a, e, "status_code", "4294967496");
	v2_tag(a, e, "content_length", "9223372036854775808");
	e->instance_id = "2147483648";
	o = to_v1_one(a, e);
	ok(o != NULL && o->httpstartstop->requestid == NULL &&
	    o->httpstartstop->applicationid != NULL &&
	    o->httpstartstop->applicationid->low == 8676565436284608015u &&
	    o->httpstartstop->n_forwarded == 1 &&
	    streq(o->httpstartstop->forwarded[0], "") &&
	    o->httpstartstop->statuscode == 200 &&
	    o->httpstartstop->contentlength == 0 &&
	    o->httpstartstop->instanceindex == 0,
	    "v2: timer: dashes unchecked, 35-char request_id refused, "
	    "int32 wraps, overflow is 0");
	e = v2_new(a, "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1fg");
	v2_timer(a, e);
	v2_tag(a, e, "request_id", "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0");
	v2_tag(a, e, "status_code", " 200");
	o = to_v1_one(a, e);
	ok(o != NULL && o->httpstartstop->requestid != NULL &&
	    o->httpstartstop->applicationid == NULL && conv_v1_complete(o) &&
	    o->httpstartstop->statuscode == 0,
	    "v2: timer: a non-hex UUID is refused; a space is not a number");

	/* Gauges. */
	vals[0] = 12.5;
	vals[1] = -1.5;
	vals[2] = 1e20;
	vals[3] = 0x1p63;
	vals[4] = NAN;
	vals[5] = NAN;
	e = v2_new(a, "app");
	e->instance_id = "3";
	v2_gauge(a, e, 6, cm_names, cm_units, vals);
	o = to_v1_one(a, e);
	ok(o != NULL && o->containermetric != NULL &&
	    o->containermetric->instanceindex == INT32_MIN &&
	    o->containermetric->memorybytes == UINT64_MAX &&
	    o->containermetric->diskbytes == UINT64_C(1) << 63 &&
	    o->containermetric->memorybytesquota == UINT64_C(1) << 63 &&
	    o->containermetric->diskbytesquota == UINT64_C(1) << 63 &&
	    o->containermetric->cpupercentage == 12.5 &&
	    streq(o->containermetric->applicationid, "app") &&
	    v1_get(o, "instance_id") == NULL && conv_v1_complete(o),
	    "v2: container metric with Go's amd64 float to integer rules");
	vals[5] = 3e9;
	vals[2] = -1e300;
	v2_gauge(a, e, 6, cm_names, cm_units, vals);
	o = to_v1_one(a, e);
	ok(o != NULL && o->containermetric->instanceindex == INT32_MIN &&
	    o->containermetric->diskbytes == UINT64_C(1) << 63,
	    "v2: container metric: out of range values");
	vals[5] = -7.9;
	vals[2] = 0x1p64;
	v2_gauge(a, e, 6, cm_names, cm_units, vals);
	o = to_v1_one(a, e);
	ok(o != NULL && o->containermetric->instanceindex == -7 &&
	    o->containermetric->diskbytes == UINT64_C(1) << 63,
	    "v2: container metric: truncation toward zero, 2^64");
	vals[2] = 0;
	v2_gauge(a, e, 6, cm_names, cm_units, vals);
	ok(conv_v2_to_v1(e, a, &ov, &n) == 0 && n == 6 && ov[0]->valuemetric &&
	    streq(v1_get(ov[0], "instance_id"), "3") &&
	    ov[0]->tags == ov[5]->tags,
	    "v2: a metric with no unit and value 0 counts as missing");
	e = v2_new(a, "app");
	e->instance_id = "x";
	vals[2] = 1;
	v2_gauge(a, e, 5, cm_names, cm_units, vals);
	o = to_v1_one(a, e);
	ok(o != NULL && o->containermetric != NULL &&
	    o->containermetric->instanceindex == 0,
	    "v2: container metric index from a bad instance_id is 0");
	{
		static const char *const nm[] = { "m", "n", "m" };
		static const char *const un[] = { "u", NULL, "w" };
		static const double vv[] = { 1, 2, 3 };

		e = v2_new(a, "src");
		v2_gauge(a, e, 3, nm, un, vv);
		ok(conv_v2_to_v1(e, a, &ov, &n) == 0 && n == 2 &&
		    streq(ov[0]->valuemetric->name, "m") &&
		    streq(ov[0]->valuemetric->unit, "w") &&
		    ov[0]->valuemetric->value == 3 &&
		    streq(ov[1]->valuemetric->unit, "") &&
		    ov[1]->valuemetric->value == 0 && conv_v1_complete(ov[1]),
		    "v2: duplicate metrics: last wins; no value is empty");
		v2_gauge(a, e, 0, nm, un, vv);
		ok(conv_v2_to_v1(e, a, &ov, &n) == 0 && n == 0,
		    "v2: a gauge without metrics gives nothing");
		v2_gauge(a, e, 1, cm_names, cm_units, vals);
		ok(conv_v2_to_v1(e, a, &ov, &n) == 0 && n == 1 &&
		    ov[0]->valuemetric != NULL,
		    "v2: a single cpu metric is a ValueMetric");
	}

	/* Counter. */
	e = v2_new(a, "src");
	e->message_case = LOGGREGATOR__V2__ENVELOPE__MESSAGE_COUNTER;
	e->counter = NULL;
	o = to_v1_one(a, e);
	ok(o != NULL && streq(o->counterevent->name, "") &&
	    o->counterevent->has_total && v1_get(o, "instance_id") == NULL &&
	    conv_v1_complete(o),
	    "v2: a counter with no body converts from zero values");
}

int
main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "t/golden";
	struct arena src, dst;
	char path[4096];
	size_t i;

	relaxed_v1 = relax(&events__envelope__descriptor);
	if (arena_init(&src, 64 << 10, ARENA_MAX) == -1 ||
	    arena_init(&dst, 64 << 10, ARENA_MAX) == -1) {
		perror("arena_init");
		return 1;
	}
	snprintf(path, sizeof(path), "%s/v1_to_v2.jsonl", dir);
	run_golden(path, &src, &dst);
	snprintf(path, sizeof(path), "%s/v2_to_v1.jsonl", dir);
	run_golden(path, &src, &dst);
	snprintf(path, sizeof(path), "%s/rlp_converge_tags.jsonl", dir);
	run_golden(path, &src, &dst);
	test_v1_edges(&dst);
	test_v2_edges(&dst);
	arena_release(&src);
	arena_release(&dst);
	for (i = 0; i < relaxed_n; i++)
		free(relaxed_mem[i]);
	return tap_done();
}
