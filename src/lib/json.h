/* json: loggregator.v2 envelopes to and from the JSON the RLP gateway
 * streams, written byte for byte as Go's protojson writes it. */
#ifndef LGR_JSON_H
#define LGR_JSON_H

#include <stddef.h>

#include "arena.h"
#include "buf.h"
#include "v2/envelope.pb-c.h"

/*
 * Encoding follows protojson.MarshalOptions{EmitUnpopulated: true}, with
 * no spaces: fields in .proto order with the names of SPEC section 7
 * (source_id, instance_id, deprecated_tags), every scalar and both maps
 * present even when empty, map keys sorted bytewise (if a map holds a key
 * twice, the last entry wins, as when Go decodes it), int64/uint64 as
 * decimal strings, bytes as padded standard base64, doubles as fmtnum's
 * FMT_JSON, the log type by name (an undeclared number as a number), and
 * only the oneof member that is set. A NULL string or sub-message counts
 * as empty.
 *
 * Strings escape only '"', '\\' and bytes below 0x20 (\b \f \n \r \t, else
 * \u00XX in lowercase hex); everything else, non-ASCII included, is
 * written raw.
 *
 * Invalid UTF-8: Go's protojson refuses to marshal a string that is not
 * UTF-8, so the Go gateway cannot send that batch at all. lgr writes
 * U+FFFD (raw, EF BF BD) for each byte that does not begin a well-formed
 * sequence (overlong forms, surrogates and code points past U+10FFFF
 * included), as Go's encoding/json does. So one bad tag costs one tag,
 * and the output is always valid UTF-8 that json_decode reads back. Map
 * keys are sorted and told apart after that repair: two keys that repair
 * to the same text are one key, and the later entry wins.
 *
 * On failure the encoders leave out->len as it was.
 */

/* Append s (n bytes) as a quoted JSON string. 0, or -1 with errno from
 * buf (EMSGSIZE past the ceiling, ENOMEM). */
int json_encode_string(struct buf *out, const char *s, size_t n);

/* Append the gateway JSON of one envelope. 0, or -1 with errno EMSGSIZE
 * or ENOMEM from buf, or EINVAL if e is NULL. */
int json_encode_envelope(struct buf *out, const Loggregator__V2__Envelope *e);

/* Append {"batch":[...]} holding the n envelopes of e. Same returns. */
int json_encode_batch(struct buf *out, Loggregator__V2__Envelope *const *e,
    size_t n);

/*
 * Decode one JSON text of len bytes: an envelope object, or a batch object
 * {"batch":[...]} (told apart by a "batch" key; {} is one empty envelope,
 * {"batch":[]} or {"batch":null} no envelopes). On success *out is an
 * array of *n envelopes; the array, the envelopes and every string and
 * payload live in a, until arena_reset or arena_release. Never call
 * free_unpacked on them. The jansson tree used on the way comes from
 * malloc, a few times len in size, and is freed before returning: the
 * caller bounds len (a frame or line limit), the arena bounds the rest.
 *
 * Accepted beyond what json_encode_* write: camelCase sourceId, instanceId
 * and deprecatedTags; 64-bit integers as numbers, or as strings, in any
 * JSON number form with an integral value (5, "5", 5.0, 5e0); doubles as
 * numbers or numeric strings, and "NaN", "Infinity", "-Infinity"; the log
 * type as a name or any int32; standard or URL-safe base64, padded or
 * not; null for any field, meaning unset; whitespace. "NaN" decodes to
 * the bits of Go's math.NaN(), so a round trip packs as Go would.
 *
 * Rejected, as protojson rejects them: anything that is not JSON or not
 * UTF-8; unknown fields; a field given twice (in either spelling);
 * duplicate map keys; wrong types; bad base64; integers with a fraction
 * or out of range; doubles out of range; two members of a oneof; null as
 * a map value. Also rejected: \u0000 in a string, which a protobuf-c
 * string cannot hold.
 *
 * Returns 0, or -1 with errno EINVAL (bad input) or ENOMEM (the arena's
 * ceiling, or malloc inside jansson) and a one-line reason, printable
 * ASCII, naming where it went wrong ("batch[2].counter.delta: ...") in
 * err (errlen bytes, always NUL-terminated when errlen > 0; err may be
 * NULL if errlen is 0). *out and *n are left alone on failure; what
 * was taken from a stays until reset.
 */
int json_decode(const char *text, size_t len, struct arena *a,
    Loggregator__V2__Envelope ***out, size_t *n, char *err, size_t errlen);

#endif
