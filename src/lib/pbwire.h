/* pbwire: read and extend protobuf wire format straight from the bytes,
 * for envelopes a program only passes along.
 *
 * Nothing here allocates or copies a field: every pointer handed out
 * points into the caller's bytes and lives as long as they do. Every
 * length read from the wire is checked against the bytes present, so the
 * functions are safe on hostile input; malformed bytes give -1 with errno
 * EBADMSG. Strings are handed out as they are on the wire: not checked
 * for UTF-8, possibly holding NUL bytes, never NUL-terminated.
 *
 * What counts as malformed follows Go's protowire, the reference
 * Loggregator decoder: a varint longer than 10 bytes or past 64 bits, a
 * length past the end, a field number 0 or above 2^29-1, a group (wire
 * types 3 and 4) or a wire type 6 or 7. The envelope functions also
 * refuse a known Envelope field with the wrong wire type (a source_id
 * written as a varint), as lgr's own decoder does. */
#ifndef LGR_PBWIRE_H
#define LGR_PBWIRE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Wire types. */
#define PB_WIRE_VARINT	0
#define PB_WIRE_FIXED64	1
#define PB_WIRE_LEN	2
#define PB_WIRE_FIXED32	5

#define PB_FIELD_MAX	((1u << 29) - 1)
#define PB_VARINT_MAX	10	/* bytes in the longest varint */

/* loggregator.v2.Envelope field numbers. 4, 5, 6, 7 and 10 are the
 * oneof message: they are also what envelope_peek_kind returns. */
#define PB_ENV_TIMESTAMP	1
#define PB_ENV_SOURCE_ID	2
#define PB_ENV_DEPRECATED_TAGS	3
#define PB_ENV_LOG		4
#define PB_ENV_COUNTER		5
#define PB_ENV_GAUGE		6
#define PB_ENV_TIMER		7
#define PB_ENV_INSTANCE_ID	8
#define PB_ENV_TAGS		9
#define PB_ENV_EVENT		10

/* One field as it sits on the wire. varint is the value for
 * PB_WIRE_VARINT, the little-endian value for the fixed types and the
 * length for PB_WIRE_LEN. data and len are the field's value bytes: the
 * varint's own bytes, the 8 or 4 fixed bytes, or the payload of a
 * length-delimited field (its length prefix left out). */
struct pb_field {
	uint32_t num;
	int wire;
	uint64_t varint;
	const uint8_t *data;
	size_t len;
};

/* The next field of the message at *p, which ends at end (*p <= end).
 * Returns 1 with *f filled and *p advanced past the field; 0 at end; -1
 * with errno EBADMSG on malformed bytes, *p left where it was. */
int pb_next(const uint8_t **p, const uint8_t *end, struct pb_field *f);

/* 0 when the len bytes at p parse field by field, top level only (the
 * insides of length-delimited fields are not looked at); -1 with errno
 * EBADMSG otherwise. Zero bytes are a valid, empty message. */
int pb_check(const uint8_t *p, size_t len);

/* Bytes pb_put_varint writes for v: 1 to PB_VARINT_MAX. */
size_t pb_varint_size(uint64_t v);

/* Write v as a varint at dst, which has room for pb_varint_size(v)
 * bytes. Returns the bytes written. */
size_t pb_put_varint(uint8_t *dst, uint64_t v);

/*
 * Envelope peeks. env points at len bytes of a serialized
 * loggregator.v2.Envelope (never NULL, even when len is 0). Each reads
 * the whole top level once, so a field given more than once counts as
 * protobuf says: the last occurrence wins. Each returns -1 with errno
 * EBADMSG when the top level is malformed (see above), and checks the
 * insides of the fields it reads.
 */

/* source_id (field 2): 1 with *s and *n set, 0 when absent. */
int envelope_peek_source_id(const uint8_t *env, size_t len, const char **s,
    size_t *n);

/* The oneof message case: PB_ENV_LOG, _COUNTER, _GAUGE, _TIMER or
 * _EVENT (4, 5, 6, 7, 10), 0 when none is set, -1 when malformed. */
int envelope_peek_kind(const uint8_t *env, size_t len);

/* The value of tag key (klen bytes) in tags (field 9, the last entry with
 * that key) or, when tags has no such key, in deprecated_tags (field 3)
 * provided its value is text (Value field 1; an integer or decimal value
 * counts as absent). 1 with *v and *vn set (*v not NULL, *vn possibly 0),
 * 0 when absent, -1 when malformed: every entry of both maps is read down
 * to its key, and the deprecated Value returned is read in full. */
int envelope_peek_tag(const uint8_t *env, size_t len, const char *key,
    size_t klen, const char **v, size_t *vn);

struct pb_tag {
	const char *key;
	size_t klen;
	const char *value;
	size_t vlen;
};

/* Add the tags an envelope does not already carry, as Loggregator's agent
 * adds deployment, job, index and ip: write env and then one tags (field
 * 9) map entry per tag whose key is neither in tags nor in deprecated_tags
 * into dst, which has room for cap bytes. A key given twice in tags is
 * added once, with its first value. Appending fields is valid protobuf,
 * and a decoder merges the map entries, so env is never decoded nor
 * re-encoded: it is copied as it is, and its every map entry read down to
 * the key.
 *
 * dst may be env itself, to append in place when the buffer holding env
 * has room after it; otherwise the two must not overlap.
 *
 * Returns the new length, or -1 with errno EBADMSG (env is malformed;
 * nothing written) or EMSGSIZE (cap is too small; dst holds a part). */
ssize_t envelope_add_tags(const uint8_t *env, size_t len,
    const struct pb_tag *tags, size_t ntags, uint8_t *dst, size_t cap);

/* The envelopes of an EnvelopeBatch (repeated field 1) at *p, which ends
 * at end. Returns 1 with *env and *len set to the next envelope's bytes
 * (not checked) and *p advanced past it; 0 at end; -1 with errno EBADMSG
 * on malformed bytes or a field 1 that is not length-delimited, *p left
 * at the bad field. Other fields are skipped. */
int pb_batch_next(const uint8_t **p, const uint8_t *end,
    const uint8_t **env, size_t *len);

/* Append one envelope of len bytes to an EnvelopeBatch being built: write
 * its field 1 header and the bytes at dst, which has room for cap bytes.
 * env and dst must not overlap. Returns the bytes written, or -1 with
 * errno EMSGSIZE when they do not fit. */
ssize_t pb_batch_put(uint8_t *dst, size_t cap, const uint8_t *env,
    size_t len);

#endif
