/* pbwire: protobuf wire format read and appended in place, for envelopes
 * passed along without decoding. */
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "pbwire.h"

/* A map entry's key and value fields; a Value's oneof. */
#define PB_ENTRY_KEY	1
#define PB_ENTRY_VALUE	2
#define PB_VALUE_TEXT	1
#define PB_VALUE_INTEGER 2
#define PB_VALUE_DECIMAL 3

#define PB_BATCH_ENVELOPE 1

/* The field reader runs per field per envelope: inline it everywhere
 * (gcc leaves it out of line at -O2, at twice the cost per envelope). */
#define PB_HOT static inline __attribute__((always_inline))

/* Tags an add_tags scan of the envelope looks for at once: one bit each. */
#define PB_TAGS_PER_SCAN 64

static int
bad(void)
{
	errno = EBADMSG;
	return -1;
}

/* A varint at *pp, before end. Go's protowire refuses a tenth byte above
 * 1 (the value would pass 64 bits), and so do we. */
PB_HOT int
get_varint(const uint8_t **pp, const uint8_t *end, uint64_t *v)
{
	const uint8_t *p = *pp;
	uint64_t x = 0;
	unsigned shift;
	uint8_t b;

	if (p < end && *p < 0x80) {	/* most tags and lengths */
		*v = *p;
		*pp = p + 1;
		return 0;
	}
	for (shift = 0; shift < 64; shift += 7) {
		if (p == end)
			return -1;
		b = *p++;
		x |= (uint64_t)(b & 0x7f) << shift;
		if (b < 0x80) {
			if (shift == 63 && b > 1)
				return -1;
			*v = x;
			*pp = p;
			return 0;
		}
	}
	return -1;
}

static inline uint64_t
get_le(const uint8_t *p, unsigned n)
{
	uint64_t x = 0;

	while (n-- > 0)
		x = x << 8 | p[n];
	return x;
}

PB_HOT int
next_field(const uint8_t **pp, const uint8_t *end, struct pb_field *f)
{
	const uint8_t *p = *pp;
	uint64_t key, n;

	if (p >= end)
		return 0;
	if (get_varint(&p, end, &key) == -1)
		return bad();
	if (key >> 3 == 0 || key >> 3 > PB_FIELD_MAX)
		return bad();
	f->num = (uint32_t)(key >> 3);
	f->wire = (int)(key & 7);
	switch (f->wire) {
	case PB_WIRE_VARINT:
		f->data = p;
		if (get_varint(&p, end, &f->varint) == -1)
			return bad();
		f->len = (size_t)(p - f->data);
		break;
	case PB_WIRE_FIXED64:
	case PB_WIRE_FIXED32:
		n = f->wire == PB_WIRE_FIXED64 ? 8 : 4;
		if ((size_t)(end - p) < n)
			return bad();
		f->varint = get_le(p, (unsigned)n);
		f->data = p;
		f->len = (size_t)n;
		p += n;
		break;
	case PB_WIRE_LEN:
		if (get_varint(&p, end, &n) == -1 || n > (size_t)(end - p))
			return bad();
		f->varint = n;
		f->data = p;
		f->len = (size_t)n;
		p += n;
		break;
	default:	/* 3 and 4 start and end groups; 6 and 7 are unused */
		return bad();
	}
	*pp = p;
	return 1;
}

int
pb_next(const uint8_t **p, const uint8_t *end, struct pb_field *f)
{
	return next_field(p, end, f);
}

int
pb_check(const uint8_t *p, size_t len)
{
	const uint8_t *end = p + len;
	struct pb_field f;
	int rc;

	while ((rc = next_field(&p, end, &f)) == 1)
		;
	return rc;
}

size_t
pb_varint_size(uint64_t v)
{
	size_t n = 1;

	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

size_t
pb_put_varint(uint8_t *dst, uint64_t v)
{
	size_t n = 0;

	while (v >= 0x80) {
		dst[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	dst[n++] = (uint8_t)v;
	return n;
}

/* The next top-level Envelope field, refusing a known field with the
 * wire type its declaration does not allow. */
PB_HOT int
env_next(const uint8_t **p, const uint8_t *end, struct pb_field *f)
{
	int rc;

	rc = next_field(p, end, f);
	if (rc != 1)
		return rc;
	if (f->num == PB_ENV_TIMESTAMP) {
		if (f->wire != PB_WIRE_VARINT)
			return bad();
	} else if (f->num <= PB_ENV_EVENT && f->wire != PB_WIRE_LEN)
		return bad();
	return 1;
}

/* A map entry with a length-delimited key and value (a string, or a
 * Value message): the last of each, empty when missing. 0, or -1 with
 * errno EBADMSG. */
static int
map_entry(const uint8_t *p, size_t len, const uint8_t **k, size_t *kn,
    const uint8_t **v, size_t *vn)
{
	const uint8_t *end = p + len;
	struct pb_field f;
	int rc;

	*k = *v = p;
	*kn = *vn = 0;
	while ((rc = next_field(&p, end, &f)) == 1) {
		if (f.num == PB_ENTRY_KEY) {
			if (f.wire != PB_WIRE_LEN)
				return bad();
			*k = f.data;
			*kn = f.len;
		} else if (f.num == PB_ENTRY_VALUE) {
			if (f.wire != PB_WIRE_LEN)
				return bad();
			*v = f.data;
			*vn = f.len;
		}
	}
	return rc;
}

/* The text of a deprecated_tags entry's Value. A Value given more than
 * once in the entry is merged, as protobuf merges a repeated embedded
 * message, so the last data field across all of them is the one set.
 * 1 with *t, *tn set when that is text, 0 when it is an integer, a
 * decimal or nothing, -1 with errno EBADMSG. */
static int
value_text(const uint8_t *p, size_t len, const char **t, size_t *tn)
{
	const uint8_t *end = p + len, *q, *text = NULL;
	struct pb_field f, g;
	size_t textn = 0;
	int rc, last = 0;

	while ((rc = next_field(&p, end, &f)) == 1) {
		if (f.num != PB_ENTRY_VALUE)
			continue;
		q = f.data;
		while ((rc = next_field(&q, f.data + f.len, &g)) == 1) {
			switch (g.num) {
			case PB_VALUE_TEXT:
				if (g.wire != PB_WIRE_LEN)
					return bad();
				text = g.data;
				textn = g.len;
				break;
			case PB_VALUE_INTEGER:
				if (g.wire != PB_WIRE_VARINT)
					return bad();
				break;
			case PB_VALUE_DECIMAL:
				if (g.wire != PB_WIRE_FIXED64)
					return bad();
				break;
			default:
				continue;
			}
			last = (int)g.num;
		}
		if (rc == -1)
			return -1;
	}
	if (rc == -1)
		return -1;
	if (last != PB_VALUE_TEXT)
		return 0;
	*t = (const char *)text;
	*tn = textn;
	return 1;
}

static inline int
same_key(const uint8_t *a, size_t an, const char *b, size_t bn)
{
	return an == bn && (an == 0 || memcmp(a, b, an) == 0);
}

int
envelope_peek_source_id(const uint8_t *env, size_t len, const char **s,
    size_t *n)
{
	const uint8_t *p = env, *end = env + len;
	struct pb_field f;
	int rc, found = 0;

	while ((rc = env_next(&p, end, &f)) == 1) {
		if (f.num == PB_ENV_SOURCE_ID) {
			*s = (const char *)f.data;
			*n = f.len;
			found = 1;
		}
	}
	return rc == -1 ? -1 : found;
}

int
envelope_peek_kind(const uint8_t *env, size_t len)
{
	const uint8_t *p = env, *end = env + len;
	struct pb_field f;
	int rc, kind = 0;

	while ((rc = env_next(&p, end, &f)) == 1) {
		switch (f.num) {
		case PB_ENV_LOG:
		case PB_ENV_COUNTER:
		case PB_ENV_GAUGE:
		case PB_ENV_TIMER:
		case PB_ENV_EVENT:
			kind = (int)f.num;
			break;
		}
	}
	return rc == -1 ? -1 : kind;
}

int
envelope_peek_tag(const uint8_t *env, size_t len, const char *key,
    size_t klen, const char **v, size_t *vn)
{
	const uint8_t *p = env, *end = env + len, *dep = NULL;
	const uint8_t *k, *val;
	struct pb_field f;
	size_t kn, valn, depn = 0;
	int rc, found = 0;

	while ((rc = env_next(&p, end, &f)) == 1) {
		if (f.num != PB_ENV_TAGS && f.num != PB_ENV_DEPRECATED_TAGS)
			continue;
		if (map_entry(f.data, f.len, &k, &kn, &val, &valn) == -1)
			return -1;
		if (!same_key(k, kn, key, klen))
			continue;
		if (f.num == PB_ENV_TAGS) {
			*v = (const char *)val;
			*vn = valn;
			found = 1;
		} else {
			dep = f.data;
			depn = f.len;
		}
	}
	if (rc == -1)
		return -1;
	if (found || dep == NULL)
		return found;
	return value_text(dep, depn, v, vn);
}

/* Set bit i of *mask for each tags[base + i] (i < n <= PB_TAGS_PER_SCAN)
 * whose key the envelope carries in tags or deprecated_tags. 0, or -1
 * with errno EBADMSG. */
static int
carried_tags(const uint8_t *env, size_t len, const struct pb_tag *tags,
    size_t base, size_t n, uint64_t *mask)
{
	const uint8_t *p = env, *end = env + len, *k, *v;
	struct pb_field f;
	size_t i, kn, vn;
	int rc;

	*mask = 0;
	while ((rc = env_next(&p, end, &f)) == 1) {
		if (f.num != PB_ENV_TAGS && f.num != PB_ENV_DEPRECATED_TAGS)
			continue;
		if (map_entry(f.data, f.len, &k, &kn, &v, &vn) == -1)
			return -1;
		for (i = 0; i < n; i++)
			if (same_key(k, kn, tags[base + i].key,
			    tags[base + i].klen))
				*mask |= (uint64_t)1 << i;
	}
	return rc;
}

/* Whether tags[i] repeats the key of an earlier tag. */
static int
tag_repeated(const struct pb_tag *tags, size_t i)
{
	size_t j;

	for (j = 0; j < i; j++)
		if (same_key((const uint8_t *)tags[j].key, tags[j].klen,
		    tags[i].key, tags[i].klen))
			return 1;
	return 0;
}

/* One tags map entry (room <= SSIZE_MAX): 0x4a, length, then key
 * (field 1) and value (field 2), both always written, as Go writes map
 * entries. Returns the bytes written, or -1 with errno EMSGSIZE when room
 * is too small. */
static ssize_t
put_tag(uint8_t *dst, size_t room, const struct pb_tag *t)
{
	size_t inner, need, n;

	/* room <= SSIZE_MAX, half of SIZE_MAX: no sum below can wrap. */
	if (t->klen > room || t->vlen > room - t->klen)
		goto toobig;
	inner = t->klen + t->vlen + 2 + pb_varint_size(t->klen) +
	    pb_varint_size(t->vlen);
	need = 1 + pb_varint_size(inner) + inner;
	if (need > room)
		goto toobig;
	n = 0;
	dst[n++] = PB_ENV_TAGS << 3 | PB_WIRE_LEN;
	n += pb_put_varint(dst + n, inner);
	dst[n++] = PB_ENTRY_KEY << 3 | PB_WIRE_LEN;
	n += pb_put_varint(dst + n, t->klen);
	if (t->klen > 0)
		memcpy(dst + n, t->key, t->klen);
	n += t->klen;
	dst[n++] = PB_ENTRY_VALUE << 3 | PB_WIRE_LEN;
	n += pb_put_varint(dst + n, t->vlen);
	if (t->vlen > 0)
		memcpy(dst + n, t->value, t->vlen);
	n += t->vlen;
	return (ssize_t)n;
toobig:
	errno = EMSGSIZE;
	return -1;
}

ssize_t
envelope_add_tags(const uint8_t *env, size_t len, const struct pb_tag *tags,
    size_t ntags, uint8_t *dst, size_t cap)
{
	size_t base, n, i, out;
	uint64_t mask;
	ssize_t w;

	if (cap > SSIZE_MAX)
		cap = SSIZE_MAX;
	out = len;
	/* One scan of the envelope per PB_TAGS_PER_SCAN tags: one for the
	 * handful an agent adds. The first also checks env before a byte of
	 * dst is written. */
	base = 0;
	do {
		n = ntags - base;
		if (n > PB_TAGS_PER_SCAN)
			n = PB_TAGS_PER_SCAN;
		if (carried_tags(env, len, tags, base, n, &mask) == -1)
			return -1;
		if (base == 0) {
			if (len > cap) {
				errno = EMSGSIZE;
				return -1;
			}
			if (dst != env && len > 0)
				memcpy(dst, env, len);
		}
		for (i = 0; i < n; i++) {
			if ((mask & (uint64_t)1 << i) != 0 ||
			    tag_repeated(tags, base + i))
				continue;
			w = put_tag(dst + out, cap - out, &tags[base + i]);
			if (w == -1)
				return -1;
			out += (size_t)w;
		}
		base += n;
	} while (base < ntags);
	return (ssize_t)out;
}

int
pb_batch_next(const uint8_t **p, const uint8_t *end, const uint8_t **env,
    size_t *len)
{
	const uint8_t *q = *p;
	struct pb_field f;
	int rc;

	while ((rc = next_field(&q, end, &f)) == 1) {
		if (f.num != PB_BATCH_ENVELOPE) {
			*p = q;
			continue;
		}
		if (f.wire != PB_WIRE_LEN)
			return bad();
		*env = f.data;
		*len = f.len;
		*p = q;
		return 1;
	}
	return rc;
}

ssize_t
pb_batch_put(uint8_t *dst, size_t cap, const uint8_t *env, size_t len)
{
	size_t hdr = 1 + pb_varint_size(len);

	if (cap > SSIZE_MAX)
		cap = SSIZE_MAX;
	if (len > cap || hdr > cap - len) {
		errno = EMSGSIZE;
		return -1;
	}
	dst[0] = PB_BATCH_ENVELOPE << 3 | PB_WIRE_LEN;
	pb_put_varint(dst + 1, len);
	if (len > 0)
		memcpy(dst + hdr, env, len);
	return (ssize_t)(hdr + len);
}
